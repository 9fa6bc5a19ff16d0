#!/usr/bin/env python3
"""Dry-run time of the full-size DAG: UCF-101 test split 1 (3,783 videos) x six variants.

Builds a stand-in of the real study in a scratch folder (empty video files at the official
paths, official-format split lists, placeholder checkpoint / tokenizer / LPIPS files, a
manifest of every test video of split 1 and the prompt cache, as if ``sora-tta manifest``
and ``sora-tta encode-prompts`` had run), then times

    snakemake -n --snakefile <repo>/Snakefile --directory <scratch> --configfile bench.yaml

and checks the job counts (one clip per video, a generation per (video, method), an
evaluation per (method, class)). Exit status 1 when the dry run takes longer than --limit.

    python bench/bench_dag.py [--videos 3783] [--limit 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sora_tta.data.ucf101 import CLASS_NAMES
from sora_tta.study.snakemake_cli import parse_job_counts

REPO = Path(__file__).resolve().parents[1]

#: Test videos of official split 1.
SPLIT1_TEST_VIDEOS = 3783
#: Six variants: rank x objective.
GRID = {"rank": [8, 16], "mode": ["denoise", "continue", "mixed"]}
VARIANTS = 2 * 3


def video_ids(count: int, classes: int = len(CLASS_NAMES)) -> list[tuple[str, str, int]]:
    """``count`` (video id, class name, class index) spread over the first ``classes`` of the
    101 classes like UCF-101."""
    per_class, extra = divmod(count, classes)
    videos = []
    for index, name in enumerate(CLASS_NAMES[:classes], start=1):
        clips = per_class + (1 if index <= extra else 0)
        for k in range(clips):
            group, clip = k // 5 + 8, k % 5 + 1  # test groups of split 1 are g08-g25
            videos.append((f"v_{name}_g{group:02d}_c{clip:02d}", name, index))
    return videos


def action_words(class_name: str) -> str:
    """'ApplyEyeMakeup' -> 'apply eye makeup' (the default caption style)."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", class_name).lower()


def build_scratch(
    root: Path, videos: int, classes: int = len(CLASS_NAMES)
) -> tuple[Path, int, int]:
    """Write the stand-in study into ``root``; return (config path, usable videos, classes)."""
    entries = video_ids(videos, classes)
    ucf, splits, ckpts = root / "UCF-101", root / "ucfTrainTestlist", root / "ckpts"
    splits.mkdir(parents=True)
    (splits / "classInd.txt").write_text(
        "".join(f"{i} {name}\n" for i, name in enumerate(CLASS_NAMES, start=1))
    )
    (splits / "testlist01.txt").write_text(
        "".join(f"{name}/{video}.avi\n" for video, name, _ in entries)
    )
    for video, name, _ in entries:
        (ucf / name).mkdir(parents=True, exist_ok=True)
        (ucf / name / f"{video}.avi").touch()
    from sora_tta.layout import CLIP_DIR, MMDIT_FILE, T5_DIR, VAE_FILE

    for path in (
        MMDIT_FILE,
        VAE_FILE,
        f"{T5_DIR}/config.json",
        f"{T5_DIR}/model.safetensors",
        f"{T5_DIR}/spiece.model",
        f"{CLIP_DIR}/config.json",
        f"{CLIP_DIR}/model.safetensors",
        f"{CLIP_DIR}/tokenizer.json",
    ):
        (ckpts / path).parent.mkdir(parents=True, exist_ok=True)
        (ckpts / path).touch()
    lpips = root / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    lpips.parent.mkdir(parents=True)
    lpips.touch()

    manifest = root / "results" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    from sora_tta.data.manifest import MANIFEST_COLUMNS

    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for video, name, index in entries:
            group, clip = int(video[-6:-4]), int(video[-2:])
            writer.writerow(
                [video, name, index, action_words(name), 1, "test", group, clip,
                 f"{ucf}/{name}/{video}.avi", 150, 25.0, 320, 240, "ok", "", "test"]
            )  # fmt: skip
    # The prompt cache as `sora-tta encode-prompts` leaves it (placeholder files): the DAG
    # behind the prompt checkpoint is then known to the dry run.
    from sora_tta.models.text import format_prompt, prompt_id

    prompts = root / "results" / "prompts"
    prompts.mkdir(parents=True)
    for name in CLASS_NAMES:
        (prompts / f"{prompt_id(format_prompt(action_words(name)))}.safetensors").touch()
    (prompts / "negative.safetensors").touch()
    # The listing of the source videos that the preflight keeps (an input of the manifest).
    from sora_tta.integrity import update_source_listing

    sources = root / "results" / "sources.json"
    update_source_listing(ucf, sources)
    # Each stage must be newer than its inputs, or its checkpoint would be rerun.
    now = time.time()
    for path, age in (
        (splits / "classInd.txt", 7200),
        (splits / "testlist01.txt", 7200),
        (sources, 7200),
        (manifest, 3600),
    ):
        os.utime(path, (now - age, now - age))

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["data"] = {"ucf_root": str(ucf), "splits_dir": str(splits)}
    config["checkpoints"] = {"dir": str(ckpts)}
    config["selection"].update(total=None, max_per_group=None, validation=None)
    config["variants"] = {"named": {}, "grids": {"bench": {"axes": GRID}}}
    config["statistics"]["final_variants"] = None
    config["statistics"]["primary"]["variant"] = None
    config_path = root / "bench.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path, len(entries), len({name for _, name, _ in entries})


def startup_seconds(snakemake: str) -> float:
    """Seconds of ``snakemake --version``: start-up alone (plugins included; the SLURM
    plugin's ``scontrol`` probe takes its 10 s timeout where no controller answers)."""
    start = time.perf_counter()
    subprocess.run([snakemake, "--version"], capture_output=True, check=True)
    return time.perf_counter() - start


def run_dry(root: Path, config: Path, snakemake: str) -> tuple[float, str, int]:
    """Time one ``snakemake -n`` over the scratch study; return (seconds, output, status)."""
    env = {**os.environ, "TORCH_HOME": str(root / "torch")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    command = [
        snakemake, "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(root),
        "--configfile", str(config), "--cores", "1", "--quiet", "rules",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, proc.stdout + proc.stderr, proc.returncode


FLOOR_SNAKEFILE = """\
# The same jobs as the study (a clip per video, a generation per video and method, an
# evaluation per method and class) with nothing else: what Snakemake itself needs for a DAG
# of this size on this machine.
import csv

METHODS = {methods!r}
checkpoint manifest:
    output: "results/manifest.csv"
    shell: "false"
def rows():
    with open(checkpoints.manifest.get().output[0]) as f:
        return list(csv.DictReader(f))
def videos(wildcards):
    return [r["video_id"] for r in rows() if r["class_name"] == wildcards.c]
rule all:
    input:
        lambda wc: expand(
            "results/metrics/{{m}}/{{c}}.json", m=METHODS, c={{r["class_name"] for r in rows()}}
        )
rule pre:
    input: "results/manifest.csv"
    output: "results/clips/{{v}}.mkv"
    shell: "touch {{output}}"
rule gen:
    input: "results/clips/{{v}}.mkv"
    output: "results/generations/{{m}}/{{v}}/video.mkv"
    shell: "touch {{output}}"
rule ev:
    input: lambda wc: expand("results/generations/{{m}}/{{v}}/video.mkv", m=wc.m, v=videos(wc))
    output: "results/metrics/{{m}}/{{c}}.json"
    shell: "touch {{output}}"
"""


def run_floor(root: Path, snakemake: str) -> float:
    """Dry-run seconds of a bare four-rule Snakefile with the study's jobs."""
    methods = ["baseline", *(f"v{i}" for i in range(VARIANTS))]
    (root / "floor.smk").write_text(FLOOR_SNAKEFILE.format(methods=methods))
    command = [
        snakemake, "all", "-n", "--snakefile", str(root / "floor.smk"), "--directory", str(root),
        "--cores", "1", "--quiet", "rules", "--rerun-triggers", "mtime",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    counts = parse_job_counts(proc.stdout + proc.stderr)
    if not counts.get("pre") or counts.get("gen") != len(methods) * counts["pre"]:
        raise RuntimeError(f"bare Snakefile: unexpected job counts {counts}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Build the stand-in, time the dry run, print a JSON summary, check the limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=SPLIT1_TEST_VIDEOS)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--keep", type=Path, help="build the stand-in here and keep it")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time a bare Snakefile with the same job count (Snakemake's own cost here)",
    )
    parser.add_argument(
        "--snakemake", default=str(Path(sys.executable).parent / "snakemake"), help="executable"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-dag-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        config, videos, classes = build_scratch(root, args.videos)
        seconds, output, status = run_dry(root, config, args.snakemake)
        floor = run_floor(root, args.snakemake) if args.floor else None
        startup = startup_seconds(args.snakemake)
    counts = parse_job_counts(output)
    expected = {
        "preprocess": videos,
        "generate_baseline": videos,
        "generate_tta": videos * VARIANTS,
        "evaluate": classes * (VARIANTS + 1),
    }
    result = {
        "videos": videos,
        "classes": classes,
        "variants": VARIANTS,
        "seconds": round(seconds, 2),
        "limit": args.limit,
        "bare_snakefile_seconds": None if floor is None else round(floor, 2),
        "snakemake_startup_seconds": round(startup, 2),
        "jobs": counts,
        "snakemake_status": status,
    }
    print(json.dumps(result, indent=2))
    if status != 0:
        print(output[-3000:], file=sys.stderr)
        return 1
    wrong = {k: (counts.get(k), v) for k, v in expected.items() if counts.get(k) != v}
    if wrong:
        print(f"bench_dag: unexpected job counts (got, expected): {wrong}", file=sys.stderr)
        return 1
    if seconds > args.limit:
        print(f"bench_dag: dry run took {seconds:.1f} s > {args.limit:.0f} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
