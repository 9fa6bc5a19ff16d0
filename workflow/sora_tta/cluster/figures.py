"""Measured per-step figures by device kind (the cost model's input).

The table ``step_figures.json`` (package data) holds, for each kind of device, the median
seconds that ``bench/bench_gpu.py`` measured for one adaptation step, one guided sampling
step (eager and regionally compiled, with and without adapters), the VAE and the checkpoint
load, together with the shapes they were measured at. ``import_bench_json`` turns a
``bench_gpu.py --json`` file into a row of that table (``sora-tta import-figures``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sora_tta.io import write_json_atomic

FIGURES_PATH = Path(__file__).with_name("step_figures.json")

# Shapes of bench_gpu.py's measurements (the bench imports them from here).
ADAPT_LATENT_FRAMES = 9  # the 33 conditioning frames, batch 1
SAMPLE_LATENT_FRAMES = 17  # the 65-frame output, the three guidance branches as batch 3
SAMPLE_BATCH = 3
VAE_ENCODE_FRAMES = 33
VAE_DECODE_LATENT_FRAMES = 17


class FiguresError(ValueError):
    """The figures table or a benchmark JSON is unusable; the message names the file."""


@dataclass(frozen=True)
class StepFigures:
    """Median seconds per call on one device kind, at the shapes they were measured at.

    ``None``: not measured on that kind. ``device_type`` (``cuda``/``cpu``) decides what
    ``compile: auto`` does there.
    """

    kind: str
    device: str
    device_type: str
    preset: str
    height: int
    width: int
    adapt_step_s: float
    sample_step_base_s: float
    sample_step_lora_s: float
    txt_tokens: int = 512
    rank: int = 16
    targets: str = "attn+fused"
    sample_step_base_compiled_s: float | None = None
    sample_step_lora_compiled_s: float | None = None
    vae_encode_s: float | None = None
    vae_decode_s: float | None = None
    checkpoint_load_s: float | None = None
    process_start_s: float | None = None
    compile_warmup_s: float | None = None
    torch: str = ""
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> StepFigures:
        """Build from one row of the table; missing or unknown keys raise ``FiguresError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FiguresError(f"{where}: unknown keys {unknown}")
        try:
            return cls(**data)
        except TypeError as err:
            raise FiguresError(f"{where}: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)


def load_figures(path: str | os.PathLike[str] | None = None) -> dict[str, StepFigures]:
    """All kinds of the table at ``path`` (default: the package's ``step_figures.json``)."""
    path = Path(path) if path is not None else FIGURES_PATH
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise FiguresError(f"{path}: file not found") from err
    except json.JSONDecodeError as err:
        raise FiguresError(f"{path}: not valid JSON ({err})") from err
    kinds = data.get("kinds") if isinstance(data, dict) else None
    if not isinstance(kinds, dict):
        raise FiguresError(f"{path}: expected an object with a 'kinds' map")
    return {
        name: StepFigures.from_dict({"kind": name, **row}, f"{path} (kind {name!r})")
        for name, row in kinds.items()
    }


def save_figures(table: dict[str, StepFigures], path: str | os.PathLike[str]) -> None:
    """Write the table atomically (kinds sorted by name)."""
    kinds = {}
    for name in sorted(table):
        row = table[name].to_dict()
        row.pop("kind")
        kinds[name] = row
    write_json_atomic(Path(path), {"kinds": kinds})


def _rows(report: dict[str, Any], variant: str) -> dict[str, float]:
    rows = report.get("variants", {}).get(variant, [])
    return {row["name"]: float(row["seconds"]) for row in rows if "seconds" in row}


def _fastest(rows: dict[str, float], prefix: str, names: tuple[str, ...] = ()) -> float | None:
    values = [v for k, v in rows.items() if k.startswith(prefix) or k in names]
    return min(values) if values else None


def import_bench_json(
    path: str | os.PathLike[str], kind: str | None = None, process_start_s: float | None = None
) -> StepFigures:
    """The figures of one ``bench_gpu.py --json`` file.

    Eager figures come from the ``eager`` variant (the fastest adaptation step, the fastest
    adapted sampling step: bf16 adapters when measured), compiled ones from ``compile``.
    ``kind`` defaults to the GPU's name without the vendor (``NVIDIA H200`` -> ``H200``).
    """
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FiguresError(f"{path}: cannot read benchmark JSON ({err})") from err
    eager = _rows(report, "eager")
    needed = ("sample_step_base", "sample_step_lora")
    if not all(name in eager for name in needed) or not _fastest(eager, "adapt_step"):
        raise FiguresError(
            f"{path}: the 'eager' variant needs adapt_step, sample_step_base and "
            "sample_step_lora rows (run bench_gpu.py with --variants eager,...)"
        )
    compiled = _rows(report, "compile")
    # Compilation cost of one process: the first call of the compiled sampling step beyond
    # a timed call (bench_gpu.py records first_call_seconds since issue 16).
    warmups = [
        float(row["first_call_seconds"]) - float(row["seconds"])
        for row in report.get("variants", {}).get("compile", [])
        if row.get("name", "").startswith("sample_step") and row.get("first_call_seconds")
    ]
    vae = {row["name"]: float(row["seconds"]) for row in report.get("vae", [])}
    device = str(report.get("device", "unknown"))
    height, width = report.get("frame_size", [224, 288])
    load = report.get("checkpoint_load", {}).get("seconds")
    return StepFigures(
        kind=kind or device.removeprefix("NVIDIA ").replace(" ", "-"),
        device=device,
        device_type="cpu" if device == "cpu" else "cuda",
        preset=str(report.get("preset", "opensora-v2")),
        height=int(height),
        width=int(width),
        txt_tokens=int(report.get("txt_tokens", 512)),
        rank=int(report.get("rank", 16)),
        targets=str(report.get("targets", "attn+fused")),
        adapt_step_s=float(_fastest(eager, "adapt_step") or 0.0),
        sample_step_base_s=eager["sample_step_base"],
        sample_step_lora_s=float(_fastest(eager, "sample_step_lora") or 0.0),
        sample_step_base_compiled_s=compiled.get("sample_step_base"),
        sample_step_lora_compiled_s=_fastest(compiled, "sample_step_lora"),
        vae_encode_s=vae.get(f"vae_encode_{VAE_ENCODE_FRAMES}"),
        vae_decode_s=vae.get(f"vae_decode_{VAE_DECODE_LATENT_FRAMES}"),
        checkpoint_load_s=None if load is None else float(load),
        process_start_s=process_start_s,
        compile_warmup_s=max(warmups) if warmups else None,
        torch=str(report.get("torch", "")),
        source=path.name,
    )
