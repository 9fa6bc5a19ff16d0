"""The declared family: Holm-adjusted verdicts, the primary endpoint, per action type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sora_tta.evaluation.aggregate import run_aggregate
from sora_tta.evaluation.family import NOT_TESTED
from sora_tta.evaluation.stats import BootstrapConfig, StatisticsConfig
from sora_tta.evaluation.tables import AggregateConfig
from sora_tta.study.variants import VariantError, resolve_variant

# 12 Archery videos (Sports) and 3 ApplyEyeMakeup videos (Human-Object Interaction).
VIDEOS = {f"s{i:02d}": "Archery" for i in range(12)} | {f"h{i}": "ApplyEyeMakeup" for i in range(3)}
STEPS = {"FINAL-abc": 1.0, "EXPL-def": 0.5}  # PSNR gain per video, plus a growing jitter


def _values(psnr: float) -> dict[str, float]:
    return {"psnr": psnr, "ssim": 0.5, "lpips": 0.2, "flicker_err": 1.0, "seam_err": 1.0}


@pytest.fixture
def results(tmp_path: Path, fake_record, write_fake) -> Path:
    for i, (video, cls) in enumerate(VIDEOS.items()):
        write_fake(tmp_path / "m", fake_record(video, "baseline", cls, _values(20.0 + i)))
        for method, gain in STEPS.items():
            value = 20.0 + i + gain + 0.01 * i
            write_fake(tmp_path / "m", fake_record(video, method, cls, _values(value)))
    return tmp_path


def _run(root: Path, stats: StatisticsConfig) -> dict[str, pd.DataFrame | str]:
    config = AggregateConfig(
        ("baseline", *STEPS), bootstrap=BootstrapConfig(n_resamples=500), statistics=stats
    )
    paths = run_aggregate(root / "m", root / "agg", config)
    out: dict[str, pd.DataFrame | str] = {
        name: pd.read_csv(paths[name]) for name in ("paired.csv", "per_type.csv")
    }
    out["summary.md"] = paths["summary.md"].read_text()
    return out


def test_holm_over_the_declared_family_only(results: Path) -> None:
    stats = StatisticsConfig(final_variants=("FINAL",), primary_variant="FINAL")
    tables = _run(results, stats)
    paired = tables["paired.csv"]
    fam = paired[paired.in_family]
    # final variant x 5 family metrics x continuation; ssim etc. are all ties (p = 1)
    assert set(fam.method) == {"FINAL-abc"} and len(fam) == 5
    assert set(fam.segment) == {"continuation"} and (fam.family_size == 5).all()
    psnr = fam[fam.metric == "psnr"].iloc[0]
    raw = sps.wilcoxon(np.full(15, 1.0) + 0.01 * np.arange(15)).pvalue
    assert psnr.p_wilcoxon == pytest.approx(raw)
    assert psnr.p_holm == pytest.approx(5 * raw)  # smallest of 5, the others are 1
    assert psnr.verdict == "better" and bool(psnr.primary)
    assert paired.primary.sum() == 1
    outside = paired[~paired.in_family]
    assert set(outside.verdict) == {NOT_TESTED} and outside.p_holm.isna().all()
    assert "EXPL-def" in set(outside.method)  # exploratory: reported, never tested
    text = tables["summary.md"]
    assert "## Primary endpoint" in text and "Holm-adjusted over a family of 5 tests" in text
    assert "Declared: psnr on the continuation, FINAL-abc - baseline." in text
    assert "| FINAL-abc | continuation | psnr (primary) | 15 |" in text


def test_holm_can_turn_a_raw_win_into_unclear(tmp_path: Path, fake_record, write_fake) -> None:
    for i in range(6):  # six positive differences: exact Wilcoxon p = 2/64 < 0.05
        write_fake(tmp_path / "m", fake_record(f"v{i}", "baseline", "Archery", _values(20.0)))
        write_fake(tmp_path / "m", fake_record(f"v{i}", "V-1", "Archery", _values(21.0 + i)))
        values = _values(20.0) | {"lpips": 0.2 - 0.01 * (i + 1)}
        write_fake(tmp_path / "m", fake_record(f"v{i}", "W-2", "Archery", values))
    config = AggregateConfig(("baseline", "V-1", "W-2"), bootstrap=BootstrapConfig(500))
    paired = pd.read_csv(run_aggregate(tmp_path / "m", tmp_path / "agg", config)["paired.csv"])
    psnr = paired[(paired.method == "V-1") & (paired.metric == "psnr")].iloc[0]
    assert psnr.p_wilcoxon == pytest.approx(2 / 64) and psnr.ci_low > 0
    assert psnr.family_size == 10  # 2 variants x 5 metrics
    assert psnr.p_holm > 0.05 and psnr.verdict == "unclear"


def test_per_type_table_withholds_small_groups(results: Path) -> None:
    stats = StatisticsConfig(final_variants=("FINAL-abc",), min_group_n=10)
    per_type = _run(results, stats)["per_type.csv"]
    assert set(per_type.method) == {"FINAL-abc"}
    sports = per_type[(per_type.action_type == "Sports") & (per_type.metric == "psnr")].iloc[0]
    hoi = per_type[
        (per_type.action_type == "Human-Object Interaction") & (per_type.metric == "psnr")
    ].iloc[0]
    assert (sports.n, sports.n_classes, hoi.n) == (12, 1, 3)
    assert sports.verdict == "better" and not isinstance(sports.note, str)
    assert hoi.verdict == NOT_TESTED and hoi.note.startswith("n = 3 < 10")
    assert hoi.mean_diff == pytest.approx(1.0 + 0.01 * 13)  # effect still shown
    text = _run(results, stats)["summary.md"]
    assert "By UCF-101 action type" in text and "n = 3 < 10" in text


def test_resolve_variant_by_name_or_id() -> None:
    methods = ["baseline", "r16-continue-1a2b", "r16-mixed-3c4d"]
    assert resolve_variant("r16-continue", methods) == "r16-continue-1a2b"
    assert resolve_variant("r16-mixed-3c4d", methods) == "r16-mixed-3c4d"
    with pytest.raises(VariantError, match="matches 0"):
        resolve_variant("r8", methods)


def test_headline_on_test_exploration_on_validation(
    tmp_path: Path, fake_record, write_fake
) -> None:
    """Baseline and final variant on test and validation, the exploratory variant on
    validation only: the headline tables hold test videos of the final variant, the
    validation tables every variant, untested."""
    roles = {f"t{i:02d}": "test" for i in range(12)} | {f"v{i:02d}": "validation" for i in range(4)}
    for i, (video, role) in enumerate(roles.items()):
        write_fake(tmp_path / "m", fake_record(video, "baseline", "Archery", _values(20.0 + i)))
        write_fake(
            tmp_path / "m", fake_record(video, "FINAL-abc", "Archery", _values(21.0 + i * 1.01))
        )
        if role == "validation":
            write_fake(tmp_path / "m", fake_record(video, "EXPL-def", "Archery", _values(22.0 + i)))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "video_id,class_name,status,role\n"
        + "".join(f"{v},Archery,ok,{r}\n" for v, r in roles.items())
        + "broken,Archery,missing,validation\n"
    )
    stats = StatisticsConfig(final_variants=("FINAL",))
    config = AggregateConfig(
        ("baseline", "FINAL-abc", "EXPL-def"), bootstrap=BootstrapConfig(300), statistics=stats
    )
    paths = run_aggregate(tmp_path / "m", tmp_path / "agg", config, manifest=manifest)
    paired = pd.read_csv(paths["paired.csv"])
    psnr = paired[(paired.metric == "psnr") & (paired.segment == "continuation")].iloc[0]
    assert set(paired.method) == {"FINAL-abc"} and psnr.n == 12 and bool(psnr.primary)
    long = pd.read_csv(paths["long.csv"])
    assert set(long.video) == {v for v, r in roles.items() if r == "test"}
    val = pd.read_csv(paths["validation_paired.csv"])
    assert set(val.method) == {"FINAL-abc", "EXPL-def"} and set(val.verdict) == {NOT_TESTED}
    assert val[(val.method == "EXPL-def") & (val.metric == "psnr")].iloc[0].mean_diff == 2.0
    text = paths["summary.md"].read_text()
    headline = "**Headline**: the final variant(s) FINAL-abc vs baseline on the test selection"
    assert f"{headline} (12 videos)" in text
    assert "**Exploratory**: every variant on the validation selection (4 videos" in text
    assert "| EXPL-def | psnr | 4 | 2.0000 [" in text


def test_without_validation_the_validation_tables_are_empty(results: Path) -> None:
    _run(results, StatisticsConfig())
    val = pd.read_csv(results / "agg" / "validation_paired.csv")
    assert val.empty and "in_family" in val.columns
