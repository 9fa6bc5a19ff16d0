"""One video end to end, as stages: read -> load -> encode -> (adapt) -> sample -> decode ->
write.

Only the first ``num_cond_frames`` (33) frames of the clip are read: neither the
adaptation nor the sampler can see the frames the continuation is scored on.

Outputs in ``out_dir`` (each written atomically; ``meta.json`` last, with ``outcome``
``ok``): ``loss.csv`` (adapted runs), ``adapter.safetensors`` (on request), ``video.mkv``,
``meta.json``. A failed run writes ``failure.json`` instead and no final output, except
for deterministic failures (divergence, non-finite samples), whose ``meta.json`` records
``outcome: failed`` as the video's final result; outputs of an earlier run in the same
folder are removed first, so the folder never mixes two runs. The resume state
(``resume/state.pt``) is deleted once the final outputs exist.

Seeds: the sampling noise depends on (global seed, video id) only, so the baseline and
every variant start from the same noise for a video; the adaptation draws depend on
(global seed, video id, method).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sora_tta import progress
from sora_tta.data.video import clip_fps, read_frames, write_lossless
from sora_tta.devices import resolve_device, resolve_dtype
from sora_tta.hashing import derive_seed, digest, file_sha256
from sora_tta.io import write_json_atomic, write_text_atomic
from sora_tta.layout import CheckpointLayout
from sora_tta.models import pipeline
from sora_tta.models.compile import run_compiled
from sora_tta.models.text import load_prompt_embedding
from sora_tta.tta import checkpoint as ckpt
from sora_tta.tta import lora
from sora_tta.tta.adapt import CROSS_VIDEO, AdaptConfig
from sora_tta.tta.branches import branch_movement
from sora_tta.tta.method import SamplingConfig
from sora_tta.tta.objective import AdaptationTarget, condition_lengths
from sora_tta.tta.outputs import (
    ADAPTER_FILE,
    LOSS_FILE,
    META_FILE,
    OUTCOME_OK,
    VIDEO_FILE,
    checkpoint_fingerprint,
    clear_outputs,
    loss_csv,
    peak_memory,
    save_adapter,
    versions,
    write_failure,
)
from sora_tta.tta.train import (
    AdaptationDiverged,
    AdaptationInterrupted,
    ResumeOptions,
    adapted,
)

logger = logging.getLogger(__name__)

#: What a baseline job does on a preemption signal (it has no state worth keeping).
BASELINE_SIGNAL_NOTE = (
    "on SIGTERM/SIGUSR1/SIGINT this baseline run stops at the next sampling step (or after "
    "decoding), writes no output and exits 75; the rerun samples from the start"
)


@dataclass
class GenerateRequest:
    """Everything one ``sora-tta generate`` call needs. ``adapt=None`` is the baseline."""

    clip: Path
    video_id: str
    method: str
    prompt_embedding: Path
    negative_embedding: Path
    checkpoint_dir: Path
    out_dir: Path
    adapt: AdaptConfig | None = None
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    seed: int = 0
    save_adapter: bool = False
    #: The cross-video control's donor: the clip, prompt embedding and id of the video the
    #: adapter is trained on (``adapt_on: cross-video``); ``None`` for every other method.
    adapt_clip: Path | None = None
    adapt_prompt_embedding: Path | None = None
    adapt_video_id: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    progress: bool = True
    progress_every: int = 10  #: adaptation steps between two progress lines
    compile: str = "auto"  # regional torch.compile while sampling (sora_tta.models.compile)

    def config_hash(self) -> str:
        """Hash of everything that determines the generated video (not paths or devices)."""
        return digest(
            {
                "method": self.method,
                "seed": self.seed,
                "adapt": None if self.adapt is None else self.adapt.to_dict(),
                "sampling": self.sampling.to_dict(),
            }
        )

    def seeds(self) -> dict[str, int]:
        """Global seed, sampling-noise seed (video only) and adaptation seed (video + method)."""
        return {
            "global": self.seed,
            "noise": derive_seed("noise", self.seed, self.video_id),
            "adapt": derive_seed("adapt", self.seed, self.video_id, self.method),
        }


class GenerationError(RuntimeError):
    """A run failed; ``failure.json`` was written. ``exit_code`` is for the command line.

    ``final``: the failure is deterministic (divergence, non-finite samples): a rerun would
    fail the same way, so ``meta.json`` records it as the video's outcome.
    """

    def __init__(self, message: str, exit_code: int = 1, final: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.final = final


def _fail(
    request: GenerateRequest, stage: str, message: str, final: bool = False, **details: Any
) -> GenerationError:
    record = {
        "video_id": request.video_id,
        "method": request.method,
        "stage": stage,
        "error": message,
        "config_hash": request.config_hash(),
        **details,
    }
    write_failure(request.out_dir, record, final)  # final: the video's outcome, not retried
    return GenerationError(f"{request.video_id} ({request.method}): {message}", final=final)


def generate(
    request: GenerateRequest,
    *,
    bundle: pipeline.ModelBundle | None = None,
    stop: ckpt.PreemptionFlag | None = None,
) -> dict[str, Any]:
    """Run one video and write its outputs; returns the ``meta.json`` content.

    The stages, each a function below: :func:`read_inputs` (the only reads) ->
    :func:`load_bundle` -> :func:`encode` -> (:func:`adapt_and_sample` | :func:`sample`) ->
    :func:`decode` -> :func:`write_outputs` (the only writes of results). This function
    times them and turns their errors into the folder's failure record.

    ``bundle`` reuses models already loaded (several videos per process: adapters are
    removed after each video, so every video starts from the loaded weights).

    Raises:
        GenerationError: the run failed (``failure.json`` written), or was interrupted by a
            preemption signal (state saved, ``exit_code`` 75).
    """
    started = time.perf_counter()
    out_dir = Path(request.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(out_dir)
    check_donor(request)
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    inputs = read_inputs(request)
    reading = time.perf_counter() - tick
    tick = time.perf_counter()
    bundle = load_bundle(request, bundle)
    timings["load"] = time.perf_counter() - tick
    tick = time.perf_counter()
    condition = encode(bundle, inputs.frames, request.sampling)
    timings["encode"] = reading + time.perf_counter() - tick

    meta = run_record(request, bundle, inputs)
    if request.adapt is None:
        timings["adapt"] = 0.0
        logger.info("%s (baseline): %s", request.video_id, BASELINE_SIGNAL_NOTE)
        try:
            sampled = sample(bundle, condition, inputs, request, stop)
        except SamplingInterrupted as err:
            logger.warning("%s (baseline): %s; nothing to save, exit 75", request.video_id, err)
            raise _preempted(request, str(err)) from err
        adaptation = Adaptation()
    else:
        adaptation, sampled = adapt_and_sample(bundle, condition, inputs, request, stop)
        for stage, seconds in adaptation.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        meta.update(adaptation.record)
    timings["sample"] = sampled.seconds
    meta["compile"] = sampled.compiled

    if not torch.isfinite(sampled.latent).all():
        (out_dir / ADAPTER_FILE).unlink(missing_ok=True)
        raise _fail(request, "sample", "sampled latent has non-finite values", final=True)
    tick = time.perf_counter()
    try:
        video = decode(bundle, sampled.latent, request.video_id)
    except pipeline.PipelineError as err:
        (out_dir / ADAPTER_FILE).unlink(missing_ok=True)
        raise _fail(request, "decode", str(err)) from err
    timings["decode"] = time.perf_counter() - tick
    if stop:  # a signal while decoding: keep the adapter (if any), write nothing final
        adaptation.save_state()
        (out_dir / ADAPTER_FILE).unlink(missing_ok=True)
        raise _preempted(request, f"interrupted by signal {stop.signal} while decoding")
    timings["total"] = time.perf_counter() - started

    meta.update(
        outcome=OUTCOME_OK,
        timings=timings,
        frames=int(video.shape[0]),
        height=int(video.shape[1]),
        width=int(video.shape[2]),
        fps=inputs.fps,
        versions=versions(),
        **peak_memory(bundle.device),
    )
    write_outputs(out_dir, video, inputs.fps, meta, adaptation.rows)
    return meta


@dataclass(frozen=True)
class Prompt:
    """A prompt's text and its embedding on the CPU (T5 sequence, CLIP vector)."""

    text: str
    txt: torch.Tensor
    y_vec: torch.Tensor

    @classmethod
    def load(cls, path: Path) -> Prompt:
        """Read a prompt-embedding file (``PromptEmbeddingError`` names a bad one)."""
        return cls(*load_prompt_embedding(path))

    @property
    def pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(txt, y_vec)``, as the sampler and the objective take them."""
        return self.txt, self.y_vec


@dataclass(frozen=True)
class Inputs:
    """Everything one run reads from disk, read before any model runs.

    Only the first ``num_cond_frames`` frames of a clip are read. ``donor_frames`` and
    ``donor_prompt``: the cross-video control's donor (``None`` otherwise).
    """

    frames: np.ndarray
    fps: float
    prompt: Prompt
    negative: Prompt
    donor_frames: np.ndarray | None = None
    donor_prompt: Prompt | None = None


def read_inputs(request: GenerateRequest) -> Inputs:
    """Stage 1 (I/O): the conditioning frames, their frame rate and the prompt embeddings."""
    donor_frames = donor_prompt = None
    if request.adapt is not None and request.adapt.adapt_on == CROSS_VIDEO:
        assert request.adapt_clip is not None and request.adapt_prompt_embedding is not None
        donor_frames = _conditioning_frames(request.adapt_clip, request.sampling, "adapt on")
        donor_prompt = Prompt.load(request.adapt_prompt_embedding)
    return Inputs(
        frames=_conditioning_frames(request.clip, request.sampling, "condition on"),
        fps=clip_fps(request.clip),
        prompt=Prompt.load(request.prompt_embedding),
        negative=Prompt.load(request.negative_embedding),
        donor_frames=donor_frames,
        donor_prompt=donor_prompt,
    )


def _conditioning_frames(clip: Path, sampling: SamplingConfig, purpose: str) -> np.ndarray:
    frames = read_frames(clip, max_frames=sampling.num_cond_frames)
    if len(frames) < sampling.num_cond_frames:
        raise ValueError(
            f"{clip}: has {len(frames)} frames, need {sampling.num_cond_frames} to {purpose}"
        )
    return frames


def load_bundle(
    request: GenerateRequest, bundle: pipeline.ModelBundle | None
) -> pipeline.ModelBundle:
    """Stage 2: the models (``bundle`` when given), peak-memory counters reset."""
    if bundle is None:
        device = resolve_device(request.device)
        dtype = resolve_dtype(request.dtype, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        return pipeline.load_models(request.checkpoint_dir, device=device, dtype=dtype)
    if bundle.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(bundle.device)
    return bundle


def encode(
    bundle: pipeline.ModelBundle, frames: np.ndarray, sampling: SamplingConfig
) -> pipeline.V2VCondition:
    """Stage 3: the sampler's condition (the conditioning frames, encoded on their own)."""
    return pipeline.encode_condition(
        bundle, frames, num_cond_frames=sampling.num_cond_frames, num_frames=sampling.num_frames
    )


def run_record(
    request: GenerateRequest, bundle: pipeline.ModelBundle, inputs: Inputs
) -> dict[str, Any]:
    """The provenance part of ``meta.json``: settings, seeds, inputs, device."""
    record: dict[str, Any] = {
        "video_id": request.video_id,
        "method": request.method,
        "prompt": inputs.prompt.text,
        "config_hash": request.config_hash(),
        "seed": request.seed,
        "seeds": request.seeds(),
        "adapt_config": None if request.adapt is None else request.adapt.to_dict(),
        "sampling_config": request.sampling.to_dict(),
        "clip": str(request.clip),
        "checkpoint_dir": str(request.checkpoint_dir),
        "device": str(bundle.device),
        "dtype": str(bundle.dtype).removeprefix("torch."),
        # CPU results can differ in the last grey level with the thread count: recorded.
        "torch_threads": torch.get_num_threads(),
        "trainable_parameters": 0,
        "adapted_modules": 0,
        "final_loss": None,
        "resumed_from_step": None,
    }
    if inputs.donor_frames is not None:
        record.update(adapt_video_id=request.adapt_video_id, adapt_clip=str(request.adapt_clip))
    return record


@dataclass
class Sampled:
    """Stage 4's value: the sampled latent, whether it was compiled, and its wall time."""

    latent: torch.Tensor
    compiled: Any
    seconds: float


@dataclass
class Adaptation:
    """What the adaptation stage leaves for the rest of the run (empty for the baseline).

    ``rows``: the loss log (``None``: nothing was adapted); ``record``: its part of
    ``meta.json``; ``save_state``: saves the final resume state (so a preempted decode
    resumes without training again).
    """

    rows: list[dict[str, float]] | None = None
    record: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    save_state: Callable[[], None] = lambda: None


def adapt_and_sample(
    bundle: pipeline.ModelBundle,
    condition: pipeline.V2VCondition,
    inputs: Inputs,
    request: GenerateRequest,
    stop: ckpt.PreemptionFlag | None,
) -> tuple[Adaptation, Sampled]:
    """Stage 4, adapted: train the LoRA adapter on the conditioning frames (or the donor's),
    then sample with it attached; the adapter is removed on return.

    Raises:
        GenerationError: divergence (final, ``failure.json`` written) or a preemption signal
            (resume state saved, exit code 75).
    """
    config = request.adapt
    assert config is not None
    out_dir = Path(request.out_dir)
    seeds = request.seeds()
    adaptation = Adaptation()
    tick = time.perf_counter()
    adapt_frames, adapt_condition, adapt_prompt = inputs.frames, condition, inputs.prompt
    if inputs.donor_frames is not None:
        assert inputs.donor_prompt is not None
        adapt_frames, adapt_prompt = inputs.donor_frames, inputs.donor_prompt
        adapt_condition = encode(bundle, adapt_frames, request.sampling)
    target = adaptation_target(
        bundle, adapt_frames, adapt_condition, config, request.sampling,
        adapt_prompt.pair, inputs.negative.pair,
    )  # fmt: skip
    adaptation.timings["encode"] = time.perf_counter() - tick
    state_path = ckpt.resume_state_path(out_dir)
    resume = ResumeOptions(state_path, resume_identity(request, list(target.x0.shape)))
    tick = time.perf_counter()
    try:
        with adapted(
            bundle.mmdit,
            target,
            config,
            seed=seeds["adapt"],
            resume=resume,
            stop=stop,
            progress=progress.bars_wanted(request.progress),
            on_step=progress.StepLogger(config.steps, request.progress_every),
        ) as result:
            adaptation.timings["adapt"] = time.perf_counter() - tick
            adaptation.save_state = result.save_final
            if stop:
                result.save_final()
                raise AdaptationInterrupted(config.steps, stop.signal, state_path)
            adaptation.rows = result.rows
            adaptation.record = {
                "trainable_parameters": result.trainable_parameters,
                "adapted_modules": len(result.adapted_modules),
                "final_loss": result.final_loss,
                "resumed_from_step": result.resumed_from_step,
            }
            logger.info(
                "%s: adapted %d parameters in %d modules, final loss %.5f",
                request.video_id,
                result.trainable_parameters,
                len(result.adapted_modules),
                result.final_loss,
            )
            # Adapters in the model dtype while sampling (float32 adapters on a bf16 base
            # cost 20% per step, docs/performance.md); the float32 ones are saved below.
            with lora.adapters_cast_to(bundle.mmdit, bundle.mmdit.dtype):
                tick = time.perf_counter()
                adaptation.record["branch_movement"] = branch_movement(
                    bundle, condition, inputs.prompt.pair, inputs.negative.pair,
                    request.sampling.guidance_config(), seeds["noise"],
                )  # fmt: skip
                adaptation.timings["branches"] = time.perf_counter() - tick
                try:
                    sampled = sample(bundle, condition, inputs, request, stop)
                except SamplingInterrupted as err:
                    result.save_final()
                    raise AdaptationInterrupted(
                        config.steps, stop.signal if stop else None, state_path
                    ) from err
            if request.save_adapter and torch.isfinite(sampled.latent).all():
                save_adapter(
                    out_dir / ADAPTER_FILE,
                    bundle.mmdit,
                    {
                        "video_id": request.video_id,
                        "method": request.method,
                        "adapt_config": json.dumps(config.to_dict(), sort_keys=True),
                    },
                )
    except AdaptationDiverged as err:
        # Resuming would replay the same divergence: drop the state with the failure.
        ckpt.remove_state(state_path)
        raise _fail(request, "adapt", str(err), final=True, step=err.step,
                    loss=_num(err.loss), grad_norm=_num(err.grad_norm)) from err  # fmt: skip
    except AdaptationInterrupted as err:
        raise GenerationError(
            f"{request.video_id} ({request.method}): {err}", exit_code=ckpt.EXIT_PREEMPTED
        ) from err
    return adaptation, sampled


class SamplingInterrupted(RuntimeError):
    """A preemption signal arrived while sampling."""


def sample(
    bundle: pipeline.ModelBundle,
    condition: pipeline.V2VCondition,
    inputs: Inputs,
    request: GenerateRequest,
    stop: ckpt.PreemptionFlag | None = None,
) -> Sampled:
    """Stage 4: sample the continuation from the video's noise (the same for every method).

    Raises:
        SamplingInterrupted: a preemption signal arrived (checked before every step).
    """

    def check() -> None:
        if stop:
            raise SamplingInterrupted(f"interrupted by signal {stop.signal} while sampling")

    tick = time.perf_counter()
    with progress.stage(f"{request.video_id}: sampling {request.sampling.num_steps} steps"):
        latent, compiled = run_compiled(
            bundle.mmdit,
            request.compile,
            lambda: pipeline.sample_continuation(
                bundle,
                condition,
                *inputs.prompt.pair,
                *inputs.negative.pair,
                request.sampling.guidance_config(),
                seed=request.seeds()["noise"],
                progress=progress.bars_wanted(request.progress),
                before_step=check,
            ),
        )
        if bundle.device.type == "cuda":
            torch.cuda.synchronize(bundle.device)
    return Sampled(latent, compiled, time.perf_counter() - tick)


def decode(bundle: pipeline.ModelBundle, latent: torch.Tensor, video_id: str) -> np.ndarray:
    """Stage 5: the latent decoded to uint8 frames ``(T, H, W, 3)``."""
    with progress.stage(f"{video_id}: decoding"):
        return pipeline.decode_to_frames(bundle, latent)


def write_outputs(
    out_dir: Path,
    video: np.ndarray,
    fps: float,
    meta: dict[str, Any],
    loss_rows: list[dict[str, float]] | None,
) -> None:
    """Stage 6 (I/O): the loss log (adapted runs), the video, then ``meta.json`` (last: the
    record of a complete run); the resume state goes once they exist."""
    if loss_rows is not None:
        write_text_atomic(out_dir / LOSS_FILE, loss_csv(loss_rows))
    write_lossless(out_dir / VIDEO_FILE, np.ascontiguousarray(video), fps)
    write_json_atomic(out_dir / META_FILE, meta)
    ckpt.remove_state(ckpt.resume_state_path(out_dir))


def resume_identity(request: GenerateRequest, latent_shape: list[int]) -> dict[str, Any]:
    """What a resume state must match to be resumed: the adaptation settings, seed, video,
    method, latent shape, and hashes of the clip, both prompt embeddings and the checkpoints
    (a state written before re-preprocessing or new weights is never resumed)."""
    layout = CheckpointLayout(request.checkpoint_dir)
    assert request.adapt is not None
    return {
        "adapt": request.adapt.result_hash(),
        "seed": request.seed,
        "video_id": request.video_id,
        "method": request.method,
        "latent_shape": latent_shape,
        "clip_sha256": file_sha256(request.clip),
        "prompt_sha256": file_sha256(request.prompt_embedding),
        "adapt_clip_sha256": request.adapt_clip and file_sha256(request.adapt_clip),
        "adapt_prompt_sha256": (
            request.adapt_prompt_embedding and file_sha256(request.adapt_prompt_embedding)
        ),
        "negative_sha256": file_sha256(request.negative_embedding),
        "mmdit_fingerprint": checkpoint_fingerprint(layout.mmdit),
        "vae_fingerprint": checkpoint_fingerprint(layout.vae),
    }


def check_donor(request: GenerateRequest) -> None:
    """The donor options are given exactly for the cross-video control (``ValueError``)."""
    donor = (request.adapt_clip, request.adapt_prompt_embedding, request.adapt_video_id)
    cross = request.adapt is not None and request.adapt.adapt_on == CROSS_VIDEO
    if cross and None in donor:
        raise ValueError(
            f"{request.method}: adapt_on cross-video needs --adapt-clip, "
            "--adapt-prompt-embedding and --adapt-video-id (the donor video)"
        )
    if not cross and any(part is not None for part in donor):
        raise ValueError(f"{request.method}: --adapt-clip is only for adapt_on cross-video")
    if cross and request.adapt_video_id == request.video_id:
        raise ValueError(f"{request.video_id}: the cross-video donor must be another video")


def adaptation_target(
    bundle: pipeline.ModelBundle,
    frames: np.ndarray,
    condition: pipeline.V2VCondition,
    config: AdaptConfig,
    sampling: SamplingConfig,
    prompt: tuple[torch.Tensor, torch.Tensor],
    negative: tuple[torch.Tensor, torch.Tensor],
) -> AdaptationTarget:
    """The adaptation target of one video, on the model device.

    The loss target is the encoding of the whole conditioning window (33 frames -> 9 latent
    frames, the sampler's own condition). Every condition length ``k`` the objective can
    draw gets the encoding of its first ``4(k - 1) + 1`` pixel frames on their own, computed
    once per job.
    """
    device = bundle.device
    window = sampling.cond_latent_frames
    x0 = condition.masked_ref[:, :, :window]
    conditions = {}
    for k in condition_lengths(config.objective_spec(), window):
        # k = window is the window itself, already encoded on its own for the sampler.
        clean = x0 if k == window else pipeline.encode_clean_frames(bundle, frames, k)
        conditions[k] = clean.to(device)
    return AdaptationTarget(
        x0=x0.to(device),
        txt=prompt[0].to(device),
        y_vec=prompt[1].to(device),
        txt_neg=negative[0].to(device),
        y_neg=negative[1].to(device),
        conditions=conditions,
    )


def _num(value: float | None) -> float | str | None:
    # JSON has no NaN/inf: store them as strings.
    if value is None or math.isfinite(value):
        return value
    return str(value)


def _preempted(request: GenerateRequest, message: str) -> GenerationError:
    return GenerationError(
        f"{request.video_id} ({request.method}): {message}", exit_code=ckpt.EXIT_PREEMPTED
    )
