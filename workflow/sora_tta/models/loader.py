"""Load and save MMDiT checkpoints in the official ``Open_Sora_v2.safetensors`` format.

The model is built on the meta device and every tensor is read from the file
straight onto the target device and dtype, so an 11.9 B-parameter model never
exists twice in memory. The configuration comes from the safetensors metadata
entry ``config`` (JSON) when present, else the full ``opensora-v2`` preset is
used: one code path for the tiny test checkpoints and the real weights.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from sora_tta.io import atomic_path
from sora_tta.models.mmdit import MMDiT, MMDiTConfig, mmdit_config

logger = logging.getLogger(__name__)

CONFIG_METADATA_KEY = "config"
_MAX_LISTED = 10


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded into the MMDiT (the message names the file)."""


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _config_from_metadata(path: Path, metadata: dict[str, str] | None) -> MMDiTConfig | None:
    if not metadata or CONFIG_METADATA_KEY not in metadata:
        return None
    try:
        return MMDiTConfig(**json.loads(metadata[CONFIG_METADATA_KEY]))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid MMDiT config in metadata: {err}") from err


def _open(path: Path, device: str = "cpu") -> Any:  # safetensors has no public handle type
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MMDiT checkpoint not found")
    try:
        return safe_open(path, framework="pt", device=device)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err


def read_mmdit_config(path: str | os.PathLike[str]) -> MMDiTConfig:
    """The config a checkpoint loads with: its ``config`` metadata, else ``opensora-v2``."""
    path = Path(path)
    with _open(path) as handle:
        config = _config_from_metadata(path, handle.metadata())
    return config if config is not None else mmdit_config("opensora-v2")


def check_state_shapes(
    path: str | os.PathLike[str],
    expected: dict[str, tuple[int, ...]],
    found: dict[str, tuple[int, ...]],
) -> None:
    """Raise ``CheckpointError`` listing missing, unexpected and mis-shaped keys of ``path``."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mis_shaped = sorted(
        f"{key} (checkpoint {list(found[key])}, model {list(expected[key])})"
        for key in set(expected) & set(found)
        if tuple(found[key]) != tuple(expected[key])
    )
    if not (missing or unexpected or mis_shaped):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if mis_shaped:
        parts.append(f"{len(mis_shaped)} shape mismatches: {_listing(mis_shaped)}")
    raise CheckpointError(
        f"{path}: checkpoint does not match the MMDiT config; " + "; ".join(parts)
    )


def load_mmdit(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    config: MMDiTConfig | None = None,
) -> MMDiT:
    """Load an official-format MMDiT checkpoint onto ``device`` in ``dtype``.

    The returned model is in eval mode with every parameter frozen
    (``requires_grad=False``); callers enable the parameters they train.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: unreadable file, invalid config metadata, or keys/shapes that do not
            match the config (missing, unexpected and mis-shaped keys are all listed).
    """
    path = Path(path)
    device = torch.device(device)
    start = time.perf_counter()
    with _open(path, device=str(device)) as handle:
        if config is None:
            config = _config_from_metadata(path, handle.metadata()) or mmdit_config("opensora-v2")
        with torch.device("meta"):
            model = MMDiT(config)
        expected = {key: tuple(t.shape) for key, t in model.state_dict().items()}
        found = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
        check_state_shapes(path, expected, found)
        state = {key: handle.get_tensor(key).to(dtype) for key in expected}
    model.load_state_dict(state, strict=True, assign=True)
    del state
    # The model has no buffers today; fail loudly if a future one is left on the meta device.
    left_on_meta = [
        name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta
    ]
    if left_on_meta:
        raise CheckpointError(f"{path}: tensors not materialised: {_listing(left_on_meta)}")
    model.requires_grad_(False)
    model.eval()
    num_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "loaded MMDiT %s: %d parameters, %s on %s in %.2f s",
        path,
        num_params,
        str(dtype).removeprefix("torch."),
        device,
        time.perf_counter() - start,
    )
    return model


def save_mmdit(
    model: MMDiT,
    path: str | os.PathLike[str],
    metadata_config: bool = True,
    extra_metadata: dict[str, str] | None = None,
) -> None:
    """Write ``model``'s weights with the official key names to ``path`` atomically.

    With ``metadata_config`` the config is stored as JSON under the metadata key
    ``config``, so ``load_mmdit`` rebuilds the same architecture.
    """
    metadata = dict(extra_metadata or {})
    if metadata_config:
        metadata[CONFIG_METADATA_KEY] = json.dumps(model.config.to_dict())
    state = {key: t.detach().contiguous() for key, t in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata or None)
