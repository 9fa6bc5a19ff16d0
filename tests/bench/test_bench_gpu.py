"""The GPU benchmark script runs end to end at reduced size on the CPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_gpu.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_gpu_runs_on_cpu_at_reduced_size(tmp_path: Path, capsys) -> None:
    bench = load_bench()
    out = tmp_path / "gpu.json"
    argv = ["--preset", "tiny", "--device", "cpu", "--height", "32", "--width", "48"]
    argv += ["--txt-tokens", "8", "--warmup", "0", "--iters", "1", "--json", str(out)]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    rows = {row["name"]: row for row in report["variants"]["eager"]}
    measured = {
        "sample_step_base",
        "sample_step_lora",
        "sample_step_lora_bf16",
        "adapt_step",
        "adapt_step_nocast",
    }
    assert set(rows) == measured | {"per_video_model_seconds"}
    assert all(rows[name]["seconds"] > 0 and rows[name]["flops"] > 0 for name in measured)
    # Adaptation: backward included, LoRA FLOPs counted.
    assert rows["adapt_step"]["flops"] > rows["sample_step_base"]["flops"] / 3
    assert "adapt_step" in capsys.readouterr().out
