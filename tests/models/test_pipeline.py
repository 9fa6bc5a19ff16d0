"""Shared continuation steps and the end-to-end ``smoke`` command on the tiny family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sora_tta.cli import main
from sora_tta.data.video import read_frames
from sora_tta.layout import CheckpointLayout
from sora_tta.models import pipeline
from sora_tta.models.text import NEGATIVE_PROMPT, format_prompt
from sora_tta.sampling import GuidanceConfig


@pytest.fixture(scope="module")
def checkpoint_dir(tiny_ckpt_dir: Path) -> Path:
    return tiny_ckpt_dir


@pytest.fixture(scope="module")
def bundle(checkpoint_dir: Path) -> pipeline.ModelBundle:
    return pipeline.load_models(checkpoint_dir, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def embeddings(checkpoint_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    encoders = pipeline.load_text_encoders_from(checkpoint_dir)
    return encoders.encode([format_prompt("playing guitar"), NEGATIVE_PROMPT])


def test_layout_paths(tmp_path: Path) -> None:
    layout = CheckpointLayout(tmp_path)
    assert layout.mmdit == tmp_path / "Open_Sora_v2.safetensors"
    assert layout.vae == tmp_path / "hunyuan_vae.safetensors"
    assert layout.t5 == tmp_path / "google" / "t5-v1_1-xxl"
    assert layout.clip == tmp_path / "openai" / "clip-vit-large-patch14"


def test_frame_conversions_round_trip() -> None:
    values = np.arange(256, dtype=np.uint8)
    frames = np.stack([np.broadcast_to(values.reshape(16, 16, 1), (16, 16, 3))] * 2)
    video = pipeline.frames_to_tensor(frames)
    assert video.shape == (1, 3, 2, 16, 16) and video.dtype == torch.float32
    assert video.min() == -1.0 and video.max() == 1.0
    assert np.array_equal(pipeline.tensor_to_frames(video), frames)
    assert np.array_equal(pipeline.tensor_to_frames(video[0]), frames)


def test_tensor_to_frames_clamps_and_rounds() -> None:
    video = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]).reshape(1, 1, 5, 1, 1).expand(1, 3, 5, 1, 1)
    frames = pipeline.tensor_to_frames(video)
    assert frames.shape == (5, 1, 1, 3)
    assert frames[:, 0, 0, 0].tolist() == [0, 0, 128, 255, 255]


def test_frame_conversion_errors() -> None:
    with pytest.raises(ValueError, match="uint8"):
        pipeline.frames_to_tensor(np.zeros((2, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="one video"):
        pipeline.tensor_to_frames(torch.zeros(2, 3, 1, 4, 4))


def test_make_noise_is_seeded() -> None:
    first = pipeline.make_noise((1, 16, 3, 4, 4), seed=7)
    assert first.dtype == torch.float32 and first.shape == (1, 16, 3, 4, 4)
    assert torch.equal(first, pipeline.make_noise((1, 16, 3, 4, 4), seed=7))
    assert not torch.equal(first, pipeline.make_noise((1, 16, 3, 4, 4), seed=8))


def test_encode_condition_encodes_first_33_frames_as_one_clip(bundle, clip_maker) -> None:
    frames = clip_maker.pattern(65, 64, 80)
    condition = pipeline.encode_condition(bundle, frames)
    assert condition.latent_shape == (1, 16, 17, 8, 10)
    assert condition.masks.shape == (1, 1, 17, 8, 10)
    assert condition.masks[:, :, :9].eq(1).all() and condition.masks[:, :, 9:].eq(0).all()
    assert condition.masked_ref.shape == (1, 16, 17, 8, 10)
    direct = bundle.vae.encode(pipeline.frames_to_tensor(frames[:33]))
    assert torch.equal(condition.masked_ref[:, :, :9], direct)
    assert condition.masked_ref[:, :, 9:].eq(0).all()
    # only the conditioning frames matter
    altered = frames.copy()
    altered[33:] = 0
    assert torch.equal(pipeline.encode_condition(bundle, altered).masked_ref, condition.masked_ref)


def test_encode_condition_validates(bundle, clip_maker) -> None:
    with pytest.raises(ValueError, match="at least 33 frames"):
        pipeline.encode_condition(bundle, clip_maker.pattern(20, 64, 80))
    with pytest.raises(ValueError, match="4k \\+ 1"):
        pipeline.encode_condition(bundle, clip_maker.pattern(65, 64, 80), num_cond_frames=32)


def test_continue_video_is_seeded(bundle, embeddings, clip_maker) -> None:
    txt, y_vec = embeddings
    frames = clip_maker.pattern(frames=33)
    condition = pipeline.encode_condition(bundle, frames, num_cond_frames=17, num_frames=33)
    guidance = GuidanceConfig(num_steps=2)
    args = (bundle, condition, txt[:1], y_vec[:1], txt[1:], y_vec[1:], guidance)
    first = pipeline.continue_video(*args, seed=0)
    assert first.shape == (33, 32, 48, 3) and first.dtype == np.uint8
    assert np.array_equal(first, pipeline.continue_video(*args, seed=0))
    assert not np.array_equal(first, pipeline.continue_video(*args, seed=1))


def test_smoke_command_end_to_end(checkpoint_dir: Path, tmp_path: Path, capsys) -> None:
    """The smoke command runs the whole stack (its own timings are printed, not asserted: a
    wall-clock limit fails on a loaded machine; ``bench/`` measures speed)."""
    out = tmp_path / "smoke.mkv"
    status = main(
        ["smoke", "--checkpoint-dir", str(checkpoint_dir), "--out", str(out), "--device", "cpu"]
    )
    assert status == 0
    frames = read_frames(out)
    assert frames.shape == (65, 64, 80, 3)
    assert frames.std() > 0
    assert "smoke ok: 65 frames 64x80" in capsys.readouterr().out


def test_smoke_command_errors(tmp_path: Path, checkpoint_dir: Path, capsys) -> None:
    status = main(["smoke", "--checkpoint-dir", str(tmp_path / "none"), "--device", "cpu"])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Open_Sora_v2.safetensors" in err[0]
    status = main(["smoke", "--checkpoint-dir", str(checkpoint_dir), "--height", "60"])
    assert status == 1
    assert "multiples of 16" in capsys.readouterr().err


def test_make_tiny_checkpoints_command(tmp_path: Path) -> None:
    assert main(["make-tiny-checkpoints", str(tmp_path / "ckpts"), "--seed", "3"]) == 0
    assert (tmp_path / "ckpts" / "tiny_family.json").is_file()
    assert (tmp_path / "ckpts" / "openai" / "clip-vit-large-patch14" / "config.json").is_file()
