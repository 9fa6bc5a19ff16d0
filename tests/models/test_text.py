"""Prompt format, T5/CLIP text encoders (tiny family folders) and the prompt-embedding cache."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sora_tta.layout import CheckpointLayout
from sora_tta.models.text import (
    NEGATIVE_PROMPT,
    PromptEmbeddingError,
    TextEncoderError,
    format_prompt,
    load_prompt_embedding,
    load_text_encoders,
    prompt_id,
    quiet_transformers,
    save_prompt_embedding,
)

PROMPT = "a person playing guitar. 24 FPS. 4 motion score."


@pytest.fixture(scope="module")
def layout(tiny_ckpt_dir: Path) -> CheckpointLayout:
    return CheckpointLayout(tiny_ckpt_dir)


@pytest.fixture(scope="module")
def encoders(layout: CheckpointLayout):
    return load_text_encoders(layout.t5, layout.clip, device="cpu", dtype=torch.float32)


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a person playing guitar", PROMPT),
        ("a person playing guitar.", PROMPT),
        ("a person playing guitar  ", PROMPT),
        ("Hello world!", "Hello world!. 24 FPS. 4 motion score."),
        ("push-ups", "push-ups. 24 FPS. 4 motion score."),
    ],
)
def test_format_prompt(caption: str, expected: str) -> None:
    assert format_prompt(caption) == expected


def test_format_prompt_suffix_values() -> None:
    assert format_prompt("rowing", fps=25, motion_score=7) == "rowing. 25 FPS. 7 motion score."
    with pytest.raises(ValueError, match="empty caption"):
        format_prompt("   ")


def test_negative_prompt_is_empty_without_suffixes() -> None:
    assert NEGATIVE_PROMPT == ""


def test_prompt_id() -> None:
    assert prompt_id("abc") == "a9993e364706816a"  # SHA-1 of "abc" starts a9993e36...
    assert prompt_id(PROMPT) != prompt_id(PROMPT + " ")
    assert len(prompt_id("")) == 16


def test_encode_shapes_and_dtype(encoders) -> None:
    txt, y_vec = encoders.encode([PROMPT, NEGATIVE_PROMPT])
    assert txt.shape == (2, 512, 48) and y_vec.shape == (2, 32)
    assert txt.dtype == y_vec.dtype == torch.float32
    assert torch.isfinite(txt).all() and torch.isfinite(y_vec).all()
    assert not torch.allclose(txt[0], txt[1]) and not torch.allclose(y_vec[0], y_vec[1])


def test_encode_is_deterministic_and_batch_independent(encoders, layout) -> None:
    txt, y_vec = encoders.encode([PROMPT, "rowing. 24 FPS. 4 motion score."])
    txt_single, y_single = encoders.encode([PROMPT])
    assert torch.allclose(txt[:1], txt_single, atol=1e-6)
    assert torch.allclose(y_vec[:1], y_single, atol=1e-6)
    fresh = load_text_encoders(layout.t5, layout.clip)
    txt_fresh, y_fresh = fresh.encode([PROMPT])
    assert torch.equal(txt_fresh, txt_single) and torch.equal(y_fresh, y_single)


def test_t5_runs_on_512_tokens_without_attention_mask(encoders) -> None:
    ids = encoders.tokenize_t5([PROMPT])
    assert ids.shape == (1, 512)
    assert (ids == encoders.t5_tokenizer.pad_token_id).sum() > 400  # mostly padding
    txt, _ = encoders.encode([PROMPT])
    with torch.no_grad():
        maskless = encoders.t5(input_ids=ids).last_hidden_state
        masked = encoders.t5(
            input_ids=ids, attention_mask=(ids != encoders.t5_tokenizer.pad_token_id).long()
        ).last_hidden_state
    assert torch.equal(txt, maskless)
    assert not torch.allclose(masked, maskless, atol=1e-3)  # the mask would matter


def test_t5_truncates_long_prompts(encoders) -> None:
    long_prompt = " ".join(["guitar"] * 800)
    ids = encoders.tokenize_t5([long_prompt])
    assert ids.shape == (1, 512)
    assert ids[0, -1].item() == encoders.t5_tokenizer.eos_token_id
    txt, _ = encoders.encode([long_prompt])
    assert txt.shape == (1, 512, 48)


def test_clip_uses_77_tokens_and_pooled_output(encoders) -> None:
    ids = encoders.tokenize_clip([PROMPT])
    assert ids.shape == (1, 77)
    eos = encoders.clip_tokenizer.eos_token_id
    first_eos = int((ids[0] == eos).nonzero()[0])
    _, y_vec = encoders.encode([PROMPT])
    with torch.no_grad():
        hidden = encoders.clip(input_ids=ids).last_hidden_state
    assert torch.allclose(y_vec[0], hidden[0, first_eos], atol=1e-6)


def test_encode_rejects_non_lists(encoders) -> None:
    with pytest.raises(TypeError):
        encoders.encode(PROMPT)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encoders.encode([])


def test_missing_folders_are_named(layout: CheckpointLayout, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-t5"):
        load_text_encoders(tmp_path / "no-t5", layout.clip)
    with pytest.raises(FileNotFoundError, match="no-clip"):
        load_text_encoders(layout.t5, tmp_path / "no-clip")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_text_encoders(layout.t5, empty)


def test_folder_without_weights_is_an_error(layout: CheckpointLayout, tmp_path: Path) -> None:
    broken = tmp_path / "t5"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((layout.t5 / name).read_bytes())
    with pytest.raises(TextEncoderError, match=re.escape(str(broken))):
        load_text_encoders(broken, layout.clip)


def test_quiet_transformers_restores_verbosity() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(logging.INFO)
    with quiet_transformers():
        assert hf_logging.get_verbosity() == logging.ERROR
    assert hf_logging.get_verbosity() == logging.INFO
    hf_logging.set_verbosity_warning()


def test_prompt_embedding_roundtrip(tmp_path: Path) -> None:
    txt = torch.randn(1, 512, 48)
    y_vec = torch.randn(1, 32)
    path = tmp_path / "prompts" / f"{prompt_id(PROMPT)}.safetensors"
    save_prompt_embedding(path, PROMPT, txt, y_vec)
    prompt, txt_back, y_back = load_prompt_embedding(path)
    assert prompt == PROMPT
    assert torch.equal(txt_back, txt) and torch.equal(y_back, y_vec)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    save_prompt_embedding(path, NEGATIVE_PROMPT, txt, y_vec)  # empty prompt survives too
    assert load_prompt_embedding(path)[0] == ""


def test_prompt_embedding_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="txt must have shape"):
        save_prompt_embedding(
            tmp_path / "a.safetensors", "p", torch.zeros(512, 48), torch.zeros(1, 32)
        )
    with pytest.raises(ValueError, match="y_vec must have shape"):
        save_prompt_embedding(
            tmp_path / "a.safetensors", "p", torch.zeros(1, 5, 4), torch.zeros(32)
        )
    with pytest.raises(PromptEmbeddingError, match=r"nothing\.safetensors"):
        load_prompt_embedding(tmp_path / "nothing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 16)
    with pytest.raises(PromptEmbeddingError, match=r"garbage\.safetensors"):
        load_prompt_embedding(garbage)
    no_meta = tmp_path / "no_meta.safetensors"
    save_file({"txt": torch.zeros(1, 5, 4), "y_vec": torch.zeros(1, 3)}, no_meta)
    with pytest.raises(PromptEmbeddingError, match="no 'prompt'"):
        load_prompt_embedding(no_meta)
    no_vec = tmp_path / "no_vec.safetensors"
    save_file({"txt": torch.zeros(1, 5, 4)}, no_vec, metadata={"prompt": "p"})
    with pytest.raises(PromptEmbeddingError, match="missing tensors \\['y_vec'\\]"):
        load_prompt_embedding(no_vec)


def test_weights_missing_from_the_file_are_an_error(
    layout: CheckpointLayout, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    partial = tmp_path / "t5"
    partial.mkdir()
    for source in layout.t5.iterdir():
        (partial / source.name).write_bytes(source.read_bytes())
    weights = load_file(partial / "model.safetensors")
    del weights["encoder.final_layer_norm.weight"]
    save_file(weights, partial / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(TextEncoderError, match=r"encoder\.final_layer_norm\.weight"):
        load_text_encoders(partial, layout.clip)
