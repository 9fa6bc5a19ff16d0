"""Every file name, defined once: the official checkpoint folder layout and the results tree.

Torch-free: the workflow reads it at DAG time. The real ``ckpts/`` folder, the tiny family
(``sora-tta make-tiny-checkpoints``) and the proxy checkpoints all have the checkpoint layout;
every run of the workflow writes the results tree under its working directory.
"""

from __future__ import annotations

import os
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


#: torchvision's AlexNet ImageNet weights: the LPIPS trunk (never downloaded here).
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def alexnet_weights_path() -> Path:
    """Where torchvision keeps the AlexNet weights: ``<torch hub dir>/checkpoints/<file>``.

    The hub folder is resolved as ``torch.hub.get_dir()`` does by default ($TORCH_HOME/hub,
    else $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub), without importing torch, so
    the workflow's preflight check stays fast (a test keeps the two in step).
    """
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    torch_home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(torch_home) / "hub" / "checkpoints" / ALEXNET_FILE


# ---------------------------------------------------------------- the results tree
# Paths relative to the workflow directory; {video}, {method}, {class_name} are the rules'
# wildcards (format patterns).
RESULTS = "results"
#: The selected videos: one row each, with status, role, caption and source.
MANIFEST = f"{RESULTS}/manifest.csv"
#: Every file under ``data.ucf_root`` (size, time): rewritten by the preflight only when it
#: changes, so that videos added, removed or replaced are noticed.
SOURCE_LISTING = f"{RESULTS}/sources.json"
CLIPS = f"{RESULTS}/clips"
#: Ground truth: the preprocessed clip, and its sidecar (frame count, frame hash, source).
CLIP = f"{CLIPS}/{{video}}.mkv"
CLIP_SIDECAR = f"{CLIPS}/{{video}}.json"
PROMPT_DIR = f"{RESULTS}/prompts"
#: Each method's settings (``sora-tta generate --method-json``), and the table of all.
METHOD_CONFIG = f"{RESULTS}/methods/{{method}}.json"
METHODS_TABLE = f"{RESULTS}/methods/methods.tsv"
GENERATIONS = f"{RESULTS}/generations"
GEN_DIR = f"{GENERATIONS}/{{method}}/{{video}}"
# A generation folder (sora_tta.tta.outputs): the continuation, the record of the video's
# outcome (the generation jobs' declared output), the adaptation's loss curve, the adapter
# (on request), and the record of a failed run.
VIDEO_FILE = "video.mkv"
META_FILE = "meta.json"
LOSS_FILE = "loss.csv"
ADAPTER_FILE = "adapter.safetensors"
FAILURE_FILE = "failure.json"
GEN_VIDEO = f"{GEN_DIR}/{VIDEO_FILE}"
GEN_META = f"{GEN_DIR}/{META_FILE}"
METRICS_DIR = f"{RESULTS}/metrics"
METRICS = f"{METRICS_DIR}/{{method}}/{{class_name}}.json"
AGGREGATE_DIR = f"{RESULTS}/aggregate"
FIGURE_DIR = f"{RESULTS}/figures"
REPORT_DIR = f"{RESULTS}/report"
SMOKE_DIR = f"{RESULTS}/smoke"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
#: ``sora-tta status``: per method and video, done / failed / pending / excluded.
STATUS_TSV = f"{RESULTS}/status.tsv"
#: Where the SLURM executor plugin writes its job logs.
SLURM_LOGS = ".snakemake/slurm_logs"
