"""The tiny checkpoint family: layout, determinism, and loading through the real loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sora_tta.data.captions import class_to_action
from sora_tta.data.ucf101 import CLASS_NAMES
from sora_tta.layout import TINY_FAMILY_FILE, CheckpointLayout
from sora_tta.models.loader import load_mmdit
from sora_tta.models.text import NEGATIVE_PROMPT, format_prompt, load_text_encoders
from sora_tta.models.vae import load_vae, vae_config
from sora_tta.sampling import make_img_ids, make_txt_ids
from sora_tta.world.tiny import (
    caption_words,
    init_mmdit,
    make_tiny_checkpoints,
    tiny_mmdit_config,
)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> tuple[CheckpointLayout, dict]:
    root = tmp_path_factory.mktemp("family")
    return CheckpointLayout(root), make_tiny_checkpoints(root, seed=0)


def test_layout_and_description(family) -> None:
    layout, description = family
    for path in (layout.mmdit, layout.vae, layout.root / TINY_FAMILY_FILE):
        assert path.is_file(), path
    for folder in (layout.t5, layout.clip):
        assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
        assert (folder / "model.safetensors").is_file()
    on_disk = json.loads((layout.root / TINY_FAMILY_FILE).read_text())
    assert on_disk == json.loads(json.dumps(description))
    assert on_disk["seed"] == 0
    assert on_disk["mmdit"] == tiny_mmdit_config().to_dict()
    assert on_disk["vae"] == vae_config("tiny").to_dict()
    assert set(on_disk["sha256"]) == set(_files(layout.root)) - {TINY_FAMILY_FILE}
    hidden = [p for p in layout.root.rglob(".*")]
    assert hidden == []  # no temporary leftovers


def test_same_seed_same_bytes_and_rerun_is_idempotent(family, tmp_path: Path) -> None:
    layout, description = family
    again = make_tiny_checkpoints(tmp_path / "a", seed=0)
    assert again == description
    assert _files(tmp_path / "a") == _files(layout.root)
    make_tiny_checkpoints(tmp_path / "a", seed=0)  # overwrite in place
    assert _files(tmp_path / "a") == _files(layout.root)
    assert list((tmp_path / "a").rglob(".*")) == []


def test_other_seed_other_weights(family, tmp_path: Path) -> None:
    _, description = family
    other = make_tiny_checkpoints(tmp_path / "b", seed=1)
    for name in (
        "Open_Sora_v2.safetensors",
        "hunyuan_vae.safetensors",
        "google/t5-v1_1-xxl/model.safetensors",
        "openai/clip-vit-large-patch14/model.safetensors",
    ):
        assert other["sha256"][name] != description["sha256"][name], name
    assert (
        other["sha256"]["google/t5-v1_1-xxl/tokenizer.json"]
        == (description["sha256"]["google/t5-v1_1-xxl/tokenizer.json"])
    )


def test_loads_through_the_real_loaders(family) -> None:
    layout, _ = family
    mmdit = load_mmdit(layout.mmdit, device="cpu", dtype=torch.float32)
    assert mmdit.config == tiny_mmdit_config()
    vae = load_vae(layout.vae)
    assert vae.config == vae_config("tiny")
    encoders = load_text_encoders(layout.t5, layout.clip)
    txt, y_vec = encoders.encode([format_prompt("rowing"), NEGATIVE_PROMPT])
    assert txt.shape == (2, 512, mmdit.config.context_in_dim)
    assert y_vec.shape == (2, mmdit.config.vec_in_dim)
    # the VAE keeps the real compression: 9 frames of 32x48 -> 3 latent frames of 4x6
    video = torch.zeros(1, 3, 9, 32, 48)
    assert vae.encode(video).shape == (1, 16, 3, 4, 6)


def test_mmdit_is_not_degenerate() -> None:
    model = init_mmdit(tiny_mmdit_config(), seed=0)
    assert model.cond_in.weight.abs().min() > 0
    assert model.final_layer.linear.weight.abs().min() > 0
    gen = torch.Generator().manual_seed(0)
    frames, height, width = 2, 4, 4
    tokens = frames * (height // 2) * (width // 2)
    inputs = {
        "img": torch.randn(1, tokens, 64, generator=gen),
        "img_ids": make_img_ids(1, frames, height, width),
        "txt": torch.randn(1, 5, 48, generator=gen),
        "txt_ids": make_txt_ids(1, 5),
        "timesteps": torch.tensor([0.5]),
        "y_vec": torch.randn(1, 32, generator=gen),
        "cond": torch.randn(1, tokens, 68, generator=gen),
    }
    with torch.no_grad():
        base = model(**inputs)
        assert torch.isfinite(base).all() and base.std() > 0.1
        for name in ("img", "txt", "y_vec", "cond"):
            changed = dict(inputs, **{name: torch.zeros_like(inputs[name])})
            assert not torch.allclose(model(**changed), base, atol=1e-4), name
        later = model(**dict(inputs, timesteps=torch.tensor([0.9])))
        assert not torch.allclose(later, base, atol=1e-4)


def test_init_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    first = init_mmdit(tiny_mmdit_config(), seed=5).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    second = init_mmdit(tiny_mmdit_config(), seed=5).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_tokenizers_cover_every_ucf101_prompt(family) -> None:
    layout, _ = family
    encoders = load_text_encoders(layout.t5, layout.clip)
    t5_tok, clip_tok = encoders.t5_tokenizer, encoders.clip_tokenizer
    assert type(t5_tok).__name__ == "T5Tokenizer" and type(clip_tok).__name__ == "CLIPTokenizer"
    assert (t5_tok.pad_token_id, t5_tok.eos_token_id) == (0, 1)
    assert clip_tok.model_max_length == 77
    prompts = [format_prompt(class_to_action(name)) for name in CLASS_NAMES]
    t5_ids = t5_tok(prompts)["input_ids"]
    assert all(t5_tok.unk_token_id not in ids for ids in t5_ids)
    assert all(ids[-1] == t5_tok.eos_token_id for ids in t5_ids)
    # whole words are single pieces: "▁guitar" rather than letters
    assert t5_tok.tokenize("guitar") == ["▁guitar"]
    assert clip_tok.tokenize("Playing guitar") == ["playing</w>", "guitar</w>"]
    clip_ids = clip_tok(prompts)["input_ids"]
    eos = clip_tok.eos_token_id
    assert all(
        ids[0] == clip_tok.bos_token_id and ids.index(eos) == len(ids) - 1 for ids in clip_ids
    )


def test_caption_words() -> None:
    words = caption_words()
    assert words == sorted(set(words))
    assert {"guitar", "makeup", "fps", "motion", "score", "yo"} <= set(words)
