"""Where the committed, pretrained proxy checkpoints live (package data).

The folder ``sora_tta/world/proxy_checkpoints/`` is shipped inside the package (see
``[tool.setuptools.package-data]``), so an installed ``sora-tta`` finds it without a
repository checkout, and the demo and the tests need no training. It was written by
``sora-tta pretrain-proxy`` (the command and its numbers are in ``docs/proxy.md``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sora_tta.hashing import file_sha256
from sora_tta.io import atomic_path, read_json

PROXY_DIR_NAME = "proxy_checkpoints"
#: The description a pretraining run writes last (configuration, steps, losses, SHA-256).
PROXY_FILE = "proxy.json"


class ProxyCheckpointError(RuntimeError):
    """The committed proxy checkpoints are missing or do not match their recorded hashes."""


def proxy_checkpoint_dir() -> Path:
    """The committed proxy checkpoint folder (official layout plus ``proxy.json``)."""
    return Path(__file__).resolve().parent / PROXY_DIR_NAME


def copy_proxy_checkpoints(
    out: str | os.PathLike[str], source: str | os.PathLike[str] | None = None
) -> int:
    """Copy the proxy checkpoint folder ``source`` (default: the committed one) into ``out``,
    file by file through temporary names, after checking the weights against the SHA-256
    recorded in its ``proxy.json``; returns the number of files copied."""
    source = Path(source) if source is not None else proxy_checkpoint_dir()
    description = source / PROXY_FILE
    if not description.is_file():
        raise ProxyCheckpointError(f"{description}: not found (an unfinished pretraining run?)")
    for name, expected in read_json(description).get("sha256", {}).items():
        path = source / name
        if not path.is_file() or file_sha256(path) != expected:
            raise ProxyCheckpointError(f"{path}: missing or not the recorded weights")
    # proxy.json last: a folder without it is an unfinished copy, as after an unfinished run
    files = sorted((p for p in source.rglob("*") if p.is_file()), key=lambda p: p == description)
    for path in files:
        target = Path(out) / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
    return len(files)
