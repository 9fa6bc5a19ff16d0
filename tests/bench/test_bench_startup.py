"""The start-up benchmark runs end to end on the CPU with the tiny family (three processes)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_startup.py"


@pytest.mark.slow
def test_bench_startup_measures_every_mode(tmp_path: Path, tiny_ckpt_dir: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_startup", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    out = tmp_path / "startup.json"
    argv = ["--checkpoint-dir", str(tiny_ckpt_dir), "--stage-dir", str(tmp_path / "stage")]
    assert bench.main([*argv, "--repeats", "1", "--json", str(out)]) == 0
    medians = json.loads(out.read_text())["median_seconds_since_process_start"]
    assert set(medians) == {"direct", "staged-cold", "staged-warm"}
    for marks in medians.values():
        order = [marks[k] for k in ("python_started", "imports", "loaded", "first_step")]
        assert order == sorted(order) and order[0] > 0
    assert "staged" in medians["staged-warm"] and "staged" not in medians["direct"]
    assert any((tmp_path / "stage").iterdir())
