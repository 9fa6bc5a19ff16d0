"""Does the pretrained proxy model continue held-out pretraining-world videos?

Writes a held-out ``pretrain`` world tree (AVI files in UCF-101's layout, a seed the training
never used), reads each video back through the workflow's own preprocessing (65 frames at the
sampling size), and continues frames 34-65 from frames 1-33 with the project's v2v_head pipeline
(``encode_condition`` + ``continue_video``, reference guidance) for:

- the proxy checkpoints (``--proxy``, default: the committed ones),
- the random-initialised tiny family (``make_tiny_checkpoints``, seed 0),
- copy-last-frame (frame 33 repeated).

Prints a table of PSNR / SSIM over frames 34-65 (mean over videos, with paired bootstrap 95 %
CIs of the proxy's differences) and the VAEs' reconstruction PSNR of all 65 frames and of
frames 34-65 (the ceiling of any continuation decoded by that VAE); ``--out`` also writes the
numbers as JSON.

    .venv/bin/python bench/bench_proxy_quality.py --videos 6 --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sora_tta.data.preprocess import PreprocessConfig, load_clip
from sora_tta.data.ucf101 import CLASS_NAMES
from sora_tta.evaluation.metrics import psnr_per_frame, ssim_per_frame
from sora_tta.models.pipeline import (
    continue_video,
    encode_condition,
    frames_to_tensor,
    load_models,
    load_text_encoders_from,
    tensor_to_frames,
)
from sora_tta.prompts import NEGATIVE_PROMPT, format_prompt
from sora_tta.sampling import GuidanceConfig
from sora_tta.world.procedural import PRETRAIN, WorldConfig, make_world
from sora_tta.world.proxy import proxy_checkpoint_dir
from sora_tta.world.tiny import make_tiny_checkpoints

FRAMES, COND_FRAMES = 65, 33


def bootstrap_ci(diff: np.ndarray, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95 % CI of the mean of paired differences."""
    rng = np.random.default_rng(seed)
    means = rng.choice(diff, (draws, len(diff)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def heldout_videos(
    root: Path,
    count: int,
    seed: int,
    height: int,
    width: int,
    distribution: str = PRETRAIN,
    frames: int = FRAMES,
) -> list:
    """``[(video_id, frames (F, H, W, 3), caption)]`` of a world tree written to ``root``
    (default: a held-out pretraining world), each video read back from its AVI file through
    the workflow's preprocessing. One video per class up to the 101 class names."""
    classes = min(count, len(CLASS_NAMES))
    per_class = -(-count // classes)
    config = WorldConfig(distribution, classes=classes, per_class=per_class, frames=frames,
                         seed=seed)  # fmt: skip
    tree = make_world(root, config)
    world = json.loads((root / "world.json").read_text())["videos"]
    prep = PreprocessConfig(num_frames=frames, height=height, width=width)
    out = []
    for video_id in sorted(world)[:count]:
        frames, _ = load_clip(tree.path(video_id), prep)
        out.append((video_id, frames, world[video_id]["caption"]))
    return out


def scores(
    pred: np.ndarray, truth: np.ndarray, cond: int = COND_FRAMES, frames: int = FRAMES
) -> tuple[float, float]:
    """Mean PSNR and SSIM over the continuation (frames 34-65 by default)."""
    a, b = pred[cond:frames], truth[cond:frames]
    return float(np.mean(psnr_per_frame(a, b))), float(np.mean(ssim_per_frame(a, b)))


def run_model(ckpt: Path, videos: list, guidance: GuidanceConfig, seed: int) -> dict:
    """Continue every video with the checkpoints of ``ckpt``; also the VAE recon PSNR."""
    bundle = load_models(ckpt)
    encoders = load_text_encoders_from(ckpt)
    neg_txt, neg_y = encoders.encode([NEGATIVE_PROMPT])
    psnr, ssim, recon, ceiling = [], [], [], []
    for i, (_, frames, caption) in enumerate(videos):
        txt, y = encoders.encode([format_prompt(caption)])
        condition = encode_condition(bundle, frames, COND_FRAMES, FRAMES)
        out = continue_video(bundle, condition, txt, y, neg_txt, neg_y, guidance, seed + i)
        p, s = scores(out, frames)
        psnr.append(p)
        ssim.append(s)
        with torch.no_grad():
            rec = tensor_to_frames(bundle.vae.decode(bundle.vae.encode(frames_to_tensor(frames))))
        recon.append(float(np.mean(psnr_per_frame(rec, frames))))
        ceiling.append(scores(rec, frames)[0])
    return {"psnr": psnr, "ssim": ssim, "vae_recon_psnr": recon, "vae_ceiling_psnr": ceiling}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", type=Path, default=None, help="proxy checkpoint folder")
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--world-seed", type=int, default=1000, help="held-out world seed")
    parser.add_argument("--steps", type=int, default=25, help="sampling steps")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--guidance-img", type=float, default=3.0)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the first video")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    start = time.perf_counter()
    guidance = GuidanceConfig(args.steps, args.guidance, args.guidance_img)
    proxy = args.proxy or proxy_checkpoint_dir()
    with tempfile.TemporaryDirectory() as tmp:
        videos = heldout_videos(Path(tmp) / "world", args.videos, args.world_seed, args.height,
                                args.width)  # fmt: skip
        make_tiny_checkpoints(Path(tmp) / "tiny", seed=0)
        results = {
            "proxy": run_model(proxy, videos, guidance, args.seed),
            "tiny-random": run_model(Path(tmp) / "tiny", videos, guidance, args.seed),
        }
    copy = [scores(np.repeat(f[COND_FRAMES - 1 : COND_FRAMES], FRAMES, axis=0), f)
            for _, f, _ in videos]  # fmt: skip
    results["copy-last-frame"] = {"psnr": [c[0] for c in copy], "ssim": [c[1] for c in copy]}

    lines = [
        f"held-out pretrain world: {len(videos)} videos (seed {args.world_seed}), "
        f"{args.height}x{args.width}, frames 34-65 from 1-33, {args.steps} steps, "
        f"guidance {args.guidance}/{args.guidance_img}",
        "",
        "| predictor | PSNR (dB) | SSIM | VAE recon PSNR (dB): 65 frames / 34-65 |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        recon = "-"
        if "vae_recon_psnr" in r:
            recon = f"{np.mean(r['vae_recon_psnr']):.2f} / {np.mean(r['vae_ceiling_psnr']):.2f}"
        lines.append(f"| {name} | {np.mean(r['psnr']):.2f} | {np.mean(r['ssim']):.4f} | {recon} |")
    lines += ["", "| paired difference (proxy - other) | PSNR dB [95% CI] | SSIM [95% CI] |",
              "|---|---|---|"]  # fmt: skip
    summary = {}
    for other in ("copy-last-frame", "tiny-random"):
        row = [f"proxy - {other}"]
        for metric in ("psnr", "ssim"):
            diff = np.asarray(results["proxy"][metric]) - np.asarray(results[other][metric])
            low, high = bootstrap_ci(diff)
            summary[f"{metric}_vs_{other}"] = {"mean": float(diff.mean()), "ci95": [low, high]}
            row.append(f"{diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append("| " + " | ".join(row) + " |")
    lines.append(f"\n{time.perf_counter() - start:.0f} s")
    print("\n".join(lines))
    if args.out:
        record = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.out.write_text(json.dumps({**record, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
