"""LPIPS construction without downloads: weights check, trunk loading, random test backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from sora_tta.evaluation import lpips_model


@pytest.fixture(scope="module")
def random_model() -> torch.nn.Module:
    return lpips_model.build_lpips("random", seed=0)


def _clips(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(5, 32, 48, 3), dtype=np.uint8)
    b = rng.integers(0, 256, size=(5, 32, 48, 3), dtype=np.uint8)
    return a, b


def test_identical_frames_give_zero(random_model: torch.nn.Module) -> None:
    a, _ = _clips(0)
    assert np.all(lpips_model.LpipsScorer(random_model)(a, a) == 0.0)


def test_different_frames_positive_and_symmetric(random_model: torch.nn.Module) -> None:
    a, b = _clips(1)
    scorer = lpips_model.LpipsScorer(random_model)
    ab, ba = scorer(a, b), scorer(b, a)
    assert ab.shape == (5,) and np.all(ab > 0)
    assert np.allclose(ab, ba, rtol=1e-5)


def test_batching_does_not_change_values(random_model: torch.nn.Module) -> None:
    a, b = _clips(2)
    whole = lpips_model.LpipsScorer(random_model, batch_size=16)(a, b)
    pieces = lpips_model.LpipsScorer(random_model, batch_size=2)(a, b)
    assert np.allclose(whole, pieces, rtol=1e-5, atol=1e-7)


def test_random_backbone_is_seeded(random_model: torch.nn.Module) -> None:
    a, b = _clips(3)
    same = lpips_model.LpipsScorer(lpips_model.build_lpips("random", seed=0))(a, b)
    other = lpips_model.LpipsScorer(lpips_model.build_lpips("random", seed=1))(a, b)
    assert np.array_equal(lpips_model.LpipsScorer(random_model)(a, b), same)
    assert not np.allclose(same, other)


def test_random_backbone_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    lpips_model.build_lpips("random", seed=7)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "env",
    [{}, {"TORCH_HOME": "t"}, {"XDG_CACHE_HOME": "x"}, {"TORCH_HOME": "t", "XDG_CACHE_HOME": "x"}],
)
def test_weights_path_follows_torch_hub(tmp_path, monkeypatch, env) -> None:
    """The torch-free path (used by the workflow's preflight) is torch.hub's folder."""
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / value))
    hub = Path(torch.hub.get_dir())
    assert lpips_model.alexnet_weights_path() == hub / "checkpoints" / lpips_model.ALEXNET_FILE


def test_missing_alexnet_weights_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / lpips_model.ALEXNET_FILE
    assert lpips_model.alexnet_weights_path() == expected
    assert expected.parent.parent == Path(torch.hub.get_dir())
    with pytest.raises(lpips_model.LpipsWeightsError) as info:
        lpips_model.build_lpips("alexnet")
    message = str(info.value)
    assert str(expected) in message and "TORCH_HOME" in message and "\n" not in message


def test_corrupt_alexnet_weights_rejected(tmp_path: Path) -> None:
    path = tmp_path / lpips_model.ALEXNET_FILE
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(lpips_model.LpipsWeightsError, match="SHA-256"):
        lpips_model.check_alexnet_weights(path)


def test_trunk_loads_torchvision_alexnet_features() -> None:
    model = lpips_model.build_lpips("random", seed=0)
    torch.manual_seed(5)
    state = torchvision.models.alexnet(weights=None).state_dict()
    lpips_model.load_alexnet_trunk(model, state)
    loaded = model.net.state_dict()
    assert len(loaded) == 10  # 5 convolutions, weight and bias each
    for name, tensor in loaded.items():
        _, index, kind = name.split(".")
        assert torch.equal(tensor, state[f"features.{index}.{kind}"])


def test_trunk_loading_rejects_incomplete_weights() -> None:
    model = lpips_model.build_lpips("random", seed=0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    del state["features.3.weight"]
    with pytest.raises(KeyError, match=r"features\.3\.weight"):
        lpips_model.load_alexnet_trunk(model, state)
    state = torchvision.models.alexnet(weights=None).state_dict()
    state["features.0.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="shape"):
        lpips_model.load_alexnet_trunk(model, state)


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="backbone"):
        lpips_model.build_lpips("vgg")
