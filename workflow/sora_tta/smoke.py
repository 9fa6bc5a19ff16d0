"""``sora-tta smoke``: continue a synthetic clip end to end with a checkpoint folder (load,
encode, sample, decode, write), the quickest check that the checkpoints and the stack work;
``sora-tta smoke-check`` re-reads the written clips and checks their frames.

Heavy imports (torch, diffusers, transformers) happen inside the command function.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sora_tta import cli_options as opts
from sora_tta.cli import CommandError

logger = logging.getLogger(__name__)

SMOKE_CAPTION = "a person playing guitar"
SMOKE_FPS = 24


def register(subparsers: Any) -> None:
    """Add the ``smoke`` subcommand to the top-level parser."""
    smoke = subparsers.add_parser(
        "smoke",
        help="continue a synthetic clip end to end (load, encode, sample, decode, write)",
        description="Continue a synthetic moving-pattern clip with the checkpoints of "
        "--checkpoint-dir: encode the first 33 frames, sample, decode, write the clip.",
    )
    opts.add_checkpoint_dir(smoke)
    smoke.add_argument(
        "--frames", type=opts.positive_int, default=65, help="frames to generate (4k+1)"
    )
    smoke.add_argument(
        "--cond-frames", type=opts.positive_int, default=33, help="conditioning frames (4k+1)"
    )
    smoke.add_argument(
        "--height", type=opts.positive_int, default=64, help="frame height (multiple of 16)"
    )
    smoke.add_argument(
        "--width", type=opts.positive_int, default=80, help="frame width (multiple of 16)"
    )
    smoke.add_argument(
        "--steps", type=opts.positive_int, default=4, help="sampling steps (default 4)"
    )
    opts.add_seed(smoke, "noise seed")
    smoke.add_argument("--caption", default=SMOKE_CAPTION, help="caption of the prompt")
    smoke.add_argument(
        "--out",
        type=Path,
        default=Path("smoke.mkv"),
        metavar="FILE.mkv",
        help="clip to write (default smoke.mkv)",
    )
    opts.add_device(smoke)
    opts.add_dtype(smoke)
    smoke.set_defaults(func=smoke_command)

    check = subparsers.add_parser(
        "smoke-check",
        help="re-read smoke clips: frame count, size, not a constant image",
        description="Check that every CLIP has --frames frames of --height x --width and is "
        "not one constant value; write the JSON report to --report (only when all pass).",
    )
    check.add_argument("clips", nargs="+", type=Path, metavar="CLIP", help="clips to check")
    check.add_argument("--frames", type=opts.positive_int, required=True, help="frame count")
    check.add_argument("--height", type=opts.positive_int, required=True, help="frame height")
    check.add_argument("--width", type=opts.positive_int, required=True, help="frame width")
    check.add_argument("--report", type=Path, required=True, metavar="OUT.json", help="report")
    check.set_defaults(func=smoke_check_command)


def smoke_command(args: argparse.Namespace) -> int:
    """Run one continuation of a synthetic clip end to end and write it losslessly."""
    import torch

    from sora_tta.data.video import write_lossless
    from sora_tta.devices import resolve_device, resolve_dtype
    from sora_tta.models import pipeline
    from sora_tta.prompts import NEGATIVE_PROMPT, format_prompt
    from sora_tta.sampling import GuidanceConfig
    from sora_tta.world.clips import synthetic_clip

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype, device)
        guidance = GuidanceConfig(num_steps=args.steps)
    except ValueError as err:
        raise CommandError(str(err)) from err
    if args.height % 16 or args.width % 16:
        raise CommandError(
            f"--height/--width must be multiples of 16, got {args.height}x{args.width}"
        )

    root = args.checkpoint_dir
    try:
        bundle = pipeline.load_models(root, device=device, dtype=dtype)
        encoders = pipeline.load_text_encoders_from(root, device=device, dtype=dtype)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(str(err)) from err
    lap("load")

    frames = synthetic_clip(args.frames, args.height, args.width)
    try:
        condition = pipeline.encode_condition(bundle, frames, args.cond_frames, args.frames)
    except ValueError as err:
        raise CommandError(f"synthetic clip: {err}") from err
    lap("encode_video")

    prompt = format_prompt(args.caption)
    txt, y_vec = encoders.encode([prompt, NEGATIVE_PROMPT])
    del encoders
    lap("encode_text")

    with torch.no_grad():
        latent = pipeline.sample_continuation(
            bundle, condition, txt[:1], y_vec[:1], txt[1:], y_vec[1:], guidance, args.seed
        )
        lap("sample")
        try:
            output = pipeline.decode_to_frames(bundle, latent)
        except pipeline.PipelineError as err:
            raise CommandError(f"smoke run: {err}") from err
    lap("decode")
    if output.shape != frames.shape:
        raise CommandError(f"smoke run: output {output.shape} != expected {frames.shape}")

    write_lossless(args.out, output, fps=SMOKE_FPS)
    lap("write")
    total = sum(timings.values())
    logger.info(
        "smoke: %s, %s; %s; total %.2f s",
        device,
        str(dtype).removeprefix("torch."),
        ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items()),
        total,
    )
    print(
        f"smoke ok: {output.shape[0]} frames {args.height}x{args.width}, "
        f"{args.steps} steps, {total:.1f} s -> {args.out}"
    )
    return 0


def check_smoke_clips(paths: Iterable[str], expected_shape: tuple[int, ...]) -> dict[str, Any]:
    """Re-read smoke clips and check shape ``(T, H, W, 3)`` and that they are not constant.

    Returns a JSON-ready report with ``ok``, ``problems`` and per-clip statistics.
    """
    import numpy as np

    from sora_tta.data.video import VideoReadError, read_frames

    clips, problems = {}, []
    for path in paths:
        try:
            frames = read_frames(path)
        except VideoReadError as err:
            problems.append(str(err))
            continue
        values = frames.astype(np.float64)
        clips[str(path)] = {
            "shape": list(frames.shape),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
        if tuple(frames.shape) != tuple(expected_shape):
            problems.append(f"{path}: shape {list(frames.shape)}, expected {list(expected_shape)}")
        if float(values.std()) == 0.0:
            problems.append(f"{path}: every pixel has the same value")
    return {
        "ok": not problems,
        "expected_shape": list(expected_shape),
        "clips": clips,
        "problems": problems,
    }


def smoke_check_command(args: argparse.Namespace) -> int:
    """Check the smoke clips; write the report when every check passed, else fail naming
    each problem (the report is printed either way, for the log)."""
    from sora_tta.io import write_json_atomic

    report = check_smoke_clips(args.clips, (args.frames, args.height, args.width, 3))
    print(json.dumps(report, indent=2))
    if not report["ok"]:
        raise CommandError(f"smoke check failed: {'; '.join(report['problems'])}")
    write_json_atomic(args.report, report)
    return 0
