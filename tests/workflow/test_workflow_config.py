"""Unit tests of sora_tta.study: validation messages, resources, paths, preflight, options."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from sora_tta.study import config as study_config
from sora_tta.study import (
    methods,
    options,
    paths,
    preflight,
    report_pages,
    resources,
    snakemake_cli,
)
from sora_tta.study import variants as V

REPO = Path(__file__).resolve().parents[2]
SCHEMA = study_config.load_schema()


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_shipped_configs_are_valid(name):
    assert study_config.config_problems(load(name), SCHEMA) == []


def test_real_config_carries_the_study_settings():
    config = load("config.yaml")
    sampling, adapt = config["sampling"], config["adapt"]
    assert (sampling["height"], sampling["width"], sampling["num_steps"]) == (224, 288, 25)
    assert (sampling["guidance"], sampling["guidance_img"]) == (7.5, 3.0)
    assert (adapt["rank"], adapt["alpha"], adapt["lr"]) == (16, 32.0, 2e-4)
    assert (adapt["steps"], adapt["warmup_steps"]) == (100, 5)
    assert config["evaluation"]["lpips_backbone"] == "alexnet"
    assert load("demo.yaml")["evaluation"]["lpips_backbone"] == "random"


def test_schema_defaults_match_adapt_config():
    adapt = pytest.importorskip("sora_tta.tta.adapt")
    generate = pytest.importorskip("sora_tta.tta.generate")
    props = SCHEMA["properties"]
    defaults = {k: p["default"] for k, p in props["adapt"]["properties"].items()}
    assert defaults == adapt.AdaptConfig().to_dict()  # one default per setting
    sampling = {
        k: props["sampling"]["properties"][k]["default"] for k in methods.SAMPLING_JSON_KEYS
    }
    assert sampling == generate.SamplingConfig().to_dict()


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_method_settings_are_read_by_generate(name):
    """Each method's --method-json (as the workflow writes it) parses as the command's spec."""
    generate = pytest.importorskip("sora_tta.tta.generate")
    config = load(name)
    validate_with_defaults(config)
    variants = V.expand_variants(
        config["variants"], config["adapt"], kinds=study_config.adapt_param_kinds(SCHEMA)
    )
    for method, adapt in [("baseline", None), *((v.method_id, v.params) for v in variants)]:
        spec = generate.MethodSpec.from_dict(methods.method_settings(config, method, adapt))
        assert spec.method == method and spec.sampling.num_steps == config["sampling"]["num_steps"]
        assert (spec.adapt is None) == (adapt is None)
        if adapt is not None:
            assert spec.adapt.to_dict() == {**spec.adapt.to_dict(), **dict(adapt)}


def mutate(path: str, value):
    config = load("config.yaml")
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return config


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
def test_every_invalid_value_gets_a_clear_message(path, value, expected):
    problems = study_config.config_problems(mutate(path, value), SCHEMA)
    assert any(expected in p for p in problems), problems


def test_all_problems_are_reported_at_once():
    config = mutate("adapt.lr", -1)
    config["sampling"]["num_steps"] = 0
    config["evaluation"]["device"] = "tpu"
    with pytest.raises(study_config.ConfigError) as info:
        study_config.check_config(config, SCHEMA, source="my.yaml")
    message = str(info.value)
    assert "invalid configuration (my.yaml), 3 problem(s)" in message
    for key in ("adapt.lr", "sampling.num_steps", "evaluation.device"):
        assert key in message


def test_synthetic_data_excludes_explicit_paths():
    config = load("demo.yaml")
    config["data"]["ucf_root"] = "data/UCF-101"
    problems = study_config.config_problems(config, SCHEMA)
    assert problems == [
        "data.ucf_root: leave unset with data.synthetic (the synthetic set defines it)"
    ]


def test_workflow_profile_is_the_one_place_of_resources():
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
        assert "resources" not in load(name)
    with pytest.raises(ValueError, match="unsupported resource expression"):
        resources._first_attempt("input.size_mb * 2")


def test_paths_and_manifest_options():
    demo = load("demo.yaml")
    data = paths.data_paths(demo)
    assert data.ucf_root == "results/demo/ucf101/UCF-101"
    assert data.splits_dir == "results/demo/ucf101/ucfTrainTestlist"
    real = load("config.yaml")
    assert paths.split_list_files(real) == [
        "data/ucfTrainTestlist/classInd.txt",
        "data/ucfTrainTestlist/testlist01.txt",
        "data/ucfTrainTestlist/trainlist01.txt",  # the validation selection's candidates
    ]
    assert options.manifest_options(real) == (
        "--total 100 --max-per-group 1 --decode-check --validation-subset train"
        " --validation-total 50 --validation-max-per-group 1"
    )
    real["selection"]["caption_overrides"] = "my captions.yaml"
    assert "--caption-overrides 'my captions.yaml'" in options.manifest_options(real)
    ckpt = paths.checkpoint_paths(real)
    assert ckpt.mmdit == "ckpts/Open_Sora_v2.safetensors"
    assert ckpt.clip == "ckpts/openai/clip-vit-large-patch14"


def test_demo_builds_the_novel_world_and_copies_the_proxy():
    """The demo's data and checkpoints: the commands the DAG runs, parsed by the real CLI."""
    import shlex

    from sora_tta.cli import build_parser

    demo = load("demo.yaml")
    validate_with_defaults(demo)
    assert paths.built_checkpoints(demo) == "proxy"
    command = shlex.split(options.synthetic_data_args(demo, "out dir"))
    args = build_parser().parse_args(command)
    assert command[0] == "make-world" and args.distribution == "novel"
    assert (args.out.as_posix(), args.classes, args.per_class, args.clips_per_group) == (
        "out dir",
        3,
        2,
        1,
    )
    assert args.broken and args.frames >= demo["sampling"]["num_frames"]
    # the manifest's captions: the world's, unless the user gives their own
    assert "--caption-overrides results/demo/ucf101/captions.tsv" in options.manifest_options(demo)
    demo["selection"]["caption_overrides"] = "mine.tsv"
    assert "--caption-overrides mine.tsv" in options.manifest_options(demo)
    # the plane-wave stand-in and the tiny family (what tests use for arbitrary shapes)
    demo["data"]["synthetic"]["world"] = None
    demo["data"]["synthetic"]["broken"] = False
    command = shlex.split(options.synthetic_data_args(demo, "o"))
    assert command[:2] == ["make-synthetic-ucf101", "o"] and "--no-broken" in command
    build_parser().parse_args(command)
    assert paths.world_captions(demo) is None
    demo["checkpoints"] = {"dir": "c", "tiny": {"seed": 0}}
    assert paths.built_checkpoints(demo) == "tiny"
    demo["checkpoints"]["proxy"] = True
    assert (
        "checkpoints: tiny and proxy are exclusive; set at most one"
        in study_config.config_problems(demo, SCHEMA)
    )
    del demo["checkpoints"]["tiny"]
    demo["checkpoints"]["proxy"] = False
    assert paths.built_checkpoints(demo) is None


def make_checkpoint_tree(root: Path) -> None:
    (root / "google/t5-v1_1-xxl").mkdir(parents=True)
    (root / "openai/clip-vit-large-patch14").mkdir(parents=True)
    for name in (
        "Open_Sora_v2.safetensors",
        "hunyuan_vae.safetensors",
        "google/t5-v1_1-xxl/config.json",
        "google/t5-v1_1-xxl/pytorch_model.bin",
        "google/t5-v1_1-xxl/spiece.model",
        "openai/clip-vit-large-patch14/config.json",
        "openai/clip-vit-large-patch14/model.safetensors",
        "openai/clip-vit-large-patch14/vocab.json",
        "openai/clip-vit-large-patch14/merges.txt",
    ):
        (root / name).write_bytes(b"x")


def real_config(tmp_path: Path) -> dict:
    config = copy.deepcopy(load("config.yaml"))
    config["data"] = {"ucf_root": str(tmp_path / "UCF-101"), "splits_dir": str(tmp_path / "splits")}
    config["checkpoints"] = {"dir": str(tmp_path / "ckpts")}
    return config


def test_preflight_lists_everything_missing_in_one_message(tmp_path):
    config = real_config(tmp_path)
    lpips = str(tmp_path / "torch/hub/checkpoints/alexnet-owt-7be5be79.pth")
    missing = preflight.missing_requirements(
        preflight.required_files(config, lpips_path=lambda: lpips)
    )
    message = preflight.preflight_message(missing, "config/config.yaml")
    assert message.startswith("preflight: 13 required file(s) missing for config/config.yaml")
    for needle in (
        "UCF-101 video folder",
        "splits/classInd.txt",
        "splits/testlist01.txt",
        "splits/trainlist01.txt",
        "ckpts/Open_Sora_v2.safetensors",
        "ckpts/hunyuan_vae.safetensors",
        "T5 text encoder weights",
        "t5-v1_1-xxl/tokenizer.json or",
        "CLIP text encoder tokenizer",
        "clip-vit-large-patch14/vocab.json + ",
        "alexnet-owt-7be5be79.pth",
    ):
        assert needle in message


def test_preflight_passes_when_everything_exists(tmp_path):
    config = real_config(tmp_path)
    make_checkpoint_tree(tmp_path / "ckpts")
    (tmp_path / "UCF-101").mkdir()
    (tmp_path / "splits").mkdir()
    for name in ("classInd.txt", "testlist01.txt", "trainlist01.txt"):
        (tmp_path / "splits" / name).write_text("")
    lpips = tmp_path / "alexnet.pth"
    lpips.write_bytes(b"x")
    reqs = preflight.required_files(config, lpips_path=lambda: str(lpips))
    assert preflight.missing_requirements(reqs) == []
    # one half of a two-file tokenizer is not a tokenizer
    (tmp_path / "ckpts/openai/clip-vit-large-patch14/merges.txt").unlink()
    missing = preflight.missing_requirements(reqs)
    assert [r.what for r in missing] == ["CLIP text encoder tokenizer"]


def test_preflight_checks_the_fvd_weights_only_when_set(tmp_path):
    """FVD is optional: no weights is no requirement; set weights must exist."""
    config = real_config(tmp_path)
    validate_with_defaults(config)
    assert config["evaluation"]["fvd_weights"] is None
    unset = preflight.required_files(config, lpips_path=lambda: "unused")
    assert not any("FVD" in r.what for r in unset)
    weights = tmp_path / "ckpts" / "i3d_torchscript.pt"
    config["evaluation"]["fvd_weights"] = str(weights)
    reqs = preflight.required_files(config, lpips_path=lambda: "unused")
    (fvd,) = [r for r in reqs if "FVD" in r.what]
    assert fvd.describe() == f"FVD I3D weights (evaluation.fvd_weights): {weights}"
    message = preflight.preflight_message(
        preflight.missing_requirements([fvd]), "config/config.yaml"
    )
    assert str(weights) in message
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"x")
    assert preflight.missing_requirements([fvd]) == []
    # the smoke target needs no metric weights
    smoke = preflight.required_files(config, scope="checkpoints", lpips_path=lambda: "unused")
    assert not any("FVD" in r.what for r in smoke)
    assert options.fvd_options(config).startswith(f"--weights {weights}")


def test_preflight_scopes_and_demo(tmp_path):
    config = real_config(tmp_path)
    smoke = preflight.required_files(config, scope="checkpoints", lpips_path=lambda: "unused")
    assert {r.what.split()[0] for r in smoke} == {"Open-Sora", "HunyuanVideo", "T5", "CLIP"}
    # the demo builds its data and checkpoints itself and needs no LPIPS weights
    assert (
        preflight.required_files(load("demo.yaml"), lpips_path=lambda: pytest.fail("asked")) == []
    )


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


def test_check_smoke_clips(tmp_path):
    np = pytest.importorskip("numpy")
    video = pytest.importorskip("sora_tta.data.video")
    rng = np.random.default_rng(0)
    good = tmp_path / "good.mkv"
    video.write_lossless(good, rng.integers(0, 255, (5, 16, 32, 3), dtype=np.uint8), fps=24)
    flat = tmp_path / "flat.mkv"
    video.write_lossless(flat, np.zeros((5, 16, 32, 3), dtype=np.uint8), fps=24)
    assert preflight.check_smoke_clips([good], (5, 16, 32, 3))["ok"]
    report = preflight.check_smoke_clips([good, flat, tmp_path / "none.mkv"], (9, 16, 32, 3))
    assert not report["ok"]
    text = " ".join(report["problems"])
    assert "good.mkv: shape [5, 16, 32, 3], expected [9, 16, 32, 3]" in text
    assert "flat.mkv: every pixel has the same value" in text
    assert "none.mkv" in text


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
def test_option_strings_are_accepted_by_the_commands(builder, command, name):
    """The precomputed flags parse with the real sora-tta parsers."""
    import shlex

    from sora_tta.cli import build_parser

    config = load(name)
    validate_with_defaults(config)
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


def validate_with_defaults(config: dict) -> None:
    """Fill in the schema defaults the way the workflow does (snakemake.utils.validate)."""
    from snakemake.utils import validate

    validate(config, str(study_config.SCHEMA_PATH))


def test_paths_outside_the_working_directory_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load("demo.yaml")
    config["checkpoints"]["dir"] = "../outside"
    config["data"]["synthetic"]["out"] = str(tmp_path / "inside" / "ucf")  # absolute, inside
    problems = study_config.config_problems(config, SCHEMA)
    assert problems == [
        f"checkpoints.dir: '../outside' is outside the working directory {tmp_path.resolve()} "
        "(set allow_paths_outside_workdir: true if that is intended)"
    ]
    config["allow_paths_outside_workdir"] = True
    assert study_config.config_problems(config, SCHEMA) == []


def test_yaml_1_1_exponent_gets_explained():
    config = load("demo.yaml")
    config["adapt"]["lr"] = yaml.safe_load("lr: 1.0e10")["lr"]
    assert config["adapt"]["lr"] == "1.0e10"  # PyYAML (YAML 1.1) reads a string
    (problem,) = study_config.config_problems(config, SCHEMA)
    assert problem.startswith("adapt.lr: '1.0e10' is not of type 'number'")
    assert "YAML 1.1" in problem and "1.0e+10" in problem


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


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_aggregate_options_declare_the_family(name):
    """The statistics section becomes aggregate flags that the command turns into the
    declared StatisticsConfig, variant names resolved to method ids."""
    import shlex

    from sora_tta.cli import build_parser
    from sora_tta.evaluation.commands import statistics_config

    config = load(name)
    validate_with_defaults(config)
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


def test_command_line_values_take_the_schema_types():
    """Snakemake hands nested --config values (and booleans) over as text."""
    config = load("demo.yaml")
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


def test_command_line_errors_name_the_command_line():
    config = load("demo.yaml")
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


def test_table_pages_label_random_lpips(tmp_path):
    table = tmp_path / "summary.csv"
    table.write_text(
        "method,metric,lpips_backbone,mean\nbaseline,lpips,random,0.5\nbaseline,psnr,random,20\n"
    )
    page = report_pages.table_page(table, "Summary")
    assert report_pages.RANDOM_LPIPS_LABEL in page and "RANDOM AlexNet trunk" in page
    assert page.count(report_pages.RANDOM_LPIPS_LABEL) == 1  # the psnr row keeps its name
    plain = tmp_path / "per_class.csv"
    plain.write_text("method,metric,mean_diff\nvar,lpips,0.1\n")
    assert report_pages.RANDOM_LPIPS_LABEL not in report_pages.table_page(plain, "Per class")
    assert report_pages.RANDOM_LPIPS_LABEL in report_pages.table_page(
        plain, "Per class", random_lpips=True
    )
    assert report_pages.EMPTY_TABLE_NOTE not in report_pages.table_page(plain, "Per class")


def test_empty_table_page_says_so(tmp_path):
    table = tmp_path / "failures.csv"
    table.write_text("method,video,stage,reason\n")
    page = report_pages.table_page(table, "Failures")
    assert report_pages.EMPTY_TABLE_NOTE in page and "<th>reason</th>" in page


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


def test_generate_options_carry_compile_and_staging() -> None:
    config = {"generation": {"compile": False, "stage_dir": "/local/$USER/ck",
                             "compile_cache_dir": "/local/$USER/inductor"}}  # fmt: skip
    flags = options.generate_options(config)
    assert "--compile off" in flags  # YAML's unquoted off
    assert "--stage-dir '/local/$USER/ck'" in flags  # expanded on the node, not here
    assert "--compile-cache-dir '/local/$USER/inductor'" in flags
    assert "--stage-dir" not in options.generate_options({"generation": {}})
