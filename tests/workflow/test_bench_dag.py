"""bench/bench_dag.py on a reduced stand-in: it builds, dry-runs and checks the job counts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, workflow_env

pytestmark = pytest.mark.slow


def test_bench_dag_small(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_dag.py"), "--videos", "150", "--keep",
         str(tmp_path / "stand-in")],
        capture_output=True, text=True, env=workflow_env(), timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    jobs = result["jobs"]
    assert result["videos"] == 150 and result["variants"] == 6
    assert result["classes"] == 101
    assert jobs["preprocess"] == 150 and jobs["evaluate"] == 101 * 7
    assert jobs["generate_tta"] == 150 * 6 and jobs["aggregate"] == 1
    assert result["seconds"] < result["limit"]
    manifest = (tmp_path / "stand-in" / "results" / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 151


def test_bench_dag_fails_over_the_limit(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_dag.py"), "--videos", "20", "--limit",
         "0.001"],
        capture_output=True, text=True, env=workflow_env(), timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "dry run took" in proc.stderr
