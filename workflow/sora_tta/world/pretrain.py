"""Pretrain tiny proxy models on the ``pretrain`` world, on the CPU, in the official formats.

``pretrain_proxy(out, config)`` writes a checkpoint folder with the file names of the tiny
family (:class:`~sora_tta.layout.CheckpointLayout`) plus ``proxy.json``:

1. the tiny family's T5 and CLIP text encoders (random, seeded, as ``make-tiny-checkpoints``);
2. a HunyuanVideo-architecture VAE (:func:`proxy_vae_config`) trained as an autoencoder on short
   windows of world videos (MSE + a small KL term); its ``scale_factor`` is then set to one
   over the standard deviation of its latents, as the published scale was chosen;
3. an MMDiT (:func:`proxy_mmdit_config`, the tiny family's text widths) trained with the
   reference's flow-matching objective on the VAE's latents: per sample a condition from
   :data:`CONDITION_WEIGHTS` (``t2v``: none; ``i2v_head``: frame 0 encoded alone;
   ``v2v_head``: the first ``cond_frames`` frames encoded alone), T5 and CLIP embeddings each
   replaced by the empty prompt's with probability :data:`TEXT_DROPOUT`, the loss over every
   token (as the reference trains). Captions come from each video's parameters.

Training videos are rendered straight at the sampling size (the scene of a 320x240 world video,
cover-cropped as the workflow's preprocessing does; 44 dB from rendering at 320x240 and
resizing, no codec round trip). Each stage stops at its step limit or its share
of the time budget, whichever comes first; everything random is drawn from seeded generators,
so fixed step limits give the same weights on the same machine and library versions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sora_tta import sampling
from sora_tta.hashing import file_sha256
from sora_tta.io import write_json_atomic
from sora_tta.layout import CheckpointLayout
from sora_tta.models.loader import save_mmdit
from sora_tta.models.mmdit import MMDiT, MMDiTConfig, mmdit_config
from sora_tta.models.pipeline import frames_to_tensor
from sora_tta.models.vae import (
    VAEConfig,
    VideoAutoencoder,
    build_autoencoder,
    save_vae,
    vae_config,
)
from sora_tta.prompts import NEGATIVE_PROMPT, format_prompt
from sora_tta.tta.objective import noisy_input, sample_timesteps
from sora_tta.world.procedural import PRETRAIN, render_video, video_params
from sora_tta.world.proxy import PROXY_FILE
from sora_tta.world.tiny import init_mmdit, make_tiny_checkpoints

logger = logging.getLogger(__name__)

#: Probability of replacing the T5 (and, independently, the CLIP) embedding by the empty prompt's.
TEXT_DROPOUT = 0.31622777
T2V, I2V_HEAD, V2V_HEAD = "t2v", "i2v_head", "v2v_head"
CONDITION_WEIGHTS: tuple[tuple[str, float], ...] = ((T2V, 1.0), (I2V_HEAD, 1.0), (V2V_HEAD, 2.0))
# Training videos use keys (_TRAIN_KEY + i,): disjoint from world trees' (class, group, clip).
_TRAIN_KEY = 1_000_000
_SEED_OFFSETS = {"vae": 11, "mmdit": 12, "vae_data": 13, "mmdit_data": 14}


def proxy_vae_config() -> VAEConfig:
    """The proxy VAE: the tiny family's architecture (8x spatial, 4x causal temporal, 16 ch)."""
    return vae_config("tiny")


def proxy_mmdit_config() -> MMDiTConfig:
    """The proxy MMDiT: the tiny family's architecture (hidden 64, 2 + 2 blocks)."""
    return mmdit_config("tiny")


@dataclass(frozen=True)
class PretrainConfig:
    """Budget, data and optimisation of one proxy pretraining run."""

    minutes: float = 30.0
    seed: int = 0
    vae_share: float = 0.3  #: fraction of the budget for the VAE stage
    videos: int = 40
    height: int = 64
    width: int = 80
    frames: int = 65
    cond_frames: int = 33
    aspect: float = 320 / 240  #: scene aspect of the world trees (UCF-101's 320x240)
    vae_window: int = 5  #: frames per VAE training clip (4k + 1)
    vae_crop: tuple[int, int] = (32, 40)  #: random (height, width) crop of VAE clips
    vae_batch: int = 4
    vae_lr: float = 2e-3
    kl_weight: float = 1e-6
    mmdit_batch: int = 4
    mmdit_lr: float = 2e-3
    warmup_steps: int = 20
    ema_decay: float = 0.998
    vae_steps: int | None = None  #: step limit of the VAE stage (None: time only)
    mmdit_steps: int | None = None  #: step limit of the MMDiT stage (None: time only)
    log_every: int = 25

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if not 0 < self.vae_share < 1:
            raise ValueError(f"vae_share must be in (0, 1), got {self.vae_share}")
        for name in ("frames", "cond_frames", "vae_window"):
            if (getattr(self, name) - 1) % 4 or getattr(self, name) < 1:
                raise ValueError(f"{name} must be 4k + 1, got {getattr(self, name)}")
        if self.cond_frames >= self.frames or self.vae_window > self.frames:
            raise ValueError("cond_frames must be < frames and vae_window <= frames")
        if self.videos < 1:
            raise ValueError(f"videos must be positive, got {self.videos}")


def render_training_videos(config: PretrainConfig) -> tuple[np.ndarray, list[str]]:
    """``(N, frames, height, width, 3)`` uint8 pretraining-world videos and their captions."""
    videos, captions = [], []
    for i in range(config.videos):
        params = video_params(PRETRAIN, config.seed, (_TRAIN_KEY + i,), config.aspect)
        videos.append(render_video(params, config.frames, config.width, config.height))
        captions.append(params.caption())
    return np.stack(videos), captions


class _Budget:
    """Stops a stage at its step limit or deadline; logs progress with loss and ETA."""

    def __init__(self, name: str, seconds: float, steps: int | None, log_every: int) -> None:
        self.name, self.seconds, self.steps, self.log_every = name, seconds, steps, log_every
        self.start = time.monotonic()
        self.step = 0
        self.history: list[tuple[int, float]] = []

    def running(self) -> bool:
        if self.steps is not None and self.step >= self.steps:
            return False
        return time.monotonic() - self.start < self.seconds

    def record(self, loss: float) -> None:
        self.step += 1
        self.history.append((self.step, loss))
        if self.step % self.log_every == 0 or self.step == 1:
            elapsed = time.monotonic() - self.start
            recent = [v for _, v in self.history[-self.log_every :]]
            logger.info(
                "%s step %d loss %.4f (mean of last %d) %.0f s / %.0f s",
                self.name, self.step, sum(recent) / len(recent), len(recent), elapsed,
                self.seconds,
            )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """Steps, seconds and the loss curve averaged over windows of ``log_every`` steps."""
        curve = []
        for i in range(0, len(self.history), self.log_every):
            window = self.history[i : i + self.log_every]
            curve.append([window[-1][0], sum(v for _, v in window) / len(window)])
        return {
            "steps": self.step,
            "seconds": round(time.monotonic() - self.start, 1),
            "loss_first": self.history[0][1] if self.history else None,
            "loss_last_window": curve[-1][1] if curve else None,
            "loss_curve": curve,
        }


def train_vae(
    videos: np.ndarray, config: PretrainConfig, seconds: float
) -> tuple[VideoAutoencoder, dict[str, Any]]:
    """Train the proxy VAE on random ``vae_window``-frame windows; return it and its summary."""
    vae_cfg = proxy_vae_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + _SEED_OFFSETS["vae"])
        model = build_autoencoder(vae_cfg)
    generator = torch.Generator().manual_seed(config.seed + _SEED_OFFSETS["vae_data"])
    rng = np.random.default_rng(config.seed + _SEED_OFFSETS["vae_data"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.vae_lr, weight_decay=0.0)
    budget = _Budget("vae", seconds, config.vae_steps, config.log_every)
    model.train()
    while budget.running():
        index = rng.integers(len(videos), size=config.vae_batch)
        offset = rng.integers(config.frames - config.vae_window + 1, size=config.vae_batch)
        ch, cw = config.vae_crop
        top = rng.integers(config.height - ch + 1, size=config.vae_batch)
        left = rng.integers(config.width - cw + 1, size=config.vae_batch)
        clips = np.stack([
            videos[i, o : o + config.vae_window, y : y + ch, x : x + cw]
            for i, o, y, x in zip(index, offset, top, left, strict=True)
        ])  # fmt: skip
        x = torch.cat([frames_to_tensor(c) for c in clips])
        dist = model.encode(x).latent_dist
        noise = torch.randn(dist.mean.shape, generator=generator)
        z = dist.mean + dist.std * noise
        recon = model.decode(z).sample
        mse = (recon - x).square().mean()
        kl = 0.5 * (dist.mean.square() + dist.var - 1.0 - dist.logvar).mean()
        loss = mse + config.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        _set_lr(optimizer, config.vae_lr, budget.step, config.warmup_steps)
        optimizer.step()
        budget.record(float(mse.detach()))
    model.eval().requires_grad_(False)
    return VideoAutoencoder(model, vae_cfg), budget.summary()


def _set_lr(optimizer: torch.optim.Optimizer, lr: float, step: int, warmup: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1))


@dataclass
class LatentSet:
    """Latents of the training videos: full clip, ``v2v_head`` and ``i2v_head`` conditions."""

    x0: torch.Tensor  # (N, C, T, H, W)
    v2v: torch.Tensor  # (N, C, T_cond, H, W), first cond_frames encoded alone
    i2v: torch.Tensor  # (N, C, 1, H, W), frame 0 encoded alone


@torch.no_grad()
def encode_latents(vae: VideoAutoencoder, videos: np.ndarray, cond_frames: int) -> LatentSet:
    """Encode each video, its first ``cond_frames`` frames and its frame 0, each alone."""
    x0, v2v, i2v = [], [], []
    for video in videos:
        x0.append(vae.encode(frames_to_tensor(video)))
        v2v.append(vae.encode(frames_to_tensor(video[:cond_frames])))
        i2v.append(vae.encode(frames_to_tensor(video[:1])))
    return LatentSet(torch.cat(x0), torch.cat(v2v), torch.cat(i2v))


def calibrate_scale(
    vae: VideoAutoencoder, latents: LatentSet
) -> tuple[VideoAutoencoder, LatentSet]:
    """Rescale ``latents`` to unit std and set the VAE's ``scale_factor`` to match.

    ``latents`` were encoded with the current ``scale_factor``; the new one makes the scaled
    latents of the training videos have standard deviation 1 (how the published one was set).
    """
    old = vae.config.scale_factor
    ratio = 1.0 / float(latents.x0.std())
    new = round(old * ratio, 6)
    factor = new / old
    config = dataclasses.replace(vae.config, scale_factor=new)
    scaled = LatentSet(latents.x0 * factor, latents.v2v * factor, latents.i2v * factor)
    return VideoAutoencoder(vae.model, config), scaled


def condition_for(kind: str, latents: LatentSet, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(masks, masked_ref)`` of one sample (batch 1) for condition ``kind``."""
    x0 = latents.x0[index : index + 1]
    if kind == T2V:
        b, _, t, h, w = x0.shape
        return x0.new_zeros((b, 1, t, h, w)), torch.zeros_like(x0)
    ref = latents.i2v[index : index + 1] if kind == I2V_HEAD else latents.v2v[index : index + 1]
    return sampling.v2v_condition(ref, x0.shape[2], ref.shape[2])


def train_mmdit(
    latents: LatentSet,
    txt: torch.Tensor,
    y_vec: torch.Tensor,
    empty: tuple[torch.Tensor, torch.Tensor],
    config: PretrainConfig,
    seconds: float,
) -> tuple[MMDiT, dict[str, Any]]:
    """Train the proxy MMDiT with flow matching; return its EMA weights and the summary.

    ``txt`` ``(N, S, D)`` and ``y_vec`` ``(N, D_vec)`` are the videos' prompt embeddings,
    ``empty`` the empty prompt's ``(1, S, D)`` and ``(1, D_vec)``.
    """
    model = init_mmdit(proxy_mmdit_config(), config.seed + _SEED_OFFSETS["mmdit"]).train()
    with torch.no_grad():  # zero-initialised like the reference: start from v = 0, no condition
        for name, param in model.named_parameters():
            if name.startswith(("cond_in.", "final_layer.linear.")):
                param.zero_()
    ema = init_mmdit(proxy_mmdit_config(), 0)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    model.requires_grad_(True)
    generator = torch.Generator().manual_seed(config.seed + _SEED_OFFSETS["mmdit_data"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.mmdit_lr, weight_decay=0.0)
    n, _, t, h, w = latents.x0.shape
    alpha = sampling.compute_shift_alpha(sampling.tokens_per_frame(h, w), t)
    kinds = [k for k, _ in CONDITION_WEIGHTS]
    weights = torch.tensor([wt for _, wt in CONDITION_WEIGHTS], dtype=torch.float64)
    img_ids = sampling.make_img_ids(config.mmdit_batch, t, h, w)
    txt_ids = sampling.make_txt_ids(config.mmdit_batch, txt.shape[1])
    budget = _Budget("mmdit", seconds, config.mmdit_steps, config.log_every)
    while budget.running():
        index = torch.randint(n, (config.mmdit_batch,), generator=generator)
        choice = torch.multinomial(weights, config.mmdit_batch, True, generator=generator)
        drop_t5 = torch.rand(config.mmdit_batch, generator=generator) < TEXT_DROPOUT
        drop_clip = torch.rand(config.mmdit_batch, generator=generator) < TEXT_DROPOUT
        timesteps = sample_timesteps(config.mmdit_batch, alpha, generator)
        noise = torch.randn(latents.x0[index].shape, generator=generator)
        x_t, v_target = noisy_input(latents.x0[index], noise, timesteps)
        pairs = zip(choice.tolist(), index.tolist(), strict=True)
        conds = [condition_for(kinds[c], latents, i) for c, i in pairs]
        masks = torch.cat([m for m, _ in conds])
        masked_ref = torch.cat([r for _, r in conds])
        batch_txt = torch.where(drop_t5[:, None, None], empty[0], txt[index])
        batch_y = torch.where(drop_clip[:, None], empty[1], y_vec[index])
        pred = model(
            img=sampling.patchify(x_t),
            img_ids=img_ids,
            txt=batch_txt,
            txt_ids=txt_ids,
            timesteps=timesteps,
            y_vec=batch_y,
            cond=sampling.build_cond(masks, masked_ref),
        )
        loss = (pred - sampling.patchify(v_target)).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        _set_lr(optimizer, config.mmdit_lr, budget.step, config.warmup_steps)
        optimizer.step()
        decay = min(config.ema_decay, (1 + budget.step) / (10 + budget.step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
        budget.record(float(loss.detach()))
    return ema.eval(), budget.summary()


def pretrain_proxy(
    out_dir: str | os.PathLike[str],
    config: PretrainConfig,
    progress: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """Run the whole pretraining into ``out_dir`` (official layout); return ``proxy.json``.

    ``proxy.json`` is written last: a folder without it is an unfinished run.
    """
    from sora_tta.models.pipeline import load_text_encoders_from

    start = time.monotonic()
    total = config.minutes * 60.0
    layout = CheckpointLayout(Path(out_dir))
    (layout.root / PROXY_FILE).unlink(missing_ok=True)
    progress(f"writing the tiny text encoders (seed {config.seed}) to {layout.root}")
    make_tiny_checkpoints(layout.root, seed=config.seed)
    (layout.root / "tiny_family.json").unlink()  # describes random weights, replaced below
    progress(f"rendering {config.videos} pretraining-world videos")
    videos, captions = render_training_videos(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        remaining = total - (time.monotonic() - start)
        progress(f"training the VAE for up to {config.vae_share * remaining:.0f} s")
        vae, vae_summary = train_vae(videos, config, config.vae_share * remaining)
        progress(f"encoding the latents of {len(videos)} videos")
        vae, latents = calibrate_scale(vae, encode_latents(vae, videos, config.cond_frames))
        save_vae(vae, layout.vae)
        progress(f"VAE scale_factor {vae.config.scale_factor}")
        recon = _recon_psnr(vae, videos[: min(4, len(videos))])
        encoders = load_text_encoders_from(layout.root)
        txt, y_vec = encoders.encode([format_prompt(c) for c in captions])
        empty = encoders.encode([NEGATIVE_PROMPT])
        remaining = total - (time.monotonic() - start)
        progress(f"training the MMDiT for up to {remaining:.0f} s")
        mmdit, mmdit_summary = train_mmdit(latents, txt, y_vec, empty, config, remaining)
    save_mmdit(mmdit, layout.mmdit)
    description = {
        "config": asdict(config),
        "condition_weights": dict(CONDITION_WEIGHTS),
        "text_dropout": TEXT_DROPOUT,
        "vae": {
            "config": vae.config.to_dict(),
            "parameters": sum(p.numel() for p in vae.model.parameters()),
            "train_recon_psnr": recon,
            **vae_summary,
        },
        "mmdit": {
            "config": mmdit.config.to_dict(),
            "parameters": sum(p.numel() for p in mmdit.parameters()),
            **mmdit_summary,
        },
        "seconds": round(time.monotonic() - start, 1),
        "torch": torch.__version__,
        "sha256": {p.name: file_sha256(p) for p in (layout.mmdit, layout.vae)},
    }
    write_json_atomic(layout.root / PROXY_FILE, description)
    progress(json.dumps({k: description[k] for k in ("seconds",)}))
    return description


@torch.no_grad()
def _recon_psnr(vae: VideoAutoencoder, videos: np.ndarray) -> float:
    """Mean PSNR (dB, 8-bit) of the VAE's reconstruction of whole videos."""
    from sora_tta.models.pipeline import tensor_to_frames

    values = []
    for video in videos:
        recon = tensor_to_frames(vae.decode(vae.encode(frames_to_tensor(video))))
        mse = np.mean((recon.astype(np.float64) - video.astype(np.float64)) ** 2)
        values.append(10 * math.log10(255.0**2 / max(mse, 1e-10)))
    return round(float(np.mean(values)), 3)
