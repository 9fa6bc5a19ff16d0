"""Markdown blocks of ``summary.md`` for the confirmatory statistics: the primary endpoint,
the Holm-adjusted family and the comparison per UCF-101 action type."""

from __future__ import annotations

import math

import pandas as pd

from sora_tta.evaluation.definitions import PRIMARY_METRICS, SEGMENT_CONTINUATION
from sora_tta.evaluation.family import NOT_TESTED, family_variants, primary_row
from sora_tta.evaluation.stats import StatisticsConfig
from sora_tta.evaluation.tables import AggregateConfig


def _fmt(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def _effect(row: pd.Series, digits: int = 4) -> str:
    return (
        f"{_fmt(row['mean_diff'], digits)} [{_fmt(row['ci_low'], digits)}, "
        f"{_fmt(row['ci_high'], digits)}]"
    )


def primary_markdown(paired: pd.DataFrame, stats: StatisticsConfig, baseline: str) -> list[str]:
    """The declared primary endpoint: effect with CI first, then raw and Holm p, verdict."""
    lines = ["", "## Primary endpoint", ""]
    row = primary_row(paired)
    variant = row["method"] if row is not None else stats.primary_variant
    declared = (
        f"{stats.primary_metric} on the {stats.primary_segment}, "
        f"{variant or 'the first final variant'} - {baseline}"
    )
    if row is None:
        return [*lines, f"Declared: {declared}. No paired data for it: no verdict."]
    lines.append(
        f"Declared: {declared}. Mean paired difference **{_effect(row)}** "
        f"(n = {int(row['n'])} videos, win rate {_fmt(row['win_rate'], 2)}); "
        f"Wilcoxon p = {_fmt(row['p_wilcoxon'], 4)} raw, {_fmt(row['p_holm'], 4)} "
        f"Holm-adjusted over a family of {int(row['family_size'])} tests; "
        f"verdict: **{row['verdict']}** (alpha {stats.alpha})."
    )
    return lines


def family_markdown(paired: pd.DataFrame, stats: StatisticsConfig) -> list[str]:
    """The family's rows: effect [CI], raw p, Holm p, verdict; how the family is declared."""
    fam = paired[paired["in_family"].astype(bool)] if len(paired) else paired
    lines = ["", "## Confirmatory family (Holm-adjusted)", ""]
    if fam.empty:
        return [*lines, "No comparison of the declared family has data."]
    lines.append(
        f"Family: final variants x {', '.join(stats.family_metrics)} x "
        f"{', '.join(stats.family_segments)} = {int(fam['family_size'].iat[0])} tests. "
        f"Better/worse needs the bootstrap CI to exclude 0 and the Holm-adjusted p < "
        f"{stats.alpha}; every other comparison in paired.csv is descriptive "
        f"(verdict '{NOT_TESTED}')."
    )
    lines.append("")
    header = ["method", "segment", "metric", "n", "mean diff [CI]", "p raw", "p Holm", "verdict"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in fam.iterrows():
        mark = " (primary)" if bool(r["primary"]) else ""
        lines.append(
            f"| {r['method']} | {r['segment']} | {r['metric']}{mark} | {int(r['n'])} | "
            f"{_effect(r)} | {_fmt(r['p_wilcoxon'], 4)} | {_fmt(r['p_holm'], 4)} | "
            f"{r['verdict']} |"
        )
    return lines


def per_type_markdown(per_type: pd.DataFrame, stats: StatisticsConfig) -> list[str]:
    """Paired differences per UCF-101 action type, n per group; no verdict below min n."""
    lines = ["", "## Where? By UCF-101 action type (paired, final variants)", ""]
    if per_type.empty:
        return [*lines, "No paired data per action type."]
    lines.append(
        "Types of Soomro et al. (2012). Groups with fewer than "
        f"{stats.min_group_n} paired videos show their effect but get no verdict; the "
        "others are Holm-adjusted together. Per-class values stay in per_class.csv "
        "(one or two videos per class: no conclusions)."
    )
    lines.append("")
    header = ["method", "metric", "action type", "classes", "n", "mean diff [CI]", "p raw",
              "p Holm", "verdict"]  # fmt: skip
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in per_type.iterrows():
        why = r["note"] if isinstance(r["note"], str) and r["note"] else r["verdict"]
        lines.append(
            f"| {r['method']} | {r['segment']} {r['metric']} | {r['action_type']} | "
            f"{int(r['n_classes'])} | {int(r['n'])} | {_effect(r)} | "
            f"{_fmt(r['p_wilcoxon'], 4)} | {_fmt(r['p_holm'], 4)} | {why} |"
        )
    return lines


def design_markdown(
    config: AggregateConfig,
    n_validation: int,
    all_variants: tuple[str, ...],
    n_test: int | None,
) -> list[str]:
    """Which results are the headline (final variants on test) and which exploratory."""
    final = family_variants(config.statistics, config.variants)
    exploratory = [v for v in all_variants if v not in final]
    test = "the test selection" + (f" ({n_test} videos)" if n_test is not None else "")
    lines = [
        "",
        "## Headline and exploratory results",
        "",
        f"**Headline**: the final variant(s) {', '.join(final) or '(none)'} vs "
        f"{config.baseline} on {test}; every table above and below is on these videos "
        "unless it says otherwise.",
    ]
    if n_validation:
        lines.append(
            f"**Exploratory**: every variant on the validation selection ({n_validation} "
            "videos, UCF-101 groups disjoint from the test list), where variants were "
            f"explored and chosen; effects only, no verdicts. Exploratory variants "
            f"({', '.join(exploratory) or 'none'}) never ran on a test video."
        )
    else:
        lines.append(
            "No validation selection is configured: variants other than the final ones ran "
            "on the test videos and are reported as exploratory (not tested)."
        )
    return lines


def validation_markdown(val_paired: pd.DataFrame, baseline: str) -> list[str]:
    """Every variant vs the baseline on the validation videos: effects, raw p, no verdict."""
    lines = [
        "",
        f"## Exploratory: every variant vs {baseline} on the validation selection",
        "",
        "Effect [95% CI] and raw Wilcoxon p of the headline metrics (continuation); these "
        "comparisons chose the final variants and are not tested.",
        "",
    ]
    header = ["method", "metric", "n", "mean diff [CI]", "p raw"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cont = (
        val_paired[val_paired["segment"] == SEGMENT_CONTINUATION] if len(val_paired) else val_paired
    )
    for _, r in cont.iterrows():
        if r["metric"] not in PRIMARY_METRICS:
            continue
        lines.append(
            f"| {r['method']} | {r['metric']} | {int(r['n'])} | {_effect(r)} | "
            f"{_fmt(r['p_wilcoxon'], 4)} |"
        )
    return lines
