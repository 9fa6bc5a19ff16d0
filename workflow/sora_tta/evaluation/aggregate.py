"""Tables over all per-video metric records: long table, summaries, paired tests, per class, cost.

Inputs: ``{metrics_dir}/{method}/{class}.json`` (written by ``sora-tta evaluate``)
and, optionally, ``{generations_dir}/{method}/{video}/meta.json``. Outputs (fixed
names, see :data:`OUTPUT_FILES` and ``docs/metrics.md``) are written atomically.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd

from sora_tta.evaluation.cost import cost_table
from sora_tta.evaluation.failures import (
    dropped_pairs,
    failure_counts,
    failures_markdown,
    read_failures,
)
from sora_tta.evaluation.report import summary_markdown
from sora_tta.evaluation.tables import (
    AggregateConfig,
    AggregateError,
    collect_long_table,
    paired_table,
    per_class_table,
    read_manifest_classes,
    summary_table,
)
from sora_tta.io import atomic_path, write_text_atomic

OUTPUT_FILES = (
    "long.csv",
    "summary.csv",
    "paired.csv",
    "per_class.csv",
    "cost.csv",
    "failures.csv",
    "summary.md",
)


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _without_hopeless_methods(
    config: AggregateConfig, failures: pd.DataFrame, classes: dict[str, str] | None
) -> AggregateConfig:
    """``config`` without the variants whose every video failed (they have no metrics; the
    failure table lists them). Raises :class:`AggregateError` when the baseline is one."""
    if classes is None:
        return config
    counts = failure_counts(failures, config.methods)
    hopeless = [m for m in config.methods if counts[m] >= len(classes)]
    if config.baseline in hopeless:
        raise AggregateError(
            f"every generation of the baseline failed ({len(classes)} videos): nothing to "
            "compare with (see the failures in the metrics files)"
        )
    return dataclasses.replace(
        config, methods=tuple(m for m in config.methods if m not in hopeless)
    )


def run_aggregate(
    metrics_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: AggregateConfig,
    generations_dir: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Read all inputs, build every table and write :data:`OUTPUT_FILES` into ``out_dir``."""
    classes = read_manifest_classes(manifest) if manifest is not None else None
    failures = read_failures(metrics_dir, config.methods, videos=classes)
    all_methods, config = config, _without_hopeless_methods(config, failures, classes)
    long = collect_long_table(metrics_dir, config.methods, videos=classes)
    expected = None if classes is None else len(classes)
    summary = summary_table(long, config)
    dropped = dropped_pairs(failures, all_methods.variants, config.baseline)
    paired = paired_table(long, config).merge(dropped, on="method", how="left")
    per_class = per_class_table(long, config)
    cost = cost_table(long, generations_dir, config)
    text = summary_markdown(long, summary, paired, per_class, cost, config, expected)
    text += failures_markdown(failures, all_methods.methods, dropped)
    out = Path(out_dir)
    paths = {name: out / name for name in OUTPUT_FILES}
    for name, table in (
        ("long.csv", long),
        ("summary.csv", summary),
        ("paired.csv", paired),
        ("per_class.csv", per_class),
        ("cost.csv", cost),
        ("failures.csv", failures),
    ):
        _write_csv(table, paths[name])
    write_text_atomic(paths["summary.md"], text)
    return paths
