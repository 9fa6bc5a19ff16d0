"""Where the committed, pretrained proxy checkpoints live (package data).

The folder ``sora_tta/world/proxy_checkpoints/`` is shipped inside the package (see
``[tool.setuptools.package-data]``), so an installed ``sora-tta`` finds it without a
repository checkout, and the demo and the tests need no training. It was written by
``sora-tta pretrain-proxy`` (the command and its numbers are in ``docs/proxy.md``).
"""

from __future__ import annotations

from pathlib import Path

PROXY_DIR_NAME = "proxy_checkpoints"


def proxy_checkpoint_dir() -> Path:
    """The committed proxy checkpoint folder (official layout plus ``proxy.json``)."""
    return Path(__file__).resolve().parent / PROXY_DIR_NAME
