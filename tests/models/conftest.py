"""Shared fixtures for the model tests: the Open-Sora v2.0 golden fixtures, read.

``fixtures_dir`` and ``tiny_ckpt_dir`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

WEIGHTS_PREFIX = "weights/"
INPUT_PREFIX = "input/"


def read_fixture(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a fixture file."""
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata() or {}
    return load_file(path), metadata


def write_stripped_checkpoint(fixture: Path, out: Path) -> Path:
    """Write the ``weights/`` tensors of ``fixture`` (prefix removed) plus its config metadata."""
    tensors, metadata = read_fixture(fixture)
    weights = {
        k.removeprefix(WEIGHTS_PREFIX): v
        for k, v in tensors.items()
        if k.startswith(WEIGHTS_PREFIX)
    }
    save_file(weights, out, metadata={"config": metadata["config"]})
    return out


@pytest.fixture(scope="session")
def tiny_forward(fixtures_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of ``mmdit_tiny_forward.safetensors``."""
    return read_fixture(fixtures_dir / "mmdit_tiny_forward.safetensors")


@pytest.fixture(scope="session")
def tiny_forward_inputs(tiny_forward) -> dict[str, torch.Tensor]:
    """The forward arguments stored in the tiny forward fixture."""
    tensors, _ = tiny_forward
    return {
        k.removeprefix(INPUT_PREFIX): v for k, v in tensors.items() if k.startswith(INPUT_PREFIX)
    }


@pytest.fixture(scope="session")
def tiny_config_dict(tiny_forward) -> dict:
    """The tiny configuration stored in the fixture metadata."""
    return json.loads(tiny_forward[1]["config"])


@pytest.fixture(scope="session")
def tiny_checkpoint(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An official-format checkpoint (with ``config`` metadata) of the tiny fixture weights."""
    out = tmp_path_factory.mktemp("tiny_mmdit") / "Open_Sora_v2.safetensors"
    return write_stripped_checkpoint(fixtures_dir / "mmdit_tiny_forward.safetensors", out)
