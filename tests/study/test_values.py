"""The one value checker: canonical forms, kinds from the schema and from dataclass fields."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sora_tta.study import config as study_config
from sora_tta.study import values
from sora_tta.study.variants import normalise_params


@pytest.mark.parametrize(
    ("value", "kind", "canonical"),
    [
        (16.0, "integer", 16),
        (1, "number", 1.0),
        ([0.9, 1], "array", [0.9, 1.0]),
        ((3, 1.0), "integer-array", [3, 1]),
        ({"b": 1, "a": 0.5}, "object", {"a": 0.5, "b": 1.0}),
        (False, "boolean", False),
    ],
)
def test_values_take_one_canonical_form(value, kind, canonical) -> None:
    result = values.normalise_value("key", value, kind)
    assert result == canonical and type(result) is type(canonical)
    if isinstance(result, dict):
        assert list(result) == sorted(result)


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (True, "integer", "key must be an integer"),
        (8.5, "integer", "key must be an integer"),
        (float("nan"), "number", "a finite number"),
        ("1", "number", "a finite number"),
        ("ab", "array", "a list of numbers"),
        ([1, "x"], "integer-array", r"key\[1\] must be an integer"),
        ({"a": True}, "object", r"key\.a must be a finite number"),
        (1, "boolean", "true or false"),
    ],
)
def test_wrong_values_name_where_and_key(value, kind, message) -> None:
    with pytest.raises(ValueError, match=rf"m\.json: .*{message}"):
        values.normalise_value("key", value, kind, "m.json")


def test_kinds_of_schema_and_of_dataclass_fields_agree() -> None:
    """The variants (kinds from the schema) and the method file (kinds from AdaptConfig's
    fields) check every adaptation setting the same way."""
    adapt = pytest.importorskip("sora_tta.tta.adapt")
    import typing

    schema_kinds = study_config.adapt_param_kinds(study_config.load_schema())
    hints = typing.get_type_hints(adapt.AdaptConfig)
    assert {k: values.kind_of_hint(hints[k]) for k in schema_kinds} == schema_kinds


@dataclass
class _Settings:
    steps: int = 1
    betas: tuple[float, float] = (0.9, 0.99)
    lengths: tuple[int, ...] = (1,)
    weights: dict[str, float] = field(default_factory=dict)
    name: str = "x"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_dataclass_from_json_checks_keys_types_and_the_class_own_rules() -> None:
    built = values.dataclass_from_json(
        _Settings, {"steps": 2.0, "betas": [1, 0], "lengths": [2], "weights": {"a": 1}}, "s.json"
    )
    assert built == _Settings(2, (1.0, 0.0), (2,), {"a": 1.0})
    assert isinstance(built.betas, tuple) and isinstance(built.lengths, tuple)
    with pytest.raises(ValueError, match=r"s\.json: unknown keys \['step'\]; valid keys"):
        values.dataclass_from_json(_Settings, {"step": 2}, "s.json")
    with pytest.raises(ValueError, match=r"s\.json: name must be a string"):
        values.dataclass_from_json(_Settings, {"name": 3}, "s.json")
    with pytest.raises(ValueError, match=r"s\.json: steps must be >= 1"):
        values.dataclass_from_json(_Settings, {"steps": 0}, "s.json")
    with pytest.raises(ValueError, match=r"s\.json: expected a JSON object, got list"):
        values.dataclass_from_json(_Settings, [1], "s.json")


def test_method_file_settings_hash_as_the_variant_does() -> None:
    """A variant's parameters read back through AdaptConfig give the same canonical values
    (so the method id's digest and the adapter's result hash describe one thing)."""
    adapt = pytest.importorskip("sora_tta.tta.adapt")
    schema = study_config.load_schema()
    kinds = study_config.adapt_param_kinds(schema)
    defaults = {k: p["default"] for k, p in schema["properties"]["adapt"]["properties"].items()}
    params = normalise_params(
        {"rank": 8.0, "lr": 1, "betas": [0.9, 1 - 1e-3]}, defaults, "v", kinds
    )
    assert adapt.AdaptConfig.from_dict(params).to_dict() == params
