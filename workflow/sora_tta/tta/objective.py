"""The adaptation loss: flow matching as Open-Sora v2.0 was trained, on the conditioning clip.

The clean latent ``x0`` (the loss target) is the encoding of the 33 conditioning frames
(9 latent frames); nothing after them is ever seen. Per draw: ``t = shift(sigmoid(n))``,
``n ~ N(0, 1)``, with the shift of the clip's latent size and length;
``x_t = (1 - t) x0 + (s + (1 - s) t) e`` with ``s = 1e-5``; the target velocity is
``(1 - s) e - x0``; the loss is the mean squared error.

Conditioning modes:

- ``denoise``: all-zero visual condition, loss on every latent frame;
- ``continue``: the first ``k`` latent frames are given clean through the condition channels
  (mask 1 + latent, exactly as the v2v sampler builds it), the loss covers only the frames
  after them. Their tokens in ``x_t`` are *noisy* (same ``t`` and formula as everywhere),
  mirroring inference, where the sampler starts every frame, conditioned or not, from noise.
  ``k`` is drawn per step from the set ``continue_frames``. The clean frames are the
  *separate* encoding of the first ``4(k - 1) + 1`` pixel frames
  (:attr:`AdaptationTarget.conditions`), never a slice of ``x0``: the VAE's GroupNorms pool
  over all frames of a clip, so a slice would carry the loss frames' content, and at test
  time the sampler's condition is also a clip encoded on its own (the reference's training
  encodes its i2v/v2v conditions separately "to prevent information leakage").
- ``published``: the published experiment's design, kept as a labelled control: all latent
  frames given clean, the loss on all of them, ``t ~ U(0, 1)``. Copying the condition
  channel solves it.

Guidance branches: the sampler evaluates (prompt, condition), (negative, condition) and
(negative, zero condition) and the adapter acts in all three. Each draw therefore takes the
negative (empty-prompt) embedding instead of the prompt with probability ``text_dropout``
(the reference pre-trained with ``dropout_ratio`` 0.31622777) and, when it does, the zero
visual condition with probability ``cond_dropout``; :data:`BRANCHES` names the three.

Outside ``published`` the loss never covers a frame that is also given as clean condition:
otherwise copying the condition channel solves the task (the flaw of the published
experiment). :func:`loss_token_mask` and :func:`flow_matching_loss` enforce it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sora_tta import sampling

SIGMA_MIN = 1e-5
DENOISE = "denoise"
CONTINUE = "continue"
MIXED = "mixed"
PUBLISHED = "published"
MODES = (DENOISE, CONTINUE, MIXED, PUBLISHED)
DRAW_MODES = (DENOISE, CONTINUE)
#: The reference's probability of replacing each text embedding by the empty prompt's in
#: pre-training (``dropout_ratio`` of Open-Sora v2.0's ``configs/diffusion/train/image.py``).
REFERENCE_TEXT_DROPOUT = 0.31622777
PROMPT, NEGATIVE = "prompt", "negative"
#: The sampler's three guidance branches: (text, visual condition).
BRANCHES = ("prompt+cond", "negative+cond", "negative+zero")
#: Default set of condition lengths ``k`` (latent frames handed over clean), see
#: docs/study-design.md for the measurement behind it.
DEFAULT_CONTINUE_FRAMES = (1, 2, 3, 4, 5, 6, 7, 8)


def branch_name(text: str, cond_frames: int) -> str:
    """``"{text}+cond"`` or ``"{text}+zero"``: the guidance branch a draw trains."""
    return f"{text}+{'cond' if cond_frames else 'zero'}"


@dataclass(frozen=True)
class ObjectiveSpec:
    """How each adaptation step draws its condition, timesteps and noise."""

    mode: str = CONTINUE
    continue_frames: tuple[int, ...] = DEFAULT_CONTINUE_FRAMES
    mixed_weights: tuple[tuple[str, float], ...] = ((DENOISE, 0.5), (CONTINUE, 0.5))
    draws_per_step: int = 1
    text_dropout: float = REFERENCE_TEXT_DROPOUT
    cond_dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown adaptation mode {self.mode!r}; choose one of {list(MODES)}")
        ks = self.continue_frames
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(
                f"continue_frames must be a non-empty set of integers >= 1, got {list(ks)}"
            )
        for name in ("text_dropout", "cond_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
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
    ``(1, S, D)`` and ``y_vec`` ``(1, D_vec)`` the prompt embedding, ``txt_neg`` / ``y_neg``
    the negative (empty) prompt's (needed when a draw drops the text); ``conditions`` maps a
    condition length ``k`` to the clean latent ``(1, C, k, H, W)`` of the first
    ``4(k - 1) + 1`` pixel frames encoded on their own. All on the model device.
    """

    x0: Tensor
    txt: Tensor
    y_vec: Tensor
    txt_neg: Tensor | None = None
    y_neg: Tensor | None = None
    conditions: Mapping[int, Tensor] = field(default_factory=dict)

    def condition(self, k: int) -> Tensor:
        """The separately encoded clean latent of the first ``k`` latent frames."""
        clean = self.conditions.get(k)
        if clean is None:
            raise ValueError(
                f"no separately encoded condition of {k} latent frames (have "
                f"{sorted(self.conditions)}); a slice of x0 would leak the loss frames"
            )
        if clean.shape[2] != k or clean.shape[3:] != self.x0.shape[3:]:
            raise ValueError(
                f"condition for k={k} has shape {tuple(clean.shape)}, expected "
                f"(1, C, {k}, {self.x0.shape[3]}, {self.x0.shape[4]})"
            )
        return clean

    def text(self, which: str) -> tuple[Tensor, Tensor]:
        """``(txt, y_vec)`` of the prompt or of the negative prompt."""
        if which == PROMPT:
            return self.txt, self.y_vec
        if self.txt_neg is None or self.y_neg is None:
            raise ValueError("text dropout needs the negative prompt's embedding (txt_neg, y_neg)")
        return self.txt_neg, self.y_neg

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
    """The random part of one step: a condition mode and length, the text (prompt or
    negative) and ``D`` timesteps and noises (CPU)."""

    mode: str
    cond_frames: int
    timesteps: Tensor
    noise: Tensor
    text: str = PROMPT

    @property
    def branch(self) -> str:
        """The guidance branch this draw trains (see :data:`BRANCHES`)."""
        return branch_name(self.text, self.cond_frames)

    @property
    def loss_from(self) -> int:
        """First latent frame that carries the loss (0 in ``published``: all of them)."""
        return 0 if self.mode == PUBLISHED else self.cond_frames


def cond_frames_for(mode: str, latent_frames: int, continue_frames: int) -> int:
    """Number of leading latent frames given as clean condition in ``mode``."""
    if mode == DENOISE:
        return 0
    if mode == PUBLISHED:
        return latent_frames
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


def condition_lengths(spec: ObjectiveSpec, latent_frames: int) -> list[int]:
    """Every condition length ``k`` a draw of ``spec`` can hand over clean (sorted)."""
    modes = {spec.mode}
    if spec.mode == MIXED:
        modes = {name for name, weight in spec.mixed_weights if weight > 0}
    lengths = set()
    if CONTINUE in modes:
        lengths |= {cond_frames_for(CONTINUE, latent_frames, k) for k in spec.continue_frames}
    if PUBLISHED in modes:
        lengths.add(latent_frames)
    return sorted(lengths)


def _bernoulli(p: float, generator: torch.Generator) -> bool:
    # Always consume one number, so the sequence does not depend on p being 0 or 1.
    return bool(torch.rand((), generator=generator, dtype=torch.float64) < p)


def draw_step(spec: ObjectiveSpec, target: AdaptationTarget, generator: torch.Generator) -> Draw:
    """Draw one step's mode, condition length, text, timesteps and noise (all on the CPU).

    Drawing on the CPU makes the draws identical on every device and lets a resumed run
    continue the exact sequence from the saved generator state.
    """
    mode = spec.mode
    if mode == MIXED:
        names = [name for name, _ in spec.mixed_weights]
        weights = torch.tensor([w for _, w in spec.mixed_weights], dtype=torch.float64)
        mode = names[int(torch.multinomial(weights, 1, generator=generator))]
    ks = spec.continue_frames
    k = ks[int(torch.randint(len(ks), (), generator=generator))]
    cond_frames = cond_frames_for(mode, target.latent_frames, k)
    text = NEGATIVE if _bernoulli(spec.text_dropout, generator) else PROMPT
    drop_cond = _bernoulli(spec.cond_dropout, generator)
    if text == NEGATIVE and drop_cond and mode != PUBLISHED:
        cond_frames = 0
    if mode == PUBLISHED:
        timesteps = torch.rand(spec.draws_per_step, generator=generator, dtype=torch.float32)
    else:
        timesteps = sample_timesteps(spec.draws_per_step, target.shift_alpha(), generator)
    shape = (spec.draws_per_step, *target.x0.shape[1:])
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    return Draw(mode=mode, cond_frames=cond_frames, timesteps=timesteps, noise=noise, text=text)


def frame_condition(
    target: AdaptationTarget, cond_frames: int, batch: int = 1
) -> tuple[Tensor, Tensor]:
    """``(masks, masked_ref)`` giving the first ``cond_frames`` latent frames as clean condition.

    ``cond_frames == 0`` is the all-zero condition (mask 0, latent 0 everywhere); otherwise the
    v2v sampler's own construction is used on the separately encoded frames
    (:meth:`AdaptationTarget.condition`), so the adaptation sees what inference feeds.
    """
    x0 = target.x0
    _, c, t, h, w = x0.shape
    if cond_frames == 0:
        return x0.new_zeros((batch, 1, t, h, w)).float(), x0.new_zeros((batch, c, t, h, w)).float()
    clean = target.condition(cond_frames).float()
    masks, masked_ref = sampling.v2v_condition(clean, t, cond_frames)
    return (
        masks.expand(batch, -1, -1, -1, -1),
        masked_ref.expand(batch, -1, -1, -1, -1),
    )


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
    masks, masked_ref = frame_condition(target, draw.cond_frames, count)
    token_mask = loss_token_mask(target.latent_frames, target.tokens_per_frame, draw.loss_from)
    if not bool(token_mask.any()):
        raise ValueError(f"no latent frame carries the loss ({draw.cond_frames} of "
                         f"{target.latent_frames} frames are given as condition)")  # fmt: skip
    # Defensive: outside the published control the loss must not see a frame that is also
    # handed over clean.
    given = masks[0, 0].flatten(1).amax(dim=1).cpu() > 0
    overlap = bool((given.repeat_interleave(target.tokens_per_frame) & token_mask).any())
    if overlap and draw.mode != PUBLISHED:
        raise AssertionError("the loss covers a latent frame that is given as clean condition")
    b, _, t, h, w = x0.shape
    txt, y_vec = target.text(draw.text)
    # Timesteps enter the model in its weight dtype, exactly as the sampler passes them.
    model_dtype = next(model.parameters()).dtype
    pred = model(
        img=sampling.patchify(x_t),
        img_ids=sampling.make_img_ids(b, t, h, w, device=device),
        txt=txt.expand(count, -1, -1),
        txt_ids=sampling.make_txt_ids(count, txt.shape[1], device=device),
        timesteps=draw.timesteps.to(device, model_dtype),
        y_vec=y_vec.expand(count, -1),
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
