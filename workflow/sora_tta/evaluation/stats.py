"""Summary statistics: seeded percentile bootstrap of the mean, paired comparisons, Wilcoxon.

The bootstrap draws its resample indices exactly as ``scipy.stats.bootstrap``
does (``rng.integers(0, n, (n_resamples, n))`` from ``numpy.random.default_rng(seed)``)
and takes the same linear-interpolation percentiles, so for the mean it gives
the same interval as ``scipy.stats.bootstrap(..., method="percentile")`` with the
same generator; unlike scipy it bootstraps many columns with one set of indices
(the per-frame confidence bands of the figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from sora_tta.evaluation.definitions import (
    PRIMARY_METRICS,
    SEGMENT_CONTINUATION,
    SEGMENTS,
    Direction,
)


@dataclass(frozen=True)
class BootstrapConfig:
    """Percentile bootstrap settings: resamples, two-sided confidence level, seed."""

    n_resamples: int = 10_000
    confidence: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class StatisticsConfig:
    """The declared primary endpoint, the family of confirmatory tests and their alpha.

    The family is every *final* variant x ``family_metrics`` x ``family_segments``
    (variants: ``final_variants``, or every variant when none are declared); its
    Wilcoxon p-values are Holm-adjusted together and only family members get a
    better/worse verdict. The primary endpoint (``primary_variant``: a method id,
    ``None`` = the first final variant) is one member of the family. Groups (action
    types) with fewer than ``min_group_n`` paired videos get no verdict.
    """

    primary_metric: str = "psnr"
    primary_segment: str = SEGMENT_CONTINUATION
    primary_variant: str | None = None
    family_metrics: tuple[str, ...] = PRIMARY_METRICS
    family_segments: tuple[str, ...] = (SEGMENT_CONTINUATION,)
    final_variants: tuple[str, ...] | None = None
    alpha: float = 0.05
    min_group_n: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.min_group_n < 1:
            raise ValueError(f"min_group_n must be positive, got {self.min_group_n}")
        unknown = [s for s in self.family_segments if s not in SEGMENTS]
        if unknown or self.primary_segment not in SEGMENTS:
            bad = ", ".join(unknown or [self.primary_segment])
            raise ValueError(f"unknown segment(s) {bad}; expected {', '.join(SEGMENTS)}")
        if self.primary_metric not in self.family_metrics:
            raise ValueError(f"primary metric {self.primary_metric!r} is not in the family")
        if self.primary_segment not in self.family_segments:
            raise ValueError(f"primary segment {self.primary_segment!r} is not in the family")
        if (
            self.final_variants is not None
            and self.primary_variant is not None
            and self.primary_variant not in self.final_variants
        ):
            raise ValueError(f"primary variant {self.primary_variant!r} is not a final variant")


def bootstrap_mean_ci(
    values: np.ndarray, config: BootstrapConfig = BootstrapConfig()
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Percentile bootstrap confidence interval of the mean over axis 0.

    ``values`` is ``(n,)`` or ``(n, k)`` (``k`` columns resampled with the same
    rows). Returns ``(low, high)``: floats for 1-D input, ``(k,)`` arrays for 2-D.
    NaN for ``n == 0``; a single observation gives a zero-width interval.
    """
    x = np.asarray(values, dtype=np.float64)
    one_d = x.ndim == 1
    if one_d:
        x = x[:, None]
    n, k = x.shape
    if n == 0:
        nan = np.full(k, np.nan)
        return (math.nan, math.nan) if one_d else (nan, nan.copy())
    rng = np.random.default_rng(config.seed)
    index = rng.integers(0, n, (config.n_resamples, n))
    # Mean of each resample = (counts of each row in it) @ x / n: avoids a (B, n, k) array.
    offsets = (np.arange(config.n_resamples) * n)[:, None]
    counts = np.bincount((index + offsets).ravel(), minlength=config.n_resamples * n)
    means = counts.reshape(config.n_resamples, n).astype(np.float64) @ x / n
    alpha = (1.0 - config.confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    if one_d:
        return float(low[0]), float(high[0])
    return low, high


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (NaNs dropped).

    Zero differences are dropped (``zero_method="wilcox"``); when every
    difference is zero there is no evidence of a difference and the p-value is
    1.0. NaN when there are no differences at all.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return math.nan
    if not np.any(d != 0):
        return 1.0
    return float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def describe(values: np.ndarray, config: BootstrapConfig = BootstrapConfig()) -> dict[str, float]:
    """``n``, mean, sample std, median and bootstrap CI of the mean (NaNs dropped)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    low, high = bootstrap_mean_ci(x, config)
    return {
        "n": int(x.size),
        "mean": float(np.mean(x)) if x.size else math.nan,
        "std": float(np.std(x, ddof=1)) if x.size > 1 else math.nan,
        "median": float(np.median(x)) if x.size else math.nan,
        "ci_low": float(low),
        "ci_high": float(high),
    }


@dataclass(frozen=True)
class PairedResult:
    """Paired comparison of a variant with the baseline over the same videos.

    ``mean`` etc. describe ``variant - baseline``. ``wins`` counts videos where
    the variant is strictly better in the metric's direction, ``losses`` strictly
    worse, ``ties`` equal; ``win_rate = wins / n`` (NaN for direction ``none``).
    """

    n: int
    mean: float
    std: float
    median: float
    ci_low: float
    ci_high: float
    wins: int
    ties: int
    losses: int
    win_rate: float
    p_value: float


def paired_stats(
    variant: np.ndarray,
    baseline: np.ndarray,
    direction: Direction,
    config: BootstrapConfig = BootstrapConfig(),
) -> PairedResult:
    """Compare aligned per-video values; pairs with a NaN on either side are dropped."""
    v = np.asarray(variant, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if v.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {v.shape} vs {b.shape}")
    keep = ~(np.isnan(v) | np.isnan(b))
    d = v[keep] - b[keep]
    summary = describe(d, config)
    n = summary["n"]
    if direction == "none":
        wins = ties = losses = 0
        win_rate = math.nan
    else:
        better = d > 0 if direction == "higher" else d < 0
        wins = int(np.sum(better))
        ties = int(np.sum(d == 0))
        losses = n - wins - ties
        win_rate = wins / n if n else math.nan
    return PairedResult(
        n=n,
        mean=summary["mean"],
        std=summary["std"],
        median=summary["median"],
        ci_low=summary["ci_low"],
        ci_high=summary["ci_high"],
        wins=wins,
        ties=ties,
        losses=losses,
        win_rate=win_rate,
        p_value=wilcoxon_p(d),
    )


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    For the ``m`` non-NaN p-values sorted ascending, ``p_(i) * (m - i + 1)`` with a running
    maximum; rejecting where the adjusted value is below ``alpha`` controls the
    family-wise error rate at ``alpha`` (Holm 1979). NaNs stay NaN and do not count in ``m``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    keep = np.flatnonzero(~np.isnan(p))
    m = keep.size
    if m == 0:
        return out
    order = keep[np.argsort(p[keep], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def verdict(
    result: PairedResult, direction: Direction, alpha: float = 0.05, p_value: float | None = None
) -> str:
    """Classify a paired comparison: ``better``, ``worse``, ``same``, ``unclear`` or ``n/a``.

    ``better``/``worse`` need both the bootstrap CI of the mean difference to
    exclude 0 in that direction and the p-value to be below ``alpha``: with few
    videos the percentile bootstrap is too narrow, and the rank test guards
    against a CI driven by one or two videos. ``p_value`` is the p-value to
    judge by (the Holm-adjusted one of the comparison's family); by default the
    raw Wilcoxon p-value of ``result``. ``same`` when every paired difference is
    zero; ``n/a`` without direction or data.
    """
    if direction == "none" or result.n == 0 or math.isnan(result.ci_low):
        return "n/a"
    if result.ties == result.n:
        return "same"
    p = result.p_value if p_value is None else p_value
    if not p < alpha:
        return "unclear"
    sign = 1.0 if direction == "higher" else -1.0
    low, high = sorted((sign * result.ci_low, sign * result.ci_high))
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "unclear"
