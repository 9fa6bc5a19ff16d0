"""The demo workflow through a real SLURM (started by .ci/run) with profiles/slurm.

Only site settings are added, as a workflow-profile overlay: the partition, squeue as the
status command (there is no accounting daemon) and a short first status check. Every job
must reach SLURM with the resources its rule declares (GPU rules one GPU, the others none),
leave its sbatch log, and the results must equal those of the local demo run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_CONFIG, REPO, SNAKEMAKE, usable_videos, workflow_env

from sora_tta import workflow_config as wc

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

#: Hard limit of the whole SLURM run (the demo takes a few minutes on 2 CPUs).
TIMEOUT = 1800
LOCAL_RULES = {"all", "preflight", "method_config", "methods_table"}


def slurm_unavailable() -> str | None:
    """Why no SLURM cluster can take jobs here (None when one can)."""
    for tool in ("sbatch", "squeue", "sinfo", "scontrol"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "sinfo does not answer"
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s in ("idle", "mixed", "allocated") for s in states):
        return f"no SLURM node is up (sinfo: {proc.stdout.strip() or proc.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def slurm() -> str:
    """The default partition of the running cluster (skip, or fail in CI, without one)."""
    reason = slurm_unavailable()
    if reason is not None:
        if os.environ.get("SORA_TTA_REQUIRE_SLURM") == "1":
            pytest.fail(f"SORA_TTA_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(f"no SLURM cluster: {reason} (.ci/run starts one)")
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True
    ).stdout.split()
    return next((p.rstrip("*") for p in out if p.endswith("*")), out[0])


def slurm_jobs(workdir: Path) -> list[dict[str, str]]:
    """Every job SLURM still knows (MinJobAge) that ran in ``workdir``, as key=value dicts."""
    out = subprocess.run(
        ["scontrol", "-o", "show", "jobs"], capture_output=True, text=True, check=True
    ).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w[\w/:]*)=(\S*)", line))
        if fields.get("WorkDir") == str(workdir):
            jobs.append(fields)
    return jobs


def rule_of(comment: str, rules: set[str]) -> str:
    """The rule of a job from the plugin's comment ``rule_<rule>[_wildcards_<values>]``."""
    name = comment.removeprefix("rule_").split("_wildcards_")[0]
    assert name in rules, comment
    return name


def minutes(limit: str) -> int:
    """SLURM time limit ``[D-]HH:MM:SS`` in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (1 if s else 0)


def test_demo_through_slurm_equals_local_run(slurm, demo_run, tmp_path):
    workdir = tmp_path / "slurm-run"
    workdir.mkdir()
    site = tmp_path / "site"
    site.mkdir()
    (site / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "default-resources": {"slurm_partition": slurm},
                "slurm-status-command": "squeue",
                "slurm-init-seconds-before-status-checks": 1,
            }
        )
    )
    command = [
        "timeout", "-k", "10", str(TIMEOUT),
        str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--profile", str(REPO / "profiles" / "slurm"), "--workflow-profile", str(site),
        "--jobs", "4",
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(
        command, cwd=workdir, env=workflow_env(), capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    print(f"demo through SLURM: {seconds:.0f} s")

    # every non-local job went through SLURM, with its rule's resources
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    rules = set(wc.DEFAULT_RULE_RESOURCES)
    jobs = slurm_jobs(workdir)
    per_rule: dict[str, int] = {}
    for job in jobs:
        rule = rule_of(job["Comment"], rules)
        per_rule[rule] = per_rule.get(rule, 0) + 1
        declared = wc.rule_resources(config, rule)
        assert job["JobState"] == "COMPLETED", job
        assert job["Partition"] == slurm
        assert int(job["NumCPUs"]) == declared.threads, (rule, job["NumCPUs"])
        assert job["MinMemoryNode"] == f"{declared.mem_mb}M", (rule, job["MinMemoryNode"])
        assert minutes(job["TimeLimit"]) == declared.runtime, (rule, job["TimeLimit"])
        gpus = job.get("TresPerJob", "")
        if rule in wc.GPU_RULES:
            assert gpus in ("gres:gpu:1", "gres/gpu:1", "gpu:1"), (rule, gpus)
        else:
            assert "gpu" not in gpus, (rule, gpus)
        log_dir = workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}"
        assert list(log_dir.rglob(f"{job['JobId']}.log")), (rule, job["JobId"])

    videos = len(usable_videos(workdir))
    expected = {
        "make_synthetic_ucf101": 1,
        "make_tiny_checkpoints": 1,
        "manifest": 1,
        "preprocess": videos,
        "encode_prompts": 1,
        "generate_baseline": videos,
        "generate_tta": 2 * videos,
        "evaluate": 3 * videos,
        "aggregate": 1,
        "plot": 1,
        "report_pages": 1,
    }
    assert per_rule == expected
    assert not (set(per_rule) & LOCAL_RULES)

    # same results as the local run
    assert (workdir / "results/manifest.csv").read_text() == (
        demo_run / "results/manifest.csv"
    ).read_text()
    local = sorted((demo_run / "results" / "metrics").rglob("*.json"))
    remote = sorted((workdir / "results" / "metrics").rglob("*.json"))
    assert [p.relative_to(demo_run) for p in local] == [p.relative_to(workdir) for p in remote]
    for a, b in zip(local, remote, strict=True):
        assert json.loads(a.read_text()) == json.loads(b.read_text()), a.name
