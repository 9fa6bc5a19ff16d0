"""The configuration: its JSON schema, the cross-field rules a schema cannot express, and
the typing of command-line overrides. Every invalid value is listed at once, one line each."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sora_tta.study.values import kinds_from_schema

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem on its own line."""


def load_schema(path: str | os.PathLike[str] = SCHEMA_PATH) -> dict[str, Any]:
    """Read the workflow's JSON schema (YAML)."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def _location(path: Iterable[Any]) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _location(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f"; valid keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))}{hint}"
    description = error.schema.get("description") if isinstance(error.schema, Mapping) else None
    message = f"{where}: {error.message}"
    if description:
        message += f" ({' '.join(str(description).split())})"
    if error.validator == "type" and _looks_like_exponent(error.instance):
        message += (
            f"; YAML 1.1, which Snakemake reads, takes {error.instance!r} for a string: "
            "write the exponent with a dot and a sign (1.0e+10) or the plain number"
        )
    return message


def _looks_like_exponent(value: Any) -> bool:
    if not isinstance(value, str) or "e" not in value.lower():
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


#: Configuration keys holding paths (read, or written by the demo's rules).
PATH_KEYS = (
    ("data", "ucf_root"),
    ("data", "splits_dir"),
    ("data", "synthetic", "out"),
    ("checkpoints", "dir"),
    ("selection", "list"),
    ("selection", "caption_overrides"),
    ("evaluation", "fvd_weights"),
)


def outside_paths(
    config: Mapping[str, Any], workdir: str | os.PathLike[str] | None = None
) -> list[str]:
    """The path keys of ``config`` that lead outside ``workdir`` (default: the current
    folder, which is Snakemake's --directory), as problem lines."""
    root = Path(workdir or os.getcwd()).resolve()
    problems = []
    for keys in PATH_KEYS:
        value: Any = config
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if not isinstance(value, str) or not value:
            continue
        resolved = (root / value).resolve()
        if resolved != root and root not in resolved.parents:
            problems.append(
                f"{'.'.join(keys)}: {value!r} is outside the working directory {root} "
                "(set allow_paths_outside_workdir: true if that is intended)"
            )
    return problems


def schema_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every JSON-schema violation of ``config`` as one line naming the key."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return [_describe(error) for error in errors]


def _is_4k_plus_1(value: Any) -> bool:
    return isinstance(value, int) and value >= 1 and (value - 1) % 4 == 0


def section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``config[name]`` when it is a mapping, else an empty one (before validation)."""
    value = config.get(name)
    return value if isinstance(value, Mapping) else {}


def semantic_problems(config: Mapping[str, Any]) -> list[str]:
    """Cross-field rules the schema cannot express (values of the wrong type are skipped:
    the schema reports those)."""
    problems = []
    data = section(config, "data")
    if data.get("synthetic"):
        for key in ("ucf_root", "splits_dir"):
            if data.get(key):
                problems.append(
                    f"data.{key}: leave unset with data.synthetic (the synthetic set defines it)"
                )
    else:
        for key in ("ucf_root", "splits_dir"):
            if not data.get(key):
                problems.append(f"data.{key}: required (or set data.synthetic for the demo)")
    checkpoints = section(config, "checkpoints")
    if checkpoints.get("tiny") is not None and checkpoints.get("proxy") is True:
        problems.append("checkpoints: tiny and proxy are exclusive; set at most one")
    selection = section(config, "selection")
    if selection.get("per_class") is not None and selection.get("total") is not None:
        problems.append("selection: per_class and total are exclusive; set at most one")
    validation = selection.get("validation") or {}
    if validation.get("per_class") is not None and validation.get("total") is not None:
        problems.append("selection.validation: per_class and total are exclusive; set at most one")
    sampling = section(config, "sampling")
    for key in ("num_cond_frames", "num_frames"):
        if key in sampling and not _is_4k_plus_1(sampling[key]):
            problems.append(f"sampling.{key}: must be 4k + 1 (1, 5, 9, ...), got {sampling[key]}")
    cond, total = sampling.get("num_cond_frames"), sampling.get("num_frames")
    if isinstance(cond, int) and isinstance(total, int) and cond >= total:
        problems.append(f"sampling.num_cond_frames ({cond}) must be below num_frames ({total})")
    smoke = section(config, "smoke")
    for key in ("frames", "cond_frames"):
        if key in smoke and not _is_4k_plus_1(smoke[key]):
            problems.append(f"smoke.{key}: must be 4k + 1, got {smoke[key]}")
    cond, total = smoke.get("cond_frames"), smoke.get("frames")
    if isinstance(cond, int) and isinstance(total, int) and cond >= total:
        problems.append(f"smoke.cond_frames ({cond}) must be below smoke.frames ({total})")
    adapt = section(config, "adapt")
    problems += [f"adapt: {p}" for p in adapt_cross_field_problems(adapt)]
    if config.get("allow_paths_outside_workdir") is not True:
        problems += outside_paths(config)
    window = section(config, "sampling").get("num_cond_frames", 33)
    lengths = adapt.get("continue_frames")
    if isinstance(window, int) and _is_4k_plus_1(window) and isinstance(lengths, list):
        latent = (window - 1) // 4 + 1
        too_long = [k for k in lengths if isinstance(k, int) and k >= latent]
        if too_long:
            problems.append(
                f"adapt.continue_frames: {too_long} leave no loss frame in the {latent} latent "
                f"frames of sampling.num_cond_frames={window} (each k must be below {latent})"
            )
    if "resources" in config:
        problems.append(
            "resources: per-rule threads, memory, runtime and GPUs are set in the workflow "
            "profile profiles/default/config.yaml (set-threads, set-resources), not here"
        )
    return problems


def adapt_cross_field_problems(params: Mapping[str, Any]) -> list[str]:
    """Rules between adaptation parameters (warm-up within the steps, sensible mixed weights)."""
    problems = []
    steps, warmup = params.get("steps"), params.get("warmup_steps")
    if isinstance(steps, int) and isinstance(warmup, int) and warmup > steps:
        problems.append(f"warmup_steps ({warmup}) must not exceed steps ({steps})")
    weights = params.get("mixed_weights")
    positive = isinstance(weights, Mapping) and any(
        isinstance(w, (int, float)) and w > 0 for w in weights.values()
    )
    if params.get("mode") == "mixed" and not positive:
        problems.append("mixed_weights: at least one weight must be > 0 in mixed mode")
    return problems


def config_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """All problems of a configuration: schema violations first, then cross-field rules."""
    return schema_problems(config, schema) + semantic_problems(config)


def check_config(
    config: Mapping[str, Any],
    schema: Mapping[str, Any],
    source: str = "config",
) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config`` (none: return)."""
    problems = config_problems(config, schema)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"invalid configuration ({source}), {len(problems)} problem(s):\n{lines}")


COMMAND_LINE = "--config on the command line"


def format_overrides(overrides: Mapping[str, Any], prefix: str = "") -> str:
    """``--config`` values as ``key.sub=value`` items, for messages."""
    items = []
    for key, value in overrides.items():
        where = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.append(format_overrides(value, f"{where}."))
        else:
            items.append(f"{where}={value}")
    return ", ".join(items)


def _subschema(schema: Mapping[str, Any], root: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The schema of ``key`` inside an object schema (properties, then additionalProperties)."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    props = schema.get("properties", {})
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else {}


def _coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """``text`` as the schema's type (Snakemake hands nested --config values over as text)."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    enum = schema.get("enum", [])
    lowered = text.strip().lower()
    if lowered in ("true", "false") and ("boolean" in types or any(e is True for e in enum)):
        return lowered == "true"
    if lowered in ("null", "none", "~") and "null" in types:
        return None
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            if "number" not in types and "string" not in types:
                raise ValueError(f"{text!r} is not an integer") from None
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            if "string" not in types:
                raise ValueError(f"{text!r} is not a number") from None
    return text


def coerce_overrides(
    config: dict[str, Any],
    overrides: Mapping[str, Any],
    schema: Mapping[str, Any],
    _node: Mapping[str, Any] | None = None,
    _where: str = "",
) -> list[str]:
    """Convert, in ``config``, the text values given with ``--config`` to the schema's types
    (``steps=8`` inside a map arrives as ``'8'``, ``preflight=false`` as ``'false'``).
    Variant parameters (``variants.named.<name>.<param>``) take the ``adapt`` types.
    Returns one problem per value that does not convert, naming the command line."""
    node = schema if _node is None else _node
    problems = []
    for key, value in overrides.items():
        where = f"{_where}.{key}" if _where else str(key)
        sub = _subschema(node, schema, str(key))
        if where.startswith("variants.named.") and where.count(".") == 2:
            sub = schema["properties"]["adapt"]
        if isinstance(value, Mapping) and isinstance(config.get(key), dict):
            problems += coerce_overrides(config[key], value, schema, sub, where)
        elif isinstance(value, str) and key in config:
            try:
                config[key] = _coerce(value, sub)
            except ValueError as err:
                problems.append(f"{where}: {err} ({COMMAND_LINE})")
    return problems


def adapt_param_check(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], list[str]]:
    """Validator of one full adaptation parameter set against the schema's ``adapt`` section."""
    section = schema["properties"]["adapt"]
    validator = jsonschema.Draft202012Validator(
        {"type": "object", "properties": section["properties"], "additionalProperties": False}
    )

    def check(params: Mapping[str, Any]) -> list[str]:
        errors = sorted(validator.iter_errors(dict(params)), key=lambda e: list(e.absolute_path))
        problems = [_describe(e) for e in errors]
        return problems or adapt_cross_field_problems(params)

    return check


def adapt_param_kinds(schema: Mapping[str, Any]) -> dict[str, str]:
    """Parameter -> JSON type of the schema's ``adapt`` section (for normalisation)."""
    return kinds_from_schema(schema["properties"]["adapt"]["properties"])
