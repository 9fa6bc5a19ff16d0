"""One video end to end: load, encode, (adapt), sample, decode, write the outputs.

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

import csv
import dataclasses
import io
import json
import logging
import math
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from safetensors.torch import save_file

from sora_tta.data.video import read_frames, write_lossless
from sora_tta.devices import resolve_device, resolve_dtype
from sora_tta.io import atomic_path, write_json_atomic, write_text_atomic
from sora_tta.models import pipeline
from sora_tta.models.text import load_prompt_embedding
from sora_tta.sampling import GuidanceConfig
from sora_tta.tta import checkpoint as ckpt
from sora_tta.tta import lora
from sora_tta.tta.adapt import (
    AdaptationDiverged,
    AdaptationInterrupted,
    AdaptConfig,
    ResumeOptions,
    adapted,
    config_from_dict,
    derive_seed,
    stable_hash,
)
from sora_tta.tta.objective import AdaptationTarget

logger = logging.getLogger(__name__)

VIDEO_FILE = "video.mkv"
META_FILE = "meta.json"
LOSS_FILE = "loss.csv"
ADAPTER_FILE = "adapter.safetensors"
FAILURE_FILE = "failure.json"
FINAL_OUTPUTS = (VIDEO_FILE, META_FILE, LOSS_FILE, ADAPTER_FILE)
LOSS_COLUMNS = ("step", "loss", "lr", "timestep", "grad_norm", "seconds")
BASELINE = "baseline"
#: ``meta.json`` ``outcome``: a video, or a deterministic failure recorded in its place.
OUTCOME_OK, OUTCOME_FAILED = "ok", "failed"


@dataclass
class SamplingConfig:
    """Sampler settings (``sampling`` of a ``--method-json`` file); reference defaults, 25 steps."""

    num_steps: int = 25
    guidance: float = 7.5
    guidance_img: float = 3.0
    text_osci: bool = True
    image_osci: bool = True
    num_cond_frames: int = pipeline.NUM_COND_FRAMES
    num_frames: int = pipeline.NUM_FRAMES

    def __post_init__(self) -> None:
        for name in ("num_cond_frames", "num_frames"):
            value = getattr(self, name)
            if value < 1 or (value - 1) % 4:
                raise ValueError(f"{name} must be 4k + 1 (the VAE's causal layout), got {value}")
        if self.num_cond_frames >= self.num_frames:
            raise ValueError(
                f"num_cond_frames ({self.num_cond_frames}) must be below "
                f"num_frames ({self.num_frames})"
            )
        self.guidance_config()  # validates num_steps

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "sampling config") -> SamplingConfig:
        """Build from a JSON object; unknown keys or wrong types raise ``ValueError``."""
        return config_from_dict(cls, data, source)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)

    def guidance_config(self) -> GuidanceConfig:
        """The sampler's guidance settings."""
        return GuidanceConfig(
            num_steps=self.num_steps,
            guidance=self.guidance,
            guidance_img=self.guidance_img,
            text_osci=self.text_osci,
            image_osci=self.image_osci,
        )

    @property
    def cond_latent_frames(self) -> int:
        """Latent frames of the conditioning clip (33 frames -> 9)."""
        return (self.num_cond_frames - 1) // 4 + 1


@dataclass(frozen=True)
class MethodSpec:
    """One method of the study: the content of a ``--method-json`` file
    (``results/methods/{method}.json``): its id, the sampler settings and the adaptation
    settings (``None``: the baseline, no adaptation)."""

    method: str = BASELINE
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    adapt: AdaptConfig | None = None

    @classmethod
    def from_dict(cls, data: Any, source: str = "method config") -> MethodSpec:
        """Build from ``{"method": ..., "sampling": {...}, "adapt": {...} | null}``; missing
        sampling keys take their defaults; unknown keys or wrong types raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"method", "sampling", "adapt"})
        if unknown:
            raise ValueError(
                f"{source}: unknown keys {unknown}; valid keys are ['method', 'sampling', 'adapt']"
            )
        method = data.get("method", BASELINE)
        if not isinstance(method, str) or not method:
            raise ValueError(f"{source}: 'method' must be a non-empty string, got {method!r}")
        sampling = SamplingConfig.from_dict(data.get("sampling") or {}, f"{source} (sampling)")
        adapt = data.get("adapt")
        if adapt is not None:
            adapt = AdaptConfig.from_dict(adapt, f"{source} (adapt)")
        return cls(method, sampling, adapt)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the inverse of :meth:`from_dict`)."""
        return {
            "method": self.method,
            "sampling": self.sampling.to_dict(),
            "adapt": None if self.adapt is None else self.adapt.to_dict(),
        }


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
    device: str = "auto"
    dtype: str = "auto"
    progress: bool = True

    def config_hash(self) -> str:
        """Hash of everything that determines the generated video (not paths or devices)."""
        return stable_hash(
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


def clip_fps(path: Path) -> float:
    """Frame rate of the first video stream of ``path``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise ValueError(f"{path}: cannot determine the frame rate")
    return float(rate)


def versions() -> dict[str, str]:
    """Versions of the software that produced an output."""
    import diffusers
    import peft
    import transformers

    from sora_tta import __version__ as sora_tta_version

    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "peft": peft.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "sora_tta": sora_tta_version,
    }
    if torch.version.cuda:
        found["torch_cuda_build"] = torch.version.cuda
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
    return found


def _peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {
            "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_kind": "cuda_max_memory_allocated",
        }
    # ru_maxrss is in KiB on Linux: the peak resident size of the whole process.
    return {
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_memory_kind": "process_max_rss",
    }


def loss_csv(rows: list[dict[str, float]]) -> str:
    """The ``loss.csv`` text of adaptation rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LOSS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in LOSS_COLUMNS})
    return buffer.getvalue()


def save_adapter(path: Path, model: torch.nn.Module, metadata: dict[str, str]) -> None:
    """Write the current LoRA weights of ``model`` (float32) atomically."""
    with atomic_path(path) as tmp:
        save_file(lora.lora_state_dict(model), str(tmp), metadata=metadata)


def clear_outputs(out_dir: Path) -> None:
    """Remove final outputs and failure records of an earlier run in ``out_dir``."""
    for name in (*FINAL_OUTPUTS, FAILURE_FILE):
        (out_dir / name).unlink(missing_ok=True)


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
    write_json_atomic(request.out_dir / FAILURE_FILE, record)
    if final:  # the outcome of this video: recorded, not retried
        write_json_atomic(request.out_dir / META_FILE, {**record, "outcome": OUTCOME_FAILED})
    return GenerationError(f"{request.video_id} ({request.method}): {message}", final=final)


def generate(
    request: GenerateRequest,
    *,
    bundle: pipeline.ModelBundle | None = None,
    stop: ckpt.PreemptionFlag | None = None,
) -> dict[str, Any]:
    """Run one video and write its outputs; returns the ``meta.json`` content.

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
    timings: dict[str, float] = {}
    seeds = request.seeds()
    sampling = request.sampling

    prompt, txt, y_vec = load_prompt_embedding(request.prompt_embedding)
    _, txt_neg, y_neg = load_prompt_embedding(request.negative_embedding)

    tick = time.perf_counter()
    if bundle is None:
        device = resolve_device(request.device)
        dtype = resolve_dtype(request.dtype, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        bundle = pipeline.load_models(request.checkpoint_dir, device=device, dtype=dtype)
    elif bundle.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(bundle.device)
    device = bundle.device
    timings["load"] = time.perf_counter() - tick

    tick = time.perf_counter()
    frames = read_frames(request.clip, max_frames=sampling.num_cond_frames)
    if len(frames) < sampling.num_cond_frames:
        raise ValueError(
            f"{request.clip}: has {len(frames)} frames, "
            f"need {sampling.num_cond_frames} to condition on"
        )
    fps = clip_fps(request.clip)
    condition = pipeline.encode_condition(
        bundle, frames, num_cond_frames=sampling.num_cond_frames, num_frames=sampling.num_frames
    )
    timings["encode"] = time.perf_counter() - tick

    meta: dict[str, Any] = {
        "video_id": request.video_id,
        "method": request.method,
        "prompt": prompt,
        "config_hash": request.config_hash(),
        "seed": request.seed,
        "seeds": seeds,
        "adapt_config": None if request.adapt is None else request.adapt.to_dict(),
        "sampling_config": sampling.to_dict(),
        "clip": str(request.clip),
        "checkpoint_dir": str(request.checkpoint_dir),
        "device": str(device),
        "dtype": str(bundle.dtype).removeprefix("torch."),
        # CPU results can differ in the last grey level with the thread count: recorded.
        "torch_threads": torch.get_num_threads(),
        "trainable_parameters": 0,
        "adapted_modules": 0,
        "final_loss": None,
        "resumed_from_step": None,
    }
    state_path = ckpt.resume_state_path(out_dir)
    rows: list[dict[str, float]] = []
    if request.adapt is None:
        timings["adapt"] = 0.0
        latent, timings["sample"] = _sample(bundle, condition, txt, y_vec, txt_neg, y_neg,
                                            request, seeds["noise"])  # fmt: skip
    else:
        target = AdaptationTarget(
            x0=condition.masked_ref[:, :, : sampling.cond_latent_frames].to(device),
            txt=txt.to(device),
            y_vec=y_vec.to(device),
        )
        identity = {
            "adapt": request.adapt.result_hash(),
            "seed": request.seed,
            "video_id": request.video_id,
            "method": request.method,
            "latent_shape": list(target.x0.shape),
        }
        resume = ResumeOptions(state_path=state_path, identity=identity)
        tick = time.perf_counter()
        try:
            with adapted(
                bundle.mmdit,
                target,
                request.adapt,
                seed=seeds["adapt"],
                resume=resume if request.adapt.checkpoint_every else None,
                stop=stop,
                progress=request.progress,
            ) as result:
                timings["adapt"] = time.perf_counter() - tick
                if stop:
                    saved = state_path if state_path.is_file() else None
                    raise AdaptationInterrupted(request.adapt.steps, stop.signal, saved)
                rows = result.rows
                meta.update(
                    trainable_parameters=result.trainable_parameters,
                    adapted_modules=len(result.adapted_modules),
                    final_loss=result.final_loss,
                    resumed_from_step=result.resumed_from_step,
                )
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
                    latent, timings["sample"] = _sample(bundle, condition, txt, y_vec, txt_neg,
                                                        y_neg, request, seeds["noise"])  # fmt: skip
                if request.save_adapter and torch.isfinite(latent).all():
                    save_adapter(
                        out_dir / ADAPTER_FILE,
                        bundle.mmdit,
                        {
                            "video_id": request.video_id,
                            "method": request.method,
                            "adapt_config": json.dumps(request.adapt.to_dict(), sort_keys=True),
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

    if not torch.isfinite(latent).all():
        (out_dir / ADAPTER_FILE).unlink(missing_ok=True)
        raise _fail(request, "sample", "sampled latent has non-finite values", final=True)
    tick = time.perf_counter()
    try:
        video = pipeline.decode_to_frames(bundle, latent)
    except pipeline.PipelineError as err:
        (out_dir / ADAPTER_FILE).unlink(missing_ok=True)
        raise _fail(request, "decode", str(err)) from err
    timings["decode"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - started

    meta.update(
        outcome=OUTCOME_OK,
        timings=timings,
        frames=int(video.shape[0]),
        height=int(video.shape[1]),
        width=int(video.shape[2]),
        fps=fps,
        versions=versions(),
        **_peak_memory(device),
    )
    if request.adapt is not None:
        write_text_atomic(out_dir / LOSS_FILE, loss_csv(rows))
    write_lossless(out_dir / VIDEO_FILE, np.ascontiguousarray(video), fps)
    write_json_atomic(out_dir / META_FILE, meta)  # last: the record of a complete run
    ckpt.remove_state(state_path)
    return meta


def _num(value: float | None) -> float | str | None:
    # JSON has no NaN/inf: store them as strings.
    if value is None or math.isfinite(value):
        return value
    return str(value)


def _sample(
    bundle: pipeline.ModelBundle,
    condition: pipeline.V2VCondition,
    txt: torch.Tensor,
    y_vec: torch.Tensor,
    txt_neg: torch.Tensor,
    y_neg: torch.Tensor,
    request: GenerateRequest,
    noise_seed: int,
) -> tuple[torch.Tensor, float]:
    tick = time.perf_counter()
    latent = pipeline.sample_continuation(
        bundle,
        condition,
        txt,
        y_vec,
        txt_neg,
        y_neg,
        request.sampling.guidance_config(),
        seed=noise_seed,
        progress=request.progress,
    )
    if bundle.device.type == "cuda":
        torch.cuda.synchronize(bundle.device)
    return latent, time.perf_counter() - tick
