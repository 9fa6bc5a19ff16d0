"""Unit tests of sora_tta.study.options: every rule's flags are accepted by its command."""

from __future__ import annotations

import pytest

from sora_tta.study import config as study_config
from sora_tta.study import (
    options,
)
from sora_tta.study import variants as V

SCHEMA = study_config.load_schema()


@pytest.mark.parametrize(
    ("builder", "command"),
    [
        (options.preprocess_options, "preprocess"),
        (options.generate_options, "generate"),
        (options.evaluate_options, "evaluate"),
        (options.manifest_options, "manifest"),
        (options.fvd_options, "fvd"),
    ],
)
@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_option_strings_are_accepted_by_the_commands(shipped_config, builder, command, name):
    """The precomputed flags parse with the real sora-tta parsers."""
    import shlex

    from sora_tta.cli import build_parser

    config = shipped_config(name, defaults=True)
    required = {
        "preprocess": ["--input", "a.avi", "--output", "b.mkv"],
        "generate": [
            "--clip", "c.mkv", "--video-id", "v", "--method-json", "m.json",
            "--prompt-embedding", "p", "--negative-embedding", "n", "--checkpoint-dir", "d",
            "--out-dir", "o",
        ],
        "evaluate": [
            "--generated", "g.mkv", "--reference", "r.mkv", "--video-ids", "v", "--method", "m",
            "--class-name", "C", "--out", "o.json",
        ],
        "manifest": ["--ucf-root", "u", "--splits-dir", "s", "--out", "m.csv"],
        "fvd": [
            "--generations-dir", "g", "--clips-dir", "c", "--manifest", "m.csv",
            "--methods", "baseline", "--out", "fvd.csv",
        ],
    }[command]  # fmt: skip
    args = build_parser().parse_args([command, *required, *shlex.split(builder(config))])
    if command == "generate":
        assert args.device == config["generation"]["device"]
        assert args.checkpoint_dir.as_posix() == config["checkpoints"]["dir"]
    if command == "evaluate":
        assert args.lpips_backbone == config["evaluation"]["lpips_backbone"]
        assert args.context_frames == config["sampling"]["num_cond_frames"]
    if command == "fvd":
        assert args.weights == config["evaluation"]["fvd_weights"]  # null: FVD skipped
        assert args.context_frames == config["sampling"]["num_cond_frames"]
        assert args.seed == config["aggregate"]["seed"]
    if command == "preprocess":
        assert (args.height, args.width) == (
            config["sampling"]["height"],
            config["sampling"]["width"],
        )


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_aggregate_options_declare_the_family(shipped_config, name):
    """The statistics section becomes aggregate flags that the command turns into the
    declared StatisticsConfig, variant names resolved to method ids."""
    import shlex

    from sora_tta.cli import build_parser
    from sora_tta.evaluation.commands import statistics_config

    config = shipped_config(name, defaults=True)
    variants = V.expand_variants(
        config["variants"], config["adapt"], kinds=study_config.adapt_param_kinds(SCHEMA)
    )
    methods = V.method_ids(variants)
    required = ["--metrics-dir", "m", "--methods", ",".join(methods), "--out-dir", "o"]
    flags = shlex.split(options.aggregate_options(config, methods))
    stats = statistics_config(build_parser().parse_args(["aggregate", *required, *flags]))
    declared = config["statistics"]
    final = [V.resolve_variant(v, methods) for v in declared["final_variants"]]
    assert stats.final_variants == tuple(final) and stats.primary_variant == final[0]
    assert (stats.primary_metric, stats.primary_segment) == ("psnr", "continuation")
    assert stats.alpha == declared["alpha"] and stats.min_group_n == declared["min_group_n"]


def test_aggregate_options_reject_contradictions():
    methods = ["baseline", "a-1f", "b-2e"]
    config = {"statistics": {"primary": {"metric": "psnr", "segment": "continuation",
              "variant": "b"}, "family": {"metrics": ["psnr"], "segments": ["continuation"]},
              "final_variants": ["a"]}}  # fmt: skip
    with pytest.raises(ValueError, match="not a final variant"):
        options.aggregate_options(config, methods)
    config["statistics"]["final_variants"] = ["c"]
    with pytest.raises(ValueError, match="matches 0"):
        options.aggregate_options(config, methods)
    config["statistics"].update(final_variants=None, family={"metrics": ["ssim"]})
    with pytest.raises(ValueError, match="primary metric"):
        options.aggregate_options(config, methods)


def test_generate_options_carry_compile_and_staging() -> None:
    config = {"generation": {"compile": False, "stage_dir": "/local/$USER/ck",
                             "compile_cache_dir": "/local/$USER/inductor"}}  # fmt: skip
    flags = options.generate_options(config)
    assert "--compile off" in flags  # YAML's unquoted off
    assert "--stage-dir '/local/$USER/ck'" in flags  # expanded on the node, not here
    assert "--compile-cache-dir '/local/$USER/inductor'" in flags
    assert "--stage-dir" not in options.generate_options({"generation": {}})
