"""Before anything is submitted: every checkpoint, tokenizer, data and metric file the
configuration needs (with what it is for), and the smoke test's clip check."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sora_tta.layout import (
    CLIP_TOKENIZER_FILES,
    HF_WEIGHT_FILES,
    T5_TOKENIZER_FILES,
)
from sora_tta.study.config import section
from sora_tta.study.paths import (
    built_checkpoints,
    checkpoint_paths,
    data_paths,
    lpips_weights_path,
    split_list_files,
)


@dataclass(frozen=True)
class Requirement:
    """Something on disk the configuration needs: one of ``alternatives``, each a set of paths."""

    what: str
    alternatives: tuple[tuple[str, ...], ...]

    @classmethod
    def path(cls, what: str, path: str) -> Requirement:
        """A single required path."""
        return cls(what, ((path,),))

    def satisfied(self) -> bool:
        """Whether every path of at least one alternative exists."""
        return any(all(os.path.exists(p) for p in alt) for alt in self.alternatives)

    def describe(self) -> str:
        """One line for the preflight report."""
        return f"{self.what}: " + " or ".join(" + ".join(alt) for alt in self.alternatives)


def _hf_requirements(
    folder: str, what: str, tokenizer: tuple[tuple[str, ...], ...]
) -> list[Requirement]:
    return [
        Requirement.path(f"{what} config", f"{folder}/config.json"),
        Requirement(f"{what} weights", tuple((f"{folder}/{name}",) for name in HF_WEIGHT_FILES)),
        Requirement(
            f"{what} tokenizer", tuple(tuple(f"{folder}/{f}" for f in alt) for alt in tokenizer)
        ),
    ]


def required_files(
    config: Mapping[str, Any],
    scope: str = "study",
    lpips_path: Callable[[], str] = lpips_weights_path,
) -> list[Requirement]:
    """Everything on disk that ``config`` needs and the workflow does not build itself.

    ``scope`` ``"study"``: data, checkpoints, tokenizers and metric weights;
    ``"checkpoints"``: only the checkpoints and tokenizers (all the smoke target needs).
    """
    reqs: list[Requirement] = []
    if scope == "study" and not section(config, "data").get("synthetic"):
        paths = data_paths(config)
        reqs.append(Requirement.path("UCF-101 video folder", paths.ucf_root))
        reqs += [Requirement.path("UCF-101 split list", p) for p in split_list_files(config)]
    if scope == "study":
        selection = section(config, "selection")
        for key in ("list", "caption_overrides"):
            if selection.get(key):
                reqs.append(Requirement.path(f"selection.{key} file", str(selection[key])))
    if built_checkpoints(config) is None:
        ckpt = checkpoint_paths(config)
        reqs.append(Requirement.path("Open-Sora v2.0 MMDiT checkpoint", ckpt.mmdit))
        reqs.append(Requirement.path("HunyuanVideo VAE checkpoint", ckpt.vae))
        reqs += _hf_requirements(ckpt.t5, "T5 text encoder", T5_TOKENIZER_FILES)
        reqs += _hf_requirements(ckpt.clip, "CLIP text encoder", CLIP_TOKENIZER_FILES)
    evaluation = section(config, "evaluation")
    if scope == "study" and evaluation.get("lpips_backbone", "alexnet") == "alexnet":
        reqs.append(Requirement.path("LPIPS AlexNet weights (torchvision cache)", lpips_path()))
    if scope == "study" and evaluation.get("fvd_weights"):
        reqs.append(
            Requirement.path("FVD I3D weights (evaluation.fvd_weights)", evaluation["fvd_weights"])
        )
    return reqs


def missing_requirements(requirements: Iterable[Requirement]) -> list[Requirement]:
    """The requirements none of whose alternatives exist."""
    return [req for req in requirements if not req.satisfied()]


def preflight_message(missing: list[Requirement], source: str = "config") -> str:
    """One message listing everything that is missing."""
    lines = "\n".join(f"  - {req.describe()}" for req in missing)
    return (
        f"preflight: {len(missing)} required file(s) missing for {source}; nothing was "
        f"submitted:\n{lines}"
    )


def preflight_report(requirements: Iterable[Requirement], source: str) -> str:
    """What the preflight found, one line per requirement, and a closing summary line."""
    requirements = list(requirements)
    lines = [f"found {req.describe()}" for req in requirements]
    lines.append(f"preflight: all {len(requirements)} required inputs present ({source})")
    return "\n".join(lines) + "\n"
