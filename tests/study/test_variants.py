"""Unit tests of sora_tta.study.variants: expansion, normalisation, method ids."""

from __future__ import annotations

import pytest

from sora_tta.study import config as study_config
from sora_tta.study import variants as V

DEFAULTS = {
    "rank": 16,
    "alpha": 32.0,
    "lr": 2e-4,
    "steps": 100,
    "mode": "continue",
    "targets": "attn+fused",
    "betas": [0.9, 0.999],
    "mixed_weights": {"denoise": 0.5, "continue": 0.5},
    "checkpoint_every": 25,
    "gradient_checkpointing": False,
}
KINDS = {
    "rank": "integer",
    "alpha": "number",
    "lr": "number",
    "steps": "integer",
    "mode": "string",
    "targets": "string",
    "betas": "array",
    "mixed_weights": "object",
    "checkpoint_every": "integer",
    "gradient_checkpointing": "boolean",
}


def expand(spec, check=None):
    return V.expand_variants(spec, DEFAULTS, kinds=KINDS, check=check)


def test_named_variants_merge_defaults_and_keep_order():
    variants = expand({"named": {"b": {"rank": 8}, "a": {}}})
    assert [v.name for v in variants] == ["b", "a"]
    assert variants[0].params["rank"] == 8
    assert variants[0].params["lr"] == 2e-4
    assert variants[0].overrides == {"rank": 8}
    assert variants[1].params == V.normalise_params({}, DEFAULTS, kinds=KINDS)


def test_method_id_is_name_plus_digest_of_parameters():
    (variant,) = expand({"named": {"r8": {"rank": 8}}})
    assert variant.method_id == f"r8-{variant.digest}"
    assert len(variant.digest) == V.DIGEST_LENGTH
    assert variant.digest == V.params_digest(variant.params)


def test_editing_parameters_changes_the_method_id():
    (old,) = expand({"named": {"r8": {"rank": 8}}})
    (new,) = expand({"named": {"r8": {"rank": 8, "lr": 1e-4}}})
    assert old.name == new.name
    assert old.method_id != new.method_id


def test_equal_parameters_written_differently_give_the_same_id():
    (a,) = expand({"named": {"x": {"lr": 0.0002, "alpha": 32, "rank": 16.0}}})
    (b,) = expand({"named": {"x": {"lr": 2.0e-4}}})
    assert a.method_id == b.method_id
    assert isinstance(a.params["alpha"], float)
    assert isinstance(a.params["rank"], int)


def test_changing_a_default_changes_ids_of_variants_that_inherit_it():
    (a,) = V.expand_variants({"named": {"x": {}}}, DEFAULTS, kinds=KINDS)
    (b,) = V.expand_variants({"named": {"x": {}}}, {**DEFAULTS, "steps": 50}, kinds=KINDS)
    assert a.method_id != b.method_id


def test_non_result_parameters_do_not_change_the_id():
    (a,) = expand({"named": {"x": {"checkpoint_every": 5, "gradient_checkpointing": True}}})
    (b,) = expand({"named": {"x": {}}})
    assert a.method_id == b.method_id
    assert a.params["checkpoint_every"] == 5


def test_grid_expands_cartesian_product_with_readable_names():
    spec = {
        "grids": {
            "sweep": {
                "axes": {
                    "rank": [8, 16],
                    "lr": [1e-4, 2e-4],
                    "steps": [20, 50, 100],
                    "mode": ["denoise", "continue"],
                },
                "fixed": {"targets": "attn+fused+mlp"},
            }
        }
    }
    variants = expand(spec)
    assert len(variants) == 2 * 2 * 3 * 2
    names = [v.name for v in variants]
    assert names[0] == "sweep-r8-lr1e-4-s20-denoise"
    assert "sweep-r16-lr2e-4-s100-continue" in names
    assert len(set(names)) == len(names)
    assert all(v.params["targets"] == "attn+fused+mlp" for v in variants)
    assert len({v.method_id for v in variants}) == len(variants)


def test_named_and_grid_variants_combine():
    spec = {"named": {"base": {}}, "grids": {"g": {"axes": {"rank": [4, 8]}}}}
    assert [v.name for v in expand(spec)] == ["base", "g-r4", "g-r8"]


@pytest.mark.parametrize(
    ("value", "text"),
    [(2e-4, "2e-4"), (1e-4, "1e-4"), (1.5e-5, "1.5e-5"), (0.5, "0.5"), (32.0, "32"), (0.0, "0"),
     (8, "8"), (True, "on"), ("attn+mlp", "attn+mlp"), ([0.9, 0.95], "0.9_0.95"),
     (r"double_blocks\.\d+", "double_blocks_._d+")],
)  # fmt: skip
def test_format_value(value, text):
    assert V.format_value(value) == text


def test_unknown_parameter_is_named():
    with pytest.raises(V.VariantError, match=r"variants\.named\.x: unknown .*\['rnak'\]"):
        expand({"named": {"x": {"rnak": 8}}})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rank": "8"}, "rank must be an integer"),
        ({"rank": 8.5}, "rank must be an integer"),
        ({"rank": True}, "rank must be an integer"),
        ({"lr": "fast"}, "lr must be a finite number"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"mode": 3}, "mode must be a string"),
        ({"betas": 0.9}, "betas must be a list of numbers"),
        ({"mixed_weights": [1]}, "mixed_weights must be a mapping"),
        ({"gradient_checkpointing": "yes"}, "gradient_checkpointing must be true or false"),
    ],
)
def test_wrong_types_are_reported_with_variant_and_key(overrides, message):
    with pytest.raises(V.VariantError, match=rf"variants\.named\.bad: {message}"):
        expand({"named": {"bad": overrides}})


@pytest.mark.parametrize("name", ["baseline", "-x", "a/b", "a b", ""])
def test_invalid_or_reserved_names(name):
    with pytest.raises(V.VariantError, match="name"):
        expand({"named": {name: {}}})


def test_duplicate_parameter_sets_are_rejected():
    with pytest.raises(V.VariantError, match=r"same adaptation parameters as variants\.named\.a"):
        expand({"named": {"a": {"rank": 8}, "b": {"rank": 8.0}}})


def test_grid_name_clash_with_named_variant():
    with pytest.raises(V.VariantError, match="already declared"):
        expand({"named": {"g-r4": {"lr": 1e-3}}, "grids": {"g": {"axes": {"rank": [4]}}}})


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"axes": {}}, "axes must be a non-empty mapping"),
        ({"axes": {"rank": []}}, "expected a non-empty list"),
        ({"axes": {"rank": 8}}, "expected a non-empty list"),
        ({"axes": {"rank": [8]}, "fixed": {"rank": 4}}, "both as axes and as fixed"),
        ({"axes": {"rank": [8]}, "extra": 1}, "expected a mapping with 'axes'"),
    ],
)
def test_invalid_grids(grid, message):
    with pytest.raises(V.VariantError, match=message):
        expand({"grids": {"g": grid}})


def test_unknown_section_key():
    with pytest.raises(V.VariantError, match="unknown key"):
        expand({"named": {}, "grid": {}})


def test_check_callback_problems_are_raised():
    def check(params):
        return ["lr too large"] if params["lr"] > 1 else []

    assert expand({"named": {"ok": {}}}, check=check)
    with pytest.raises(V.VariantError, match=r"variants\.named\.big: lr too large"):
        expand({"named": {"big": {"lr": 5.0}}}, check=check)


def test_method_ids_and_wildcard_pattern():
    variants = expand({"named": {"a.b": {}, "c": {"rank": 4}}})
    assert V.method_ids(variants) == ["baseline", *(v.method_id for v in variants)]
    pattern = V.method_wildcard_pattern(variants)
    import re

    assert re.fullmatch(pattern, variants[0].method_id)
    assert not re.fullmatch(pattern, "aXb-" + variants[0].digest)
    assert not re.fullmatch(V.method_wildcard_pattern([]), "anything")


def test_schema_adapt_section_drives_types_and_ranges():
    """The real schema: its defaults are valid and its ranges reach variant checks."""
    schema = study_config.load_schema()
    kinds = study_config.adapt_param_kinds(schema)
    check = study_config.adapt_param_check(schema)
    defaults = {k: p["default"] for k, p in schema["properties"]["adapt"]["properties"].items()}
    (variant,) = V.expand_variants({"named": {"d": {}}}, defaults, kinds=kinds, check=check)
    assert variant.params == V.normalise_params({}, defaults, kinds=kinds)
    with pytest.raises(V.VariantError, match=r"variants\.named\.neg: lr: .*0"):
        V.expand_variants({"named": {"neg": {"lr": -1.0}}}, defaults, kinds=kinds, check=check)
    with pytest.raises(V.VariantError, match=r"warmup_steps .* must not exceed steps"):
        V.expand_variants({"named": {"w": {"steps": 3}}}, defaults, kinds=kinds, check=check)
    with pytest.raises(V.VariantError, match="mode: 'copy' is not one of"):
        V.expand_variants({"named": {"m": {"mode": "copy"}}}, defaults, kinds=kinds, check=check)


def test_adapt_parameters_are_accepted_by_adapt_config():
    """Every schema key is an AdaptConfig field: the adapt JSON the workflow writes loads."""
    adapt = pytest.importorskip("sora_tta.tta.adapt")
    schema = study_config.load_schema()
    defaults = {k: p["default"] for k, p in schema["properties"]["adapt"]["properties"].items()}
    params = V.normalise_params({}, defaults, kinds=study_config.adapt_param_kinds(schema))
    config = adapt.AdaptConfig.from_dict(params)
    assert config.rank == 16 and config.lr == 2e-4 and config.steps == 100
    assert config.warmup_steps == 5 and config.alpha == 32.0


def test_cross_video_donors_are_a_seeded_derangement_across_classes() -> None:
    videos = [(f"v_{c}_{i}", c) for c in ("A", "B", "C") for i in range(3)] + [("v_D_0", "D")]
    classes = dict(videos)
    donors = V.cross_video_donors(videos, seed=0)
    assert sorted(donors) == sorted(classes) and sorted(donors.values()) == sorted(classes)
    assert all(classes[video] != classes[donor] for video, donor in donors.items())
    assert V.cross_video_donors(list(reversed(videos)), seed=0) == donors  # order-free
    assert V.cross_video_donors(videos, seed=1) != donors
    with pytest.raises(ValueError, match="at most half"):
        V.cross_video_donors([("a", "X"), ("b", "X"), ("c", "Y")], seed=0)
    assert V.cross_video_donors([("a", "X"), ("b", "Y")], seed=3) == {"a": "b", "b": "a"}


def test_cross_video_donors_stay_within_their_selection() -> None:
    videos = [(f"{role}{c}{i}", c, role) for role in ("test", "validation") for c in "XYZ"
              for i in (1, 2) if (role, i) != ("validation", 2)]  # fmt: skip
    donors = V.cross_video_donors_by_role(videos, seed=0)
    role = {v: r for v, _, r in videos}
    classes = {v: c for v, c, _ in videos}
    assert set(donors) == set(role)
    assert all(role[d] == role[v] and classes[d] != classes[v] for v, d in donors.items())
    test_only = [(v, c) for v, c, r in videos if r == "test"]
    assert {v: donors[v] for v, _ in test_only} == V.cross_video_donors(test_only, seed=0)
    with pytest.raises(ValueError, match="validation videos: "):
        V.cross_video_donors_by_role([("a", "X", "validation"), ("b", "X", "validation")], 0)
