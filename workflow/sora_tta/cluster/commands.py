"""Cluster subcommands: ``plan`` (cost of the configured study), ``cost-vs-plan`` (the
workflow's prediction beside the measured cost table, for the report), ``import-figures``
(update the cost model's table from ``bench/bench_gpu.py --json``) and ``stage-checkpoints``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sora_tta import cli_options as opts
from sora_tta.cli import CommandError


def register(subparsers: Any) -> None:
    """Add ``plan``, ``import-figures`` and ``stage-checkpoints`` to the top-level parser."""
    plan = subparsers.add_parser(
        "plan",
        help="jobs, GPU-hours and wall-clock of the configured study, before submitting",
        description="Predict the generation cost of the study in --configfile from the "
        "measured per-step figures of one device kind (sora_tta/cluster/step_figures.json): "
        "per method and video (start, load, encode, adapt, sample, decode), then jobs, "
        "GPU-hours and wall-clock on N GPUs. Videos: the manifest's usable rows if "
        "results/manifest.csv exists, else the configured selection size.",
    )
    plan.add_argument(
        "--configfile", type=Path, required=True, metavar="YAML", help="the study's config file"
    )
    plan.add_argument("--kind", help="device kind (default: the config's plan.kind)")
    plan.add_argument(
        "--gpus",
        type=int,
        action="append",
        metavar="N",
        help="wall-clock on N GPUs (repeatable; default: the config's plan.gpus)",
    )
    plan.add_argument(
        "--videos",
        type=opts.positive_int,
        help="override the number of videos (all test videos: every method runs on each)",
    )
    plan.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="results folder whose manifest.csv decides the videos (default results)",
    )
    plan.add_argument("--figures", type=Path, metavar="JSON", help="another figures table")
    plan.add_argument("--json", type=Path, metavar="PATH", help="also write the plan as JSON")
    plan.set_defaults(func=plan_command)

    versus = subparsers.add_parser(
        "cost-vs-plan",
        help="the study's predicted cost beside the measured cost table (the report's cost page)",
        description="Plan the study of --config-json (the workflow's configuration, with its "
        "plan.kind and plan.gpus) over the videos of --results, write the plan as JSON and "
        "its comparison with the measured cost table --cost as CSV.",
    )
    versus.add_argument(
        "--config-json", required=True, metavar="JSON", help="the workflow's configuration"
    )
    versus.add_argument("--cost", type=Path, required=True, metavar="CSV", help="measured cost")
    versus.add_argument("--plan", type=Path, required=True, metavar="OUT.json", help="the plan")
    versus.add_argument(
        "--comparison", type=Path, required=True, metavar="OUT.csv", help="plan vs measured"
    )
    versus.add_argument(
        "--results", type=Path, default=Path("results"), metavar="DIR",
        help="results folder whose manifest.csv decides the videos (default results)",
    )  # fmt: skip
    versus.set_defaults(func=cost_vs_plan_command)

    imp = subparsers.add_parser(
        "import-figures",
        help="add or replace a device kind of the cost model from bench_gpu.py's JSON",
        description="Read a bench/bench_gpu.py --json file and write its figures as one kind "
        "of the figures table (default: the package's step_figures.json).",
    )
    imp.add_argument(
        "bench_json", type=Path, metavar="BENCH.json", help="output of bench/bench_gpu.py --json"
    )
    imp.add_argument("--kind", help="kind name (default: the GPU name, e.g. H200)")
    imp.add_argument("--process-start", type=float, metavar="S", help="measured process start")
    imp.add_argument("--figures", type=Path, metavar="JSON", help="table to update")
    imp.set_defaults(func=import_figures_command)

    stage = subparsers.add_parser(
        "stage-checkpoints",
        help="copy the MMDiT and VAE checkpoints to node-local disk once (prints the path)",
        description="Lock-protected, verified copy of the generation checkpoints of "
        "--checkpoint-dir under --stage-dir (reused when already there and unchanged). "
        "Prints the staged folder.",
    )
    opts.add_checkpoint_dir(stage)
    stage.add_argument(
        "--stage-dir", required=True, metavar="DIR", help="node-local folder to copy into"
    )
    stage.add_argument(
        "--verify",
        choices=["size", "sha256"],
        default="size",
        help="how an existing copy is checked against the source (default size)",
    )
    stage.set_defaults(func=stage_command)


def load_config(path: Path) -> dict[str, Any]:
    """A workflow configuration file, checked and completed with the schema's defaults."""
    import yaml
    from snakemake.utils import validate

    from sora_tta.study import config as study_config

    if not path.is_file():
        raise CommandError(f"{path}: file not found")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise CommandError(f"{path}: not valid YAML ({err})") from err
    try:
        study_config.check_config(config, study_config.load_schema(), source=str(path))
    except study_config.ConfigError as err:
        raise CommandError(str(err)) from err
    validate(config, str(study_config.SCHEMA_PATH))  # fills in the defaults
    return config


def plan_command(args: argparse.Namespace) -> int:
    """Print the plan of the configured study (and write it as JSON on request)."""
    from sora_tta.cluster import figures as fig
    from sora_tta.cluster import plan as plan_lib
    from sora_tta.io import write_json_atomic
    from sora_tta.study.variants import VariantError

    config = load_config(args.configfile)
    try:
        table = fig.load_figures(args.figures)
    except fig.FiguresError as err:
        raise CommandError(str(err)) from err
    kind = args.kind or config["plan"]["kind"]
    if kind not in table:
        raise CommandError(f"no figures for device kind {kind!r}; known: {sorted(table)}")
    gpus = args.gpus or [config["plan"]["gpus"]]
    try:
        study = plan_lib.plan_study(
            config, table[kind], gpus=gpus[0], videos=args.videos, results_dir=args.results
        )
    except (plan_lib.PlanError, VariantError) as err:
        raise CommandError(str(err)) from err
    print(plan_lib.format_plan(study, gpus))
    if args.json:
        data = study.to_dict()
        data["wall_hours_by_gpus"] = {str(n): study.wall_seconds(n) / 3600 for n in gpus}
        write_json_atomic(args.json, data)
    return 0


def cost_vs_plan_command(args: argparse.Namespace) -> int:
    """Write the workflow's plan and its comparison with the measured cost table."""
    from sora_tta.cluster import plan as plan_lib
    from sora_tta.study.variants import VariantError

    try:
        config = json.loads(args.config_json)
    except json.JSONDecodeError as err:
        raise CommandError(f"--config-json: not valid JSON ({err})") from err
    try:
        study = plan_lib.write_cost_vs_plan(
            config, args.cost, args.plan, args.comparison, results_dir=args.results
        )
    except (plan_lib.PlanError, VariantError, KeyError) as err:
        raise CommandError(f"cost-vs-plan: {err}") from err
    except OSError as err:
        raise CommandError(f"cost-vs-plan: {err.filename}: {err.strerror or err}") from err
    print(plan_lib.format_plan(study))
    return 0


def import_figures_command(args: argparse.Namespace) -> int:
    """Add (or replace) one kind of the figures table from a benchmark JSON."""
    from sora_tta.cluster import figures as fig

    path = args.figures or fig.FIGURES_PATH
    try:
        table = fig.load_figures(path) if Path(path).is_file() else {}
        row = fig.import_bench_json(args.bench_json, args.kind, args.process_start)
    except fig.FiguresError as err:
        raise CommandError(str(err)) from err
    table[row.kind] = row
    fig.save_figures(table, path)
    print(json.dumps({row.kind: row.to_dict()}, indent=2))
    print(f"wrote kind {row.kind!r} to {path}")
    return 0


def stage_command(args: argparse.Namespace) -> int:
    """Stage the checkpoints and print the staged folder."""
    from sora_tta import staging

    try:
        print(staging.stage_checkpoints(args.checkpoint_dir, args.stage_dir, verify=args.verify))
    except staging.StagingError as err:
        raise CommandError(str(err)) from err
    return 0
