"""Unit tests of sora_tta.study.config: the shipped configurations, every invalid value's
message, command-line overrides, paths outside the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sora_tta.study import config as study_config
from sora_tta.study import (
    methods,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA = study_config.load_schema()


def mutate(shipped_config, path: str, value):
    config = shipped_config("config.yaml")
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_shipped_configs_are_valid(shipped_config, name):
    assert study_config.config_problems(shipped_config(name), SCHEMA) == []


def test_real_config_carries_the_study_settings(shipped_config):
    config = shipped_config("config.yaml")
    sampling, adapt = config["sampling"], config["adapt"]
    assert (sampling["height"], sampling["width"], sampling["num_steps"]) == (224, 288, 25)
    assert (sampling["guidance"], sampling["guidance_img"]) == (7.5, 3.0)
    assert (adapt["rank"], adapt["alpha"], adapt["lr"]) == (16, 32.0, 2e-4)
    assert (adapt["steps"], adapt["warmup_steps"]) == (100, 5)
    assert config["evaluation"]["lpips_backbone"] == "alexnet"
    assert shipped_config("demo.yaml")["evaluation"]["lpips_backbone"] == "random"


def test_schema_defaults_match_adapt_config():
    adapt = pytest.importorskip("sora_tta.tta.adapt")
    method = pytest.importorskip("sora_tta.tta.method")
    props = SCHEMA["properties"]
    defaults = {k: p["default"] for k, p in props["adapt"]["properties"].items()}
    assert defaults == adapt.AdaptConfig().to_dict()  # one default per setting
    sampling = {
        k: props["sampling"]["properties"][k]["default"] for k in methods.SAMPLING_JSON_KEYS
    }
    assert sampling == method.SamplingConfig().to_dict()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("adapt.lr", -1, "adapt.lr: -1 is less than the minimum of 0"),
        ("adapt.rank", "16", "adapt.rank: '16' is not of type 'integer' (LoRA rank)"),
        (
            "adapt.mode",
            "copy",
            "adapt.mode: 'copy' is not one of ['denoise', 'continue', 'mixed', 'published']",
        ),
        ("adapt.betas", [0.9], "adapt.betas: [0.9] is too short"),
        ("adapt.warmup_steps", 500, "adapt: warmup_steps (500) must not exceed steps (100)"),
        ("sampling.height", 100, "sampling.height: 100 is not a multiple of 16"),
        ("sampling.num_frames", 64, "sampling.num_frames: must be 4k + 1"),
        ("sampling.num_cond_frames", 65, "sampling.num_cond_frames (65) must be below num_frames"),
        ("sampling.guidance", "high", "sampling.guidance: 'high' is not of type 'number'"),
        ("selection.split", 4, "selection.split: 4 is not one of [1, 2, 3]"),
        ("selection.per_class", 2, "selection: per_class and total are exclusive"),
        (
            "selection.validation",
            {"per_class": 2, "total": 5},
            "selection.validation: per_class and total are exclusive",
        ),
        ("selection.validation", {"subset": "dev"}, "selection.validation.subset: 'dev'"),
        ("statistics.alpha", 1.5, "statistics.alpha: 1.5 is greater than or equal"),
        ("selection.expected_size", "320", "selection.expected_size: '320' does not match"),
        ("evaluation.lpips_backbone", "vgg", "evaluation.lpips_backbone: 'vgg' is not one of"),
        ("evaluation.fvd_weights", 3, "evaluation.fvd_weights: 3 is not of type"),
        ("data.ucf_root", KeyError, "data.ucf_root: required (or set data.synthetic"),
        ("resources", {"gpu": 1}, "resources: per-rule threads, memory, runtime and GPUs"),
        ("adapt.rnak", 8, "adapt: unknown key(s) 'rnak'; valid keys: adapt_on, alpha, betas"),
        ("samplng", {}, "(top level): unknown key(s) 'samplng'"),
        ("variants.grids", {"g": {"fixed": {}}}, "variants.grids.g: 'axes' is a required property"),
    ],
)
def test_every_invalid_value_gets_a_clear_message(shipped_config, path, value, expected):
    problems = study_config.config_problems(mutate(shipped_config, path, value), SCHEMA)
    assert any(expected in p for p in problems), problems


def test_all_problems_are_reported_at_once(shipped_config):
    config = mutate(shipped_config, "adapt.lr", -1)
    config["sampling"]["num_steps"] = 0
    config["evaluation"]["device"] = "tpu"
    with pytest.raises(study_config.ConfigError) as info:
        study_config.check_config(config, SCHEMA, source="my.yaml")
    message = str(info.value)
    assert "invalid configuration (my.yaml), 3 problem(s)" in message
    for key in ("adapt.lr", "sampling.num_steps", "evaluation.device"):
        assert key in message


def test_synthetic_data_excludes_explicit_paths(shipped_config):
    config = shipped_config("demo.yaml")
    config["data"]["ucf_root"] = "data/UCF-101"
    problems = study_config.config_problems(config, SCHEMA)
    assert problems == [
        "data.ucf_root: leave unset with data.synthetic (the synthetic set defines it)"
    ]


def test_paths_outside_the_working_directory_are_refused(shipped_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = shipped_config("demo.yaml")
    config["checkpoints"]["dir"] = "../outside"
    config["data"]["synthetic"]["out"] = str(tmp_path / "inside" / "ucf")  # absolute, inside
    problems = study_config.config_problems(config, SCHEMA)
    assert problems == [
        f"checkpoints.dir: '../outside' is outside the working directory {tmp_path.resolve()} "
        "(set allow_paths_outside_workdir: true if that is intended)"
    ]
    config["allow_paths_outside_workdir"] = True
    assert study_config.config_problems(config, SCHEMA) == []


def test_yaml_1_1_exponent_gets_explained(shipped_config):
    config = shipped_config("demo.yaml")
    config["adapt"]["lr"] = yaml.safe_load("lr: 1.0e10")["lr"]
    assert config["adapt"]["lr"] == "1.0e10"  # PyYAML (YAML 1.1) reads a string
    (problem,) = study_config.config_problems(config, SCHEMA)
    assert problem.startswith("adapt.lr: '1.0e10' is not of type 'number'")
    assert "YAML 1.1" in problem and "1.0e+10" in problem


def test_command_line_values_take_the_schema_types(shipped_config):
    """Snakemake hands nested --config values (and booleans) over as text."""
    config = shipped_config("demo.yaml")
    config["preflight"] = "false"
    config["adapt"]["steps"] = "8"
    config["adapt"]["lr"] = "1e-3"
    config["variants"]["named"]["r4-continue"] = {"rank": "2"}
    overrides = {
        "preflight": "false",
        "adapt": {"steps": "8", "lr": "1e-3"},
        "variants": {"named": {"r4-continue": {"rank": "2"}}},
    }
    assert study_config.coerce_overrides(config, overrides, SCHEMA) == []
    assert config["preflight"] is False
    assert (config["adapt"]["steps"], config["adapt"]["lr"]) == (8, 1e-3)
    assert config["variants"]["named"]["r4-continue"] == {"rank": 2}
    assert study_config.config_problems(config, SCHEMA) == []
    config["preflight"] = "checkpoints"
    assert study_config.coerce_overrides(config, {"preflight": "checkpoints"}, SCHEMA) == []
    assert config["preflight"] == "checkpoints"


def test_command_line_errors_name_the_command_line(shipped_config):
    config = shipped_config("demo.yaml")
    config["adapt"]["steps"] = "eight"
    problems = study_config.coerce_overrides(config, {"adapt": {"steps": "eight"}}, SCHEMA)
    assert problems == ["adapt.steps: 'eight' is not an integer (--config on the command line)"]
    assert study_config.format_overrides({"adapt": {"steps": 8}, "preflight": False}) == (
        "adapt.steps=8, preflight=False"
    )


def test_no_rule_has_a_conda_directive_and_the_env_file_installs_this_repository():
    """Jobs run in the environment that runs Snakemake; envs/sora-tta.yaml creates that
    environment from the repository root ("-e .." is resolved from the file's folder)."""
    rules = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    for path in rules:
        assert "conda:" not in path.read_text(), path
    env = yaml.safe_load((REPO / "envs" / "sora-tta.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    editable = next(item for item in pip if item.startswith("-e "))
    target = (REPO / "envs" / editable.split()[1]).resolve()
    assert (target / "pyproject.toml").exists() and target == REPO
    assert "graphviz" in env["dependencies"]
