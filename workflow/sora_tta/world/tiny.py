"""A tiny, seeded checkpoint family in the official Open-Sora v2.0 layout.

``make_tiny_checkpoints(out_dir)`` writes every file the real ``ckpts/`` folder has, at sizes
that run end to end on a CPU in seconds, through the same loaders as the real weights:

- ``Open_Sora_v2.safetensors``: MMDiT ``tiny`` preset (hidden 64, 2 + 2 blocks), random but
  non-degenerate (``cond_in`` and the final layer are not zero, so outputs depend on inputs);
- ``hunyuan_vae.safetensors``: the ``tiny`` VAE (still 8x spatial, 4x causal temporal);
- ``google/t5-v1_1-xxl/``: a tiny ``T5ForConditionalGeneration`` (encoder width = MMDiT
  ``context_in_dim``) with a Unigram tokenizer built here;
- ``openai/clip-vit-large-patch14/``: a tiny ``CLIPModel`` (text width = MMDiT ``vec_in_dim``,
  77 positions) with a byte-level BPE tokenizer built here;
- ``tiny_family.json``: the configurations, the seed and the SHA-256 of every file.

Like the published folders, the text folders hold full models; the loaders keep the encoder
and the text tower. The tokenizers cover every byte, with whole-word pieces for the words of
the UCF-101 captions and the prompt suffixes. Nothing is downloaded. The same seed gives
byte-identical files; the safetensors weights were also identical across machines and library
versions (torch 2.11 / 2.14, transformers 5.17 / 5.24), whereas the transformers ``config.json``
files record the transformers version, so their hashes follow it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from sora_tta.hashing import file_sha256
from sora_tta.io import write_json_atomic
from sora_tta.layout import TINY_FAMILY_FILE, CheckpointLayout
from sora_tta.models.loader import save_mmdit
from sora_tta.models.mmdit import MMDiT, MMDiTConfig, mmdit_config
from sora_tta.models.text import CLIP_MAX_LENGTH, T5_MAX_LENGTH, quiet_transformers
from sora_tta.models.vae import build_autoencoder, save_vae, vae_config

# Words of the prompt template and common caption words, besides the UCF-101 action words.
EXTRA_WORDS = (
    "a", "an", "the", "person", "people", "man", "woman", "child", "is", "are", "doing",
    "playing", "with", "on", "in", "at", "of", "and", "video", "fps", "motion", "score",
)  # fmt: skip
T5_LAYERS = 2
T5_HEADS = 4
CLIP_LAYERS = 2
CLIP_HEADS = 4
# Seed offsets so the components draw independent streams from one family seed.
_SEED_OFFSETS = {"mmdit": 0, "vae": 1, "t5": 2, "clip": 3}


def tiny_mmdit_config() -> MMDiTConfig:
    """The MMDiT of the family: the ``tiny`` preset (its text widths define the encoders')."""
    return mmdit_config("tiny")


def caption_words() -> list[str]:
    """Sorted lower-case words of every UCF-101 caption plus :data:`EXTRA_WORDS`."""
    from sora_tta.data.captions import class_to_action
    from sora_tta.data.ucf101 import CLASS_NAMES

    words = set(EXTRA_WORDS)
    for name in CLASS_NAMES:
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", class_to_action(name)))
    return sorted(words)


def build_t5_tokenizer(words: list[str]) -> Any:
    """Unigram T5 tokenizer: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, printable ASCII, whole words."""
    from transformers import T5Tokenizer

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -4.0)]
    pieces += [(chr(code), -10.0) for code in range(33, 127)]
    seen = {p for p, _ in pieces}
    for word in words:
        for form in (word, word.capitalize(), word.upper()):
            if f"▁{form}" not in seen:
                seen.add(f"▁{form}")
                pieces.append((f"▁{form}", -5.0))
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def learn_bpe_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges (most frequent pair first, ties by order) until every word is one symbol.

    Learning the merges like BPE training, rather than chaining each word's letters, makes
    the encoder reproduce each word whole: merges of different words cannot cut each other.
    """
    sequences = [[*word[:-1], word[-1] + "</w>"] for word in words if word]
    merges: list[tuple[str, str]] = []
    while True:
        counts = Counter(pair for seq in sequences for pair in itertools.pairwise(seq))
        if not counts:
            return merges
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        for seq in sequences:
            i = 0
            while i < len(seq) - 1:
                if (seq[i], seq[i + 1]) == best:
                    seq[i : i + 2] = [best[0] + best[1]]
                i += 1


def build_clip_tokenizer(words: list[str]) -> Any:
    """Byte-level BPE CLIP tokenizer: every byte, plus merges that spell each word whole."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    alphabet = sorted(ByteLevel.alphabet())
    for suffix in ("", "</w>"):
        for char in alphabet:
            vocab.setdefault(char + suffix, len(vocab))
    merges = learn_bpe_merges(words)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_LENGTH)


def tiny_t5_config(vocab_size: int, d_model: int) -> Any:
    """T5 v1.1-style (gated GELU, untied) encoder-decoder config of width ``d_model``."""
    from transformers import T5Config

    return T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // T5_HEADS,
        d_ff=2 * d_model,
        num_layers=T5_LAYERS,
        num_decoder_layers=1,
        num_heads=T5_HEADS,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def tiny_clip_config(vocab_size: int, hidden: int) -> Any:
    """CLIP config whose text tower's pooled output has ``hidden`` dims (77 positions)."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=CLIP_LAYERS,
        num_attention_heads=CLIP_HEADS,
        max_position_embeddings=CLIP_MAX_LENGTH,
        projection_dim=hidden,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=16,
        projection_dim=hidden,
    )
    return CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=hidden
    )


def init_mmdit(config: MMDiTConfig, seed: int) -> MMDiT:
    """MMDiT with every parameter drawn from a seeded CPU generator (global RNG untouched).

    Matrices ~ N(0, 1 / fan_in), vectors ~ N(0, 0.02^2), q/k norm scales 1: unlike the real
    initialisation, ``cond_in`` and the final layer are non-zero so every input matters.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        model = MMDiT(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".scale"):
                param.fill_(1.0)
            elif param.ndim >= 2:
                fan_in = math.prod(param.shape[1:])
                param.normal_(0.0, fan_in**-0.5, generator=generator)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    return model.eval()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    # diffusers / transformers initialise from the global RNG: seed it, then restore it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _write_dir_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Fill a fresh temporary folder next to ``target`` with ``write``, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_t5(folder: Path, words: list[str], d_model: int, seed: int) -> dict[str, Any]:
    from transformers import T5ForConditionalGeneration

    tokenizer = build_t5_tokenizer(words)
    config = tiny_t5_config(len(tokenizer), d_model)
    with _seeded(seed):
        model = T5ForConditionalGeneration(config)

    def write(tmp: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

    _write_dir_atomic(folder, write)
    return {"vocab_size": len(tokenizer), "d_model": d_model, "num_layers": T5_LAYERS}


def _write_clip(folder: Path, words: list[str], hidden: int, seed: int) -> dict[str, Any]:
    from transformers import CLIPModel

    tokenizer = build_clip_tokenizer(words)
    config = tiny_clip_config(len(tokenizer), hidden)
    with _seeded(seed):
        model = CLIPModel(config)

    def write(tmp: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

    _write_dir_atomic(folder, write)
    return {"vocab_size": len(tokenizer), "hidden_size": hidden, "num_layers": CLIP_LAYERS}


def make_tiny_checkpoints(out_dir: str | os.PathLike[str], seed: int = 0) -> dict[str, Any]:
    """Write the tiny family into ``out_dir`` (official layout); return its description.

    Each file (and each text-model folder as a whole) is replaced atomically, so a rerun is
    safe and gives the same bytes for the same ``seed``. ``tiny_family.json`` is written last.
    """
    layout = CheckpointLayout(Path(out_dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    mmdit_cfg = tiny_mmdit_config()
    vae_cfg = vae_config("tiny")
    words = caption_words()

    save_mmdit(init_mmdit(mmdit_cfg, seed + _SEED_OFFSETS["mmdit"]), layout.mmdit)
    with _seeded(seed + _SEED_OFFSETS["vae"]):
        vae = build_autoencoder(vae_cfg)
    save_vae(vae, layout.vae, vae_cfg)
    t5_info = _write_t5(layout.t5, words, mmdit_cfg.context_in_dim, seed + _SEED_OFFSETS["t5"])
    clip_info = _write_clip(layout.clip, words, mmdit_cfg.vec_in_dim, seed + _SEED_OFFSETS["clip"])

    files = sorted(
        p for folder in (layout.t5, layout.clip) for p in folder.rglob("*") if p.is_file()
    )
    description = {
        "seed": seed,
        "mmdit": mmdit_cfg.to_dict(),
        "vae": vae_cfg.to_dict(),
        "t5": {**t5_info, "max_length": T5_MAX_LENGTH},
        "clip": {**clip_info, "max_length": CLIP_MAX_LENGTH},
        "sha256": {
            p.relative_to(layout.root).as_posix(): file_sha256(p)
            for p in [layout.mmdit, layout.vae, *files]
        },
    }
    write_json_atomic(layout.root / TINY_FAMILY_FILE, description)
    return description
