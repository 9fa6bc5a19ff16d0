"""Sampling math of Open-Sora v2.0 video continuation ("v2v_head"); no model loading here.

- the shifted flow-matching schedule (``time_shift``, ``compute_shift_alpha``, ``get_schedule``),
- token layout (``patchify``/``unpatchify``, ``make_img_ids``, ``make_txt_ids``),
- the visual condition (``v2v_condition``, ``build_cond``),
- the three-branch classifier-free-guided Euler sampler (``sample_v2v``).

Latents are (B, C, T, H, W) with H, W the latent height and width (pixels / 8).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn
from tqdm import tqdm

PATCH_SIZE = 2
# The shift line passes through (256 tokens, 1.0) and (4096 tokens, 3.0).
_SHIFT_X1, _SHIFT_Y1, _SHIFT_X2, _SHIFT_Y2 = 256.0, 1.0, 4096.0, 3.0
# Guidance oscillation starts at this 0-based step index (then every odd step uses scale 1).
OSCILLATION_START = 10

_Time = TypeVar("_Time", float, Tensor)


def time_shift(alpha: float, t: _Time) -> _Time:
    """Shift flow times towards the noise end: ``alpha t / (1 + (alpha - 1) t)``."""
    return alpha * t / (1 + (alpha - 1) * t)


def compute_shift_alpha(tokens_per_frame: int, num_latent_frames: int) -> float:
    """Resolution-dependent shift: the line through (256, 1), (4096, 3) times ``sqrt(T_lat)``.

    ``tokens_per_frame`` is the number of 2x2 patches per latent frame, ``H_lat * W_lat / 4``.
    """
    slope = (_SHIFT_Y2 - _SHIFT_Y1) / (_SHIFT_X2 - _SHIFT_X1)
    intercept = _SHIFT_Y1 - slope * _SHIFT_X1
    return (slope * tokens_per_frame + intercept) * math.sqrt(num_latent_frames)


def tokens_per_frame(height: int, width: int, patch_size: int = PATCH_SIZE) -> int:
    """Number of patch tokens in one latent frame of size ``height`` x ``width``."""
    return (height * width) // (patch_size * patch_size)


def get_schedule(
    num_steps: int, tokens_per_frame: int, num_latent_frames: int, shift: bool = True
) -> list[float]:
    """``num_steps + 1`` flow times from 1 (noise) to 0 (data), shifted as the reference does.

    Computed in float32 like the reference so the values agree bit for bit.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    timesteps = torch.linspace(1, 0, num_steps + 1)
    if shift:
        timesteps = time_shift(compute_shift_alpha(tokens_per_frame, num_latent_frames), timesteps)
    return timesteps.tolist()


def _check_5d(name: str, x: Tensor) -> None:
    if x.ndim != 5:
        raise ValueError(f"{name} must be a (B, C, T, H, W) latent, got shape {tuple(x.shape)}")


def patchify(latent: Tensor, patch_size: int = PATCH_SIZE) -> Tensor:
    """(B, C, T, H, W) -> (B, T*(H/p)*(W/p), C*p*p).

    Tokens are in (t, h, w) order and each token's channels in (c, ph, pw) order.
    """
    _check_5d("latent", latent)
    b, c, t, h, w = latent.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"latent height/width {h}x{w} not divisible by patch size {p}")
    x = latent.reshape(b, c, t, h // p, p, w // p, p)
    x = x.permute(0, 2, 3, 5, 1, 4, 6)  # b t h w c ph pw
    return x.reshape(b, t * (h // p) * (w // p), c * p * p)


def unpatchify(
    tokens: Tensor, num_frames: int, height: int, width: int, patch_size: int = PATCH_SIZE
) -> Tensor:
    """Inverse of ``patchify``: (B, L, C*p*p) -> (B, C, num_frames, height, width)."""
    b, length, d = tokens.shape
    p = patch_size
    h, w = height // p, width // p
    if height % p or width % p or length != num_frames * h * w or d % (p * p):
        raise ValueError(
            f"tokens {tuple(tokens.shape)} do not fit a {num_frames}x{height}x{width} latent "
            f"with patch size {p}"
        )
    x = tokens.reshape(b, num_frames, h, w, d // (p * p), p, p)
    x = x.permute(0, 4, 1, 2, 5, 3, 6)  # b c t h ph w pw
    return x.reshape(b, d // (p * p), num_frames, height, width)


def make_img_ids(
    batch: int,
    num_frames: int,
    height: int,
    width: int,
    patch_size: int = PATCH_SIZE,
    device: torch.device | str | None = None,
) -> Tensor:
    """Positions (B, L, 3) float32: integer (t, h, w) of each token, h/w in patch units.

    ``height`` and ``width`` are latent sizes; token order matches ``patchify``.
    """
    h, w = height // patch_size, width // patch_size
    grid = torch.meshgrid(
        torch.arange(num_frames, device=device),
        torch.arange(h, device=device),
        torch.arange(w, device=device),
        indexing="ij",
    )
    ids = torch.stack(grid, dim=-1).reshape(1, num_frames * h * w, 3).float()
    return ids.expand(batch, -1, -1).contiguous()


def make_txt_ids(batch: int, length: int, device: torch.device | str | None = None) -> Tensor:
    """Text positions (B, S, 3): all zero in Open-Sora."""
    return torch.zeros(batch, length, 3, device=device)


def v2v_condition(
    ref_latent: Tensor, num_latent_frames_total: int, num_cond_frames: int
) -> tuple[Tensor, Tensor]:
    """Video-continuation condition: ``masks`` (B, 1, T, H, W) and ``masked_ref`` (B, C, T, H, W).

    The mask is 1 on the first ``num_cond_frames`` latent frames and 0 after; ``masked_ref``
    holds the first ``num_cond_frames`` frames of ``ref_latent`` there and zeros elsewhere.
    """
    _check_5d("ref_latent", ref_latent)
    b, c, t_ref, h, w = ref_latent.shape
    if not 0 <= num_cond_frames <= min(t_ref, num_latent_frames_total):
        raise ValueError(
            f"num_cond_frames={num_cond_frames} must be within 0..min(reference frames {t_ref}, "
            f"total frames {num_latent_frames_total})"
        )
    shape = (b, c, num_latent_frames_total, h, w)
    masked_ref = ref_latent.new_zeros(shape)
    masked_ref[:, :, :num_cond_frames] = ref_latent[:, :, :num_cond_frames]
    masks = ref_latent.new_zeros((b, 1, num_latent_frames_total, h, w))
    masks[:, :, :num_cond_frames] = 1
    return masks, masked_ref


def build_cond(masks: Tensor, masked_ref: Tensor, patch_size: int = PATCH_SIZE) -> Tensor:
    """The model's ``cond`` input: ``patchify(cat(mask, masked latent))`` (B, L, (1 + C) p^2)."""
    _check_5d("masks", masks)
    _check_5d("masked_ref", masked_ref)
    if masks.shape[1] != 1 or masks.shape[2:] != masked_ref.shape[2:]:
        raise ValueError(
            f"masks {tuple(masks.shape)} must be (B, 1, T, H, W) matching masked_ref "
            f"{tuple(masked_ref.shape)}"
        )
    return patchify(torch.cat((masks, masked_ref), dim=1), patch_size)


@dataclass
class GuidanceConfig:
    """Classifier-free guidance of the v2v sampler (reference defaults except ``num_steps``)."""

    num_steps: int = 25
    guidance: float = 7.5
    guidance_img: float = 3.0
    text_osci: bool = True
    image_osci: bool = True

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")


def oscillated_scale(scale: float, step: int, enabled: bool) -> float:
    """Guidance oscillation: from 0-based step 10 on, odd steps use 1.0 when ``enabled``."""
    if enabled and step >= OSCILLATION_START and step % 2 == 1:
        return 1.0
    return scale


def _model_dtype(model: nn.Module) -> torch.dtype:
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def sample_v2v(
    model: nn.Module,
    noise: Tensor,
    masks: Tensor,
    masked_ref: Tensor,
    txt_cond: Tensor,
    txt_neg: Tensor,
    y_vec_cond: Tensor,
    y_vec_neg: Tensor,
    timesteps: Sequence[float],
    guidance: GuidanceConfig,
    progress: bool = False,
) -> Tensor:
    """Denoise ``noise`` (B, C, T, H, W) into a latent with three-branch guidance and Euler steps.

    Each step runs ONE forward of batch 3B over the branches (txt_cond, cond),
    (txt_neg, cond), (txt_neg, zero cond) giving v1, v2, v3, then
    ``v = v3 + g_img (v2 - v3) + g_txt (v1 - v2)`` and ``x += (t_next - t_cur) v``.
    The forward runs in the model dtype; ``x`` and the update stay in float32.

    Args:
        model: an ``MMDiT`` (or a wrapper with the same forward signature).
        noise: starting latent at t = timesteps[0].
        masks, masked_ref: the visual condition from ``v2v_condition``.
        txt_cond, txt_neg: text states (B, S, D) of the prompt and of the negative prompt.
        y_vec_cond, y_vec_neg: pooled text vectors (B, D_vec).
        timesteps: ``guidance.num_steps + 1`` decreasing flow times (``get_schedule``).
        guidance: guidance scales and oscillation flags.
        progress: show a tqdm bar on stderr.

    Returns:
        the sampled latent (B, C, T, H, W) in float32.
    """
    _check_5d("noise", noise)
    if len(timesteps) != guidance.num_steps + 1:
        raise ValueError(
            f"{len(timesteps)} timesteps given, expected num_steps + 1 = {guidance.num_steps + 1}"
        )
    if masked_ref.shape != noise.shape:
        raise ValueError(
            f"masked_ref {tuple(masked_ref.shape)} must match noise {tuple(noise.shape)}"
        )
    if txt_cond.shape != txt_neg.shape or y_vec_cond.shape != y_vec_neg.shape:
        raise ValueError(
            "prompt and negative-prompt embeddings must have equal shapes, got "
            f"txt {tuple(txt_cond.shape)} / {tuple(txt_neg.shape)}, "
            f"y_vec {tuple(y_vec_cond.shape)} / {tuple(y_vec_neg.shape)}"
        )
    batch, _, num_frames, height, width = noise.shape
    device, dtype = noise.device, _model_dtype(model)
    cond = build_cond(masks, masked_ref).to(device)
    cond3 = torch.cat((cond, cond, torch.zeros_like(cond)), dim=0).to(dtype)
    txt3 = torch.cat((txt_cond, txt_neg, txt_neg), dim=0).to(device, dtype)
    y_vec3 = torch.cat((y_vec_cond, y_vec_neg, y_vec_neg), dim=0).to(device, dtype)
    img_ids = make_img_ids(3 * batch, num_frames, height, width, device=device)
    txt_ids = make_txt_ids(3 * batch, txt3.shape[1], device=device)

    x = patchify(noise).float()
    steps = tqdm(range(guidance.num_steps), desc="sampling", file=sys.stderr, disable=not progress)
    with torch.no_grad():
        for step in steps:
            t_cur, t_next = float(timesteps[step]), float(timesteps[step + 1])
            x_in = x.to(dtype)
            v = model(
                img=torch.cat((x_in, x_in, x_in), dim=0),
                img_ids=img_ids,
                txt=txt3,
                txt_ids=txt_ids,
                timesteps=torch.full((3 * batch,), t_cur, dtype=dtype, device=device),
                y_vec=y_vec3,
                cond=cond3,
            )
            v_txt, v_neg, v_uncond = v.float().chunk(3, dim=0)
            g_txt = oscillated_scale(guidance.guidance, step, guidance.text_osci)
            g_img = oscillated_scale(guidance.guidance_img, step, guidance.image_osci)
            v = v_uncond + g_img * (v_neg - v_uncond) + g_txt * (v_txt - v_neg)
            x = x + (t_next - t_cur) * v
    return unpatchify(x, num_frames, height, width)
