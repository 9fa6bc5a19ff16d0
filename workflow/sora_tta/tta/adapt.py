"""Test-time adaptation of one video: configuration, optimiser, training loop, resume.

:func:`adapted` injects fresh LoRA adapters (initialised from the run's seed), trains
them on the flow-matching objective of :mod:`sora_tta.tta.objective`, yields with the
adapters in place (for sampling) and removes them afterwards, so the base model is
unchanged and the next video starts from the same state as a fresh process would.

Randomness: every draw of the run (adapter init, condition mode, timesteps, noise) comes
from one CPU generator seeded by the caller (from global seed, video id and variant);
LoRA dropout uses the global RNG, which is forked and seeded for the run and restored
afterwards. Both are part of the resume state, so a resumed run continues the exact
sequence of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft.helpers import disable_input_dtype_casting
from torch import nn

from sora_tta.study.variants import NON_RESULT_KEYS
from sora_tta.tta import checkpoint as ckpt
from sora_tta.tta import lora, objective

logger = logging.getLogger(__name__)

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
        return config_from_dict(cls, data, source)

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
        return stable_hash(data)


def stable_hash(data: Any) -> str:
    """Short SHA-256 of the canonical JSON of ``data``."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` (e.g. global seed, video id, variant), stable across runs."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def _check_value(name: str, hint: Any, value: Any) -> Any:
    """Validate/convert one JSON value against a dataclass field type hint."""
    origin = typing.get_origin(hint)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is tuple and typing.get_args(hint)[-1] is Ellipsis:
        ok = isinstance(value, (list, tuple))
        if ok:
            item = typing.get_args(hint)[0]
            value = tuple(_check_value(name, item, v) for v in value)
    elif origin is tuple:
        args = typing.get_args(hint)
        ok = isinstance(value, (list, tuple)) and len(value) == len(args)
        if ok:
            value = tuple(_check_value(name, a, v) for a, v in zip(args, value, strict=True))
    elif origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        ok = isinstance(value, dict) and all(isinstance(k, key_hint) for k in value)
        if ok:
            value = {k: _check_value(name, value_hint, v) for k, v in value.items()}
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            with contextlib.suppress(TypeError):
                return _check_value(name, option, value)
        ok = False
    else:
        raise TypeError(f"unsupported field type {hint!r} for {name}")
    if not ok:
        raise TypeError(f"{name}: expected {hint}, got {value!r}")
    return value


def config_from_dict(cls: type, data: Any, source: str) -> Any:
    """Instantiate the dataclass ``cls`` from a JSON object with key and type checks.

    Errors name ``source`` and, for unknown keys, list the valid ones.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; valid keys are {names}")
    hints = typing.get_type_hints(cls)
    try:
        values = {key: _check_value(key, hints[key], value) for key, value in data.items()}
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from err


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier for 0-based ``step``: linear warm-up, then constant or cosine."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class AdaptationDiverged(RuntimeError):
    """The loss or the gradient norm became non-finite."""

    def __init__(self, step: int, loss: float, grad_norm: float | None) -> None:
        what = "loss" if not math.isfinite(loss) else "gradient"
        detail = f"loss={loss}" + ("" if grad_norm is None else f", grad_norm={grad_norm}")
        super().__init__(f"non-finite {what} at adaptation step {step} ({detail})")
        self.step, self.loss, self.grad_norm = step, loss, grad_norm


class AdaptationInterrupted(RuntimeError):
    """A preemption signal arrived; the state after ``step`` steps was saved."""

    def __init__(self, step: int, signum: int | None, state_path: Path | None) -> None:
        where = f"state saved to {state_path}" if state_path else "no state saved"
        super().__init__(f"interrupted by signal {signum} after adaptation step {step} ({where})")
        self.step, self.signum, self.state_path = step, signum, state_path


@dataclass
class AdaptResult:
    """Outcome of an adaptation run (``rows`` become ``loss.csv``)."""

    rows: list[dict[str, float]]
    trainable_parameters: int
    adapted_modules: list[str]
    resumed_from_step: int
    seconds: float
    #: Writes the resume state of the finished run (the final adapter, step = ``steps``), so a
    #: run stopped while sampling resumes without adapting again; a no-op without resume.
    save_final: Callable[[], None] = lambda: None

    @property
    def final_loss(self) -> float:
        """Loss of the last step."""
        return self.rows[-1]["loss"] if self.rows else math.nan


@dataclass
class ResumeOptions:
    """Where and as whom to save/resume; ``identity`` must match for a state to be resumed."""

    state_path: Path
    identity: dict[str, Any]


@contextlib.contextmanager
def autocast_context(device: torch.device, model: nn.Module) -> Iterator[None]:
    """bf16 autocast on CUDA devices that support it, else nothing.

    Under autocast peft's own cast of every adapted layer's input to the float32 adapter
    dtype is redundant (autocast casts both operands of each matmul) and costs a float32
    copy of each activation: switching it off made a full-size step 12% faster
    (docs/performance.md).
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        with (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16),
            disable_input_dtype_casting(model),
        ):
            yield
    else:
        yield


@contextlib.contextmanager
def adapted(
    model: nn.Module,
    target: objective.AdaptationTarget,
    config: AdaptConfig,
    *,
    seed: int,
    resume: ResumeOptions | None = None,
    stop: ckpt.PreemptionFlag | None = None,
    progress: bool = False,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> Iterator[AdaptResult]:
    """Adapt ``model`` to ``target``; yield with the adapters in place, then remove them.

    Raises :class:`AdaptationDiverged` on a non-finite loss or gradient and
    :class:`AdaptationInterrupted` when ``stop`` is set (after saving the state).
    """
    generator = torch.Generator().manual_seed(seed)
    with lora.lora_adapters(model, config.lora_spec(), generator) as names:
        result = train_adapter(
            model,
            target,
            config,
            generator,
            seed=seed,
            resume=resume,
            stop=stop,
            progress=progress,
            on_step=on_step,
        )
        result.adapted_modules = names
        yield result


def train_adapter(
    model: nn.Module,
    target: objective.AdaptationTarget,
    config: AdaptConfig,
    generator: torch.Generator,
    *,
    seed: int,
    resume: ResumeOptions | None = None,
    stop: ckpt.PreemptionFlag | None = None,
    progress: bool = False,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> AdaptResult:
    """Train the LoRA parameters already injected into ``model`` (see :func:`adapted`)."""
    device = target.x0.device
    params = lora.lora_parameters(model)
    if not params:
        raise ValueError("model has no LoRA parameters to train")
    spec = config.objective_spec()
    # Fail before the first step, not at a random one.
    for k in objective.condition_lengths(spec, target.latent_frames):
        target.condition(k)
    if spec.text_dropout > 0:
        target.text(objective.NEGATIVE)
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        functools.partial(
            lr_factor, warmup=config.warmup_steps, total=config.steps, schedule=config.lr_schedule
        ),
    )
    started = time.perf_counter()
    rows: list[dict[str, float]] = []

    def save(step: int, adapter: dict[str, torch.Tensor] | None = None) -> None:
        if resume is None:
            return
        ckpt.save_state(
            resume.state_path,
            {
                "identity": resume.identity,
                "step": step,
                "adapter": lora.lora_state_dict(model) if adapter is None else adapter,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "rng": ckpt.rng_states(device),
                "rows": rows,
            },
        )

    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)  # the global RNG only drives LoRA dropout
        start = 0
        state = ckpt.load_state(resume.state_path, resume.identity) if resume else None
        if state is not None:
            lora.load_lora_state_dict(model, state["adapter"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"])
            ckpt.set_rng_states(state["rng"], device)
            rows = list(state["rows"])
            start = int(state["step"])
            logger.info("resuming adaptation from step %d (%s)", start, resume.state_path)
        _run_steps(
            model, target, config, spec, generator, optimizer, scheduler, params, rows,
            start=start, save=save, state_path=resume.state_path if resume else None,
            stop=stop, progress=progress, on_step=on_step,
        )  # fmt: skip
    # Kept now: the adapters may be gone (removed after sampling) when a signal asks for it.
    final_adapter = lora.lora_state_dict(model) if resume is not None else None
    return AdaptResult(
        rows=rows,
        trainable_parameters=lora.count_trainable_parameters(model),
        adapted_modules=[],
        resumed_from_step=start,
        seconds=time.perf_counter() - started,
        save_final=lambda: save(config.steps, final_adapter),
    )


def _run_steps(
    model: nn.Module,
    target: objective.AdaptationTarget,
    config: AdaptConfig,
    spec: objective.ObjectiveSpec,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    params: list[nn.Parameter],
    rows: list[dict[str, float]],
    *,
    start: int,
    save: Callable[[int], None],
    state_path: Path | None,
    stop: ckpt.PreemptionFlag | None,
    progress: bool,
    on_step: Callable[[dict[str, float]], None] | None,
) -> None:
    from tqdm.auto import tqdm

    device = target.x0.device
    was_training = model.training
    old_checkpointing = getattr(model, "gradient_checkpointing", None)
    model.train()
    if old_checkpointing is not None:
        model.gradient_checkpointing = config.gradient_checkpointing
    bar = tqdm(
        total=config.steps, initial=start, desc="adapting", file=sys.stderr, disable=not progress
    )
    try:
        for step in range(start, config.steps):
            tick = time.perf_counter()
            draw = objective.draw_step(spec, target, generator)
            lr = optimizer.param_groups[0]["lr"]
            with autocast_context(device, model):
                loss = objective.flow_matching_loss(model, target, draw)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise AdaptationDiverged(step + 1, loss_value, None)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
            if not math.isfinite(grad_norm):
                raise AdaptationDiverged(step + 1, loss_value, grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            row = {
                "step": done,
                "loss": loss_value,
                "lr": lr,
                "timestep": float(draw.timesteps.mean()),
                "cond_frames": draw.cond_frames,
                "branch": draw.branch,
                "grad_norm": grad_norm,
                "seconds": time.perf_counter() - tick,
            }
            rows.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if on_step is not None:
                on_step(row)
            if stop:
                save(done)
                raise AdaptationInterrupted(done, stop.signal, state_path)
            every = config.checkpoint_every
            # The final state is saved too: a run killed while sampling resumes without
            # adapting again.
            if every and (done % every == 0 or done == config.steps):
                save(done)
    finally:
        bar.close()
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
        if old_checkpointing is not None:
            model.gradient_checkpointing = old_checkpointing
