"""Cover-resize + center-crop, lossless round trip, bad sources and atomic output."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from sora_tta.data.preprocess import (
    PreprocessConfig,
    PreprocessError,
    cover_box,
    load_clip,
    preprocess_video,
    resize_cover_crop,
)
from sora_tta.data.video import read_frames, write_lossless
from sora_tta.io import read_json
from sora_tta.world.synthetic_ucf101 import SyntheticTree

SMALL = {"height": 32, "width": 48, "expected_size": (64, 48)}


def test_cover_box_keeps_the_centred_target_aspect() -> None:
    # 320x240 into 288x224: height limits (scale 224/240), width is cropped
    x0, y0, x1, y1 = cover_box(320, 240, 288, 224)
    assert (y0, y1) == (0, 240)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(288 / 224)
    assert x0 == pytest.approx(320 - x1)
    # wide source into a square: width is cropped; tall source: height is cropped
    assert cover_box(400, 100, 64, 64) == pytest.approx((150, 0, 250, 100))
    assert cover_box(100, 400, 64, 64) == pytest.approx((0, 150, 100, 250))


def test_resize_cover_crop_geometry() -> None:
    # left and right thirds of a 240x320 frame are black, the middle is white
    frames = np.zeros((2, 240, 320, 3), dtype=np.uint8)
    frames[:, :, 110:210] = 255
    out = resize_cover_crop(frames, 224, 288)
    assert out.shape == (2, 224, 288, 3) and out.dtype == np.uint8
    # a cover resize by 224/240 crops (320*224/240 - 288)/2 = 5.33 px a side
    scale = 224 / 240
    left, right = 110 * scale - 5.333, 210 * scale - 5.333
    row = out[0, 100, :, 0].astype(int)
    assert row[int(left) - 3] < 10 and row[int(left) + 3] > 245
    assert row[int(right) - 3] > 245 and row[int(right) + 3] < 10
    assert np.array_equal(out[0], out[1])


def test_resize_is_antialiased() -> None:
    # a one-pixel checkerboard downscaled 4x must become flat grey, not aliased stripes
    checker = ((np.indices((192, 256)).sum(axis=0) % 2) * 255).astype(np.uint8)
    frames = np.repeat(checker[None, :, :, None], 3, axis=3)
    out = resize_cover_crop(frames, 48, 64).astype(float)
    assert abs(out.mean() - 127.5) < 2 and out.std() < 3


def test_same_size_is_a_copy() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    out = resize_cover_crop(frames, 32, 48)
    assert np.array_equal(out, frames) and out is not frames


def test_resize_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match="expected uint8 frames"):
        resize_cover_crop(np.zeros((2, 8, 8), dtype=np.uint8), 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 100}, "height must be a positive multiple of 16"),
        ({"width": 0}, "width must be a positive multiple of 16"),
        ({"num_frames": 0}, "num_frames must be >= 1"),
        ({"start_frame": -1}, "start_frame must be >= 0"),
        ({"fps": 0.0}, "fps must be positive"),
        ({"resample": "nearest"}, "resample must be one of"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PreprocessConfig(**kwargs)


def test_any_multiple_of_16_is_accepted() -> None:
    assert PreprocessConfig(height=16, width=1280).width == 1280


def test_source_indices() -> None:
    assert PreprocessConfig(start_frame=3, num_frames=4).source_indices(25.0) == [3, 4, 5, 6]
    # 30 fps -> 15 fps takes every second frame; 25 -> 10 fps: 2.5 source frames per output
    assert PreprocessConfig(num_frames=4, fps=15).source_indices(30.0) == [0, 2, 4, 6]
    assert PreprocessConfig(start_frame=1, num_frames=4, fps=10).source_indices(25.0) == [
        1,
        4,
        6,
        9,
    ]
    assert PreprocessConfig(num_frames=4, fps=15).frames_needed(30.0) == 7


def test_lossless_round_trip(tmp_path: Path) -> None:
    frames = np.random.default_rng(3).integers(0, 256, (7, 32, 48, 3), dtype=np.uint8)
    path = tmp_path / "clip.mkv"
    write_lossless(path, frames, fps=25.0)
    assert np.array_equal(read_frames(path), frames)


def test_lossless_bytes_depend_only_on_the_frames(tmp_path: Path) -> None:
    """No random Matroska segment UID: a rebuilt clip is byte-identical (and so unchanged)."""
    frames = np.random.default_rng(4).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    write_lossless(tmp_path / "a.mkv", frames, fps=25.0)
    write_lossless(tmp_path / "b.mkv", frames, fps=25.0)
    assert (tmp_path / "a.mkv").read_bytes() == (tmp_path / "b.mkv").read_bytes()


def test_preprocess_writes_exact_frames_and_sidecar(
    small_tree: SyntheticTree, tmp_path: Path
) -> None:
    source = small_tree.path("v_ApplyLipstick_g02_c01")
    config = PreprocessConfig(start_frame=2, num_frames=65, **SMALL)
    out = tmp_path / "clips" / "v_ApplyLipstick_g02_c01.mkv"
    info = preprocess_video(source, out, config, sidecar=out.with_suffix(".json"))
    stored = read_frames(out)
    expected = resize_cover_crop(read_frames(source)[2:67], 32, 48)
    assert stored.shape == (65, 32, 48, 3)
    assert np.array_equal(stored, expected)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "ffv1" and float(stream.average_rate) == 25.0
    sidecar = read_json(out.with_suffix(".json"))
    assert sidecar == info
    assert sidecar["source_path"] == str(source) and sidecar["source_fps"] == 25.0
    assert (sidecar["start_frame"], sidecar["num_frames"], sidecar["source_num_frames"]) == (
        2,
        65,
        70,
    )
    assert (sidecar["height"], sidecar["width"], sidecar["fps"]) == (32, 48, 25.0)
    assert sidecar["source_indices"] == list(range(2, 67))
    assert sorted(p.name for p in out.parent.iterdir()) == [out.with_suffix(".json").name, out.name]


def test_preprocess_fps_resampling(small_tree: SyntheticTree, tmp_path: Path) -> None:
    source = small_tree.path("v_Archery_g01_c01")
    config = PreprocessConfig(num_frames=20, fps=12.5, **SMALL)
    out = tmp_path / "half.mkv"
    info = preprocess_video(source, out, config)
    assert info["source_indices"] == list(range(0, 40, 2)) and info["fps"] == 12.5
    expected = resize_cover_crop(read_frames(source)[0:40:2], 32, 48)
    assert np.array_equal(read_frames(out), expected)
    assert not out.with_suffix(".json").exists()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("too_short", "too_short: 30 frames, need 65"),
        ("truncated", "unreadable: truncated"),
        ("empty", "unreadable: empty file"),
        ("undecodable", "unreadable: cannot open"),
        ("odd_size", "bad_size: frame size 65x49"),
        ("missing", "missing: file not found"),
    ],
)
def test_bad_sources_raise_naming_the_file(
    small_tree: SyntheticTree, tmp_path: Path, kind: str, message: str
) -> None:
    source = small_tree.path(small_tree.broken(kind))
    out = tmp_path / "clip.mkv"
    with pytest.raises(PreprocessError, match=message) as err:
        preprocess_video(source, out, PreprocessConfig(**SMALL), sidecar=tmp_path / "clip.json")
    assert str(err.value).startswith(f"{source}: ")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_window_past_the_end(small_tree: SyntheticTree) -> None:
    source = small_tree.path("v_Archery_g01_c01")
    with pytest.raises(PreprocessError, match=r"too_short: 70 frames, need 71 \(start 6 \+ 65"):
        load_clip(source, PreprocessConfig(start_frame=6, **SMALL))
    frames, _ = load_clip(source, PreprocessConfig(start_frame=5, **SMALL))
    assert len(frames) == 65


def test_damaged_payload_fails_cleanly(small_tree: SyntheticTree, tmp_path: Path) -> None:
    data = bytearray(small_tree.path("v_Archery_g02_c01").read_bytes())
    movi = data.find(b"movi")
    start, stop = movi + 600, movi + (len(data) - movi) // 2
    data[start:stop] = (
        np.random.default_rng(1).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    )
    source = tmp_path / "damaged.avi"
    source.write_bytes(bytes(data))
    with pytest.raises(PreprocessError, match=r"damaged.avi: frame \d+ is damaged"):
        load_clip(source, PreprocessConfig(**SMALL))


def test_exception_mid_write_leaves_no_file(
    small_tree: SyntheticTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = av.VideoFrame.from_ndarray
    calls = {"n": 0}

    def fail_after_ten(*args: object, **kwargs: object) -> av.VideoFrame:
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt("killed mid-write")
        return real(*args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", fail_after_ten)
    out = tmp_path / "clip.mkv"
    with pytest.raises(KeyboardInterrupt):
        preprocess_video(
            small_tree.path("v_Archery_g01_c01"),
            out,
            PreprocessConfig(**SMALL),
            out.with_suffix(".json"),
        )
    assert calls["n"] == 11
    assert list(tmp_path.iterdir()) == []  # neither the clip nor a temporary file
