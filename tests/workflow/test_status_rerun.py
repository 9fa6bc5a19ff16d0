"""`sora-tta status` and `--rerun` on a demo run with one failed and one deleted video: the
status names both, and the printed command regenerates both and refreshes the report."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    REPO,
    generated_videos,
    manifest_rows,
    method_ids,
    role_videos,
    snakemake,
    workflow_env,
)

pytestmark = pytest.mark.slow

SORA_TTA = Path(sys.executable).parent / "sora-tta"


def status(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SORA_TTA), "status", "--directory", str(workdir), *args],
        env=workflow_env(), capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip


def tsv_states(workdir: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(workdir / "results" / "status.tsv", newline="") as handle:
        return {(r["method"], r["video_id"]): r for r in csv.DictReader(handle, delimiter="\t")}


def class_of(workdir: Path, video: str) -> str:
    return next(r["class_name"] for r in manifest_rows(workdir) if r["video_id"] == video)


def test_status_and_rerun_of_a_failed_and_a_deleted_video(demo_copy: Path) -> None:
    methods = method_ids(demo_copy)
    # validation videos: every method (exploratory variants too) runs on them
    deleted, broken = role_videos(demo_copy, "validation")[:2]
    others = {m: set(generated_videos(demo_copy, m)) - {deleted, broken} for m in methods}
    assert class_of(demo_copy, deleted) != class_of(demo_copy, broken)
    # a finished video deleted by hand: a plain run would leave it deleted
    for method in methods:
        shutil.rmtree(demo_copy / f"results/generations/{method}/{deleted}")
    # a video whose generations fail (its clip unreadable, same time stamp), in the state of a
    # run that has not done it yet (nor its class's evaluations, nor the tables)
    for method in methods:
        shutil.rmtree(demo_copy / f"results/generations/{method}/{broken}")
        (demo_copy / f"results/metrics/{method}/{class_of(demo_copy, broken)}.json").unlink()
    for folder in ("aggregate", "figures", "report"):
        shutil.rmtree(demo_copy / "results" / folder)
    clip = demo_copy / f"results/clips/{broken}.mkv"
    good_bytes, stat = clip.read_bytes(), clip.stat()
    clip.write_bytes(b"not a video")
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # (without the preflight, which would rebuild the clip from its source: test_faults.py)
    failed = snakemake(
        demo_copy, "--cores", "2", "--retries", "0", "--config", "preflight=False", check=False
    )
    assert failed.returncode != 0

    proc = status(demo_copy)
    assert proc.returncode == 0, proc.stderr
    states = tsv_states(demo_copy)
    for method in methods:
        assert states[(method, broken)]["state"] == "failed"
        assert f"{broken}.mkv" in states[(method, broken)]["detail"]
        assert states[(method, deleted)]["state"] == "pending"
        assert others[method] and all(
            states[(method, v)]["state"] == "done" for v in others[method]
        )
    excluded = [r for r in manifest_rows(demo_copy) if r["status"] != "ok"]
    assert excluded and all(
        states[(methods[0], r["video_id"])]["state"] == "excluded" for r in excluded
    )
    assert f"{methods[0]} {broken}" in proc.stdout and "excluded by the manifest" in proc.stdout

    # the fix, then the rerun of both (the printed command is the one that is run)
    clip.write_bytes(good_bytes)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    args = [
        "--rerun",
        "FAILED",
        deleted,
        "--",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--cores",
        "2",
    ]
    printed = status(demo_copy, *args)
    assert printed.returncode == 0, printed.stderr
    assert f"regenerate 2 video(s) ({broken}, {deleted})" in printed.stdout
    assert "--forcerun" in printed.stdout
    before = time.time()
    rerun = status(demo_copy, "--run", *args)
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-4000:]

    for method in methods:
        for video in (broken, deleted):
            assert (demo_copy / f"results/generations/{method}/{video}/video.mkv").exists()
            cls = class_of(demo_copy, video)
            data = json.loads((demo_copy / f"results/metrics/{method}/{cls}.json").read_text())
            assert video in [record["video"] for record in data["records"]]
    # validation videos: their tables are the exploratory ones
    validation = (demo_copy / "results/aggregate/validation_summary.csv").stat()
    assert validation.st_mtime >= before
    for page in ("summary", "paired", "per_class", "validation_paired"):
        assert (demo_copy / f"results/report/{page}.html").stat().st_mtime >= before
    assert (demo_copy / "results/figures/per_frame_psnr.png").stat().st_mtime >= before
    assert status(demo_copy).returncode == 0
    assert {r["state"] for r in tsv_states(demo_copy).values()} == {"done", "excluded"}
