"""The generation folder's protocol: which files a run leaves, how they are written, and the
provenance recorded with them (software versions, peak memory, checkpoint fingerprints).

A folder holds ``loss.csv`` (adapted runs), ``adapter.safetensors`` (on request),
``video.mkv`` and, last, ``meta.json`` with ``outcome: ok``; or ``failure.json`` after a
failed run, plus a ``meta.json`` with ``outcome: failed`` when the failure is the video's
final result (file names: :mod:`sora_tta.layout`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import platform
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sora_tta.io import atomic_path, write_json_atomic
from sora_tta.layout import ADAPTER_FILE, FAILURE_FILE, LOSS_FILE, META_FILE, VIDEO_FILE

if TYPE_CHECKING:  # torch is imported where used: evaluation reads this module's names
    import torch

FINAL_OUTPUTS = (VIDEO_FILE, META_FILE, LOSS_FILE, ADAPTER_FILE)
LOSS_COLUMNS = ("step", "loss", "lr", "timestep", "cond_frames", "branch", "grad_norm", "seconds")
#: ``meta.json`` ``outcome``: a video, or a deterministic failure recorded in its place.
OUTCOME_OK, OUTCOME_FAILED = "ok", "failed"


def versions() -> dict[str, str]:
    """Versions of the software that produced an output."""
    import diffusers
    import peft
    import torch
    import transformers

    from sora_tta import __version__ as sora_tta_version

    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "peft": peft.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "sora_tta": sora_tta_version,
    }
    if torch.version.cuda:
        found["torch_cuda_build"] = torch.version.cuda
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
    return found


def peak_memory(device: torch.device) -> dict[str, Any]:
    """The peak memory of this run: CUDA's allocator peak, or the process's peak RSS."""
    if device.type == "cuda":
        return {
            "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_kind": "cuda_max_memory_allocated",
        }
    # ru_maxrss is in KiB on Linux: the peak resident size of the whole process.
    return {
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_memory_kind": "process_max_rss",
    }


def loss_csv(rows: list[dict[str, float]]) -> str:
    """The ``loss.csv`` text of adaptation rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LOSS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in LOSS_COLUMNS})
    return buffer.getvalue()


def save_adapter(path: Path, model: torch.nn.Module, metadata: dict[str, str]) -> None:
    """Write the current LoRA weights of ``model`` (float32) atomically."""
    from safetensors.torch import save_file

    from sora_tta.tta import lora

    with atomic_path(path) as tmp:
        save_file(lora.lora_state_dict(model), str(tmp), metadata=metadata)


def clear_outputs(out_dir: Path) -> None:
    """Remove final outputs and failure records of an earlier run in ``out_dir``."""
    for name in (*FINAL_OUTPUTS, FAILURE_FILE):
        (out_dir / name).unlink(missing_ok=True)


def checkpoint_fingerprint(path: Path, edge: int = 16 << 20) -> str:
    """SHA-256 over a checkpoint's size, its safetensors header (every tensor's name, dtype,
    shape and offsets, and the metadata) and its first and last ``edge`` bytes.

    Not a hash of the whole file: the Open-Sora v2.0 checkpoint has 22 GB, which would cost
    every generation job seconds of reading (docs/study-design.md); a different checkpoint
    with the same layout differs in its first and last 16 MiB of weights.
    """
    sha = hashlib.sha256()
    size = path.stat().st_size
    sha.update(str(size).encode())
    with open(path, "rb") as handle:
        head = handle.read(8)
        header_length = int.from_bytes(head, "little") if len(head) == 8 else 0
        sha.update(head + handle.read(min(header_length, size)))
        handle.seek(0)
        sha.update(handle.read(edge))
        handle.seek(max(0, size - edge))
        sha.update(handle.read(edge))
    return sha.hexdigest()


def write_failure(out_dir: Path, record: dict[str, Any], final: bool) -> None:
    """Record a failed run: ``failure.json``; with ``final`` (a deterministic failure, the
    video's result) also ``meta.json`` with ``outcome: failed``."""
    write_json_atomic(out_dir / FAILURE_FILE, record)
    if final:
        write_json_atomic(out_dir / META_FILE, {**record, "outcome": OUTCOME_FAILED})
