"""The synthetic UCF-101 tree: layout, list formats, file format, motion, determinism."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest

from sora_tta.data.ucf101 import load_split, read_class_index, read_split_list
from sora_tta.data.video import read_frames
from sora_tta.world.synthetic_ucf101 import (
    BROKEN_CASES,
    SyntheticConfig,
    SyntheticTree,
    class_style,
    make_synthetic_ucf101,
    render_clip,
)


def test_layout_and_official_list_formats(small_tree: SyntheticTree) -> None:
    names = ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert sorted(p.name for p in small_tree.videos.iterdir()) == names
    assert read_class_index(small_tree.splits / "classInd.txt") == {
        n: i for i, n in enumerate(names, 1)
    }
    raw = (small_tree.splits / "testlist01.txt").read_bytes()
    assert raw.startswith(b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n")
    raw = (small_tree.splits / "trainlist01.txt").read_bytes()
    assert raw.startswith(b"ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 1\r\n")
    for split in (1, 2, 3):
        test = {e.video_id for e in load_split(small_tree.splits, split, "test")}
        train = {e.video_id for e in load_split(small_tree.splits, split, "train")}
        assert not test & train
        assert set(small_tree.info["broken"]) <= test
        regular = {f"v_{n}_g{g:02d}_c{c:02d}" for n in names for g in (1, 2, 3) for c in (1, 2)}
        assert test | train == regular | set(small_tree.info["broken"])
        # split s tests group s (3 groups): groups never straddle test and train
        assert {int(v.split("_g")[1][:2]) for v in test - set(small_tree.info["broken"])} == {split}


def test_every_regular_file_exists_and_is_mpeg4_avi(small_tree: SyntheticTree) -> None:
    classes = read_class_index(small_tree.splits / "classInd.txt")
    entries = read_split_list(small_tree.splits / "trainlist01.txt", classes)
    assert len(entries) == 3 * 4
    for entry in entries:
        with av.open(str(small_tree.videos / entry.relpath)) as container:
            stream = container.streams.video[0]
            assert container.format.name == "avi" and stream.codec_context.name == "mpeg4"
            assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
            assert stream.frames == 70 and float(stream.average_rate) == 25.0


def test_broken_cases_are_recorded(small_tree: SyntheticTree) -> None:
    broken = small_tree.info["broken"]
    assert sorted(case["kind"] for case in broken.values()) == sorted(BROKEN_CASES)
    assert small_tree.path(small_tree.broken("empty")).stat().st_size == 0
    assert not small_tree.path(small_tree.broken("missing")).exists()
    assert small_tree.config.width == 64


def test_default_size_and_real_format(tmp_path: Path) -> None:
    tree = make_synthetic_ucf101(
        tmp_path / "s", SyntheticConfig(classes=2, per_class=1, frames=6, broken=False)
    )
    assert tree.info["broken"] == {}
    path = tree.path("v_ApplyLipstick_g01_c01")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 240)
        assert stream.codec_tag == "XVID" and stream.frames == 6
    assert read_frames(path).shape == (6, 240, 320, 3)


def test_deterministic_from_the_seed(tmp_path: Path) -> None:
    config = SyntheticConfig(classes=2, per_class=2, frames=12, seed=3, width=48, height=32)
    a = make_synthetic_ucf101(tmp_path / "a", config)
    b = make_synthetic_ucf101(tmp_path / "b", config)
    c = make_synthetic_ucf101(tmp_path / "c", SyntheticConfig(**{**config.__dict__, "seed": 4}))
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    clip = Path("UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi")
    assert (a.root / clip).read_bytes() != (c.root / clip).read_bytes()


def test_motion_is_smooth_and_class_specific() -> None:
    rng = np.random.default_rng
    clip_a = render_clip(class_style(0, 0), 12, 96, 64, rng(1), np.zeros(3)).astype(float)
    clip_b = render_clip(class_style(0, 1), 12, 96, 64, rng(1), np.zeros(3)).astype(float)
    step = np.abs(np.diff(clip_a, axis=0)).mean(axis=(1, 2, 3))
    far = np.abs(clip_a[11] - clip_a[0]).mean()
    assert (step > 0.5).all(), "every frame moves"
    assert far > 2 * step.mean(), "motion accumulates: frames far apart differ more"
    assert np.abs(clip_a - clip_b).mean() > 20, "classes look different"
    again = render_clip(class_style(0, 0), 12, 96, 64, rng(1), np.zeros(3))
    assert np.array_equal(again, clip_a.astype(np.uint8))


def test_background_pans_at_the_class_velocity() -> None:
    # with an integer pan, frame 1 is frame 0 shifted by it everywhere but near the shapes
    style = dataclasses.replace(class_style(5, 2), pan=np.array([2.0, -1.0]))
    frames = render_clip(style, 2, 320, 240, np.random.default_rng(0), np.zeros(3)).astype(int)
    shifted = np.abs(frames[1, 1:, :-2] - frames[0, :-1, 2:]).max(axis=-1)
    still = np.abs(frames[1] - frames[0]).max(axis=-1)
    assert (shifted <= 1).mean() > 0.8
    assert (still <= 1).mean() < 0.3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": 0}, "classes must be 1..101"),
        ({"classes": 102}, "classes must be 1..101"),
        ({"per_class": 0}, "per_class must be positive"),
        ({"width": 33}, "size must be even"),
        ({"seed": -2}, "seed must be non-negative"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**kwargs)


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    config = SyntheticConfig(classes=1, per_class=1, frames=3, width=32, height=32, broken=False)
    with pytest.raises(FileExistsError, match="not empty"):
        make_synthetic_ucf101(tmp_path, config)
    tree = make_synthetic_ucf101(tmp_path, config, overwrite=True)
    assert tree.path("v_ApplyEyeMakeup_g01_c01").is_file() and (tmp_path / "keep.txt").exists()
