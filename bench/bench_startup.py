"""Job start -> first adaptation step, loading the checkpoints directly or from a staged copy.

Each measurement is a fresh Python process (what every generation job is): the parent
records the wall clock just before starting it, the child reports, relative to that
instant, when its imports were done, when the checkpoints were staged (staged modes), when
the MMDiT and VAE were loaded, when the conditioning frames were encoded and when the first
adaptation step (the real ``adapted`` loop, LoRA injection and optimiser included) ended.

Modes: ``direct`` (load from --checkpoint-dir), ``staged-cold`` (first job on a node: copy
to --stage-dir, then load), ``staged-warm`` (a later job: the copy is found and reused).
Without --checkpoint-dir the tiny checkpoint family is written to a temporary folder.

    python bench/bench_startup.py --repeats 3 --json startup.json            # CPU, tiny model
    python bench/bench_startup.py --device cuda --checkpoint-dir /shared/ckpts \
        --stage-dir /local/scratch/$USER/stage --json $OUT/startup.json      # on a cluster node

On one machine with one disk, ``direct`` and ``staged-warm`` read the same kind of storage:
the difference that staging makes (shared file system vs node-local disk) needs a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHILD = r"""
import json, os, sys, time
t0 = float(os.environ["BENCH_T0"])
marks = {"python_started": time.time() - t0}
import torch
from sora_tta.staging import stage_checkpoints
from sora_tta.models import pipeline
from sora_tta.world.clips import synthetic_clip
from sora_tta.tta.adapt import AdaptConfig
from sora_tta.tta.train import adapted
from sora_tta.tta.generate import adaptation_target
from sora_tta.tta.method import SamplingConfig
marks["imports"] = time.time() - t0
args = json.loads(sys.argv[1])
ckpt = args["checkpoint_dir"]
if args["stage_dir"]:
    ckpt = stage_checkpoints(ckpt, args["stage_dir"])
    marks["staged"] = time.time() - t0
device = torch.device(args["device"])
dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
bundle = pipeline.load_models(ckpt, device=device, dtype=dtype)
if device.type == "cuda":
    torch.cuda.synchronize()
marks["loaded"] = time.time() - t0
h, w = args["height"], args["width"]
frames = synthetic_clip(33, h, w)
sampling = SamplingConfig()  # v2v_head: 33 conditioning frames of 65
condition = pipeline.encode_condition(bundle, frames, num_cond_frames=sampling.num_cond_frames,
                                      num_frames=sampling.num_frames)
cfg = bundle.mmdit.config
def embedding():
    return (torch.randn(1, args["txt_tokens"], cfg.context_in_dim, dtype=dtype),
            torch.randn(1, cfg.vec_in_dim, dtype=dtype))
config = AdaptConfig(rank=16, alpha=32.0, steps=1, warmup_steps=0, checkpoint_every=0)
# the job's own target: the window and every condition length encoded on its own
target = adaptation_target(bundle, frames, condition, config, sampling, embedding(), embedding())
marks["encoded"] = time.time() - t0
with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
    with adapted(bundle.mmdit, target, config, seed=0) as result:
        pass
if device.type == "cuda":
    torch.cuda.synchronize()
marks["first_step"] = time.time() - t0
print("BENCH " + json.dumps(marks))
"""

MODES = ("direct", "staged-cold", "staged-warm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", type=Path, help="default: a tiny family in /tmp")
    parser.add_argument("--stage-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=80)
    parser.add_argument("--txt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def run_child(args: argparse.Namespace, checkpoint_dir: Path, stage_dir: Path | None) -> dict:
    """One fresh process; its marks (seconds since the parent started it)."""
    spec = {
        "checkpoint_dir": str(checkpoint_dir),
        "stage_dir": None if stage_dir is None else str(stage_dir),
        "device": args.device,
        "height": args.height,
        "width": args.width,
        "txt_tokens": args.txt_tokens,
    }
    env = dict(os.environ, BENCH_T0=repr(time.time()))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode or not lines:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("BENCH "))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        checkpoint_dir = args.checkpoint_dir
        if checkpoint_dir is None:
            from sora_tta.world.tiny import make_tiny_checkpoints

            checkpoint_dir = scratch / "ckpts"
            make_tiny_checkpoints(checkpoint_dir, seed=0)
        stage_root = args.stage_dir or scratch / "stage"
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            runs["direct"].append(run_child(args, checkpoint_dir, None))
            shutil.rmtree(stage_root, ignore_errors=True)  # a fresh node
            runs["staged-cold"].append(run_child(args, checkpoint_dir, stage_root))
            runs["staged-warm"].append(run_child(args, checkpoint_dir, stage_root))
        medians = {
            mode: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            for mode, rows in runs.items()
        }
        report: dict[str, Any] = {
            "device": args.device,
            "checkpoint_dir": str(checkpoint_dir),
            "repeats": args.repeats,
            "median_seconds_since_process_start": medians,
            "runs": runs,
        }
        for mode, marks in medians.items():
            print(f"{mode:<12} " + "  ".join(f"{k} {v:6.2f}" for k, v in marks.items()))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
