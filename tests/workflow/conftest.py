"""Fixtures of the workflow tests: a Snakemake runner and one shared, completed demo run.

The demo run (the whole study on the procedural world and the proxy checkpoints, a few
minutes on two cores) is made once per session; tests that change things work on a copy of
it, so the copies keep Snakemake's metadata and file times and a rerun does only what the
change asks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sora_tta.study.snakemake_cli import parse_job_counts

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
DEMO_CONFIG = REPO / "config" / "demo.yaml"
#: A full demo run takes a few minutes on 2 cores; far more means something hangs.
DEMO_TIMEOUT = 1500


def workflow_env(**extra: str) -> dict[str, str]:
    """The environment jobs need: this interpreter's bin folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.update(extra)
    return env


@dataclass
class Result:
    """Outcome of one snakemake call."""

    returncode: int
    output: str

    def job_counts(self) -> dict[str, int]:
        """The 'Job stats' table of the output as {rule: count}, 'total' included."""
        return parse_job_counts(self.output)


def job_blocks(output: str) -> list[dict[str, str]]:
    """Each job printed by snakemake as {'rule': ..., 'wildcards': ..., 'output': ...}."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in output.splitlines():
        match = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line.strip())
        if match:
            current = {"rule": match.group(1)}
            blocks.append(current)
        elif current is not None and line.startswith("    ") and ": " in line:
            key, _, value = line.strip().partition(": ")
            current.setdefault(key, value)
    return blocks


def wildcards_of(block: dict[str, str]) -> dict[str, str]:
    """The wildcards of a job block as a dict."""
    text = block.get("wildcards", "")
    return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> Result:
    """Run the repository's workflow in ``workdir`` (``--directory``); return its output."""
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    proc = subprocess.run(
        [*command, *args],
        cwd=workdir,
        env=env or workflow_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = Result(proc.returncode, proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.output[-6000:]}")
    return result


def dry_run(workdir: Path, *args: str, check: bool = True) -> Result:
    """``snakemake -n`` (the demo configuration unless args give one)."""
    return snakemake(workdir, "-n", "--cores", "1", *args, check=check)


def copy_run(source: Path, target: Path) -> Path:
    """Copy a workflow directory with file times (and Snakemake's metadata) preserved."""
    shutil.copytree(source, target, symlinks=True)
    lock = target / ".snakemake" / "locks"
    shutil.rmtree(lock, ignore_errors=True)
    return target


def manifest_rows(workdir: Path) -> list[dict[str, str]]:
    """The demo run's manifest rows."""
    import csv

    with open(workdir / "results" / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def usable_videos(workdir: Path) -> list[str]:
    """Video ids with status ok."""
    return [row["video_id"] for row in manifest_rows(workdir) if row["status"] == "ok"]


def generated_videos(workdir: Path, method: str) -> list[str]:
    """Videos a finished run generated for ``method`` (exploratory variants: validation
    videos only)."""
    root = workdir / "results" / "generations" / method
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def role_videos(workdir: Path, role: str) -> list[str]:
    """Usable video ids of one manifest role (``test`` or ``validation``)."""
    rows = manifest_rows(workdir)
    return [r["video_id"] for r in rows if r["status"] == "ok" and r["role"] == role]


def method_ids(workdir: Path) -> list[str]:
    """Method ids of the demo run (from its methods table)."""
    lines = (workdir / "results" / "methods" / "methods.tsv").read_text().splitlines()[1:]
    return [line.split("\t")[0] for line in lines]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed run of the default (demo) configuration; treat it as read-only.

    ``SORA_TTA_DEMO_RUN=<folder of a finished demo run>`` starts from a copy of that run
    instead (brought up to date first): for rerunning a few slow tests while developing.
    """
    workdir = tmp_path_factory.mktemp("demo-run")
    if os.environ.get("SORA_TTA_DEMO_RUN"):
        workdir = copy_run(Path(os.environ["SORA_TTA_DEMO_RUN"]), workdir / "run")
    snakemake(workdir, "--cores", "2", timeout=DEMO_TIMEOUT)
    return workdir


@pytest.fixture
def demo_copy(demo_run: Path, tmp_path: Path) -> Path:
    """A private copy of the completed demo run."""
    return copy_run(demo_run, tmp_path / "run")
