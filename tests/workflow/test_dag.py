"""The workflow's DAG from dry runs: default config, real config, validation, preflight."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import (
    DEMO_CONFIG,
    REPO,
    dry_run,
    job_blocks,
    snakemake,
    wildcards_of,
    workflow_env,
)

from sora_tta.study import config as study_config
from sora_tta.study import resources, snakemake_cli
from sora_tta.study import variants as V


def load_bench():
    """bench/bench_dag.py as a module (it builds stand-ins of the real study)."""
    spec = importlib.util.spec_from_file_location("bench_dag", REPO / "bench" / "bench_dag.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_study(tmp_path_factory) -> tuple[Path, Path, int]:
    """A stand-in of the real study (12 videos of 4 classes, real config, placeholder files)."""
    root = tmp_path_factory.mktemp("real-study")
    config, videos, classes = load_bench().build_scratch(root, 12, classes=4)
    assert classes == 4
    return root, config, videos


def real_env(root: Path) -> dict[str, str]:
    return workflow_env(TORCH_HOME=str(root / "torch"))


def test_default_configuration_is_the_demo(tmp_path):
    result = dry_run(tmp_path)
    assert f"Config file(s): ['{DEMO_CONFIG}']" in result.output
    counts = result.job_counts()
    # before the manifest checkpoint ran, the DAG ends there
    assert counts["make_synthetic_ucf101"] == 1
    assert counts["manifest"] == 1
    assert "generate_tta" not in counts
    assert "checkpoint jobs" in result.output


def test_real_study_dag_has_one_job_per_video_and_method(real_study):
    root, config, videos = real_study
    result = snakemake(root, "-n", "--cores", "1", "--configfile", str(config), env=real_env(root))
    counts = result.job_counts()
    variants = 6
    assert counts["preprocess"] == videos
    assert counts["generate_baseline"] == videos
    assert counts["generate_tta"] == videos * variants
    assert counts["evaluate"] == 4 * (variants + 1)  # one per (method, class)
    evaluations = [b for b in job_blocks(result.output) if b["rule"] == "evaluate"]
    for block in evaluations:
        method, cls = wildcards_of(block)["method"], wildcards_of(block)["class_name"]
        inputs = block["input"].split(", ")
        clips = sorted(i for i in inputs if i.startswith("results/clips/"))
        generated = sorted(i for i in inputs if i.startswith(f"results/generations/{method}/"))
        assert len(clips) == len(generated) == 3 and len(inputs) == 6, block
        assert all(f"/v_{cls}_g" in path for path in clips + generated), block
        assert block["output"] == f"results/metrics/{method}/{cls}.json"
    assert "encode_prompts" not in counts  # the stand-in's prompt cache is up to date
    assert counts["method_config"] == variants + 1  # the baseline's too
    for rule in ("aggregate", "plot", "report_pages", "all"):
        assert counts[rule] == 1
    assert "manifest" not in counts  # the stand-in's manifest is up to date
    assert "make_synthetic_ucf101" not in counts and "make_tiny_checkpoints" not in counts


def test_prompts_are_encoded_once_for_all_videos(real_study, tmp_path):
    """Without the prompt cache the DAG waits on one encode_prompts checkpoint job."""
    root, config, _ = real_study
    copy = tmp_path / "study"
    shutil.copytree(root, copy, symlinks=True)
    (copy / "results" / "prompts" / "negative.safetensors").unlink()
    result = snakemake(
        copy, "-n", "--cores", "1", "--configfile", str(config),
        "--config", "allow_paths_outside_workdir=true", env=real_env(root),
    )  # fmt: skip
    assert result.job_counts()["encode_prompts"] == 1
    assert "checkpoint jobs" in result.output
    (block,) = [b for b in job_blocks(result.output) if b["rule"] == "encode_prompts"]
    assert "gpu=1" in block["resources"]
    mem_mb = resources.profile_resources()["encode_prompts"].mem_mb
    assert f"mem_mb={mem_mb}" in block["resources"]


def test_real_study_resources(real_study):
    """GPU rules ask for a GPU, CPU rules for none; sizes come from the workflow profile."""
    root, config, _ = real_study
    result = snakemake(root, "-n", "--cores", "1", "--configfile", str(config), env=real_env(root))
    real = resources.profile_resources()
    seen = set()
    for block in job_blocks(result.output):
        rule = block["rule"]
        if rule in ("all", "method_config", "methods_table", "report_pages"):
            continue
        requested = dict(item.split("=", 1) for item in block["resources"].split(", "))
        assert ("gpu" in requested) == (rule in resources.gpu_rules()), (rule, requested)
        if rule in resources.gpu_rules():
            assert requested["gpu"] == "1"
        if rule in real:
            assert int(requested["mem_mb"]) == real[rule].mem_mb, rule
            assert int(requested["runtime"]) == real[rule].runtime, rule
        seen.add(rule)
    assert {"preprocess", "generate_baseline", "generate_tta", "evaluate", "aggregate"} <= seen


def test_variant_method_ids_and_folders(real_study):
    root, config, _ = real_study
    data = yaml.safe_load(config.read_text())
    result = snakemake(root, "-n", "--cores", "1", "--configfile", str(config), env=real_env(root))
    schema = study_config.load_schema()
    defaults = {k: p["default"] for k, p in schema["properties"]["adapt"]["properties"].items()}
    defaults.update(data["adapt"])
    variants = V.expand_variants(
        data["variants"], defaults, kinds=study_config.adapt_param_kinds(schema)
    )
    for variant in variants:
        assert f"results/generations/{variant.method_id}/" in result.output
        assert f"results/methods/{variant.method_id}.json" in result.output
    assert {v.name for v in variants} == {
        f"bench-r{r}-{m}" for r in (8, 16) for m in ("denoise", "continue", "mixed")
    }


def test_invalid_configuration_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["adapt"]["lr"] = -1
    config["sampling"]["num_frames"] = 32
    config["evaluation"]["lpips_backbone"] = "vgg"
    bad.write_text(yaml.safe_dump(config))
    result = dry_run(tmp_path, "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "invalid configuration" in result.output
    assert "adapt.lr: -1 is less than the minimum of 0" in result.output
    assert "evaluation.lpips_backbone: 'vgg' is not one of" in result.output
    assert "sampling.num_frames" in result.output


def test_invalid_variant_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["variants"]["named"]["broken"] = {"rank": 0}
    bad.write_text(yaml.safe_dump(config))
    result = dry_run(tmp_path, "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "variants.named.broken: rank: 0 is less than the minimum of 1" in result.output


def test_preflight_lists_everything_missing_before_any_job(tmp_path):
    result = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "1",
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        check=False,
        env=workflow_env(TORCH_HOME=str(tmp_path / "torch")),
    )
    assert result.returncode != 0
    text = result.output
    assert "preflight: 13 required file(s) missing" in text
    for path in (
        "data/UCF-101",
        "data/ucfTrainTestlist/testlist01.txt",
        "data/ucfTrainTestlist/trainlist01.txt",  # the validation selection's candidates
        "ckpts/Open_Sora_v2.safetensors",
        "ckpts/hunyuan_vae.safetensors",
        "ckpts/google/t5-v1_1-xxl/config.json",
        "ckpts/openai/clip-vit-large-patch14/tokenizer.json",
        "torch/hub/checkpoints/alexnet-owt-7be5be79.pth",
    ):
        assert path in text, path
    assert "Job stats" not in text
    assert not (tmp_path / "results").exists()


def test_smoke_target_needs_only_checkpoints(real_study, tmp_path):
    """With preflight=checkpoints the smoke check runs where the data is not there yet."""
    _, config, _ = real_study
    data = yaml.safe_load(config.read_text())
    data["data"] = {"ucf_root": str(tmp_path / "nowhere"), "splits_dir": str(tmp_path / "no")}
    data["allow_paths_outside_workdir"] = True  # the stand-in's checkpoints are elsewhere
    smoke_config = tmp_path / "smoke.yaml"
    smoke_config.write_text(yaml.safe_dump(data))
    env = workflow_env(TORCH_HOME=str(tmp_path / "empty-torch-home"))
    result = snakemake(
        tmp_path,
        "smoke",
        "-n",
        "--cores",
        "1",
        "--configfile",
        str(smoke_config),
        "--config",
        "preflight=checkpoints",
        env=env,
    )
    assert result.job_counts() == {"smoke_generate": 2, "smoke": 1, "total": 3}
    # the whole study, however, stops at the preflight
    study = snakemake(
        tmp_path, "-n", "--cores", "1", "--configfile", str(smoke_config), env=env, check=False
    )
    assert study.returncode != 0
    assert "UCF-101 video folder" in study.output
    assert "LPIPS AlexNet weights" in study.output


def test_preflight_target(real_study):
    root, config, _ = real_study
    result = snakemake(
        root, "preflight", "--cores", "1", "--configfile", str(config), env=real_env(root)
    )
    assert "preflight: all 12 required inputs present" in result.output
    assert (
        "found Open-Sora v2.0 MMDiT checkpoint"
        in (root / "results" / "logs" / "preflight.log").read_text()
    )


def test_lint_is_clean(tmp_path):
    """Clean but for the advice to give each rule a conda environment (not taken: jobs run in
    the environment that runs Snakemake)."""
    result = snakemake(tmp_path, "--lint", "--cores", "1", check=False)
    assert "Lints for rule" in result.output  # the conda advice, one per rule
    assert snakemake_cli.unexpected_lints(result.output) == [], result.output[-3000:]


def test_cross_video_jobs_name_a_donor_of_another_class(real_study, tmp_path):
    """The cross-video control is an ordinary method: each of its generation jobs takes the
    donor of the seeded derangement (another class) as input and passes it to generate."""
    import pandas as pd

    root, config, videos = real_study
    data = yaml.safe_load(config.read_text())
    data["variants"] = {"named": {"cross-video": {"adapt_on": "cross-video"}}}
    cross = tmp_path / "cross.yaml"
    cross.write_text(yaml.safe_dump(data))
    result = snakemake(
        root, "-n", "-p", "--cores", "1", "--configfile", str(cross), env=real_env(root)
    )
    manifest = pd.read_csv(root / "results" / "manifest.csv")
    usable = manifest[manifest["status"] == "ok"]
    classes = dict(zip(usable["video_id"], usable["class_name"], strict=True))
    donors = V.cross_video_donors(list(classes.items()), data["generation"]["seed"])
    commands = [line for line in result.output.splitlines() if "--adapt-clip" in line]
    assert len(commands) == len(classes) == videos
    for line in commands:
        video = line.split("--video-id ")[1].split()[0]
        donor = line.split("--adapt-video-id ")[1].split()[0]
        assert donor == donors[video] and classes[donor] != classes[video]
        assert f"--adapt-clip results/clips/{donor}.mkv" in line
