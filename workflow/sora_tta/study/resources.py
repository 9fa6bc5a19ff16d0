"""Each rule's threads, memory, runtime and GPUs as the workflow profile
(``profiles/default/config.yaml``, their one definition) declares them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: The workflow profile Snakemake loads by itself (``profiles/default/``).
WORKFLOW_PROFILE = Path(__file__).resolve().parents[3] / "profiles" / "default" / "config.yaml"


@dataclass(frozen=True)
class RuleResources:
    """What one job of a rule asks for; ``runtime`` (minutes) is that of the first attempt."""

    threads: int
    mem_mb: int
    runtime: int
    gpu: int = 0


def _first_attempt(value: Any) -> int:
    """An int, or a profile expression in ``attempt`` (``"60 * attempt"``) at attempt 1."""
    if isinstance(value, int):
        return value
    if not re.fullmatch(r"\s*\d+(\s*\*\s*attempt)?\s*", str(value)):
        raise ValueError(f"unsupported resource expression {value!r}")
    return int(str(value).split("*")[0])


def profile_resources(path: str | os.PathLike[str] = WORKFLOW_PROFILE) -> dict[str, RuleResources]:
    """Per-rule resources of the workflow profile (``set-threads`` and ``set-resources``)."""
    with open(path) as handle:
        profile = yaml.safe_load(handle)
    threads = profile.get("set-threads", {})
    resources = profile.get("set-resources", {})
    return {
        rule: RuleResources(
            threads=int(threads.get(rule, 1)),
            mem_mb=_first_attempt(values["mem_mb"]),
            runtime=_first_attempt(values["runtime"]),
            gpu=int(values.get("gpu", 0)),
        )
        for rule, values in resources.items()
    }


def gpu_rules(path: str | os.PathLike[str] = WORKFLOW_PROFILE) -> list[str]:
    """Rules whose jobs ask for a GPU in the workflow profile."""
    return sorted(rule for rule, res in profile_resources(path).items() if res.gpu > 0)
