"""Unit tests of sora_tta.study.resources: the workflow profile is the one home of resources."""

from __future__ import annotations

import pytest
import yaml

from sora_tta.study import (
    resources,
)


def test_workflow_profile_is_the_one_place_of_resources(shipped_config):
    """Every rule that becomes a cluster job has its resources in profiles/default; GPU
    rules ask for one GPU; retries make the runtime grow with the attempt."""
    profile = yaml.safe_load(resources.WORKFLOW_PROFILE.read_text())
    declared = resources.profile_resources()
    assert set(profile["set-threads"]) == set(declared)
    gpu = ["encode_prompts", "generate_baseline", "generate_tta", "smoke_generate"]
    assert resources.gpu_rules() == gpu
    assert declared["generate_tta"] == resources.RuleResources(8, 96000, 180, 1)
    assert all(str(v["runtime"]).endswith("* attempt") for v in profile["set-resources"].values())
    assert profile["keep-going"] and profile["rerun-incomplete"] and profile["retries"] >= 1
    for name in ("config.yaml", "demo.yaml"):
        assert "resources" not in shipped_config(name)
    with pytest.raises(ValueError, match="unsupported resource expression"):
        resources._first_attempt("input.size_mb * 2")


def test_every_rule_that_becomes_a_job_has_its_resources():
    """A rule missing from the workflow profile would be submitted with the executor's
    defaults (and the SLURM test could not check it)."""
    import re

    repo = resources.WORKFLOW_PROFILE.parents[2]
    text = "\n".join(
        p.read_text() for p in [repo / "Snakefile", *(repo / "workflow" / "rules").glob("*.smk")]
    )
    rules = set(re.findall(r"^\s*(?:rule|checkpoint) (\w+):", text, re.M))
    rules |= set(re.findall(r"^\s*use rule \w+ as (\w+)", text, re.M))
    local = set()
    for block in re.findall(r"^localrules:\n((?:    \w+,?\n)+)", text, re.M):
        local |= set(re.findall(r"\w+", block))
    assert rules - local - set(resources.profile_resources()) == set()
