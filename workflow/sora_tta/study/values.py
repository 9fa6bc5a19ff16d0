"""JSON values in canonical form: the one checker of the settings the study hands around.

Two kinds of readers take adaptation and sampling settings from JSON-like data:

- the workflow, expanding the ``variants`` section (overrides of the ``adapt`` defaults):
  each parameter's *kind* comes from the configuration schema (:func:`kinds_from_schema`);
- a generation job, reading its method file into ``AdaptConfig`` / ``SamplingConfig``:
  each field's kind comes from the dataclass type hint (:func:`dataclass_from_json`).

Both go through :func:`normalise_value`, so a value accepted (and the form it is hashed in)
is the same on both sides: integers written ``16.0`` become ``16``, numbers become floats
(``1`` -> ``1.0``), booleans are never numbers. Ranges, enumerations and cross-field rules
are not checked here: the schema checks the configuration file as a whole
(:mod:`sora_tta.study.config`) and each dataclass checks itself on construction.

Pure Python (no torch).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from typing import Any

#: JSON-schema type names (``integer-array``: an array whose items are integers, e.g. a set
#: of condition lengths; ``array``: an array of numbers; ``object``: names to numbers).
KINDS = ("boolean", "integer", "number", "string", "array", "integer-array", "object")
INTEGER_ARRAY = "integer-array"
_SCALAR_HINTS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def kind_of(value: Any) -> str:
    """JSON-schema type name of a Python value (``True`` is a boolean, ``2`` an integer)."""
    for python_type in (bool, int, float, str):  # bool first: True is also an int
        if isinstance(value, python_type):
            return _SCALAR_HINTS[python_type]
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    raise ValueError(f"unsupported parameter value {value!r}")


def kinds_from_schema(properties: Mapping[str, Any]) -> dict[str, str]:
    """Parameter -> kind from the ``properties`` of a JSON schema (their ``type`` entries)."""
    kinds = {}
    for key, prop in properties.items():
        kind = prop.get("type") if isinstance(prop, Mapping) else None
        items = prop.get("items") if isinstance(prop, Mapping) else None
        if kind == "array" and isinstance(items, Mapping) and items.get("type") == "integer":
            kind = INTEGER_ARRAY
        if kind not in KINDS:
            raise ValueError(f"schema of {key}: unsupported or missing type {kind!r}")
        kinds[key] = kind
    return kinds


def kind_of_hint(hint: Any) -> str:
    """Kind of a dataclass field's type hint (``tuple[int, ...]`` is an integer array)."""
    if hint in _SCALAR_HINTS:
        return _SCALAR_HINTS[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    items = [a for a in args if a is not Ellipsis]
    if origin in (tuple, list) and items and all(a is int for a in items):
        return INTEGER_ARRAY
    if origin in (tuple, list) and items and all(a is float for a in items):
        return "array"
    if origin is dict and tuple(args) == (str, float):
        return "object"
    raise TypeError(f"unsupported field type {hint!r}")


def normalise_value(key: str, value: Any, kind: str, where: str = "variant") -> Any:
    """Check ``value`` against ``kind`` and return it in canonical form.

    Integers given as ``16.0`` become ``16``; numbers become finite floats (``1`` -> ``1.0``),
    so equal settings hash equally however they were written; arrays become lists, objects
    dictionaries sorted by name, both holding numbers.

    Raises:
        ValueError: naming ``where`` and ``key``, with what was expected.
    """

    def fail(expected: str) -> ValueError:
        return ValueError(f"{where}: {key} must be {expected}, got {value!r}")

    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind == "integer":
        if not is_number or (isinstance(value, float) and not value.is_integer()):
            raise fail("an integer")
        return int(value)
    if kind == "number":
        if not is_number or not math.isfinite(value):
            raise fail("a finite number")
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if kind in ("array", INTEGER_ARRAY):
        item = "integer" if kind == INTEGER_ARRAY else "number"
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise fail(f"a list of {item}s")
        return [normalise_value(f"{key}[{i}]", v, item, where) for i, v in enumerate(value)]
    if kind == "object":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise fail("a mapping of names to numbers")
        return {k: normalise_value(f"{key}.{k}", value[k], "number", where) for k in sorted(value)}
    raise ValueError(f"{where}: unsupported type {kind!r} for {key}")


def dataclass_from_json(cls: type, data: Any, source: str) -> Any:
    """Instantiate the dataclass ``cls`` from a JSON object, each value checked and brought
    into canonical form by :func:`normalise_value` (tuple fields become tuples).

    Raises:
        ValueError: naming ``source``: not an object, unknown keys (the valid ones listed), a
            wrong type, or what the dataclass's own checks reject.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; valid keys are {names}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        canonical = normalise_value(key, value, kind_of_hint(hints[key]), source)
        values[key] = tuple(canonical) if typing.get_origin(hints[key]) is tuple else canonical
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from err
