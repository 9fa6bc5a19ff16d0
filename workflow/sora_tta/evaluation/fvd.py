"""Fréchet Video Distance (FVD): an optional, set-level metric with the standard I3D network.

The detector is the TorchScript I3D (Kinetics-400) ``i3d_torchscript.pt`` that StyleGAN-V
published (``src/metrics/frechet_video_distance.py``: ``detector_url``, see :data:`WEIGHTS_URL`)
and that its ``fvd-comparison`` repository checked against the original TensorFlow FVD
(``compare_models.py``). It is called as in ``fvd-comparison`` and the many repositories
derived from it: ``detector(x, rescale=False, resize=False, return_features=True)`` with
``x`` float ``(B, 3, T, 224, 224)`` in ``[-1, 1]``, giving the 400 logits before the softmax
as features. The resize is ours (:func:`preprocess`): shorter side to 224 (bilinear),
center crop to 224 x 224. The weights are supplied by the user; nothing is downloaded.

FVD of a method = Fréchet distance between Gaussians fitted to the features of its generated
continuations and of the ground-truth continuations (frames ``context+1 .. num_frames``,
all of them fed at once) of the same videos. Definition and caveats: docs/metrics.md.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg

from sora_tta.evaluation.definitions import (
    CONTEXT_FRAMES,
    FVD_BOOTSTRAP_RESAMPLES,
    NUM_FRAMES,
)
from sora_tta.evaluation.stats import BootstrapConfig
from sora_tta.hashing import file_sha256

log = logging.getLogger(__name__)

#: Where StyleGAN-V downloads the detector from (documentation only: never fetched here).
WEIGHTS_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
WEIGHTS_FILE = "i3d_torchscript.pt"
#: Side of the square frames the detector is fed.
INPUT_SIZE = 224
#: Keyword arguments of every detector call: the input is already in [-1, 1] and 224 x 224.
DETECTOR_KWARGS = {"rescale": False, "resize": False, "return_features": True}
FVD_BOOTSTRAP = BootstrapConfig(n_resamples=FVD_BOOTSTRAP_RESAMPLES)
FVD_COLUMNS = [
    "role", "method", "n_videos", "fvd", "fvd_ci_low", "fvd_ci_high", "fvd_boot_shift",
    "baseline", "baseline_fvd", "diff", "diff_ci_low", "diff_ci_high", "diff_boot_shift",
    "n_resamples", "confidence", "seed", "frames", "input", "feature_dim", "weights",
    "weights_sha256", "skipped",
]  # fmt: skip


class FvdError(ValueError):
    """FVD cannot be computed (the message names the file or the reason)."""


@dataclass(frozen=True)
class FvdConfig:
    """How FVD is computed: which frames, the detector batch, the bootstrap, the device."""

    weights: str | None = None
    context_frames: int = CONTEXT_FRAMES
    num_frames: int = NUM_FRAMES
    batch_size: int = 4
    bootstrap: BootstrapConfig = FVD_BOOTSTRAP
    device: str = "cpu"

    @property
    def frames_label(self) -> str:
        """The scored frames, 1-based (e.g. ``34-65``)."""
        return f"{self.context_frames + 1}-{self.num_frames}"


def load_detector(path: str | os.PathLike[str], device: str = "cpu") -> Any:
    """The TorchScript I3D at ``path``, in eval mode on ``device``; :class:`FvdError` naming
    the file when it is missing or not a TorchScript module."""
    import torch

    if not os.path.isfile(path):
        raise FvdError(
            f"{path}: FVD weights not found (expected {WEIGHTS_FILE} from {WEIGHTS_URL})"
        )
    try:
        with warnings.catch_warnings():  # TorchScript is the format the weights are published in
            warnings.simplefilter("ignore", FutureWarning)
            detector = torch.jit.load(str(path), map_location=device)
    except Exception as err:  # torch raises RuntimeError, ValueError or zip errors
        raise FvdError(
            f"{path}: not a TorchScript module ({type(err).__name__}: {_last_line(err)}); "
            f"FVD needs the I3D detector {WEIGHTS_FILE} ({WEIGHTS_URL})"
        ) from err
    return detector.eval()


def _last_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[-1] if lines else ""


def preprocess(frames: np.ndarray, size: int = INPUT_SIZE) -> Any:
    """``(T, H, W, 3)`` uint8 frames -> float tensor ``(3, T, size, size)`` in ``[-1, 1]``:
    the shorter side resized to ``size`` (bilinear, no antialiasing, as the reference FVD
    code does), then a center crop. A 224 x 288 clip is only cropped (columns 32-255)."""
    import torch
    import torch.nn.functional as F

    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    _, _, h, w = video.shape
    scale = size / min(h, w)
    target = (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)
    if target != (h, w):
        video = F.interpolate(video, size=target, mode="bilinear", align_corners=False)
    h, w = video.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    video = video[:, :, top : top + size, left : left + size]
    return (video * 2.0 - 1.0).permute(1, 0, 2, 3).contiguous()


def extract_features(
    detector: Any,
    clips: Iterable[tuple[str, np.ndarray]],
    batch_size: int = 4,
    device: str = "cpu",
    weights: str | os.PathLike[str] = WEIGHTS_FILE,
) -> np.ndarray:
    """Features ``(N, D)`` (float64) of ``(name, frames)`` clips, ``batch_size`` at a time.

    A failing detector call, or an output that is not one finite feature vector per clip,
    raises :class:`FvdError` naming ``weights`` (and the clips of the batch)."""
    import torch

    features: list[np.ndarray] = []
    names: list[str] = []
    batch: list[Any] = []

    def flush() -> None:
        x = torch.stack(batch).to(device)
        try:
            with torch.no_grad():
                out = detector(x, **DETECTOR_KWARGS)
        except Exception as err:
            raise FvdError(
                f"{weights}: the detector call detector(x, rescale=False, resize=False, "
                f"return_features=True) on x {tuple(x.shape)} ({', '.join(names)}) failed: "
                f"{type(err).__name__}: {_last_line(err)}"
            ) from err
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(batch):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise FvdError(
                f"{weights}: the detector returned {shape} for {len(batch)} clips; expected "
                "(clips, features) (the I3D features are 400 logits per clip)"
            )
        array = out.detach().double().cpu().numpy()
        if not np.isfinite(array).all():
            raise FvdError(f"{weights}: non-finite features for {', '.join(names)}")
        features.append(array)
        batch.clear()
        names.clear()

    for name, frames in clips:
        batch.append(preprocess(frames))
        names.append(name)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not features:
        raise FvdError("no clips to extract FVD features from")
    return np.concatenate(features)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ``ddof=1``) covariance of ``(N, D)`` features, N >= 2."""
    if features.ndim != 2 or len(features) < 2:
        raise FvdError(f"FVD needs at least 2 videos, got {len(features)}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` (the Fréchet / 2-Wasserstein distance
    between two Gaussians), with ``scipy.linalg.sqrtm`` and the real part of its trace.

    With fewer samples than dimensions the covariances are singular and ``sqrtm`` of their
    product can fail; then ``eps`` is added to both diagonals (as pytorch-fid does). The
    imaginary part that rounding leaves is dropped. The result is not clamped: a set against
    itself gives about 0, possibly a tiny negative number."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are expected with few videos
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(sigma1)) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(covmean).all():
            raise FvdError("the matrix square root of the covariance product is not finite")
    trace_covmean = float(np.real(np.trace(covmean)))
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """``tr sqrtm(S_a S_b)`` for the covariances (``ddof=1``) of features ``a`` ``(N_a, D)``
    and ``b`` ``(N_b, D)``, without the ``D x D`` matrix square root.

    With ``A``, ``B`` the centered features, ``S_a S_b = A^T (A B^T B) / c`` has the nonzero
    eigenvalues of ``(A B^T)(A B^T)^T / c``, ``c = (N_a - 1)(N_b - 1)``: the trace of the
    root is the sum of the singular values of ``A B^T`` over ``sqrt(c)``, an
    ``N_a x N_b`` SVD. With more videos than dimensions the same trace comes from the
    eigenvalues of the symmetric ``S_a^(1/2) S_b S_a^(1/2)``. Both are exact and, unlike
    ``sqrtm`` of a product of singular covariances, need no regularisation."""
    a_c, b_c = a - a.mean(axis=0), b - b.mean(axis=0)
    if max(len(a), len(b)) <= a.shape[1]:
        singular = scipy.linalg.svdvals(a_c @ b_c.T)
        return float(singular.sum() / math.sqrt((len(a) - 1) * (len(b) - 1)))
    s_a, s_b = gaussian_stats(a)[1], gaussian_stats(b)[1]
    values, vectors = np.linalg.eigh(s_a)
    root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    product = np.linalg.eigvalsh(root @ s_b @ root)
    return float(np.sqrt(np.clip(product, 0.0, None)).sum())


def fvd(generated: np.ndarray, reference: np.ndarray) -> float:
    """FVD between two feature sets ``(N, D)`` (rows need not correspond): the Fréchet
    distance of their Gaussians, :func:`frechet_distance`'s formula with the trace of the
    root from :func:`trace_sqrt_product` (same value, 100x faster on 100 videos x 400
    features, which the bootstrap needs thousands of times)."""
    for features in (generated, reference):
        if features.ndim != 2 or len(features) < 2:
            raise FvdError(f"FVD needs at least 2 videos, got {len(features)}")
    diff = generated.mean(axis=0) - reference.mean(axis=0)
    traces = [float(f.var(axis=0, ddof=1).sum()) for f in (generated, reference)]
    root = trace_sqrt_product(generated, reference)
    return float(diff @ diff + traces[0] + traces[1] - 2.0 * root)


@dataclass(frozen=True)
class FvdComparison:
    """FVD of a method (and of the baseline on the same videos) with bootstrap CIs, and how
    far the resampled values lay from the estimates (``*_shift``, removed from the CIs)."""

    fvd: float
    fvd_ci: tuple[float, float]
    fvd_shift: float
    baseline_fvd: float | None = None
    diff_ci: tuple[float, float] | None = None
    diff_shift: float | None = None


def recentred_ci(
    estimate: float, resampled: Sequence[float], confidence: float
) -> tuple[tuple[float, float], float]:
    """Percentile bootstrap CI moved by ``estimate - mean(resampled)``, and that shift's
    opposite (``mean(resampled) - estimate``).

    FVD is biased upward, the more the fewer distinct videos; a resample with replacement
    holds about 63 % distinct videos, so resampled FVDs lie above the estimate and a plain
    percentile interval can miss the estimate altogether. The recentred interval keeps the
    spread of the resampling distribution around the estimate (a CI for FVD at this number
    of videos, not for its limit with infinitely many)."""
    values = np.asarray(resampled, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan")), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    shift = float(values.mean() - estimate)
    return (float(low - shift), float(high - shift)), shift


def compare_fvd(
    method: np.ndarray,
    reference: np.ndarray,
    baseline: np.ndarray | None = None,
    bootstrap: BootstrapConfig = FVD_BOOTSTRAP,
) -> FvdComparison:
    """FVD of ``method`` vs ``reference`` features (row i of each = video i) and, given the
    ``baseline``'s features of the same videos, the difference method - baseline.

    Bootstrap over videos: each resample draws videos with replacement (seeded by
    ``bootstrap.seed``) and recomputes both FVDs on those videos (generated and ground truth
    alike), so the method and the baseline always see the same resample; the CIs are
    :func:`recentred_ci`."""
    n = len(reference)
    if len(method) != n or (baseline is not None and len(baseline) != n):
        raise FvdError("method, baseline and reference features must cover the same videos")
    value = fvd(method, reference)
    base_value = None if baseline is None else fvd(baseline, reference)
    rng = np.random.default_rng(bootstrap.seed)
    values, diffs = [], []
    for _ in range(bootstrap.n_resamples):
        idx = rng.integers(0, n, size=n)
        if len(np.unique(idx)) < 2:  # a resample of one video has no covariance
            continue
        v = fvd(method[idx], reference[idx])
        values.append(v)
        if baseline is not None:
            diffs.append(v - fvd(baseline[idx], reference[idx]))
    fvd_ci, fvd_shift = recentred_ci(value, values, bootstrap.confidence)
    if base_value is None:
        return FvdComparison(value, fvd_ci, fvd_shift)
    diff_ci, diff_shift = recentred_ci(value - base_value, diffs, bootstrap.confidence)
    return FvdComparison(value, fvd_ci, fvd_shift, base_value, diff_ci, diff_shift)


# ---------------------------------------------------------------- the study's table
@dataclass(frozen=True)
class FvdSet:
    """The videos one method is scored on in one role, and their files."""

    role: str
    method: str
    videos: tuple[str, ...]


def skipped_table(methods: Sequence[str], reason: str) -> pd.DataFrame:
    """One row per method saying why FVD was not computed."""
    rows = [{"method": m, "skipped": reason} for m in methods]
    return pd.DataFrame(rows, columns=FVD_COLUMNS)


def fvd_table(
    sets: Sequence[FvdSet],
    baseline: str,
    features_of: Callable[[str, str], np.ndarray],
    config: FvdConfig,
    weights_sha256: str,
) -> pd.DataFrame:
    """One row per (role, method): FVD on the videos where both the method and the baseline
    have a generation, the baseline's FVD on the same videos and the difference, with
    bootstrap CIs. ``features_of(kind, video)`` gives one video's feature vector, ``kind``
    being a method id or ``"reference"``."""
    rows = []
    for s in sets:
        row: dict[str, Any] = {
            "role": s.role,
            "method": s.method,
            "n_videos": len(s.videos),
            "baseline": baseline,
            "n_resamples": config.bootstrap.n_resamples,
            "confidence": config.bootstrap.confidence,
            "seed": config.bootstrap.seed,
            "frames": config.frames_label,
            "input": f"{config.num_frames - config.context_frames}x{INPUT_SIZE}x{INPUT_SIZE}",
            "weights": config.weights,
            "weights_sha256": weights_sha256,
        }
        if len(s.videos) < 2:
            row["skipped"] = f"{len(s.videos)} video(s) with a generation: FVD needs at least 2"
            rows.append(row)
            continue
        ref = np.stack([features_of("reference", v) for v in s.videos])
        gen = np.stack([features_of(s.method, v) for v in s.videos])
        base = None
        if s.method != baseline:
            base = np.stack([features_of(baseline, v) for v in s.videos])
        result = compare_fvd(gen, ref, base, config.bootstrap)
        row.update(
            fvd=result.fvd,
            fvd_ci_low=result.fvd_ci[0],
            fvd_ci_high=result.fvd_ci[1],
            fvd_boot_shift=result.fvd_shift,
            feature_dim=ref.shape[1],
        )
        if result.baseline_fvd is not None and result.diff_ci is not None:
            row.update(
                baseline_fvd=result.baseline_fvd,
                diff=result.fvd - result.baseline_fvd,
                diff_ci_low=result.diff_ci[0],
                diff_ci_high=result.diff_ci[1],
                diff_boot_shift=result.diff_shift,
            )
        if len(s.videos) <= ref.shape[1]:
            log.warning(
                "%s / %s: %d videos for %d-dimensional features: the covariances are singular "
                "and FVD is dominated by its small-sample bias (not meaningful)",
                s.role, s.method, len(s.videos), ref.shape[1],
            )  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows, columns=FVD_COLUMNS)


def fvd_sets(
    roles: Mapping[str, str],
    methods: Sequence[str],
    baseline: str,
    final: Sequence[str],
    ok: Callable[[str, str], bool],
) -> list[FvdSet]:
    """The (role, method) sets: per role (test, then validation) the methods that run on it
    (:func:`sora_tta.data.manifest.method_runs_on`), each on the videos of that role where it
    and the baseline succeeded (``ok(method, video)``)."""
    from sora_tta.data.manifest import ROLE_TEST, ROLE_VALIDATION, method_runs_on

    has_validation = ROLE_VALIDATION in roles.values()
    sets = []
    for role in (ROLE_TEST, ROLE_VALIDATION):
        videos = [v for v, r in roles.items() if r == role]
        if not videos:
            continue
        for method in methods:
            if role not in method_runs_on(method, final, has_validation, baseline):
                continue
            kept = tuple(v for v in videos if ok(method, v) and ok(baseline, v))
            sets.append(FvdSet(role, method, kept))
    return sets


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the FVD table atomically."""
    from sora_tta.io import atomic_path

    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


#: Why FVD is absent from a run without weights (written into the table).
NO_WEIGHTS_REASON = (
    f"no I3D weights: evaluation.fvd_weights is not set (FVD needs {WEIGHTS_FILE}, "
    "supplied by the user; see README)"
)


def continuation_clips(
    items: Iterable[tuple[str, str]], config: FvdConfig
) -> Iterable[tuple[str, np.ndarray]]:
    """``(name, path)`` -> ``(name, frames after the context)``; :class:`FvdError` naming the
    file when it cannot be decoded or has the wrong number of frames."""
    from sora_tta.data.video import VideoReadError, read_frames

    for name, path in items:
        try:
            frames = read_frames(path)
        except VideoReadError as err:
            raise FvdError(str(err)) from err
        if len(frames) != config.num_frames:
            raise FvdError(f"{path} has {len(frames)} frames; expected {config.num_frames}")
        yield name, frames[config.context_frames :]


def study_fvd(
    generations_dir: str | os.PathLike[str],
    clips_dir: str | os.PathLike[str],
    roles: Mapping[str, str],
    methods: Sequence[str],
    baseline: str,
    final: Sequence[str],
    config: FvdConfig,
) -> pd.DataFrame:
    """The FVD table of a study: every (role, method) set of :func:`fvd_sets`, generated
    continuations from ``generations_dir/{method}/{video}/`` (a generation whose
    ``meta.json`` records a failure leaves that video out for the method), ground truth from
    ``clips_dir/{video}.mkv``; without weights, :func:`skipped_table`."""
    from sora_tta.evaluation.failures import generation_outcome
    from sora_tta.layout import META_FILE

    if config.weights is None:
        return skipped_table(methods, NO_WEIGHTS_REASON)
    detector = load_detector(config.weights, config.device)
    sha = file_sha256(config.weights)
    videos: dict[tuple[str, str], str | None] = {}  # (method, video) -> its video, None: failed

    def ok(method: str, video: str) -> bool:
        if (method, video) not in videos:
            meta = os.path.join(generations_dir, method, video, META_FILE)
            try:
                failure, path = generation_outcome(meta)
            except ValueError as err:
                raise FvdError(str(err)) from err
            videos[method, video] = None if failure is not None else path
        return videos[method, video] is not None

    sets = fvd_sets(roles, methods, baseline, final, ok)
    needed: dict[str, dict[str, None]] = {}  # kind -> videos (ordered, unique)
    for s in sets:
        for kind in ("reference", s.method, baseline):
            needed.setdefault(kind, {}).update(dict.fromkeys(s.videos))
    features: dict[tuple[str, str], np.ndarray] = {}
    for kind, kind_set in needed.items():
        kind_videos = list(kind_set)
        if not kind_videos:
            continue
        paths = [
            (v, os.path.join(clips_dir, f"{v}.mkv") if kind == "reference" else videos[kind, v])
            for v in kind_videos
        ]
        block = extract_features(
            detector, continuation_clips(paths, config), config.batch_size, config.device,
            config.weights,
        )  # fmt: skip
        features.update({(kind, v): row for v, row in zip(kind_videos, block, strict=True)})
        log.info("FVD features of %s: %d videos", kind, len(kind_videos))
    return fvd_table(sets, baseline, lambda k, v: features[k, v], config, sha)
