"""Figures from the aggregate tables, the loss curves and the clips.

Matplotlib is used through :class:`matplotlib.figure.Figure` (Agg canvas, no
pyplot state). Every figure in :data:`FIGURE_FILES` is always written, with a
note inside when its data is absent, so a workflow can declare them all as outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sora_tta.evaluation.definitions import (
    PRIMARY_METRICS,
    SEGMENT_CONTINUATION,
    direction,
    label,
)
from sora_tta.evaluation.stats import BootstrapConfig, bootstrap_mean_ci
from sora_tta.evaluation.tables import AggregateError, context_frames_of, per_video
from sora_tta.io import atomic_path
from sora_tta.study.report_pages import FIGURES, RANDOM_LPIPS_LABEL
from sora_tta.study.variants import BASELINE

PER_FRAME_PLOT_METRICS = ("psnr", "ssim", "lpips")
PER_CLASS_PLOT_METRICS = ("psnr", "ssim", "lpips")
#: Every file ``sora-tta plot`` writes: the report's figures and the GIF strip.
FIGURE_FILES = (*(f"{name}.png" for name in FIGURES), "strip.gif")
DPI = 120


@dataclass(frozen=True)
class PlotConfig:
    """Methods in display order, the baseline, bootstrap settings for bands, strip size."""

    methods: tuple[str, ...]
    baseline: str
    bootstrap: BootstrapConfig = field(default_factory=lambda: BootstrapConfig(n_resamples=2000))
    strip_videos: int = 3
    #: LPIPS came from the seeded random trunk: every LPIPS axis says so
    random_lpips: bool = False

    def metric_label(self, metric: str) -> str:
        """``metric``, marked when it is the random-backbone LPIPS."""
        return RANDOM_LPIPS_LABEL if metric == "lpips" and self.random_lpips else metric

    @property
    def variants(self) -> tuple[str, ...]:
        """Every method except the baseline."""
        return tuple(m for m in self.methods if m != self.baseline)


def _colors(methods: tuple[str, ...]) -> dict[str, str]:
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {m: cycle[i % len(cycle)] for i, m in enumerate(methods)}


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` to ``path`` atomically (format from the suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=DPI, bbox_inches="tight")


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()


def _better(metric: str) -> str:
    dirn = direction(metric)
    return {"higher": "higher is better", "lower": "lower is better"}.get(dirn, "")


def per_frame_matrix(long: pd.DataFrame, method: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Continuation frames (1-based clip numbers) and a ``(videos, frames)`` value matrix.

    Videos missing any frame are left out so every column has the same videos.
    """
    sel = long[
        (long["method"] == method)
        & (long["segment"] == SEGMENT_CONTINUATION)
        & (long["metric"] == metric)
        & long["frame"].notna()
    ]
    if sel.empty:
        return np.zeros(0, dtype=int), np.zeros((0, 0))
    table = sel.pivot_table(index="video", columns="frame", values="value", aggfunc="first")
    table = table.dropna()
    return table.columns.to_numpy(dtype=int), table.to_numpy(dtype=np.float64)


def per_frame_paired(
    long: pd.DataFrame, method: str, baseline: str, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Continuation frames and the ``(videos, frames)`` matrix of ``method - baseline`` on the
    videos both have complete (the paired per-frame effect)."""
    frames_m, _ = per_frame_matrix(long, method, metric)
    sel = long[
        long["method"].isin([method, baseline])
        & (long["segment"] == SEGMENT_CONTINUATION)
        & (long["metric"] == metric)
        & long["frame"].notna()
    ]
    if sel.empty or frames_m.size == 0:
        return np.zeros(0, dtype=int), np.zeros((0, 0))
    wide = sel.pivot_table(
        index="video", columns=["method", "frame"], values="value", aggfunc="first"
    )
    if method not in wide.columns.levels[0] or baseline not in wide.columns.levels[0]:
        return np.zeros(0, dtype=int), np.zeros((0, 0))
    diff = (wide[method] - wide[baseline]).dropna()
    return diff.columns.to_numpy(dtype=int), diff.to_numpy(dtype=np.float64)


def plot_per_frame(long: pd.DataFrame, metric: str, config: PlotConfig, out: Path) -> list[str]:
    """Top: mean ``metric`` per continuation frame for each method with bootstrap CI bands.
    Bottom: the paired difference of each variant to the baseline per frame (mean over the
    shared videos, bootstrap CI band, zero line). Returns the methods drawn on top."""
    fig = Figure(figsize=(7, 6.5), layout="constrained")
    ax, diff_ax = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1])
    context = context_frames_of(long)
    colors = _colors(config.methods)
    conf = f"{config.bootstrap.confidence:.0%}"
    name = config.metric_label(metric)
    drawn = []
    for method in config.methods:
        frames, matrix = per_frame_matrix(long, method, metric)
        if matrix.size == 0:
            continue
        x = frames - context
        low, high = bootstrap_mean_ci(matrix, config.bootstrap)
        ax.plot(x, matrix.mean(axis=0), color=colors[method], label=f"{method} (n={len(matrix)})")
        ax.fill_between(x, low, high, color=colors[method], alpha=0.2, linewidth=0)
        drawn.append(method)
    if not drawn:
        _note(ax, f"no per-frame {metric} values in long.csv")
    else:
        ax.set_ylabel(
            name if config.random_lpips and metric == "lpips" else label(metric).split(",")[0]
        )
        ax.set_title(f"{name} per generated frame: mean, {conf} bootstrap CI ({_better(metric)})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    paired = []
    for method in config.variants:
        frames, diff = per_frame_paired(long, method, config.baseline, metric)
        if diff.size == 0:
            continue
        x = frames - context
        low, high = bootstrap_mean_ci(diff, config.bootstrap)
        diff_ax.plot(x, diff.mean(axis=0), color=colors[method], label=f"{method} (n={len(diff)})")
        diff_ax.fill_between(x, low, high, color=colors[method], alpha=0.2, linewidth=0)
        paired.append(method)
    if not paired:
        _note(diff_ax, f"no variant shares complete per-frame {metric} with {config.baseline}")
    else:
        diff_ax.axhline(0.0, color="black", linewidth=0.8)
        diff_ax.set_ylabel(f"method - {config.baseline}")
        diff_ax.set_title(
            f"paired difference to {config.baseline} per frame: mean over shared videos, "
            f"{conf} bootstrap CI",
            fontsize="medium",
        )
        diff_ax.grid(alpha=0.3)
        diff_ax.legend(fontsize="small")
    diff_ax.set_xlabel(f"generated frame index (clip frame = index + {context})")
    save_figure(fig, out)
    return drawn


def paired_differences(
    long: pd.DataFrame, method: str, baseline: str, metric: str, segment: str = SEGMENT_CONTINUATION
) -> np.ndarray:
    """Per-video ``method - baseline`` values of one metric over shared videos (NaNs dropped)."""
    videos = per_video(long)
    sel = videos[(videos["segment"] == segment) & (videos["metric"] == metric)]
    wide = sel.pivot_table(index="video", columns="method", values="value", aggfunc="first")
    if method not in wide.columns or baseline not in wide.columns:
        return np.zeros(0)
    diff = (wide[method] - wide[baseline]).dropna()
    return diff.to_numpy(dtype=np.float64)


def plot_paired_diff(long: pd.DataFrame, config: PlotConfig, out: Path) -> None:
    """Distribution of per-video paired differences to the baseline, one panel per metric."""
    metrics = PRIMARY_METRICS
    fig = Figure(figsize=(3.2 * len(metrics), 4), layout="constrained")
    axes = fig.subplots(1, len(metrics))
    colors = _colors(config.methods)
    jitter = np.random.default_rng(0)
    for ax, metric in zip(axes, metrics, strict=True):
        data = [(m, paired_differences(long, m, config.baseline, metric)) for m in config.variants]
        data = [(m, d) for m, d in data if d.size]
        if not data:
            _note(ax, f"{metric}: no variant shares videos with {config.baseline}")
            continue
        positions = np.arange(len(data))
        ax.boxplot([d for _, d in data], positions=positions, widths=0.5, showfliers=False)
        for pos, (method, diffs) in zip(positions, data, strict=True):
            xs = pos + jitter.uniform(-0.15, 0.15, diffs.size)
            ax.scatter(xs, diffs, s=10, color=colors[method], alpha=0.7, zorder=3)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(positions, [m for m, _ in data], rotation=30, ha="right")
        ax.set_title(f"{config.metric_label(metric)}\n({_better(metric)})", fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"method - {config.baseline}, per video")
    fig.suptitle("Paired differences to the baseline (continuation frames)")
    save_figure(fig, out)


def plot_per_class(per_class: pd.DataFrame, config: PlotConfig, out: Path) -> None:
    """Per-class mean paired difference (with CI) per variant; absolute means if no variant."""
    metrics = PER_CLASS_PLOT_METRICS
    sel = per_class[per_class["segment"] == SEGMENT_CONTINUATION] if len(per_class) else per_class
    classes = sorted(sel["class"].unique()) if len(sel) else []
    methods = config.variants or config.methods
    height = max(3.0, 0.25 * len(classes) * len(methods) + 1.5)
    fig = Figure(figsize=(4 * len(metrics), height), layout="constrained")
    axes = fig.subplots(1, len(metrics), sharey=True)
    colors = _colors(config.methods)
    width = 0.8 / len(methods)
    y = np.arange(len(classes))
    for ax, metric in zip(axes, metrics, strict=True):
        if not classes:
            _note(ax, "no per-class values")
            continue
        for i, method in enumerate(methods):
            rows = sel[(sel["method"] == method) & (sel["metric"] == metric)].set_index("class")
            rows = rows.reindex(classes)
            if config.variants:
                values = rows["mean_diff"].to_numpy(dtype=float)
                err = np.abs(
                    np.vstack([values - rows["diff_ci_low"], rows["diff_ci_high"] - values])
                )
            else:
                values = rows["mean"].to_numpy(dtype=float)
                err = (rows["std"] / np.sqrt(rows["n"].clip(lower=1))).to_numpy(dtype=float)
            ax.barh(
                y + (i - (len(methods) - 1) / 2) * width,
                values,
                height=width,
                xerr=np.nan_to_num(err),
                color=colors[method],
                label=method,
                capsize=2,
            )
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        if config.variants:
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.set_xlabel(
                f"{config.metric_label(metric)}: mean paired diff to {config.baseline}, "
                f"{config.bootstrap.confidence:.0%} CI ({_better(metric)})"
            )
        else:
            ax.set_xlabel(f"{config.metric_label(metric)}: mean, error bar = standard error")
        ax.grid(axis="x", alpha=0.3)
    if classes:
        axes[0].set_yticks(y, classes)
        axes[0].invert_yaxis()
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(
            handles, labels, loc="outside lower center", ncols=len(methods), fontsize="small"
        )
    fig.suptitle(
        f"Per class: mean paired difference to {config.baseline} (continuation frames)"
        if config.variants
        else "Per class: mean per method (continuation frames)"
    )
    save_figure(fig, out)


def read_loss_curves(generations_dir: str | os.PathLike[str], method: str) -> pd.DataFrame:
    """Loss per step (rows) and video (columns) from ``{generations_dir}/{method}/*/loss.csv``."""
    curves = {}
    for path in sorted(Path(generations_dir, method).glob("*/loss.csv")):
        try:
            table = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise AggregateError(f"{path}: cannot read loss curve ({err})") from err
        if not {"step", "loss"} <= set(table.columns):
            raise AggregateError(f"{path}: loss curve needs columns step and loss")
        if table.empty:
            continue
        curves[path.parent.name] = table.groupby("step")["loss"].mean()
    return pd.DataFrame(curves).sort_index()


def plot_loss_curves(
    generations_dir: str | os.PathLike[str], config: PlotConfig, out: Path
) -> list[str]:
    """Median and interquartile range over videos of the adaptation loss per step, per method.

    Returns the methods drawn; without any loss curve the figure holds a note saying so.
    """
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(config.methods)
    drawn = []
    for method in config.variants:
        curves = read_loss_curves(generations_dir, method)
        if curves.empty:
            continue
        steps = curves.index.to_numpy()
        values = curves.to_numpy(dtype=np.float64)
        q25, median, q75 = np.nanquantile(values, [0.25, 0.5, 0.75], axis=1)
        ax.plot(steps, median, color=colors[method], label=f"{method} (n={curves.shape[1]})")
        ax.fill_between(steps, q25, q75, color=colors[method], alpha=0.2, linewidth=0)
        drawn.append(method)
    if not drawn:
        _note(
            ax, "No adaptation loss curves (loss.csv) found for any TTA method:\nnothing to plot."
        )
    else:
        ax.set_xlabel("adaptation step")
        ax.set_ylabel("flow-matching loss")
        ax.set_title("Adaptation loss: median over videos, band = interquartile range")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    save_figure(fig, out)
    return drawn


def read_aggregate(
    aggregate_dir: str | os.PathLike[str],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read ``long.csv``, ``paired.csv`` and ``per_class.csv`` written by ``sora-tta aggregate``."""
    tables = []
    for name in ("long.csv", "paired.csv", "per_class.csv"):
        path = Path(aggregate_dir) / name
        if not path.is_file():
            raise AggregateError(f"{path}: file not found (run sora-tta aggregate first)")
        try:
            table = pd.read_csv(
                path, dtype={"video": str, "class": str, "method": str, "baseline": str}
            )
        except pd.errors.EmptyDataError:
            table = pd.DataFrame()
        except (OSError, pd.errors.ParserError) as err:
            raise AggregateError(f"{path}: cannot read ({err})") from err
        if "class" in table.columns:
            table["class"] = table["class"].fillna("")
        tables.append(table)
    long, paired, per_class = tables
    if long.empty:
        raise AggregateError(f"{Path(aggregate_dir) / 'long.csv'}: no rows")
    long["frame"] = long["frame"].astype("Int64")
    return long, paired, per_class


def plot_config_from_tables(
    long: pd.DataFrame,
    paired: pd.DataFrame,
    baseline: str | None,
    bootstrap: BootstrapConfig,
    strip_videos: int,
) -> PlotConfig:
    """Methods in long-table order; the baseline from ``paired.csv`` unless given."""
    methods = tuple(dict.fromkeys(long["method"]))
    if baseline is None:
        baseline = (
            str(paired["baseline"].iloc[0]) if "baseline" in paired and len(paired) else BASELINE
        )
    if baseline not in methods:
        raise AggregateError(f"baseline {baseline!r} not among the methods in long.csv: {methods}")
    random_lpips = (
        "lpips_backbone" in long and long["lpips_backbone"].astype(str).str.contains("random").any()
    )
    return PlotConfig(methods, baseline, bootstrap, strip_videos, bool(random_lpips))
