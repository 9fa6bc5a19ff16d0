"""The inputs the configuration points at: data folders and the checkpoint folder (or the
ones the DAG builds: the synthetic world, the tiny family, the proxy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sora_tta.layout import (
    CLIP_DIR,
    MMDIT_FILE,
    T5_DIR,
    VAE_FILE,
    WORLD_CAPTIONS_FILE,
    alexnet_weights_path,
)
from sora_tta.study.config import section


@dataclass(frozen=True)
class DataPaths:
    """Where the raw videos and split lists are; ``synthetic_out`` when built in the DAG."""

    ucf_root: str
    splits_dir: str
    synthetic_out: str | None


def data_paths(config: Mapping[str, Any]) -> DataPaths:
    """Raw-data locations of a validated configuration."""
    data = section(config, "data")
    synthetic = data.get("synthetic")
    if synthetic:
        out = str(synthetic["out"]).rstrip("/")
        return DataPaths(f"{out}/UCF-101", f"{out}/ucfTrainTestlist", out)
    return DataPaths(str(data["ucf_root"]), str(data["splits_dir"]), None)


def world_captions(config: Mapping[str, Any]) -> str | None:
    """The captions file of a procedural world built in the DAG (video id -> caption from its
    parameters), which the manifest uses unless ``selection.caption_overrides`` is set."""
    paths, synthetic = data_paths(config), section(config, "data").get("synthetic") or {}
    return f"{paths.synthetic_out}/{WORLD_CAPTIONS_FILE}" if synthetic.get("world") else None


def built_checkpoints(config: Mapping[str, Any]) -> str | None:
    """Which checkpoint family the DAG builds into ``checkpoints.dir``: ``tiny``, ``proxy``
    or None (the real checkpoints are read)."""
    checkpoints = section(config, "checkpoints")
    if checkpoints.get("tiny") is not None:
        return "tiny"
    return "proxy" if checkpoints.get("proxy") is True else None


def split_list_files(config: Mapping[str, Any]) -> list[str]:
    """The split files the manifest reads: ``classInd.txt``, ``{subset}list0{split}.txt`` and
    the validation selection's list, if any."""
    paths = data_paths(config)
    selection = section(config, "selection")
    subset, split = selection.get("subset", "test"), selection.get("split", 1)
    files = [f"{paths.splits_dir}/classInd.txt", f"{paths.splits_dir}/{subset}list0{split}.txt"]
    validation = selection.get("validation")
    if validation:
        val_split = validation.get("split") or split
        val_file = f"{paths.splits_dir}/{validation.get('subset', 'train')}list0{val_split}.txt"
        if val_file not in files:
            files.append(val_file)
    return files


@dataclass(frozen=True)
class CheckpointPaths:
    """Paths of a checkpoint folder in the official layout."""

    root: str

    @property
    def mmdit(self) -> str:
        """The diffusion transformer."""
        return f"{self.root}/{MMDIT_FILE}"

    @property
    def vae(self) -> str:
        """The video autoencoder."""
        return f"{self.root}/{VAE_FILE}"

    @property
    def t5(self) -> str:
        """The T5 text-encoder folder."""
        return f"{self.root}/{T5_DIR}"

    @property
    def clip(self) -> str:
        """The CLIP text-encoder folder."""
        return f"{self.root}/{CLIP_DIR}"


def checkpoint_paths(config: Mapping[str, Any]) -> CheckpointPaths:
    """Checkpoint locations of a validated configuration."""
    return CheckpointPaths(str(section(config, "checkpoints").get("dir", "ckpts")).rstrip("/"))


def lpips_weights_path() -> str:
    """Where the LPIPS AlexNet trunk weights must be (torchvision's cache, no download)."""
    return str(alexnet_weights_path())
