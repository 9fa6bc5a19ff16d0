"""Pages for Snakemake's report: the tables as HTML, and the GIF strip.

The report shows images and HTML inline but offers CSV files and GIFs only as downloads, so
each table (and the strip) gets a small self-contained HTML page, marked with its caption.
"""

TABLE_PAGES = {
    "summary": "Mean metrics per method",
    "paired": "Each variant vs the baseline (paired)",
    "per_class": "Mean metrics per class",
    "per_type": "Final variants vs the baseline per UCF-101 action type (paired)",
    "validation_paired": "Exploratory: every variant vs the baseline on the validation videos",
    "cost": "Cost per video: predicted (sora-tta plan) and measured",
    "branches": "Guidance branches moved by adaptation (first sampling step)",
    "failures": "Failed generations (left out of the tables)",
    "fvd": "FVD (optional, I3D): each method vs the ground truth, each variant minus the baseline",
    "methods": "Methods and their parameters",
    "manifest": "Manifest: selected videos and their status",
}


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
    run:
        from sora_tta.cluster import plan as plan_lib

        study = plan_lib.write_cost_vs_plan(
            config, input.cost, output.plan, output.comparison, results_dir=RESULTS
        )
        write_text_atomic(log[0], plan_lib.format_plan(study) + "\n")


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
        summary=report(
            f"{REPORT_DIR}/summary.html",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary"},
        ),
        paired=report(
            f"{REPORT_DIR}/paired.html",
            caption="../report/paired.rst",
            category="Tables",
            labels={"table": "paired vs baseline"},
        ),
        per_class=report(
            f"{REPORT_DIR}/per_class.html",
            caption="../report/per_class.rst",
            category="Tables",
            labels={"table": "per class"},
        ),
        per_type=report(
            f"{REPORT_DIR}/per_type.html",
            caption="../report/per_type.rst",
            category="Tables",
            labels={"table": "per action type"},
        ),
        validation_paired=report(
            f"{REPORT_DIR}/validation_paired.html",
            caption="../report/validation_paired.rst",
            category="Tables",
            labels={"table": "exploratory (validation)"},
        ),
        cost=report(
            f"{REPORT_DIR}/cost.html",
            caption="../report/cost.rst",
            category="Tables",
            labels={"table": "cost"},
        ),
        branches=report(
            f"{REPORT_DIR}/branches.html",
            caption="../report/branches.rst",
            category="Tables",
            labels={"table": "guidance branches"},
        ),
        failures=report(
            f"{REPORT_DIR}/failures.html",
            caption="../report/failures.rst",
            category="Tables",
            labels={"table": "failures"},
        ),
        fvd=report(
            f"{REPORT_DIR}/fvd.html",
            caption="../report/fvd.rst",
            category="Tables",
            labels={"table": "FVD"},
        ),
        methods=report(
            f"{REPORT_DIR}/methods.html",
            caption="../report/methods.rst",
            category="Methods",
            labels={"table": "methods"},
        ),
        manifest=report(
            f"{REPORT_DIR}/manifest.html",
            caption="../report/manifest.rst",
            category="Data",
            labels={"table": "manifest"},
        ),
        strip=report(
            f"{REPORT_DIR}/strip.html",
            caption="../report/strip.rst",
            category="Figures",
            subcategory="Examples",
            labels={"figure": "strip"},
        ),
    log:
        log_path("report_pages"),
    benchmark:
        benchmark_path("report_pages")
    params:
        titles=TABLE_PAGES,
        random_lpips=config["evaluation"]["lpips_backbone"] == "random",
    run:
        report_pages.write_report_pages(
            input, output, params.titles, params.random_lpips
        )
        write_text_atomic(log[0], "\n".join(output) + "\n")
