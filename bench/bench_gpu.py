"""Full-size performance of the per-video work: adaptation step, sampling step, VAE, loading.

Builds the Open-Sora v2.0 MMDiT with random bf16 weights directly on the device (no
checkpoint is needed to measure speed), then times, with CUDA events after warm-up:

- one adaptation step: 9 latent frames (2,268 image + 512 text tokens at 224x288), batch 1,
  LoRA ``attn+fused`` preset, forward + backward + clipping + AdamW on the adapter (the real
  objective from ``sora_tta.tta.objective``, ``continue`` mode, bf16 autocast);
- one sampling step: 17 latent frames (4,284 + 512 tokens), the three guidance branches as one
  batch of 3, forward only, with and without the LoRA adapters in place;
- optionally one VAE encode of 33 frames and one decode of 17 latent frames, and loading a
  written full-size checkpoint.

Each configuration ("variant": SDPA backend, regional ``torch.compile``, gradient
checkpointing) is timed in the same process. Achieved TFLOP/s use the FLOP model of
``sora_tta.flops`` (see docs/performance.md). Output: a table on stdout and JSON.

CPU check at reduced size (what the test runs)::

    python bench/bench_gpu.py --preset tiny --device cpu --height 64 --width 80 --iters 2

GPU (one call of the device tool)::

    python bench/bench_gpu.py --variants eager,cudnn,compile --vae --json $OUT/gpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from peft.helpers import disable_input_dtype_casting

from sora_tta import sampling
from sora_tta.flops import mmdit_flops
from sora_tta.models.mmdit import MMDiT, MMDiTConfig, mmdit_config
from sora_tta.tta import lora, objective

# Dense bf16 tensor-core peak (datasheet, SXM parts): used for the "fraction of peak" column.
DENSE_BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}
TXT_TOKENS = 512


@dataclass
class Timing:
    """Seconds per call (median over timed iterations) and what it achieved."""

    name: str
    seconds: float
    flops: float = 0.0
    peak_memory_gb: float = 0.0
    samples: list[float] = field(default_factory=list)
    first_call_seconds: float = 0.0  # the first warm-up call: compilation included

    def tflops(self) -> float:
        return self.flops / self.seconds / 1e12 if self.flops else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="opensora-v2", help="MMDiT preset (opensora-v2|tiny)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--height", type=int, default=224, help="frame height in pixels")
    parser.add_argument("--width", type=int, default=288, help="frame width in pixels")
    parser.add_argument("--txt-tokens", type=int, default=TXT_TOKENS)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--targets", default="attn+fused")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument(
        "--variants",
        default="eager",
        help="comma list of: eager (default SDPA), flash, cudnn, efficient, compile, ckpt",
    )
    parser.add_argument("--vae", action="store_true", help="also time the full-size VAE")
    parser.add_argument(
        "--checkpoint-load", metavar="DIR", help="write a random checkpoint there and time loading"
    )
    parser.add_argument("--peak-tflops", type=float, help="override the dense bf16 peak")
    parser.add_argument("--adapt-steps", type=int, default=100, help="per-video total")
    parser.add_argument("--sample-steps", type=int, default=25, help="per-video total")
    parser.add_argument("--json", type=Path, help="write all figures here")
    return parser.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    fn: Callable[[], Any], device: torch.device, warmup: int, iters: int
) -> tuple[float, list[float], float, float]:
    """Median seconds of ``fn`` over ``iters`` calls after ``warmup``, the samples, peak memory
    in GB and the seconds of the first warm-up call (compilation included, 0 without warm-up).
    """
    first = 0.0
    for index in range(warmup):
        begin = time.perf_counter()
        fn()
        if index == 0:
            synchronize(device)
            first = time.perf_counter() - begin
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    samples = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - begin)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return sorted(samples)[len(samples) // 2], samples, peak, first


def build_random_mmdit(config: MMDiTConfig, device: torch.device, seed: int = 0) -> MMDiT:
    """The MMDiT with random bf16 weights, materialised straight on ``device``."""
    with torch.device("meta"):
        model = MMDiT(config).to(torch.bfloat16)  # free on meta: no float32 copy on the device
    model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".scale"):
                param.fill_(1.0)
            else:
                fan_in = param.shape[-1] if param.ndim > 1 else param.shape[0]
                param.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
    model.to(torch.bfloat16).requires_grad_(False).eval()
    return model


@contextlib.contextmanager
def variant_context(name: str) -> Iterator[None]:
    """SDPA backend selection for one variant (``eager``/``compile``/``ckpt`` keep the default)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
    }
    if name in backends:
        with sdpa_kernel(backends[name]):
            yield
    else:
        yield


def compile_blocks(model: MMDiT) -> None:
    """Regional compilation: each transformer block compiled in place (static shapes)."""
    for block in [*model.double_blocks, *model.single_blocks]:
        block.compile(dynamic=False)


def latent_size(height: int, width: int) -> tuple[int, int]:
    if height % 16 or width % 16:
        raise SystemExit(f"--height/--width must be multiples of 16, got {height}x{width}")
    return height // 8, width // 8


def bench_adapt_step(
    model: MMDiT,
    args: argparse.Namespace,
    device: torch.device,
    variant: str,
    name: str = "adapt_step",
    peft_input_cast: bool = True,
) -> Timing:
    """Forward + backward + AdamW on the LoRA adapters, 9 latent frames, batch 1."""
    config = model.config
    h, w = latent_size(args.height, args.width)
    gen = torch.Generator().manual_seed(1)
    target = objective.AdaptationTarget(
        x0=torch.randn(1, 16, 9, h, w, generator=gen).to(device),
        txt=torch.randn(1, args.txt_tokens, config.context_in_dim, generator=gen).to(device),
        y_vec=torch.randn(1, config.vec_in_dim, generator=gen).to(device),
        txt_neg=torch.randn(1, args.txt_tokens, config.context_in_dim, generator=gen).to(device),
        y_neg=torch.randn(1, config.vec_in_dim, generator=gen).to(device),
        conditions={5: torch.randn(1, 16, 5, h, w, generator=gen).to(device)},
    )
    # The default guidance-aware draws, with one condition length (5 clean latent frames).
    spec = objective.ObjectiveSpec(mode=objective.CONTINUE, continue_frames=(5,))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    draws = iter(lambda: objective.draw_step(spec, target, gen), None)

    def step() -> None:
        with autocast:
            loss = objective.flow_matching_loss(model, target, next(draws))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.gradient_checkpointing = variant == "ckpt"
    try:
        # Without autocast (CPU) the float32 adapters need peft's input cast.
        skip_cast = not peft_input_cast and device.type == "cuda"
        with variant_context(variant), disable_input_dtype_casting(model, skip_cast):
            seconds, samples, peak, first = time_call(step, device, args.warmup, args.iters)
    finally:
        model.gradient_checkpointing = False
    img_tokens = 9 * (h // 2) * (w // 2)
    flops = mmdit_flops(
        config,
        batch=1,
        img_tokens=img_tokens,
        txt_tokens=args.txt_tokens,
        backward=True,
        lora_rank=args.rank,
        lora_targets=args.targets if args.targets in lora.TARGET_PRESETS else "attn+fused",
    )
    return Timing(name, seconds, flops.total, peak, samples, first)


def bench_sample_step(
    model: MMDiT, args: argparse.Namespace, device: torch.device, variant: str, name: str
) -> tuple[Timing, torch.Tensor]:
    """One guided sampling step: batch 3 (the three branches), 17 latent frames, forward only."""
    config = model.config
    h, w = latent_size(args.height, args.width)
    gen = torch.Generator().manual_seed(2)
    batch, frames = 3, 17
    img_tokens = frames * (h // 2) * (w // 2)
    latent = torch.randn(batch, 16, frames, h, w, generator=gen)
    masks, masked_ref = sampling.v2v_condition(latent[:1], frames, 9)
    inputs = {
        "img": sampling.patchify(latent).to(device, torch.bfloat16),
        "img_ids": sampling.make_img_ids(batch, frames, h, w, device=device),
        "txt": torch.randn(batch, args.txt_tokens, config.context_in_dim, generator=gen).to(
            device, torch.bfloat16
        ),
        "txt_ids": sampling.make_txt_ids(batch, args.txt_tokens, device=device),
        "timesteps": torch.full((batch,), 0.7, device=device, dtype=torch.bfloat16),
        "y_vec": torch.randn(batch, config.vec_in_dim, generator=gen).to(device, torch.bfloat16),
        "cond": sampling.build_cond(masks, masked_ref)
        .expand(batch, -1, -1)
        .to(device, torch.bfloat16),
    }

    outputs: list[torch.Tensor] = []

    def step() -> None:
        with torch.inference_mode():
            outputs[:] = [model(**inputs)]

    with variant_context(variant):
        seconds, samples, peak, first = time_call(step, device, args.warmup, args.iters)
    has_lora = lora.has_lora(model)
    flops = mmdit_flops(
        config,
        batch=batch,
        img_tokens=img_tokens,
        txt_tokens=args.txt_tokens,
        lora_rank=args.rank if has_lora else 0,
        lora_targets="attn+fused",
    )
    return Timing(name, seconds, flops.total, peak, samples, first), outputs[0].float()


def bench_sample_lora_bf16(
    model: MMDiT, args: argparse.Namespace, device: torch.device, variant: str
) -> Timing:
    """Adapted sampling step with the adapters cast to bf16 (what generation does)."""
    with lora.adapters_cast_to(model, torch.bfloat16):
        return bench_sample_step(model, args, device, variant, "sample_step_lora_bf16")[0]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` (how far a variant's output is from the eager one)."""
    return float((out - ref).norm() / ref.norm())


def bench_vae(args: argparse.Namespace, device: torch.device) -> list[Timing]:
    """Full-size VAE (random weights): encode 33 frames, decode 17 latent frames."""
    from sora_tta.models.vae import VideoAutoencoder, build_autoencoder, vae_config

    config = vae_config("hunyuan-vae" if args.preset == "opensora-v2" else "tiny")
    vae = VideoAutoencoder(build_autoencoder(config), config).to(device, torch.bfloat16).eval()
    gen = torch.Generator().manual_seed(3)
    video = (torch.rand(1, 3, 33, args.height, args.width, generator=gen) * 2 - 1).to(
        device, torch.bfloat16
    )
    h, w = latent_size(args.height, args.width)
    latent = torch.randn(1, 16, 17, h, w, generator=gen).to(device, torch.bfloat16)
    calls = {
        "vae_encode_33": lambda: vae.encode(video),
        "vae_decode_17": lambda: vae.decode(latent),
    }
    timings = []
    with torch.inference_mode():
        for name, fn in calls.items():
            seconds, samples, peak, first = time_call(fn, device, 1, max(2, args.iters // 3))
            timings.append(Timing(name, seconds, 0.0, peak, samples, first))
    return timings


def bench_checkpoint_load(model: MMDiT, folder: Path, device: torch.device) -> Timing:
    """Write ``model`` as an official-format checkpoint once, then time ``load_mmdit``."""
    from sora_tta.layout import MMDIT_FILE
    from sora_tta.models.loader import load_mmdit, save_mmdit

    path = folder / MMDIT_FILE
    begin = time.perf_counter()
    save_mmdit(model, path)
    written = time.perf_counter() - begin
    size_gib = path.stat().st_size / 2**30
    print(f"wrote {path} ({size_gib:.1f} GiB) in {written:.1f} s", file=sys.stderr)
    synchronize(device)
    begin = time.perf_counter()
    loaded = load_mmdit(path, device=device, dtype=torch.bfloat16)
    synchronize(device)
    seconds = time.perf_counter() - begin
    del loaded
    return Timing("checkpoint_load", seconds)


def peak_tflops(args: argparse.Namespace, device: torch.device) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in DENSE_BF16_PEAK_TFLOPS.items() if k in name), None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    config = mmdit_config(args.preset)
    peak = peak_tflops(args, device)
    begin = time.perf_counter()
    model = build_random_mmdit(config, device)
    build_seconds = time.perf_counter() - begin
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "preset": args.preset,
        "frame_size": [args.height, args.width],
        "txt_tokens": args.txt_tokens,
        "rank": args.rank,
        "targets": args.targets,
        "peak_tflops": peak,
        "build_seconds": build_seconds,
        "variants": {},
    }
    reference: torch.Tensor | None = None
    for index, variant in enumerate(args.variants.split(",")):
        if variant == "compile":
            compile_blocks(model)
        base, output = bench_sample_step(model, args, device, variant, "sample_step_base")
        reference = output if reference is None else reference
        error = relative_error(output, reference)
        rows = [asdict(base) | {"tflops": base.tflops(), "relative_error_vs_first_variant": error}]
        report["variants"][variant] = rows
        spec = lora.LoraSpec(rank=args.rank, alpha=2 * args.rank, targets=args.targets)
        common = (model, args, device, variant)
        with lora.lora_adapters(model, spec, torch.Generator().manual_seed(0)):
            # Cheapest and crash-safe first: a compiled backward is the riskiest measurement.
            measures = [
                partial(bench_sample_step, *common, "sample_step_lora"),
                partial(bench_sample_lora_bf16, *common),
                partial(bench_adapt_step, *common, "adapt_step"),
                partial(bench_adapt_step, *common, "adapt_step_nocast", peft_input_cast=False),
            ]
            if variant == "compile":
                del measures[2]
            for measure in measures:
                timing = measure()
                timing = timing[0] if isinstance(timing, tuple) else timing
                rows.append(asdict(timing) | {"tflops": timing.tflops()})
                checkpoint_report(report, args)
        by_name = {row["name"]: row["seconds"] for row in rows}
        adapt = min(v for k, v in by_name.items() if k.startswith("adapt_step"))
        sample = min(v for k, v in by_name.items() if k.startswith("sample_step_lora"))
        rows.append(
            {
                "name": "per_video_model_seconds",
                "seconds": args.adapt_steps * adapt + args.sample_steps * sample,
                "note": f"{args.adapt_steps} adaptation steps + {args.sample_steps} sampling steps "
                "(fastest adaptation and adapted-sampling measurement of this variant)",
            }
        )
        checkpoint_report(report, args)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if index == 0:
            run_extras(model, args, device, report)
    return report


def run_extras(
    model: MMDiT, args: argparse.Namespace, device: torch.device, report: dict[str, Any]
) -> None:
    """Checkpoint loading and the VAE, measured right after the first variant."""
    if args.checkpoint_load:
        folder = Path(args.checkpoint_load)
        report["checkpoint_load"] = asdict(bench_checkpoint_load(model, folder, device))
        checkpoint_report(report, args)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if args.vae:
        report["vae"] = [asdict(t) for t in bench_vae(args, device)]
        checkpoint_report(report, args)


def checkpoint_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    """Write what was measured so far (a run killed at its time limit keeps its figures)."""
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report), file=sys.stderr, flush=True)


def format_table(report: dict[str, Any]) -> str:
    peak = report["peak_tflops"]
    lines = [
        f"device {report['device']}, torch {report['torch']}, preset {report['preset']}, "
        f"frames {report['frame_size'][0]}x{report['frame_size'][1]}, peak {peak} TFLOP/s",
        f"{'variant':<10} {'measure':<24} {'seconds':>9} {'TFLOP/s':>9} {'of peak':>8} "
        f"{'mem GB':>8}",
    ]
    for variant, rows in report["variants"].items():
        for row in rows:
            tflops = row.get("tflops", 0.0)
            share = f"{100 * tflops / peak:7.1f}%" if peak and tflops else "       -"
            error = row.get("relative_error_vs_first_variant")
            lines.append(
                f"{variant:<10} {row['name']:<24} {row['seconds']:9.4f} {tflops:9.1f} {share} "
                f"{row.get('peak_memory_gb', 0.0):8.1f}"
                + (f"  rel.err {error:.1e}" if error is not None else "")
            )
    for row in report.get("vae", []):
        lines.append(
            f"{'vae':<10} {row['name']:<24} {row['seconds']:9.4f} {'':>9} {'':>8} "
            f"{row['peak_memory_gb']:8.1f}"
        )
    if "checkpoint_load" in report:
        seconds = report["checkpoint_load"]["seconds"]
        lines.append(f"{'load':<10} {'checkpoint_load':<24} {seconds:9.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
