"""World subcommands, the fake world of the demo and the tests: ``make-synthetic-ucf101``,
``make-world`` (a procedural UCF-101-layout tree), ``make-tiny-checkpoints``,
``pretrain-proxy`` and ``proxy-checkpoints``.

Heavy imports (torch, diffusers, transformers) happen inside the command functions.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from sora_tta import cli_options as opts
from sora_tta.cli import CommandError
from sora_tta.cli_options import non_negative_int, positive_int

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the world subcommands to the top-level parser."""
    _register_synthetic(subparsers)
    tiny = subparsers.add_parser(
        "make-tiny-checkpoints",
        help="write the tiny seeded checkpoint family in the official layout",
        description="Write a tiny Open-Sora v2.0 checkpoint family (MMDiT, VAE, T5, CLIP) "
        "in the official folder layout; same seed, same bytes.",
    )
    tiny.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="folder to write (official layout)"
    )
    opts.add_seed(tiny, "initialisation seed")
    tiny.set_defaults(func=make_tiny_checkpoints_command)

    world = subparsers.add_parser(
        "make-world",
        help="write a procedural-world video tree in UCF-101's folder and split layout",
        description="Write OUT/UCF-101/<Class>/v_*.avi, OUT/ucfTrainTestlist/*, "
        "OUT/synthetic.json, OUT/world.json (every video's parameters and caption) and "
        "OUT/captions.tsv (video id -> caption) for the pretrain or novel distribution.",
    )
    world.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write")
    world.add_argument(
        "--distribution",
        choices=("pretrain", "novel"),
        default="novel",
        help="which distribution of the world (default novel)",
    )
    world.add_argument("--classes", type=positive_int, default=3, help="classes (default 3)")
    world.add_argument(
        "--per-class", type=positive_int, default=2, help="videos per class (default 2)"
    )
    world.add_argument(
        "--frames", type=positive_int, default=80, help="frames per video (default 80)"
    )
    world.add_argument(
        "--clips-per-group",
        type=positive_int,
        default=4,
        help="clips of one group (scene); split s tests every third group (default 4)",
    )
    opts.add_seed(world, "world seed")
    world.add_argument("--width", type=positive_int, default=320, help="frame width (default 320)")
    world.add_argument(
        "--height", type=positive_int, default=240, help="frame height (default 240)"
    )
    world.add_argument("--broken", action="store_true", help="add the broken cases")
    world.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    world.set_defaults(func=make_world_command)

    proxy = subparsers.add_parser(
        "pretrain-proxy",
        help="pretrain the tiny proxy VAE and MMDiT on the pretraining world (CPU)",
        description="Train a tiny HunyuanVideo-architecture VAE, then a tiny MMDiT with the "
        "reference's flow-matching objective and condition mix, on the pretraining world; "
        "write the checkpoint folder in the official layout plus proxy.json.",
    )
    proxy.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="checkpoint folder to write"
    )
    proxy.add_argument("--minutes", type=float, default=30.0, help="time budget (default 30)")
    opts.add_seed(proxy, "training seed")
    proxy.add_argument(
        "--videos", type=positive_int, help="training videos (default: PretrainConfig's)"
    )
    proxy.add_argument("--vae-steps", type=positive_int, help="step limit of the VAE stage")
    proxy.add_argument("--mmdit-steps", type=positive_int, help="step limit of the MMDiT stage")
    proxy.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    proxy.set_defaults(func=pretrain_proxy_command)

    copy = subparsers.add_parser(
        "proxy-checkpoints",
        help="copy the committed, pretrained proxy checkpoints into a folder (verified)",
        description="Copy the proxy checkpoints shipped with the package (official layout, "
        "pretrained on the procedural world by pretrain-proxy; docs/proxy.md) into OUT and "
        "check the weights against the SHA-256 recorded in their proxy.json.",
    )
    copy.add_argument("out", type=Path, metavar="OUT", help="checkpoint folder to write")
    copy.set_defaults(func=proxy_checkpoints_command)


def make_world_command(args: argparse.Namespace) -> int:
    """Write a world tree."""
    from sora_tta.world.procedural import WorldConfig, make_world

    try:
        config = WorldConfig(
            distribution=args.distribution,
            classes=args.classes,
            per_class=args.per_class,
            frames=args.frames,
            seed=args.seed,
            clips_per_group=args.clips_per_group,
            width=args.width,
            height=args.height,
            broken=args.broken,
        )
        make_world(args.out, config, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as err:
        raise CommandError(str(err)) from err
    logger.info("wrote a %s world of %d videos to %s", args.distribution,
                args.classes * args.per_class, args.out)  # fmt: skip
    return 0


def proxy_checkpoints_command(args: argparse.Namespace) -> int:
    """Copy the committed proxy checkpoints into ``args.out``."""
    from sora_tta.world.proxy import ProxyCheckpointError, copy_proxy_checkpoints

    try:
        copied = copy_proxy_checkpoints(args.out)
    except (ProxyCheckpointError, OSError) as err:
        raise CommandError(str(err)) from err
    logger.info("copied %d proxy checkpoint files to %s (SHA-256 verified)", copied, args.out)
    return 0


def pretrain_proxy_command(args: argparse.Namespace) -> int:
    """Pretrain the proxy models into ``args.out``."""
    import torch

    from sora_tta.world.pretrain import PretrainConfig, pretrain_proxy
    from sora_tta.world.proxy import PROXY_FILE

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        given = {"videos": args.videos} if args.videos is not None else {}
        config = PretrainConfig(
            minutes=args.minutes,
            seed=args.seed,
            vae_steps=args.vae_steps,
            mmdit_steps=args.mmdit_steps,
            **given,
        )
    except ValueError as err:
        raise CommandError(str(err)) from err
    start = time.perf_counter()
    description = pretrain_proxy(args.out, config)
    logger.info(
        "pretrained the proxy in %.0f s: VAE %d steps (recon PSNR %.2f dB), MMDiT %d steps "
        "(last loss %.4f); see %s",
        time.perf_counter() - start,
        description["vae"]["steps"],
        description["vae"]["train_recon_psnr"],
        description["mmdit"]["steps"],
        description["mmdit"]["loss_last_window"] or float("nan"),
        args.out / PROXY_FILE,
    )
    return 0


def _register_synthetic(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-synthetic-ucf101",
        help="write a small synthetic UCF-101 tree (videos + official-format split lists)",
        description=(
            "Write OUT/UCF-101/<Class>/v_<Class>_gNN_cMM.avi (MPEG-4 part 2 in AVI), "
            "OUT/ucfTrainTestlist/{classInd,testlist0N,trainlist0N}.txt and OUT/synthetic.json. "
            "Clips show textured shapes and a panning background whose motion differs per "
            "class; broken clips (too short, truncated, empty, undecodable, odd size, missing) "
            "are listed in every test split. Deterministic from --seed."
        ),
    )
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (must be empty or absent)")
    p.add_argument(
        "--classes", type=positive_int, default=3, help="number of classes, 1-101 (default 3)"
    )
    p.add_argument(
        "--per-class", type=positive_int, default=2, help="regular clips per class (default 2)"
    )
    p.add_argument(
        "--frames", type=positive_int, default=80, help="frames per regular clip (default 80)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--clips-per-group", type=positive_int, default=4, help="clips per group gNN (default 4)"
    )
    p.add_argument("--width", type=positive_int, default=320, help="frame width (default 320)")
    p.add_argument("--height", type=positive_int, default=240, help="frame height (default 240)")
    p.add_argument("--no-broken", dest="broken", action="store_false", help="omit the broken cases")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the data folders of a non-empty OUT"
    )
    p.set_defaults(func=_run_synthetic)


def _run_synthetic(args: argparse.Namespace) -> int:
    from sora_tta.world.synthetic_ucf101 import SyntheticConfig, make_synthetic_ucf101

    try:
        config = SyntheticConfig(
            classes=args.classes,
            per_class=args.per_class,
            frames=args.frames,
            seed=args.seed,
            clips_per_group=args.clips_per_group,
            width=args.width,
            height=args.height,
            broken=args.broken,
        )
        tree = make_synthetic_ucf101(args.out, config, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as err:
        raise CommandError(str(err)) from err
    except OSError as err:
        raise CommandError(f"{args.out}: cannot write ({err.strerror or err})") from err
    count = config.classes * config.per_class
    logger.info(
        "wrote %d clips (+%d broken cases) to %s", count, len(tree.info["broken"]), args.out
    )
    return 0


def make_tiny_checkpoints_command(args: argparse.Namespace) -> int:
    """Write the tiny family into ``args.out_dir``."""
    from sora_tta.layout import TINY_FAMILY_FILE
    from sora_tta.world.tiny import make_tiny_checkpoints

    start = time.perf_counter()
    try:
        description = make_tiny_checkpoints(args.out_dir, seed=args.seed)
    except OSError as err:
        raise CommandError(f"{args.out_dir}: cannot write the tiny checkpoints ({err})") from err
    logger.info(
        "wrote %d tiny checkpoint files to %s in %.1f s (see %s)",
        len(description["sha256"]),
        args.out_dir,
        time.perf_counter() - start,
        TINY_FAMILY_FILE,
    )
    return 0
