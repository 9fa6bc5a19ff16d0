"""One evaluation per (method, class), the aggregate tables and the figures."""


# One job per (method, class), not per (video, method): the full study would otherwise be
# 26,481 evaluation jobs, about half of Snakemake's DAG and dry-run time (docs/performance.md),
# each loading torch and the LPIPS model for seconds of work. A new variant still adds only
# its own jobs; a video whose generation fails holds back only its class's evaluation.
rule evaluate:
    """Per-frame PSNR / SSIM / LPIPS, flicker and seam of one method's generations of one
    class vs their ground truth: one record per video in results/metrics/{method}/{class}.json.
    """
    input:
        generated=class_generations,
        reference=class_clips,
    output:
        METRICS,
    log:
        log_path("evaluate", "{method}/{class_name}"),
    benchmark:
        benchmark_path("evaluate", "{method}/{class_name}")
    params:
        videos=class_video_ids,
        options=options.evaluate_options(config),
    shell:
        "sora-tta evaluate --generated {input.generated} --reference {input.reference}"
        " --video-ids {params.videos} --method {wildcards.method}"
        " --class-name {wildcards.class_name} {params.options} --out {output} > {log} 2>&1"


# The aggregate also reads each generation's meta.json (cost) and the plot each TTA run's
# loss.csv: they come from the same jobs as the videos the metrics need, so depending on
# every metrics file covers them (and saves 50,000 file lookups in the full-size DAG).
rule aggregate:
    """Long, summary, paired (Holm-adjusted family), per-class, per-action-type, cost,
    guidance-branch and failure tables over every usable video and method."""
    input:
        metrics=all_metrics,
        manifest=MANIFEST,
    output:
        summary=f"{AGGREGATE_DIR}/summary.csv",
        paired=f"{AGGREGATE_DIR}/paired.csv",
        per_class=f"{AGGREGATE_DIR}/per_class.csv",
        per_type=f"{AGGREGATE_DIR}/per_type.csv",
        cost=f"{AGGREGATE_DIR}/cost.csv",
        branches=f"{AGGREGATE_DIR}/branches.csv",
        failures=f"{AGGREGATE_DIR}/failures.csv",
        validation_summary=f"{AGGREGATE_DIR}/validation_summary.csv",
        validation_paired=f"{AGGREGATE_DIR}/validation_paired.csv",
        long=report(
            f"{AGGREGATE_DIR}/long.csv",
            caption="../report/long.rst",
            category="Data files",
        ),
        markdown=f"{AGGREGATE_DIR}/summary.md",
    log:
        log_path("aggregate"),
    benchmark:
        benchmark_path("aggregate")
    params:
        methods=",".join(METHODS),
        baseline=BASELINE,
        metrics_dir=METRICS_DIR,
        generations_dir=GENERATIONS,
        out_dir=lambda wildcards, output: os.path.dirname(output.summary),
        bootstrap=config["aggregate"]["bootstrap"],
        seed=config["aggregate"]["seed"],
        statistics=AGGREGATE_OPTIONS,
    shell:
        "sora-tta aggregate --metrics-dir {params.metrics_dir}"
        " --generations-dir {params.generations_dir} --methods {params.methods}"
        " --baseline {params.baseline} --manifest {input.manifest} --out-dir {params.out_dir}"
        " --bootstrap {params.bootstrap} --seed {params.seed} {params.statistics} > {log} 2>&1"


# FVD is a set-level metric (one Gaussian per method and role), so it is one job over every
# generation, beside the aggregate; it is optional (evaluation.fvd_weights). Without weights
# the job only writes why FVD was skipped: seconds, on the submitting node.
if not config["evaluation"]["fvd_weights"]:

    localrules:
        fvd,


rule fvd:
    """Optional FVD (TorchScript I3D): each method's continuations vs the ground truth, and
    each variant minus the baseline on the same videos with a bootstrap CI over videos;
    without evaluation.fvd_weights, one row per method saying why it was skipped."""
    input:
        unpack(fvd_inputs),
    output:
        FVD_TABLE,
    log:
        log_path("fvd"),
    benchmark:
        benchmark_path("fvd")
    params:
        methods=",".join(METHODS),
        baseline=BASELINE,
        final=",".join(FINAL_METHODS),
        manifest=MANIFEST,
        generations_dir=GENERATIONS,
        clips_dir=CLIPS,
        options=options.fvd_options(config),
    shell:
        "sora-tta fvd --generations-dir {params.generations_dir}"
        " --clips-dir {params.clips_dir} --manifest {params.manifest}"
        " --methods {params.methods} --baseline {params.baseline}"
        " --final-variants {params.final:q} {params.options} --out {output} > {log} 2>&1"


rule plot:
    """Per-frame curves, paired differences, per-class bars, loss curves and a GIF strip."""
    input:
        tables=rules.aggregate.output,
    output:
        **{
            name: report_entry(f"{FIGURE_DIR}/{name}.png", entry)
            for name, entry in report_pages.FIGURES.items()
        },
        strip=f"{FIGURE_DIR}/strip.gif",
    log:
        log_path("plot"),
    benchmark:
        benchmark_path("plot")
    params:
        aggregate_dir=lambda wildcards, input: os.path.dirname(input.tables[0]),
        generations_dir=GENERATIONS,
        clips_dir=CLIPS,
        out_dir=lambda wildcards, output: os.path.dirname(output.per_class),
        baseline=BASELINE,
        strip_videos=config["aggregate"]["strip_videos"],
        bootstrap=config["aggregate"]["bootstrap"],
        seed=config["aggregate"]["seed"],
    shell:
        "sora-tta plot --aggregate-dir {params.aggregate_dir}"
        " --generations-dir {params.generations_dir} --clips-dir {params.clips_dir}"
        " --out-dir {params.out_dir} --baseline {params.baseline}"
        " --strip-videos {params.strip_videos} --bootstrap {params.bootstrap}"
        " --seed {params.seed} > {log} 2>&1"
