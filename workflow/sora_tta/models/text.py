"""Text conditioning of Open-Sora v2.0: prompt format, T5 + CLIP encoders, prompt-embedding cache.

The encoders are only needed to turn each distinct prompt into ``txt`` (T5 hidden states) and
``y_vec`` (CLIP pooled output) once; the results are cached in one safetensors file per prompt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from sora_tta.io import atomic_path
from sora_tta.prompts import NEGATIVE_PROMPT, format_prompt, prompt_id

__all__ = [
    "NEGATIVE_PROMPT",
    "PromptEmbeddingError",
    "TextEncoderError",
    "TextEncoders",
    "format_prompt",
    "load_prompt_embedding",
    "load_text_encoders",
    "prompt_id",
    "save_prompt_embedding",
]

logger = logging.getLogger(__name__)

T5_MAX_LENGTH = 512
CLIP_MAX_LENGTH = 77


class TextEncoderError(ValueError):
    """A text-encoder folder cannot be loaded (the message names the folder)."""


class PromptEmbeddingError(ValueError):
    """A prompt-embedding file is missing or malformed."""


@dataclass
class TextEncoders:
    """T5 and CLIP text encoders with their tokenizers, on one device.

    ``encode`` reproduces the reference: T5 input padded/truncated to exactly ``t5_max_length``
    tokens and run without an attention mask (padding tokens are attended to), its
    ``last_hidden_state``; CLIP padded to 77 tokens, its ``pooler_output``.
    """

    t5: Any
    t5_tokenizer: Any
    clip: Any
    clip_tokenizer: Any
    t5_max_length: int = T5_MAX_LENGTH
    clip_max_length: int = CLIP_MAX_LENGTH

    @property
    def device(self) -> torch.device:
        """Device of the T5 weights."""
        return next(self.t5.parameters()).device

    def tokenize_t5(self, prompts: list[str]) -> torch.Tensor:
        """T5 token ids ``(B, t5_max_length)``."""
        return self.t5_tokenizer(
            prompts,
            padding="max_length",
            max_length=self.t5_max_length,
            truncation=True,
            return_tensors="pt",
        )["input_ids"]

    def tokenize_clip(self, prompts: list[str]) -> torch.Tensor:
        """CLIP token ids ``(B, clip_max_length)``."""
        return self.clip_tokenizer(
            prompts,
            padding="max_length",
            max_length=self.clip_max_length,
            truncation=True,
            return_tensors="pt",
        )["input_ids"]

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed ``prompts``: ``txt`` (B, t5_max_length, D) and ``y_vec`` (B, D_vec), float32."""
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise TypeError("TextEncoders.encode expects a non-empty list of strings")
        t5_ids = self.tokenize_t5(prompts).to(self.device)
        txt = self.t5(input_ids=t5_ids, attention_mask=None).last_hidden_state
        clip_ids = self.tokenize_clip(prompts).to(next(self.clip.parameters()).device)
        y_vec = self.clip(input_ids=clip_ids, attention_mask=None).pooler_output
        return txt.float(), y_vec.float()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports (warnings) for the block."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _require_model_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: {what} folder not found")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: {what} folder has no config.json")


def _load_model(model_class: Any, folder: Path, dtype: torch.dtype) -> Any:
    """``from_pretrained`` from a local folder; weights missing from the files are an error.

    Unexpected weights are expected (the decoder of T5, the vision tower of CLIP) and only
    logged; a missing one would silently stay randomly initialised.
    """
    try:
        model, info = model_class.from_pretrained(
            folder, local_files_only=True, dtype=dtype, output_loading_info=True
        )
    except (OSError, ValueError) as err:
        raise TextEncoderError(f"{folder}: cannot load {model_class.__name__} ({err})") from err
    missing = sorted(info.get("missing_keys", []))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise TextEncoderError(f"{folder}: {len(missing)} weights missing ({shown})")
    logger.debug(
        "%s from %s: ignored %d unused weights",
        model_class.__name__,
        folder,
        len(info.get("unexpected_keys", [])),
    )
    return model


def load_text_encoders(
    t5_dir: str | os.PathLike[str],
    clip_dir: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    t5_max_length: int = T5_MAX_LENGTH,
) -> TextEncoders:
    """Load T5 and CLIP text encoders and tokenizers from local Hugging Face folders only.

    The folders may hold the full models (``T5ForConditionalGeneration``, ``CLIPModel``) as
    published; only the encoder / text tower is kept. Nothing is downloaded.

    Raises:
        FileNotFoundError: a folder (or its ``config.json``) is missing.
        TextEncoderError: a folder cannot be loaded or lacks weights.
    """
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    t5_dir, clip_dir = Path(t5_dir), Path(clip_dir)
    _require_model_dir(t5_dir, "T5 encoder")
    _require_model_dir(clip_dir, "CLIP text encoder")
    start = time.perf_counter()
    with quiet_transformers():
        tokenizers = []
        for folder in (t5_dir, clip_dir):
            try:
                tokenizers.append(AutoTokenizer.from_pretrained(folder, local_files_only=True))
            except (OSError, ValueError) as err:
                raise TextEncoderError(f"{folder}: cannot load tokenizer ({err})") from err
        t5 = _load_model(T5EncoderModel, t5_dir, dtype)
        clip = _load_model(CLIPTextModel, clip_dir, dtype)
    for model in (t5, clip):
        model.to(device).eval().requires_grad_(False)
    logger.info(
        "loaded text encoders %s + %s (%s, %s) in %.2f s",
        t5_dir,
        clip_dir,
        device,
        str(dtype).removeprefix("torch."),
        time.perf_counter() - start,
    )
    return TextEncoders(t5, tokenizers[0], clip, tokenizers[1], t5_max_length=t5_max_length)


def save_prompt_embedding(
    path: str | os.PathLike[str], prompt: str, txt: torch.Tensor, y_vec: torch.Tensor
) -> None:
    """Write ``txt`` (1, S, D) and ``y_vec`` (1, D_vec) with metadata ``prompt``, atomically."""
    if txt.ndim != 3 or txt.shape[0] != 1:
        raise ValueError(f"{path}: txt must have shape (1, S, D), got {tuple(txt.shape)}")
    if y_vec.ndim != 2 or y_vec.shape[0] != 1:
        raise ValueError(f"{path}: y_vec must have shape (1, D_vec), got {tuple(y_vec.shape)}")
    tensors = {
        "txt": txt.detach().to("cpu").contiguous(),
        "y_vec": y_vec.detach().to("cpu").contiguous(),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"prompt": prompt})


def load_prompt_embedding(path: str | os.PathLike[str]) -> tuple[str, torch.Tensor, torch.Tensor]:
    """Read a file written by :func:`save_prompt_embedding`: ``(prompt, txt, y_vec)`` on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise PromptEmbeddingError(f"{path}: prompt embedding not found")
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            keys = set(handle.keys())
            missing = sorted({"txt", "y_vec"} - keys)
            if missing:
                raise PromptEmbeddingError(f"{path}: missing tensors {missing}")
            txt, y_vec = handle.get_tensor("txt"), handle.get_tensor("y_vec")
    except (SafetensorError, OSError) as err:
        raise PromptEmbeddingError(f"{path}: not a readable safetensors file ({err})") from err
    if "prompt" not in metadata:
        raise PromptEmbeddingError(f"{path}: metadata has no 'prompt'")
    if txt.ndim != 3 or txt.shape[0] != 1 or y_vec.ndim != 2 or y_vec.shape[0] != 1:
        raise PromptEmbeddingError(
            f"{path}: expected txt (1, S, D) and y_vec (1, D_vec), "
            f"got {tuple(txt.shape)} and {tuple(y_vec.shape)}"
        )
    return metadata["prompt"], txt, y_vec
