"""Shared helpers for the evaluation tests: fake metric files (clips: ``clip_maker`` in
``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sora_tta.evaluation.definitions import FILE_SCHEMA, SCHEMA
from sora_tta.io import read_json, write_json_atomic


def _fake_record(
    video: str,
    method: str,
    cls: str,
    values: dict[str, float | None],
    context_values: dict[str, float] | None = None,
    lpips_backbone: str = "alexnet",
    context_frames: int = 33,
    total_frames: int = 65,
) -> dict[str, Any]:
    """A metrics file in the schema ``sora-tta evaluate`` writes, with chosen aggregates.

    Per-frame lists repeat the continuation aggregate of each metric, so per-frame
    means equal the aggregates.
    """
    per_frame_names = ("psnr", "ssim", "lpips", "mse")

    def segment(first: int, count: int, aggregates: dict[str, float | None]) -> dict[str, Any]:
        per_frame = {m: [aggregates[m]] * count for m in per_frame_names if m in aggregates}
        return {
            "frames": list(range(first, first + count)),
            "per_frame": per_frame,
            "aggregates": aggregates,
        }

    context = context_values or {"psnr": 40.0, "ssim": 0.95, "lpips": 0.05}
    return {
        "schema": SCHEMA,
        "video": video,
        "method": method,
        "class": cls,
        "lpips_backbone": lpips_backbone,
        "segments": {
            "context": segment(1, context_frames, dict(context)),
            "continuation": segment(
                context_frames + 1, total_frames - context_frames, dict(values)
            ),
        },
    }


def _write_fake(metrics_dir: Path, record: dict[str, Any]) -> Path:
    """Add a fake record to its ``{metrics_dir}/{method}/{class}.json`` (replacing an older
    record of the same video), where ``sora-tta aggregate`` expects it."""
    path = metrics_dir / record["method"] / f"{record['class']}.json"
    data = (
        read_json(path)
        if path.exists()
        else {"schema": FILE_SCHEMA, "method": record["method"], "class": record["class"]}
    )
    others = [r for r in data.get("records", []) if r["video"] != record["video"]]
    data["records"] = [*others, record]
    write_json_atomic(path, data)
    return path


@pytest.fixture(scope="session")
def fake_record():
    """Factory of metrics records in the ``evaluate`` schema (see ``_fake_record``)."""
    return _fake_record


@pytest.fixture(scope="session")
def write_fake():
    """Add a record to ``{metrics_dir}/{method}/{class}.json``."""
    return _write_fake
