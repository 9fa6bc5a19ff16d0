"""Names, directions and fixed settings of the evaluation metrics.

One registry shared by the per-video metrics, the aggregation tables and the
figures, so a metric's meaning (and which way is better) is written down once.
The definitions themselves are explained in ``docs/metrics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "none"]

SCHEMA = "sora_tta.metrics/1"  # one (video, method) record
FILE_SCHEMA = "sora_tta.metrics-file/1"  # a file: the records of one (method, class)
DATA_RANGE = 255.0
PSNR_CAP_DB = 100.0
NUM_FRAMES = 65
CONTEXT_FRAMES = 33
#: The optional FVD table (``sora-tta fvd``), beside the aggregate tables.
FVD_FILE = "fvd.csv"
#: Bootstrap resamples over videos of the FVD table (each costs two matrix square roots).
FVD_BOOTSTRAP_RESAMPLES = 1000

# scikit-image settings that reproduce the original SSIM (Wang et al. 2004):
# 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma), population covariance.
SSIM_SETTINGS: dict[str, float | bool] = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": DATA_RANGE,
}

# The published evaluation's SSIM: scikit-image's defaults (7x7 uniform window, sample
# covariance), RGB frames, data range 255 (what scikit-image infers for uint8).
SSIM_PUBLISHED_SETTINGS: dict[str, float | bool] = {
    "gaussian_weights": False,
    "win_size": 7,
    "use_sample_covariance": True,
    "data_range": DATA_RANGE,
}

SEGMENT_CONTEXT = "context"
SEGMENT_CONTINUATION = "continuation"
SEGMENTS = (SEGMENT_CONTINUATION, SEGMENT_CONTEXT)


@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures and which direction counts as better.

    ``gt_only`` marks quantities computed from the ground truth alone: they are
    equal for every method, so paired comparisons skip them.
    """

    label: str
    direction: Direction
    gt_only: bool = False


METRICS: dict[str, MetricInfo] = {
    "psnr": MetricInfo("PSNR (dB), mean of per-frame values", "higher"),
    "psnr_clip": MetricInfo(
        "PSNR (dB) of one MSE over the segment (published definition)", "higher"
    ),
    "ssim_skimage": MetricInfo(
        "SSIM, scikit-image defaults, 7x7 uniform (published definition)", "higher"
    ),
    "mse": MetricInfo("MSE (0-255 scale)", "lower"),
    "ssim": MetricInfo("SSIM", "higher"),
    "lpips": MetricInfo("LPIPS (AlexNet)", "lower"),
    "flicker_gen": MetricInfo("flicker of the generated frames (0-255)", "none"),
    "flicker_gt": MetricInfo("flicker of the ground truth (0-255)", "none", gt_only=True),
    "flicker_ratio": MetricInfo("flicker ratio generated / ground truth", "none"),
    "flicker_diff": MetricInfo("flicker generated - ground truth (0-255)", "none"),
    "flicker_err": MetricInfo("|flicker generated - ground truth| (0-255)", "lower"),
    "seam_gen": MetricInfo("seam change real 33 -> generated 34 (0-255)", "none"),
    "seam_gt": MetricInfo("seam change real 33 -> real 34 (0-255)", "none", gt_only=True),
    "seam_ratio": MetricInfo("seam ratio generated / ground truth", "none"),
    "seam_diff": MetricInfo("seam generated - ground truth (0-255)", "none"),
    "seam_err": MetricInfo("|seam generated - ground truth| (0-255)", "lower"),
    "seam_internal": MetricInfo("change generated 33 -> generated 34 (0-255)", "none"),
    "tdiff_gen": MetricInfo("mean |frame t - frame t-1| as viewed (0-255)", "none"),
    "tdiff_gt": MetricInfo("mean |frame t - frame t-1| ground truth (0-255)", "none", gt_only=True),
    "tc_psnr": MetricInfo(
        "temporal consistency: mean PSNR (dB) of consecutive generated frames (published)",
        "none",
    ),
    "tc_psnr_gt": MetricInfo("temporal consistency of the ground truth (dB)", "none", gt_only=True),
}

# Metrics stored per frame in the per-video files (in this order).
PER_FRAME_METRICS = ("mse", "psnr", "ssim", "lpips")
TEMPORAL_PER_FRAME = ("tdiff_gen", "tdiff_gt")
# Metrics the headline tables and figures use.
PRIMARY_METRICS = ("psnr", "ssim", "lpips", "flicker_err", "seam_err")
# The published table's definitions (video-level PSNR, scikit-image SSIM, LPIPS, temporal
# consistency), reported beside the project's own; no best-of-N selection anywhere.
PUBLISHED_METRICS = ("psnr_clip", "ssim_skimage", "lpips", "tc_psnr")


def direction(metric: str) -> Direction:
    """Return which direction is better for ``metric`` (``"none"`` when unknown)."""
    info = METRICS.get(metric)
    return info.direction if info else "none"


def label(metric: str) -> str:
    """Return a human-readable label for ``metric``."""
    info = METRICS.get(metric)
    return info.label if info else metric
