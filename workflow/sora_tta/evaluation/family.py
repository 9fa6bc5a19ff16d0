"""Confirmatory statistics: the declared family, Holm-adjusted verdicts, the primary
endpoint, and the comparison per UCF-101 action type.

The paired table of :mod:`sora_tta.evaluation.tables` holds one raw Wilcoxon p-value per
(variant, segment, metric). :func:`apply_family` marks the rows of the declared family
(final variants x family metrics x family segments, see
:class:`~sora_tta.evaluation.stats.StatisticsConfig`), adjusts their p-values together
(Holm) and gives only them a better/worse verdict; every other row is descriptive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sora_tta.data.action_types import ACTION_TYPES, UNKNOWN_TYPE, action_type
from sora_tta.evaluation.definitions import direction
from sora_tta.evaluation.stats import (
    BootstrapConfig,
    PairedResult,
    StatisticsConfig,
    holm_adjust,
    paired_stats,
    verdict,
)
from sora_tta.evaluation.tables import PAIRED_COLUMNS, per_video
from sora_tta.study.variants import resolve_variant

#: Verdict of a comparison outside the declared family (reported, never tested).
NOT_TESTED = "not tested"
#: Columns of paired.csv: the paired table's and the family's.
FAMILY_PAIRED_COLUMNS = [*PAIRED_COLUMNS, "in_family", "primary", "p_holm", "family_size"]
PER_TYPE_COLUMNS = [
    "action_type", "method", "segment", "metric", "direction", "n_classes", "n",
    "baseline_mean", "method_mean", "mean_diff", "ci_low", "ci_high", "win_rate",
    "p_wilcoxon", "p_holm", "verdict", "note",
]  # fmt: skip


def family_variants(stats: StatisticsConfig, variants: Sequence[str]) -> tuple[str, ...]:
    """The final variants (method ids) that are compared confirmatorily."""
    if stats.final_variants is None:
        return tuple(variants)
    return tuple(resolve_variant(v, variants) for v in stats.final_variants)


def primary_variant(stats: StatisticsConfig, variants: Sequence[str]) -> str | None:
    """The method id of the primary endpoint's variant (``None`` without variants)."""
    if stats.primary_variant is not None:
        return resolve_variant(stats.primary_variant, variants)
    final = family_variants(stats, variants)
    return final[0] if final else None


def _result(row: pd.Series) -> PairedResult:
    """A paired-table row back as a :class:`PairedResult` (to re-judge its verdict)."""
    return PairedResult(
        n=int(row["n"]),
        mean=row["mean_diff"],
        std=row["std_diff"],
        median=row["median_diff"],
        ci_low=row["ci_low"],
        ci_high=row["ci_high"],
        wins=int(row["wins"]),
        ties=int(row["ties"]),
        losses=int(row["losses"]),
        win_rate=row["win_rate"],
        p_value=row["p_wilcoxon"],
    )


def apply_family(
    paired: pd.DataFrame, stats: StatisticsConfig, variants: Sequence[str]
) -> pd.DataFrame:
    """Add ``in_family``, ``primary``, ``family_size`` and ``p_holm`` to the paired table
    and judge the verdicts of the family's rows by their Holm-adjusted p-value.

    Rows outside the family keep their raw p-value and get the verdict
    :data:`NOT_TESTED`. The family is fixed by the configuration, not by the results;
    a member without a p-value (no shared videos) is not a test performed and does not
    count in ``family_size``.
    """
    out = paired.copy()
    final = set(family_variants(stats, variants))
    primary = primary_variant(stats, variants)
    directional = out["direction"].isin(["higher", "lower"])
    out["in_family"] = (
        out["method"].isin(final)
        & out["metric"].isin(stats.family_metrics)
        & out["segment"].isin(stats.family_segments)
        & directional
    )
    out["primary"] = (
        (out["method"] == primary)
        & (out["metric"] == stats.primary_metric)
        & (out["segment"] == stats.primary_segment)
    )
    raw = out["p_wilcoxon"].to_numpy(dtype=np.float64)
    members = np.flatnonzero(out["in_family"].to_numpy(dtype=bool))
    p_holm = np.full(len(out), np.nan)
    p_holm[members] = holm_adjust(raw[members])
    out["p_holm"] = p_holm
    out["family_size"] = int(np.sum(~np.isnan(raw[members])))
    out["verdict"] = [
        verdict(_result(row), row["direction"], stats.alpha, p_holm[i])
        if row["in_family"]
        else NOT_TESTED
        for i, (_, row) in enumerate(out.iterrows())
    ]
    return out[FAMILY_PAIRED_COLUMNS]


def primary_row(paired: pd.DataFrame) -> pd.Series | None:
    """The primary endpoint's row of a paired table after :func:`apply_family`."""
    if "primary" not in paired.columns:
        return None
    rows = paired[paired["primary"].astype(bool)]
    return rows.iloc[0] if len(rows) else None


def _type_row(
    pairs: pd.DataFrame, metric: str, bootstrap: BootstrapConfig
) -> tuple[PairedResult, dict[str, Any]]:
    kept = pairs.dropna(subset=["method", "baseline"])
    result = paired_stats(
        pairs["method"].to_numpy(), pairs["baseline"].to_numpy(), direction(metric), bootstrap
    )
    row = {
        "n_classes": int(kept["class"].nunique()),
        "n": result.n,
        "baseline_mean": float(kept["baseline"].mean()) if len(kept) else math.nan,
        "method_mean": float(kept["method"].mean()) if len(kept) else math.nan,
        "mean_diff": result.mean,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "win_rate": result.win_rate,
        "p_wilcoxon": result.p_value,
    }
    return result, row


def per_type_table(
    long: pd.DataFrame,
    variants: Sequence[str],
    baseline: str,
    stats: StatisticsConfig,
    bootstrap: BootstrapConfig | None = None,
) -> pd.DataFrame:
    """Paired differences per UCF-101 action type for the family's variants, metrics and
    segments, with ``n`` (paired videos) and ``n_classes`` per group.

    Groups with ``n >= min_group_n`` form a second family: their p-values are
    Holm-adjusted together and judged like the main family's. Smaller groups are
    reported with their effect and CI but get no verdict (``note`` says why).
    """
    bootstrap = bootstrap or BootstrapConfig()
    videos = per_video(long)
    videos = videos.assign(action_type=videos["class"].map(action_type))
    order = [*ACTION_TYPES, UNKNOWN_TYPE]
    present = [t for t in order if t in set(videos["action_type"])]
    rows: list[dict[str, Any]] = []
    results: list[PairedResult] = []
    for method in family_variants(stats, variants):
        for segment in stats.family_segments:
            for metric in stats.family_metrics:
                sel = videos[(videos["segment"] == segment) & (videos["metric"] == metric)]
                base = sel[sel["method"] == baseline].set_index("video")["value"]
                other = sel[sel["method"] == method].set_index("video")
                if other.empty or base.empty:
                    continue
                joined = other[["class", "action_type", "value"]].rename(
                    columns={"value": "method"}
                )
                joined = joined.join(base.rename("baseline"), how="inner")
                for kind in present:
                    pairs = joined[joined["action_type"] == kind]
                    result, values = _type_row(pairs, metric, bootstrap)
                    rows.append(
                        {
                            "action_type": kind,
                            "method": method,
                            "segment": segment,
                            "metric": metric,
                            "direction": direction(metric),
                            **values,
                        }
                    )
                    results.append(result)
    table = pd.DataFrame(rows, columns=[c for c in PER_TYPE_COLUMNS if c not in ("p_holm",)])
    directions = table["direction"].tolist()
    eligible = np.array(
        [
            r.n >= stats.min_group_n and d != "none"
            for r, d in zip(results, directions, strict=True)
        ],
        dtype=bool,
    )
    p_holm = np.full(len(table), np.nan)
    idx = np.flatnonzero(eligible)
    p_holm[idx] = holm_adjust(table["p_wilcoxon"].to_numpy(dtype=np.float64)[idx])
    table["p_holm"] = p_holm
    verdicts, notes = [], []
    for i, result in enumerate(results):
        if eligible[i]:
            verdicts.append(verdict(result, table["direction"].iat[i], stats.alpha, p_holm[i]))
            notes.append("")
        else:
            verdicts.append(NOT_TESTED)
            notes.append(f"n = {result.n} < {stats.min_group_n}: effect shown, no verdict")
    table["verdict"] = verdicts
    table["note"] = notes
    return table[PER_TYPE_COLUMNS]
