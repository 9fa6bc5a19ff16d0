"""The experiment on the proxy: does test-time adaptation improve continuation of novel videos?

Writes a ``novel`` world tree (unseen textures and hues, the case TTA is for; seed
``--world-seed``), reads every video back through the workflow's preprocessing and, per video:

1. samples the baseline continuation (frames 34-65 from frames 1-33, the v2v_head sampler with
   the reference guidance) from the noise seed ``generate`` uses (global seed, video id);
2. for every objective (``denoise``, ``continue``, ``mixed``, ``published``: mode ``published``
   with text dropout 0, and ``cross-video``: the default recipe trained on another video's
   clip and prompt, the donor from ``sora_tta.study.variants.cross_video_donors``), adapts a fresh
   LoRA once for ``max(--eval-steps)`` steps with the project's engine
   (``generate.adaptation_target`` with separately encoded conditions, ``train.adapted``),
   keeps the adapter at each of ``--eval-steps`` and samples the continuation with it from the
   same noise as the baseline (paired). With the constant learning-rate schedule the adapter
   after ``s`` steps of this run is exactly the adapter of a ``steps: s`` run.

Scores: PSNR and SSIM over the continuation frames (``sora_tta.evaluation.metrics``); the
summary gives the paired differences against the baseline with bootstrap 95 % CIs and
Wilcoxon p-values (``sora_tta.evaluation.stats``) and the mean adaptation loss curves.

Resumable: each finished video is one line of ``bench_proxy.jsonl`` in ``--out`` (the file
is rewritten atomically after each video); a rerun with the same settings skips the videos it
holds, a rerun with other settings stops with an error naming the file. ``--limit N`` stops
after the first N videos (and summarises those); the same command without it continues.
At the end it writes ``bench_proxy.json`` (summary), ``bench_proxy.md`` (table) and
``bench_proxy.png`` (figure)

    nice -n 15 python bench/bench_proxy.py --videos 50 --out docs/proxy
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_proxy_quality, also when imported
from bench_proxy_quality import heldout_videos, scores

from sora_tta.evaluation.stats import BootstrapConfig, paired_stats
from sora_tta.hashing import derive_seed, digest
from sora_tta.io import atomic_path, write_json_atomic, write_text_atomic
from sora_tta.models import pipeline
from sora_tta.prompts import NEGATIVE_PROMPT, format_prompt
from sora_tta.study.variants import cross_video_donors
from sora_tta.tta import lora
from sora_tta.tta.adapt import CROSS_VIDEO, AdaptConfig
from sora_tta.tta.generate import adaptation_target
from sora_tta.tta.method import SamplingConfig
from sora_tta.tta.train import AdaptationDiverged, adapted
from sora_tta.world.procedural import NOVEL
from sora_tta.world.proxy import proxy_checkpoint_dir

#: Objective name -> overrides of the adaptation defaults (as the workflow's variants declare
#: them in config/config.yaml).
OBJECTIVES: dict[str, dict[str, Any]] = {
    "denoise": {"mode": "denoise"},
    "continue": {"mode": "continue"},
    "mixed": {"mode": "mixed"},
    "published": {"mode": "published", "text_dropout": 0.0},
    "cross-video": {"adapt_on": CROSS_VIDEO},
}
RESULTS_FILE, SUMMARY_FILE, TABLE_FILE, FIGURE_FILE = (
    "bench_proxy.jsonl",
    "bench_proxy.json",
    "bench_proxy.md",
    "bench_proxy.png",
)
METRICS = ("psnr", "ssim")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--out", type=Path, default=Path("docs/proxy"), help="results folder")
    add("--proxy", type=Path, default=None, help="checkpoint folder (default: committed proxy)")
    add("--videos", type=int, default=50, help="novel-world videos (one per class)")
    add("--world-seed", type=int, default=2000, help="seed of the novel world")
    add("--seed", type=int, default=0, help="global seed (noise and adaptation seeds)")
    add("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    add("--eval-steps", type=int, nargs="+", default=[20, 50, 100],
        help="steps at which the adapter is sampled (the run adapts up to the max)")  # fmt: skip
    add("--sample-steps", type=int, default=10, help="sampling steps")
    add("--guidance", type=float, default=7.5)
    add("--guidance-img", type=float, default=3.0)
    add("--height", type=int, default=64)
    add("--width", type=int, default=80)
    add("--frames", type=int, default=65, help="frames of a video (4k + 1)")
    add("--cond-frames", type=int, default=33, help="conditioning frames (4k + 1)")
    add("--rank", type=int, default=AdaptConfig.rank)
    add("--alpha", type=float, default=AdaptConfig.alpha)
    add("--lr", type=float, default=AdaptConfig.lr)
    add("--warmup-steps", type=int, default=AdaptConfig.warmup_steps)
    add("--bootstrap", type=int, default=10_000, help="bootstrap resamples")
    add("--threads", type=int, default=1, help="torch CPU threads")
    add("--limit", type=int, default=None,
        help="score only the first N videos in this call (not a setting: the same command "
             "without it continues to all --videos; donors come from all of them)")  # fmt: skip
    args = parser.parse_args(argv)
    if min(args.eval_steps) < 1:
        parser.error("--eval-steps must be >= 1 (step 0 is the baseline)")
    if CROSS_VIDEO in args.objectives and args.videos < 2:
        parser.error("the cross-video control needs --videos >= 2")
    args.eval_steps = sorted(set(args.eval_steps))
    return args


def run_settings(args: argparse.Namespace, checkpoint: Path) -> dict[str, Any]:
    """Everything that determines a video's results (a resumed run must match it)."""
    keep = ("videos", "world_seed", "seed", "objectives", "eval_steps", "sample_steps",
            "guidance", "guidance_img", "height", "width", "frames", "cond_frames")  # fmt: skip
    settings = {key: getattr(args, key) for key in keep}
    settings["adapt"] = {name: base_config(args, name).to_dict() for name in args.objectives}
    settings["checkpoint"] = str(checkpoint)
    return settings


def base_config(args: argparse.Namespace, objective: str) -> AdaptConfig:
    """The adaptation config of ``objective``: project defaults, the flags, the overrides."""
    return AdaptConfig(
        rank=args.rank,
        alpha=args.alpha,
        lr=args.lr,
        warmup_steps=min(args.warmup_steps, max(args.eval_steps)),
        steps=max(args.eval_steps),
        checkpoint_every=0,
        # The lengths a window of --cond-frames can hand over (all of the default at 33 frames).
        continue_frames=tuple(
            k for k in AdaptConfig.continue_frames if k < (args.cond_frames - 1) // 4 + 1
        ),
        **OBJECTIVES[objective],
    )


def read_results(path: Path, settings_hash: str) -> list[dict[str, Any]]:
    """Finished videos of an earlier run with the same settings (``[]`` if none)."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise SystemExit(f"{path}:{number}: not JSON ({err}); delete it to restart") from err
        if record.get("settings_hash") != settings_hash:
            raise SystemExit(f"{path}:{number}: written with other settings; use another "
                             "--out or delete the file to restart")  # fmt: skip
        records.append(record)
    return records


class Sampler:
    """Samples and scores one video's continuation from its fixed noise (the paired design)."""

    def __init__(self, bundle: pipeline.ModelBundle, sampling: SamplingConfig) -> None:
        self.bundle, self.sampling = bundle, sampling

    def score(self, condition, text, negative, noise_seed: int, truth: np.ndarray) -> dict:
        """PSNR/SSIM of the continuation sampled with the model as it is now."""
        latent = pipeline.sample_continuation(
            self.bundle, condition, *text, *negative, self.sampling.guidance_config(), noise_seed
        )
        video = pipeline.decode_to_frames(self.bundle, latent)
        psnr, ssim = scores(video, truth, self.sampling.num_cond_frames, self.sampling.num_frames)
        return {"psnr": psnr, "ssim": ssim}


def snapshot_keeper(
    model: torch.nn.Module, steps: list[int], snapshots: dict[int, dict[str, torch.Tensor]]
):
    """An ``on_step`` callback that stores the adapter weights after each of ``steps``."""

    def keep(row: dict[str, float]) -> None:
        if row["step"] in steps:
            snapshots[int(row["step"])] = lora.lora_state_dict(model)

    return keep


def run_video(
    args: argparse.Namespace,
    sampler: Sampler,
    encoders: Any,
    negative: tuple[torch.Tensor, torch.Tensor],
    video: tuple[str, np.ndarray, str],
    donor: tuple[str, np.ndarray, str] | None,
) -> dict[str, Any]:
    """Baseline and every objective at every evaluation step for one video."""
    bundle, sampling = sampler.bundle, sampler.sampling
    video_id, frames, caption = video
    cond, total = sampling.num_cond_frames, sampling.num_frames
    text = encoders.encode([format_prompt(caption)])
    condition = pipeline.encode_condition(bundle, frames, cond, total)
    noise_seed = derive_seed("noise", args.seed, video_id)
    tick = time.perf_counter()
    record: dict[str, Any] = {"video_id": video_id, "caption": caption, "noise_seed": noise_seed}
    record["baseline"] = sampler.score(condition, text, negative, noise_seed, frames)
    record["seconds"] = {"baseline": time.perf_counter() - tick}
    record["objectives"] = {}
    for name in args.objectives:
        tick = time.perf_counter()
        config = base_config(args, name)
        source_frames, source_condition, source_text = frames, condition, text
        entry: dict[str, Any] = {"adapt_seed": derive_seed("adapt", args.seed, video_id, name)}
        if config.adapt_on == CROSS_VIDEO:
            assert donor is not None
            source_frames = donor[1]
            source_condition = pipeline.encode_condition(bundle, donor[1], cond, total)
            source_text = encoders.encode([format_prompt(donor[2])])
            entry["donor"] = donor[0]
        target = adaptation_target(bundle, source_frames, source_condition, config, sampling,
                                   source_text, negative)  # fmt: skip
        snapshots: dict[int, dict[str, torch.Tensor]] = {}
        keep = snapshot_keeper(bundle.mmdit, args.eval_steps, snapshots)
        entry["steps"] = {}
        try:
            with adapted(bundle.mmdit, target, config, seed=entry["adapt_seed"],
                         on_step=keep) as result:  # fmt: skip
                entry["loss"] = [round(row["loss"], 6) for row in result.rows]  # file size
                for step in args.eval_steps:
                    lora.load_lora_state_dict(bundle.mmdit, snapshots[step])
                    with lora.adapters_cast_to(bundle.mmdit, bundle.mmdit.dtype):
                        scored = sampler.score(condition, text, negative, noise_seed, frames)
                    entry["steps"][str(step)] = scored
        except AdaptationDiverged as err:  # recorded as the outcome: no score at any step
            entry.update(diverged=str(err), loss=None)
        record["objectives"][name] = entry
        record["seconds"][name] = time.perf_counter() - tick
        print(f"  {video_id} {name}: {time.perf_counter() - tick:.1f} s, "
              + ", ".join(f"{s}: {v['psnr']:.2f} dB" for s, v in entry["steps"].items())
              + f" (baseline {record['baseline']['psnr']:.2f} dB)", flush=True)  # fmt: skip
    record["seconds"]["total"] = sum(record["seconds"].values())
    return record


def summarise(records: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Paired differences (objective at step s - baseline) and mean loss curves."""
    config = BootstrapConfig(n_resamples=args.bootstrap, seed=0)
    baseline = {m: np.array([r["baseline"][m] for r in records]) for m in METRICS}
    summary: dict[str, Any] = {
        "n": len(records),
        "baseline": {m: float(baseline[m].mean()) for m in METRICS},
        "objectives": {},
        "seconds_per_video": float(np.mean([r["seconds"]["total"] for r in records])),
    }
    for name in args.objectives:
        entries = [r["objectives"][name] for r in records]
        rows = {}
        for step in args.eval_steps:
            rows[str(step)] = {}
            for metric in METRICS:
                values = np.array([e["steps"][str(step)][metric] if str(step) in e["steps"]
                                   else math.nan for e in entries])  # fmt: skip
                paired = dataclasses.asdict(paired_stats(values, baseline[metric], "higher",
                                                         config))  # fmt: skip
                paired["mean_diff"] = paired.pop("mean")
                rows[str(step)][metric] = {"mean": float(np.nanmean(values)), **paired}
        losses = np.array([e["loss"] for e in entries if e.get("loss")])
        summary["objectives"][name] = {
            "steps": rows,
            "diverged": sum(1 for e in entries if "diverged" in e),
            "loss_mean": losses.mean(axis=0).tolist() if len(losses) else [],
            "seconds_mean": float(np.mean([r["seconds"][name] for r in records])),
        }
    return summary


def table(summary: dict[str, Any], args: argparse.Namespace) -> str:
    """Markdown table of the paired differences."""
    base = summary["baseline"]
    lines = [
        f"n = {summary['n']} novel-world videos; baseline PSNR {base['psnr']:.2f} dB, "
        f"SSIM {base['ssim']:.4f}; differences objective - baseline, mean [95 % bootstrap CI], "
        "wins/n (strictly better), Wilcoxon p",
        "",
        "| objective | steps | PSNR (dB) | dPSNR [95 % CI] | wins | p | SSIM | dSSIM [95 % CI] "
        "| wins | p | loss (first 10 / last 10 steps) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary["objectives"].items():
        loss = entry["loss_mean"]
        curve = f"{np.mean(loss[:10]):.4f} / {np.mean(loss[-10:]):.4f}" if loss else "-"
        for step, row in entry["steps"].items():
            cells = [name, step]
            for metric, fmt in (("psnr", "{:+.3f}"), ("ssim", "{:+.4f}")):
                r = row[metric]
                ci = f"{fmt.format(r['mean_diff'])} [{fmt.format(r['ci_low'])}, " \
                     f"{fmt.format(r['ci_high'])}]"  # fmt: skip
                value = f"{r['mean']:.2f}" if metric == "psnr" else f"{r['mean']:.4f}"
                cells += [value, ci, f"{r['wins']}/{r['n']}", f"{r['p_value']:.3g}"]
            cells.append(curve if step == str(max(args.eval_steps)) else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(summary: dict[str, Any], path: Path) -> None:
    """Differences vs adaptation steps (with CIs) per metric, and the mean loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for index, (name, entry) in enumerate(summary["objectives"].items()):
        steps = [0, *map(int, entry["steps"])]
        offset = (index - 2) * 0.6  # side by side, so the intervals do not hide each other
        for ax, metric in zip(axes[:2], METRICS, strict=True):
            rows = [entry["steps"][str(s)][metric] for s in steps[1:]]
            mean = [0.0, *(r["mean_diff"] for r in rows)]
            low = [0.0, *(r["mean_diff"] - r["ci_low"] for r in rows)]
            high = [0.0, *(r["ci_high"] - r["mean_diff"] for r in rows)]
            x = [s + offset for s in steps]
            ax.errorbar(x, mean, yerr=[low, high], marker="o", ms=3, capsize=2, label=name)
        loss = np.asarray(entry["loss_mean"])
        if len(loss):
            width = min(10, len(loss))
            smooth = np.convolve(loss, np.ones(width) / width, mode="valid")
            axes[2].plot(np.arange(width, len(loss) + 1), smooth, label=name)
    titles = ("PSNR - baseline (dB)", "SSIM - baseline", "adaptation loss (mean, 10-step window)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("adaptation steps", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.axhline(0, color="black", lw=0.8)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"proxy, {summary['n']} novel-world videos, 95 % bootstrap CIs", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=72, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the experiment and write its outputs."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    checkpoint = args.proxy or proxy_checkpoint_dir()
    settings = run_settings(args, checkpoint)
    settings_hash = digest(settings)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / RESULTS_FILE
    records = read_results(results_path, settings_hash)
    done = {r["video_id"] for r in records}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        videos = heldout_videos(Path(tmp) / "world", args.videos, args.world_seed, args.height,
                                args.width, NOVEL, args.frames)  # fmt: skip
    by_id = {video[0]: video for video in videos}
    donors = {}
    if CROSS_VIDEO in args.objectives:  # one video per class: the class is in the id
        classes = [(v, v[2:].rsplit("_", 2)[0]) for v in by_id]
        donors = cross_video_donors(classes, args.seed)
    print(f"{len(videos)} novel-world videos ({time.perf_counter() - started:.0f} s), "
          f"{len(done)} already done in {results_path}", flush=True)  # fmt: skip
    bundle = pipeline.load_models(checkpoint, device="cpu", dtype=torch.float32)
    encoders = pipeline.load_text_encoders_from(checkpoint)
    negative = encoders.encode([NEGATIVE_PROMPT])
    sampling = SamplingConfig(num_steps=args.sample_steps, guidance=args.guidance,
                              guidance_img=args.guidance_img, num_cond_frames=args.cond_frames,
                              num_frames=args.frames)  # fmt: skip
    sampler = Sampler(bundle, sampling)
    for index, video in enumerate(videos[: args.limit], 1):
        if video[0] in done:
            continue
        tick = time.perf_counter()
        donor = by_id[donors[video[0]]] if video[0] in donors else None
        record = run_video(args, sampler, encoders, negative, video, donor)
        record["settings_hash"] = settings_hash
        records.append(record)
        write_text_atomic(results_path, "".join(json.dumps(r) + "\n" for r in records))
        print(f"video {index}/{len(videos)} {video[0]}: {time.perf_counter() - tick:.0f} s",
              flush=True)  # fmt: skip
    summary = summarise(records, args)
    summary["settings"] = settings
    summary["command"] = "python bench/bench_proxy.py " + " ".join(argv or sys.argv[1:])
    write_json_atomic(args.out / SUMMARY_FILE, summary)
    text = table(summary, args)
    write_text_atomic(args.out / TABLE_FILE, text)
    figure(summary, args.out / FIGURE_FILE)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
