"""Unit tests of sora_tta.smoke's clip check (``sora-tta smoke-check``); the end-to-end smoke
run is tested with the model pipeline (tests/models/test_pipeline.py)."""

from __future__ import annotations

import json

import numpy as np

from sora_tta.smoke import check_smoke_clips


def test_check_smoke_clips(tmp_path, clip_maker):
    good = clip_maker.write(tmp_path / "good.mkv", clip_maker.moving(0, 5, 16, 32), fps=24)
    flat = clip_maker.write(tmp_path / "flat.mkv", np.zeros((5, 16, 32, 3), np.uint8), fps=24)
    assert check_smoke_clips([good], (5, 16, 32, 3))["ok"]
    report = check_smoke_clips([good, flat, tmp_path / "none.mkv"], (9, 16, 32, 3))
    assert not report["ok"]
    text = " ".join(report["problems"])
    assert "good.mkv: shape [5, 16, 32, 3], expected [9, 16, 32, 3]" in text
    assert "flat.mkv: every pixel has the same value" in text
    assert "none.mkv" in text


def test_smoke_check_command_writes_the_report_only_when_every_clip_passes(
    tmp_path, run_cli, clip_maker
):
    clip = clip_maker.write(tmp_path / "run0.mkv", clip_maker.moving(1, 5, 16, 32), fps=24)
    report = tmp_path / "check.json"
    size = ["--height", 16, "--width", 32, "--report", report]
    code, out, _ = run_cli(["smoke-check", clip, "--frames", 5, *size])
    assert code == 0 and json.loads(report.read_text())["ok"] and '"ok": true' in out
    report.unlink()
    code, _, err = run_cli(["smoke-check", clip, "--frames", 9, *size])
    assert code == 1 and "smoke check failed" in err and "expected [9, 16, 32, 3]" in err
    assert not report.exists()
