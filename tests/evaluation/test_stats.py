"""Bootstrap and Wilcoxon outputs against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sora_tta.evaluation.stats import (
    BootstrapConfig,
    StatisticsConfig,
    bootstrap_mean_ci,
    describe,
    holm_adjust,
    paired_stats,
    verdict,
    wilcoxon_p,
)


def _scipy_ci(x: np.ndarray, config: BootstrapConfig) -> tuple[float, float]:
    result = sps.bootstrap(
        (x,),
        np.mean,
        n_resamples=config.n_resamples,
        confidence_level=config.confidence,
        method="percentile",
        rng=np.random.default_rng(config.seed),
    )
    return result.confidence_interval.low, result.confidence_interval.high


@pytest.mark.parametrize("n, seed", [(7, 0), (25, 3)])
def test_bootstrap_matches_scipy(n: int, seed: int) -> None:
    x = np.random.default_rng(100 + n).normal(size=n)
    config = BootstrapConfig(n_resamples=5000, seed=seed)
    low, high = bootstrap_mean_ci(x, config)
    ref_low, ref_high = _scipy_ci(x, config)
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


def test_bootstrap_columns_match_scipy_per_column() -> None:
    x = np.random.default_rng(1).normal(size=(9, 3))
    config = BootstrapConfig(n_resamples=2000, confidence=0.9, seed=4)
    low, high = bootstrap_mean_ci(x, config)
    for k in range(3):
        ref_low, ref_high = _scipy_ci(x[:, k], config)
        assert low[k] == pytest.approx(ref_low, abs=1e-12)
        assert high[k] == pytest.approx(ref_high, abs=1e-12)


def test_bootstrap_edge_cases() -> None:
    assert bootstrap_mean_ci(np.array([2.5])) == (2.5, 2.5)
    low, high = bootstrap_mean_ci(np.array([]))
    assert math.isnan(low) and math.isnan(high)
    x = np.random.default_rng(0).normal(size=10)
    assert bootstrap_mean_ci(x) == bootstrap_mean_ci(x)  # seeded: reproducible
    assert bootstrap_mean_ci(x) != bootstrap_mean_ci(x, BootstrapConfig(seed=1))


def test_wilcoxon_matches_scipy_and_hand_value() -> None:
    d = np.random.default_rng(2).normal(0.3, 1.0, size=15)
    assert wilcoxon_p(d) == pytest.approx(sps.wilcoxon(d).pvalue, rel=1e-12)
    # Five positive differences, exact null: P(W = 15 or W = 0) = 2 / 2^5.
    assert wilcoxon_p(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(0.0625)
    with_zeros = np.array([0.0, 0.0, 1.5, -0.5, 2.0, 3.0, -1.0])
    assert wilcoxon_p(with_zeros) == pytest.approx(sps.wilcoxon(with_zeros).pvalue)


def test_wilcoxon_degenerate_inputs() -> None:
    assert wilcoxon_p(np.zeros(6)) == 1.0
    assert math.isnan(wilcoxon_p(np.array([])))
    assert wilcoxon_p(np.array([np.nan, 1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(0.0625)


def test_describe_drops_nan() -> None:
    out = describe(np.array([1.0, 2.0, np.nan, 3.0]), BootstrapConfig(n_resamples=500))
    assert out["n"] == 3 and out["mean"] == 2.0 and out["std"] == 1.0 and out["median"] == 2.0
    assert out["ci_low"] <= 2.0 <= out["ci_high"]


def test_paired_stats_directions_and_counts() -> None:
    baseline = np.array([20.0, 22.0, 24.0, 26.0, np.nan])
    variant = np.array([21.0, 22.0, 27.0, 25.0, 30.0])
    higher = paired_stats(variant, baseline, "higher", BootstrapConfig(n_resamples=1000))
    assert higher.n == 4 and higher.mean == pytest.approx(0.75)
    assert (higher.wins, higher.ties, higher.losses) == (2, 1, 1)
    assert higher.win_rate == 0.5
    assert higher.p_value == pytest.approx(sps.wilcoxon([1.0, 0.0, 3.0, -1.0]).pvalue)
    lower = paired_stats(variant, baseline, "lower", BootstrapConfig(n_resamples=1000))
    assert (lower.wins, lower.ties, lower.losses) == (1, 1, 2)
    none = paired_stats(variant, baseline, "none", BootstrapConfig(n_resamples=1000))
    assert math.isnan(none.win_rate) and none.mean == pytest.approx(0.75)


def test_verdict() -> None:
    config = BootstrapConfig(n_resamples=1000)
    base = np.zeros(8)
    up = paired_stats(base + np.linspace(1, 2, 8), base, "higher", config)
    assert verdict(up, "higher") == "better"
    assert verdict(up, "lower") == "worse"
    mixed = paired_stats(np.array([1.0, -1.0, 2.0, -2.0]), np.zeros(4), "higher", config)
    assert verdict(mixed, "higher") == "unclear"
    assert verdict(up, "none") == "n/a"
    # Three videos all improving: the CI excludes 0 but the exact Wilcoxon p is 0.25.
    few = paired_stats(np.array([1.0, 1.1, 1.2]), np.zeros(3), "higher", config)
    assert few.ci_low > 0 and few.p_value == pytest.approx(0.25)
    assert verdict(few, "higher") == "unclear"
    same = paired_stats(np.ones(5), np.ones(5), "lower", config)
    assert verdict(same, "lower") == "same"


def _holm_by_definition(p: list[float]) -> list[float]:
    """Holm's adjusted p-values straight from the definition (max over the step-down)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    for rank, i in enumerate(order):
        adjusted[i] = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
    return adjusted


def test_holm_adjust_hand_values_and_definition() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(holm_adjust(p), [0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.uniform(0, 0.3, size=7)
        np.testing.assert_allclose(holm_adjust(q), _holm_by_definition(list(q)))


def test_holm_adjust_ignores_nan_and_caps_at_one() -> None:
    out = holm_adjust(np.array([np.nan, 0.5, 0.6]))
    assert np.isnan(out[0]) and list(out[1:]) == [1.0, 1.0]
    assert holm_adjust(np.array([])).size == 0


def test_verdict_judges_by_the_given_p_value() -> None:
    result = paired_stats(np.arange(1.0, 7.0) + 1.0, np.arange(1.0, 7.0), "higher")
    assert result.p_value == pytest.approx(2 / 64)  # exact: all 6 differences positive
    assert verdict(result, "higher") == "better"
    assert verdict(result, "higher", p_value=5 * result.p_value) == "unclear"


def test_statistics_config_checks_the_declaration() -> None:
    with pytest.raises(ValueError, match="not in the family"):
        StatisticsConfig(primary_metric="mse")
    with pytest.raises(ValueError, match="not a final variant"):
        StatisticsConfig(primary_variant="a", final_variants=("b",))
    with pytest.raises(ValueError, match="unknown segment"):
        StatisticsConfig(family_segments=("middle",))
    with pytest.raises(ValueError, match="alpha"):
        StatisticsConfig(alpha=0.0)
