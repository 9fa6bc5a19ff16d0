"""Tables over all per-video metric records: long table, summaries, paired tests, per class, cost.

Inputs: ``{metrics_dir}/{method}/{class}.json`` (written by ``sora-tta evaluate``)
and, optionally, ``{generations_dir}/{method}/{video}/meta.json``. Outputs (fixed
names, see :data:`OUTPUT_FILES` and ``docs/metrics.md``) are written atomically.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from sora_tta.data.manifest import ROLE_TEST, ROLE_VALIDATION, method_runs_on
from sora_tta.evaluation.branches import branch_table, branches_markdown
from sora_tta.evaluation.cost import cost_table
from sora_tta.evaluation.failures import (
    DROPPED_COLUMNS,
    dropped_pairs,
    failure_counts,
    failures_markdown,
    read_failures,
)
from sora_tta.evaluation.family import (
    FAMILY_PAIRED_COLUMNS,
    apply_family,
    family_variants,
    per_type_table,
)
from sora_tta.evaluation.report import summary_markdown
from sora_tta.evaluation.tables import (
    SUMMARY_COLUMNS,
    AggregateConfig,
    AggregateError,
    collect_long_table,
    paired_table,
    per_class_table,
    read_manifest_classes,
    read_manifest_roles,
    summary_table,
)
from sora_tta.io import atomic_path, write_text_atomic

OUTPUT_FILES = (
    "long.csv", "summary.csv", "paired.csv", "per_class.csv", "per_type.csv", "cost.csv",
    "branches.csv", "failures.csv", "validation_summary.csv", "validation_paired.csv", "summary.md",
)  # fmt: skip
#: ``paired.csv``: the paired statistics with the declared family, and the pairs lost to
#: failed generations.
PAIRED_FILE_COLUMNS = [*FAMILY_PAIRED_COLUMNS, *DROPPED_COLUMNS[1:]]


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _without_hopeless_methods(
    config: AggregateConfig,
    failures: pd.DataFrame,
    classes: Mapping[str, str],
    roles: Mapping[str, str],
) -> AggregateConfig:
    """``config`` without the variants whose every video failed (they have no metrics; the
    failure table lists them). Raises :class:`AggregateError` when the baseline is one."""
    final = family_variants(config.statistics, config.variants)
    has_validation = ROLE_VALIDATION in roles.values()
    counts = failure_counts(failures, config.methods)
    hopeless = []
    for method in config.methods:
        runs = method_runs_on(method, final, has_validation, config.baseline)
        n_videos = sum(1 for v in classes if roles.get(v, ROLE_TEST) in runs)
        if counts[method] >= n_videos:
            hopeless.append(method)
    if config.baseline in hopeless:
        raise AggregateError(
            f"every generation of the baseline failed ({len(classes)} videos): nothing to "
            "compare with (see the failures in the metrics files)"
        )
    return dataclasses.replace(
        config, methods=tuple(m for m in config.methods if m not in hopeless)
    )


def collect_by_role(
    metrics_dir: str | os.PathLike[str],
    config: AggregateConfig,
    classes: Mapping[str, str],
    roles: Mapping[str, str],
) -> pd.DataFrame:
    """The long table of every method over the videos it runs on (``method_runs_on``):
    the baseline and final variants on all, exploratory variants on validation only."""
    final = family_variants(config.statistics, config.variants)
    has_validation = ROLE_VALIDATION in roles.values()
    parts = []
    for method in config.methods:
        runs = method_runs_on(method, final, has_validation, config.baseline)
        videos = {v: c for v, c in classes.items() if roles.get(v, ROLE_TEST) in runs}
        parts.append(collect_long_table(metrics_dir, [method], videos=videos))
    return pd.concat(parts, ignore_index=True)


def split_by_role(
    long: pd.DataFrame, config: AggregateConfig, roles: Mapping[str, str]
) -> tuple[pd.DataFrame, AggregateConfig, pd.DataFrame, AggregateConfig] | None:
    """``(test long, test config, validation long, validation config)``, or None without
    validation videos. The test part holds the baseline and the final variants (the
    headline, with the declared family); the validation part every method, with an empty
    family (exploratory: effects, no verdicts)."""
    role = long["video"].map(roles).fillna(ROLE_TEST)
    if not (role == ROLE_VALIDATION).any():
        return None
    final = family_variants(config.statistics, config.variants)
    test_config = dataclasses.replace(config, methods=(config.baseline, *final))
    exploratory = dataclasses.replace(config.statistics, final_variants=(), primary_variant=None)
    val_config = dataclasses.replace(config, statistics=exploratory)
    test_long = long[(role == ROLE_TEST) & long["method"].isin(test_config.methods)]
    val_long = long[role == ROLE_VALIDATION]
    return (
        test_long.reset_index(drop=True),
        test_config,
        val_long.reset_index(drop=True),
        val_config,
    )


def run_aggregate(
    metrics_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: AggregateConfig,
    generations_dir: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Read all inputs, build every table and write :data:`OUTPUT_FILES` into ``out_dir``.

    With a manifest that has validation videos, the headline tables (``summary``,
    ``paired``, ``per_class``, ``per_type``, ``long``) cover the test videos of the
    baseline and the final variants, and ``validation_*`` every method on the validation
    videos (exploratory); without, every method on every video and empty ``validation_*``.
    Generations that failed for good (``failures.csv``) are left out for their method, and a
    variant whose every video failed is left out of the tables.
    """
    full_config = config
    if manifest is None:
        failures = read_failures(metrics_dir, config.methods)
        long = collect_long_table(metrics_dir, config.methods)
        expected, split = None, None
    else:
        classes, roles = read_manifest_classes(manifest), read_manifest_roles(manifest)
        failures = read_failures(metrics_dir, config.methods, videos=classes)
        config = _without_hopeless_methods(config, failures, classes, roles)
        long = collect_by_role(metrics_dir, config, classes, roles)
        split = split_by_role(long, config, roles)
        expected = sum(1 for v in classes if roles.get(v, ROLE_TEST) == ROLE_TEST)
    all_long = long
    val_summary = pd.DataFrame(columns=SUMMARY_COLUMNS)
    val_paired = pd.DataFrame(columns=FAMILY_PAIRED_COLUMNS)
    n_validation = 0
    if split is not None:
        long, config, val_long, val_config = split
        val_summary = summary_table(val_long, val_config)
        val_paired = apply_family(
            paired_table(val_long, val_config), val_config.statistics, val_config.variants
        )
        n_validation = int(val_long["video"].nunique())
    dropped = dropped_pairs(failures, full_config.variants, full_config.baseline)
    summary = summary_table(long, config)
    paired = apply_family(paired_table(long, config), config.statistics, config.variants)
    paired = paired.merge(dropped, on="method", how="left")
    per_class = per_class_table(long, config)
    per_type = per_type_table(
        long, config.variants, config.baseline, config.statistics, config.bootstrap
    )
    cost = cost_table(all_long, generations_dir, full_config)
    branches = branch_table(all_long, generations_dir, full_config)
    text = summary_markdown(
        long, summary, paired, per_class, cost, config, expected, per_type,
        validation=(val_paired, n_validation, full_config.variants),
    )  # fmt: skip
    text += failures_markdown(failures, full_config.methods, dropped)
    text += branches_markdown(branches)
    out = Path(out_dir)
    paths = {name: out / name for name in OUTPUT_FILES}
    for name, table in (
        ("long.csv", long),
        ("summary.csv", summary),
        ("paired.csv", paired),
        ("per_class.csv", per_class),
        ("per_type.csv", per_type),
        ("cost.csv", cost),
        ("branches.csv", branches),
        ("failures.csv", failures),
        ("validation_summary.csv", val_summary),
        ("validation_paired.csv", val_paired),
    ):
        _write_csv(table, paths[name])
    write_text_atomic(paths["summary.md"], text)
    return paths
