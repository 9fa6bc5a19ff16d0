"""Checkpoint loading/saving: meta-device build, metadata config, precise key errors."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sora_tta.models.loader import CheckpointError, load_mmdit, read_mmdit_config, save_mmdit
from sora_tta.models.mmdit import MMDiT, mmdit_config


@pytest.fixture
def tiny_state(tiny_checkpoint):
    """The tiny weights (official key names) and the checkpoint's config metadata."""
    with safe_open(tiny_checkpoint, framework="pt") as handle:
        metadata = handle.metadata()
    return load_file(tiny_checkpoint), metadata


def test_load_builds_config_from_metadata(tiny_checkpoint, tiny_state, caplog):
    with caplog.at_level(logging.INFO, logger="sora_tta.models.loader"):
        model = load_mmdit(tiny_checkpoint)
    assert model.config == mmdit_config("tiny")
    assert read_mmdit_config(tiny_checkpoint) == mmdit_config("tiny")
    assert model.dtype == torch.bfloat16
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(p.is_meta for p in model.parameters())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, tiny_state[0][key].to(torch.bfloat16), rtol=0, atol=0)
    message = caplog.text
    assert str(tiny_checkpoint) in message
    assert "parameters" in message and "bfloat16" in message and " s" in message


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MMDiT(mmdit_config("tiny"))
    path = tmp_path / "ckpt" / "model.safetensors"
    save_mmdit(model, path)
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp files left
    with safe_open(path, framework="pt") as handle:
        assert json.loads(handle.metadata()["config"]) == model.config.to_dict()
    loaded = load_mmdit(path, dtype=torch.float32)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_explicit_config_overrides_metadata(tiny_checkpoint):
    config = mmdit_config("tiny")
    model = load_mmdit(tiny_checkpoint, dtype=torch.float32, config=config)
    assert model.config is config


def test_missing_metadata_falls_back_to_full_preset(tmp_path, tiny_state):
    path = tmp_path / "no_meta.safetensors"
    save_file(tiny_state[0], path)
    assert read_mmdit_config(path) == mmdit_config("opensora-v2")
    with pytest.raises(CheckpointError) as info:
        load_mmdit(path)
    message = str(info.value)
    assert str(path) in message
    with torch.device("meta"):
        full = {k: v.shape for k, v in MMDiT(mmdit_config("opensora-v2")).state_dict().items()}
    tiny = tiny_state[0]
    n_mismatch = sum(tiny[k].shape != full[k] for k in tiny)
    assert n_mismatch > 100  # everything but a few 64-wide output tensors
    assert f"{len(full) - len(tiny)} missing keys" in message
    assert f"{n_mismatch} shape mismatches" in message
    assert "more)" in message  # long lists are truncated with a count


def test_missing_key_is_named(tmp_path, tiny_state):
    state = dict(tiny_state[0])
    del state["single_blocks.1.v_mlp.weight"]
    path = tmp_path / "missing.safetensors"
    save_file(state, path, metadata=tiny_state[1])
    with pytest.raises(CheckpointError) as info:
        load_mmdit(path)
    assert str(path) in str(info.value)
    assert "1 missing keys: single_blocks.1.v_mlp.weight" in str(info.value)
    assert "unexpected" not in str(info.value)


def test_unexpected_key_is_named(tmp_path, tiny_state):
    state = dict(tiny_state[0])
    state["double_blocks.0.img_attn.qkv.weight"] = torch.zeros(192, 64)
    path = tmp_path / "unexpected.safetensors"
    save_file(state, path, metadata=tiny_state[1])
    with pytest.raises(CheckpointError) as info:
        load_mmdit(path)
    assert str(path) in str(info.value)
    assert "1 unexpected keys: double_blocks.0.img_attn.qkv.weight" in str(info.value)
    assert "missing" not in str(info.value)


def test_wrong_shape_is_named(tmp_path, tiny_state):
    state = dict(tiny_state[0])
    state["txt_in.weight"] = torch.zeros(64, 40)
    path = tmp_path / "shape.safetensors"
    save_file(state, path, metadata=tiny_state[1])
    with pytest.raises(CheckpointError) as info:
        load_mmdit(path)
    assert str(path) in str(info.value)
    assert "txt_in.weight (checkpoint [64, 40], model [64, 48])" in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.safetensors"
    with pytest.raises(FileNotFoundError, match=r"absent\.safetensors: MMDiT checkpoint not found"):
        load_mmdit(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match=r"corrupt\.safetensors: not a readable safetensors"):
        load_mmdit(path)


def test_invalid_config_metadata(tmp_path, tiny_state):
    config = json.loads(tiny_state[1]["config"])
    config["fused_qkv"] = True
    path = tmp_path / "fused.safetensors"
    save_file(tiny_state[0], path, metadata={"config": json.dumps(config)})
    pattern = r"fused\.safetensors: invalid MMDiT config.*fused_qkv"
    with pytest.raises(CheckpointError, match=pattern):
        load_mmdit(path)
