"""The proxy experiment runs end to end at reduced size, resumes, and refuses mixed settings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_proxy.py"
SMALL = [
    "--frames",
    "13",
    "--cond-frames",
    "9",
    "--height",
    "32",
    "--width",
    "48",
    "--sample-steps",
    "2",
    "--eval-steps",
    "1",
    "2",
]
SMALL += ["--bootstrap", "50", "--videos", "2", "--objectives", "continue", "cross-video"]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_proxy", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # about 20 s on a shared 2-core machine
def test_bench_proxy_runs_resumes_and_summarises(tmp_path: Path, capsys) -> None:
    bench = load_bench()
    out = tmp_path / "proxy"
    assert bench.main([*SMALL, "--out", str(out), "--limit", "1"]) == 0
    assert len((out / bench.RESULTS_FILE).read_text().splitlines()) == 1
    assert json.loads((out / bench.SUMMARY_FILE).read_text())["n"] == 1
    capsys.readouterr()
    assert bench.main([*SMALL, "--out", str(out)]) == 0  # continues with the second video
    assert "1 already done" in capsys.readouterr().out
    lines = (out / bench.RESULTS_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    first = records[0]
    # Paired: every objective's samples use the baseline's noise seed; the control its donor.
    assert set(first["objectives"]) == {"continue", "cross-video"}
    assert first["objectives"]["cross-video"]["donor"] == records[1]["video_id"]
    for entry in first["objectives"].values():
        assert set(entry["steps"]) == {"1", "2"}
        assert len(entry["loss"]) == 2
    summary = json.loads((out / bench.SUMMARY_FILE).read_text())
    assert summary["n"] == 2
    row = summary["objectives"]["continue"]["steps"]["2"]["psnr"]
    values = [r["objectives"]["continue"]["steps"]["2"]["psnr"] for r in records]
    baseline = [r["baseline"]["psnr"] for r in records]
    assert row["mean_diff"] == pytest.approx(sum(values) / 2 - sum(baseline) / 2)
    assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"]
    assert "| continue | 2 |" in (out / bench.TABLE_FILE).read_text()
    assert (out / bench.FIGURE_FILE).read_bytes()[:4] == b"\x89PNG"

    # A rerun skips the finished videos.
    capsys.readouterr()
    assert bench.main([*SMALL, "--out", str(out)]) == 0
    assert "2 already done" in capsys.readouterr().out
    assert (out / bench.RESULTS_FILE).read_text().splitlines() == lines
    # Other settings never mix into the same results file.
    with pytest.raises(SystemExit, match="other settings"):
        bench.main([*SMALL, "--out", str(out), "--seed", "1"])
