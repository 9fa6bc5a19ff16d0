"""Metadata probing: every status, truncation and unreliable frame counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sora_tta.data.probe import STATUSES, probe_video, riff_truncation
from sora_tta.world.synthetic_ucf101 import SyntheticTree

SIZE = (64, 48)  # the small_tree fixture's frame size
FRAMES = 70


def video(tree: SyntheticTree, video_id: str) -> Path:
    return tree.path(video_id)


def broken(tree: SyntheticTree, kind: str) -> Path:
    return tree.path(tree.broken(kind))


def test_good_clip_from_header(small_tree: SyntheticTree) -> None:
    result = probe_video(video(small_tree, "v_Archery_g01_c02"), min_frames=65, expected_size=SIZE)
    assert result.ok and result.status == "ok" and result.reason == ""
    assert (result.num_frames, result.fps, result.width, result.height) == (70, 25.0, 64, 48)
    assert (result.codec, result.frames_from) == ("mpeg4", "header")


def test_min_frames_decides_too_short(small_tree: SyntheticTree) -> None:
    path = video(small_tree, "v_Archery_g01_c02")
    assert probe_video(path, min_frames=70, expected_size=SIZE).ok
    result = probe_video(path, min_frames=71, expected_size=SIZE)
    assert result.status == "too_short" and result.reason == "70 frames < min_frames 71"


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        ("too_short", "too_short", "30 frames < min_frames 65"),
        ("truncated", "unreadable", "truncated: "),
        ("empty", "unreadable", "empty file (0 bytes)"),
        ("undecodable", "unreadable", ""),
        ("odd_size", "bad_size", "frame size 65x49, expected 64x48"),
        ("missing", "missing", "file not found"),
    ],
)
def test_broken_cases(small_tree: SyntheticTree, kind: str, status: str, reason: str) -> None:
    result = probe_video(broken(small_tree, kind), min_frames=65, expected_size=SIZE)
    assert result.status == status
    assert reason in result.reason and result.reason
    assert result.path.endswith(".avi")


def test_truncated_file_reports_surviving_frames(small_tree: SyntheticTree) -> None:
    path = broken(small_tree, "truncated")
    size = path.stat().st_size
    reason = riff_truncation(path, size)
    assert reason is not None and reason.startswith(f"truncated: {size} bytes but the RIFF header")
    result = probe_video(path, min_frames=1, expected_size=SIZE)
    assert result.status == "unreadable" and result.frames_from == "decoded"
    assert result.num_frames is not None and 0 < result.num_frames < FRAMES
    assert f"{result.num_frames} of {FRAMES} declared frames decode" in result.reason


def test_intact_avi_is_not_truncated(small_tree: SyntheticTree, tmp_path: Path) -> None:
    path = video(small_tree, "v_Archery_g01_c01")
    assert riff_truncation(path, path.stat().st_size) is None
    # trailing bytes (padding) are not truncation
    padded = tmp_path / "padded.avi"
    padded.write_bytes(path.read_bytes() + b"\0" * 7)
    assert riff_truncation(padded, padded.stat().st_size) is None
    assert probe_video(padded, expected_size=SIZE).ok


def test_odd_size_accepted_with_any_size(small_tree: SyntheticTree) -> None:
    result = probe_video(broken(small_tree, "odd_size"), min_frames=65, expected_size=None)
    assert result.ok and (result.width, result.height) == (65, 49)


def _patch_header_frames(data: bytes, frames: int) -> bytes:
    """Make an AVI header claim ``frames`` frames (avih dwTotalFrames and strh dwLength)."""
    out = bytearray(data)
    avih, strh = out.find(b"avih"), out.find(b"strh")
    assert avih > 0 and strh > 0
    out[avih + 8 + 16 : avih + 8 + 20] = frames.to_bytes(4, "little")
    out[strh + 8 + 32 : strh + 8 + 36] = frames.to_bytes(4, "little")
    return bytes(out)


def test_header_claiming_too_many_frames_is_caught(
    small_tree: SyntheticTree, tmp_path: Path
) -> None:
    path = tmp_path / "v_Liar_g01_c01.avi"
    path.write_bytes(_patch_header_frames(video(small_tree, "v_Archery_g01_c01").read_bytes(), 200))
    result = probe_video(path, min_frames=65, expected_size=SIZE)
    assert result.num_frames == 70 and result.frames_from == "packets"
    assert result.ok and "header says 200 frames" in result.reason
    assert probe_video(path, min_frames=100, expected_size=SIZE).status == "too_short"


def test_container_without_frame_count_counts_packets(tmp_path: Path, clip_maker) -> None:
    frames = clip_maker.moving(0, frames=9)
    path = clip_maker.write(tmp_path / "clip.mkv", frames, fps=30000 / 1001)
    result = probe_video(path, min_frames=9, expected_size=(48, 32))
    assert result.ok and result.num_frames == 9 and result.frames_from == "packets"
    assert result.codec == "ffv1" and result.fps == pytest.approx(29.97, abs=1e-2)


def test_decode_check_catches_damaged_payload(small_tree: SyntheticTree, tmp_path: Path) -> None:
    data = bytearray(video(small_tree, "v_Archery_g02_c01").read_bytes())
    movi = data.find(b"movi")
    start, stop = movi + 600, movi + (len(data) - movi) // 2
    data[start:stop] = (
        np.random.default_rng(1).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    )
    path = tmp_path / "damaged.avi"
    path.write_bytes(bytes(data))
    # the metadata (header, index) is intact: only decoding reveals the damage
    assert probe_video(path, min_frames=65, expected_size=SIZE).ok
    checked = probe_video(path, min_frames=65, expected_size=SIZE, decode_check=True)
    assert checked.status == "unreadable" and "of the first 65 frames decode" in checked.reason
    good = probe_video(video(small_tree, "v_Archery_g02_c01"), 65, SIZE, decode_check=True)
    assert good.ok


def scatter_payload(source: Path, target: Path, fraction: float = 0.1) -> None:
    """Random bytes over ``fraction`` of the packets' payload (container, index and each
    packet's first bytes intact): decoding conceals the damage instead of failing."""
    import av

    data = bytearray(source.read_bytes())
    with av.open(str(source)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size > 0]
    offsets = np.concatenate([np.arange(pos + 8, pos + size) for pos, size in packets[1:]])
    rng = np.random.default_rng(0)
    for offset in rng.choice(offsets, int(len(offsets) * fraction), replace=False):
        data[offset] = int(rng.integers(0, 256))
    target.write_bytes(bytes(data))


def test_decode_check_flags_concealed_payload_damage(
    small_tree: SyntheticTree, tmp_path: Path
) -> None:
    from sora_tta.data.video import VideoReadError, read_frames

    path = tmp_path / "scattered.avi"
    scatter_payload(video(small_tree, "v_Archery_g02_c01"), path)
    assert probe_video(path, min_frames=33, expected_size=SIZE).ok  # metadata intact
    checked = probe_video(path, min_frames=33, expected_size=SIZE, decode_check=True)
    assert checked.status == "unreadable"
    assert "is damaged (the decoder concealed errors)" in checked.reason
    with pytest.raises(VideoReadError, match=r"scattered\.avi: frame \d+ is damaged"):
        read_frames(path)  # and preprocessing refuses it as ground truth


def test_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.avi"
    path.write_text("hello, this is not a video\n" * 20)
    result = probe_video(path)
    assert result.status == "unreadable" and result.reason.startswith("cannot open")


def test_statuses_are_documented() -> None:
    assert STATUSES == ("ok", "too_short", "unreadable", "missing", "bad_size", "excluded")


def test_directory_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "v_X_g01_c01.avi"
    folder.mkdir()
    assert probe_video(folder).status == "missing"
    shutil.rmtree(folder)
