"""Cost model: figures table, per-method seconds, study totals, the plan command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sora_tta.cli import main
from sora_tta.cluster import figures as fig
from sora_tta.cluster import plan as plan_lib
from sora_tta.cluster.commands import load_config

REPO = Path(__file__).resolve().parents[2]
FULL = REPO / "config" / "config.yaml"
DEMO = REPO / "config" / "demo.yaml"


@pytest.fixture(scope="module")
def table() -> dict[str, fig.StepFigures]:
    return fig.load_figures()


def test_packaged_h200_row_is_the_documented_measurement(tmp_path: Path, table) -> None:
    out = tmp_path / "figures.json"
    assert (
        main(
            [
                "import-figures",
                str(REPO / "docs/perf/h200-run2.json"),
                "--kind",
                "H200",
                "--figures",
                str(out),
            ]
        )
        == 0
    )
    assert fig.load_figures(out)["H200"] == table["H200"]
    assert table["H200"].adapt_step_s == pytest.approx(0.3424, abs=1e-4)
    assert table["H200"].sample_step_lora_s == pytest.approx(0.6595, abs=1e-4)  # bf16 adapters


def test_full_study_on_h200(tmp_path: Path, table) -> None:
    config = load_config(FULL)
    h200 = table["H200"]
    plan = plan_lib.plan_study(config, h200, gpus=8, results_dir=tmp_path)
    assert plan.videos == 150
    assert plan.videos_source == "test: selection.total, validation: selection.validation.total"
    assert plan.compile  # auto on a CUDA kind
    assert plan.methods[0].method == "baseline"
    # Baseline and the final variant on test + validation, the 9 exploratory ones on validation.
    by = {m.method.rsplit("-", 1)[0]: m for m in plan.methods}
    assert by["baseline"].videos == by["r16-continue"].videos == 150
    assert {m.videos for m in plan.methods[2:]} == {50} and len(plan.methods) == 11
    assert plan.jobs == 2 * 150 + 9 * 50
    base, r16, r8 = by["baseline"], by["r16-continue"], by["r8-s20-continue"]
    # The study's shapes are the measured ones: no scaling.
    assert base.seconds["sample"] == pytest.approx(25 * h200.sample_step_base_compiled_s)
    assert r16.seconds["adapt"] == pytest.approx(100 * h200.adapt_step_s)
    assert r16.seconds["sample"] == pytest.approx(25 * h200.sample_step_lora_compiled_s)
    assert base.seconds["load"] == pytest.approx(h200.checkpoint_load_s)
    assert base.seconds["encode"] == pytest.approx(h200.vae_encode_s)
    assert base.seconds["decode"] == pytest.approx(h200.vae_decode_s)
    # Rank 8 costs a little less per step than rank 16; 20 steps instead of 100.
    assert 0.95 * 20 * h200.adapt_step_s < r8.seconds["adapt"] < 20 * h200.adapt_step_s
    total = sum(m.videos * m.per_video_s for m in plan.methods)
    assert plan.gpu_seconds == pytest.approx(total)
    longest = max(m.per_video_s for m in plan.methods)
    assert total / 8 <= plan.wall_seconds(8) <= total / 8 + longest
    assert plan.wall_seconds(1) == pytest.approx(total)
    assert "process_start_s" in plan.not_measured
    assert "compile_warmup_s" in plan.not_measured


def test_eager_when_compile_is_off(tmp_path: Path, table) -> None:
    config = load_config(FULL)
    config["generation"]["compile"] = False  # YAML's "off"
    plan = plan_lib.plan_study(config, table["H200"], results_dir=tmp_path)
    assert not plan.compile
    assert plan.methods[0].seconds["sample"] == pytest.approx(25 * table["H200"].sample_step_base_s)


def test_shapes_scale_the_steps(tmp_path: Path, table) -> None:
    config = load_config(FULL)
    config["sampling"].update(height=112, width=144)  # a quarter of the tokens
    small = plan_lib.plan_study(config, table["H200"], results_dir=tmp_path)
    full = plan_lib.plan_study(load_config(FULL), table["H200"], results_dir=tmp_path)
    for a, b in zip(small.methods, full.methods, strict=True):
        assert a.seconds["sample"] < 0.3 * b.seconds["sample"]
        assert a.seconds["decode"] == pytest.approx(b.seconds["decode"] / 4)


def test_manifest_decides_the_videos(tmp_path: Path, table) -> None:
    from sora_tta.data.manifest import MANIFEST_COLUMNS

    frame = pd.DataFrame({column: ["1"] * 9 for column in MANIFEST_COLUMNS})
    frame["subset"], frame["reason"] = "test", ""
    frame["video_id"] = [f"v_A_g{i:02d}_c01" for i in range(1, 10)]
    frame["status"] = ["ok"] * 7 + ["too_short"] * 2
    frame["role"] = ["test"] * 4 + ["validation"] * 3 + ["test"] * 2
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    config = load_config(FULL)
    counts, source = plan_lib.count_videos(config, tmp_path)
    assert counts == {"test": 4, "validation": 3} and "manifest.csv" in source
    plan = plan_lib.plan_study(config, table["H200"], results_dir=tmp_path)
    assert plan.videos == 7 and plan.jobs == 2 * 7 + 9 * 3
    (tmp_path / "manifest.csv").write_text("video,status\nv1,ok\n")
    with pytest.raises(plan_lib.PlanError, match=r"manifest\.csv"):
        plan_lib.count_videos(config, tmp_path)


def test_demo_plan(tmp_path: Path, table) -> None:
    config = load_config(DEMO)
    kind = config["plan"]["kind"]
    plan = plan_lib.plan_study(config, table[kind], gpus=1, results_dir=tmp_path)
    # 3 classes x 2 groups of 1 clip: g01 in testlist01, g02 in trainlist01 (validation).
    assert plan.videos == 6
    assert plan.videos_source == "test: data.synthetic, validation: data.synthetic"
    assert not plan.compile  # a CPU kind: auto is off
    assert [m.videos for m in plan.methods] == [6, 6, 3, 3] and plan.jobs == 18
    assert all(m.per_video_s > 0 for m in plan.methods)
    assert plan.methods[1].seconds["adapt"] > 0 and plan.methods[0].seconds["adapt"] == 0


def test_plan_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    code = main(
        [
            "plan",
            "--configfile",
            str(FULL),
            "--gpus",
            "8",
            "--gpus",
            "64",
            "--results",
            str(tmp_path),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "generation jobs: 750" in text and "wall-clock on 64 GPUs" in text
    data = json.loads(out.read_text())
    assert data["jobs"] == 750 and data["kind"] == "H200"
    assert data["gpu_hours"] > data["wall_hours_by_gpus"]["8"] > data["wall_hours_by_gpus"]["64"]
    assert {m["method"] for m in data["methods"]} >= {"baseline"}


def test_plan_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--configfile", str(FULL), "--kind", "TPU"]) == 1
    assert "no figures for device kind 'TPU'" in capsys.readouterr().err
    bad = tmp_path / "figures.json"
    bad.write_text("{not json")
    assert main(["plan", "--configfile", str(FULL), "--figures", str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err


def test_prediction_beside_measured_cost(tmp_path: Path, table) -> None:
    config = load_config(FULL)
    plan = plan_lib.plan_study(config, table["H200"], results_dir=tmp_path)
    tta = plan.methods[1]
    cost = pd.DataFrame(
        [
            {"method": tta.method, "quantity": "time_adapt_s", "mean": 40.0, "median": 39.0,
             "n": 99},
            {"method": tta.method, "quantity": "time_total_s", "mean": 60.0, "median": 59.0,
             "n": 99},
        ]
    )  # fmt: skip
    table_ = plan_lib.compare_with_cost(plan, cost)
    row = table_[(table_.method == tta.method) & (table_.quantity == "time_adapt_s")].iloc[0]
    assert row.predicted == pytest.approx(tta.seconds["adapt"])
    assert (row.measured_mean, row.measured_median, row.n) == (40.0, 39.0, 99)
    assert row.measured_over_predicted == pytest.approx(40.0 / tta.seconds["adapt"])
    base = table_[(table_.method == "baseline") & (table_.quantity == "time_sample_s")].iloc[0]
    assert base.n == 0 and np.isnan(base.measured_mean)  # nothing measured: no ratio
    study = table_.iloc[-1]
    assert study.method == "study" and study.n == 750
    assert study.measured_mean == pytest.approx(60.0 * tta.videos / 3600)


def test_cost_vs_plan_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The workflow's cost_plan step: the configuration as JSON, plan and comparison files."""
    config = load_config(DEMO)
    cost = tmp_path / "cost.csv"
    pd.DataFrame(
        [{"method": "baseline", "quantity": "time_total_s", "mean": 2.0, "median": 2.0, "n": 6}]
    ).to_csv(cost, index=False)
    plan, comparison = tmp_path / "plan.json", tmp_path / "cost_vs_plan.csv"
    outputs = ["--plan", str(plan), "--comparison", str(comparison), "--results", str(tmp_path)]
    argv = ["cost-vs-plan", "--config-json", json.dumps(config), "--cost", str(cost), *outputs]
    assert main(argv) == 0
    assert "generation jobs: 18" in capsys.readouterr().out
    assert json.loads(plan.read_text())["jobs"] == 18
    measured = pd.read_csv(comparison)
    assert measured[measured.method == "baseline"].n.max() == 6
    assert main([*argv[:2], "{not json", *argv[3:]]) == 1
    assert "--config-json: not valid JSON" in capsys.readouterr().err


def test_import_records_the_compile_warmup(tmp_path: Path) -> None:
    report = json.loads((REPO / "docs/perf/h200-run2.json").read_text())
    report["device"] = "NVIDIA H100 80GB HBM3"
    for row in report["variants"]["compile"]:
        row["first_call_seconds"] = row["seconds"] + 42.0
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(report))
    row = fig.import_bench_json(bench)
    assert row.kind == "H100-80GB-HBM3" and row.compile_warmup_s == pytest.approx(42.0)
    assert row.device_type == "cuda"
