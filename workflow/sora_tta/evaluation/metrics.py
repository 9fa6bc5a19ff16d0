"""Per-frame comparison of a generated clip with its ground truth.

Pure functions on ``(T, H, W, 3)`` uint8 arrays; LPIPS is passed in as a callable
(see :mod:`sora_tta.evaluation.lpips_model`) so this module needs no torch.
Frame numbers in results are 1-based clip frame numbers: with 33 context frames
the continuation is frames 34-65. Definitions and reasons: ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from skimage.metrics import structural_similarity

from sora_tta.evaluation.definitions import (
    DATA_RANGE,
    PSNR_CAP_DB,
    SEGMENT_CONTEXT,
    SEGMENT_CONTINUATION,
    SSIM_PUBLISHED_SETTINGS,
    SSIM_SETTINGS,
)

LpipsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
# Window side skimage uses with gaussian_weights: 2 * int(3.5 * sigma + 0.5) + 1 = 11.
SSIM_MIN_SIDE = 11


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"clip shapes differ: {a.shape} vs {b.shape}")
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {a.shape}")


def mse_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared error of each frame pair on the 0-255 scale, shape ``(T,)``."""
    _check_pair(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)
    return np.mean(diff * diff, axis=(1, 2, 3))


def psnr_from_mse(
    mse: np.ndarray | float, cap: float = PSNR_CAP_DB, data_range: float = DATA_RANGE
) -> np.ndarray:
    """PSNR in dB, ``10 log10(data_range^2 / mse)``, clipped to at most ``cap`` (also for mse 0)."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(data_range**2 / mse)
    return np.minimum(psnr, cap)


def psnr_per_frame(a: np.ndarray, b: np.ndarray, cap: float = PSNR_CAP_DB) -> np.ndarray:
    """PSNR in dB of each frame pair, capped at ``cap``; shape ``(T,)``."""
    return psnr_from_mse(mse_per_frame(a, b), cap=cap)


def ssim_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each RGB frame pair (Gaussian window, sigma 1.5, data range 255); shape ``(T,)``."""
    _check_pair(a, b)
    return np.array(
        [
            structural_similarity(x, y, channel_axis=-1, **SSIM_SETTINGS)
            for x, y in zip(a, b, strict=True)
        ],
        dtype=np.float64,
    )


def ssim_published_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each RGB frame pair with scikit-image's defaults (7x7 uniform window, sample
    covariance, data range 255): the published evaluation's definition; shape ``(T,)``."""
    _check_pair(a, b)
    return np.array(
        [
            structural_similarity(x, y, channel_axis=-1, **SSIM_PUBLISHED_SETTINGS)
            for x, y in zip(a, b, strict=True)
        ],
        dtype=np.float64,
    )


def temporal_consistency_psnr(frames: np.ndarray, cap: float = PSNR_CAP_DB) -> float:
    """Mean PSNR between consecutive frames (the published "temporal consistency", dB).

    Higher means smoother, not truer: a frozen clip scores ``cap``. Needs two frames.
    """
    if len(frames) < 2:
        raise ValueError(f"temporal consistency needs at least 2 frames, got {len(frames)}")
    return float(np.mean(psnr_per_frame(frames[1:], frames[:-1], cap=cap)))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference of each frame pair on the 0-255 scale; shape ``(T,)``."""
    _check_pair(a, b)
    return np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64)), axis=(1, 2, 3))


def temporal_diffs(
    generated: np.ndarray, reference: np.ndarray, context_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-to-frame change over the continuation, as viewed and in the ground truth.

    The viewed sequence is the real context (ground-truth frames ``1..c``)
    followed by the generated continuation (frames ``c+1..T``). Entry ``i`` of
    each returned array belongs to frame ``c+1+i`` and is the mean absolute
    difference between that frame and the one before it, so entry 0 is the seam
    (real ``c`` -> generated ``c+1``) and the rest measure flicker.
    """
    _check_pair(generated, reference)
    c = context_frames
    viewed = np.concatenate([reference[c - 1 : c], generated[c:]])
    tdiff_gen = mean_abs_diff(viewed[1:], viewed[:-1])
    tdiff_gt = mean_abs_diff(reference[c:], reference[c - 1 : -1])
    return tdiff_gen, tdiff_gt


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def temporal_summary(
    tdiff_gen: np.ndarray, tdiff_gt: np.ndarray, seam_internal: float
) -> dict[str, float | None]:
    """Flicker and seam aggregates from :func:`temporal_diffs` (``None`` where undefined)."""
    flicker_gen = float(np.mean(tdiff_gen[1:]))
    flicker_gt = float(np.mean(tdiff_gt[1:]))
    seam_gen = float(tdiff_gen[0])
    seam_gt = float(tdiff_gt[0])
    return {
        "flicker_gen": flicker_gen,
        "flicker_gt": flicker_gt,
        "flicker_ratio": _ratio(flicker_gen, flicker_gt),
        "flicker_diff": flicker_gen - flicker_gt,
        "flicker_err": abs(flicker_gen - flicker_gt),
        "seam_gen": seam_gen,
        "seam_gt": seam_gt,
        "seam_ratio": _ratio(seam_gen, seam_gt),
        "seam_diff": seam_gen - seam_gt,
        "seam_err": abs(seam_gen - seam_gt),
        "seam_internal": float(seam_internal),
    }


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def _segment(
    generated: np.ndarray, reference: np.ndarray, first_frame: int, lpips_fn: LpipsFn
) -> dict[str, Any]:
    """Per-frame values and aggregates for one contiguous segment (``first_frame`` is 1-based)."""
    mse = mse_per_frame(generated, reference)
    psnr = psnr_from_mse(mse)
    ssim = ssim_per_frame(generated, reference)
    lpips = np.asarray(lpips_fn(generated, reference), dtype=np.float64).reshape(-1)
    if lpips.shape != mse.shape:
        raise ValueError(f"LPIPS returned {lpips.shape[0]} values for {mse.shape[0]} frames")
    return {
        "frames": list(range(first_frame, first_frame + len(mse))),
        "per_frame": {
            "mse": _floats(mse),
            "psnr": _floats(psnr),
            "ssim": _floats(ssim),
            "lpips": _floats(lpips),
        },
        "aggregates": {
            "mse": float(np.mean(mse)),
            "psnr": float(np.mean(psnr)),
            "psnr_clip": float(psnr_from_mse(np.mean(mse))),
            "ssim": float(np.mean(ssim)),
            "ssim_skimage": float(np.mean(ssim_published_per_frame(generated, reference))),
            "lpips": float(np.mean(lpips)),
        },
    }


def evaluate_clips(
    generated: np.ndarray, reference: np.ndarray, context_frames: int, lpips_fn: LpipsFn
) -> dict[str, Any]:
    """All metrics of one generated clip against its ground truth.

    Returns ``{"context": segment, "continuation": segment}``, each with
    ``frames`` (1-based), ``per_frame`` lists and ``aggregates``; the
    continuation also holds the per-frame temporal change and the flicker and
    seam aggregates. ``lpips_fn(a, b)`` returns one LPIPS value per frame pair.
    """
    _check_pair(generated, reference)
    if generated.dtype != np.uint8 or reference.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {generated.dtype} and {reference.dtype}")
    if min(generated.shape[1:3]) < SSIM_MIN_SIDE:
        raise ValueError(
            f"frames of {generated.shape[2]}x{generated.shape[1]} are smaller than SSIM's "
            f"{SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} Gaussian window"
        )
    total = generated.shape[0]
    c = context_frames
    if not 1 <= c <= total - 2:
        raise ValueError(f"context_frames={c} leaves fewer than 2 of {total} frames to compare")
    context = _segment(generated[:c], reference[:c], 1, lpips_fn)
    continuation = _segment(generated[c:], reference[c:], c + 1, lpips_fn)
    tdiff_gen, tdiff_gt = temporal_diffs(generated, reference, c)
    seam_internal = float(mean_abs_diff(generated[c : c + 1], generated[c - 1 : c])[0])
    continuation["per_frame"]["tdiff_gen"] = _floats(tdiff_gen)
    continuation["per_frame"]["tdiff_gt"] = _floats(tdiff_gt)
    continuation["aggregates"].update(temporal_summary(tdiff_gen, tdiff_gt, seam_internal))
    continuation["aggregates"]["tc_psnr"] = temporal_consistency_psnr(generated[c:])
    continuation["aggregates"]["tc_psnr_gt"] = temporal_consistency_psnr(reference[c:])
    return {SEGMENT_CONTEXT: context, SEGMENT_CONTINUATION: continuation}
