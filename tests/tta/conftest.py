"""Shared fixtures of the TTA tests: the tiny checkpoint family, two synthetic clips, prompts.

Everything is built once per session from seeds (``make_tiny_checkpoints``), so the tests
run the real loaders, encoders, sampler and peft on CPU-sized models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from sora_tta.models import pipeline
from sora_tta.models.text import NEGATIVE_PROMPT, format_prompt, prompt_id, save_prompt_embedding
from sora_tta.tta.objective import AdaptationTarget

CAPTION = "a person playing guitar"


@pytest.fixture(scope="session")
def bundle(tiny_ckpt_dir: Path) -> pipeline.ModelBundle:
    """MMDiT + VAE of the tiny family on the CPU in float32 (shared: tests must not leak)."""
    return pipeline.load_models(tiny_ckpt_dir, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory, clip_maker) -> Path:
    """Two different 65-frame 32x48 moving-pattern clips, ``v_a.mkv`` and ``v_b.mkv``."""
    out = tmp_path_factory.mktemp("clips")
    clip_maker.write(out / "v_a.mkv", clip_maker.pattern())
    clip_maker.write(out / "v_b.mkv", clip_maker.pattern(shift=7))
    return out


@pytest.fixture(scope="session")
def prompt_dir(tiny_ckpt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prompt embeddings of :data:`CAPTION` and of the negative prompt (tiny encoders)."""
    out = tmp_path_factory.mktemp("prompts")
    encoders = pipeline.load_text_encoders_from(tiny_ckpt_dir)
    prompt = format_prompt(CAPTION)
    for name, text in ((prompt_id(prompt), prompt), ("negative", NEGATIVE_PROMPT)):
        txt, y_vec = encoders.encode([text])
        save_prompt_embedding(out / f"{name}.safetensors", text, txt, y_vec)
    return out


@pytest.fixture(scope="session")
def prompt_file(prompt_dir: Path) -> Path:
    """The caption's prompt-embedding file."""
    return prompt_dir / f"{prompt_id(format_prompt(CAPTION))}.safetensors"


@pytest.fixture(scope="session")
def clip_latent(bundle: pipeline.ModelBundle, clip_dir: Path) -> torch.Tensor:
    """Clean latent (1, 16, 9, 4, 6) of the first 33 frames of ``v_a``."""
    from sora_tta.data.video import read_frames

    condition = pipeline.encode_condition(bundle, read_frames(clip_dir / "v_a.mkv", 33))
    return condition.masked_ref[:, :, :9].clone()


@pytest.fixture(scope="session")
def clip_conditions(bundle: pipeline.ModelBundle, clip_dir: Path) -> dict[int, torch.Tensor]:
    """k -> the first 4(k-1)+1 frames of ``v_a`` encoded on their own, k = 1..9."""
    from sora_tta.data.video import read_frames

    frames = read_frames(clip_dir / "v_a.mkv", 33)
    return {k: pipeline.encode_clean_frames(bundle, frames, k) for k in range(1, 10)}


@pytest.fixture(scope="session")
def target(clip_latent: torch.Tensor, clip_conditions: dict[int, torch.Tensor]) -> AdaptationTarget:
    """A cheap adaptation target: the clip latent with short random text embeddings.

    The tiny T5 output is 512 tokens; 8 random tokens keep the unit tests fast while the
    model, objective and optimiser code paths stay the real ones.
    """
    gen = torch.Generator().manual_seed(0)
    return AdaptationTarget(
        x0=clip_latent,
        txt=torch.randn(1, 8, 48, generator=gen),
        y_vec=torch.randn(1, 32, generator=gen),
        txt_neg=torch.randn(1, 8, 48, generator=gen),
        y_neg=torch.randn(1, 32, generator=gen),
        conditions=clip_conditions,
    )


def _state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(raw.numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def state_hash() -> Callable[[torch.nn.Module], str]:
    """``state_hash(model)``: SHA-256 over every tensor of the state dict (names, dtypes, bytes)."""
    return _state_hash
