"""The ``evaluate`` subcommand on small lossless clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sora_tta.cli import CommandError
from sora_tta.evaluation.definitions import FILE_SCHEMA, PSNR_CAP_DB, SCHEMA
from sora_tta.io import read_json


def _argv(
    gen: Path | list[Path], ref: Path | list[Path], out: Path, *extra: str, videos=None
) -> list[str]:
    gens = gen if isinstance(gen, list) else [gen]
    refs = ref if isinstance(ref, list) else [ref]
    videos = videos or [f"v_Test_g01_c{i + 1:02d}" for i in range(len(gens))]
    return [
        "evaluate",
        "--generated", *map(str, gens),
        "--reference", *map(str, refs),
        "--video-ids", *videos,
        "--method", "baseline",
        "--class-name", "Test",
        "--out", str(out),
        "--lpips-backbone", "random",
        "--device", "cpu",
        *extra,
    ]  # fmt: skip


def test_evaluate_writes_marked_json(tmp_path, invoke, clip_maker) -> None:
    ref_frames = clip_maker.moving(0)
    gen_frames = ref_frames.copy()
    gen_frames[33:] = np.clip(gen_frames[33:].astype(int) + 10, 0, 255).astype(np.uint8)
    ref = clip_maker.write(tmp_path / "ref.mkv", ref_frames)
    gen = clip_maker.write(tmp_path / "gen.mkv", gen_frames)
    out = tmp_path / "metrics" / "baseline" / "Test.json"
    assert invoke(_argv(gen, ref, out)) == 0
    file = read_json(out)
    assert (file["schema"], file["method"], file["class"]) == (FILE_SCHEMA, "baseline", "Test")
    (data,) = file["records"]
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


def test_alexnet_missing_fails_before_reading_clips(tmp_path, invoke, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    argv = _argv(tmp_path / "nope.mkv", tmp_path / "nope2.mkv", tmp_path / "out.json")
    argv[argv.index("random")] = "alexnet"
    with pytest.raises(CommandError, match=r"alexnet-owt-7be5be79\.pth"):
        invoke(argv)
    assert not (tmp_path / "out.json").exists()


def test_frame_count_mismatch_names_both_files(tmp_path, invoke, clip_maker) -> None:
    ref = clip_maker.write(tmp_path / "ref.mkv", seed=1)
    gen = clip_maker.write(tmp_path / "gen.mkv", clip_maker.moving(1, frames=60))
    with pytest.raises(CommandError) as info:
        invoke(_argv(gen, ref, tmp_path / "out.json"))
    assert str(gen) in str(info.value) and str(ref) in str(info.value) and "65" in str(info.value)
    assert not (tmp_path / "out.json").exists()


def test_size_mismatch_names_both_files(tmp_path, invoke, clip_maker) -> None:
    ref = clip_maker.write(tmp_path / "ref.mkv", seed=2)
    gen = clip_maker.write(tmp_path / "gen.mkv", clip_maker.moving(2)[:, :, :40])
    with pytest.raises(CommandError, match="sizes must match") as info:
        invoke(_argv(gen, ref, tmp_path / "out.json"))
    assert str(gen) in str(info.value) and str(ref) in str(info.value)


def test_unreadable_clip_and_bad_context(tmp_path, invoke, clip_maker) -> None:
    ref = clip_maker.write(tmp_path / "ref.mkv", seed=3)
    with pytest.raises(CommandError, match=r"missing\.mkv"):
        invoke(_argv(tmp_path / "missing.mkv", ref, tmp_path / "out.json"))
    with pytest.raises(CommandError, match="context-frames"):
        invoke(_argv(ref, ref, tmp_path / "out.json", "--context-frames", "64"))


def test_one_file_per_class_in_the_given_order(tmp_path, invoke, clip_maker) -> None:
    """Several videos, one LPIPS model: each record equals the single-video evaluation."""
    refs = [clip_maker.write(tmp_path / f"ref{i}.mkv", seed=10 + i) for i in range(3)]
    gens = [clip_maker.write(tmp_path / f"gen{i}.mkv", seed=20 + i) for i in range(3)]
    videos = ["v_Test_g01_c03", "v_Test_g01_c01", "v_Test_g02_c01"]
    assert invoke(_argv(gens, refs, tmp_path / "all.json", videos=videos)) == 0
    records = read_json(tmp_path / "all.json")["records"]
    assert [r["video"] for r in records] == videos
    assert [r["generated"] for r in records] == [str(g) for g in gens]
    assert invoke(_argv(gens[2], refs[2], tmp_path / "one.json", videos=videos[2:])) == 0
    (alone,) = read_json(tmp_path / "one.json")["records"]
    assert alone == records[2]


def test_bad_videos_are_all_named_and_nothing_is_written(tmp_path, invoke, clip_maker) -> None:
    refs = [clip_maker.write(tmp_path / f"ref{i}.mkv", seed=30 + i) for i in range(3)]
    short = clip_maker.write(tmp_path / "short.mkv", clip_maker.moving(3, frames=60))
    gens = [tmp_path / "gone.mkv", refs[1], short]
    out = tmp_path / "out.json"
    with pytest.raises(CommandError, match="2 of 3 videos cannot be evaluated") as info:
        invoke(_argv(gens, refs, out))
    assert "gone.mkv" in str(info.value) and "short.mkv" in str(info.value)
    assert not out.exists()


def test_list_lengths_and_ids_are_checked(tmp_path, invoke) -> None:
    clip = tmp_path / "c.mkv"
    with pytest.raises(CommandError, match="the three lists must match"):
        invoke(_argv([clip, clip], [clip], tmp_path / "o.json"))
    with pytest.raises(CommandError, match="video ids repeated"):
        invoke(_argv([clip, clip], [clip, clip], tmp_path / "o.json", videos=["v1", "v1"]))


def test_failed_generations_are_recorded_not_evaluated(tmp_path, invoke, clip_maker):
    """meta.json inputs: an 'ok' one is evaluated from the video next to it, a 'failed' one
    becomes a failure entry (the file is still written)."""
    frames = clip_maker.moving(0)
    refs = [clip_maker.write(tmp_path / f"ref{i}.mkv", frames) for i in range(2)]
    good, bad = tmp_path / "gen" / "a", tmp_path / "gen" / "b"
    clip_maker.write(good / "video.mkv", frames)
    (good / "meta.json").write_text('{"outcome": "ok"}')
    bad.mkdir(parents=True)
    (bad / "meta.json").write_text(
        '{"outcome": "failed", "stage": "adapt", "error": "non-finite loss at step 3"}'
    )
    out = tmp_path / "metrics.json"
    videos = ["v_Test_g01_c01", "v_Test_g02_c01"]
    assert invoke(_argv([good / "meta.json", bad / "meta.json"], refs, out, videos=videos)) == 0
    data = read_json(out)
    assert [r["video"] for r in data["records"]] == ["v_Test_g01_c01"]
    assert data["records"][0]["generated"] == str(good / "video.mkv")
    assert data["failures"] == [
        {"video": "v_Test_g02_c01", "method": "baseline", "class": "Test", "stage": "adapt",
         "error": "non-finite loss at step 3"}
    ]  # fmt: skip
