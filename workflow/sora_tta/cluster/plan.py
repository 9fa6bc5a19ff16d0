"""Cost model of the configured study: jobs, GPU-hours and wall-clock before submitting.

Per generation job (one video, one method) the model adds up: process start and checkpoint
load, VAE encode of the conditioning frames, the adaptation steps (TTA methods), the guided
sampling steps (eager or compiled, with or without adapters), and the VAE decode. Each term
is a measured per-step figure (:mod:`sora_tta.cluster.figures`) scaled to the configured
shapes: the transformer steps by the ratio of their FLOPs (:mod:`sora_tta.flops`) to the
FLOPs of the measured shape, the VAE by the ratio of pixels. Scaling by FLOPs assumes the
same efficiency at other shapes: near the measured shape (the study's) it is exact, far
below it (tiny models, small frames) it underestimates. Terms without a measured figure
count as zero and are listed in ``not_measured``.

Wall-clock on N GPUs: the jobs are assigned longest first to the least-loaded GPU (LPT),
each job on one GPU, no queue waits.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sora_tta.cluster.figures import (
    ADAPT_LATENT_FRAMES,
    SAMPLE_BATCH,
    SAMPLE_LATENT_FRAMES,
    VAE_DECODE_LATENT_FRAMES,
    VAE_ENCODE_FRAMES,
    StepFigures,
)
from sora_tta.models.compile import compile_enabled

if TYPE_CHECKING:
    import pandas as pd

TERMS = ("start", "load", "encode", "adapt", "sample", "decode")


class PlanError(ValueError):
    """The study cannot be planned (e.g. the number of videos is unknown)."""


def latent_frames(frames: int) -> int:
    """Latent frames of ``frames`` pixel frames (the VAE's 4k + 1 causal layout)."""
    return (frames - 1) // 4 + 1


@dataclass(frozen=True)
class MethodCost:
    """Predicted seconds per video of one method, by term."""

    method: str
    videos: int
    adapt_steps: int
    seconds: dict[str, float]

    @property
    def per_video_s(self) -> float:
        """Seconds of one generation job."""
        return sum(self.seconds.values())


@dataclass
class StudyPlan:
    """The configured study's predicted cost on one device kind."""

    kind: str
    gpus: int
    compile: bool
    videos: int
    videos_source: str
    methods: list[MethodCost]
    not_measured: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        """Generation jobs (one per video and method)."""
        return sum(m.videos for m in self.methods)

    @property
    def gpu_seconds(self) -> float:
        """Total GPU seconds of the generation jobs."""
        return sum(m.videos * m.per_video_s for m in self.methods)

    def wall_seconds(self, gpus: int | None = None) -> float:
        """Makespan on ``gpus`` GPUs (longest job first to the least-loaded GPU)."""
        gpus = gpus or self.gpus
        loads = [0.0] * gpus
        jobs = sorted(((m.per_video_s, m.videos) for m in self.methods), reverse=True)
        for seconds, count in jobs:
            for _ in range(count):
                heapq.heapreplace(loads, loads[0] + seconds)
        return max(loads)

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable form (``sora-tta plan --json``)."""
        return {
            "kind": self.kind,
            "gpus": self.gpus,
            "compile": self.compile,
            "videos": self.videos,
            "videos_source": self.videos_source,
            "jobs": self.jobs,
            "gpu_hours": self.gpu_seconds / 3600,
            "wall_hours": self.wall_seconds() / 3600,
            "methods": [
                asdict(m)
                | {"per_video_s": m.per_video_s, "gpu_hours": m.videos * m.per_video_s / 3600}
                for m in self.methods
            ],
            "not_measured": self.not_measured,
        }


@dataclass(frozen=True)
class StepShape:
    """What one transformer step processes: latent frames, pixel size, batch, LoRA."""

    frames: int
    height: int
    width: int
    batch: int
    backward: bool
    rank: int = 0
    targets: str = "attn+fused"


def step_flops(figures: StepFigures, shape: StepShape) -> float:
    """FLOPs of one step of ``figures``' model preset at ``shape``."""
    from sora_tta.flops import LORA_PRESETS, mmdit_flops
    from sora_tta.models.mmdit import mmdit_config

    tokens = shape.frames * (shape.height // 16) * (shape.width // 16)
    return mmdit_flops(
        mmdit_config(figures.preset),
        batch=shape.batch,
        img_tokens=tokens,
        txt_tokens=figures.txt_tokens,
        backward=shape.backward,
        lora_rank=shape.rank,
        lora_targets=shape.targets if shape.targets in LORA_PRESETS else "attn+fused",
    ).total


def flop_scale(figures: StepFigures, wanted: StepShape, measured_frames: int) -> float:
    """FLOPs at ``wanted`` over the FLOPs of the measured step (same batch semantics)."""
    measured = StepShape(
        frames=measured_frames,
        height=figures.height,
        width=figures.width,
        batch=1 if wanted.backward else SAMPLE_BATCH,
        backward=wanted.backward,
        rank=figures.rank if wanted.rank else 0,
        targets=figures.targets,
    )
    return step_flops(figures, wanted) / step_flops(figures, measured)


def method_cost(
    method: str,
    adapt: Mapping[str, Any] | None,
    sampling: Mapping[str, Any],
    figures: StepFigures,
    videos: int,
    compiled: bool,
    not_measured: set[str],
) -> MethodCost:
    """Predicted seconds per video of one method (``adapt`` None: the baseline)."""
    height, width = int(sampling["height"]), int(sampling["width"])
    cond, total = int(sampling["num_cond_frames"]), int(sampling["num_frames"])
    pixels = height * width / (figures.height * figures.width)

    def measured(name: str) -> float:
        value = getattr(figures, name)
        if value is None:
            not_measured.add(name)
            return 0.0
        return float(value)

    seconds = {
        "start": measured("process_start_s"),
        "load": measured("checkpoint_load_s"),
        "encode": measured("vae_encode_s") * pixels * cond / VAE_ENCODE_FRAMES,
        "adapt": 0.0,
        "decode": measured("vae_decode_s")
        * pixels
        * latent_frames(total)
        / VAE_DECODE_LATENT_FRAMES,
    }
    steps = 0
    rank, targets = 0, "attn+fused"
    if adapt is not None:
        steps, rank, targets = int(adapt["steps"]), int(adapt["rank"]), str(adapt["targets"])
        draws = int(adapt.get("draws_per_step", 1))
        shape = StepShape(latent_frames(cond), height, width, draws, True, rank, targets)
        scale = flop_scale(figures, shape, ADAPT_LATENT_FRAMES)
        seconds["adapt"] = steps * figures.adapt_step_s * scale
    lora = adapt is not None
    step = figures.sample_step_lora_s if lora else figures.sample_step_base_s
    if compiled:
        name = "sample_step_lora_compiled_s" if lora else "sample_step_base_compiled_s"
        compiled_step = getattr(figures, name)
        if compiled_step is None:
            not_measured.add(name)
        else:
            step = compiled_step
            seconds["start"] += measured("compile_warmup_s")
    shape = StepShape(latent_frames(total), height, width, SAMPLE_BATCH, False, rank, targets)
    scale = flop_scale(figures, shape, SAMPLE_LATENT_FRAMES)
    seconds["sample"] = int(sampling["num_steps"]) * step * scale
    ordered = {term: seconds[term] for term in TERMS}
    return MethodCost(method, videos, steps, ordered)


def _count_selection(
    selection: Mapping[str, Any], data: Mapping[str, Any], split: int, subset: str, where: str
) -> tuple[int, str]:
    """Videos one selection (test, or ``selection.validation``) draws, before a manifest
    exists: its ``total``; else ``per_class`` x classes; else its list's clips (the
    synthetic data's listed clips when the list is built in the DAG), at most
    ``max_per_group`` per group."""
    if selection.get("total"):
        return int(selection["total"]), f"{where}.total"
    synthetic = data.get("synthetic")
    splits_dir = Path(data.get("splits_dir") or "data/ucfTrainTestlist")
    class_index = splits_dir / "classInd.txt"
    if selection.get("per_class"):
        if class_index.is_file():
            classes = sum(1 for line in class_index.read_text().splitlines() if line.strip())
        elif synthetic:
            classes = int(synthetic["classes"])
        else:
            raise PlanError(f"{class_index}: not found; cannot count the classes (give --videos)")
        return int(selection["per_class"]) * classes, f"{where}.per_class x classes"
    from sora_tta.data import ucf101

    if synthetic:
        from sora_tta.world.synthetic_ucf101 import SyntheticConfig, listed_clips

        known = {k: v for k, v in synthetic.items() if k in SyntheticConfig.__dataclass_fields__}
        clips, source = listed_clips(SyntheticConfig(**known), split, subset), "data.synthetic"
    else:
        listing = ucf101.split_file(splits_dir, split, subset)
        if not listing.is_file():
            raise PlanError(f"{listing}: not found and no manifest yet: give --videos N")
        clips = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        source = str(listing)
    cap = selection.get("max_per_group")
    per_group: dict[tuple[str, int], int] = {}
    for clip in clips:
        class_name, group, _ = ucf101.parse_video_id(Path(clip).stem)
        per_group[class_name, group] = per_group.get((class_name, group), 0) + 1
    return sum(min(n, cap) if cap else n for n in per_group.values()), source


def count_videos(
    config: Mapping[str, Any], results_dir: str | os.PathLike[str] = "results"
) -> tuple[dict[str, int], str]:
    """Usable videos of the study per manifest role (``test``, ``validation``) and where the
    numbers come from: the manifest's rows with status ok when it exists, else the
    selections of the configuration (:func:`_count_selection`)."""
    from sora_tta.data.manifest import ROLE_TEST, ROLE_VALIDATION

    manifest = Path(results_dir) / "manifest.csv"
    if manifest.is_file():
        from sora_tta.data.manifest import ManifestError, read_manifest

        try:
            frame = read_manifest(manifest)
        except ManifestError as err:
            raise PlanError(str(err)) from err
        ok = frame[frame["status"] == "ok"]
        counts = {role: int((ok["role"] == role).sum()) for role in (ROLE_TEST, ROLE_VALIDATION)}
        return counts, f"{manifest} (status ok)"
    selection = config.get("selection", {})
    data = config.get("data", {})
    split = int(selection.get("split") or 1)
    test, source = _count_selection(
        selection, data, split, selection.get("subset", "test"), "selection"
    )
    sources = [f"test: {source}"]
    counts = {ROLE_TEST: test, ROLE_VALIDATION: 0}
    validation = selection.get("validation")
    if validation:
        counts[ROLE_VALIDATION], source = _count_selection(
            validation,
            data,
            int(validation.get("split") or split),
            validation.get("subset") or "train",
            "selection.validation",
        )
        sources.append(f"validation: {source}")
    return counts, ", ".join(sources)


def plan_study(
    config: Mapping[str, Any],
    figures: StepFigures,
    *,
    gpus: int = 1,
    videos: int | None = None,
    results_dir: str | os.PathLike[str] = "results",
) -> StudyPlan:
    """The plan of a validated, default-filled workflow configuration on ``figures``' kind."""
    from sora_tta.study import config as study_config
    from sora_tta.study import methods
    from sora_tta.study import variants as variant_lib

    if gpus < 1:
        raise PlanError(f"gpus must be >= 1, got {gpus}")
    from sora_tta.data.manifest import ROLE_TEST, ROLE_VALIDATION, method_runs_on

    if videos is None:
        counts, source = count_videos(config, results_dir)
    else:
        counts, source = {ROLE_TEST: videos, ROLE_VALIDATION: 0}, "--videos"
    schema = study_config.load_schema()
    found = variant_lib.expand_variants(
        config["variants"],
        config["adapt"],
        kinds=study_config.adapt_param_kinds(schema),
        check=study_config.adapt_param_check(schema),
    )
    try:
        compiled = compile_enabled(config["generation"]["compile"], figures.device_type)
    except ValueError as err:
        raise PlanError(str(err)) from err
    sampling = config["sampling"]
    missing: set[str] = set()
    final = methods.final_method_ids(config, variant_lib.method_ids(found))
    has_validation = counts[ROLE_VALIDATION] > 0
    methods = []
    for method, params in [(variant_lib.BASELINE, None)] + [(v.method_id, v.params) for v in found]:
        runs_on = method_runs_on(method, final, has_validation, variant_lib.BASELINE)
        n = sum(counts[role] for role in runs_on)
        methods.append(method_cost(method, params, sampling, figures, n, compiled, missing))
    total = sum(counts.values())
    return StudyPlan(figures.kind, gpus, compiled, total, source, methods, sorted(missing))


def format_plan(plan: StudyPlan, gpu_counts: list[int] | None = None) -> str:
    """Human-readable summary: per-method seconds per video, then the study totals."""
    header = f"{'method':<32} {'videos':>6} " + " ".join(f"{t:>7}" for t in TERMS)
    lines = [
        f"cost model: {plan.kind}, sampling {'compiled' if plan.compile else 'eager'}, "
        f"{plan.videos} videos ({plan.videos_source})",
        "seconds per video:",
        header + f" {'total':>8} {'GPU-h':>8}",
    ]
    for m in plan.methods:
        terms = " ".join(f"{m.seconds[t]:7.1f}" for t in TERMS)
        gpu_h = m.videos * m.per_video_s / 3600
        lines.append(f"{m.method:<32} {m.videos:>6} {terms} {m.per_video_s:8.1f} {gpu_h:8.2f}")
    lines.append(f"generation jobs: {plan.jobs}, GPU-hours: {plan.gpu_seconds / 3600:.2f}")
    for n in sorted(set(gpu_counts or []) | {plan.gpus}):
        lines.append(f"wall-clock on {n} GPU{'s' if n > 1 else ''}: {_hours(plan.wall_seconds(n))}")
    if plan.not_measured:
        lines.append("not measured on this kind (counted as 0 s): " + ", ".join(plan.not_measured))
    return "\n".join(lines)


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.2f} h" if hours >= 1 else f"{math.ceil(seconds / 60)} min"


COMPARED_TERMS = ("load", "encode", "adapt", "sample", "decode", "total")
COMPARISON_COLUMNS = [
    "method", "quantity", "predicted", "measured_mean", "measured_median", "n",
    "measured_over_predicted", "kind",
]  # fmt: skip


def compare_with_cost(plan: StudyPlan, cost: pd.DataFrame) -> pd.DataFrame:
    """The plan beside the measured ``cost.csv``: seconds per video by term and method,
    then the study's GPU-hours (``total``: the terms ``generate`` times, process start
    excluded, as in ``meta.json``)."""
    import pandas as pd

    rows = []
    measured_gpu_s = 0.0
    for m in plan.methods:
        sub = cost[cost["method"] == m.method].set_index("quantity")
        for term in COMPARED_TERMS:
            predicted = m.per_video_s - m.seconds["start"] if term == "total" else m.seconds[term]
            quantity = f"time_{term}_s"
            found = quantity in sub.index
            mean = float(sub.at[quantity, "mean"]) if found else math.nan
            if term == "total" and found:
                measured_gpu_s += mean * m.videos
            rows.append(
                {
                    "method": m.method,
                    "quantity": quantity,
                    "predicted": predicted,
                    "measured_mean": mean,
                    "measured_median": float(sub.at[quantity, "median"]) if found else math.nan,
                    "n": int(sub.at[quantity, "n"]) if found else 0,
                    "measured_over_predicted": mean / predicted
                    if found and predicted
                    else math.nan,
                    "kind": plan.kind,
                }
            )
    predicted_h = sum(m.videos * (m.per_video_s - m.seconds["start"]) for m in plan.methods) / 3600
    measured_h = measured_gpu_s / 3600 if measured_gpu_s else math.nan
    rows.append(
        {
            "method": "study",
            "quantity": f"gpu_hours ({plan.jobs} jobs)",
            "predicted": predicted_h,
            "measured_mean": measured_h,
            "measured_median": math.nan,
            "n": plan.jobs,
            "measured_over_predicted": measured_h / predicted_h if predicted_h else math.nan,
            "kind": plan.kind,
        }
    )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def write_cost_vs_plan(
    config: Mapping[str, Any],
    cost_csv: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    results_dir: str | os.PathLike[str] = "results",
) -> StudyPlan:
    """The workflow's plan (``plan.kind`` / ``plan.gpus`` of the config) as JSON, and its
    comparison with the measured cost table as CSV."""
    import pandas as pd

    from sora_tta.cluster.figures import load_figures
    from sora_tta.io import atomic_path, write_json_atomic

    kind = config["plan"]["kind"]
    table = load_figures()
    if kind not in table:
        raise PlanError(f"plan.kind: no figures for device kind {kind!r}; known: {sorted(table)}")
    plan = plan_study(config, table[kind], gpus=int(config["plan"]["gpus"]),
                      results_dir=results_dir)  # fmt: skip
    write_json_atomic(Path(out_json), plan.to_dict())
    comparison = compare_with_cost(plan, pd.read_csv(cost_csv))
    with atomic_path(Path(out_csv)) as tmp:
        comparison.to_csv(tmp, index=False)
    return plan
