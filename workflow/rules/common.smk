"""Configuration, result paths, resources and input functions shared by every rule.

The configuration is checked (every invalid value listed at once), completed with the schema
defaults, and the variants are expanded into method ids here. The manifest (a checkpoint)
is read once per process and cached; input functions only look up that cache.
"""

import inspect
import json
import os
import re
import shlex
import shutil
import sys

from snakemake.exceptions import IncompleteCheckpointException, WorkflowError
from snakemake.utils import validate

try:
    from sora_tta.study import variants as variant_lib
    from sora_tta import layout
    from sora_tta.layout import (
        AGGREGATE_DIR,
        BENCHMARKS,
        CLIP,
        CLIP_SIDECAR,
        FIGURE_DIR,
        GEN_DIR,
        GEN_META,
        LOGS,
        MANIFEST,
        METHOD_CONFIG,
        METHODS_TABLE,
        METRICS,
        METRICS_DIR,
        GENERATIONS,
        CLIPS,
        PROMPT_DIR,
        REPORT_DIR,
        RESULTS,
        SMOKE_DIR,
        SOURCE_LISTING,
    )
    from sora_tta.study import config as study_config
    from sora_tta.study import methods, options, paths, preflight, report_pages
    from sora_tta.study import snakemake_cli
    from sora_tta.study.manifest_index import (
        CLASS_NAME_PATTERN,
        CheckpointOutputs,
        ManifestCache,
        ManifestError,
        ManifestIndex,
    )
    from sora_tta.evaluation.definitions import FVD_FILE
    from sora_tta.prompts import NEGATIVE_FILE
    from sora_tta.world.proxy import PROXY_FILE
except ImportError as err:  # the package is the workflow's only software dependency
    raise WorkflowError(
        f"cannot import the sora_tta package ({err}); install it first: pip install -e ."
    )


# Jobs call the `sora-tta` command: it must be the one of the environment running Snakemake.
if shutil.which("sora-tta") is None:
    raise WorkflowError(
        "the sora-tta command is not on PATH: activate the environment that has the package "
        f"(e.g. source {os.path.dirname(sys.executable)}/activate), or use make demo / make test"
    )

SCHEMA_FILE = "../schemas/config.schema.yaml"
SCHEMA = study_config.load_schema(workflow.source_path(SCHEMA_FILE))
CONFIG_SOURCE = ", ".join(str(f) for f in workflow.configfiles) or "built-in defaults"
# --config values: Snakemake passes nested ones (and booleans) as text; the schema's types
# apply, and any message names the command line as a source.
COMMAND_LINE_CONFIG = workflow.config_settings.config or {}
if COMMAND_LINE_CONFIG:
    CONFIG_SOURCE += f" + {study_config.COMMAND_LINE} ({study_config.format_overrides(COMMAND_LINE_CONFIG)})"
_coercion_problems = study_config.coerce_overrides(config, COMMAND_LINE_CONFIG, SCHEMA)
if _coercion_problems:
    raise WorkflowError(
        f"invalid configuration ({CONFIG_SOURCE}):\n"
        + "\n".join(f"  - {p}" for p in _coercion_problems)
    )

try:
    study_config.check_config(config, SCHEMA, source=CONFIG_SOURCE)
except study_config.ConfigError as err:
    raise WorkflowError(str(err))
validate(config, SCHEMA_FILE)  # fills in the schema defaults

try:
    VARIANTS = variant_lib.expand_variants(
        config["variants"],
        config["adapt"],
        kinds=study_config.adapt_param_kinds(SCHEMA),
        check=study_config.adapt_param_check(SCHEMA),
    )
except variant_lib.VariantError as err:
    raise WorkflowError(f"invalid configuration ({CONFIG_SOURCE}): {err}")
VARIANT_BY_ID = {variant.method_id: variant for variant in VARIANTS}
METHODS = variant_lib.method_ids(VARIANTS)
BASELINE = variant_lib.BASELINE
try:
    AGGREGATE_OPTIONS = options.aggregate_options(config, METHODS)
    FINAL_METHODS = methods.final_method_ids(config, METHODS)
except ValueError as err:
    raise WorkflowError(f"invalid configuration ({CONFIG_SOURCE}): statistics: {err}")

# Jobs run in the environment that runs Snakemake (checked above: sora-tta on PATH). There
# are no conda environments per rule (the package would have to be installed into each
# from this repository, which --sdm conda cannot do from its own cache folder).

DATA = paths.data_paths(config)
CKPT = paths.checkpoint_paths(config)
BUILT_CHECKPOINTS = paths.built_checkpoints(config)  # tiny / proxy: made in the DAG

# ---------------------------------------------------------------- result layout
# The results tree (RESULTS, MANIFEST, CLIP, GEN_META, METRICS, ...) is sora_tta.layout's.
NEGATIVE = f"{PROMPT_DIR}/{NEGATIVE_FILE}"
FVD_TABLE = (
    f"{AGGREGATE_DIR}/{FVD_FILE}"  # optional metric: a skip reason without weights
)


wildcard_constraints:
    video=r"[A-Za-z0-9_.+-]+",
    class_name=CLASS_NAME_PATTERN,
    method="|".join([BASELINE] + [re.escape(m) for m in VARIANT_BY_ID]),
    variant=variant_lib.method_wildcard_pattern(VARIANTS),
    smoke_run=r"[0-9]+",


# ---------------------------------------------------------------- preflight
PREFLIGHT_SCOPE = "checkpoints" if config["preflight"] == "checkpoints" else "study"


def run_preflight():
    """List every missing checkpoint / tokenizer / data / metric file; fail before submitting."""
    requirements = preflight.required_files(config, scope=PREFLIGHT_SCOPE)
    missing = preflight.missing_requirements(requirements)
    if missing:
        raise WorkflowError(preflight.preflight_message(missing, CONFIG_SOURCE))


# Only the main process checks: the jobs' own Snakemake processes (on cluster nodes) need not.
if config["preflight"] and workflow.is_main_process:
    run_preflight()


# ---------------------------------------------------------------- job functions
def cached_signature(func):
    """Store ``func``'s signature on it: Snakemake inspects every input, params and resource
    function once per job, which is a large share of building a 50,000-job DAG."""
    func.__signature__ = inspect.signature(func)
    return func


# Threads, memory, runtime, GPUs and retries of each job are set in the workflow profile
# profiles/default/config.yaml (Snakemake loads it by itself), the one place they are defined.


def report_entry(path, entry):
    """``path`` as an entry of Snakemake's report (sora_tta.study.report_pages.Entry)."""
    return report(path, **entry.report_args(caption_dir="../report"))


def log_path(rule, pattern=None):
    """results/logs/<rule>.log, or results/logs/<rule>/<pattern>.log for per-job rules."""
    return f"{LOGS}/{rule}/{pattern}.log" if pattern else f"{LOGS}/{rule}.log"


def benchmark_path(rule, pattern=None):
    """results/benchmarks/<rule>[/<pattern>].tsv (wall time, memory, CPU of each job)."""
    return (
        f"{BENCHMARKS}/{rule}/{pattern}.tsv" if pattern else f"{BENCHMARKS}/{rule}.tsv"
    )


# ---------------------------------------------------------------- manifest access
CHECKPOINT_OUTPUTS = CheckpointOutputs(
    workflow.is_main_process, IncompleteCheckpointException
)


def checkpoint_output(pending, path):
    """``path`` (an output of checkpoint ``pending``) once that has run; before that,
    defer the calling input function (Snakemake re-evaluates it after the checkpoint).
    """
    return CHECKPOINT_OUTPUTS.get(pending, path)


def read_manifest_index(path):
    """The manifest at ``path`` as lookups, with this configuration's settings."""
    prompts = config["prompts"]
    return ManifestIndex(
        path,
        final_methods=FINAL_METHODS,
        prompt_fps=prompts["fps"],
        motion_score=prompts["motion_score"],
        seed=config["generation"]["seed"],
    )


MANIFESTS = ManifestCache(read_manifest_index)


def manifest_path():
    """The manifest, once its checkpoint has run."""
    return checkpoint_output(checkpoints.manifest, MANIFEST)


def manifest_index():
    """The manifest produced by the checkpoint, read once per file version."""
    return MANIFESTS.get(manifest_path())


@cached_signature
def source_video(wildcards):
    return manifest_index().usable_row(wildcards.video)["source_path"]


@cached_signature
def prompt_embedding(wildcards):
    """The video's prompt file, once the prompt checkpoint has run (and so it exists)."""
    checkpoint_output(checkpoints.encode_prompts, NEGATIVE)
    return f"{PROMPT_DIR}/{manifest_index().prompt_id(wildcards.video)}.safetensors"


def cross_video_inputs(wildcards):
    """The donor's clip and prompt file for a cross-video variant, nothing for the others."""
    if VARIANT_BY_ID[wildcards.variant].params.get("adapt_on") != "cross-video":
        return {}
    checkpoint_output(checkpoints.encode_prompts, NEGATIVE)
    donor = manifest_index().cross_video_donor(wildcards.video)
    prompt = manifest_index().prompt_id(donor)
    return {
        "adapt_clip": CLIP.format(video=donor),
        "adapt_prompt": f"{PROMPT_DIR}/{prompt}.safetensors",
    }


def cross_video_options(wildcards, input):
    """The generate flags naming the donor (empty for every method but the control)."""
    if "adapt_clip" not in input.keys():
        return ""
    donor = manifest_index().cross_video_donor(wildcards.video)
    return (
        f"--adapt-clip {input.adapt_clip} --adapt-prompt-embedding {input.adapt_prompt}"
        f" --adapt-video-id {donor}"
    )


@cached_signature
def class_generations(wildcards):
    """The generations of one (method, class) to evaluate. They wait for the prompt
    checkpoint like their generation jobs do, so that both are re-evaluated together after
    prompts were (re)encoded and an unchanged generation does not look updated."""
    checkpoint_output(checkpoints.encode_prompts, NEGATIVE)
    videos = manifest_index().method_class_videos(
        wildcards.method, wildcards.class_name
    )
    return [GEN_META.format(method=wildcards.method, video=v) for v in videos]


@cached_signature
def class_clips(wildcards):
    """The ground-truth clips of one class, in the order of :func:`class_generations`."""
    videos = manifest_index().method_class_videos(
        wildcards.method, wildcards.class_name
    )
    return [CLIP.format(video=v) for v in videos]


@cached_signature
def class_video_ids(wildcards):
    """The video ids of one class, in the order of :func:`class_generations`."""
    return manifest_index().method_class_videos(wildcards.method, wildcards.class_name)


def method_settings(method):
    """The --method-json content of ``method`` (baseline or a variant id)."""
    variant = VARIANT_BY_ID.get(method)
    adapt = None if variant is None else variant.params
    return methods.method_settings(config, method, adapt)


# ---------------------------------------------------------------- intermediates
def intermediates():
    """What the existing manifest and the configuration say the intermediates must be."""
    from sora_tta import integrity
    from sora_tta.evaluation.aggregate import OUTPUT_FILES

    index = read_manifest_index(MANIFEST)
    layout = integrity.Layout(
        method_file=METHOD_CONFIG,
        clip=CLIP,
        sidecar=CLIP_SIDECAR,
        prompt_dir=PROMPT_DIR,
        generation_dir=GEN_DIR,
        metrics=METRICS,
        verified=f"{RESULTS}/{integrity.VERIFIED_FILE}",
        aggregate_files=tuple(
            f"{AGGREGATE_DIR}/{name}" for name in (*OUTPUT_FILES, FVD_FILE)
        ),
        final_files=tuple(study_outputs()),
    )
    videos = {
        v: integrity.Video(
            class_name=index.rows[v]["class_name"],
            source=index.rows[v]["source_path"],
            prompt_file=f"{index.prompt_id(v)}.safetensors",
        )
        for v in index.usable
    }
    return integrity.Intermediates(
        layout=layout,
        methods={m: method_settings(m) for m in METHODS},
        videos=videos,
        method_videos={m: index.method_videos(m) for m in METHODS},
        method_inputs=(CKPT.mmdit, CKPT.vae),
        preprocess_command=(
            "sora-tta",
            "preprocess",
            *shlex.split(options.preprocess_options(config)),
        ),
    )


def check_intermediates():
    """Before any job is scheduled: repair corrupt derivable intermediates (so that nothing
    built from them reruns) or stop with one message naming each file (sora_tta.integrity).
    A dry run only reports."""
    from sora_tta import integrity

    dry_run = snakemake_cli.is_dry_run(sys.argv[1:])
    if not DATA.synthetic_out and not dry_run and os.path.isdir(DATA.ucf_root):
        integrity.update_source_listing(DATA.ucf_root, SOURCE_LISTING)
    if not os.path.exists(MANIFEST):
        return
    forced = "encode_prompts" in snakemake_cli.forced_rules(sys.argv[1:])
    try:
        expected = intermediates()
    except ManifestError as err:
        raise WorkflowError(str(err))
    found = integrity.check_intermediates(
        expected, repair=not dry_run, prompts_forced=forced
    )
    for problem in found.repaired:
        print(f"preflight: {problem.describe()}", file=sys.stderr)
    if dry_run:
        for problem in found.unrepaired:
            print(f"preflight (dry run): {problem.describe()}", file=sys.stderr)
    elif found.unrepaired:
        raise WorkflowError(found.message())


# ---------------------------------------------------------------- inputs built in the DAG
def manifest_inputs(wildcards):
    if DATA.synthetic_out:
        return {"data": DATA.synthetic_out}
    inputs = {"splits": paths.split_list_files(config)}
    if os.path.exists(SOURCE_LISTING):  # written by the preflight (not in a dry run)
        inputs["sources"] = SOURCE_LISTING
    return inputs


def all_metrics(wildcards):
    """Every metrics file of the study: one per (method, class). Both checkpoints are resolved
    here, directly: Snakemake re-evaluates the jobs behind a checkpoint only for checkpoints
    their consumer waits on itself, so the per-video jobs' own wait on the prompt checkpoint would otherwise never be
    resolved when that checkpoint has nothing to redo."""
    checkpoint_output(checkpoints.encode_prompts, NEGATIVE)
    index = manifest_index()
    return [
        METRICS.format(method=m, class_name=c)
        for m in METHODS
        for c in index.method_classes(m)
    ]


def fvd_inputs(wildcards):
    """What the FVD job reads: with evaluation.fvd_weights, the weights, the manifest and
    every metrics file (they cover the generations and clips FVD decodes); without, nothing
    (the job only records why FVD is skipped, and no new result reruns it)."""
    weights = config["evaluation"]["fvd_weights"]
    if not weights:
        return {}
    return {"weights": weights, "manifest": MANIFEST, "metrics": all_metrics(wildcards)}


def study_outputs():
    """The targets of the whole study: the figures and the report pages of every table."""
    return [f"{FIGURE_DIR}/{f}.png" for f in report_pages.FIGURES] + [
        f"{REPORT_DIR}/{page}.html" for page in report_pages.PAGES
    ]


# Last: it uses the layout and functions above.
if config["preflight"] and workflow.is_main_process:
    check_intermediates()
