"""Subcommands ``evaluate``, ``aggregate``, ``plot`` and ``fvd``.

Heavy imports (torch, lpips, scikit-image, pandas, matplotlib) happen inside
the command functions so that ``sora-tta --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from sora_tta import cli_options as opts
from sora_tta.evaluation.definitions import CONTEXT_FRAMES, FVD_BOOTSTRAP_RESAMPLES, NUM_FRAMES
from sora_tta.study.variants import BASELINE

log = logging.getLogger(__name__)


def _methods(text: str) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    if not methods:
        raise argparse.ArgumentTypeError("expected a comma-separated list of methods")
    return methods


def _methods_or_none(text: str) -> tuple[str, ...]:
    """A comma-separated list that may be empty (no final variant)."""
    return tuple(m.strip() for m in text.split(",") if m.strip())


def register(subparsers: Any) -> None:
    """Add ``evaluate``, ``aggregate`` and ``plot`` to the top-level parser."""
    p = subparsers.add_parser(
        "evaluate",
        help="per-frame PSNR/SSIM/LPIPS, flicker and seam of generated clips vs their ground truth",
        description="Compare the generated clips of one method and one class with their "
        "ground-truth clips (the LPIPS model is loaded once) and write one JSON file. Nothing "
        "is written unless every video can be evaluated; the error lists each bad file.",
    )
    p.add_argument(
        "--generated",
        required=True,
        nargs="+",
        help="generated clips (video.mkv) or their generations' meta.json: a meta.json "
        "whose outcome is 'failed' is recorded as a failure of that video, not evaluated",
    )
    p.add_argument(
        "--reference",
        required=True,
        nargs="+",
        help="ground-truth clips (results/clips/{video}.mkv), in the order of --generated",
    )
    p.add_argument("--video-ids", required=True, nargs="+", help="in the order of --generated")
    p.add_argument("--method", required=True, help="method id (baseline or a variant id)")
    p.add_argument("--class-name", required=True, help="UCF-101 class of these videos")
    p.add_argument(
        "--out", required=True, help="output JSON (results/metrics/{method}/{class}.json)"
    )
    p.add_argument(
        "--context-frames",
        type=opts.positive_int,
        default=CONTEXT_FRAMES,
        help=f"conditioning frames before the scored continuation (default {CONTEXT_FRAMES})",
    )
    p.add_argument(
        "--num-frames",
        type=opts.positive_int,
        default=NUM_FRAMES,
        help="frames both clips must have",
    )
    p.add_argument(
        "--lpips-backbone",
        choices=("alexnet", "random"),
        default="alexnet",
        help="alexnet: ImageNet weights from torchvision's cache (default); random: seeded "
        "random trunk, for tests only (marked in the output)",
    )
    p.add_argument(
        "--lpips-seed",
        type=opts.non_negative_int,
        default=0,
        help="seed of the random LPIPS backbone (default 0)",
    )
    opts.add_device(p)
    p.set_defaults(func=evaluate_command)

    p = subparsers.add_parser(
        "aggregate",
        help="tables over all per-video metrics: long, summary, paired tests (Holm-adjusted "
        "family), per class, per action type, cost",
        description="Aggregate per-video metric files into long.csv, summary.csv, paired.csv, "
        "per_class.csv, per_type.csv, cost.csv and summary.md.",
    )
    p.add_argument("--metrics-dir", required=True, help="holds {method}/{video}.json")
    p.add_argument("--generations-dir", default=None, help="holds {method}/{video}/meta.json")
    p.add_argument(
        "--methods", required=True, type=_methods, help="comma-separated, baseline included"
    )
    p.add_argument(
        "--baseline", default=BASELINE, help=f"method id of the baseline (default {BASELINE})"
    )
    p.add_argument("--manifest", default=None, help="manifest CSV (class names, expected count)")
    p.add_argument("--out-dir", required=True, help="folder of the tables")
    p.add_argument(
        "--bootstrap", type=opts.positive_int, default=10_000, help="bootstrap resamples"
    )
    opts.add_seed(p, "bootstrap seed")
    add_statistics_arguments(p)
    p.set_defaults(func=aggregate_command)

    p = subparsers.add_parser(
        "plot",
        help="figures: per-frame curves, paired differences, per class, loss curves, GIF strip",
        description="Write per_frame_{psnr,ssim,lpips}.png, paired_diff.png, per_class.png, "
        "loss_curves.png and strip.gif.",
    )
    p.add_argument("--aggregate-dir", required=True, help="output folder of sora-tta aggregate")
    p.add_argument(
        "--generations-dir", required=True, help="holds {method}/{video}/video.mkv, loss.csv"
    )
    p.add_argument("--clips-dir", required=True, help="holds the ground-truth {video}.mkv")
    p.add_argument("--out-dir", required=True, help="folder of the figures")
    p.add_argument("--baseline", default=None, help="default: the baseline named in paired.csv")
    p.add_argument(
        "--strip-videos",
        type=opts.non_negative_int,
        default=3,
        help="videos in strip.gif (0: none)",
    )
    p.add_argument(
        "--bootstrap", type=opts.positive_int, default=2000, help="resamples for CI bands"
    )
    opts.add_seed(p, "seed of the CI bands' bootstrap")
    p.set_defaults(func=plot_command)

    p = subparsers.add_parser(
        "fvd",
        help="optional set-level metric: Frechet Video Distance (I3D) of every method's "
        "continuations vs the ground truth, and each variant minus the baseline",
        description="Write one CSV row per (role, method): FVD of the generated continuations "
        "vs the ground-truth ones on the videos where the method and the baseline succeeded, "
        "the baseline's FVD on the same videos and the difference, with bootstrap CIs over "
        "videos. Without --weights every row says why FVD was skipped (not an error).",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="the TorchScript I3D i3d_torchscript.pt (see README); absent: FVD is skipped",
    )
    p.add_argument("--generations-dir", required=True, help="holds {method}/{video}/meta.json")
    p.add_argument("--clips-dir", required=True, help="holds the ground-truth {video}.mkv")
    p.add_argument("--manifest", required=True, help="manifest CSV (usable videos, roles)")
    p.add_argument(
        "--methods", required=True, type=_methods, help="comma-separated, baseline included"
    )
    p.add_argument(
        "--baseline", default=BASELINE, help=f"method id of the baseline (default {BASELINE})"
    )
    p.add_argument(
        "--final-variants",
        type=_methods_or_none,
        default=None,
        help="comma-separated final method ids, may be empty (they and the baseline run on "
        "the test videos; default: every variant)",
    )
    p.add_argument("--out", required=True, help="output CSV (results/aggregate/fvd.csv)")
    p.add_argument(
        "--context-frames",
        type=opts.positive_int,
        default=CONTEXT_FRAMES,
        help=f"frames before the scored continuation (default {CONTEXT_FRAMES})",
    )
    p.add_argument(
        "--num-frames", type=opts.positive_int, default=NUM_FRAMES, help="frames of every clip"
    )
    p.add_argument(
        "--batch-size", type=opts.positive_int, default=4, help="clips per detector call"
    )
    p.add_argument(
        "--bootstrap",
        type=opts.non_negative_int,
        default=FVD_BOOTSTRAP_RESAMPLES,
        help=f"bootstrap resamples over videos (0: no CIs; default {FVD_BOOTSTRAP_RESAMPLES})",
    )
    opts.add_seed(p, "bootstrap seed")
    opts.add_device(p)
    p.set_defaults(func=fvd_command)


def add_statistics_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of the declared family of tests (defaults: :class:`StatisticsConfig`)."""
    from sora_tta.evaluation.stats import StatisticsConfig

    d = StatisticsConfig()
    p.add_argument("--alpha", type=float, default=d.alpha, help="family-wise error rate")
    p.add_argument(
        "--primary-metric", default=d.primary_metric, help="metric of the primary endpoint"
    )
    p.add_argument(
        "--primary-segment", default=d.primary_segment, help="segment of the primary endpoint"
    )
    p.add_argument(
        "--primary-variant", default=None, help="method id or variant name (default: first final)"
    )
    p.add_argument(
        "--family-metrics",
        type=_methods,
        default=d.family_metrics,
        help="comma-separated metrics of the Holm-adjusted family",
    )
    p.add_argument(
        "--family-segments",
        type=_methods,
        default=d.family_segments,
        help="comma-separated segments of the Holm-adjusted family",
    )
    p.add_argument(
        "--final-variants",
        type=_methods,
        default=None,
        help="comma-separated method ids or variant names (default: every variant)",
    )
    p.add_argument(
        "--min-group-n", type=opts.positive_int, default=d.min_group_n, help="no verdict below"
    )


def statistics_config(args: argparse.Namespace) -> Any:
    """The :class:`StatisticsConfig` of the parsed flags (``ValueError`` when inconsistent)."""
    from sora_tta.evaluation.stats import StatisticsConfig

    return StatisticsConfig(
        primary_metric=args.primary_metric,
        primary_segment=args.primary_segment,
        primary_variant=args.primary_variant,
        family_metrics=tuple(args.family_metrics),
        family_segments=tuple(args.family_segments),
        final_variants=None if args.final_variants is None else tuple(args.final_variants),
        alpha=args.alpha,
        min_group_n=args.min_group_n,
    )


def evaluate_command(args: argparse.Namespace) -> int:
    """Check the LPIPS weights, evaluate every (generated, reference) pair, write one JSON."""
    from sora_tta.cli import CommandError
    from sora_tta.devices import resolve_device
    from sora_tta.evaluation import lpips_model
    from sora_tta.evaluation.definitions import FILE_SCHEMA
    from sora_tta.evaluation.failures import generation_outcome
    from sora_tta.evaluation.metrics import evaluate_clips
    from sora_tta.io import write_json_atomic

    if not len(args.video_ids) == len(args.generated) == len(args.reference):
        raise CommandError(
            f"{len(args.video_ids)} video ids, {len(args.generated)} generated and "
            f"{len(args.reference)} reference clips: the three lists must match"
        )
    if len(set(args.video_ids)) != len(args.video_ids):
        raise CommandError(f"video ids repeated in --video-ids: {' '.join(args.video_ids)}")
    pairs = list(zip(args.video_ids, args.generated, args.reference, strict=True))
    if not 1 <= args.context_frames <= args.num_frames - 2:
        raise CommandError(
            f"--context-frames {args.context_frames} must leave at least 2 of "
            f"{args.num_frames} frames to generate"
        )
    # The weights are checked before any clip is read so a missing file costs nothing.
    try:
        device = str(resolve_device(args.device))
        model = lpips_model.build_lpips(args.lpips_backbone, seed=args.lpips_seed)
    except (lpips_model.LpipsWeightsError, RuntimeError, ValueError) as err:
        raise CommandError(str(err)) from err
    scorer = lpips_model.LpipsScorer(model, device=device)

    records, errors, failures = [], [], []
    for video, generated_path, reference_path in pairs:
        try:
            failure, generated_path = generation_outcome(generated_path)
            if failure is not None:
                failures.append({"video": video, "method": args.method,
                                 "class": args.class_name, **failure})  # fmt: skip
                continue
            generated, reference = read_pair(generated_path, reference_path, args.num_frames)
        except ValueError as err:
            errors.append(str(err))
            continue
        if errors:  # the output will not be written: only check the remaining files
            continue
        segments = evaluate_clips(generated, reference, args.context_frames, scorer)
        paths = (generated_path, reference_path)
        records.append(metrics_record(args, video, paths, generated.shape, segments, device))
        cont = segments["continuation"]["aggregates"]
        log.info(
            "%s %s: PSNR %.2f dB, SSIM %.4f, LPIPS %.4f (%s)",
            args.method,
            video,
            cont["psnr"],
            cont["ssim"],
            cont["lpips"],
            args.lpips_backbone,
        )
    if errors:
        raise CommandError(
            f"{len(errors)} of {len(pairs)} videos cannot be evaluated, {args.out} not written:\n"
            + "\n".join(errors)
        )
    data = {
        "schema": FILE_SCHEMA,
        "method": args.method,
        "class": args.class_name,
        "records": records,
        "failures": failures,
    }
    write_json_atomic(args.out, data)
    log.info(
        "%d videos of %s / %s -> %s%s",
        len(records),
        args.method,
        args.class_name,
        args.out,
        f" ({len(failures)} failed generations recorded)" if failures else "",
    )
    return 0


def read_pair(generated_path: str, reference_path: str, num_frames: int) -> tuple[Any, Any]:
    """Both clips as uint8 arrays; ValueError naming the file(s) when they cannot be compared."""
    from sora_tta.data.video import VideoReadError, read_frames

    try:
        generated = read_frames(generated_path)
        reference = read_frames(reference_path)
    except VideoReadError as err:
        raise ValueError(str(err)) from err
    if len(generated) != num_frames or len(reference) != num_frames:
        raise ValueError(
            f"{generated_path} has {len(generated)} frames and {reference_path} has "
            f"{len(reference)}; both must have {num_frames}"
        )
    if generated.shape != reference.shape:
        raise ValueError(
            f"{generated_path} frames are {generated.shape[2]}x{generated.shape[1]} but "
            f"{reference_path} frames are {reference.shape[2]}x{reference.shape[1]}; "
            "sizes must match"
        )
    return generated, reference


def metrics_record(
    args: argparse.Namespace,
    video: str,
    paths: tuple[str, str],
    shape: tuple[int, ...],
    segments: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """The record of one (video, method): identity, settings and the metric values of both
    segments (schema ``sora_tta.metrics/1``, see docs/metrics.md). ``paths`` are the
    (generated, reference) clips, ``shape`` their (frames, height, width, channels)."""
    from sora_tta.evaluation.definitions import (
        DATA_RANGE,
        PSNR_CAP_DB,
        SCHEMA,
        SSIM_PUBLISHED_SETTINGS,
        SSIM_SETTINGS,
    )

    return {
        "schema": SCHEMA,
        "video": video,
        "method": args.method,
        "class": args.class_name,
        "generated": str(paths[0]),
        "reference": str(paths[1]),
        "num_frames": int(shape[0]),
        "context_frames": args.context_frames,
        "height": int(shape[1]),
        "width": int(shape[2]),
        "lpips_backbone": args.lpips_backbone,
        "lpips_seed": args.lpips_seed if args.lpips_backbone == "random" else None,
        "settings": {
            "data_range": DATA_RANGE,
            "psnr_cap_db": PSNR_CAP_DB,
            "ssim": {**SSIM_SETTINGS, "channel_axis": -1},
            "ssim_skimage": {**SSIM_PUBLISHED_SETTINGS, "channel_axis": -1},
            "lpips": {"net": "alex", "version": "0.1", "input_range": [-1, 1], "device": device},
        },
        "segments": segments,
    }


def aggregate_command(args: argparse.Namespace) -> int:
    """Build and write all aggregate tables."""
    from sora_tta.cli import CommandError
    from sora_tta.evaluation.aggregate import run_aggregate
    from sora_tta.evaluation.stats import BootstrapConfig
    from sora_tta.evaluation.tables import AggregateConfig, AggregateError

    try:
        config = AggregateConfig(
            methods=args.methods,
            baseline=args.baseline,
            bootstrap=BootstrapConfig(n_resamples=args.bootstrap, seed=args.seed),
            statistics=statistics_config(args),
        )
        paths = run_aggregate(
            args.metrics_dir, args.out_dir, config, args.generations_dir, args.manifest
        )
    except (AggregateError, ValueError) as err:
        raise CommandError(str(err)) from err
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0


def plot_command(args: argparse.Namespace) -> int:
    """Write all figures."""
    from sora_tta.cli import CommandError
    from sora_tta.evaluation.figures import run_plots
    from sora_tta.evaluation.stats import BootstrapConfig
    from sora_tta.evaluation.tables import AggregateError

    try:
        paths = run_plots(
            args.aggregate_dir,
            args.generations_dir,
            args.clips_dir,
            args.out_dir,
            baseline=args.baseline,
            bootstrap=BootstrapConfig(n_resamples=args.bootstrap, seed=args.seed),
            strip_videos=args.strip_videos,
        )
    except (AggregateError, ValueError) as err:
        raise CommandError(str(err)) from err
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0


def fvd_command(args: argparse.Namespace) -> int:
    """Compute (or, without weights, skip with the reason) the FVD table and write it."""
    from sora_tta.cli import CommandError
    from sora_tta.devices import resolve_device
    from sora_tta.evaluation import fvd
    from sora_tta.evaluation.stats import BootstrapConfig
    from sora_tta.evaluation.tables import AggregateError, read_manifest_roles

    if not 1 <= args.context_frames <= args.num_frames - 2:
        raise CommandError(
            f"--context-frames {args.context_frames} must leave at least 2 of "
            f"{args.num_frames} frames to score"
        )
    if args.baseline not in args.methods:
        raise CommandError(f"--methods must include the baseline {args.baseline!r}")
    final = [m for m in args.methods if m != args.baseline]
    if args.final_variants is not None:
        final = list(args.final_variants)
    try:
        config = fvd.FvdConfig(
            weights=args.weights,
            context_frames=args.context_frames,
            num_frames=args.num_frames,
            batch_size=args.batch_size,
            bootstrap=BootstrapConfig(n_resamples=args.bootstrap, seed=args.seed),
            device=str(resolve_device(args.device)) if args.weights else "cpu",
        )
        roles = {} if args.weights is None else read_manifest_roles(args.manifest)
        table = fvd.study_fvd(
            args.generations_dir, args.clips_dir, roles, args.methods, args.baseline, final,
            config,
        )  # fmt: skip
    except (fvd.FvdError, AggregateError, RuntimeError) as err:
        raise CommandError(f"{err}; {args.out} not written") from err
    fvd.write_table(table, args.out)
    if args.weights is None:
        log.info("FVD skipped (%s) -> %s", fvd.NO_WEIGHTS_REASON, args.out)
    for row in table.itertuples():
        if isinstance(row.skipped, str):
            continue
        log.info("FVD %s / %s (%d videos): %.2f", row.role, row.method, row.n_videos, row.fvd)
    return 0
