"""Unit tests of sora_tta.study.methods: method files read by generate, the methods table."""

from __future__ import annotations

import pytest

from sora_tta.study import config as study_config
from sora_tta.study import (
    methods,
)
from sora_tta.study import variants as V

SCHEMA = study_config.load_schema()


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_method_settings_are_read_by_generate(shipped_config, name):
    """Each method's --method-json (as the workflow writes it) parses as the command's spec."""
    method_file = pytest.importorskip("sora_tta.tta.method")
    config = shipped_config(name, defaults=True)
    variants = V.expand_variants(
        config["variants"], config["adapt"], kinds=study_config.adapt_param_kinds(SCHEMA)
    )
    for method, adapt in [("baseline", None), *((v.method_id, v.params) for v in variants)]:
        spec = method_file.MethodSpec.from_dict(methods.method_settings(config, method, adapt))
        assert spec.method == method and spec.sampling.num_steps == config["sampling"]["num_steps"]
        assert (spec.adapt is None) == (adapt is None)
        if adapt is not None:
            assert spec.adapt.to_dict() == {**spec.adapt.to_dict(), **dict(adapt)}


def test_methods_rows_and_tsv():
    from sora_tta.study.variants import expand_variants

    variants = expand_variants({"named": {"a": {"rank": 4}}}, {"rank": 16, "lr": 1e-3})
    rows = methods.methods_rows(variants)
    assert rows[0]["method"] == rows[0]["analysis"] == "baseline"
    assert rows[1] == {
        "method": variants[0].method_id,
        "name": "a",
        "changed": '{"rank":4}',
        "parameters": '{"lr":0.001,"rank":4}',
        "analysis": "exploratory",
    }
    assert methods.methods_rows(variants, [variants[0].method_id])[1]["analysis"] == "final"
    text = methods.rows_to_tsv(rows)
    assert text.splitlines()[0] == "method\tname\tchanged\tparameters\tanalysis"
    assert len(text.splitlines()) == 3
