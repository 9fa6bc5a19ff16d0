"""Fault injection on copies of one finished demo run: the fault, the command a user runs
next (the plain ``snakemake``), and what must hold: which files were kept byte-identical,
which were rebuilt, and that the message names the file.

README "Failures cost one video" lists these faults and the command that repairs each.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import (
    DEMO_CONFIG,
    dry_run,
    manifest_rows,
    method_ids,
    role_videos,
    snakemake,
    usable_videos,
)

from sora_tta.integrity import clip_problem, prompt_file_problem

pytestmark = pytest.mark.slow


def digests(root: Path, pattern: str = "**/*") -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, mtime_ns)} of the files under ``root`` matching ``pattern``."""
    return {
        path.relative_to(root).as_posix(): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(root.glob(pattern))
        if path.is_file()
    }


def run(workdir: Path, *args: str, check: bool = True):
    """The plain command (what a user runs next)."""
    return snakemake(workdir, "--cores", "2", *args, check=check)


def ran(output: str) -> dict[str, int]:
    """Jobs that ran: the 'Job stats' table (empty when nothing was to be done)."""
    from sora_tta.study.snakemake_cli import parse_job_counts

    return parse_job_counts(output)


def generations(workdir: Path) -> dict[str, tuple[str, int]]:
    return digests(workdir / "results" / "generations", "*/*/*")


def first_video(workdir: Path) -> tuple[str, str]:
    video = usable_videos(workdir)[0]
    cls = next(r["class_name"] for r in manifest_rows(workdir) if r["video_id"] == video)
    return video, cls


# ---------------------------------------------------------------- corrupt intermediates
def test_garbage_method_file_is_rewritten_and_deletes_nothing(demo_copy):
    method = method_ids(demo_copy)[1]
    path = demo_copy / f"results/methods/{method}.json"
    good = path.read_bytes()
    before = generations(demo_copy)
    path.write_text("garbage")
    result = run(demo_copy)
    assert f"preflight: results/methods/{method}.json: not valid JSON" in result.output
    assert path.read_bytes() == good
    assert generations(demo_copy) == before
    assert "generate_tta" not in ran(result.output)


def test_truncated_prompt_embedding_stops_then_forcerun_reencodes_deleting_nothing(demo_copy):
    prompts = demo_copy / "results" / "prompts"
    path = next(
        p for p in sorted(prompts.glob("*.safetensors")) if p.name != "negative.safetensors"
    )
    good = path.read_bytes()
    before = generations(demo_copy)
    path.write_bytes(good[: len(good) // 2])
    stopped = run(demo_copy, check=False)
    assert stopped.returncode != 0
    assert f"results/prompts/{path.name}: not a readable safetensors" in stopped.output
    assert "--forcerun encode_prompts" in stopped.output
    assert generations(demo_copy) == before
    result = run(demo_copy, "--forcerun", "encode_prompts")
    assert ran(result.output).get("encode_prompts") == 1
    assert prompt_file_problem(path) is None and path.read_bytes() == good
    assert generations(demo_copy) == before
    assert not (prompts / ".restore-times.json").exists()


def test_truncated_clip_is_rebuilt_bit_exact_and_deletes_nothing(demo_copy):
    video, _ = first_video(demo_copy)
    clip = demo_copy / f"results/clips/{video}.mkv"
    good = clip.read_bytes()
    before = generations(demo_copy)
    clip.write_bytes(good[: len(good) // 2])
    result = run(demo_copy)
    assert f"preflight: results/clips/{video}.mkv:" in result.output
    assert "rebuilt from its source (same frames" in result.output
    assert clip.read_bytes() == good
    assert generations(demo_copy) == before
    assert ran(result.output) == {}


def test_damaged_clip_without_source_stops_naming_both(demo_copy):
    video, _ = first_video(demo_copy)
    clip = demo_copy / f"results/clips/{video}.mkv"
    row = next(r for r in manifest_rows(demo_copy) if r["video_id"] == video)
    source = demo_copy / row["source_path"]
    clip.write_bytes(b"not a video")
    source.rename(source.with_suffix(".moved"))
    before = digests(demo_copy / "results", "[!c]*/**/*")  # all but the clips
    result = run(demo_copy, check=False)
    assert result.returncode != 0
    assert "corrupt intermediate(s) that the run cannot repair" in result.output
    assert f"results/clips/{video}.mkv" in result.output and row["source_path"] in result.output
    assert clip.read_bytes() == b"not a video"
    after = digests(demo_copy / "results", "[!c]*/**/*")
    assert {k: v for k, v in after.items() if "logs/" not in k} == {
        k: v for k, v in before.items() if "logs/" not in k
    }


# ---------------------------------------------------------------- missing results
def test_deleted_clip_is_rebuilt_bit_exact(demo_copy):
    video, _ = first_video(demo_copy)
    clip = demo_copy / f"results/clips/{video}.mkv"
    good = clip.read_bytes()
    before = generations(demo_copy)
    clip.unlink()
    run(demo_copy)
    assert clip.read_bytes() == good
    assert clip_problem(clip, clip.with_suffix(".json"))[0] is None
    assert generations(demo_copy) == before


def test_deleted_generation_is_rebuilt_with_what_depends_on_it(demo_copy):
    video, _ = first_video(demo_copy)
    methods = method_ids(demo_copy)
    target = demo_copy / f"results/generations/{methods[0]}/{video}/video.mkv"
    before = generations(demo_copy)
    target.unlink()
    result = run(demo_copy)
    counts = ran(result.output)
    assert counts.get("generate_baseline", 0) + counts.get("generate_tta", 0) == 1
    assert counts["evaluate"] == 1 and counts["aggregate"] == 1
    after = generations(demo_copy)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed and all(k.startswith(f"{methods[0]}/{video}/") for k in changed)


@pytest.mark.parametrize("victim", ["aggregate", "metrics", "figures"])
def test_deleted_results_are_rebuilt(demo_copy, victim):
    results = demo_copy / "results"
    if victim == "metrics":
        _, cls = first_video(demo_copy)
        (results / f"metrics/baseline/{cls}.json").unlink()
    else:
        shutil.rmtree(results / victim)
    before = generations(demo_copy)
    result = run(demo_copy)
    assert "Nothing to be done" not in result.output
    assert (results / f"metrics/baseline/{first_video(demo_copy)[1]}.json").is_file()
    assert (results / "aggregate" / "summary.csv").is_file()
    assert (results / "figures" / "per_class.png").is_file()
    assert (results / "report" / "summary.html").is_file()
    assert generations(demo_copy) == before
    assert "Nothing to be done" in dry_run(demo_copy).output


# ---------------------------------------------------------------- a hopeless variant
def test_diverging_variant_is_an_outcome_and_the_study_completes(demo_copy, tmp_path):
    overlay = tmp_path / "diverge.yaml"
    overlay.write_text(yaml.safe_dump({"variants": {"named": {"boom": {"lr": 1.0e10}}}}))
    args = ["--configfile", str(DEMO_CONFIG), str(overlay)]
    before = generations(demo_copy)
    result = run(demo_copy, *args)
    counts = ran(result.output)
    videos = role_videos(demo_copy, "validation")  # an exploratory variant runs there only
    assert counts["generate_tta"] == len(videos)  # once each: not retried
    boom = next(p.name for p in (demo_copy / "results/generations").iterdir() if "boom" in p.name)
    for video in videos:
        meta = json.loads((demo_copy / f"results/generations/{boom}/{video}/meta.json").read_text())
        assert meta["outcome"] == "failed" and meta["stage"] == "adapt"
    failures = (demo_copy / "results/aggregate/failures.csv").read_text().splitlines()
    assert len(failures) == 1 + len(videos) and all(boom in line for line in failures[1:])
    summary = (demo_copy / "results/aggregate/summary.md").read_text()
    assert f"| {boom} | {len(videos)} |" in summary
    assert (demo_copy / "results/report/failures.html").is_file()
    after = generations(demo_copy)
    assert {k: v for k, v in after.items() if not k.startswith(boom)} == before
    assert "Nothing to be done" in dry_run(demo_copy, *args).output


# ---------------------------------------------------------------- configuration
def test_config_path_with_spaces_and_semicolon_is_one_argument(tmp_path):
    odd = "x; touch owned; echo "
    overlay = tmp_path / "odd.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"synthetic": {"out": odd}}}))
    work = tmp_path / "work"
    work.mkdir()
    result = dry_run(work, "-p", "--configfile", str(DEMO_CONFIG), str(overlay))
    line = next(line for line in result.output.splitlines() if "sora-tta make-world" in line)
    argv = shlex.split(line.split(">")[0])
    assert argv[argv.index("--out") + 1] == odd
    assert not (work / "owned").exists()


def test_config_path_outside_the_working_directory_is_refused(tmp_path):
    overlay = tmp_path / "outside.yaml"
    overlay.write_text(yaml.safe_dump({"checkpoints": {"dir": "../outside"}}))
    work = tmp_path / "work"
    work.mkdir()
    result = dry_run(work, "--configfile", str(DEMO_CONFIG), str(overlay), check=False)
    assert result.returncode != 0
    assert "checkpoints.dir: '../outside' is outside the working directory" in result.output
    assert not os.path.exists(tmp_path / "outside")
