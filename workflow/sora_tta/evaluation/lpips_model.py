"""LPIPS (Zhang et al. 2018, AlexNet trunk, v0.1) without any network access.

The ``lpips`` package ships its calibrated linear heads, but its AlexNet trunk
comes from torchvision's ImageNet weights, which torchvision would download.
Here the trunk is built randomly initialised and the ImageNet weights are then
loaded from torchvision's cache file, checked beforehand, so a missing file is
reported up front instead of triggering a download. The ``random`` backbone
(seeded random trunk) exists for tests only and is never the default.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from sora_tta.hashing import file_sha256
from sora_tta.layout import ALEXNET_FILE, alexnet_weights_path

# torchvision names its cache files after the first hex digits of their SHA-256.
ALEXNET_SHA256_PREFIX = "7be5be79"
BACKBONES = ("alexnet", "random")
DEFAULT_BACKBONE = "alexnet"


class LpipsWeightsError(RuntimeError):
    """The AlexNet backbone weights are missing or not the expected file."""


def check_alexnet_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the weights path after checking that it exists and has the expected hash.

    Raises :class:`LpipsWeightsError` with a one-line message saying which file is
    missing (or corrupt) and where to put it. Nothing is downloaded.
    """
    path = Path(path) if path is not None else alexnet_weights_path()
    if not path.is_file():
        raise LpipsWeightsError(
            f"LPIPS backbone weights missing: {path} (copy torchvision's AlexNet ImageNet "
            f"weights {ALEXNET_FILE} into {path.parent}/, or set TORCH_HOME to a folder whose "
            f"hub/checkpoints/ holds it; no download is attempted)"
        )
    sha = file_sha256(path)
    if not sha.startswith(ALEXNET_SHA256_PREFIX):
        raise LpipsWeightsError(
            f"{path}: SHA-256 {sha[:16]}... does not start with "
            f"{ALEXNET_SHA256_PREFIX}; the file is corrupt or not torchvision's {ALEXNET_FILE}"
        )
    return path


def _new_lpips(seed: int) -> torch.nn.Module:
    """LPIPS with a seeded random AlexNet trunk and the package's calibrated linear heads."""
    import lpips

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)
        # lpips still passes torchvision's deprecated ``pretrained`` flag.
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    return model.eval()


def load_alexnet_trunk(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy torchvision AlexNet ``features.*`` weights into the LPIPS trunk (``net.sliceK.*``).

    Every trunk parameter must be found with the same shape; the classifier
    weights in ``state_dict`` are not needed and are ignored.
    """
    trunk = model.net.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for name, tensor in trunk.items():
        _, index, kind = name.split(".")  # "slice2.3.weight" -> features.3.weight
        source = f"features.{index}.{kind}"
        if source not in state_dict:
            raise KeyError(f"AlexNet weights lack {source}")
        if tuple(state_dict[source].shape) != tuple(tensor.shape):
            raise KeyError(
                f"AlexNet weight {source} has shape {tuple(state_dict[source].shape)}, "
                f"expected {tuple(tensor.shape)}"
            )
        mapped[name] = state_dict[source]
    model.net.load_state_dict(mapped, strict=True)


def build_lpips(
    backbone: str = DEFAULT_BACKBONE,
    seed: int = 0,
    weights_path: str | os.PathLike[str] | None = None,
) -> torch.nn.Module:
    """Build LPIPS on the CPU: ``alexnet`` (ImageNet trunk from the cache) or ``random`` (tests).

    For ``alexnet`` the weights file is checked first (:func:`check_alexnet_weights`).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {backbone!r}; choose one of {BACKBONES}")
    if backbone == "random":
        return _new_lpips(seed)
    path = check_alexnet_weights(weights_path)
    model = _new_lpips(seed)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        load_alexnet_trunk(model, state_dict)
    except (KeyError, RuntimeError, OSError) as err:
        raise LpipsWeightsError(f"{path}: cannot load AlexNet weights ({err})") from err
    return model


class LpipsScorer:
    """Callable returning one LPIPS value per frame pair of two ``(T, H, W, 3)`` uint8 clips."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu", batch_size: int = 16) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return tensor.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # LPIPS expects [-1, 1]

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """LPIPS distance of each frame pair, shape ``(T,)`` float64."""
        if a.shape != b.shape:
            raise ValueError(f"clip shapes differ: {a.shape} vs {b.shape}")
        values = []
        for start in range(0, a.shape[0], self.batch_size):
            stop = start + self.batch_size
            out = self.model(self._to_tensor(a[start:stop]), self._to_tensor(b[start:stop]))
            values.append(out.reshape(-1).double().cpu().numpy())
        return np.concatenate(values)
