"""Fixtures shared by every test folder: the golden reference and the tiny checkpoint family.

The golden fixtures live in ``tests/fixtures/reference/`` (what each file holds, how it was
made and how to regenerate it: ``tests/fixtures/reference/README.md``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures" / "reference"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Path of the golden fixtures folder (committed with the repository)."""
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def mmdit_keys_file(fixtures_dir: Path) -> Path:
    """The key manifest of the official checkpoint ``Open_Sora_v2.safetensors``."""
    return fixtures_dir / "opensora_v2_mmdit_keys.json"


@pytest.fixture(scope="session")
def tiny_ckpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint family (seed 0) in the official layout, written once per session.

    Tests must treat it as read-only; a test that writes checkpoints makes its own.
    """
    from sora_tta.models.tiny import make_tiny_checkpoints

    out = tmp_path_factory.mktemp("tiny_ckpts")
    make_tiny_checkpoints(out, seed=0)
    return out
