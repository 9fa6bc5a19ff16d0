"""Per-frame metrics against hand-computed values on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from sora_tta.evaluation import metrics
from sora_tta.evaluation.definitions import PSNR_CAP_DB


def _random_clip(seed: int, frames: int = 3, low: int = 20, high: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(low, high, size=(frames, 24, 20, 3), dtype=np.uint8)


def test_identical_frames_give_capped_psnr_and_ssim_one() -> None:
    clip = _random_clip(0)
    assert np.all(metrics.mse_per_frame(clip, clip) == 0)
    assert np.all(metrics.psnr_per_frame(clip, clip) == PSNR_CAP_DB)
    assert np.allclose(metrics.ssim_per_frame(clip, clip), 1.0)
    assert np.isfinite(metrics.psnr_from_mse(0.0))


def test_psnr_known_shift() -> None:
    gt = _random_clip(1)
    gen = gt + np.uint8(10)  # values stay below 255: every pixel off by exactly 10
    assert np.allclose(metrics.mse_per_frame(gen, gt), 100.0)
    expected = 10 * math.log10(255**2 / 100)  # 28.1308 dB
    assert np.allclose(metrics.psnr_per_frame(gen, gt), expected)
    assert expected == pytest.approx(28.1308, abs=1e-4)


def test_psnr_known_noise_level() -> None:
    gt = _random_clip(2)
    checker = np.indices(gt.shape[1:3]).sum(axis=0) % 2  # +6 / -6 pattern: MSE exactly 36
    noise = np.where(checker[None, :, :, None] == 1, 6, -6)
    gen = (gt.astype(int) + noise).astype(np.uint8)
    assert np.allclose(metrics.psnr_per_frame(gen, gt), 10 * math.log10(255**2 / 36))


def test_psnr_cap_applies_above_cap() -> None:
    assert metrics.psnr_from_mse(1e-12) == PSNR_CAP_DB
    assert metrics.psnr_from_mse(1e-12, cap=200.0) == pytest.approx(10 * math.log10(255**2 / 1e-12))


def test_psnr_frame_mean_differs_from_clip_psnr() -> None:
    gt = np.full((2, 12, 12, 3), 100, dtype=np.uint8)
    gen = gt.copy()
    gen[0] += 1  # MSE 1
    gen[1] += 10  # MSE 100
    record = metrics._segment(gen, gt, 1, lambda a, b: np.zeros(len(a)))
    agg = record["aggregates"]
    per_frame = [10 * math.log10(255**2 / 1), 10 * math.log10(255**2 / 100)]
    assert agg["psnr"] == pytest.approx(np.mean(per_frame))  # 38.13
    assert agg["psnr_clip"] == pytest.approx(10 * math.log10(255**2 / 50.5))  # 31.10
    assert agg["mse"] == pytest.approx(50.5)


def test_ssim_constant_images_hand_value() -> None:
    a, b = 100.0, 110.0
    gt = np.full((1, 16, 16, 3), a, dtype=np.uint8)
    gen = np.full((1, 16, 16, 3), b, dtype=np.uint8)
    c1 = (0.01 * 255) ** 2  # variances are 0, so only the luminance term remains
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert metrics.ssim_per_frame(gen, gt)[0] == pytest.approx(expected, rel=1e-9)


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. SSIM with an 11x11 Gaussian (sigma 1.5), population statistics, per channel."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    pad = 5  # half of the 11-pixel window: skimage averages the map away from the border

    def blur(img: np.ndarray) -> np.ndarray:
        return gaussian_filter(img, sigma=1.5, truncate=3.5, mode="reflect")

    values = []
    for ch in range(3):
        a, b = x[..., ch].astype(float), y[..., ch].astype(float)
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a**2
        var_b = blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        )
        values.append(ssim_map[pad:-pad, pad:-pad].mean())
    return float(np.mean(values))


def test_ssim_matches_gaussian_window_definition() -> None:
    gt = _random_clip(3, frames=2)
    gen = np.clip(gt.astype(int) + np.random.default_rng(4).integers(-30, 30, gt.shape), 0, 255)
    gen = gen.astype(np.uint8)
    ours = metrics.ssim_per_frame(gen, gt)
    for i in range(2):
        assert ours[i] == pytest.approx(_reference_ssim(gen[i], gt[i]), abs=1e-9)
    assert np.all(ours < 1.0)


def test_ssim_inverted_image_is_negative() -> None:
    gt = _random_clip(5, frames=1, low=0, high=256)
    assert metrics.ssim_per_frame(255 - gt, gt)[0] < 0


def _temporal_clips() -> tuple[np.ndarray, np.ndarray]:
    """Ground truth brightens by 2 per frame; generated alternates 100/104 after frame 33."""
    frames = np.arange(1, 66)
    gt = np.broadcast_to((10 + 2 * frames)[:, None, None, None], (65, 12, 12, 3)).astype(np.uint8)
    gen = gt.copy()
    gen[32] = 80  # generated (re-rendered) frame 33
    for t in range(34, 66):
        gen[t - 1] = 100 if t % 2 == 0 else 104
    return gen, gt


def test_flicker_and_seam_hand_values() -> None:
    gen, gt = _temporal_clips()
    tdiff_gen, tdiff_gt = metrics.temporal_diffs(gen, gt, 33)
    assert tdiff_gen.shape == tdiff_gt.shape == (32,)
    assert tdiff_gen[0] == 24  # |gen 34 (100) - gt 33 (76)|
    assert np.all(tdiff_gen[1:] == 4)
    assert np.all(tdiff_gt == 2)
    seam_internal = metrics.mean_abs_diff(gen[33:34], gen[32:33])[0]
    agg = metrics.temporal_summary(tdiff_gen, tdiff_gt, seam_internal)
    assert agg["flicker_gen"] == 4 and agg["flicker_gt"] == 2
    assert agg["flicker_ratio"] == 2 and agg["flicker_diff"] == 2 and agg["flicker_err"] == 2
    assert agg["seam_gen"] == 24 and agg["seam_gt"] == 2
    assert agg["seam_ratio"] == 12 and agg["seam_diff"] == 22 and agg["seam_err"] == 22
    assert agg["seam_internal"] == 20  # |gen 34 (100) - gen 33 (80)|


def test_static_ground_truth_gives_undefined_ratios() -> None:
    gt = np.full((65, 8, 8, 3), 50, dtype=np.uint8)
    gen = gt.copy()
    gen[40] = 60
    tdiff_gen, tdiff_gt = metrics.temporal_diffs(gen, gt, 33)
    agg = metrics.temporal_summary(tdiff_gen, tdiff_gt, 0.0)
    assert agg["flicker_ratio"] is None and agg["seam_ratio"] is None
    assert agg["flicker_gt"] == 0
    assert agg["flicker_gen"] == pytest.approx(20 / 31)  # two 10-level jumps over 31 transitions
    assert agg["flicker_err"] == pytest.approx(20 / 31)


def test_evaluate_clips_structure_and_segments() -> None:
    gen, gt = _temporal_clips()
    calls = []

    def lpips_fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        calls.append(len(a))
        return metrics.mean_abs_diff(a, b) / 255.0

    result = metrics.evaluate_clips(gen, gt, 33, lpips_fn)
    assert calls == [33, 32]
    ctx, cont = result["context"], result["continuation"]
    assert ctx["frames"] == list(range(1, 34)) and cont["frames"] == list(range(34, 66))
    assert ctx["per_frame"]["psnr"][:32] == [PSNR_CAP_DB] * 32  # frames 1-32 untouched
    assert len(cont["per_frame"]["tdiff_gen"]) == 32
    assert cont["aggregates"]["seam_gen"] == 24
    assert "flicker_gen" not in ctx["aggregates"]


def test_evaluate_clips_rejects_bad_input() -> None:
    gen, gt = _temporal_clips()
    zeros = lambda a, b: np.zeros(len(a))  # noqa: E731
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.evaluate_clips(gen[:-1], gt, 33, zeros)
    with pytest.raises(ValueError, match="context_frames"):
        metrics.evaluate_clips(gen, gt, 64, zeros)
    with pytest.raises(ValueError, match="uint8"):
        metrics.evaluate_clips(gen.astype(np.float32), gt.astype(np.float32), 33, zeros)
    with pytest.raises(ValueError, match="LPIPS returned"):
        metrics.evaluate_clips(gen, gt, 33, lambda a, b: np.zeros(1))
    with pytest.raises(ValueError, match="11x11"):
        metrics.evaluate_clips(gen[:, :8], gt[:, :8], 33, zeros)


def _uniform_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM with a 7x7 uniform window and sample (N-1) statistics, per channel: the
    published evaluation's scikit-image defaults written out."""
    from scipy.ndimage import uniform_filter

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    n, pad = 49, 3
    values = []
    for ch in range(3):
        a, b = x[..., ch].astype(float), y[..., ch].astype(float)

        def box(img: np.ndarray) -> np.ndarray:
            return uniform_filter(img, size=7, mode="reflect")

        mu_a, mu_b = box(a), box(b)
        var_a = (box(a * a) - mu_a**2) * n / (n - 1)
        var_b = (box(b * b) - mu_b**2) * n / (n - 1)
        cov = (box(a * b) - mu_a * mu_b) * n / (n - 1)
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        )
        values.append(ssim_map[pad:-pad, pad:-pad].mean())
    return float(np.mean(values))


def test_published_ssim_is_the_uniform_window_definition() -> None:
    gt = _random_clip(7, frames=2)
    noise = np.random.default_rng(8).integers(-30, 30, gt.shape)
    gen = np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8)
    published = metrics.ssim_published_per_frame(gen, gt)
    for i in range(2):
        assert published[i] == pytest.approx(_uniform_ssim(gen[i], gt[i]), abs=1e-9)
    assert not np.allclose(published, metrics.ssim_per_frame(gen, gt), atol=1e-3)


def test_temporal_consistency_hand_values() -> None:
    gen, gt = _temporal_clips()
    # generated continuation alternates 100/104: every consecutive MSE is 16
    assert metrics.temporal_consistency_psnr(gen[33:]) == pytest.approx(
        10 * math.log10(255**2 / 16)
    )
    assert metrics.temporal_consistency_psnr(gt[33:]) == pytest.approx(10 * math.log10(255**2 / 4))
    frozen = np.repeat(gen[33:34], 5, axis=0)
    assert metrics.temporal_consistency_psnr(frozen) == PSNR_CAP_DB  # smooth is not true
    with pytest.raises(ValueError, match="at least 2 frames"):
        metrics.temporal_consistency_psnr(gen[:1])


def test_published_definitions_are_in_the_continuation_aggregates() -> None:
    gen, gt = _temporal_clips()
    result = metrics.evaluate_clips(gen, gt, 33, lambda a, b: np.zeros(len(a)))
    cont = result["continuation"]["aggregates"]
    assert cont["tc_psnr"] == pytest.approx(10 * math.log10(255**2 / 16))
    assert cont["tc_psnr_gt"] == pytest.approx(10 * math.log10(255**2 / 4))
    expected = np.mean(metrics.ssim_published_per_frame(gen[33:], gt[33:]))
    assert cont["ssim_skimage"] == pytest.approx(expected)
    mse = np.mean(metrics.mse_per_frame(gen[33:], gt[33:]))  # one MSE over all 32 frames
    assert cont["psnr_clip"] == pytest.approx(10 * math.log10(255**2 / mse))
    assert "ssim_skimage" in result["context"]["aggregates"]
