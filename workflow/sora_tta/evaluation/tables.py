"""Loading the per-video metric records and the statistical tables built from them.

The long table (one row per value) is the common input; ``per_video`` selects its
per-video aggregates, the unit of every statistic (see ``docs/metrics.md``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sora_tta.evaluation.definitions import (
    FILE_SCHEMA,
    METRICS,
    SCHEMA,
    SEGMENT_CONTEXT,
    SEGMENTS,
    direction,
)
from sora_tta.evaluation.stats import (
    BootstrapConfig,
    StatisticsConfig,
    describe,
    paired_stats,
    verdict,
)
from sora_tta.io import read_json
from sora_tta.study.variants import BASELINE

LONG_COLUMNS = ["video", "class", "method", "lpips_backbone", "segment", "metric", "frame", "value"]
SUMMARY_COLUMNS = [
    "method", "segment", "metric", "direction", "n", "mean", "std", "median", "ci_low", "ci_high",
    "lpips_backbone",
]  # fmt: skip
PAIRED_COLUMNS = [
    "method", "baseline", "segment", "metric", "direction", "n_method_videos", "n_baseline_videos",
    "n_shared_videos", "n", "baseline_mean", "method_mean", "mean_diff", "std_diff", "median_diff",
    "ci_low", "ci_high", "wins", "ties", "losses", "win_rate", "p_wilcoxon", "verdict",
    "lpips_backbone",
]  # fmt: skip
PER_CLASS_COLUMNS = [
    "class", "method", "segment", "metric", "direction", "n", "mean", "std", "n_paired",
    "mean_diff", "diff_ci_low", "diff_ci_high", "win_rate", "p_wilcoxon",
]  # fmt: skip


class AggregateError(ValueError):
    """An input of the aggregation is missing or malformed (the message names the file)."""


@dataclass(frozen=True)
class AggregateConfig:
    """Which methods to aggregate, which one is the baseline, the bootstrap settings and
    the declared family of tests (primary endpoint, final variants, alpha)."""

    methods: tuple[str, ...]
    baseline: str = BASELINE
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("no methods given")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods repeated: {','.join(self.methods)}")
        if self.baseline not in self.methods:
            raise ValueError(f"baseline {self.baseline!r} is not among the methods")

    @property
    def variants(self) -> tuple[str, ...]:
        """Every method except the baseline, in the given order."""
        return tuple(m for m in self.methods if m != self.baseline)


def _metric_order(names: Iterable[str]) -> list[str]:
    known = list(METRICS)
    return sorted(set(names), key=lambda m: (known.index(m) if m in known else len(known), m))


def _value(value: Any) -> float:
    return math.nan if value is None else float(value)


def records_to_rows(data: dict[str, Any], path: Path) -> list[tuple[Any, ...]]:
    """Flatten one per-video metrics record into long-table rows (``frame`` None for aggregates)."""
    where = f"{path} (video {data.get('video')!r})"
    for key in ("schema", "video", "method", "segments"):
        if key not in data:
            raise AggregateError(f"{where}: missing key {key!r}")
    if data["schema"] != SCHEMA:
        raise AggregateError(f"{where}: schema {data['schema']!r}, expected {SCHEMA!r}")
    head = (data["video"], data.get("class") or "", data["method"], data.get("lpips_backbone", ""))
    rows: list[tuple[Any, ...]] = []
    for segment in SEGMENTS:
        block = data["segments"].get(segment)
        if block is None:
            raise AggregateError(f"{where}: missing segment {segment!r}")
        frames = block["frames"]
        for metric, values in block["per_frame"].items():
            if len(values) != len(frames):
                raise AggregateError(
                    f"{where}: {segment}.{metric} has {len(values)} values for {len(frames)} frames"
                )
            rows.extend(
                (*head, segment, metric, f, _value(v)) for f, v in zip(frames, values, strict=True)
            )
        rows.extend(
            (*head, segment, metric, None, _value(v)) for metric, v in block["aggregates"].items()
        )
    return rows


def read_metrics_file(path: Path, method: str) -> list[dict[str, Any]]:
    """The per-video records of one ``sora-tta evaluate`` output, checked to belong where
    the file lies (folder = method, file stem = class)."""
    try:
        data = read_json(path)
    except ValueError as err:
        raise AggregateError(str(err)) from err
    if not isinstance(data, dict):
        raise AggregateError(f"{path}: expected a JSON object")
    if data.get("schema") != FILE_SCHEMA:
        raise AggregateError(f"{path}: schema {data.get('schema')!r}, expected {FILE_SCHEMA!r}")
    if data.get("method") != method or data.get("class") != path.stem:
        raise AggregateError(
            f"{path}: holds method {data.get('method')!r}, class {data.get('class')!r}; "
            f"expected {method!r}, {path.stem!r}"
        )
    records = data.get("records")
    if not isinstance(records, list):
        raise AggregateError(f"{path}: 'records' must be a list")
    for record in records:
        if not isinstance(record, dict):
            raise AggregateError(f"{path}: every record must be a JSON object")
        if record.get("method") != method or record.get("class") != path.stem:
            raise AggregateError(
                f"{path}: record of video {record.get('video')!r} holds method "
                f"{record.get('method')!r}, class {record.get('class')!r}"
            )
    return records


def collect_long_table(
    metrics_dir: str | os.PathLike[str],
    methods: Sequence[str],
    videos: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read the ``{metrics_dir}/{method}/{class}.json`` files into the long table.

    With ``videos`` (video id -> class, the manifest's usable rows) only the files of those
    classes are read and only those videos' records kept: a video the manifest no longer
    lists as usable leaves the tables even when its old record is still on disk. Without,
    every ``*.json`` file is read. Raises :class:`AggregateError` when a method has no
    records, a video appears twice, or a file is missing, malformed or does not belong
    where it lies.
    """
    rows: list[tuple[Any, ...]] = []
    for method in methods:
        folder = Path(metrics_dir) / method
        if videos is None:
            paths = sorted(folder.glob("*.json"))
        else:
            paths = [folder / f"{name}.json" for name in sorted(set(videos.values()))]
            missing = [str(path) for path in paths if not path.is_file()]
            if missing:
                raise AggregateError(f"metrics files missing: {', '.join(missing)}")
        seen: dict[str, Path] = {}
        for path in paths:
            for record in read_metrics_file(path, method):
                video = record.get("video")
                if videos is not None and video not in videos:
                    continue
                if video in seen:
                    raise AggregateError(f"{path}: video {video!r} is also in {seen[video]}")
                seen[video] = path
                rows.extend(records_to_rows(record, path))
        if not seen:
            raise AggregateError(
                f"{folder}: no per-video metrics (*.json files of sora-tta evaluate)"
            )
    long = pd.DataFrame(rows, columns=LONG_COLUMNS)
    long["frame"] = long["frame"].astype("Int64")
    return long


def read_manifest_classes(path: str | os.PathLike[str]) -> dict[str, str]:
    """Map video id to class name from the manifest CSV (columns found by common names)."""
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise AggregateError(f"{path}: cannot read manifest ({err})") from err
    video_col = next((c for c in ("video", "video_id", "id") if c in table.columns), None)
    class_col = next((c for c in ("class", "class_name", "label") if c in table.columns), None)
    if video_col is None or class_col is None:
        raise AggregateError(f"{path}: manifest needs a video column and a class column")
    if "status" in table.columns and (table["status"] == "ok").any():
        table = table[table["status"] == "ok"]
    return dict(zip(table[video_col], table[class_col].fillna(""), strict=True))


def read_manifest_roles(path: str | os.PathLike[str]) -> dict[str, str]:
    """Map each usable video id to its role (``test``/``validation``; ``test`` when the
    manifest has no ``role`` column)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise AggregateError(f"{path}: cannot read manifest ({err})") from err
    video_col = next((c for c in ("video", "video_id", "id") if c in table.columns), None)
    if video_col is None:
        raise AggregateError(f"{path}: manifest needs a video column")
    if "status" in table.columns and (table["status"] == "ok").any():
        table = table[table["status"] == "ok"]
    roles = table["role"] if "role" in table.columns else pd.Series("test", index=table.index)
    return dict(zip(table[video_col], roles.replace("", "test"), strict=True))


def per_video(long: pd.DataFrame) -> pd.DataFrame:
    """The aggregate rows of the long table (one value per video, method, segment, metric)."""
    return long[long["frame"].isna()].drop(columns="frame").reset_index(drop=True)


def lpips_backbones(long: pd.DataFrame, method: str) -> str:
    """The LPIPS backbone(s) used for ``method`` ("alexnet", "random", joined by "+")."""
    values = sorted(set(long.loc[long["method"] == method, "lpips_backbone"]))
    return "+".join(v for v in values if v) or "unknown"


def summary_table(long: pd.DataFrame, config: AggregateConfig) -> pd.DataFrame:
    """Per method, segment and metric: n, mean, std, median and bootstrap CI of the mean."""
    videos = per_video(long)
    rows = []
    for method in config.methods:
        backbone = lpips_backbones(long, method)
        sub = videos[videos["method"] == method]
        for segment in SEGMENTS:
            seg = sub[sub["segment"] == segment]
            for metric in _metric_order(seg["metric"]):
                values = seg.loc[seg["metric"] == metric, "value"].to_numpy()
                rows.append(
                    {
                        "method": method,
                        "segment": segment,
                        "metric": metric,
                        "direction": direction(metric),
                        **describe(values, config.bootstrap),
                        "lpips_backbone": backbone,
                    }
                )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _paired_values(
    videos: pd.DataFrame, method: str, baseline: str, segment: str, metric: str
) -> pd.DataFrame:
    """Per-video values of ``method`` and ``baseline`` on the videos both have (inner join)."""
    sel = videos[(videos["segment"] == segment) & (videos["metric"] == metric)]
    base = sel[sel["method"] == baseline].set_index("video")["value"].rename("baseline")
    other = sel[sel["method"] == method].set_index("video")[["class", "value"]]
    return other.rename(columns={"value": "method"}).join(base, how="inner")


def paired_rows(
    videos: pd.DataFrame, method: str, config: AggregateConfig, segment: str, metric: str
) -> dict[str, Any]:
    """One paired comparison (``method - baseline``) of one metric, with counts."""
    pairs = _paired_values(videos, method, config.baseline, segment, metric)
    dirn = direction(metric)
    result = paired_stats(
        pairs["method"].to_numpy(), pairs["baseline"].to_numpy(), dirn, config.bootstrap
    )
    kept = pairs.dropna()
    return {
        "n": result.n,
        "baseline_mean": float(kept["baseline"].mean()) if len(kept) else math.nan,
        "method_mean": float(kept["method"].mean()) if len(kept) else math.nan,
        "mean_diff": result.mean,
        "std_diff": result.std,
        "median_diff": result.median,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "wins": result.wins,
        "ties": result.ties,
        "losses": result.losses,
        "win_rate": result.win_rate,
        "p_wilcoxon": result.p_value,
        "verdict": verdict(result, dirn),
    }


def _paired_metrics(videos: pd.DataFrame, segment: str) -> list[str]:
    names = videos.loc[videos["segment"] == segment, "metric"]
    return [m for m in _metric_order(names) if not (m in METRICS and METRICS[m].gt_only)]


def paired_table(long: pd.DataFrame, config: AggregateConfig) -> pd.DataFrame:
    """For every variant and metric: paired difference to the baseline over shared videos."""
    videos = per_video(long)
    counts = videos.groupby("method")["video"].nunique()
    rows = []
    for method in config.variants:
        backbones = "+".join(
            sorted({lpips_backbones(long, method), lpips_backbones(long, config.baseline)})
        )
        shared = set(videos.loc[videos["method"] == method, "video"]) & set(
            videos.loc[videos["method"] == config.baseline, "video"]
        )
        for segment in SEGMENTS:
            for metric in _paired_metrics(videos, segment):
                rows.append(
                    {
                        "method": method,
                        "baseline": config.baseline,
                        "segment": segment,
                        "metric": metric,
                        "direction": direction(metric),
                        "n_method_videos": int(counts.get(method, 0)),
                        "n_baseline_videos": int(counts.get(config.baseline, 0)),
                        "n_shared_videos": len(shared),
                        **paired_rows(videos, method, config, segment, metric),
                        "lpips_backbone": backbones,
                    }
                )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def per_class_table(long: pd.DataFrame, config: AggregateConfig) -> pd.DataFrame:
    """Per class, method and directional metric: mean and, for variants, the paired difference."""
    videos = per_video(long)
    rows = []
    for cls in sorted(videos["class"].unique()):
        in_class = videos[videos["class"] == cls]
        for segment in SEGMENTS:
            metrics = [m for m in _paired_metrics(in_class, segment) if direction(m) != "none"]
            for metric in metrics:
                for method in config.methods:
                    sel = in_class[
                        (in_class["method"] == method)
                        & (in_class["segment"] == segment)
                        & (in_class["metric"] == metric)
                    ]
                    values = sel["value"].to_numpy(dtype=np.float64)
                    values = values[~np.isnan(values)]
                    row: dict[str, Any] = {
                        "class": cls,
                        "method": method,
                        "segment": segment,
                        "metric": metric,
                        "direction": direction(metric),
                        "n": int(values.size),
                        "mean": float(values.mean()) if values.size else math.nan,
                        "std": float(values.std(ddof=1)) if values.size > 1 else math.nan,
                    }
                    if method != config.baseline:
                        paired = paired_rows(in_class, method, config, segment, metric)
                        row.update(
                            n_paired=paired["n"],
                            mean_diff=paired["mean_diff"],
                            diff_ci_low=paired["ci_low"],
                            diff_ci_high=paired["ci_high"],
                            win_rate=paired["win_rate"],
                            p_wilcoxon=paired["p_wilcoxon"],
                        )
                    rows.append(row)
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def context_frames_of(long: pd.DataFrame) -> int:
    frames = long.loc[(long["segment"] == SEGMENT_CONTEXT) & long["frame"].notna(), "frame"]
    return int(frames.max()) if len(frames) else 0
