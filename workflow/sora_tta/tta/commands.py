"""Generation subcommands: ``generate`` (one video, baseline or TTA) and ``encode-prompts``.

Heavy imports (torch, peft, transformers) happen inside the command functions.
Exit codes of ``generate``: 0 done, 1 failed (``failure.json`` written for a diverging
adaptation), 75 (``EX_TEMPFAIL``) interrupted by SIGTERM/SIGUSR1/SIGINT with the resume
state saved (during adaptation: the state of the last step; during sampling or decoding:
the trained adapter): run the same command again to resume (it then only samples again).
A baseline run has nothing to save: it stops at the next sampling step and exits 75.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from sora_tta import cli_options as opts
from sora_tta.cli import CommandError
from sora_tta.cli_options import positive_int

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``generate`` and ``encode-prompts`` to the top-level parser."""
    gen = subparsers.add_parser(
        "generate",
        help="continue one clip (baseline, or after LoRA test-time adaptation)",
        description="Continue the first 33 frames of a clip to 65 frames. When the method "
        "(--method-json) has adaptation settings, LoRA adapters are first trained on the "
        "conditioning frames (test-time adaptation). "
        "Writes video.mkv, meta.json, loss.csv (adapted runs) and optionally "
        "adapter.safetensors into --out-dir. Exit 75: interrupted, state saved; rerun resumes.",
    )
    gen.add_argument("--clip", type=Path, required=True, help="ground-truth clip (.mkv)")
    gen.add_argument("--video-id", required=True, help="video id (seeds depend on it)")
    gen.add_argument(
        "--method-json",
        type=Path,
        metavar="JSON",
        help="the method: {method, sampling, adapt} (results/methods/{method}.json); "
        "absent: the baseline with the default sampler settings",
    )
    gen.add_argument(
        "--method", help="method id (default: the one of --method-json, else 'baseline')"
    )
    gen.add_argument(
        "--prompt-embedding",
        type=Path,
        required=True,
        metavar="P.safetensors",
        help="prompt embedding of the video (sora-tta encode-prompts)",
    )
    gen.add_argument(
        "--negative-embedding",
        type=Path,
        required=True,
        metavar="N.safetensors",
        help="embedding of the negative prompt",
    )
    opts.add_checkpoint_dir(gen)
    opts.add_out_dir(gen, "folder of video.mkv, meta.json, loss.csv")
    opts.add_seed(gen, "global seed")
    gen.add_argument("--save-adapter", action="store_true", help="also write adapter.safetensors")
    donor = gen.add_argument_group(
        "cross-video control (adapt_on: cross-video)",
        "train the adapter on another video's clip and prompt, then continue --clip with it",
    )
    donor.add_argument("--adapt-clip", type=Path, metavar="MKV", help="the donor's clip")
    donor.add_argument(
        "--adapt-prompt-embedding", type=Path, metavar="P.safetensors", help="the donor's prompt"
    )
    donor.add_argument("--adapt-video-id", metavar="ID", help="the donor's video id")
    opts.add_device(gen)
    opts.add_dtype(gen)
    gen.add_argument(
        "--no-progress", action="store_true", help="no progress bars (drawn only on a terminal)"
    )
    gen.add_argument(
        "--progress-every",
        type=positive_int,
        default=10,
        help="adaptation steps between two progress lines (step, loss, lr, s/step, ETA; "
        "default 10)",
    )
    gen.add_argument(
        "--compile",
        choices=["auto", "on", "off"],
        default="auto",
        help="regional torch.compile of the MMDiT blocks while sampling (auto: on CUDA only); "
        "falls back to eager on a compile error",
    )
    gen.add_argument(
        "--compile-cache-dir", metavar="DIR", help="persistent Inductor cache (env vars expanded)"
    )
    gen.add_argument(
        "--stage-dir",
        metavar="DIR",
        help="copy the MMDiT and VAE checkpoints to this node-local folder once per node and "
        "load them from there (env vars expanded); a failed copy falls back to --checkpoint-dir",
    )
    gen.set_defaults(func=generate_command)

    enc = subparsers.add_parser(
        "encode-prompts",
        help="encode the distinct prompts of the manifest once (T5 + CLIP)",
        description="Encode every distinct prompt of the usable manifest rows (status ok) and "
        "the empty negative prompt into {prompt_id}.safetensors / negative.safetensors. "
        "Existing files are kept.",
    )
    enc.add_argument(
        "--manifest",
        type=Path,
        required=True,
        metavar="CSV",
        help="manifest (results/manifest.csv)",
    )
    opts.add_checkpoint_dir(enc)
    opts.add_out_dir(enc, "folder of the prompt embeddings")
    enc.add_argument("--fps", type=positive_int, default=24, help="FPS in the prompt (default 24)")
    enc.add_argument(
        "--motion-score", type=positive_int, default=4, help="motion score (default 4)"
    )
    opts.add_device(enc)
    opts.add_dtype(enc)
    enc.set_defaults(func=encode_prompts_command)


def read_method(path: Path | None, method: str | None) -> Any:
    """The :class:`~sora_tta.tta.method.MethodSpec` of ``--method-json`` / ``--method``."""
    from sora_tta.io import read_json
    from sora_tta.study.variants import BASELINE
    from sora_tta.tta.method import MethodSpec

    if path is None:
        return MethodSpec(method=method or BASELINE)
    if not path.is_file():
        raise CommandError(f"{path}: file not found")
    try:
        spec = MethodSpec.from_dict(read_json(path), source=str(path))
    except ValueError as err:
        raise CommandError(str(err)) from err
    if method is not None and method != spec.method:
        raise CommandError(f"--method {method!r} but {path} is method {spec.method!r}")
    return spec


def generate_command(args: argparse.Namespace) -> int:
    """Run one video end to end (see :func:`sora_tta.tta.generate.generate`)."""
    from sora_tta.data.video import VideoReadError
    from sora_tta.models.compile import set_cache_dir
    from sora_tta.staging import staged_or_source
    from sora_tta.study.variants import BASELINE
    from sora_tta.tta.checkpoint import preemption_signals
    from sora_tta.tta.generate import GenerateRequest, GenerationError, generate

    spec = read_method(args.method_json, args.method)
    if spec.adapt is None and spec.method != BASELINE:
        logger.warning("method %r has no adaptation settings: running the baseline", spec.method)
    set_cache_dir(args.compile_cache_dir)
    request = GenerateRequest(
        clip=args.clip,
        video_id=args.video_id,
        method=spec.method,
        prompt_embedding=args.prompt_embedding,
        negative_embedding=args.negative_embedding,
        checkpoint_dir=staged_or_source(args.checkpoint_dir, args.stage_dir),
        out_dir=args.out_dir,
        adapt=spec.adapt,
        sampling=spec.sampling,
        seed=args.seed,
        save_adapter=args.save_adapter,
        adapt_clip=args.adapt_clip,
        adapt_prompt_embedding=args.adapt_prompt_embedding,
        adapt_video_id=args.adapt_video_id,
        device=args.device,
        dtype=args.dtype,
        progress=not args.no_progress,
        progress_every=args.progress_every,
        compile=args.compile,
    )
    try:
        with preemption_signals() as stop:
            meta = generate(request, stop=stop)
    except GenerationError as err:
        if err.final:  # recorded as this video's outcome: evaluation goes ahead without it
            logger.warning("%s: recorded as a failed outcome in %s/meta.json", err, args.out_dir)
            return 0
        raise CommandError(str(err), exit_code=err.exit_code) from err
    except (VideoReadError, FileNotFoundError, ValueError) as err:
        raise CommandError(str(err)) from err
    loss = meta["final_loss"]
    logger.info(
        "%s %s: done in %.1f s (%s)%s -> %s",
        spec.method,
        args.video_id,
        meta["timings"]["total"],
        ", ".join(f"{k} {v:.1f} s" for k, v in meta["timings"].items() if k != "total"),
        "" if loss is None else f", final loss {loss:.4f}",
        args.out_dir,
    )
    return 0


def prompt_files_for_manifest(
    manifest: Any, fps: int = 24, motion_score: int = 4
) -> dict[str, str]:
    """Map each usable video (``status == "ok"``) of a manifest DataFrame to its prompt id.

    The prompt file of a video is :func:`sora_tta.prompts.prompt_file` of its prompt.
    """
    from sora_tta.prompts import format_prompt, prompt_id

    rows = manifest[manifest["status"] == "ok"]
    return {
        str(video): prompt_id(format_prompt(str(caption), fps, motion_score))
        for video, caption in zip(rows["video_id"], rows["caption"], strict=True)
    }


def encode_prompts_command(args: argparse.Namespace) -> int:
    """Encode the manifest's distinct prompts (and the negative prompt) that are not cached."""
    from sora_tta.data.manifest import ManifestError, read_manifest
    from sora_tta.devices import resolve_device, resolve_dtype
    from sora_tta.integrity import RESTORE_TIMES_FILE, prompt_file_problem, read_restore_times
    from sora_tta.models import pipeline
    from sora_tta.models.text import save_prompt_embedding
    from sora_tta.prompts import NEGATIVE_PROMPT, format_prompt, prompt_file

    try:
        manifest = read_manifest(args.manifest)
    except ManifestError as err:
        raise CommandError(str(err)) from err
    usable = manifest[manifest["status"] == "ok"]
    empty = usable[usable["caption"].str.strip() == ""]
    if len(empty):
        raise CommandError(
            f"{args.manifest}: empty caption for usable videos {list(empty['video_id'])[:5]}"
        )
    mapping = prompt_files_for_manifest(manifest, args.fps, args.motion_score)
    prompts = {
        mapping[str(video)]: format_prompt(str(caption), args.fps, args.motion_score)
        for video, caption in zip(usable["video_id"], usable["caption"], strict=True)
    }
    wanted = {prompt_file(text): text for text in [*prompts.values(), NEGATIVE_PROMPT]}
    # Missing or damaged files are (re)encoded; intact ones are kept.
    todo = {
        name: text
        for name, text in wanted.items()
        if not (args.out_dir / name).is_file() or prompt_file_problem(args.out_dir / name)
    }
    logger.info(
        "%d distinct prompts (+ negative) for %d videos; %d to encode",
        len(prompts),
        len(usable),
        len(todo),
    )
    if not todo:
        return 0
    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype, device)
        start = time.perf_counter()
        encoders = pipeline.load_text_encoders_from(args.checkpoint_dir, device=device, dtype=dtype)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(str(err)) from err
    restore = read_restore_times(args.out_dir)
    for name, text in sorted(todo.items()):
        txt, y_vec = encoders.encode([text])
        save_prompt_embedding(args.out_dir / name, text, txt.float(), y_vec.float())
        logger.debug("%s <- %s", name, json.dumps(text))
        if name in restore:  # re-encoded after the preflight removed a damaged copy
            os.utime(args.out_dir / name, ns=(restore[name], restore[name]))
    (args.out_dir / RESTORE_TIMES_FILE).unlink(missing_ok=True)
    logger.info(
        "encoded %d prompts in %.1f s -> %s", len(todo), time.perf_counter() - start, args.out_dir
    )
    return 0
