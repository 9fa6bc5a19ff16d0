"""Test-time adaptation of one video: optimiser, training loop, resume.

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
import functools
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft.helpers import disable_input_dtype_casting
from torch import nn

from sora_tta.tta import checkpoint as ckpt
from sora_tta.tta import lora, objective
from sora_tta.tta.adapt import AdaptConfig

logger = logging.getLogger(__name__)


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
