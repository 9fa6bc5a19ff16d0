"""How far adaptation moved each guidance branch, per method (``meta.json``
``branch_movement``, written by ``sora-tta generate`` for adapted runs).

The sampler evaluates the model in three branches (prompt + condition, negative + condition,
negative + zero condition) and combines them; adaptation acts in all three. This table shows,
per variant, the mean over videos of each branch's movement at the first sampling step, in
absolute terms and relative to the base model's velocity (definitions in
``sora_tta.tta.branches``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from sora_tta.evaluation.tables import AggregateConfig
from sora_tta.io import read_json

BRANCH_COLUMNS = [
    "method", "branch", "n", "abs_mean", "abs_median", "relative_mean", "relative_median",
]  # fmt: skip


def _movement(path: Path) -> dict[str, tuple[float, float]]:
    """``{branch: (abs, relative)}`` of one ``meta.json`` (empty when not recorded)."""
    try:
        meta = read_json(path)
    except ValueError:
        return {}  # the cost table reports unreadable metadata; nothing to add here
    moved = meta.get("branch_movement") if isinstance(meta, dict) else None
    if not isinstance(moved, dict):
        return {}
    absolute, relative = moved.get("abs") or {}, moved.get("relative") or {}
    out = {}
    for branch, value in absolute.items():
        rel = relative.get(branch)
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in (value, rel)):
            out[branch] = (float(value), float(rel))
    return out


def branch_table(
    long: pd.DataFrame, generations_dir: str | os.PathLike[str] | None, config: AggregateConfig
) -> pd.DataFrame:
    """Per variant and branch (in recorded order, ``guided`` last): n videos, mean and median
    of the absolute and relative movement, over the evaluated videos of that variant."""
    rows = []
    if generations_dir is None:
        return pd.DataFrame(rows, columns=BRANCH_COLUMNS)
    for method in config.variants:
        videos = sorted(set(long.loc[long["method"] == method, "video"]))
        found: dict[str, list[tuple[float, float]]] = {}
        for video in videos:
            path = Path(generations_dir) / method / video / "meta.json"
            if path.is_file():
                for branch, values in _movement(path).items():
                    found.setdefault(branch, []).append(values)
        for branch, values in found.items():
            data = np.array(values)
            rows.append(
                {
                    "method": method,
                    "branch": branch,
                    "n": len(values),
                    "abs_mean": float(data[:, 0].mean()),
                    "abs_median": float(np.median(data[:, 0])),
                    "relative_mean": float(data[:, 1].mean()),
                    "relative_median": float(np.median(data[:, 1])),
                }
            )
    return pd.DataFrame(rows, columns=BRANCH_COLUMNS)


def branches_markdown(table: pd.DataFrame) -> str:
    """The summary's section on branch movement ('' when no variant recorded it)."""
    if table.empty:
        return ""
    branches = list(dict.fromkeys(table["branch"]))
    lines = [
        "## Guidance branches moved by adaptation",
        "",
        "First sampling step, the run's noise: mean over videos of |v_adapted - v_base| "
        "relative to mean |v_base|, per branch of the sampler and for the guided update "
        "(branches.csv has absolute values and medians).",
        "",
        "| variant | " + " | ".join(branches) + " |",
        "| --- |" + " --- |" * len(branches),
    ]
    for method, sub in table.groupby("method", sort=False):
        values = dict(zip(sub["branch"], sub["relative_mean"], strict=True))
        cells = [f"{values[b]:.3g}" if b in values else "-" for b in branches]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
