"""The ``evaluate`` subcommand on small lossless clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sora_tta.cli import CommandError
from sora_tta.evaluation.definitions import PSNR_CAP_DB, SCHEMA
from sora_tta.io import read_json


def _argv(gen: Path, ref: Path, out: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "--generated", str(gen),
        "--reference", str(ref),
        "--video-id", "v_Test_g01_c01",
        "--method", "baseline",
        "--class-name", "Test",
        "--out", str(out),
        "--lpips-backbone", "random",
        "--device", "cpu",
        *extra,
    ]  # fmt: skip


def test_evaluate_writes_marked_json(tmp_path, cli, write_clip, moving_clip) -> None:
    ref_frames = moving_clip(0)
    gen_frames = ref_frames.copy()
    gen_frames[33:] = np.clip(gen_frames[33:].astype(int) + 10, 0, 255).astype(np.uint8)
    ref = write_clip(tmp_path / "ref.mkv", ref_frames)
    gen = write_clip(tmp_path / "gen.mkv", gen_frames)
    out = tmp_path / "metrics" / "baseline" / "v_Test_g01_c01.json"
    assert cli(_argv(gen, ref, out)) == 0
    data = read_json(out)
    assert data["schema"] == SCHEMA and data["lpips_backbone"] == "random"
    assert data["video"] == "v_Test_g01_c01" and data["class"] == "Test"
    assert (data["num_frames"], data["height"], data["width"]) == (65, 32, 48)
    ctx, cont = data["segments"]["context"], data["segments"]["continuation"]
    assert len(ctx["per_frame"]["psnr"]) == 33 and len(cont["per_frame"]["lpips"]) == 32
    # Context frames are identical: capped PSNR, SSIM 1, LPIPS 0.
    assert ctx["aggregates"]["psnr"] == PSNR_CAP_DB
    assert ctx["aggregates"]["ssim"] == pytest.approx(1.0)
    assert ctx["aggregates"]["lpips"] == 0.0
    assert 20 < cont["aggregates"]["psnr"] < 40 and cont["aggregates"]["lpips"] > 0
    assert cont["aggregates"]["seam_gen"] > cont["aggregates"]["seam_gt"]
    assert not list(out.parent.glob(".*"))  # no temporary file left behind


def test_alexnet_missing_fails_before_reading_clips(tmp_path, cli, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    argv = _argv(tmp_path / "nope.mkv", tmp_path / "nope2.mkv", tmp_path / "out.json")
    argv[argv.index("random")] = "alexnet"
    with pytest.raises(CommandError, match=r"alexnet-owt-7be5be79\.pth"):
        cli(argv)
    assert not (tmp_path / "out.json").exists()


def test_frame_count_mismatch_names_both_files(tmp_path, cli, write_clip, moving_clip) -> None:
    ref = write_clip(tmp_path / "ref.mkv", moving_clip(1))
    gen = write_clip(tmp_path / "gen.mkv", moving_clip(1, frames=60))
    with pytest.raises(CommandError) as info:
        cli(_argv(gen, ref, tmp_path / "out.json"))
    assert str(gen) in str(info.value) and str(ref) in str(info.value) and "65" in str(info.value)
    assert not (tmp_path / "out.json").exists()


def test_size_mismatch_names_both_files(tmp_path, cli, write_clip, moving_clip) -> None:
    ref = write_clip(tmp_path / "ref.mkv", moving_clip(2))
    gen = write_clip(tmp_path / "gen.mkv", moving_clip(2)[:, :, :40])
    with pytest.raises(CommandError, match="sizes must match") as info:
        cli(_argv(gen, ref, tmp_path / "out.json"))
    assert str(gen) in str(info.value) and str(ref) in str(info.value)


def test_unreadable_clip_and_bad_context(tmp_path, cli, write_clip, moving_clip) -> None:
    ref = write_clip(tmp_path / "ref.mkv", moving_clip(3))
    with pytest.raises(CommandError, match=r"missing\.mkv"):
        cli(_argv(tmp_path / "missing.mkv", ref, tmp_path / "out.json"))
    with pytest.raises(CommandError, match="context-frames"):
        cli(_argv(ref, ref, tmp_path / "out.json", "--context-frames", "64"))
