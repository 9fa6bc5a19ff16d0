"""Unit tests of sora_tta.study.snakemake_cli: Snakemake's command line and lint output."""

from __future__ import annotations

import pytest

from sora_tta.study import (
    snakemake_cli,
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-n"], True),
        (["--cores", "2", "-np"], True),
        (["--dry-run"], True),
        (["--cores", "2"], False),
        (["--config", "name=-n"], False),
        (["all", "-p", "--", "-n"], False),
    ],
)
def test_dry_run_is_read_from_the_command_line(argv, expected):
    assert snakemake_cli.is_dry_run(argv) is expected


def test_forced_rules_are_read_from_the_command_line():
    argv = ["--cores", "2", "--forcerun", "encode_prompts", "plot", "-p", "all"]
    assert snakemake_cli.forced_rules(argv) == {"encode_prompts", "plot"}
    assert snakemake_cli.forced_rules(["-R", "encode_prompts"]) == {"encode_prompts"}
    assert snakemake_cli.forced_rules(["all"]) == set()


def test_only_the_conda_lint_is_accepted():
    text = """Lints for rule evaluate (line 8, workflow/rules/evaluate.smk):
    * Specify a conda environment or container for each rule.:
      This way, the used software for each specific step is documented.

Lints for snakefile workflow/rules/common.smk:
    * Mixed rules and functions in same snakefile.:
      Small one-liner functions used only once should be defined as lambda
"""
    assert snakemake_cli.unexpected_lints(text) == [
        "snakefile workflow/rules/common.smk: Mixed rules and functions in same snakefile."
    ]
