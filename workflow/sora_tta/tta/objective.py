"""The adaptation loss: flow matching as Open-Sora v2.0 was trained, on the conditioning clip.

The clean latent ``x0`` is the encoding of the 33 conditioning frames (9 latent frames);
nothing after them is ever seen. Per draw: ``t = shift(sigmoid(n))``, ``n ~ N(0, 1)``, with
the shift of the clip's latent size and length; ``x_t = (1 - t) x0 + (s + (1 - s) t) e`` with
``s = 1e-5``; the target velocity is ``(1 - s) e - x0``; the loss is the mean squared error.

Conditioning modes:

- ``denoise``: all-zero visual condition, loss on every latent frame;
- ``continue``: the first ``k`` latent frames are given clean through the condition channels
  (mask 1 + latent, exactly as the v2v sampler builds it), the loss covers only the frames
  after them. Their tokens in ``x_t`` are *noisy* (same ``t`` and formula as everywhere),
  mirroring inference, where the sampler starts every frame, conditioned or not, from noise.

The loss never covers a frame that is also given as clean condition: otherwise copying the
condition channel solves the task (the flaw of the published experiment).
:func:`loss_token_mask` and :func:`flow_matching_loss` enforce it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sora_tta import sampling

SIGMA_MIN = 1e-5
DENOISE = "denoise"
CONTINUE = "continue"
MIXED = "mixed"
MODES = (DENOISE, CONTINUE, MIXED)
DRAW_MODES = (DENOISE, CONTINUE)


@dataclass(frozen=True)
class ObjectiveSpec:
    """How each adaptation step draws its condition, timesteps and noise."""

    mode: str = CONTINUE
    continue_frames: int = 5
    mixed_weights: tuple[tuple[str, float], ...] = ((DENOISE, 0.5), (CONTINUE, 0.5))
    draws_per_step: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown adaptation mode {self.mode!r}; choose one of {list(MODES)}")
        if self.continue_frames < 1:
            raise ValueError(f"continue_frames must be >= 1, got {self.continue_frames}")
        if self.draws_per_step < 1:
            raise ValueError(f"draws_per_step must be >= 1, got {self.draws_per_step}")
        names = [name for name, _ in self.mixed_weights]
        weights = [weight for _, weight in self.mixed_weights]
        if set(names) - set(DRAW_MODES) or len(set(names)) != len(names):
            raise ValueError(
                f"mixed_weights must map distinct modes of {list(DRAW_MODES)} to weights, "
                f"got {names}"
            )
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"mixed_weights must be finite, >= 0 and not all 0, got {weights}")


@dataclass(frozen=True)
class AdaptationTarget:
    """What the loss is computed on, fixed for one video.

    ``x0`` is the clean latent ``(1, C, T, H, W)`` of the conditioning clip; ``txt``
    ``(1, S, D)`` and ``y_vec`` ``(1, D_vec)`` the prompt embedding; all on the model device.
    """

    x0: Tensor
    txt: Tensor
    y_vec: Tensor

    @property
    def latent_frames(self) -> int:
        """Number of latent frames of the clip."""
        return self.x0.shape[2]

    @property
    def tokens_per_frame(self) -> int:
        """Image tokens per latent frame (2x2 patches)."""
        return (self.x0.shape[3] // 2) * (self.x0.shape[4] // 2)

    def shift_alpha(self) -> float:
        """The timestep shift of this clip's latent size and length (as in training)."""
        return float(sampling.compute_shift_alpha(self.tokens_per_frame, self.latent_frames))


@dataclass(frozen=True)
class Draw:
    """The random part of one step: a condition mode and ``D`` timesteps and noises (CPU)."""

    mode: str
    cond_frames: int
    timesteps: Tensor
    noise: Tensor


def cond_frames_for(mode: str, latent_frames: int, continue_frames: int) -> int:
    """Number of leading latent frames given as clean condition in ``mode``."""
    if mode == DENOISE:
        return 0
    if mode == CONTINUE:
        if not 1 <= continue_frames < latent_frames:
            raise ValueError(
                f"continue_frames must be in [1, {latent_frames - 1}] for a clip of "
                f"{latent_frames} latent frames (at least one frame must carry the loss), "
                f"got {continue_frames}"
            )
        return continue_frames
    raise ValueError(f"a draw's mode must be one of {list(DRAW_MODES)}, got {mode!r}")


def sample_timesteps(count: int, alpha: float, generator: torch.Generator) -> Tensor:
    """``count`` training timesteps: ``sigmoid(N(0, 1))`` shifted by ``alpha`` (float32, CPU)."""
    t = torch.sigmoid(torch.randn(count, generator=generator, dtype=torch.float32))
    return sampling.time_shift(alpha, t)


def draw_step(spec: ObjectiveSpec, target: AdaptationTarget, generator: torch.Generator) -> Draw:
    """Draw one step's mode, timesteps and noise from ``generator`` (all on the CPU).

    Drawing on the CPU makes the draws identical on every device and lets a resumed run
    continue the exact sequence from the saved generator state.
    """
    mode = spec.mode
    if mode == MIXED:
        names = [name for name, _ in spec.mixed_weights]
        weights = torch.tensor([w for _, w in spec.mixed_weights], dtype=torch.float64)
        mode = names[int(torch.multinomial(weights, 1, generator=generator))]
    cond_frames = cond_frames_for(mode, target.latent_frames, spec.continue_frames)
    timesteps = sample_timesteps(spec.draws_per_step, target.shift_alpha(), generator)
    shape = (spec.draws_per_step, *target.x0.shape[1:])
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    return Draw(mode=mode, cond_frames=cond_frames, timesteps=timesteps, noise=noise)


def frame_condition(x0: Tensor, cond_frames: int) -> tuple[Tensor, Tensor]:
    """``(masks, masked_ref)`` giving the first ``cond_frames`` latent frames as clean condition.

    ``cond_frames == 0`` is the all-zero condition (mask 0, latent 0 everywhere); otherwise the
    v2v sampler's own construction is used, so the adaptation sees what inference feeds.
    """
    if cond_frames == 0:
        b, _, t, h, w = x0.shape
        return x0.new_zeros((b, 1, t, h, w)), torch.zeros_like(x0)
    masks, masked_ref = sampling.v2v_condition(x0, x0.shape[2], cond_frames)
    return masks.to(x0.dtype).expand(x0.shape[0], -1, -1, -1, -1), masked_ref.to(x0.dtype)


def loss_token_mask(latent_frames: int, tokens_per_frame: int, cond_frames: int) -> Tensor:
    """Bool mask ``(L,)`` over image tokens ((t, h, w) order): True where the loss applies."""
    frame_has_loss = torch.arange(latent_frames) >= cond_frames
    return frame_has_loss.repeat_interleave(tokens_per_frame)


def noisy_input(x0: Tensor, noise: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(x_t, v_target)`` of flow matching for per-sample timesteps ``t`` ``(B,)``."""
    t = t.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    x_t = (1 - t) * x0 + (SIGMA_MIN + (1 - SIGMA_MIN) * t) * noise
    return x_t, (1 - SIGMA_MIN) * noise - x0


def masked_mse(pred: Tensor, target: Tensor, token_mask: Tensor) -> Tensor:
    """Mean squared error over the tokens where ``token_mask`` (``(L,)``) is True (float32)."""
    diff = (pred.float() - target.float())[:, token_mask]
    return diff.square().mean()


def flow_matching_loss(model: nn.Module, target: AdaptationTarget, draw: Draw) -> Tensor:
    """The flow-matching loss of ``model`` for one draw (a batch of ``D`` noised copies)."""
    count = draw.timesteps.shape[0]
    device = target.x0.device
    x0 = target.x0.float().expand(count, -1, -1, -1, -1)
    x_t, v_target = noisy_input(x0, draw.noise.to(device), draw.timesteps.to(device))
    masks, masked_ref = frame_condition(x0, draw.cond_frames)
    token_mask = loss_token_mask(target.latent_frames, target.tokens_per_frame, draw.cond_frames)
    if not bool(token_mask.any()):
        raise ValueError(f"no latent frame carries the loss ({draw.cond_frames} of "
                         f"{target.latent_frames} frames are given as condition)")  # fmt: skip
    # Defensive: the loss must not see a frame that is also handed over clean.
    given = masks[0, 0].flatten(1).amax(dim=1).cpu() > 0
    if bool((given.repeat_interleave(target.tokens_per_frame) & token_mask).any()):
        raise AssertionError("the loss covers a latent frame that is given as clean condition")
    b, _, t, h, w = x0.shape
    # Timesteps enter the model in its weight dtype, exactly as the sampler passes them.
    model_dtype = next(model.parameters()).dtype
    pred = model(
        img=sampling.patchify(x_t),
        img_ids=sampling.make_img_ids(b, t, h, w, device=device),
        txt=target.txt.expand(count, -1, -1),
        txt_ids=sampling.make_txt_ids(count, target.txt.shape[1], device=device),
        timesteps=draw.timesteps.to(device, model_dtype),
        y_vec=target.y_vec.expand(count, -1),
        cond=sampling.build_cond(masks, masked_ref),
    )
    return masked_mse(pred, sampling.patchify(v_target), token_mask.to(device))


def fixed_draws(spec: ObjectiveSpec, target: AdaptationTarget, count: int, seed: int) -> list[Draw]:
    """``count`` reproducible draws from ``seed`` (e.g. a held-out evaluation set)."""
    generator = torch.Generator().manual_seed(seed)
    return [draw_step(spec, target, generator) for _ in range(count)]


@torch.no_grad()
def evaluate_loss(model: nn.Module, target: AdaptationTarget, draws: list[Draw]) -> float:
    """Mean loss of ``model`` over fixed ``draws`` (no gradients)."""
    losses = [float(flow_matching_loss(model, target, draw)) for draw in draws]
    return sum(losses) / len(losses)
