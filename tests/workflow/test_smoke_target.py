"""The smoke target: two synthetic continuations with the (tiny) checkpoints, checked."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml
from conftest import DEMO_CONFIG, snakemake

from sora_tta.data.video import read_frames, write_lossless

pytestmark = pytest.mark.slow


def test_smoke_generates_two_checked_videos_and_catches_a_bad_one(tmp_path):
    result = snakemake(tmp_path, "smoke", "--cores", "2")
    assert result.job_counts() == {
        "proxy_checkpoints": 1,
        "smoke_generate": 2,
        "smoke": 1,
        "total": 4,
    }
    smoke_dir = tmp_path / "results" / "smoke"
    report = json.loads((smoke_dir / "check.json").read_text())
    smoke = yaml.safe_load(DEMO_CONFIG.read_text())["smoke"]
    expected = [smoke["frames"], smoke["height"], smoke["width"], 3]
    assert report["ok"] and report["problems"] == []
    assert len(report["clips"]) == 2
    for clip in report["clips"].values():
        assert clip["shape"] == expected
        assert clip["std"] > 0
    assert (smoke_dir / "run0.mkv").read_bytes() != (smoke_dir / "run1.mkv").read_bytes()
    assert not (tmp_path / "results" / "manifest.csv").exists()  # no study, no data

    # a clip that lost frames (same time stamp) fails the check, naming the problem
    clip = smoke_dir / "run1.mkv"
    stat = clip.stat()
    frames = read_frames(clip)
    write_lossless(clip, np.ascontiguousarray(frames[:-4]), fps=24)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    failed = snakemake(tmp_path, "smoke", "--cores", "1", "--forcerun", "smoke", check=False)
    assert failed.returncode != 0
    assert "smoke check failed" in failed.output
    assert f"run1.mkv: shape [{smoke['frames'] - 4}," in failed.output
    assert not (smoke_dir / "check.json").exists()
