"""Tables over all per-video metric records: long table, summaries, paired tests, per class, cost.

Inputs: ``{metrics_dir}/{method}/{class}.json`` (written by ``sora-tta evaluate``)
and, optionally, ``{generations_dir}/{method}/{video}/meta.json``. Outputs (fixed
names, see :data:`OUTPUT_FILES` and ``docs/metrics.md``) are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from sora_tta.evaluation.cost import cost_table
from sora_tta.evaluation.family import apply_family, per_type_table
from sora_tta.evaluation.report import summary_markdown
from sora_tta.evaluation.tables import (
    AggregateConfig,
    collect_long_table,
    paired_table,
    per_class_table,
    read_manifest_classes,
    summary_table,
)
from sora_tta.io import atomic_path, write_text_atomic

OUTPUT_FILES = (
    "long.csv", "summary.csv", "paired.csv", "per_class.csv", "per_type.csv", "cost.csv",
    "summary.md",
)  # fmt: skip


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def run_aggregate(
    metrics_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: AggregateConfig,
    generations_dir: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Read all inputs, build every table and write :data:`OUTPUT_FILES` into ``out_dir``."""
    classes = read_manifest_classes(manifest) if manifest is not None else None
    long = collect_long_table(metrics_dir, config.methods, videos=classes)
    expected = None if classes is None else len(classes)
    summary = summary_table(long, config)
    paired = apply_family(paired_table(long, config), config.statistics, config.variants)
    per_class = per_class_table(long, config)
    per_type = per_type_table(
        long, config.variants, config.baseline, config.statistics, config.bootstrap
    )
    cost = cost_table(long, generations_dir, config)
    text = summary_markdown(long, summary, paired, per_class, cost, config, expected, per_type)
    out = Path(out_dir)
    paths = {name: out / name for name in OUTPUT_FILES}
    for name, table in (
        ("long.csv", long),
        ("summary.csv", summary),
        ("paired.csv", paired),
        ("per_class.csv", per_class),
        ("per_type.csv", per_type),
        ("cost.csv", cost),
    ):
        _write_csv(table, paths[name])
    write_text_atomic(paths["summary.md"], text)
    return paths
