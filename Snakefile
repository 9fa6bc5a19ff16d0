"""LoRA test-time adaptation of Open-Sora v2.0 for video continuation on UCF-101.

    snakemake --cores 2                                    # the embedded demo (CPU, minutes)
    snakemake --report results/report.html                 # one self-contained HTML page
    make slurm-profile ACCOUNT=... GPU_PARTITION=... CPU_PARTITION=...   # once per user
    snakemake --profile slurm                              # the real study (config/config.yaml)
    snakemake smoke --configfile config/config.yaml --config preflight=checkpoints --cores 1
                                                           # "does v2v_head run here?"

Which configuration: the one given with --configfile (the SLURM profile installed by
`make slurm-profile` gives config/config.yaml; the command line replaces it), else the demo
(config/demo.yaml). Per-rule resources: profiles/default/config.yaml (loaded by Snakemake).

DAG: raw UCF-101 + split lists -> manifest (checkpoint) -> one clip per usable video ->
prompt embeddings (once per distinct prompt) -> one baseline generation per video and one
TTA generation per (video, variant) -> one evaluation per (method, class), one record per
(video, method) -> aggregate tables (and the optional FVD table) -> figures -> report.
"""

import os

from snakemake.utils import min_version

min_version("9.0")


# The demo is the default only when no configfile is given at all (on the command line or
# by a profile: the SLURM profile names config/config.yaml); a given one replaces it entirely
# (Snakemake would otherwise merge the two, leaking demo settings into the real study).
# Its paths are relative to the working directory (--directory), where results/ goes.
if not workflow.configfiles:

    configfile: os.path.join(workflow.basedir, "config", "demo.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/smoke.smk"


localrules:
    all,
    preflight,


rule all:
    """The whole study: tables and figures (then: snakemake --report results/report.html)."""
    default_target: True
    input:
        study_outputs(),


rule preflight:
    """Target that only runs the preflight check (which every invocation runs first)."""
    log:
        log_path("preflight"),
    benchmark:
        benchmark_path("preflight")
    params:
        config=lambda wildcards: json.dumps(config),
        scope=PREFLIGHT_SCOPE,
        source=CONFIG_SOURCE,
    shell:
        "sora-tta preflight --config-json {params.config:q} --scope {params.scope}"
        " --source {params.source:q} > {log} 2>&1 && tail -n 1 {log}"
