"""The rule graph in docs/ is current, and --rulegraph / --dag render with Graphviz."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO, snakemake

pytestmark = pytest.mark.slow


def render(dot_text: str) -> str:
    """SVG of a DOT graph (Graphviz's dot)."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed (apt-get install graphviz)")
    proc = subprocess.run(
        ["dot", "-Tsvg"], input=dot_text, capture_output=True, text=True, check=True, timeout=120
    )
    return proc.stdout


def graph_of(output: str) -> str:
    """The DOT text of Snakemake's output (other lines and trailing blanks dropped)."""
    start = output.index("digraph snakemake_dag")
    lines = output[start : output.rindex("}") + 1].splitlines()
    return "\n".join(line.rstrip() for line in lines) + "\n"


def test_docs_rulegraph_is_current(demo_run):
    """`make rulegraph` output (a completed demo's rule graph) equals docs/rulegraph.dot."""
    current = graph_of(snakemake(demo_run, "--rulegraph").output)
    stored = graph_of((REPO / "docs" / "rulegraph.dot").read_text())
    assert current == stored, "docs/rulegraph.dot is outdated: run `make rulegraph`"
    svg = (REPO / "docs" / "rulegraph.svg").read_text()
    for rule in ("manifest", "preprocess", "encode_prompts", "generate_tta", "evaluate", "plot"):
        assert f">{rule}</text>" in svg, rule


def test_rulegraph_and_dag_render(demo_run):
    rulegraph = graph_of(snakemake(demo_run, "--rulegraph").output)
    assert "<svg" in render(rulegraph)
    dag = graph_of(snakemake(demo_run, "--dag").output)
    svg = render(dag)
    assert "<svg" in svg
    assert svg.count("generate_tta") >= 2  # one node per (video, variant)
