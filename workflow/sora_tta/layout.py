"""The official checkpoint folder layout: every checkpoint file name, defined once.

Torch-free: the workflow reads it at DAG time. The real ``ckpts/`` folder, the tiny family
(``sora-tta make-tiny-checkpoints``) and the proxy checkpoints all have this layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The diffusion transformer (MMDiT), as published.
MMDIT_FILE = "Open_Sora_v2.safetensors"
#: The HunyuanVideo video autoencoder, as published.
VAE_FILE = "hunyuan_vae.safetensors"
#: The Hugging Face folders of the two text encoders.
T5_DIR = "google/t5-v1_1-xxl"
CLIP_DIR = "openai/clip-vit-large-patch14"


@dataclass(frozen=True)
class CheckpointLayout:
    """Paths of the official checkpoint folder layout under ``root``."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def mmdit(self) -> Path:
        """The diffusion transformer."""
        return self.root / MMDIT_FILE

    @property
    def vae(self) -> Path:
        """The video autoencoder."""
        return self.root / VAE_FILE

    @property
    def t5(self) -> Path:
        """The T5 text-encoder folder."""
        return self.root / T5_DIR

    @property
    def clip(self) -> Path:
        """The CLIP text-encoder folder."""
        return self.root / CLIP_DIR


#: Captions of a procedural world tree (``sora-tta make-world``): video id -> caption, the
#: manifest's ``--caption-overrides`` format.
WORLD_CAPTIONS_FILE = "captions.tsv"

#: The tiny family's description (sizes of every model), beside its checkpoints.
TINY_FAMILY_FILE = "tiny_family.json"


#: Any one of these holds a Hugging Face model's weights.
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


#: Tokenizer files: a fast tokenizer.json, or the slow tokenizer's own files.
T5_TOKENIZER_FILES = (("tokenizer.json",), ("spiece.model",))


CLIP_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
