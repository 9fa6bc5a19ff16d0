"""``summary.md``: the human-readable answer to "does adaptation help, and where"."""

from __future__ import annotations

import math

import pandas as pd

from sora_tta.evaluation.definitions import (
    PRIMARY_METRICS,
    PUBLISHED_METRICS,
    SEGMENT_CONTEXT,
    SEGMENT_CONTINUATION,
)
from sora_tta.evaluation.report_family import (
    design_markdown,
    family_markdown,
    per_type_markdown,
    primary_markdown,
    validation_markdown,
)
from sora_tta.evaluation.tables import (
    AggregateConfig,
    context_frames_of,
    lpips_backbones,
    per_video,
)


def _fmt(value: float, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def summary_markdown(
    long: pd.DataFrame,
    summary: pd.DataFrame,
    paired: pd.DataFrame,
    per_class: pd.DataFrame,
    cost: pd.DataFrame,
    config: AggregateConfig,
    expected_videos: int | None = None,
    per_type: pd.DataFrame | None = None,
    validation: tuple[pd.DataFrame, int, tuple[str, ...]] | None = None,
) -> str:
    """Human-readable answer to "does adaptation help, and where" from the tables.

    ``paired`` is the paired table after :func:`sora_tta.evaluation.family.apply_family`
    (verdicts judged by Holm-adjusted p-values of the declared family). ``validation`` is
    ``(paired table on the validation videos, their number, every variant)``."""
    b = config.bootstrap
    lines = ["# Test-time adaptation: evaluation summary", ""]
    lines.append(
        f"Continuation = generated frames after the {int(context_frames_of(long))} context frames. "
        f"Means with {b.confidence:.0%} percentile-bootstrap CIs ({b.n_resamples} resamples, "
        f"seed {b.seed}); paired differences are method - {config.baseline} on shared videos; "
        "p-values are two-sided Wilcoxon signed-rank, reported raw and Holm-adjusted over the "
        "declared family. PSNR is the mean of per-frame PSNR. Definitions: docs/metrics.md."
    )
    lines += primary_markdown(paired, config.statistics, config.baseline)
    if validation is not None:
        lines += design_markdown(config, *validation[1:], expected_videos)
    lines.append("")
    counts = per_video(long).groupby("method")["video"].nunique()
    count_text = ", ".join(f"{m}: {int(counts.get(m, 0))}" for m in config.methods)
    lines.append(f"Videos evaluated per method: {count_text}.")
    if expected_videos is not None and validation is not None and validation[1]:
        lines.append(
            f"The manifest lists {expected_videos} usable test videos and {validation[1]} "
            "usable validation videos."
        )
    elif expected_videos is not None:
        lines.append(f"The manifest lists {expected_videos} usable videos.")
    random = [m for m in config.methods if "random" in lpips_backbones(long, m)]
    if random:
        lines += [
            "",
            f"**Warning:** LPIPS for {', '.join(random)} was computed with a RANDOM backbone "
            "(test mode); those LPIPS values are not meaningful.",
        ]
    lines += ["", "## Per method (continuation)", ""]
    header = ["method", *[m for m in PRIMARY_METRICS], "context psnr"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in config.methods:
        cells = [method]
        for metric, segment in [(m, SEGMENT_CONTINUATION) for m in PRIMARY_METRICS] + [
            ("psnr", SEGMENT_CONTEXT)
        ]:
            row = summary[
                (summary["method"] == method)
                & (summary["segment"] == segment)
                & (summary["metric"] == metric)
            ]
            if row.empty:
                cells.append("n/a")
            else:
                r = row.iloc[0]
                cells.append(f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]")
        lines.append("| " + " | ".join(cells) + " |")
    lines += _paired_markdown(paired, config)
    lines += published_markdown(summary, paired, config)
    lines += family_markdown(paired, config.statistics)
    if per_type is not None:
        lines += per_type_markdown(per_type, config.statistics)
    if validation is not None and validation[1]:
        lines += validation_markdown(validation[0], config.baseline)
    lines += _cost_markdown(cost)
    return "\n".join(lines) + "\n"


def _paired_markdown(paired: pd.DataFrame, config: AggregateConfig) -> list[str]:
    lines = ["", f"## Does adaptation help? (paired vs {config.baseline}, continuation)", ""]
    if not config.variants:
        return [*lines, "No adapted method was given: nothing to compare."]
    cont = paired[paired["segment"] == SEGMENT_CONTINUATION] if len(paired) else paired
    for method in config.variants:
        sub = (
            cont[(cont["method"] == method) & cont["metric"].isin(PRIMARY_METRICS)]
            if len(cont)
            else cont
        )
        groups = {
            v: sorted(sub.loc[sub["verdict"] == v, "metric"])
            for v in ("better", "worse", "unclear", "same", "not tested")
        }
        text = "; ".join(f"{v} on {', '.join(ms)}" for v, ms in groups.items() if ms)
        lines.append(f"- **{method}**: {text or 'no paired data'}.")
    lines.append("")
    header = ["method", "metric", "better if", "n", "mean diff [CI]", "win rate", "p raw",
              "p Holm", "verdict"]  # fmt: skip
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in config.variants:
        for metric in PRIMARY_METRICS:
            row = paired[
                (paired["method"] == method)
                & (paired["segment"] == SEGMENT_CONTINUATION)
                & (paired["metric"] == metric)
            ]
            if row.empty:
                continue
            r = row.iloc[0]
            better = {"higher": "higher", "lower": "lower"}.get(r["direction"], "-")
            lines.append(
                f"| {method} | {metric} | {better} | {r['n']} | {_fmt(r['mean_diff'], 4)} "
                f"[{_fmt(r['ci_low'], 4)}, {_fmt(r['ci_high'], 4)}] | {_fmt(r['win_rate'], 2)} | "
                f"{_fmt(r['p_wilcoxon'], 4)} | {_fmt(r.get('p_holm', math.nan), 4)} | "
                f"{r['verdict']} |"
            )
    lines.append("")
    for method in config.variants:
        sub = paired[paired["method"] == method]
        if len(sub):
            r = sub.iloc[0]
            lines.append(
                f"- {method}: {int(r['n_shared_videos'])} videos shared with {config.baseline} "
                f"({method}: {int(r['n_method_videos'])}, {config.baseline}: "
                f"{int(r['n_baseline_videos'])}); only shared videos enter the paired statistics."
            )
    lines += [
        "",
        "Verdict: better/worse when the CI of the mean difference excludes 0 in that direction "
        f"and the Holm-adjusted Wilcoxon p < {config.statistics.alpha}, same when every "
        "difference is 0, else unclear; comparisons outside the declared family are "
        "'not tested'. "
        "flicker_err and seam_err are distances to the ground truth's own flicker and seam change.",
    ]
    return lines


def published_markdown(
    summary: pd.DataFrame, paired: pd.DataFrame, config: AggregateConfig
) -> list[str]:
    """The published table's definitions (continuation), labelled, beside the project's:
    per-method means [CI] and each variant's paired difference [CI]; no best-of-N."""
    lines = [
        "",
        "## Published definitions (continuation, for comparison with the published table)",
        "",
        "psnr_clip = PSNR of one MSE over all continuation frames (video level); ssim_skimage "
        "= SSIM with scikit-image's defaults (7x7 uniform window); tc_psnr = temporal "
        "consistency, mean PSNR between consecutive generated frames (higher = smoother, "
        "not closer to the truth: no direction). One sample per video and method: no "
        "best-of-N selection. Means [95% CI]; for variants, the paired difference to "
        f"{config.baseline} [CI] below.",
        "",
    ]
    header = ["method", *PUBLISHED_METRICS]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cont_summary = summary[summary["segment"] == SEGMENT_CONTINUATION]
    cont_paired = paired[paired["segment"] == SEGMENT_CONTINUATION] if len(paired) else paired
    for method in config.methods:
        cells = [method]
        for metric in PUBLISHED_METRICS:
            row = cont_summary[
                (cont_summary["method"] == method) & (cont_summary["metric"] == metric)
            ]
            r = row.iloc[0] if len(row) else None
            cells.append(
                "n/a"
                if r is None
                else f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
            )
        lines.append("| " + " | ".join(cells) + " |")
    for method in config.variants:
        cells = [f"{method} - {config.baseline}"]
        for metric in PUBLISHED_METRICS:
            sel = cont_paired[(cont_paired["method"] == method) & (cont_paired["metric"] == metric)]
            r = sel.iloc[0] if len(sel) else None
            cells.append(
                "n/a"
                if r is None
                else f"{_fmt(r['mean_diff'], 4)} [{_fmt(r['ci_low'], 4)}, {_fmt(r['ci_high'], 4)}]"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cost_markdown(cost: pd.DataFrame) -> list[str]:
    lines = ["", "## Cost (from generation metadata)", ""]
    if cost.empty:
        return [*lines, "No generation metadata (meta.json) found."]
    wanted = [
        "time_adapt_s",
        "time_sample_s",
        "time_total_s",
        "peak_memory_mb",
        "trainable_parameters",
    ]
    header = ["method", *wanted]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, sub in cost.groupby("method", sort=False):
        means = sub.set_index("quantity")["mean"]
        cells = [_fmt(means.get(q, math.nan), 1) for q in wanted[:-1]]
        params = means.get("trainable_parameters", math.nan)
        cells.append("n/a" if math.isnan(params) else f"{params:,.0f}")
        lines.append("| " + " | ".join([str(method), *cells]) + " |")
    lines += ["", "Means over videos; see cost.csv for median, min, max and counts."]
    return lines
