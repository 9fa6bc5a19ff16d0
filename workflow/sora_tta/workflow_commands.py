"""``sora-tta`` subcommands about the workflow itself: slurm-profile and status."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from sora_tta.cli import CommandError
from sora_tta.cli_options import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the workflow subcommands to the ``sora-tta`` parser."""
    _register_slurm_profile(subparsers)
    _register_status(subparsers)


def _register_slurm_profile(subparsers: argparse._SubParsersAction) -> None:
    from sora_tta.slurm_profile import STATUS_COMMANDS

    p = subparsers.add_parser(
        "slurm-profile",
        help="install the SLURM site profile (then: snakemake --profile slurm)",
        description=(
            "Write config.yaml and partitions.yaml of the SLURM profile into OUT (default "
            "$XDG_CONFIG_HOME/snakemake/slurm, i.e. ~/.config/snakemake/slurm), where "
            "`snakemake --profile slurm` finds it. Only site settings go there; per-rule "
            "resources stay in the workflow profile profiles/default/config.yaml."
        ),
    )
    p.add_argument("--gpu-partition", required=True, help="partition of the GPU jobs")
    p.add_argument("--cpu-partition", required=True, help="partition of the CPU-only jobs")
    p.add_argument("--account", default="", help="sbatch -A account (default: none)")
    p.add_argument(
        "--status-command",
        choices=STATUS_COMMANDS,
        default="sacct",
        help="how job states are queried: sacct (needs accounting) or squeue (default sacct)",
    )
    p.add_argument(
        "--jobs", type=positive_int, default=100, help="jobs queued at a time (default 100)"
    )
    p.add_argument(
        "--gpus-per-node",
        type=positive_int,
        default=4,
        help="GPUs of a node of the GPU partition (default 4)",
    )
    p.add_argument(
        "--max-threads", type=positive_int, help="cap of every job's CPUs (small nodes only)"
    )
    p.add_argument(
        "--max-mem-mb",
        type=positive_int,
        help="cap of every job's memory and of all running jobs together (a single node only)",
    )
    p.add_argument("--out", type=Path, help="profile folder (default: see above)")
    p.set_defaults(func=_run_slurm_profile)


def _run_slurm_profile(args: argparse.Namespace) -> int:
    from sora_tta.slurm_profile import SiteSettings, default_profile_dir, install

    try:
        site = SiteSettings(
            gpu_partition=args.gpu_partition,
            cpu_partition=args.cpu_partition,
            account=args.account or None,
            status_command=args.status_command,
            jobs=args.jobs,
            gpus_per_node=args.gpus_per_node,
            max_threads=args.max_threads,
            max_mem_mb=args.max_mem_mb,
        )
    except ValueError as err:
        raise CommandError(str(err)) from err
    out = args.out or default_profile_dir()
    try:
        written = install(site, out)
    except OSError as err:
        raise CommandError(f"{out}: cannot write ({err.strerror or err})") from err
    for path in written:
        print(path)
    print("now run, from the repository root: snakemake --profile slurm")
    return 0


def _register_status(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="per method: done / failed / pending / excluded videos; rerun chosen videos",
        description=(
            "Read the manifest, the generations, the job logs and Snakemake's metadata of a "
            "workflow directory; print per method how many videos are done, failed (with the "
            "last error line of the log and the SLURM job id), pending or excluded by the "
            "manifest (with the reason); write the same per video to results/status.tsv. "
            "With --rerun, print the snakemake command that regenerates the chosen videos for "
            "every method and everything downstream (evaluation, aggregate, figures, report "
            "pages), finished or deleted ones included; --run runs it. Options after -- are "
            "passed to snakemake (give the ones you run the workflow with, e.g. -- --profile "
            "slurm)."
        ),
    )
    p.add_argument(
        "--directory",
        "-d",
        type=Path,
        default=Path("."),
        help="workflow directory, the one holding results/ (default: current directory)",
    )
    p.add_argument(
        "--tsv", type=Path, help="where to write the table (default: results/status.tsv)"
    )
    p.add_argument(
        "--rerun",
        nargs="+",
        metavar="FAILED|VIDEO|CLASS",
        help="videos to regenerate: FAILED (every video with a failed method), video ids, "
        "class names",
    )
    p.add_argument(
        "--run", action="store_true", help="run the rerun command instead of printing it"
    )
    p.add_argument(
        "snakemake_args",
        nargs=argparse.REMAINDER,
        help="after --: options for snakemake in the rerun command",
    )
    p.set_defaults(func=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    from sora_tta import status as st

    extra = list(args.snakemake_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    if args.run and not args.rerun:
        raise CommandError("--run needs --rerun (which videos to regenerate)")
    try:
        statuses = st.collect(args.directory)
    except (st.StatusError, OSError) as err:
        raise CommandError(str(err)) from err
    tsv = args.tsv or args.directory / st.STATUS_TSV
    try:
        st.write_tsv(statuses, tsv)
    except OSError as err:
        raise CommandError(f"{tsv}: cannot write ({err.strerror or err})") from err
    print(st.summary(statuses))
    print(f"\nper video: {tsv}")
    if not args.rerun:
        return 0
    try:
        videos = st.select_videos(statuses, args.rerun)
        command = st.rerun_command(args.directory, statuses, videos, extra)
    except st.StatusError as err:
        raise CommandError(str(err)) from err
    print(f"\nregenerate {len(videos)} video(s) ({', '.join(videos)}) and what depends on them:")
    print(st.format_command(command))
    if args.run:
        return subprocess.run(command, check=False).returncode
    return 0
