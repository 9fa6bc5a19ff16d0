"""Model-level steps of one video continuation, shared by ``smoke`` and per-video generation.

Load the MMDiT and the VAE from a checkpoint folder in the official layout, turn frames into
the v2v_head condition, sample the continuation with the guided sampler, and decode it back to
frames. Noise comes from an explicitly seeded CPU generator, so a seed gives the same start on
every device.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from sora_tta.layout import CheckpointLayout
from sora_tta.models.loader import load_mmdit
from sora_tta.models.mmdit import MMDiT
from sora_tta.models.text import TextEncoders, load_text_encoders
from sora_tta.models.vae import VideoAutoencoder, load_vae
from sora_tta.sampling import (
    GuidanceConfig,
    get_schedule,
    sample_v2v,
    tokens_per_frame,
    v2v_condition,
)

NUM_FRAMES = 65
NUM_COND_FRAMES = 33


class PipelineError(RuntimeError):
    """A generation step produced an unusable result (wrong frame count, non-finite values)."""


@dataclass
class ModelBundle:
    """The models one continuation needs on one device (text embeddings come from the cache)."""

    mmdit: MMDiT
    vae: VideoAutoencoder
    device: torch.device
    dtype: torch.dtype


class V2VCondition(NamedTuple):
    """Visual condition of a continuation and the latent shape ``(1, C, T, H, W)`` to sample."""

    masks: torch.Tensor
    masked_ref: torch.Tensor
    latent_shape: tuple[int, int, int, int, int]


def load_models(
    checkpoint_dir: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    vae_tiling: bool | None = None,
) -> ModelBundle:
    """Load the MMDiT and the VAE of ``checkpoint_dir`` onto ``device`` in ``dtype``."""
    layout = CheckpointLayout(Path(checkpoint_dir))
    device = torch.device(device)
    mmdit = load_mmdit(layout.mmdit, device=device, dtype=dtype)
    vae = load_vae(layout.vae, device=device, dtype=dtype, tiling=vae_tiling)
    return ModelBundle(mmdit=mmdit, vae=vae, device=device, dtype=dtype)


def load_text_encoders_from(
    checkpoint_dir: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TextEncoders:
    """Load T5 and CLIP from the text-encoder folders of ``checkpoint_dir``."""
    layout = CheckpointLayout(Path(checkpoint_dir))
    return load_text_encoders(layout.t5, layout.clip, device=device, dtype=dtype)


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames ``(T, H, W, 3)`` -> float32 video ``(1, 3, T, H, W)`` in ``[-1, 1]``."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).unsqueeze(0)
    return video.float() / 127.5 - 1.0


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """Video ``(1, 3, T, H, W)`` or ``(3, T, H, W)`` -> uint8 frames ``(T, H, W, 3)``.

    Values are clamped to ``[-1, 1]`` and rounded half up, as the reference saves samples.
    """
    if video.ndim == 5:
        if video.shape[0] != 1:
            raise ValueError(f"expected one video, got batch {video.shape[0]}")
        video = video[0]
    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"expected video (3, T, H, W), got {tuple(video.shape)}")
    pixels = ((video.detach().float().clamp(-1, 1) + 1) * 127.5 + 0.5).floor()
    return pixels.clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


def pixel_frames_for(latent_frames: int, time_compression: int = 4) -> int:
    """Pixel frames whose causal encoding gives ``latent_frames`` latent frames: 4(k-1)+1."""
    if latent_frames < 1:
        raise ValueError(f"need at least one latent frame, got {latent_frames}")
    return (latent_frames - 1) * time_compression + 1


def encode_clean_frames(
    bundle: ModelBundle, frames: np.ndarray, latent_frames: int
) -> torch.Tensor:
    """The clean latent ``(1, C, k, H, W)`` of the first ``4(k - 1) + 1`` frames, encoded on
    their own.

    Never a slice of a longer encoding: the VAE's GroupNorms pool statistics over every frame
    of a clip, so the first latent frames of a longer clip depend on its later pixel frames.
    """
    count = pixel_frames_for(latent_frames, bundle.vae.config.time_compression_ratio)
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < count:
        raise ValueError(
            f"{latent_frames} latent frames need {count} pixel frames, got shape {frames.shape}"
        )
    latent = bundle.vae.encode(frames_to_tensor(frames[:count]))
    if latent.shape[2] != latent_frames:
        raise PipelineError(f"{count} frames encoded to {latent.shape[2]} latent frames, "
                            f"expected {latent_frames}")  # fmt: skip
    return latent


def encode_condition(
    bundle: ModelBundle,
    frames: np.ndarray,
    num_cond_frames: int = NUM_COND_FRAMES,
    num_frames: int = NUM_FRAMES,
) -> V2VCondition:
    """Encode the first ``num_cond_frames`` frames as one clip into the v2v_head condition.

    With the defaults, 33 frames give 9 latent frames, conditioned in a 17-frame latent
    (65 frames); the mask is 1 on those 9 frames.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < num_cond_frames:
        raise ValueError(
            f"need at least {num_cond_frames} frames (T, H, W, 3), got shape {frames.shape}"
        )
    if num_cond_frames > num_frames:
        raise ValueError(f"num_cond_frames {num_cond_frames} exceeds num_frames {num_frames}")
    height, width = frames.shape[1:3]
    channels, num_latent, lat_h, lat_w = bundle.vae.latent_shape(num_frames, height, width)
    bundle.vae.latent_shape(num_cond_frames, height, width)  # validates 4k + 1
    ref = bundle.vae.encode(frames_to_tensor(frames[:num_cond_frames]))
    masks, masked_ref = v2v_condition(ref, num_latent, ref.shape[2])
    return V2VCondition(masks, masked_ref, (1, channels, num_latent, lat_h, lat_w))


def make_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal float32 noise from a CPU generator seeded with ``seed``.

    Drawn on the CPU so the same seed gives the same noise on every device.
    """
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


class _CallHook(nn.Module):
    """Wraps a model: runs ``before()`` ahead of every forward and passes each output to
    ``after``; the wrapped model's parameters stay visible (the sampler reads its dtype)."""

    def __init__(
        self,
        model: nn.Module,
        before: Callable[[], None] | None = None,
        after: Callable[[torch.Tensor], None] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.before, self.after = before, after

    def forward(self, **kwargs: torch.Tensor) -> torch.Tensor:
        if self.before is not None:
            self.before()
        out = self.model(**kwargs)
        if self.after is not None:
            self.after(out)
        return out


def sample_continuation(
    bundle: ModelBundle,
    condition: V2VCondition,
    txt_cond: torch.Tensor,
    y_cond: torch.Tensor,
    txt_neg: torch.Tensor,
    y_neg: torch.Tensor,
    guidance: GuidanceConfig,
    seed: int,
    progress: bool = False,
    before_step: Callable[[], None] | None = None,
    on_output: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Sample the latent ``(1, C, T_lat, H_lat, W_lat)`` (float32) of the continued video.

    ``before_step`` runs before every model call (e.g. to stop on a preemption signal by
    raising); ``on_output`` receives every model output (the three branches' velocities).
    """
    device = bundle.device
    noise = make_noise(condition.latent_shape, seed).to(device)
    _, _, num_latent, lat_h, lat_w = condition.latent_shape
    timesteps = get_schedule(guidance.num_steps, tokens_per_frame(lat_h, lat_w), num_latent)
    hooked = before_step is not None or on_output is not None
    model = _CallHook(bundle.mmdit, before_step, on_output) if hooked else bundle.mmdit
    return sample_v2v(
        model,
        noise,
        condition.masks.to(device),
        condition.masked_ref.to(device),
        txt_cond.to(device),
        txt_neg.to(device),
        y_cond.to(device),
        y_neg.to(device),
        timesteps,
        guidance,
        progress,
    )


def first_step_velocities(
    bundle: ModelBundle,
    condition: V2VCondition,
    txt_cond: torch.Tensor,
    y_cond: torch.Tensor,
    txt_neg: torch.Tensor,
    y_neg: torch.Tensor,
    guidance: GuidanceConfig,
    seed: int,
) -> torch.Tensor:
    """The model's three branch velocities ``(3, L, D)`` (float32) at the sampler's first step.

    Exactly what the guided sampler evaluates first for this seed (same noise, ``t = 1`` for
    every schedule, same inputs), in the branch order (prompt, condition), (negative,
    condition), (negative, zero condition).
    """
    outputs: list[torch.Tensor] = []
    one_step = GuidanceConfig(
        num_steps=1, guidance=guidance.guidance, guidance_img=guidance.guidance_img
    )
    sample_continuation(
        bundle, condition, txt_cond, y_cond, txt_neg, y_neg, one_step, seed,
        on_output=lambda out: outputs.append(out.detach().float()),
    )  # fmt: skip
    return outputs[0]


def decode_to_frames(bundle: ModelBundle, latent: torch.Tensor) -> np.ndarray:
    """Decode a latent to uint8 frames, checking frame count and finiteness."""
    video = bundle.vae.decode(latent)
    expected = (latent.shape[2] - 1) * bundle.vae.config.time_compression_ratio + 1
    if video.shape[2] != expected:
        raise PipelineError(f"decoded {video.shape[2]} frames, expected {expected}")
    if not torch.isfinite(video).all():
        raise PipelineError("decoded video has non-finite values")
    return tensor_to_frames(video)


def continue_video(
    bundle: ModelBundle,
    condition: V2VCondition,
    txt_cond: torch.Tensor,
    y_cond: torch.Tensor,
    txt_neg: torch.Tensor,
    y_neg: torch.Tensor,
    guidance: GuidanceConfig,
    seed: int,
    progress: bool = False,
) -> np.ndarray:
    """Continue a video: sample from seeded noise under ``condition`` and decode to uint8 frames.

    Returns all ``(T_lat - 1) * 4 + 1`` frames (65 by default): the model's rendering of the
    conditioning frames followed by the continuation.
    """
    latent = sample_continuation(
        bundle, condition, txt_cond, y_cond, txt_neg, y_neg, guidance, seed, progress
    )
    if not torch.isfinite(latent).all():
        raise PipelineError("sampled latent has non-finite values")
    return decode_to_frames(bundle, latent)
