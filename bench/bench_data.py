"""Throughput of UCF-101 ingestion on this machine: manifest probing and preprocessing.

Builds a synthetic UCF-101 set (320x240, 25 fps MPEG-4 AVI, like the real one), then
times (1) ``build_manifest`` over every clip of split 1 (test + train) with 1 and more
probing threads and (2) ``preprocess_video`` (65 frames, 224x288 FFV1) on a subset.
Files are read right after being written, so the page cache is warm: the numbers are
the CPU cost of probing, not disk latency. Prints a table and a JSON object.

    python bench/bench_data.py [--probe-count 300] [--preprocess-count 30] [--jobs 1,2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

from sora_tta.data.captions import Captioner
from sora_tta.data.manifest import ProbeSettings, build_manifest
from sora_tta.data.preprocess import PreprocessConfig, preprocess_video
from sora_tta.data.ucf101 import load_split
from sora_tta.io import write_json_atomic
from sora_tta.world.synthetic_ucf101 import SyntheticConfig, make_synthetic_ucf101


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe-count", type=int, default=300, help="clips to probe (default 300)")
    parser.add_argument(
        "--preprocess-count", type=int, default=30, help="clips to preprocess (default 30)"
    )
    parser.add_argument("--frames", type=int, default=80, help="frames per clip (default 80)")
    parser.add_argument("--jobs", default="1,2", help="probing thread counts (default 1,2)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="probe passes, best kept (default 3)"
    )
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: temporary)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    if args.probe_count < 1 or args.preprocess_count < 0 or args.frames < 65:
        parser.error("need --probe-count >= 1, --preprocess-count >= 0 and --frames >= 65")
    return args


def run(args: argparse.Namespace, workdir: Path) -> dict:
    """Generate the set, time probing and preprocessing; return the results."""
    classes = min(101, max(1, math.ceil(args.probe_count / 15)))
    per_class = math.ceil(args.probe_count / classes)
    config = SyntheticConfig(
        classes=classes, per_class=per_class, frames=args.frames, broken=False, clips_per_group=5
    )
    start = time.perf_counter()
    tree = make_synthetic_ucf101(workdir / "synthetic", config)
    generate_s = time.perf_counter() - start
    entries = load_split(tree.splits, 1, "test") + load_split(tree.splits, 1, "train")
    entries = entries[: args.probe_count]
    captioner = Captioner()
    probe = {}
    for jobs in [int(j) for j in args.jobs.split(",")]:
        settings = ProbeSettings(min_frames=65, jobs=jobs)
        best = math.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            frame = build_manifest(entries, tree.videos, captioner, 1, "test", settings)
            best = min(best, time.perf_counter() - start)
        assert (frame["status"] == "ok").all(), frame["status"].value_counts()
        probe[jobs] = {"seconds": best, "videos_per_s": len(entries) / best}
    start = time.perf_counter()
    checked = build_manifest(
        entries[: max(args.preprocess_count, 1)],
        tree.videos,
        captioner,
        1,
        "test",
        ProbeSettings(min_frames=65, decode_check=True),
    )
    seconds = time.perf_counter() - start
    decode = {"videos": len(checked), "seconds": seconds, "videos_per_s": len(checked) / seconds}
    chosen = entries[: args.preprocess_count]
    pre_config = PreprocessConfig()
    start = time.perf_counter()
    for entry in chosen:
        clip = workdir / "clips" / f"{entry.video_id}.mkv"
        preprocess_video(tree.videos / entry.relpath, clip, pre_config, clip.with_suffix(".json"))
    pre_s = time.perf_counter() - start
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "clips": {"count": len(entries), "frames": args.frames, "size": "320x240", "fps": 25},
        "generate": {
            "seconds": generate_s,
            "videos_per_s": config.classes * per_class / generate_s,
        },
        "probe": {f"jobs={jobs}": value for jobs, value in probe.items()},
        "probe_decode_check": decode,
        "preprocess": {
            "videos": len(chosen),
            "seconds": pre_s,
            "videos_per_s": len(chosen) / pre_s if chosen else None,
            "output": f"{pre_config.num_frames} frames {pre_config.height}x{pre_config.width} FFV1",
        },
    }


def table(result: dict) -> str:
    """Human-readable summary."""
    rows = [("generate synthetic", result["clips"]["count"], result["generate"])]
    rows += [(f"probe ({key})", result["clips"]["count"], v) for key, v in result["probe"].items()]
    rows.append(
        (
            "probe + decode check",
            result["probe_decode_check"]["videos"],
            result["probe_decode_check"],
        )
    )
    rows.append(("preprocess", result["preprocess"]["videos"], result["preprocess"]))
    lines = [f"{'step':<24}{'videos':>8}{'seconds':>10}{'videos/s':>11}"]
    for name, count, values in rows:
        rate = values["videos_per_s"]
        rate_text = f"{rate:11.1f}" if rate is not None else f"{'-':>11}"
        lines.append(f"{name:<24}{count:>8}{values['seconds']:>10.2f}{rate_text}")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and print the table and JSON."""
    args = parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
            result = run(args, Path(tmp))
    print(table(result))
    print(json.dumps(result, indent=2))
    if args.json_out is not None:
        write_json_atomic(args.json_out, result)


if __name__ == "__main__":
    main()
