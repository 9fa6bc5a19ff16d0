"""The rule graph in docs/ is current, and --rulegraph / --dag render with Graphviz."""

from __future__ import annotations

import re
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


def structure(dot: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Node lines (ids replaced by labels) and edges (as label pairs) of a rule graph.

    Snakemake prints the edges in an order that varies from run to run (set iteration), so
    the graphs are compared as sets.
    """
    labels, nodes, edges = {}, set(), set()
    for line in dot.splitlines():
        node = re.match(r'^\s*(\d+)\[label = "([^"]+)"(.*)\];$', line)
        if node:
            labels[node.group(1)] = node.group(2)
            nodes.add(f"{node.group(2)}{node.group(3)}")
    for line in dot.splitlines():
        edge = re.match(r"^\s*(\d+) -> (\d+)$", line)
        if edge:
            edges.add((labels[edge.group(1)], labels[edge.group(2)]))
    return nodes, edges


def test_docs_rulegraph_is_current(demo_run):
    """`make rulegraph` output (a completed demo's rule graph) equals docs/rulegraph.dot."""
    current = structure(graph_of(snakemake(demo_run, "--rulegraph").output))
    stored = structure((REPO / "docs" / "rulegraph.dot").read_text())
    assert current == stored, "docs/rulegraph.dot is outdated: run `make rulegraph`"
    assert ("manifest", "encode_prompts") in current[1]
    assert ("encode_prompts", "generate_tta") in current[1]
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
