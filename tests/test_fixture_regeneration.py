"""The committed golden fixtures are what the reference code produces (needs its checkout).

Set ``SORA_TTA_REFERENCE_CHECKOUT`` to a checkout of hpcaitech/Open-Sora at the pinned commit
(``tests/fixtures/reference/README.md``); without it the test is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

CHECKOUT_VARIABLE = "SORA_TTA_REFERENCE_CHECKOUT"


def _load_regenerate(fixtures_dir: Path):
    path = fixtures_dir / "regenerate.py"
    spec = importlib.util.spec_from_file_location("regenerate_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_committed_fixture_is_listed_by_the_script(fixtures_dir: Path):
    regenerate = _load_regenerate(fixtures_dir)
    committed = {p.name for p in fixtures_dir.iterdir() if p.suffix in {".json", ".safetensors"}}
    assert committed == set(regenerate.FIXTURE_FILES)


def test_compare_catches_a_changed_tensor(fixtures_dir: Path, tmp_path: Path):
    regenerate = _load_regenerate(fixtures_dir)
    for name in regenerate.FIXTURE_FILES:
        shutil.copy(fixtures_dir / name, tmp_path / name)
    assert max(regenerate.compare(fixtures_dir, tmp_path).values()) == 0.0
    path = tmp_path / "mmdit_tiny_forward.safetensors"
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(path)
    tensors["output"] = tensors["output"] + 2e-6
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(AssertionError, match=r"mmdit_tiny_forward\.safetensors: max abs"):
        regenerate.compare(fixtures_dir, tmp_path)


@pytest.mark.slow
def test_regenerated_fixtures_equal_committed(fixtures_dir: Path, tmp_path: Path):
    checkout = os.environ.get(CHECKOUT_VARIABLE)
    if not checkout:
        pytest.skip(
            f"set {CHECKOUT_VARIABLE} to a checkout of hpcaitech/Open-Sora at the pinned commit "
            "to rebuild the golden fixtures from the reference code "
            "(see tests/fixtures/reference/README.md)"
        )
    pytest.importorskip("einops", reason="the reference modules import einops: pip install einops")
    regenerate = _load_regenerate(fixtures_dir)
    regenerate.regenerate(Path(checkout), tmp_path)
    differences = regenerate.compare(tmp_path, fixtures_dir, atol=1e-6)
    print("max abs difference per fixture:", differences)
