"""The committed proxy checkpoints load through the ``sora_tta.models`` loaders."""

from __future__ import annotations

import hashlib

from sora_tta.io import read_json
from sora_tta.layout import CheckpointLayout
from sora_tta.models.loader import load_mmdit
from sora_tta.models.mmdit import mmdit_config
from sora_tta.models.pipeline import load_text_encoders_from
from sora_tta.models.vae import load_vae
from sora_tta.world.pretrain import PROXY_FILE
from sora_tta.world.proxy import proxy_checkpoint_dir


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
