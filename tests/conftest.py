"""Fixtures shared by every test folder: the golden reference and the tiny checkpoint family.

The reference folder is ``<repo>/../shared/reference`` (``README.md`` and ``fixtures/``);
set ``SORA_TTA_REFERENCE_DIR`` to another reference folder to override.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_fixtures_dir() -> Path:
    """The golden-fixture folder; fails the test with a hint when it is absent."""
    override = os.environ.get("SORA_TTA_REFERENCE_DIR")
    base = Path(override) if override else REPO_ROOT / ".." / "shared" / "reference"
    fixtures = (base / "fixtures").resolve()
    if not fixtures.is_dir():
        pytest.fail(
            f"golden fixtures not found at {fixtures}; set SORA_TTA_REFERENCE_DIR to the "
            "reference folder that holds fixtures/"
        )
    return fixtures


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Path of the golden fixtures folder."""
    return reference_fixtures_dir()


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
