"""Figures and the GIF strip from real evaluate -> aggregate outputs on synthetic clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sora_tta.evaluation.aggregate import OUTPUT_FILES, PAIRED_FILE_COLUMNS
from sora_tta.evaluation.plots import (
    FIGURE_FILES,
    PlotConfig,
    paired_differences,
    per_frame_matrix,
    per_frame_paired,
    plot_config_from_tables,
    plot_loss_curves,
    plot_per_frame,
    read_aggregate,
)
from sora_tta.evaluation.stats import BootstrapConfig
from sora_tta.evaluation.strip import choose_strip_videos, make_strip
from sora_tta.study.report_pages import RANDOM_LPIPS_LABEL

VIDEOS = {"v_A_g01_c01": "A", "v_A_g02_c01": "A", "v_B_g01_c01": "B"}
METHODS = ("baseline", "VAR1")
NOISE = {"baseline": 12, "VAR1": 6}  # VAR1 is closer to the ground truth
# Short clips keep the module fast; the 65/33 default is covered by test_evaluate_command.
FRAMES, CONTEXT = 17, 9


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, clip_maker, invoke) -> Path:
    """clips/, generations/ (with loss.csv for VAR1), metrics/ and aggregate/ for 3 videos."""
    root = tmp_path_factory.mktemp("pipeline")
    for i, video in enumerate(VIDEOS):
        gt = clip_maker.moving(i, frames=FRAMES)
        clip_maker.write(root / "clips" / f"{video}.mkv", gt)
        for method in METHODS:
            rng = np.random.default_rng(10 * i + len(method))
            noise = rng.integers(-NOISE[method], NOISE[method] + 1, gt.shape)
            gen = np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8)
            folder = root / "generations" / method / video
            clip_maker.write(folder / "video.mkv", gen)
            if method != "baseline":
                steps = np.arange(1, 11)
                pd.DataFrame({"step": steps, "loss": 1.0 / steps + 0.01 * i, "lr": 1e-4}).to_csv(
                    folder / "loss.csv", index=False
                )
    for method in METHODS:
        for cls in sorted(set(VIDEOS.values())):
            videos = [v for v, c in VIDEOS.items() if c == cls]
            generated = [str(root / "generations" / method / v / "video.mkv") for v in videos]
            invoke(
                ["evaluate",
                 "--generated", *generated,
                 "--reference", *(str(root / "clips" / f"{v}.mkv") for v in videos),
                 "--video-ids", *videos, "--method", method, "--class-name", cls,
                 "--out", str(root / "metrics" / method / f"{cls}.json"),
                 "--lpips-backbone", "random", "--device", "cpu",
                 "--num-frames", str(FRAMES), "--context-frames", str(CONTEXT)]
            )  # fmt: skip
    invoke(
        ["aggregate", "--metrics-dir", str(root / "metrics"), "--generations-dir",
         str(root / "generations"), "--methods", ",".join(METHODS), "--out-dir",
         str(root / "aggregate"), "--bootstrap", "500"]
    )  # fmt: skip
    return root


def _config(**kwargs) -> PlotConfig:
    return PlotConfig(METHODS, "baseline", BootstrapConfig(n_resamples=300), **kwargs)


def test_aggregate_of_real_metrics(pipeline: Path) -> None:
    assert sorted(p.name for p in (pipeline / "aggregate").iterdir()) == sorted(OUTPUT_FILES)
    paired = pd.read_csv(pipeline / "aggregate" / "paired.csv")
    psnr = paired[(paired.metric == "psnr") & (paired.segment == "continuation")].iloc[0]
    assert psnr.n == 3 and psnr.mean_diff > 0 and psnr.wins == 3  # less noise, higher PSNR
    assert "RANDOM backbone" in (pipeline / "aggregate" / "summary.md").read_text()


def test_plot_command_writes_every_figure(pipeline: Path, invoke) -> None:
    out = pipeline / "figures"
    argv = ["plot", "--aggregate-dir", str(pipeline / "aggregate"), "--generations-dir",
            str(pipeline / "generations"), "--clips-dir", str(pipeline / "clips"),
            "--out-dir", str(out), "--strip-videos", "2", "--bootstrap", "300"]  # fmt: skip
    assert invoke(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(FIGURE_FILES)
    for name in FIGURE_FILES:
        with Image.open(out / name) as image:
            assert image.size[0] > 100 and image.size[1] > 50
    with Image.open(out / "strip.gif") as gif:
        assert gif.n_frames == FRAMES
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert durations[CONTEXT] > durations[CONTEXT - 1] == durations[CONTEXT + 1]  # seam held


def test_per_frame_matrix_and_paired_differences(pipeline: Path) -> None:
    long, _, _ = read_aggregate(pipeline / "aggregate")
    frames, matrix = per_frame_matrix(long, "VAR1", "psnr")
    assert list(frames) == list(range(CONTEXT + 1, FRAMES + 1))
    assert matrix.shape == (3, FRAMES - CONTEXT)
    per_video = long[(long.method == "VAR1") & (long.metric == "psnr") & long.frame.isna()]
    per_video = per_video[per_video.segment == "continuation"].sort_values("video")
    assert np.allclose(matrix.mean(axis=1), per_video.value.to_numpy())
    diffs = paired_differences(long, "VAR1", "baseline", "psnr")
    assert diffs.shape == (3,) and np.all(diffs > 0)


def test_per_frame_plot_reports_methods(pipeline: Path, tmp_path: Path) -> None:
    long, _, _ = read_aggregate(pipeline / "aggregate")
    assert plot_per_frame(long, "lpips", _config(), tmp_path / "a.png") == list(METHODS)
    assert plot_per_frame(long, "nonexistent", _config(), tmp_path / "b.png") == []
    assert (tmp_path / "b.png").is_file()


def test_loss_curves_with_and_without_data(pipeline: Path, tmp_path: Path) -> None:
    assert plot_loss_curves(pipeline / "generations", _config(), tmp_path / "l.png") == ["VAR1"]
    empty = tmp_path / "no_generations"
    assert plot_loss_curves(empty, _config(), tmp_path / "none.png") == []
    assert (tmp_path / "none.png").is_file()


def test_strip_choice_spans_the_ranking(pipeline: Path) -> None:
    long, _, _ = read_aggregate(pipeline / "aggregate")
    chosen = choose_strip_videos(long, _config(strip_videos=3))
    assert sorted(v for v, _ in chosen) == sorted(VIDEOS)
    gains = [float(tag.split(": ")[1].split(" dB")[0]) for _, tag in chosen]
    assert gains == sorted(gains, reverse=True)
    assert len(choose_strip_videos(long, _config(strip_videos=2))) == 2
    assert choose_strip_videos(long, _config(strip_videos=0)) == []


def test_strip_without_clips_still_written(pipeline: Path, tmp_path: Path) -> None:
    long, _, _ = read_aggregate(pipeline / "aggregate")
    out = tmp_path / "strip.gif"
    assert make_strip(long, _config(), tmp_path / "none", tmp_path / "none", out) == []
    with Image.open(out) as gif:
        assert gif.n_frames == 1


def test_baseline_only_still_writes_every_figure(pipeline: Path, invoke, tmp_path: Path) -> None:
    agg, out = tmp_path / "agg", tmp_path / "fig"
    invoke(["aggregate", "--metrics-dir", str(pipeline / "metrics"), "--methods", "baseline",
         "--out-dir", str(agg), "--bootstrap", "200"])  # fmt: skip
    paired = pd.read_csv(agg / "paired.csv")
    assert paired.empty and list(paired.columns) == PAIRED_FILE_COLUMNS
    invoke(["plot", "--aggregate-dir", str(agg), "--generations-dir", str(pipeline / "generations"),
         "--clips-dir", str(pipeline / "clips"), "--out-dir", str(out), "--strip-videos", "1",
         "--bootstrap", "200"])  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted(FIGURE_FILES)
    assert "No adapted method" in (agg / "summary.md").read_text()


def test_plot_without_aggregate_is_a_clear_error(invoke, tmp_path: Path) -> None:
    from sora_tta.cli import CommandError

    with pytest.raises(CommandError, match=r"long\.csv: file not found"):
        invoke(["plot", "--aggregate-dir", str(tmp_path), "--generations-dir", str(tmp_path),
             "--clips-dir", str(tmp_path), "--out-dir", str(tmp_path / "f")])  # fmt: skip


def test_per_frame_paired_difference_and_random_lpips_label(pipeline: Path) -> None:
    """The per-frame paired effect is variant - baseline per video and frame; a run with the
    random LPIPS trunk says so on every LPIPS axis."""
    long, paired, _ = read_aggregate(pipeline / "aggregate")
    frames, diff = per_frame_paired(long, "VAR1", "baseline", "psnr")
    _, var = per_frame_matrix(long, "VAR1", "psnr")
    _, base = per_frame_matrix(long, "baseline", "psnr")
    assert list(frames) == list(range(CONTEXT + 1, FRAMES + 1))
    assert np.allclose(diff, var - base)
    config = plot_config_from_tables(long, paired, None, BootstrapConfig(n_resamples=100), 2)
    assert config.random_lpips
    assert (
        config.metric_label("lpips") == RANDOM_LPIPS_LABEL and config.metric_label("psnr") == "psnr"
    )
