"""The study as the workflow sees it: torch-free modules the Snakefile imports at DAG time."""
