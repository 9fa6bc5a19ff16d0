"""The adaptation's settings: :class:`AdaptConfig` (one field per ``adapt`` key of the
configuration, checked on construction), built from a method file's JSON by the study's one
value checker (:func:`sora_tta.study.values.dataclass_from_json`). The training loop is
:mod:`sora_tta.tta.train`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sora_tta.hashing import digest
from sora_tta.study.values import dataclass_from_json
from sora_tta.study.variants import NON_RESULT_KEYS
from sora_tta.tta import lora, objective

LR_SCHEDULES = ("constant", "cosine")
#: Whose clip the adapter is trained on: the video's own (the method) or another video's of a
#: different class (the cross-video control: same recipe, no video-specific information).
SELF, CROSS_VIDEO = "self", "cross-video"
ADAPT_ON = (SELF, CROSS_VIDEO)


@dataclass
class AdaptConfig:
    """Everything that defines an adaptation run (the keys of an ``--adapt-json`` file).

    LoRA: ``rank``, ``alpha``, ``dropout``, ``targets`` (a preset of
    :data:`sora_tta.tta.lora.TARGET_PRESETS` or a regular expression over module names).
    Optimisation: AdamW with ``lr``, ``betas``, ``weight_decay``; ``steps`` steps, linear
    warm-up over ``warmup_steps`` then ``constant`` or ``cosine`` (to 0 at ``steps``);
    gradient-norm clipping at ``grad_clip``. Objective:
    ``mode`` (``denoise``, ``continue``, ``mixed``, ``published``: the published experiment's
    design, a labelled control), ``continue_frames`` (the set from which each ``continue``
    draw takes the number of latent frames given as condition, uniformly), ``mixed_weights``
    (mode -> weight), ``draws_per_step`` (noise/timestep draws batched per step),
    ``text_dropout`` (probability that a draw trains with the negative prompt instead of the
    prompt) and ``cond_dropout`` (given the negative prompt, probability of the zero visual
    condition), so that each guidance branch of the sampler is trained.
    ``adapt_on``: ``self`` (the video's own clip) or ``cross-video`` (the control: another
    video's clip and prompt, given to ``generate`` with ``--adapt-clip``).
    ``checkpoint_every``: save the resume state every N steps (0: never).
    ``gradient_checkpointing``: recompute block activations in the backward pass (same
    result; at full size, 224x288, rank 16 on an H200 the peak memory drops from 43 to
    24 GB and a step takes 1.8x as long; not needed on 80 GB cards).
    """

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    targets: str = "attn+fused"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    steps: int = 100
    warmup_steps: int = 5
    lr_schedule: str = "constant"
    grad_clip: float = 1.0
    mode: str = objective.CONTINUE
    continue_frames: tuple[int, ...] = objective.DEFAULT_CONTINUE_FRAMES
    mixed_weights: dict[str, float] = field(
        default_factory=lambda: {objective.DENOISE: 0.5, objective.CONTINUE: 0.5}
    )
    draws_per_step: int = 1
    text_dropout: float = objective.REFERENCE_TEXT_DROPOUT
    cond_dropout: float = 0.5
    adapt_on: str = SELF
    checkpoint_every: int = 25
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]  # JSON gives a list
        if isinstance(self.continue_frames, int):  # one length: the set {k}
            self.continue_frames = (self.continue_frames,)
        self.continue_frames = tuple(sorted(set(self.continue_frames)))
        self.mixed_weights = dict(self.mixed_weights)
        problems = []
        # lr = 0 is allowed: the adapter stays at its zero start (a control that must equal
        # the baseline bit for bit).
        if self.lr < 0 or not math.isfinite(self.lr):
            problems.append(f"lr must be a number >= 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if not 0 <= self.warmup_steps <= self.steps:
            problems.append(
                f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(
                f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if not self.grad_clip > 0:
            problems.append(f"grad_clip must be > 0, got {self.grad_clip}")
        if self.adapt_on not in ADAPT_ON:
            problems.append(f"adapt_on must be one of {list(ADAPT_ON)}, got {self.adapt_on!r}")
        if self.checkpoint_every < 0:
            problems.append(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if problems:
            raise ValueError("; ".join(problems))
        # These validate their own fields and raise ValueError with the reason.
        self.lora_spec()
        self.objective_spec()

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "adapt config") -> AdaptConfig:
        """Build from a JSON object; unknown keys or wrong types raise ``ValueError``."""
        return dataclass_from_json(cls, data, source)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the inverse of :meth:`from_dict`)."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        data["continue_frames"] = list(self.continue_frames)
        return data

    def lora_spec(self) -> lora.LoraSpec:
        """The LoRA part of the configuration."""
        return lora.LoraSpec(self.rank, self.alpha, self.dropout, self.targets)

    def objective_spec(self) -> objective.ObjectiveSpec:
        """The objective part of the configuration."""
        return objective.ObjectiveSpec(
            mode=self.mode,
            continue_frames=self.continue_frames,
            mixed_weights=tuple(self.mixed_weights.items()),
            draws_per_step=self.draws_per_step,
            text_dropout=self.text_dropout,
            cond_dropout=self.cond_dropout,
        )

    def result_hash(self) -> str:
        """Hash of the fields that determine the adapter (not e.g. the checkpoint interval)."""
        data = {k: v for k, v in self.to_dict().items() if k not in NON_RESULT_KEYS}
        return digest(data)
