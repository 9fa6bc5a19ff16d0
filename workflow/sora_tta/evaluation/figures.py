"""Every figure of the study from the aggregate tables: the plots (``plots``) and the GIF
strip (``strip``), written by ``sora-tta plot``."""

from __future__ import annotations

import os
from pathlib import Path

from sora_tta.evaluation.plots import (
    FIGURE_FILES,
    PER_FRAME_PLOT_METRICS,
    plot_config_from_tables,
    plot_loss_curves,
    plot_paired_diff,
    plot_per_class,
    plot_per_frame,
    read_aggregate,
)
from sora_tta.evaluation.stats import BootstrapConfig
from sora_tta.evaluation.strip import make_strip


def run_plots(
    aggregate_dir: str | os.PathLike[str],
    generations_dir: str | os.PathLike[str],
    clips_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    baseline: str | None = None,
    bootstrap: BootstrapConfig | None = None,
    strip_videos: int = 3,
) -> dict[str, Path]:
    """Write every file of :data:`FIGURE_FILES` into ``out_dir`` and return their paths."""
    long, paired, per_class = read_aggregate(aggregate_dir)
    config = plot_config_from_tables(
        long, paired, baseline, bootstrap or BootstrapConfig(n_resamples=2000), strip_videos
    )
    out = Path(out_dir)
    paths = {name: out / name for name in FIGURE_FILES}
    for metric in PER_FRAME_PLOT_METRICS:
        plot_per_frame(long, metric, config, paths[f"per_frame_{metric}.png"])
    plot_paired_diff(long, config, paths["paired_diff.png"])
    plot_per_class(per_class, config, paths["per_class.png"])
    plot_loss_curves(generations_dir, config, paths["loss_curves.png"])
    make_strip(long, config, clips_dir, generations_dir, paths["strip.gif"])
    return paths
