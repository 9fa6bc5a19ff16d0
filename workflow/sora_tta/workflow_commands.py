"""``sora-tta`` subcommands about the workflow itself: slurm-profile and status, and the
workflow's small steps (preflight, method-file, methods-table, report-pages), so that every
rule is one ``sora-tta`` call."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from sora_tta.cli import CommandError
from sora_tta.cli_options import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the workflow subcommands to the ``sora-tta`` parser."""
    _register_slurm_profile(subparsers)
    _register_status(subparsers)
    _register_study_files(subparsers)


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
    from sora_tta.layout import STATUS_TSV

    extra = list(args.snakemake_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    if args.run and not args.rerun:
        raise CommandError("--run needs --rerun (which videos to regenerate)")
    try:
        statuses = st.collect(args.directory)
    except (st.StatusError, OSError) as err:
        raise CommandError(str(err)) from err
    tsv = args.tsv or args.directory / STATUS_TSV
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


def _json_argument(kind: type) -> Any:
    """An argparse type: JSON text whose top level is ``kind`` (dict or list)."""

    def parse(text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"not valid JSON ({err})") from err
        if not isinstance(value, kind):
            raise argparse.ArgumentTypeError(f"expected a JSON {kind.__name__}")
        return value

    return parse


def _page(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def _register_study_files(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser(
        "preflight",
        help="list every checkpoint, tokenizer, data and metric file a configuration needs",
        description="Check that every file the configuration --config-json needs and the "
        "workflow does not build exists: print one line per file found, or fail with one "
        "message listing every missing file.",
    )
    check.add_argument(
        "--config-json", type=_json_argument(dict), required=True, metavar="JSON",
        help="the workflow's configuration (with the schema's defaults)",
    )  # fmt: skip
    check.add_argument(
        "--scope", choices=("study", "checkpoints"), default="study",
        help="study: everything; checkpoints: what the smoke target needs (default study)",
    )  # fmt: skip
    check.add_argument(
        "--source", default="config", help="where the configuration came from (for messages)"
    )
    check.set_defaults(func=_run_preflight)

    method = subparsers.add_parser(
        "method-file",
        help="write one method's settings file (the --method-json of its generations)",
        description="Write the JSON object --settings (what the workflow derived from its "
        "configuration for one method: sampling and adaptation settings) to OUT, atomically.",
    )
    method.add_argument("out", type=Path, metavar="OUT.json", help="file to write")
    method.add_argument(
        "--settings", type=_json_argument(dict), required=True, metavar="JSON",
        help="the method's settings (a JSON object)",
    )  # fmt: skip
    method.set_defaults(func=_run_method_file)

    table = subparsers.add_parser(
        "methods-table",
        help="write the methods table of the report (one row per method)",
        description="Write the rows --rows (a JSON list of objects with the same keys) as a "
        "tab-separated table to OUT, atomically.",
    )
    table.add_argument("out", type=Path, metavar="OUT.tsv", help="file to write")
    table.add_argument(
        "--rows", type=_json_argument(list), required=True, metavar="JSON",
        help="the table's rows (a JSON list of objects)",
    )  # fmt: skip
    table.set_defaults(func=_run_methods_table)

    pages = subparsers.add_parser(
        "report-pages",
        help="render the report's tables (and the GIF strip) as HTML pages",
        description="Render every page of the report (sora_tta.study.report_pages.PAGES) from "
        "its --page NAME=PATH into OUT_DIR/NAME.html.",
    )
    pages.add_argument("--out-dir", type=Path, required=True, help="folder of the pages")
    pages.add_argument(
        "--page", type=_page, action="append", required=True, metavar="NAME=PATH",
        help="the table (or image) a page shows (one per page)",
    )  # fmt: skip
    pages.add_argument(
        "--random-lpips", action="store_true",
        help="the run's LPIPS backbone is the random one: label LPIPS rows as such",
    )  # fmt: skip
    pages.set_defaults(func=_run_report_pages)


def _write(path: Path, text: str) -> None:
    from sora_tta.io import write_text_atomic

    try:
        write_text_atomic(path, text)
    except OSError as err:
        raise CommandError(f"{path}: cannot write ({err.strerror or err})") from err


def _run_preflight(args: argparse.Namespace) -> int:
    from sora_tta.study import preflight

    requirements = preflight.required_files(args.config_json, scope=args.scope)
    missing = preflight.missing_requirements(requirements)
    if missing:
        raise CommandError(preflight.preflight_message(missing, args.source))
    print(preflight.preflight_report(requirements, args.source), end="")
    return 0


def _run_method_file(args: argparse.Namespace) -> int:
    from sora_tta.io import write_json_atomic

    try:
        write_json_atomic(args.out, args.settings)
    except OSError as err:
        raise CommandError(f"{args.out}: cannot write ({err.strerror or err})") from err
    print(f"wrote {args.out}")
    return 0


def _run_methods_table(args: argparse.Namespace) -> int:
    from sora_tta.study.methods import rows_to_tsv

    rows = args.rows
    if not all(isinstance(row, dict) and list(row) == list(rows[0]) for row in rows):
        raise CommandError("--rows: every row must be an object with the same keys")
    _write(args.out, rows_to_tsv(rows))
    print(f"wrote {args.out}")
    return 0


def _run_report_pages(args: argparse.Namespace) -> int:
    from sora_tta.study.report_pages import PAGES, write_report_pages

    inputs = dict(args.page)
    missing, unknown = sorted(set(PAGES) - set(inputs)), sorted(set(inputs) - set(PAGES))
    if missing or unknown:
        raise CommandError(f"--page: missing {missing}, unknown {unknown}; pages: {list(PAGES)}")
    outputs = {name: str(args.out_dir / f"{name}.html") for name in PAGES}
    try:
        write_report_pages(inputs, outputs, random_lpips=args.random_lpips)
    except (OSError, ValueError) as err:
        raise CommandError(str(err)) from err
    print("\n".join(outputs.values()))
    return 0
