"""Partial reruns on copies of one completed demo run, through the snakemake CLI.

Broken inputs become manifest rows; a failing video leaves the others in place and only its
own jobs rerun after the fix; a job killed mid-adaptation resumes from its state with
--rerun-incomplete; a new variant adds only its own jobs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    DEMO_CONFIG,
    REPO,
    SNAKEMAKE,
    dry_run,
    generated_videos,
    job_blocks,
    manifest_rows,
    method_ids,
    role_videos,
    snakemake,
    usable_videos,
    wildcards_of,
    workflow_env,
)

from sora_tta.data.video import read_frames
from sora_tta.study import config as study_config
from sora_tta.study import variants as V
from sora_tta.study.snakemake_cli import parse_job_counts

pytestmark = pytest.mark.slow

BROKEN_STATUSES = {"too_short", "unreadable", "missing", "bad_size"}
BASELINE = "baseline"


def digest_tree(root: Path, exclude: str | None = None) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, mtime_ns)} of every file under root, except paths with
    ``exclude`` in them."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and (exclude is None or exclude not in rel):
            files[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return files


def demo_with(overlay: dict, path: Path) -> list[str]:
    """--configfile arguments: the demo configuration plus an overlay merged on top."""
    path.write_text(yaml.safe_dump(overlay))
    return ["--configfile", str(DEMO_CONFIG), str(path)]


def class_of(workdir: Path, video: str) -> str:
    return next(r["class_name"] for r in manifest_rows(workdir) if r["video_id"] == video)


def metrics_videos(workdir: Path, method: str, cls: str) -> list[str]:
    """The videos recorded in one (method, class) metrics file."""
    data = json.loads((workdir / f"results/metrics/{method}/{cls}.json").read_text())
    return [record["video"] for record in data["records"]]


def test_demo_run_is_complete_and_up_to_date(demo_run):
    """Every video a method runs on has its metrics (the baseline and the final variant:
    every usable video; the exploratory ones: the validation videos); a second run has
    nothing to do."""
    videos, methods = usable_videos(demo_run), method_ids(demo_run)
    validation = role_videos(demo_run, "validation")
    assert len(validation) == 3 and len(videos) == 6 and len(methods) == 4
    for method in methods:
        expected = videos if method == BASELINE or method.startswith("r4-continue-") else validation
        assert generated_videos(demo_run, method) == sorted(expected), method
        for video in expected:
            assert video in metrics_videos(demo_run, method, class_of(demo_run, video))
    result = dry_run(demo_run)
    assert "Nothing to be done" in result.output


def test_broken_videos_are_manifest_rows_and_block_nothing(demo_run):
    rows = manifest_rows(demo_run)
    statuses = {row["status"] for row in rows}
    assert statuses >= BROKEN_STATUSES, statuses
    for row in rows:
        if row["status"] != "ok":
            assert row["reason"], row
            assert not (demo_run / f"results/clips/{row['video_id']}.mkv").exists()
    long = (demo_run / "results/aggregate/long.csv").read_text()
    assert all(row["video_id"] not in long for row in rows if row["status"] != "ok")
    # long.csv is the headline's table: the test videos; the validation videos have their own
    assert all(video in long for video in role_videos(demo_run, "test"))
    validation = (demo_run / "results/aggregate/validation_summary.csv").read_text()
    assert validation.count("\n") > 1


def executed_rules(output: str) -> dict[str, int]:
    """How many jobs of each rule a (real) snakemake run executed, from its job headers."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        match = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line.strip())
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


@pytest.fixture(scope="module")
def corrupted_later(demo_run, tmp_path_factory):
    """A copy of the demo run where a usable video went bad and the manifest was rebuilt."""
    from conftest import copy_run

    workdir = copy_run(demo_run, tmp_path_factory.mktemp("corrupted") / "run")
    victim = usable_videos(workdir)[0]
    source = next(r["source_path"] for r in manifest_rows(workdir) if r["video_id"] == victim)
    (workdir / source).write_bytes(b"\x00" * 4096)
    before = {name: digest_tree(workdir / "results" / name) for name in ("generations", "metrics")}
    result = snakemake(workdir, "--cores", "2", "--forcerun", "manifest")
    return workdir, victim, before, result


def test_video_corrupted_later_drops_out_without_rerunning_the_others(corrupted_later):
    """Rebuilding the manifest after a video went bad reruns only manifest-level jobs and
    the evaluation of the victim's class for the methods that ran on it (its other video
    is evaluated again, without the victim)."""
    workdir, victim, before, result = corrupted_later
    row = next(r for r in manifest_rows(workdir) if r["video_id"] == victim)
    assert row["status"] == "unreadable", row
    on_victim = [m for m in method_ids(workdir) if victim in generated_videos(workdir, m)]
    assert executed_rules(result.output) == {
        "manifest": 1,
        "encode_prompts": 1,  # keeps the cached prompts, encodes none
        "evaluate": len(on_victim),
        "aggregate": 1,
        "cost_plan": 1,
        "plot": 1,
        "report_pages": 1,
        "all": 1,
    }
    assert digest_tree(workdir / "results" / "generations") == before["generations"]
    class_files = {f"{m}/{class_of(workdir, victim)}.json" for m in on_victim}
    metrics = digest_tree(workdir / "results" / "metrics")
    assert {k: v for k, v in metrics.items() if k not in class_files} == {
        k: v for k, v in before["metrics"].items() if k not in class_files
    }
    summary = (workdir / "results/aggregate/summary.md").read_text()
    test, validation = (len(role_videos(workdir, role)) for role in ("test", "validation"))
    assert (
        f"The manifest lists {test} usable test videos and {validation} usable validation"
        in summary
    )
    assert "Nothing to be done" in dry_run(workdir).output


def test_dropped_video_leaves_the_tables(corrupted_later):
    """Its class's metrics files and the tables count only usable videos (its generations
    stay on disk)."""
    workdir, victim, _, _ = corrupted_later
    cls = class_of(workdir, victim)
    others = [v for v in usable_videos(workdir) if class_of(workdir, v) == cls]
    assert others and metrics_videos(workdir, BASELINE, cls) == others
    assert (workdir / f"results/generations/{BASELINE}/{victim}/video.mkv").is_file()
    assert victim not in (workdir / "results/aggregate/long.csv").read_text()
    assert victim not in (workdir / "results/report/summary.html").read_text()


def remove(path: Path) -> None:
    """Delete a file or a folder tree."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def test_failing_generation_leaves_others_and_rerun_is_only_that_video(demo_copy):
    """A run where one video's generations fail: the others complete; after the fix only
    that video's jobs (and the tables behind them) run."""
    victim = role_videos(demo_copy, "validation")[0]
    # every method runs on a validation video (exploratory variants only there)
    methods = [m for m in method_ids(demo_copy) if victim in generated_videos(demo_copy, m)]
    assert len(methods) == len(method_ids(demo_copy)) == 4
    # the state of a run that has not yet done the victim (nor, so, its class's evaluations
    # and the tables)
    for method in methods:
        remove(demo_copy / f"results/generations/{method}/{victim}")
        remove(demo_copy / f"results/metrics/{method}/{class_of(demo_copy, victim)}.json")
    for folder in ("aggregate", "figures", "report"):
        remove(demo_copy / "results" / folder)
    # the victim's clip breaks (same time stamp: Snakemake sees no change), generation fails
    clip = demo_copy / f"results/clips/{victim}.mkv"
    good_bytes, stat = clip.read_bytes(), clip.stat()
    clip.write_bytes(b"not a video")
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    others = digest_tree(demo_copy / "results" / "generations")
    other_metrics = digest_tree(demo_copy / "results" / "metrics")

    # (without the preflight, which would rebuild the clip from its source: test_faults.py)
    failed = snakemake(
        demo_copy, "--cores", "2", "--retries", "0", "--config", "preflight=False", check=False
    )
    assert failed.returncode != 0
    ran = executed_rules(failed.output)
    # fvd: without weights it reads no generation, and its table went with aggregate/
    assert ran == {"generate_baseline": 1, "generate_tta": len(methods) - 1, "fvd": 1}, ran
    assert digest_tree(demo_copy / "results" / "generations") == others
    assert digest_tree(demo_copy / "results" / "metrics") == other_metrics
    log = (demo_copy / f"results/logs/generate_baseline/{victim}.log").read_text()
    assert f"{victim}.mkv" in log

    clip.write_bytes(good_bytes)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    result = dry_run(demo_copy)
    assert result.job_counts() == {
        "generate_baseline": 1,
        "generate_tta": len(methods) - 1,
        "evaluate": len(methods),
        "aggregate": 1,
        "cost_plan": 1,
        "plot": 1,
        "report_pages": 1,
        "all": 1,
        "total": 2 * len(methods) + 5,
    }
    per_video = [b for b in job_blocks(result.output) if "video" in wildcards_of(b)]
    assert per_video and all(wildcards_of(b)["video"] == victim for b in per_video)


def resumable_variant(workdir: Path, tmp_path: Path) -> tuple[list[str], str]:
    """Config args adding a longer-running variant, and its method id."""
    overlay = {
        "variants": {
            "named": {"slow": {"steps": 60, "checkpoint_every": 5}},
        }
    }
    args = demo_with(overlay, tmp_path / "slow.yaml")
    schema = study_config.load_schema()
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    defaults = {k: p["default"] for k, p in schema["properties"]["adapt"]["properties"].items()}
    defaults.update(demo["adapt"])
    named = {**demo["variants"]["named"], **overlay["variants"]["named"]}
    variants = V.expand_variants(
        {"named": named, "grids": demo["variants"]["grids"]},
        defaults,
        kinds=study_config.adapt_param_kinds(schema),
    )
    (slow,) = [v for v in variants if v.name == "slow"]
    return args, slow.method_id


def losses(path: Path) -> list[str]:
    with open(path, newline="") as handle:
        return [row["loss"] for row in csv.DictReader(handle)]


def test_job_killed_mid_adaptation_resumes_with_rerun_incomplete(demo_copy, tmp_path):
    args, method = resumable_variant(demo_copy, tmp_path)
    video = usable_videos(demo_copy)[0]
    out_dir = demo_copy / f"results/generations/{method}/{video}"
    target = f"results/generations/{method}/{video}/meta.json"
    base = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory"]

    # reference: the same run without interruption
    snakemake(demo_copy, target, "--cores", "1", *args)
    reference_frames = read_frames(out_dir / "video.mkv")
    reference_losses = losses(out_dir / "loss.csv")
    for name in ("video.mkv", "meta.json", "loss.csv"):
        (out_dir / name).unlink()

    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(
            [*base, str(demo_copy), target, "--cores", "1", *args],
            cwd=demo_copy,
            env=workflow_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state = out_dir / "resume" / "state.pt"
    deadline = time.monotonic() + 300
    try:
        while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert state.exists(), "no resume state appeared"
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the job and its snakemake, mid-adaptation
        proc.wait(timeout=30)
    assert not (out_dir / "video.mkv").exists()
    assert state.exists()

    snakemake(demo_copy, "--unlock", *args)  # the killed run left its lock behind
    resumed = snakemake(demo_copy, target, "--cores", "1", "--rerun-incomplete", *args)
    assert "Nothing to be done" not in resumed.output
    meta = json.loads((out_dir / "meta.json").read_text())
    assert meta["resumed_from_step"] > 0
    assert losses(out_dir / "loss.csv") == reference_losses
    assert np.array_equal(read_frames(out_dir / "video.mkv"), reference_frames)
    assert not (out_dir / "resume").exists() or not any((out_dir / "resume").iterdir())


def test_adding_a_variant_adds_only_its_jobs(demo_copy, tmp_path):
    """A new (exploratory) variant: its jobs on the validation videos and the tables."""
    videos = role_videos(demo_copy, "validation")
    classes = {class_of(demo_copy, video) for video in videos}
    args = demo_with({"variants": {"named": {"r8-extra": {"rank": 8}}}}, tmp_path / "add.yaml")
    counts = dry_run(demo_copy, *args).job_counts()
    assert counts == {
        "method_config": 1,
        "generate_tta": len(videos),
        "evaluate": len(classes),
        "methods_table": 1,
        "aggregate": 1,
        "fvd": 1,  # one row per method
        "cost_plan": 1,
        "plot": 1,
        "report_pages": 1,
        "all": 1,
        "total": len(videos) + len(classes) + 8,
    }


def test_editing_a_variant_starts_a_new_folder(demo_copy, tmp_path):
    """A changed parameter is a new method id: the old results are never overwritten."""
    old = set(method_ids(demo_copy))
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    named = {name: dict(v or {}) for name, v in demo["variants"]["named"].items()}
    name = next(iter(named))
    named[name]["lr"] = 5e-4
    args = demo_with({"variants": {"named": named}}, tmp_path / "edit.yaml")
    result = dry_run(demo_copy, *args)
    counts = result.job_counts()
    # the first named variant is the final one: it runs on every usable video
    assert counts["generate_tta"] == len(usable_videos(demo_copy))
    methods = {
        wildcards_of(block)["variant"]
        for block in job_blocks(result.output)
        if block["rule"] == "generate_tta"
    }
    (new,) = methods
    assert new.startswith(f"{name}-") and new not in old
    assert all((demo_copy / f"results/generations/{m}").is_dir() for m in old)


def test_editing_a_rule_shell_text_reruns_nothing(demo_copy: Path, tmp_path: Path) -> None:
    """The workflow profile's rerun triggers leave out "code": a finished study stays
    finished when a generation rule's shell text changes; with Snakemake's default triggers
    the same edit would plan every generation again (checked, so this test can fail)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(REPO / "Snakefile", repo / "Snakefile")
    for name in ("workflow", "profiles", "config"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    rules = repo / "workflow" / "rules" / "generate.smk"
    text = rules.read_text()
    assert " {params.options} {params.donor}" in text
    swapped = text.replace(" {params.options} {params.donor}", " {params.donor} {params.options}")
    rules.write_text(swapped)

    def planned(*extra: str) -> dict[str, int]:
        command = [str(SNAKEMAKE), "--snakefile", str(repo / "Snakefile"), "--directory",
                   str(demo_copy), "-n", "--cores", "1", *extra]  # fmt: skip
        proc = subprocess.run(command, cwd=demo_copy, env=workflow_env(), capture_output=True,
                              text=True, timeout=600, check=True)  # fmt: skip
        return parse_job_counts(proc.stdout + proc.stderr)

    assert planned() == {}
    with_code = planned("--rerun-triggers", "mtime", "params", "input", "software-env", "code")
    assert with_code.get("generate_baseline", 0) > 0 and with_code.get("generate_tta", 0) > 0
