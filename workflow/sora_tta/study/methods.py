"""The method-file contract: what a method's JSON holds (sampling and adaptation settings)
and the methods table of the report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sora_tta.study.config import section


def final_method_ids(config: Mapping[str, Any], methods: Sequence[str]) -> list[str]:
    """Method ids of the final variants (``statistics.final_variants``; null = every variant)."""
    from sora_tta.study.variants import BASELINE, resolve_variant

    variants = [m for m in methods if m != BASELINE]
    final = section(config, "statistics").get("final_variants")
    return variants if final is None else [resolve_variant(v, variants) for v in final]


#: Keys of ``sampling`` that the sampler takes (``sampling`` of ``sora-tta generate
#: --method-json``; the rest sizes clips).
SAMPLING_JSON_KEYS = (
    "num_steps",
    "guidance",
    "guidance_img",
    "text_osci",
    "image_osci",
    "num_cond_frames",
    "num_frames",
)


def sampling_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The sampler settings of a validated configuration."""
    sampling = section(config, "sampling")
    return {key: sampling[key] for key in SAMPLING_JSON_KEYS}


def method_settings(
    config: Mapping[str, Any], method: str, adapt: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``--method-json`` content of one method (``adapt`` None: the baseline): everything
    that decides its generations, so a changed setting rewrites the file and reruns them."""
    return {
        "method": method,
        "sampling": sampling_settings(config),
        "adapt": None if adapt is None else dict(adapt),
    }


def methods_rows(variants: Iterable[Any], final: Sequence[str] = ()) -> list[dict[str, str]]:
    """One row per method (baseline first) for the methods table of the report; its
    ``analysis`` is ``baseline``, ``final`` (method id in ``final``) or ``exploratory``."""
    from sora_tta.hashing import canonical_json
    from sora_tta.study.variants import BASELINE

    rows = [
        {
            "method": BASELINE,
            "name": BASELINE,
            "changed": "",
            "parameters": "no adaptation",
            "analysis": BASELINE,
        }
    ]
    for variant in variants:
        rows.append(
            {
                "method": variant.method_id,
                "name": variant.name,
                "changed": canonical_json(dict(variant.overrides)),
                "parameters": canonical_json(dict(variant.params)),
                "analysis": "final" if variant.method_id in final else "exploratory",
            }
        )
    return rows


def rows_to_tsv(rows: list[Mapping[str, str]]) -> str:
    """Tab-separated text with a header from the first row's keys (tabs in values replaced)."""
    if not rows:
        return ""
    header = list(rows[0])
    lines = ["\t".join(header)]
    lines += ["\t".join(str(row[key]).replace("\t", " ") for key in header) for row in rows]
    return "\n".join(lines) + "\n"
