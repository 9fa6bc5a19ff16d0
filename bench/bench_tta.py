"""Benchmark of test-time adaptation: adaptation steps per second and sampling seconds per video.

Default: the tiny MMDiT (seeded weights of the tiny checkpoint family) on the CPU. With
``--full-size`` the full Open-Sora v2.0 MMDiT (11.9 B parameters) is built on the meta
device and materialised on the target device in bf16 with random weights (GPU only: the
timing does not depend on the weight values). Inputs have the real shapes: a 33-frame
clip (9 latent frames) for the adaptation, a 65-frame target (17 latent frames) for the
sampler, 512 T5 tokens. Everything else is the production code: peft LoRA injection,
the flow-matching objective, AdamW with clipping, bf16 autocast on CUDA, the three-branch
guided sampler.

Prints one JSON object (and writes it to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from sora_tta.models.mmdit import MMDiT, mmdit_config
from sora_tta.sampling import (
    GuidanceConfig,
    get_schedule,
    sample_v2v,
    tokens_per_frame,
    v2v_condition,
)
from sora_tta.tta import adapt, lora, train
from sora_tta.tta.objective import AdaptationTarget

T5_TOKENS = 512


def build_model(full_size: bool, device: torch.device, dtype: torch.dtype, seed: int) -> MMDiT:
    """The tiny seeded MMDiT, or the full one materialised from meta with random weights."""
    if not full_size:
        # Imported here: the tiny family pulls in diffusers/transformers, not needed at full size.
        from sora_tta.world.tiny import init_mmdit

        return init_mmdit(mmdit_config("tiny"), seed).to(device, dtype).requires_grad_(False)
    with torch.device("meta"):
        model = MMDiT(mmdit_config("opensora-v2"))
    model = model.to_empty(device=device).to(dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("scale"):
                param.fill_(1.0)
            elif param.ndim == 1:
                param.zero_()
            else:  # small GPT-style init keeps 57 random blocks numerically tame in bf16
                param.normal_(0.0, 0.02, generator=gen)
    return model.eval().requires_grad_(False)


def sync(device: torch.device) -> None:
    """Wait for queued device work (timings on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_sampling(
    model: MMDiT, inputs: dict, guidance: GuidanceConfig, device: torch.device
) -> float:
    """Seconds of one full guided sampling run."""
    sync(device)
    start = time.perf_counter()
    latent = sample_v2v(model, **inputs, guidance=guidance)
    sync(device)
    if not torch.isfinite(latent).all():
        raise RuntimeError("sampled latent is not finite")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true", help="full 11.9 B MMDiT (GPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--height", type=int, help="frame height (default 224 full, 64 tiny)")
    parser.add_argument("--width", type=int, help="frame width (default 288 full, 80 tiny)")
    parser.add_argument("--steps", type=int, default=10, help="timed adaptation steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first adaptation steps")
    parser.add_argument("--sampling-steps", type=int, default=25, help="sampler steps per video")
    parser.add_argument("--targets", default="attn+fused", help="LoRA target preset or regex")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--skip-baseline-sampling", action="store_true",
                        help="time sampling only with the adapters in place")  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if args.full_size and device.type != "cuda":
        parser.error("--full-size needs a CUDA device (about 24 GB of weights in bf16)")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    height = args.height or (224 if args.full_size else 64)
    width = args.width or (288 if args.full_size else 80)
    lat_h, lat_w = height // 8, width // 8

    start = time.perf_counter()
    model = build_model(args.full_size, device, dtype, seed=0)
    sync(device)
    build_seconds = time.perf_counter() - start
    cfg = model.config
    gen = torch.Generator().manual_seed(1)
    txt = torch.randn(1, T5_TOKENS, cfg.context_in_dim, generator=gen).to(device)
    y_vec = torch.randn(1, cfg.vec_in_dim, generator=gen).to(device)
    clip_latent = torch.randn(1, 16, 9, lat_h, lat_w, generator=gen).to(device)
    target = AdaptationTarget(x0=clip_latent, txt=txt, y_vec=y_vec)

    masks, masked_ref = v2v_condition(clip_latent, 17, 9)
    guidance = GuidanceConfig(num_steps=args.sampling_steps)
    sample_inputs = {
        "noise": torch.randn(1, 16, 17, lat_h, lat_w, generator=gen).to(device),
        "masks": masks,
        "masked_ref": masked_ref,
        "txt_cond": txt,
        "txt_neg": torch.randn(txt.shape, generator=gen).to(device),
        "y_vec_cond": y_vec,
        "y_vec_neg": torch.randn(y_vec.shape, generator=gen).to(device),
        "timesteps": get_schedule(args.sampling_steps, tokens_per_frame(lat_h, lat_w), 17),
    }

    result: dict = {
        "model": "opensora-v2 (random weights)" if args.full_size else "tiny",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "dtype": str(dtype).removeprefix("torch."),
        "frames": f"{height}x{width}",
        "build_seconds": round(build_seconds, 2),
    }
    if not args.skip_baseline_sampling:
        result["sample_seconds_baseline"] = time_sampling(model, sample_inputs, guidance, device)

    config = adapt.AdaptConfig(
        rank=args.rank,
        targets=args.targets,
        steps=args.warmup + args.steps,
        warmup_steps=0,
        checkpoint_every=0,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with train.adapted(model, target, config, seed=2) as run:
        timed = [row["seconds"] for row in run.rows[args.warmup :]]
        if device.type == "cuda":
            result["adapt_peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        result["sample_seconds_adapted"] = time_sampling(model, sample_inputs, guidance, device)
        result["trainable_parameters"] = run.trainable_parameters
    result.update(
        adapt_steps_per_second=len(timed) / sum(timed),
        adapt_seconds_per_step=sum(timed) / len(timed),
        adapt_first_step_seconds=run.rows[0]["seconds"],
        sampling_steps=args.sampling_steps,
        adaptation_steps_timed=len(timed),
        final_loss=run.final_loss,
        gradient_checkpointing=args.gradient_checkpointing,
        targets=args.targets,
        rank=args.rank,
    )
    assert not lora.has_lora(model)
    if not math.isfinite(result["final_loss"]):
        raise RuntimeError("adaptation loss is not finite")
    text = json.dumps(
        {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, indent=2
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
