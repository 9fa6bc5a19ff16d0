"""Generations that failed deterministically (divergence, non-finite samples): their table,
the count per method, and the pairs the paired statistics lose because of them.

``sora-tta evaluate`` records such a video under ``failures`` of its metrics file instead of
evaluating it; the tables then go ahead without it for that method.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sora_tta.io import read_json

FAILURE_COLUMNS = ("method", "class", "video", "stage", "error")
DROPPED_COLUMNS = ("method", "n_dropped_pairs", "dropped_pairs")


def generation_outcome(path: str) -> tuple[dict[str, Any] | None, str]:
    """(the failure recorded by a generation, None if it succeeded; the path of its video).

    ``path`` is a video.mkv, or the generation's meta.json (its video lies next to it)."""
    from sora_tta.layout import META_FILE, VIDEO_FILE
    from sora_tta.tta.outputs import OUTCOME_FAILED

    if Path(path).name != META_FILE:
        return None, path
    try:
        meta = read_json(path)
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from err
    if isinstance(meta, dict) and meta.get("outcome") == OUTCOME_FAILED:
        return {"stage": meta.get("stage"), "error": meta.get("error")}, path
    return None, str(Path(path).with_name(VIDEO_FILE))


def read_failures(
    metrics_dir: str | os.PathLike[str],
    methods: Sequence[str],
    videos: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Every failure recorded in ``{metrics_dir}/{method}/{class}.json`` (of ``videos``,
    video id -> class, when given), one row each (:data:`FAILURE_COLUMNS`)."""
    rows = []
    for method in methods:
        folder = Path(metrics_dir) / method
        if videos is None:
            paths = sorted(folder.glob("*.json"))
        else:
            paths = [folder / f"{c}.json" for c in sorted(set(videos.values()))]
        for path in paths:
            if not path.is_file():
                continue
            data = read_json(path)
            for failure in data.get("failures", []) if isinstance(data, dict) else []:
                if videos is not None and failure.get("video") not in videos:
                    continue
                rows.append(
                    (method, path.stem, failure.get("video"), failure.get("stage"),
                     failure.get("error"))
                )  # fmt: skip
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS)


def failure_counts(failures: pd.DataFrame, methods: Sequence[str]) -> dict[str, int]:
    """Failed videos per method (every method listed, 0 when none failed)."""
    counts = failures.groupby("method")["video"].nunique()
    return {method: int(counts.get(method, 0)) for method in methods}


def dropped_pairs(failures: pd.DataFrame, variants: Sequence[str], baseline: str) -> pd.DataFrame:
    """Per variant: how many (baseline, variant) pairs the failures remove, and why."""
    failed = {m: set(failures.loc[failures["method"] == m, "video"]) for m in [baseline, *variants]}
    rows = []
    for variant in variants:
        lost = failed[baseline] | failed[variant]
        reasons = []
        if failed[variant]:
            reasons.append(f"{len(failed[variant])} failed with {variant}")
        if failed[baseline]:
            reasons.append(f"{len(failed[baseline])} failed with {baseline}")
        both = failed[variant] & failed[baseline]
        if both:
            reasons.append(f"{len(both)} with both")
        rows.append((variant, len(lost), "; ".join(reasons)))
    return pd.DataFrame(rows, columns=DROPPED_COLUMNS)


def failures_markdown(failures: pd.DataFrame, methods: Sequence[str], dropped: pd.DataFrame) -> str:
    """The report's section on failed generations ('' when none failed)."""
    if failures.empty:
        return ""
    counts = failure_counts(failures, methods)
    lines = ["## Failed generations", "",
             "Deterministic failures (divergence, non-finite samples) are final results: "
             "the video is left out for that method, and its pairs with the baseline are "
             "dropped from the paired statistics.", "",
             "| method | failed videos | pairs dropped |", "| --- | --- | --- |"]  # fmt: skip
    by_variant = dict(zip(dropped["method"], dropped["n_dropped_pairs"], strict=True))
    for method in methods:
        lines.append(f"| {method} | {counts[method]} | {by_variant.get(method, '-')} |")
    lines += ["", "| method | class | video | stage | error |", "| --- | --- | --- | --- | --- |"]
    for row in failures.itertuples(index=False):
        lines.append(f"| {row.method} | {row[1]} | {row.video} | {row.stage} | {row.error} |")
    return "\n".join(lines) + "\n"
