"""The manifest: one CSV row per selected video with its caption and probe status.

Columns (:data:`MANIFEST_COLUMNS`): ``video_id, class_name, class_index, caption, split,
subset, group, clip, source_path, num_frames, fps, width, height, status, reason, role``
(``role``: ``test`` or ``validation``, see :data:`ROLES`).
``num_frames`` is the source frame count; ``status`` is one of
:data:`sora_tta.data.probe.STATUSES`. A bad video never stops the run: it becomes a row
with its status and reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sora_tta.data.captions import Captioner
from sora_tta.data.probe import STATUSES, UCF101_SIZE, ProbeResult, probe_video
from sora_tta.data.ucf101 import VideoEntry
from sora_tta.io import atomic_path

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "video_id", "class_name", "class_index", "caption", "split", "subset", "group", "clip",
    "source_path", "num_frames", "fps", "width", "height", "status", "reason", "role",
)  # fmt: skip
#: Which selection a row belongs to: the study's test videos, or the validation videos that
#: exploration runs on (never sharing a UCF-101 group with the test videos).
ROLE_TEST = "test"
ROLE_VALIDATION = "validation"
ROLES = (ROLE_TEST, ROLE_VALIDATION)
_INT_COLUMNS = ("class_index", "split", "group", "clip")
_OPTIONAL_INT_COLUMNS = ("num_frames", "width", "height")
_STR_COLUMNS = (
    "video_id", "class_name", "caption", "subset", "source_path", "status", "reason", "role",
)  # fmt: skip


def method_runs_on(
    method: str, final: Sequence[str], has_validation: bool, baseline: str
) -> tuple[str, ...]:
    """The manifest roles whose videos ``method`` is generated and evaluated for.

    The baseline and the final variants run on every selected video (test and validation:
    exploration compares with them on validation); exploratory variants run on the
    validation videos only, so choosing among them never looks at a test video. Without a
    validation selection every method runs on the test videos.
    """
    if not has_validation:
        return (ROLE_TEST,)
    if method == baseline or method in final:
        return (ROLE_TEST, ROLE_VALIDATION)
    return (ROLE_VALIDATION,)


class ManifestError(ValueError):
    """A manifest file is missing or malformed (the message names the file)."""


@dataclass(frozen=True)
class ProbeSettings:
    """How each selected video is checked."""

    min_frames: int = 65
    expected_size: tuple[int, int] | None = UCF101_SIZE
    decode_check: bool = False
    jobs: int = 1


def manifest_row(
    entry: VideoEntry,
    probe: ProbeResult,
    caption: str,
    split: int,
    subset: str,
    role: str = ROLE_TEST,
) -> dict[str, object]:
    """One manifest row from a split entry and its probe result."""
    return {
        "video_id": entry.video_id,
        "class_name": entry.class_name,
        "class_index": entry.class_index,
        "caption": caption,
        "split": split,
        "subset": subset,
        "group": entry.group,
        "clip": entry.clip,
        "source_path": probe.path,
        "num_frames": probe.num_frames,
        "fps": probe.fps,
        "width": probe.width,
        "height": probe.height,
        "status": probe.status,
        "reason": probe.reason,
        "role": role,
    }


def build_manifest(
    entries: Iterable[VideoEntry],
    ucf_root: str | os.PathLike[str],
    captioner: Captioner,
    split: int,
    subset: str,
    settings: ProbeSettings = ProbeSettings(),
    role: str = ROLE_TEST,
) -> pd.DataFrame:
    """Probe every entry under ``ucf_root`` (``settings.jobs`` threads) and build the table
    (every row with ``role``)."""
    entries = list(entries)
    paths = [os.path.join(ucf_root, entry.relpath) for entry in entries]

    def probe(path: str) -> ProbeResult:
        return probe_video(path, settings.min_frames, settings.expected_size, settings.decode_check)

    if settings.jobs > 1:
        with ThreadPoolExecutor(settings.jobs) as pool:
            probes = list(pool.map(probe, paths))
    else:
        probes = [probe(path) for path in paths]
    rows = [
        manifest_row(
            entry, result, captioner(entry.class_name, entry.video_id), split, subset, role
        )
        for entry, result in zip(entries, probes, strict=True)
    ]
    return _typed(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)))


def exclude_videos(frame: pd.DataFrame, reasons: Mapping[str, str]) -> pd.DataFrame:
    """Mark the videos of ``reasons`` (video id -> why) ``excluded``, whatever their probe
    said; ids that are not in the manifest are ignored (and logged)."""
    unknown = sorted(set(reasons) - set(frame["video_id"]))
    if unknown:
        log.warning("excluded videos not in the selection: %s", ", ".join(unknown))
    frame = frame.copy()
    chosen = frame["video_id"].isin(list(reasons))
    frame.loc[chosen, "status"] = "excluded"
    frame.loc[chosen, "reason"] = [
        f"excluded by the configuration: {reasons[v]}" for v in frame.loc[chosen, "video_id"]
    ]
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _INT_COLUMNS:
        frame[column] = frame[column].astype("int64")
    for column in _OPTIONAL_INT_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    frame["fps"] = frame["fps"].astype("float64")
    for column in _STR_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    return frame


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write the manifest CSV atomically (columns in :data:`MANIFEST_COLUMNS` order first)."""
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"{path}: manifest lacks columns {missing}")
    extra = [c for c in frame.columns if c not in MANIFEST_COLUMNS]
    with atomic_path(path) as tmp:
        frame[list(MANIFEST_COLUMNS) + extra].to_csv(tmp, index=False)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a manifest CSV; ``ManifestError`` names the file and the problem.

    Checks: every column of :data:`MANIFEST_COLUMNS` present (a manifest without ``role``
    is all test), integer columns integral, statuses and roles known, ``video_id`` unique.
    Empty cells of strings read as ``""``, of
    ``num_frames``/``width``/``height`` as ``<NA>`` (nullable ``Int64``), of ``fps`` as NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: not a readable CSV ({err})") from err
    if "role" not in frame.columns:  # written before validation selections existed
        frame["role"] = ROLE_TEST
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing}")
    for column in (*_INT_COLUMNS, *_OPTIONAL_INT_COLUMNS, "fps"):
        values = frame[column].mask(frame[column].str.strip() == "")
        if column in _INT_COLUMNS and values.isna().any():
            row = int(values.isna().to_numpy().argmax()) + 2
            raise ManifestError(f"{path}:{row}: empty {column}")
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if column != "fps":
            bad |= numbers.notna() & (numbers != numbers.round())
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise ManifestError(
                f"{path}:{row + 2}: {column} {frame[column].iloc[row]!r} is not a number"
            )
        frame[column] = numbers
    unknown = sorted(set(frame["status"]) - set(STATUSES))
    if unknown:
        raise ManifestError(f"{path}: unknown status {unknown}; expected one of {list(STATUSES)}")
    unknown = sorted(set(frame["role"]) - set(ROLES))
    if unknown:
        raise ManifestError(f"{path}: unknown role {unknown}; expected one of {list(ROLES)}")
    incomplete = (frame["status"] == "ok") & frame[
        ["num_frames", "fps", "width", "height"]
    ].isna().any(axis=1)
    if incomplete.any():
        row = int(incomplete.to_numpy().argmax())
        raise ManifestError(f"{path}:{row + 2}: status ok but num_frames/fps/width/height missing")
    duplicated = frame["video_id"][frame["video_id"].duplicated()]
    if not duplicated.empty:
        raise ManifestError(f"{path}: video_id {duplicated.iloc[0]!r} appears more than once")
    return _typed(frame)
