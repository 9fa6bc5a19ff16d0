"""The HunyuanVideo VAE wrapper against the golden fixture and the official key manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sora_tta.models.vae import (
    VAE_PRESETS,
    VAECheckpointError,
    VAEConfig,
    build_autoencoder,
    load_vae,
    save_vae,
    vae_config,
)

FIXTURE = "hunyuan_vae_tiny.safetensors"
MANIFEST = "opensora_v2_hunyuan_vae_keys.json"
TOL = 1e-4


@pytest.fixture(scope="module")
def golden(fixtures_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Fixture tensors and its config dict."""
    path = fixtures_dir / FIXTURE
    with safe_open(path, framework="pt") as handle:
        config = json.loads(handle.metadata()["config"])
    return load_file(path), config


@pytest.fixture(scope="module")
def tiny_vae_file(golden, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture weights as an official-format file (``weights/`` stripped, config metadata)."""
    tensors, config = golden
    weights = {
        k.removeprefix("weights/"): v for k, v in tensors.items() if k.startswith("weights/")
    }
    path = tmp_path_factory.mktemp("vae") / "hunyuan_vae.safetensors"
    save_file(weights, path, metadata={"config": json.dumps(config)})
    return path


@pytest.fixture(scope="module")
def tiny_vae(tiny_vae_file: Path):
    return load_vae(tiny_vae_file, device="cpu", dtype=torch.float32)


def test_config_accepts_official_dicts_as_is(golden, fixtures_dir: Path) -> None:
    manifest = json.loads((fixtures_dir / MANIFEST).read_text())
    full = VAEConfig(**manifest["config"])
    assert full == VAE_PRESETS["hunyuan-vae"] == vae_config("hunyuan-vae")
    assert full.to_dict() == manifest["config"]
    _, config = golden
    tiny = VAEConfig(**config)
    assert tiny == vae_config("tiny")
    assert list(tiny.to_dict()) == list(config)
    assert tiny.to_dict() == config


def test_config_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown VAE config keys"):
        VAEConfig.from_dict({"act_fn": "silu", "bogus": 1}, "somefile.safetensors")
    with pytest.raises(ValueError, match="channel"):
        VAEConfig(channel=True)
    with pytest.raises(ValueError, match="unknown VAE preset"):
        vae_config("huge")


def test_diffusers_kwargs_mapping() -> None:
    kwargs = VAEConfig().diffusers_kwargs()
    assert kwargs["scaling_factor"] == 0.476986
    assert kwargs["temporal_compression_ratio"] == 4
    assert kwargs["block_out_channels"] == (128, 256, 512, 512)


def test_full_size_key_manifest_on_meta(fixtures_dir: Path) -> None:
    manifest = json.loads((fixtures_dir / MANIFEST).read_text())
    with torch.device("meta"):
        model = build_autoencoder(VAEConfig(**manifest["config"]))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == manifest["keys"]
    num_params = sum(p.numel() for p in model.parameters())
    assert num_params == manifest["num_parameters"] == 246_478_803


def test_latent_shape() -> None:
    config = vae_config("hunyuan-vae")
    assert config.latent_shape(65, 224, 288) == (16, 17, 28, 36)
    assert config.latent_shape(33, 224, 288) == (16, 9, 28, 36)
    with pytest.raises(ValueError, match="4k \\+ 1"):
        config.latent_shape(64, 224, 288)
    with pytest.raises(ValueError, match="multiples of 8"):
        config.latent_shape(65, 220, 288)


def test_reproduces_golden_fixture(golden, tiny_vae) -> None:
    tensors, _ = golden
    video = tensors["input_video"]
    mean, logvar = tiny_vae.posterior(video)
    latent = tiny_vae.encode(video)
    decoded = tiny_vae.decode(latent)
    errors = {
        "posterior_mean": (mean - tensors["posterior_mean"]).abs().max().item(),
        "posterior_logvar": (logvar - tensors["posterior_logvar"]).abs().max().item(),
        "latent_mode_scaled": (latent - tensors["latent_mode_scaled"]).abs().max().item(),
        "decoded": (decoded - tensors["decoded"]).abs().max().item(),
    }
    print("tiny VAE max abs errors vs fixture:", {k: f"{v:.3e}" for k, v in errors.items()})
    assert all(err < TOL for err in errors.values()), errors
    # decoding the stored latent (not our own) matches too
    decoded_ref = tiny_vae.decode(tensors["latent_mode_scaled"])
    assert (decoded_ref - tensors["decoded"]).abs().max().item() < TOL


def test_loaded_model_is_frozen_eval_and_configured(tiny_vae) -> None:
    assert not any(p.requires_grad for p in tiny_vae.parameters())
    assert not tiny_vae.model.training
    assert tiny_vae.config == vae_config("tiny")
    assert not tiny_vae.model.use_framewise_encoding  # temporal tiling off, as configured
    assert not tiny_vae.spatial_tiling


def test_codes_long_clip_in_one_piece(tiny_vae) -> None:
    # With temporal tiling on (diffusers' default), 65 frames / 17 latent frames would be
    # split into overlapping temporal tiles; the reference codes the whole clip at once.
    video = torch.rand(1, 3, 65, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latent = tiny_vae.encode(video)
    decoded = tiny_vae.decode(latent)
    with torch.no_grad():
        moments = tiny_vae.model.quant_conv(tiny_vae.model.encoder(video))
        expected_latent = 0.476986 * moments[:, :16]
        expected_video = tiny_vae.model.decoder(tiny_vae.model.post_quant_conv(latent / 0.476986))
    assert latent.shape == (1, 16, 17, 2, 2)
    assert decoded.shape == video.shape
    assert torch.allclose(latent, expected_latent, atol=1e-6)
    assert torch.allclose(decoded, expected_video, atol=1e-6)


def test_seeded_posterior_sample(golden, tiny_vae) -> None:
    video = golden[0]["input_video"]
    first = tiny_vae.encode(video, sample=True, generator=torch.Generator().manual_seed(3))
    again = tiny_vae.encode(video, sample=True, generator=torch.Generator().manual_seed(3))
    other = tiny_vae.encode(video, sample=True, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    mean, logvar = tiny_vae.posterior(video)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(first, 0.476986 * (mean + torch.exp(0.5 * logvar) * noise), atol=1e-6)


def test_spatial_tiling_switch(tiny_vae_file: Path, golden) -> None:
    video = golden[0]["input_video"]  # 32 x 48 frames
    small_tiles = VAEConfig(**{**golden[1], "sample_size": 32, "use_spatial_tiling": True})
    tiled = load_vae(tiny_vae_file, config=small_tiles)
    assert tiled.spatial_tiling
    plain = load_vae(tiny_vae_file, config=small_tiles, tiling=False)
    assert not plain.spatial_tiling
    tiled_latent, plain_latent = tiled.encode(video), plain.encode(video)
    assert tiled_latent.shape == plain_latent.shape == (1, 16, 3, 4, 6)
    assert torch.isfinite(tiled_latent).all()
    assert not torch.allclose(tiled_latent, plain_latent)  # the tiled path really ran
    tiled.set_spatial_tiling(False)
    assert torch.equal(tiled.encode(video), plain_latent)


def test_input_validation(tiny_vae) -> None:
    with pytest.raises(ValueError, match="4k \\+ 1"):
        tiny_vae.encode(torch.zeros(1, 3, 8, 32, 48))
    with pytest.raises(ValueError, match="expected video"):
        tiny_vae.encode(torch.zeros(3, 9, 32, 48))
    with pytest.raises(ValueError, match="expected latent"):
        tiny_vae.decode(torch.zeros(1, 8, 3, 4, 6))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.safetensors"):
        load_vae(tmp_path / "nothing.safetensors")


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    bad = tmp_path / "hunyuan_vae.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VAECheckpointError, match=r"hunyuan_vae\.safetensors"):
        load_vae(bad)


def test_key_mismatch_names_file_and_keys(golden, tmp_path: Path) -> None:
    tensors, config = golden
    weights = {
        k.removeprefix("weights/"): v for k, v in tensors.items() if k.startswith("weights/")
    }
    weights.pop("decoder.conv_in.conv.bias")
    weights["encoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.safetensors"
    save_file(weights, path, metadata={"config": json.dumps(config)})
    with pytest.raises(VAECheckpointError) as info:
        load_vae(path)
    message = str(info.value)
    assert "broken.safetensors" in message
    assert "decoder.conv_in.conv.bias" in message and "encoder.extra.weight" in message


def test_without_metadata_uses_full_preset(golden, tmp_path: Path) -> None:
    tensors, _ = golden
    weights = {
        k.removeprefix("weights/"): v for k, v in tensors.items() if k.startswith("weights/")
    }
    path = tmp_path / "plain.safetensors"
    save_file(weights, path)
    with pytest.raises(VAECheckpointError, match="wrong shapes"):
        load_vae(path)  # the full-size preset does not fit the tiny weights
    vae = load_vae(path, config=vae_config("tiny"))
    assert vae.config == vae_config("tiny")


def test_save_roundtrip(tiny_vae, tmp_path: Path) -> None:
    path = tmp_path / "out" / "hunyuan_vae.safetensors"
    save_vae(tiny_vae, path)
    reloaded = load_vae(path)
    assert reloaded.config == tiny_vae.config
    for key, value in tiny_vae.model.state_dict().items():
        assert torch.equal(reloaded.model.state_dict()[key], value), key
    assert [p.name for p in path.parent.iterdir()] == ["hunyuan_vae.safetensors"]


def test_load_in_bfloat16(tiny_vae_file: Path, golden) -> None:
    vae = load_vae(tiny_vae_file, dtype=torch.bfloat16)
    assert vae.dtype == torch.bfloat16
    latent = vae.encode(golden[0]["input_video"])
    assert latent.dtype == torch.float32
    assert (latent - golden[0]["latent_mode_scaled"]).abs().max().item() < 0.1
