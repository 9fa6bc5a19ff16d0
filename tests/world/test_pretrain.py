"""Proxy pretraining on a tiny budget: runs end to end, writes loadable official checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from sora_tta import cli
from sora_tta.io import read_json
from sora_tta.layout import CheckpointLayout
from sora_tta.models.mmdit import mmdit_config
from sora_tta.models.pipeline import load_models, load_text_encoders_from
from sora_tta.models.vae import vae_config
from sora_tta.world.pretrain import (
    I2V_HEAD,
    PROXY_FILE,
    T2V,
    V2V_HEAD,
    LatentSet,
    PretrainConfig,
    calibrate_scale,
    condition_for,
    pretrain_proxy,
)

# 16x16 frames, 9 frames (3 latent frames), one step per stage: seconds on a CPU.
TINY = PretrainConfig(
    minutes=5, seed=1, videos=2, height=16, width=16, frames=9, cond_frames=5, vae_window=5,
    vae_crop=(16, 16), vae_batch=1, mmdit_batch=2, vae_steps=1, mmdit_steps=2, log_every=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("proxy") / "ckpts"
    return out, pretrain_proxy(out, TINY)


def test_writes_official_layout_that_the_loaders_read(trained: tuple[Path, dict]) -> None:
    out, description = trained
    layout = CheckpointLayout(out)
    for path in (layout.mmdit, layout.vae, layout.t5, layout.clip, out / PROXY_FILE):
        assert path.exists(), path
    assert read_json(out / PROXY_FILE) == json.loads(json.dumps(description))
    assert description["vae"]["steps"] == 1 and description["mmdit"]["steps"] == 2
    assert len(description["mmdit"]["loss_curve"]) == 2
    bundle = load_models(out)
    assert bundle.mmdit.config == mmdit_config("tiny")
    assert bundle.vae.config.block_out_channels == vae_config("tiny").block_out_channels
    assert bundle.vae.config.scale_factor == description["vae"]["config"]["scale_factor"]
    encoders = load_text_encoders_from(out)
    txt, y_vec = encoders.encode(["a red stripes disc moving over a blue checker background"])
    assert txt.shape[-1] == bundle.mmdit.config.context_in_dim
    assert y_vec.shape[-1] == bundle.mmdit.config.vec_in_dim


@pytest.mark.slow
def test_same_seed_and_steps_same_weights(trained: tuple[Path, dict], tmp_path: Path) -> None:
    _, description = trained
    again = pretrain_proxy(tmp_path / "again", TINY)
    assert again["sha256"] == description["sha256"]
    other = pretrain_proxy(tmp_path / "other", dataclasses.replace(TINY, seed=2))
    assert (
        other["sha256"]["Open_Sora_v2.safetensors"]
        != description["sha256"]["Open_Sora_v2.safetensors"]
    )


def test_conditions_are_encoded_from_their_own_frames() -> None:
    x0 = torch.randn(1, 16, 5, 2, 2)
    latents = LatentSet(x0=x0, v2v=torch.randn(1, 16, 3, 2, 2), i2v=torch.randn(1, 16, 1, 2, 2))
    masks, ref = condition_for(T2V, latents, 0)
    assert not masks.any() and not ref.any()
    masks, ref = condition_for(I2V_HEAD, latents, 0)
    assert masks[0, 0, :, 0, 0].tolist() == [1, 0, 0, 0, 0]
    assert torch.equal(ref[:, :, 0], latents.i2v[:, :, 0]) and not ref[:, :, 1:].any()
    masks, ref = condition_for(V2V_HEAD, latents, 0)
    assert masks[0, 0, :, 0, 0].tolist() == [1, 1, 1, 0, 0]
    assert torch.equal(ref[:, :, :3], latents.v2v) and not ref[:, :, 3:].any()


def test_calibration_gives_unit_std_latents(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    vae = load_models(out).vae
    latents = LatentSet(torch.randn(2, 16, 3, 2, 2) * 5, torch.ones(2, 16, 2, 2, 2), torch.ones(1))
    calibrated, scaled = calibrate_scale(vae, latents)
    assert float(scaled.x0.std()) == pytest.approx(1.0, rel=1e-3)
    ratio = calibrated.config.scale_factor / vae.config.scale_factor
    assert torch.allclose(scaled.v2v, latents.v2v * ratio)


def test_bad_budget_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pretrain-proxy", "--out", "unused", "--minutes", "0"]) == 1
    assert "minutes must be positive" in capsys.readouterr().err
    with pytest.raises(ValueError, match="4k"):
        PretrainConfig(frames=10)
