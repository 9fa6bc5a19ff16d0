"""Pages for Snakemake's report: the tables as HTML, and the GIF strip.

The report shows images and HTML inline but offers CSV files and GIFs only as downloads, so
each table (and the strip) gets a small self-contained HTML page, marked with its caption.
"""


localrules:
    report_pages,
    cost_plan,


rule cost_plan:
    """The cost model's prediction for this study (plan.kind's measured per-step figures,
    sora-tta plan) beside the measured cost table, for the report's cost page."""
    input:
        cost=f"{AGGREGATE_DIR}/cost.csv",
        manifest=MANIFEST,
    output:
        plan=f"{AGGREGATE_DIR}/plan.json",
        comparison=f"{AGGREGATE_DIR}/cost_vs_plan.csv",
    log:
        log_path("cost_plan"),
    benchmark:
        benchmark_path("cost_plan")
    params:
        config=lambda wildcards: json.dumps(config),
        results=lambda wildcards, input: os.path.dirname(input.manifest),
    shell:
        "sora-tta cost-vs-plan --config-json {params.config:q} --cost {input.cost}"
        " --plan {output.plan} --comparison {output.comparison} --results {params.results}"
        " > {log} 2>&1"


rule report_pages:
    """HTML renderings of the tables and of the GIF strip, for snakemake --report."""
    input:
        summary=f"{AGGREGATE_DIR}/summary.csv",
        paired=f"{AGGREGATE_DIR}/paired.csv",
        per_class=f"{AGGREGATE_DIR}/per_class.csv",
        per_type=f"{AGGREGATE_DIR}/per_type.csv",
        validation_paired=f"{AGGREGATE_DIR}/validation_paired.csv",
        cost=f"{AGGREGATE_DIR}/cost_vs_plan.csv",
        branches=f"{AGGREGATE_DIR}/branches.csv",
        failures=f"{AGGREGATE_DIR}/failures.csv",
        fvd=rules.fvd.output[0],
        methods=METHODS_TABLE,
        manifest=MANIFEST,
        strip=f"{FIGURE_DIR}/strip.gif",
    output:
        **{
            name: report_entry(f"{REPORT_DIR}/{name}.html", entry)
            for name, entry in report_pages.PAGES.items()
        },
    log:
        log_path("report_pages"),
    benchmark:
        benchmark_path("report_pages")
    params:
        pages=lambda wildcards, input: " ".join(
            f"--page {name}={shlex.quote(input[name])}" for name in report_pages.PAGES
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.summary),
        random_lpips=(
            "--random-lpips"
            if config["evaluation"]["lpips_backbone"] == "random"
            else ""
        ),
    shell:
        "sora-tta report-pages --out-dir {params.out_dir} {params.pages}"
        " {params.random_lpips} > {log} 2>&1"
