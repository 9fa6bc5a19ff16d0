"""Cost table from the generation metadata (``{generations_dir}/{method}/{video}/meta.json``).

Every key of ``meta.json`` is optional: what is present and numeric is summarised.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sora_tta.evaluation.tables import AggregateConfig, AggregateError
from sora_tta.io import read_json

COST_COLUMNS = [
    "method", "quantity", "n_videos", "n_meta", "n", "mean", "std", "median", "min", "max",
]  # fmt: skip
TIMING_ORDER = ("load", "encode", "adapt", "sample", "decode")


def read_generation_meta(path: Path) -> dict[str, float]:
    """Numeric cost quantities of one ``meta.json``; every key is optional.

    ``timings`` entries become ``time_<key>_s``; ``time_total_s`` is ``timings["total"]``
    when recorded, else the sum of the entries;
    ``peak_memory_mb``, ``trainable_parameters`` and ``final_loss`` are taken as is.
    """
    try:
        meta = read_json(path)
    except ValueError as err:
        raise AggregateError(str(err)) from err
    if not isinstance(meta, dict):
        raise AggregateError(f"{path}: expected a JSON object")

    def number(value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if math.isfinite(value) else None

    out: dict[str, float] = {}
    timings = meta.get("timings")
    if isinstance(timings, dict):
        for key, value in timings.items():
            if (v := number(value)) is not None:
                out[f"time_{key}_s"] = v
        if out and "time_total_s" not in out:  # generate records its own wall total
            out["time_total_s"] = sum(out.values())
    for key in ("peak_memory_mb", "trainable_parameters", "final_loss"):
        if (v := number(meta.get(key))) is not None:
            out[key] = v
    return out


def _quantity_order(name: str) -> tuple[int, str]:
    timing = [f"time_{k}_s" for k in TIMING_ORDER]
    fixed = [*timing, "time_total_s", "peak_memory_mb", "trainable_parameters", "final_loss"]
    if name in fixed:
        return fixed.index(name), name
    return len(TIMING_ORDER), name  # other timings right after the known ones


def cost_table(
    long: pd.DataFrame, generations_dir: str | os.PathLike[str] | None, config: AggregateConfig
) -> pd.DataFrame:
    """Per method and cost quantity: n (videos with the value), mean, std, median, min, max.

    Only the evaluated videos of each method are read; ``n_videos`` counts them
    and ``n_meta`` how many had a ``meta.json``.
    """
    rows = []
    for method in config.methods:
        evaluated = sorted(set(long.loc[long["method"] == method, "video"]))
        metas = []
        if generations_dir is not None:
            for video in evaluated:
                path = Path(generations_dir) / method / video / "meta.json"
                if path.is_file():
                    metas.append(read_generation_meta(path))
        quantities = sorted({q for meta in metas for q in meta}, key=_quantity_order)
        for quantity in quantities:
            values = np.array([m[quantity] for m in metas if quantity in m])
            rows.append(
                {
                    "method": method,
                    "quantity": quantity,
                    "n_videos": len(evaluated),
                    "n_meta": len(metas),
                    "n": int(values.size),
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if values.size > 1 else math.nan,
                    "median": float(np.median(values)),
                    "min": float(values.min()),
                    "max": float(values.max()),
                }
            )
    return pd.DataFrame(rows, columns=COST_COLUMNS)
