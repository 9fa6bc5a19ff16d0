"""What the workflow's input functions look up in the manifest, read once per file version.

The manifest (``results/manifest.csv``) is the output of a Snakemake checkpoint: the jobs
behind it (clips, prompts, generations, evaluations) are known only once it exists.
:class:`ManifestIndex` answers the input functions' questions (a video's row, the videos of a
class that a method runs on, a video's prompt file, the cross-video control's donor);
:class:`ManifestCache` rereads it only when the file changes; :class:`CheckpointOutputs`
holds the rule of when a checkpoint's output may be read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from sora_tta.data.manifest import ManifestError, method_runs_on, read_manifest
from sora_tta.prompts import format_prompt, prompt_id
from sora_tta.study.variants import BASELINE, cross_video_donors_by_role

#: Class names become file names (``results/metrics/<method>/<class>.json``).
CLASS_NAME_PATTERN = r"[A-Za-z0-9_+-]+"
_COLUMNS = ("video_id", "class_name", "caption", "source_path", "status", "role")


class ManifestIndex:
    """The manifest as lookups: rows by video id, usable (status ok) videos in file order and
    grouped by class (classes in order of first appearance).

    Args:
        path: the manifest CSV.
        final_methods: method ids of the final variants (they run on test and validation
            videos; the other variants on validation videos only).
        prompt_fps, motion_score: the prompt template's values (``prompts`` of the config).
        seed: ``generation.seed``, from which the cross-video donors are drawn.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        final_methods: Sequence[str],
        prompt_fps: int,
        motion_score: int,
        seed: int,
    ) -> None:
        self.path = str(path)
        frame = read_manifest(path)
        self.rows = {
            str(row[0]): dict(zip(_COLUMNS, map(str, row), strict=True))
            for row in zip(*(frame[c] for c in _COLUMNS), strict=True)
        }
        self.usable = [v for v, row in self.rows.items() if row["status"] == "ok"]
        self.by_class: dict[str, list[str]] = {}
        for video in self.usable:
            self.by_class.setdefault(self.rows[video]["class_name"], []).append(video)
        bad = [c for c in self.by_class if not re.fullmatch(CLASS_NAME_PATTERN, c)]
        if bad:
            raise ManifestError(
                f"{path}: class names {bad} are not usable in file names "
                f"(allowed: {CLASS_NAME_PATTERN})"
            )
        self.has_validation = any(self.rows[v]["role"] == "validation" for v in self.usable)
        self._final = tuple(final_methods)
        self._prompt = (prompt_fps, motion_score)
        self._seed = seed
        self._method_classes: dict[str, dict[str, list[str]]] = {}
        self._prompt_ids: dict[str, str] | None = None
        self._donors: dict[str, str] | None = None

    def row(self, video: str) -> dict[str, str]:
        """The manifest row of ``video`` (any status)."""
        try:
            return self.rows[video]
        except KeyError:
            raise ManifestError(f"{self.path}: no video {video!r}") from None

    def usable_row(self, video: str) -> dict[str, str]:
        """The manifest row of ``video``, which must be usable (status ok)."""
        row = self.row(video)
        if row["status"] != "ok":
            raise ManifestError(f"{self.path}: video {video!r} is not usable ({row['status']})")
        return row

    def method_classes(self, method: str) -> dict[str, list[str]]:
        """Class -> usable videos that ``method`` runs on (see
        :func:`~sora_tta.data.manifest.method_runs_on`), classes without any left out."""
        if method not in self._method_classes:
            roles = method_runs_on(method, self._final, self.has_validation, BASELINE)
            table = {}
            for class_name, videos in self.by_class.items():
                kept = [v for v in videos if self.rows[v]["role"] in roles]
                if kept:
                    table[class_name] = kept
            self._method_classes[method] = table
        return self._method_classes[method]

    def method_videos(self, method: str) -> tuple[str, ...]:
        """Every usable video ``method`` runs on, class by class."""
        return tuple(v for videos in self.method_classes(method).values() for v in videos)

    def method_class_videos(self, method: str, class_name: str) -> list[str]:
        """The videos of ``class_name`` that ``method`` runs on."""
        try:
            return self.method_classes(method)[class_name]
        except KeyError:
            raise ManifestError(
                f"{self.path}: no usable video of class {class_name!r} for {method}"
            ) from None

    def prompt_id(self, video: str) -> str:
        """File stem of the video's prompt embedding (computed for all videos at once)."""
        if self._prompt_ids is None:
            fps, motion = self._prompt
            self._prompt_ids = {
                v: prompt_id(format_prompt(self.rows[v]["caption"], fps, motion))
                for v in self.usable
            }
        self.usable_row(video)
        return self._prompt_ids[video]

    def cross_video_donor(self, video: str) -> str:
        """The video whose clip the cross-video control adapts on for ``video``: a fixed
        derangement from the seed, with donors of another class in the same selection."""
        if self._donors is None:
            rows = [(v, self.rows[v]["class_name"], self.rows[v]["role"]) for v in self.usable]
            self._donors = cross_video_donors_by_role(rows, self._seed)
        self.usable_row(video)
        return self._donors[video]


class ManifestCache:
    """One :class:`ManifestIndex` per version (time, size) of the manifest file: input
    functions run for every job, the file is read once."""

    def __init__(self, make: Callable[[str], ManifestIndex]) -> None:
        self._make = make
        self._key: tuple[Any, ...] | None = None
        self._index: ManifestIndex | None = None

    def get(self, path: str) -> ManifestIndex:
        """The index of ``path`` as it is now."""
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        if key != self._key or self._index is None:
            self._index, self._key = self._make(path), key
        return self._index


class CheckpointOutputs:
    """When an output of a Snakemake checkpoint may be read.

    ``pending.get()`` raises Snakemake's ``IncompleteCheckpointException`` (``incomplete``)
    until the checkpoint has run; the input function that asked is then deferred and
    re-evaluated afterwards. A job's own Snakemake process (on a cluster node, or the one of
    a ``run:`` job) builds only that job and never runs the checkpoint; the main process ran
    it before it scheduled the job, so there the file itself is the proof.
    """

    def __init__(self, is_main_process: bool, incomplete: type[Exception]) -> None:
        self._main = is_main_process
        self._incomplete = incomplete
        self._ready: set[str] = set()

    def get(self, pending: Any, path: str) -> str:
        """``path`` (an output of checkpoint ``pending``) once that has run."""
        if path not in self._ready:
            try:
                pending.get()
            except self._incomplete:
                if self._main or not os.path.exists(path):
                    raise
            self._ready.add(path)
        return path
