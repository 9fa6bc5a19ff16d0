"""The SLURM site profile (sora_tta.slurm_profile): `make slurm-profile` writes it where
Snakemake looks, it holds site settings only, and `snakemake --profile slurm` then means the
real study (config/config.yaml), the demo only when given explicitly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, job_blocks, workflow_env

from sora_tta import slurm_profile as sp
from sora_tta.study import resources


def make_profile(xdg: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(REPO), "slurm-profile", *extra],
        env=workflow_env(XDG_CONFIG_HOME=str(xdg)),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def xdg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary XDG_CONFIG_HOME with the profile installed by the documented command."""
    xdg = tmp_path_factory.mktemp("xdg")
    proc = make_profile(xdg, "ACCOUNT=proj1", "GPU_PARTITION=gpu-a100", "CPU_PARTITION=cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return xdg


def test_make_installs_site_settings_only(xdg: Path) -> None:
    profile = xdg / "snakemake" / "slurm"
    config = yaml.safe_load((profile / "config.yaml").read_text())
    assert config["executor"] == "slurm"
    assert config["configfile"] == ["config/config.yaml"]
    assert config["default-resources"] == {"slurm_account": "proj1"}
    assert config["slurm-partition-config"] == str(profile / "partitions.yaml")
    assert "set-resources" not in config and "set-threads" not in config
    assert not {"retries", "keep-going", "rerun-incomplete"} & set(config)
    partitions = yaml.safe_load((profile / "partitions.yaml").read_text())["partitions"]
    assert partitions == {"cpu": {"max_gpu": 0}, "gpu-a100": {"max_gpu": 4}}


def test_profile_dir_honours_xdg_config_home() -> None:
    assert sp.default_profile_dir({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path(
        "/x/snakemake/slurm"
    )
    assert sp.default_profile_dir({"HOME": "/h"}) == Path("/h/.config/snakemake/slurm")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpu_partition": " "}, "gpu_partition is empty"),
        ({"status_command": "sinfo"}, "status command must be one of"),
        ({"max_threads": 0}, "max_threads must be a positive integer"),
    ],
)
def test_site_settings_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sp.SiteSettings(**{"gpu_partition": "g", "cpu_partition": "c", **kwargs})


def test_make_without_partitions_fails_naming_them(tmp_path: Path) -> None:
    proc = make_profile(tmp_path, "CPU_PARTITION=cpu")
    assert proc.returncode != 0 and "gpu_partition is empty" in proc.stderr
    assert not (tmp_path / "snakemake").exists()


def test_one_partition_for_both_kinds() -> None:
    site = sp.SiteSettings(gpu_partition="all", cpu_partition="all", max_mem_mb=20000)
    assert sp.partitions(site) == {"partitions": {"all": {"max_gpu": 4}}}
    text = sp.profile_text(site, Path("/p/partitions.yaml"))
    assert yaml.safe_load(text)["resources"] == {"mem_mb": 20000}
    assert yaml.safe_load(text)["slurm-no-account"] is True


@pytest.mark.slow
def test_profile_slurm_runs_the_study_not_the_demo(xdg: Path, tmp_path: Path) -> None:
    """From the repository root, --profile slurm reads config/config.yaml: without the real
    data and checkpoints the preflight refuses before anything is submitted."""
    proc = subprocess.run(
        [str(SNAKEMAKE), "--profile", "slurm", "-n", "--directory", str(tmp_path)],
        cwd=REPO, env=workflow_env(XDG_CONFIG_HOME=str(xdg)), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"required file(s) missing for {REPO / 'config' / 'config.yaml'}" in output
    assert "nothing was submitted" in output


@pytest.mark.slow
def test_demo_on_the_slurm_profile_is_explicit(xdg: Path, tmp_path: Path) -> None:
    """--configfile config/demo.yaml replaces the profile's configuration; the jobs carry the
    workflow profile's resources (the GPU rule one GPU)."""
    proc = subprocess.run(
        [str(SNAKEMAKE), "--profile", "slurm", "--configfile", "config/demo.yaml", "-n",
         "--directory", str(tmp_path)],
        cwd=REPO, env=workflow_env(XDG_CONFIG_HOME=str(xdg)), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    blocks = {b["rule"]: b for b in job_blocks(output)}
    declared = resources.profile_resources()
    encode = dict(i.split("=", 1) for i in blocks["encode_prompts"]["resources"].split(", "))
    assert encode["gpu"] == "1" and int(encode["mem_mb"]) == declared["encode_prompts"].mem_mb
    manifest = dict(i.split("=", 1) for i in blocks["manifest"]["resources"].split(", "))
    assert "gpu" not in manifest and int(manifest["runtime"]) == declared["manifest"].runtime
