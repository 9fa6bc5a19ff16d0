"""Unit tests of sora_tta.study.preflight: every missing file in one message, scopes,
smoke clips."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_tta.study import (
    options,
    preflight,
)


def make_checkpoint_tree(root: Path) -> None:
    (root / "google/t5-v1_1-xxl").mkdir(parents=True)
    (root / "openai/clip-vit-large-patch14").mkdir(parents=True)
    for name in (
        "Open_Sora_v2.safetensors",
        "hunyuan_vae.safetensors",
        "google/t5-v1_1-xxl/config.json",
        "google/t5-v1_1-xxl/pytorch_model.bin",
        "google/t5-v1_1-xxl/spiece.model",
        "openai/clip-vit-large-patch14/config.json",
        "openai/clip-vit-large-patch14/model.safetensors",
        "openai/clip-vit-large-patch14/vocab.json",
        "openai/clip-vit-large-patch14/merges.txt",
    ):
        (root / name).write_bytes(b"x")


def real_config(shipped_config, tmp_path: Path, defaults: bool = False) -> dict:
    """config/config.yaml with its data and checkpoint folders under ``tmp_path``."""
    config = shipped_config("config.yaml", defaults=defaults)
    config["data"] = {"ucf_root": str(tmp_path / "UCF-101"), "splits_dir": str(tmp_path / "splits")}
    config["checkpoints"] = {"dir": str(tmp_path / "ckpts")}
    return config


def test_preflight_lists_everything_missing_in_one_message(shipped_config, tmp_path):
    config = real_config(shipped_config, tmp_path)
    lpips = str(tmp_path / "torch/hub/checkpoints/alexnet-owt-7be5be79.pth")
    missing = preflight.missing_requirements(
        preflight.required_files(config, lpips_path=lambda: lpips)
    )
    message = preflight.preflight_message(missing, "config/config.yaml")
    assert message.startswith("preflight: 13 required file(s) missing for config/config.yaml")
    for needle in (
        "UCF-101 video folder",
        "splits/classInd.txt",
        "splits/testlist01.txt",
        "splits/trainlist01.txt",
        "ckpts/Open_Sora_v2.safetensors",
        "ckpts/hunyuan_vae.safetensors",
        "T5 text encoder weights",
        "t5-v1_1-xxl/tokenizer.json or",
        "CLIP text encoder tokenizer",
        "clip-vit-large-patch14/vocab.json + ",
        "alexnet-owt-7be5be79.pth",
    ):
        assert needle in message


def test_preflight_passes_when_everything_exists(shipped_config, tmp_path):
    config = real_config(shipped_config, tmp_path)
    make_checkpoint_tree(tmp_path / "ckpts")
    (tmp_path / "UCF-101").mkdir()
    (tmp_path / "splits").mkdir()
    for name in ("classInd.txt", "testlist01.txt", "trainlist01.txt"):
        (tmp_path / "splits" / name).write_text("")
    lpips = tmp_path / "alexnet.pth"
    lpips.write_bytes(b"x")
    reqs = preflight.required_files(config, lpips_path=lambda: str(lpips))
    assert preflight.missing_requirements(reqs) == []
    # one half of a two-file tokenizer is not a tokenizer
    (tmp_path / "ckpts/openai/clip-vit-large-patch14/merges.txt").unlink()
    missing = preflight.missing_requirements(reqs)
    assert [r.what for r in missing] == ["CLIP text encoder tokenizer"]


def test_preflight_checks_the_fvd_weights_only_when_set(shipped_config, tmp_path):
    """FVD is optional: no weights is no requirement; set weights must exist."""
    config = real_config(shipped_config, tmp_path, defaults=True)
    assert config["evaluation"]["fvd_weights"] is None
    unset = preflight.required_files(config, lpips_path=lambda: "unused")
    assert not any("FVD" in r.what for r in unset)
    weights = tmp_path / "ckpts" / "i3d_torchscript.pt"
    config["evaluation"]["fvd_weights"] = str(weights)
    reqs = preflight.required_files(config, lpips_path=lambda: "unused")
    (fvd,) = [r for r in reqs if "FVD" in r.what]
    assert fvd.describe() == f"FVD I3D weights (evaluation.fvd_weights): {weights}"
    message = preflight.preflight_message(
        preflight.missing_requirements([fvd]), "config/config.yaml"
    )
    assert str(weights) in message
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"x")
    assert preflight.missing_requirements([fvd]) == []
    # the smoke target needs no metric weights
    smoke = preflight.required_files(config, scope="checkpoints", lpips_path=lambda: "unused")
    assert not any("FVD" in r.what for r in smoke)
    assert options.fvd_options(config).startswith(f"--weights {weights}")


def test_preflight_scopes_and_demo(shipped_config, tmp_path):
    config = real_config(shipped_config, tmp_path)
    smoke = preflight.required_files(config, scope="checkpoints", lpips_path=lambda: "unused")
    assert {r.what.split()[0] for r in smoke} == {"Open-Sora", "HunyuanVideo", "T5", "CLIP"}
    # the demo builds its data and checkpoints itself and needs no LPIPS weights
    assert (
        preflight.required_files(
            shipped_config("demo.yaml"), lpips_path=lambda: pytest.fail("asked")
        )
        == []
    )
