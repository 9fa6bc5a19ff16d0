"""Options and value types shared by every ``sora-tta`` subcommand, defined once.

Value types (argparse ``type=``) refuse bad values with one line naming the value:
:func:`positive_int` for counts, :func:`non_negative_int` for seeds, :func:`device_name`
(``auto``, ``cpu``, ``cuda``, ``cuda:N``; checked without importing torch). The ``add_*``
functions add the shared options (device, dtype, seed, checkpoint and output folders) with
the same names, defaults and help text everywhere.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sora_tta import layout

#: dtype names of the command line (``sora_tta.devices.DTYPES`` maps them to torch dtypes).
DTYPE_NAMES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    return value


def device_name(text: str) -> str:
    """argparse type: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (availability is checked
    when the device is used, by :func:`sora_tta.devices.resolve_device`)."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda or cuda:N")
    return text


def add_device(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device``: where the models run."""
    parser.add_argument(
        "--device",
        type=device_name,
        default=default,
        help=f"auto (CUDA when available), cpu, cuda or cuda:N (default {default})",
    )


def add_dtype(parser: argparse.ArgumentParser) -> None:
    """``--dtype``: the models' floating-point type."""
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        default="auto",
        help="auto (bfloat16 on CUDA, float32 on the CPU) or a dtype name (default auto)",
    )


def add_seed(parser: argparse.ArgumentParser, what: str = "random seed") -> None:
    """``--seed``: a non-negative integer, default 0."""
    parser.add_argument("--seed", type=non_negative_int, default=0, help=f"{what} (default 0)")


def add_checkpoint_dir(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--checkpoint-dir``: a folder in the official checkpoint layout."""
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        required=required,
        help=f"checkpoint folder ({layout.MMDIT_FILE}, {layout.VAE_FILE}, "
        f"{layout.T5_DIR}/, {layout.CLIP_DIR}/)",
    )


def add_out_dir(parser: argparse.ArgumentParser, what: str) -> None:
    """``--out-dir``: the folder the command writes (created when missing)."""
    parser.add_argument("--out-dir", type=Path, required=True, help=f"{what} (created if missing)")
