"""The SLURM site profile: written once per user where Snakemake looks for ``--profile slurm``.

``make slurm-profile ACCOUNT=... GPU_PARTITION=... CPU_PARTITION=...`` calls
``sora-tta slurm-profile``, which writes ``$XDG_CONFIG_HOME/snakemake/slurm/`` (default
``~/.config/snakemake/slurm/``): ``config.yaml`` with the site settings only (executor,
account, job limits, status command, the study's configuration file) and
``partitions.yaml``, from which snakemake-executor-plugin-slurm sends every job that asks
for a GPU to the GPU partition and every other job to the CPU partition. What each rule
asks for (threads, memory, runtime, GPUs, retries) is the workflow profile's business
(``profiles/default/config.yaml``), never this one's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from sora_tta.io import write_text_atomic

#: The study's configuration, relative to the directory snakemake runs in (the repository).
STUDY_CONFIG = "config/config.yaml"
STATUS_COMMANDS = ("sacct", "squeue")


@dataclass(frozen=True)
class SiteSettings:
    """What differs between clusters (and users)."""

    gpu_partition: str
    cpu_partition: str
    account: str | None = None
    status_command: str = "sacct"
    jobs: int = 100
    gpus_per_node: int = 4
    max_threads: int | None = None
    max_mem_mb: int | None = None

    def __post_init__(self) -> None:
        for name in ("gpu_partition", "cpu_partition"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} is empty; name the cluster's partition")
        if self.status_command not in STATUS_COMMANDS:
            raise ValueError(
                f"status command must be one of {STATUS_COMMANDS}, got {self.status_command!r}"
            )
        for name in ("jobs", "gpus_per_node", "max_threads", "max_mem_mb"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")


def default_profile_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/snakemake/slurm`` (``~/.config/...`` without it): where
    ``snakemake --profile slurm`` finds the profile."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME", "~"), ".config")
    return Path(os.path.expanduser(base)) / "snakemake" / "slurm"


def partitions(site: SiteSettings) -> dict[str, dict[str, dict[str, int]]]:
    """The plugin's partition file: GPU jobs fit only the GPU partition; CPU jobs prefer
    the CPU partition (the plugin scores GPU partitions down for them)."""
    if site.gpu_partition == site.cpu_partition:
        return {"partitions": {site.gpu_partition: {"max_gpu": site.gpus_per_node}}}
    return {
        "partitions": {
            site.cpu_partition: {"max_gpu": 0},
            site.gpu_partition: {"max_gpu": site.gpus_per_node},
        }
    }


def profile_text(site: SiteSettings, partition_file: Path) -> str:
    """``config.yaml`` of the SLURM profile, with a comment on every key."""
    lines = [
        "# SLURM site profile of sora-tta, written by `make slurm-profile`.",
        "# Run from the repository root:  snakemake --profile slurm",
        "# Per-rule resources come from the workflow profile profiles/default/config.yaml.",
        "executor: slurm",
        "# The real study; a --configfile on the command line replaces it (e.g. the demo:",
        "# --configfile config/demo.yaml). Relative to the directory snakemake runs in.",
        f"configfile: [{STUDY_CONFIG}]",
        f"jobs: {site.jobs}                       # jobs queued or running at a time",
        "latency-wait: 60                # seconds to wait for outputs on a shared file system",
        "# squeue without SLURM accounting (slurmdbd): with sacct the plugin loses its jobs",
        f"slurm-status-command: {site.status_command}",
        "slurm-keep-successful-logs: true  # .snakemake/slurm_logs/rule_<name>/<jobid>.log",
        "slurm-requeue: true             # preempted jobs go back to the queue (generate resumes)",
        "# GPU jobs -> the GPU partition, all others -> the CPU partition",
        f"slurm-partition-config: {yaml.safe_dump(str(partition_file)).splitlines()[0]}",
    ]
    if site.account:
        account = yaml.safe_dump(site.account).splitlines()[0]
        lines += ["default-resources:", f"  slurm_account: {account}"]
    else:
        lines.append("slurm-no-account: true          # submit without -A")
    if site.max_threads is not None:
        lines.append(f"max-threads: {site.max_threads}   # no job asks for more CPUs (small nodes)")
    if site.max_mem_mb is not None:
        lines += [
            "# caps every job's mem_mb (and the total of the jobs running at once: one node)",
            "resources:",
            f"  mem_mb: {site.max_mem_mb}",
        ]
    return "\n".join(lines) + "\n"


def install(site: SiteSettings, out_dir: Path) -> list[Path]:
    """Write ``config.yaml`` and ``partitions.yaml`` into ``out_dir``; return both paths."""
    out_dir = out_dir.expanduser().absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    partition_file = out_dir / "partitions.yaml"
    write_text_atomic(partition_file, yaml.safe_dump(partitions(site), sort_keys=False))
    config_file = out_dir / "config.yaml"
    write_text_atomic(config_file, profile_text(site, partition_file))
    return [config_file, partition_file]
