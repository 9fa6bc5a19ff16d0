"""The command-line flags each rule passes to ``sora-tta``, built from the configuration
(one function per command; every path quoted)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sora_tta.models.compile import compile_mode
from sora_tta.study.config import section
from sora_tta.study.paths import checkpoint_paths, world_captions


def synthetic_data_args(config: Mapping[str, Any], out: str) -> str:
    """``sora-tta`` subcommand and flags that build ``data.synthetic`` into ``out``, shell-quoted:
    ``make-world`` for a procedural world (``world`` set), else ``make-synthetic-ucf101``."""
    synthetic = section(config, "data")["synthetic"]
    shared = {
        "--classes": synthetic["classes"],
        "--per-class": synthetic["per_class"],
        "--clips-per-group": synthetic["clips_per_group"],
        "--frames": synthetic["frames"],
        "--seed": synthetic["seed"],
    }
    if synthetic.get("world"):
        flags = {"--out": out, "--distribution": synthetic["world"], **shared}
        return "make-world " + _options({**flags, "--broken": bool(synthetic["broken"])})
    flags = {**shared, "--no-broken": not synthetic["broken"]}
    return f"make-synthetic-ucf101 {shlex.quote(out)} " + _options(flags)


def manifest_options(config: Mapping[str, Any]) -> str:
    """Optional ``sora-tta manifest`` flags of the ``selection`` section, shell-quoted."""
    selection = section(config, "selection")
    return _options(
        {
            "--per-class": selection.get("per_class"),
            "--total": selection.get("total"),
            "--max-per-group": selection.get("max_per_group"),
            "--list": selection.get("list"),
            "--caption-overrides": selection.get("caption_overrides") or world_captions(config),
            "--decode-check": bool(selection.get("decode_check")),
            **validation_options(selection.get("validation")),
            "--exclude": json.dumps(selection["exclude"]) if selection.get("exclude") else None,
        }
    )


def validation_options(validation: Mapping[str, Any] | None) -> dict[str, Any]:
    """``sora-tta manifest`` flags of ``selection.validation`` (none when it is null)."""
    if not validation:
        return {}
    return {
        "--validation-subset": validation.get("subset", "train"),
        "--validation-split": validation.get("split"),
        "--validation-per-class": validation.get("per_class"),
        "--validation-total": validation.get("total"),
        "--validation-max-per-group": validation.get("max_per_group"),
    }


def _options(flags: Mapping[str, Any]) -> str:
    """``--flag value`` pairs, shell-quoted; ``True`` is a bare flag, ``None``/``False`` none."""
    parts = []
    for flag, value in flags.items():
        if value is True:
            parts.append(flag)
        elif value is not None and value is not False:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def preprocess_options(config: Mapping[str, Any]) -> str:
    """Flags of ``sora-tta preprocess`` besides input and output."""
    selection, sampling = section(config, "selection"), section(config, "sampling")
    return _options(
        {
            "--start-frame": selection.get("start_frame", 0),
            "--num-frames": sampling.get("num_frames"),
            "--height": sampling.get("height"),
            "--width": sampling.get("width"),
            "--expected-size": selection.get("expected_size"),
        }
    )


def generate_options(config: Mapping[str, Any], tta: bool = False) -> str:
    """Flags of ``sora-tta generate`` shared by every video (of TTA methods when ``tta``)."""
    generation = section(config, "generation")
    return _options(
        {
            "--checkpoint-dir": checkpoint_paths(config).root,
            "--seed": generation.get("seed", 0),
            "--device": generation.get("device", "auto"),
            "--dtype": generation.get("dtype", "auto"),
            "--save-adapter": tta and bool(generation.get("save_adapter")),
            "--no-progress": True,
            "--compile": compile_mode(generation.get("compile", "auto")),
            "--compile-cache-dir": generation.get("compile_cache_dir"),
            "--stage-dir": generation.get("stage_dir"),
        }
    )


def evaluate_options(config: Mapping[str, Any]) -> str:
    """Flags of ``sora-tta evaluate`` shared by every method and class."""
    sampling, evaluation = section(config, "sampling"), section(config, "evaluation")
    return _options(
        {
            "--context-frames": sampling.get("num_cond_frames"),
            "--num-frames": sampling.get("num_frames"),
            "--lpips-backbone": evaluation.get("lpips_backbone", "alexnet"),
            "--lpips-seed": evaluation.get("lpips_seed", 0),
            "--device": evaluation.get("device", "auto"),
        }
    )


def fvd_options(config: Mapping[str, Any]) -> str:
    """Flags of ``sora-tta fvd`` from ``evaluation`` and ``aggregate`` (no ``--weights``
    without ``evaluation.fvd_weights``: the command then writes why FVD was skipped)."""
    sampling, evaluation = section(config, "sampling"), section(config, "evaluation")
    return _options(
        {
            "--weights": evaluation.get("fvd_weights"),
            "--context-frames": sampling.get("num_cond_frames"),
            "--num-frames": sampling.get("num_frames"),
            "--seed": section(config, "aggregate").get("seed"),
            "--device": evaluation.get("device", "auto"),
        }
    )


def aggregate_options(config: Mapping[str, Any], methods: Sequence[str]) -> str:
    """Flags of ``sora-tta aggregate`` for the ``statistics`` section: the declared primary
    endpoint and family, variant names resolved to method ids (``ValueError`` naming the
    problem when a name matches no variant or the declaration contradicts itself)."""
    from sora_tta.study.variants import BASELINE, resolve_variant

    stats = section(config, "statistics")
    primary, family = stats.get("primary", {}), stats.get("family", {})
    metrics = list(family.get("metrics", []))
    segments = list(family.get("segments", []))
    variants = [m for m in methods if m != BASELINE]
    final = stats.get("final_variants")
    final_ids = None if final is None else [resolve_variant(v, variants) for v in final]
    primary_id = primary.get("variant")
    if primary_id is not None:
        primary_id = resolve_variant(primary_id, variants)
        if final_ids is not None and primary_id not in final_ids:
            raise ValueError(f"primary variant {primary['variant']!r} is not a final variant")
    if metrics and primary.get("metric") not in metrics:
        raise ValueError(f"primary metric {primary.get('metric')!r} is not in family.metrics")
    if segments and primary.get("segment") not in segments:
        raise ValueError(f"primary segment {primary.get('segment')!r} is not in family.segments")
    return _options(
        {
            "--alpha": stats.get("alpha"),
            "--primary-metric": primary.get("metric"),
            "--primary-segment": primary.get("segment"),
            "--primary-variant": primary_id,
            "--family-metrics": ",".join(metrics) or None,
            "--family-segments": ",".join(segments) or None,
            "--final-variants": None if final_ids is None else ",".join(final_ids),
            "--min-group-n": stats.get("min_group_n"),
        }
    )
