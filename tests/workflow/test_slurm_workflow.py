"""The demo workflow through a real SLURM (started by .ci/run), exactly as the README says.

The SLURM profile is installed with `make slurm-profile` into a temporary XDG_CONFIG_HOME,
then `snakemake --profile slurm --configfile config/demo.yaml` runs from the repository root
(results in a temporary --directory). Every job must reach SLURM with the resources of the
workflow profile (profiles/default: GPU rules one GPU on the gpu partition, the others none on
the cpu partition), capped by the node's size given to `make slurm-profile`, leave its sbatch
log, and the results must equal those of the local demo run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, manifest_rows, role_videos, usable_videos, workflow_env

from sora_tta.study import resources

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

#: Hard limit of the whole SLURM run (the demo takes a few minutes on 2 CPUs).
TIMEOUT = 1800
# fvd: local without evaluation.fvd_weights (as in the demo)
LOCAL_RULES = {"all", "preflight", "method_config", "methods_table", "report_pages", "smoke", "fvd"}


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


@dataclass(frozen=True)
class Cluster:
    """The running test cluster: its partitions and the size of its node."""

    partitions: list[str]
    cpus: int
    mem_mb: int


@pytest.fixture(scope="module")
def slurm() -> Cluster:
    """The running cluster (skip, or fail in CI, without one)."""
    reason = slurm_unavailable()
    if reason is not None:
        if os.environ.get("SORA_TTA_REQUIRE_SLURM") == "1":
            pytest.fail(f"SORA_TTA_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(f"no SLURM cluster: {reason} (.ci/run starts one)")
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%P %c %m"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    rows = [line.split() for line in out if line.strip()]
    partitions = sorted({row[0].rstrip("*") for row in rows})
    return Cluster(partitions, int(rows[0][1]), int(rows[0][2]))


def install_profile(xdg: Path, cluster: Cluster) -> Path:
    """`make slurm-profile` as the README says, into ``xdg``; return the profile folder."""
    gpu = "gpu" if "gpu" in cluster.partitions else cluster.partitions[0]
    cpu = "cpu" if "cpu" in cluster.partitions else cluster.partitions[0]
    subprocess.run(
        ["make", "-C", str(REPO), "slurm-profile", f"GPU_PARTITION={gpu}", f"CPU_PARTITION={cpu}",
         "STATUS_COMMAND=squeue", f"MAX_THREADS={cluster.cpus}", f"MAX_MEM_MB={cluster.mem_mb}"],
        env=workflow_env(XDG_CONFIG_HOME=str(xdg)), check=True, capture_output=True, text=True,
    )  # fmt: skip
    profile = xdg / "snakemake" / "slurm"
    # a test-only speed-up: the first status check after 1 s instead of 40 s
    with open(profile / "config.yaml", "a") as handle:
        handle.write("slurm-init-seconds-before-status-checks: 1\n")
    return profile


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
    xdg = tmp_path / "xdg"
    profile = install_profile(xdg, slurm)
    partitions = yaml.safe_load((profile / "partitions.yaml").read_text())["partitions"]
    gpu_partition = next(p for p, limits in partitions.items() if limits["max_gpu"] > 0)
    cpu_partition = next((p for p, lim in partitions.items() if lim["max_gpu"] == 0), gpu_partition)
    command = [
        "timeout", "-k", "10", str(TIMEOUT),
        str(SNAKEMAKE), "--profile", "slurm", "--configfile", "config/demo.yaml",
        "--directory", str(workdir),
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(
        command,
        cwd=REPO,
        env=workflow_env(XDG_CONFIG_HOME=str(xdg)),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    print(f"demo through SLURM: {seconds:.0f} s")

    # every non-local job went through SLURM, with the workflow profile's resources
    declared = resources.profile_resources()
    gpu_rules = resources.gpu_rules()
    jobs = slurm_jobs(workdir)
    per_rule: dict[str, int] = {}
    for job in jobs:
        rule = rule_of(job["Comment"], set(declared))
        per_rule[rule] = per_rule.get(rule, 0) + 1
        want = declared[rule]
        assert job["JobState"] == "COMPLETED", job
        assert job["Partition"] == (gpu_partition if rule in gpu_rules else cpu_partition), rule
        assert int(job["NumCPUs"]) == min(want.threads, slurm.cpus), (rule, job["NumCPUs"])
        mem = min(want.mem_mb, slurm.mem_mb)
        assert job["MinMemoryNode"] == f"{mem}M", (rule, job["MinMemoryNode"])
        assert minutes(job["TimeLimit"]) == want.runtime, (rule, job["TimeLimit"])
        gpus = job.get("TresPerJob", "")
        if rule in gpu_rules:
            assert gpus in ("gres:gpu:1", "gres/gpu:1", "gpu:1"), (rule, gpus)
        else:
            assert "gpu" not in gpus, (rule, gpus)
        log_dir = workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}"
        assert list(log_dir.rglob(f"{job['JobId']}.log")), (rule, job["JobId"])

    videos = len(usable_videos(workdir))
    validation = len(role_videos(workdir, "validation"))
    classes = len({r["class_name"] for r in manifest_rows(workdir) if r["status"] == "ok"})
    expected = {
        "make_synthetic_ucf101": 1,
        "proxy_checkpoints": 1,
        "manifest": 1,
        "preprocess": videos,
        "encode_prompts": 1,
        "generate_baseline": videos,
        # the final variant on every video, the two exploratory controls on validation only
        "generate_tta": videos + 2 * validation,
        "evaluate": 4 * classes,  # one per (method, class); every class has both roles
        "aggregate": 1,
        "plot": 1,
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
