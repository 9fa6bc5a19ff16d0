"""The committed proxy checkpoints load through the ``sora_tta.models`` loaders."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from sora_tta.cli import main
from sora_tta.io import read_json
from sora_tta.layout import CheckpointLayout
from sora_tta.models.loader import load_mmdit
from sora_tta.models.mmdit import mmdit_config
from sora_tta.models.pipeline import load_text_encoders_from
from sora_tta.models.vae import load_vae
from sora_tta.world.proxy import (
    PROXY_FILE,
    ProxyCheckpointError,
    copy_proxy_checkpoints,
    proxy_checkpoint_dir,
)


def test_committed_checkpoints_load_and_match_their_record() -> None:
    root = proxy_checkpoint_dir()
    layout = CheckpointLayout(root)
    record = read_json(root / PROXY_FILE)
    for path in (layout.mmdit, layout.vae):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"][path.name]
    mmdit = load_mmdit(layout.mmdit)
    assert mmdit.config == mmdit_config("tiny")
    assert sum(p.numel() for p in mmdit.parameters()) == record["mmdit"]["parameters"]
    vae = load_vae(layout.vae)
    assert vae.config.to_dict() == record["vae"]["config"]
    assert record["vae"]["steps"] > 0 and record["mmdit"]["steps"] > 0
    encoders = load_text_encoders_from(root)
    txt, y_vec = encoders.encode(["a blue stripes disc moving over a red checker background"])
    assert (txt.shape[-1], y_vec.shape[-1]) == (mmdit.config.context_in_dim, 32)


def test_checkpoint_folder_is_small() -> None:
    total = sum(p.stat().st_size for p in proxy_checkpoint_dir().rglob("*") if p.is_file())
    assert total < 8 * 2**20


def test_copy_is_verified_and_complete(tmp_path: Path) -> None:
    assert main(["proxy-checkpoints", str(tmp_path / "ckpts")]) == 0
    source = proxy_checkpoint_dir()
    copied = sorted(p.relative_to(tmp_path / "ckpts") for p in (tmp_path / "ckpts").rglob("*"))
    assert copied == sorted(p.relative_to(source) for p in source.rglob("*"))
    assert (tmp_path / "ckpts" / PROXY_FILE).read_bytes() == (source / PROXY_FILE).read_bytes()


def test_damaged_weights_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(proxy_checkpoint_dir(), damaged)
    layout = CheckpointLayout(damaged)
    data = bytearray(layout.vae.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern changed in the last weight
    layout.vae.write_bytes(bytes(data))
    with pytest.raises(ProxyCheckpointError, match=r"hunyuan_vae\.safetensors"):
        copy_proxy_checkpoints(tmp_path / "out", source=damaged)
    assert not (tmp_path / "out").exists()
    (damaged / PROXY_FILE).unlink()
    with pytest.raises(ProxyCheckpointError, match="unfinished"):
        copy_proxy_checkpoints(tmp_path / "out", source=damaged)
