"""Aggregation of a handful of fake per-video results into the expected tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sora_tta.cli import CommandError
from sora_tta.evaluation.aggregate import OUTPUT_FILES, run_aggregate
from sora_tta.evaluation.cost import read_generation_meta
from sora_tta.evaluation.stats import BootstrapConfig
from sora_tta.evaluation.tables import AggregateConfig, AggregateError, collect_long_table

BASE_PSNR = {"v1": 20.0, "v2": 22.0, "v3": 24.0, "v4": 26.0}
VAR_PSNR = {"v1": 21.0, "v2": 22.0, "v3": 27.0, "v4": 25.0, "v5": 30.0}  # v5: no baseline
BASE_LPIPS = {"v1": 0.3, "v2": 0.3, "v3": 0.3, "v4": 0.3}
VAR_LPIPS = {"v1": 0.2, "v2": 0.3, "v3": 0.4, "v4": 0.1, "v5": 0.2}
CLASSES = {"v1": "A", "v2": "A", "v3": "B", "v4": "B", "v5": "B"}


def _values(psnr: float, lpips: float) -> dict[str, float | None]:
    return {
        "psnr": psnr,
        "psnr_clip": psnr - 1.0,
        "mse": 10.0,
        "ssim": 0.5,
        "ssim_skimage": 0.4,
        "tc_psnr": 30.0,
        "lpips": lpips,
        "flicker_gen": 3.0,
        "flicker_gt": 2.0,
        "flicker_ratio": 1.5,
        "flicker_diff": 1.0,
        "flicker_err": 1.0,
        "seam_gen": 4.0,
        "seam_gt": 2.0,
        "seam_ratio": None,
        "seam_diff": 2.0,
        "seam_err": 2.0,
        "seam_internal": 1.0,
    }


@pytest.fixture
def fake_results(tmp_path: Path, fake_record, write_fake) -> Path:
    metrics = tmp_path / "metrics"
    for video, psnr in BASE_PSNR.items():
        write_fake(
            metrics,
            fake_record(video, "baseline", CLASSES[video], _values(psnr, BASE_LPIPS[video])),
        )
    for video, psnr in VAR_PSNR.items():
        write_fake(
            metrics, fake_record(video, "VAR1", CLASSES[video], _values(psnr, VAR_LPIPS[video]))
        )
    gens = tmp_path / "generations"
    metas = {
        "v1": {"timings": {"load": 1.0, "adapt": 10.0, "sample": 5.0, "note": "x"},
               "peak_memory_mb": 1000, "trainable_parameters": 1234, "final_loss": 0.5},
        "v2": {"timings": {"adapt": 20.0, "sample": 5.0}, "peak_memory_mb": 3000,
               "trainable_parameters": 1234},
        "v3": {"something_else": True},
    }  # fmt: skip
    for video, meta in metas.items():
        (gens / "VAR1" / video).mkdir(parents=True)
        (gens / "VAR1" / video / "meta.json").write_text(json.dumps(meta))
    return tmp_path


def _aggregate(root: Path, **kwargs) -> dict[str, pd.DataFrame]:
    config = AggregateConfig(("baseline", "VAR1"), "baseline", BootstrapConfig(n_resamples=2000))
    manifest = root / "manifest.csv"
    manifest.write_text(
        "video_id,class_name,status\n" + "".join(f"{v},{c},ok\n" for v, c in CLASSES.items())
    )
    paths = run_aggregate(
        root / "metrics", root / "agg", config, root / "generations", manifest, **kwargs
    )
    assert sorted(p.name for p in paths.values()) == sorted(OUTPUT_FILES)
    tables = {name: pd.read_csv(paths[name]) for name in OUTPUT_FILES if name.endswith(".csv")}
    tables["summary.md"] = paths["summary.md"].read_text()
    return tables


def _row(table: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for key, value in where.items():
        mask &= table[key] == value
    assert mask.sum() == 1, where
    return table[mask].iloc[0]


def test_long_table(fake_results: Path) -> None:
    long = _aggregate(fake_results)["long.csv"]
    assert list(long.columns) == [
        "video",
        "class",
        "method",
        "lpips_backbone",
        "segment",
        "metric",
        "frame",
        "value",
    ]
    per_frame = long[
        (long.method == "VAR1")
        & (long.video == "v3")
        & (long.metric == "psnr")
        & long.frame.notna()
    ]
    assert sorted(per_frame.frame.astype(int)) == list(range(1, 66))
    agg = long[long.frame.isna() & (long.metric == "psnr") & (long.segment == "continuation")]
    assert len(agg) == 9
    assert dict(zip(long.video, long["class"], strict=True)) == CLASSES
    assert long.loc[long.metric == "seam_ratio", "value"].isna().all()


def test_only_listed_videos_are_read(fake_results: Path) -> None:
    everything = collect_long_table(fake_results / "metrics", ["baseline", "VAR1"])
    assert "v3" in set(everything.video)
    listed = {"v1": "A", "v2": "A"}
    kept = collect_long_table(fake_results / "metrics", ["baseline", "VAR1"], videos=listed)
    assert set(kept.video) == {"v1", "v2"}
    assert len(kept) == len(everything[everything.video.isin(["v1", "v2"])])
    # only the listed classes' files are read: another file may be anything
    (fake_results / "metrics" / "VAR1" / "B.json").write_text("{stale")
    assert collect_long_table(fake_results / "metrics", ["VAR1"], videos=listed).equals(
        kept[kept.method == "VAR1"].reset_index(drop=True)
    )
    with pytest.raises(AggregateError, match=r"metrics files missing: .*VAR1/C\.json"):
        collect_long_table(fake_results / "metrics", ["VAR1"], videos={"v9": "C"})


def test_summary_table(fake_results: Path) -> None:
    summary = _aggregate(fake_results)["summary.csv"]
    row = _row(summary, method="baseline", segment="continuation", metric="psnr")
    assert row.n == 4 and row["mean"] == pytest.approx(23.0)
    assert row["std"] == pytest.approx(np.std([20, 22, 24, 26], ddof=1))
    assert row.ci_low < 23.0 < row.ci_high and row.direction == "higher"
    var = _row(summary, method="VAR1", segment="continuation", metric="psnr")
    assert var.n == 5 and var["mean"] == pytest.approx(25.0)
    assert _row(summary, method="VAR1", segment="continuation", metric="seam_ratio").n == 0


def test_paired_table(fake_results: Path) -> None:
    paired = _aggregate(fake_results)["paired.csv"]
    assert set(paired.method) == {"VAR1"} and set(paired.baseline) == {"baseline"}
    psnr = _row(paired, segment="continuation", metric="psnr")
    assert (psnr.n, psnr.n_shared_videos, psnr.n_method_videos, psnr.n_baseline_videos) == (
        4,
        4,
        5,
        4,
    )
    assert psnr.mean_diff == pytest.approx(0.75)  # diffs 1, 0, 3, -1
    assert (psnr.wins, psnr.ties, psnr.losses, psnr.win_rate) == (2, 1, 1, 0.5)
    assert psnr.p_wilcoxon == pytest.approx(sps.wilcoxon([1.0, 0.0, 3.0, -1.0]).pvalue)
    assert psnr.baseline_mean == pytest.approx(23.0) and psnr.method_mean == pytest.approx(23.75)
    lpips = _row(paired, segment="continuation", metric="lpips")
    assert lpips.direction == "lower" and lpips.mean_diff == pytest.approx(
        -0.05
    )  # -0.1, 0, 0.1, -0.2
    assert (lpips.wins, lpips.ties, lpips.losses) == (2, 1, 1)
    ssim = _row(paired, segment="continuation", metric="ssim")
    assert ssim.mean_diff == 0 and ssim.p_wilcoxon == 1.0 and ssim.ties == 4
    assert "flicker_gt" not in set(paired.metric) and "seam_gt" not in set(paired.metric)
    context = _row(paired, segment="context", metric="psnr")
    assert context.n == 4 and context.mean_diff == 0


def test_per_class_table(fake_results: Path) -> None:
    per_class = _aggregate(fake_results)["per_class.csv"]
    a = _row(per_class, **{"class": "A"}, method="VAR1", segment="continuation", metric="psnr")
    b = _row(per_class, **{"class": "B"}, method="VAR1", segment="continuation", metric="psnr")
    assert a.mean_diff == pytest.approx(0.5) and a.n_paired == 2 and a.win_rate == 0.5
    assert b.mean_diff == pytest.approx(1.0) and b.n_paired == 2 and b.n == 3  # v5 unpaired
    base_b = _row(
        per_class, **{"class": "B"}, method="baseline", segment="continuation", metric="psnr"
    )
    assert base_b["mean"] == pytest.approx(25.0) and np.isnan(base_b.mean_diff)
    assert set(per_class.metric) <= {
        "psnr",
        "psnr_clip",
        "mse",
        "ssim",
        "ssim_skimage",
        "lpips",
        "flicker_err",
        "seam_err",
    }


def test_cost_table(fake_results: Path) -> None:
    cost = _aggregate(fake_results)["cost.csv"]
    assert set(cost.method) == {"VAR1"}  # baseline has no meta.json
    adapt = _row(cost, quantity="time_adapt_s")
    assert (adapt.n_videos, adapt.n_meta, adapt.n) == (5, 3, 2) and adapt["mean"] == pytest.approx(
        15.0
    )
    total = _row(cost, quantity="time_total_s")
    assert total["mean"] == pytest.approx((16.0 + 25.0) / 2) and total["max"] == 25.0
    assert _row(cost, quantity="peak_memory_mb")["max"] == 3000
    assert _row(cost, quantity="final_loss").n == 1
    assert list(cost.quantity[:4]) == [
        "time_load_s",
        "time_adapt_s",
        "time_sample_s",
        "time_total_s",
    ]


def test_recorded_total_is_not_added_to_itself(tmp_path: Path) -> None:
    # generate's meta.json has timings.total (the wall time of the run): taken as is.
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({"timings": {"load": 1.0, "sample": 2.0, "total": 3.5}}))
    assert read_generation_meta(path)["time_total_s"] == 3.5


def test_summary_markdown(fake_results: Path) -> None:
    text = _aggregate(fake_results)["summary.md"]
    assert "| VAR1 | psnr | higher | 4 |" in text
    assert "4 videos shared with baseline" in text
    assert "Videos evaluated per method: baseline: 4, VAR1: 5." in text
    assert "RANDOM" not in text
    published = text[text.index("## Published definitions") :]
    assert "| method | psnr_clip | ssim_skimage | lpips | tc_psnr |" in published
    assert "| baseline | 22.000 [" in published  # video-level PSNR of the fake records
    assert "| VAR1 - baseline | 0.7500 [" in published  # paired, over the 4 shared videos


def test_random_backbone_is_flagged(tmp_path: Path, fake_record, write_fake) -> None:
    for method in ("baseline", "VAR1"):
        write_fake(
            tmp_path / "m",
            fake_record("v1", method, "A", _values(20, 0.2), lpips_backbone="random"),
        )
    config = AggregateConfig(("baseline", "VAR1"), bootstrap=BootstrapConfig(n_resamples=200))
    paths = run_aggregate(tmp_path / "m", tmp_path / "agg", config)
    assert "RANDOM backbone" in paths["summary.md"].read_text()
    assert set(pd.read_csv(paths["summary.csv"]).lpips_backbone) == {"random"}


def test_input_errors_name_the_file(tmp_path: Path, fake_record, write_fake) -> None:
    metrics = tmp_path / "m"
    path = write_fake(metrics, fake_record("v1", "baseline", "A", _values(20, 0.2)))
    with pytest.raises(AggregateError, match=r"m/VAR1"):
        collect_long_table(metrics, ["baseline", "VAR1"])
    with pytest.raises(AggregateError, match=r"m/baseline: no per-video metrics"):
        collect_long_table(metrics, ["baseline"], videos={"v9": "A"})
    moved = metrics / "baseline" / "B.json"
    path.rename(moved)
    with pytest.raises(AggregateError, match=r"B\.json: holds method 'baseline', class 'A'"):
        collect_long_table(metrics, ["baseline"])
    moved.write_text("{broken")
    with pytest.raises(AggregateError, match=r"B\.json: not valid JSON"):
        collect_long_table(metrics, ["baseline"])
    moved.unlink()
    path = write_fake(metrics, fake_record("v1", "baseline", "A", _values(20, 0.2)))
    data = json.loads(path.read_text())
    data["records"][0]["class"] = "B"
    path.write_text(json.dumps(data))
    with pytest.raises(AggregateError, match=r"A\.json: record of video 'v1' holds .* class 'B'"):
        collect_long_table(metrics, ["baseline"])
    record = fake_record("v2", "baseline", "A", _values(20, 0.2))
    record["segments"]["continuation"]["per_frame"]["psnr"].pop()
    path.unlink()
    write_fake(metrics, record)
    with pytest.raises(AggregateError, match=r"A\.json \(video 'v2'\): .*31 values for 32 frames"):
        collect_long_table(metrics, ["baseline"])
    write_fake(metrics, fake_record("v2", "baseline", "A", _values(20, 0.2)))
    write_fake(metrics, fake_record("v2", "baseline", "B", _values(20, 0.2)))
    with pytest.raises(AggregateError, match=r"video 'v2' is also in"):
        collect_long_table(metrics, ["baseline"])
    bad_meta = tmp_path / "meta.json"
    bad_meta.write_text("[1, 2]")
    with pytest.raises(AggregateError, match=r"meta\.json: expected a JSON object"):
        read_generation_meta(bad_meta)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="baseline"):
        AggregateConfig(("VAR1",), "baseline")
    with pytest.raises(ValueError, match="repeated"):
        AggregateConfig(("baseline", "baseline"))


def test_aggregate_command(fake_results: Path, invoke) -> None:
    out = fake_results / "agg_cli"
    argv = ["aggregate", "--metrics-dir", str(fake_results / "metrics"), "--generations-dir",
            str(fake_results / "generations"), "--methods", "baseline,VAR1", "--out-dir", str(out),
            "--bootstrap", "500", "--seed", "3"]  # fmt: skip
    assert invoke(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    argv[argv.index("baseline,VAR1")] = "baseline,VAR2"
    with pytest.raises(CommandError, match="VAR2"):
        invoke(argv)


def _add_failure(root: Path, method: str, video: str) -> None:
    path = root / "metrics" / method / f"{CLASSES[video]}.json"
    data = json.loads(path.read_text())
    data["records"] = [r for r in data["records"] if r["video"] != video]
    data.setdefault("failures", []).append(
        {"video": video, "method": method, "class": CLASSES[video], "stage": "adapt",
         "error": "non-finite loss"}
    )  # fmt: skip
    path.write_text(json.dumps(data))


def test_failures_are_counted_and_their_pairs_dropped(fake_results: Path) -> None:
    _add_failure(fake_results, "VAR1", "v3")
    _add_failure(fake_results, "baseline", "v1")
    tables = _aggregate(fake_results)
    failures = tables["failures.csv"]
    assert sorted(zip(failures["method"], failures["video"], strict=True)) == [
        ("VAR1", "v3"),
        ("baseline", "v1"),
    ]
    row = _row(tables["paired.csv"], method="VAR1", segment="continuation", metric="psnr")
    assert row["n_shared_videos"] == 2  # v2, v4
    assert row["n_dropped_pairs"] == 2
    assert row["dropped_pairs"] == "1 failed with VAR1; 1 failed with baseline"
    assert "## Failed generations" in tables["summary.md"]
    assert "| VAR1 | 1 | 2 |" in tables["summary.md"]


def test_variant_that_always_fails_leaves_the_others(fake_results: Path) -> None:
    for video in CLASSES:
        _add_failure(fake_results, "VAR1", video)
    tables = _aggregate(fake_results)
    assert set(tables["summary.csv"]["method"]) == {"baseline"}
    assert len(tables["failures.csv"]) == len(CLASSES)
    assert "| VAR1 | 5 |" in tables["summary.md"]


def test_baseline_that_always_fails_is_an_error(fake_results: Path) -> None:
    for video in BASE_PSNR:
        _add_failure(fake_results, "baseline", video)
    (fake_results / "metrics" / "baseline" / "B.json").write_text(
        (fake_results / "metrics" / "baseline" / "B.json").read_text()
    )
    manifest_videos = {v: c for v, c in CLASSES.items() if v in BASE_PSNR}
    config = AggregateConfig(("baseline", "VAR1"), "baseline", BootstrapConfig(n_resamples=50))
    manifest = fake_results / "manifest.csv"
    manifest.write_text(
        "video_id,class_name,status\n"
        + "".join(f"{v},{c},ok\n" for v, c in manifest_videos.items())
    )
    with pytest.raises(AggregateError, match="every generation of the baseline failed"):
        run_aggregate(fake_results / "metrics", fake_results / "agg", config, None, manifest)
