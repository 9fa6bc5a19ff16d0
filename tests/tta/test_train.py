"""Unit tests of sora_tta.tta.train (the adaptation loop: schedule, reproducibility, isolation,
resume, divergence, learning) and of sora_tta.tta.adapt (its settings from JSON)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import signal

import pytest
import torch

from sora_tta.hashing import derive_seed
from sora_tta.tta import checkpoint, lora, objective, train
from sora_tta.tta.adapt import AdaptConfig
from sora_tta.tta.train import ResumeOptions


def _config(**overrides) -> AdaptConfig:
    base = {"rank": 4, "steps": 6, "warmup_steps": 2, "lr": 1e-3, "checkpoint_every": 0}
    return AdaptConfig(**{**base, **overrides})


def _run(model, target, config, seed=11, **kwargs):
    with train.adapted(model, target, config, seed=seed, **kwargs) as result:
        return result, lora.lora_state_dict(model)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_from_dict_checks_keys_and_types() -> None:
    config = AdaptConfig.from_dict(
        {"rank": 8, "betas": [0.8, 0.95], "mixed_weights": {"denoise": 1}}
    )
    assert config.betas == (0.8, 0.95) and config.mixed_weights == {"denoise": 1.0}
    assert AdaptConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown keys \['rnak'\]; valid keys are \['rank'"):
        AdaptConfig.from_dict({"rnak": 8}, source="v.json")
    with pytest.raises(ValueError, match=r"v\.json: rank must be an integer"):
        AdaptConfig.from_dict({"rank": "8"}, source="v.json")
    with pytest.raises(ValueError, match="steps must be an integer"):
        AdaptConfig.from_dict({"steps": 1.5})
    with pytest.raises(ValueError, match="lr_schedule"):
        AdaptConfig.from_dict({"lr_schedule": "linear"})
    with pytest.raises(ValueError, match="unknown adaptation mode"):
        AdaptConfig.from_dict({"mode": "copy"})
    with pytest.raises(ValueError, match="expected a JSON object"):
        AdaptConfig.from_dict([1, 2])
    defaults = AdaptConfig()
    assert (defaults.rank, defaults.alpha, defaults.dropout, defaults.targets) == (
        16,
        32.0,
        0.0,
        "attn+fused",
    )
    assert (defaults.steps, defaults.warmup_steps, defaults.lr, defaults.grad_clip) == (
        100,
        5,
        2e-4,
        1.0,
    )


def test_lr_schedule() -> None:
    factors = [train.lr_factor(s, warmup=5, total=100, schedule="constant") for s in range(100)]
    assert factors[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0]) and set(factors[5:]) == {1.0}
    cosine = [train.lr_factor(s, warmup=5, total=100, schedule="cosine") for s in range(100)]
    assert cosine[5] == 1.0 and cosine[99] < 0.01
    assert all(a >= b for a, b in itertools.pairwise(cosine[5:]))
    assert train.lr_factor(0, warmup=0, total=3, schedule="constant") == 1.0


def test_seeds_are_stable_and_distinct() -> None:
    assert derive_seed("adapt", 0, "v1", "m") == derive_seed("adapt", 0, "v1", "m")
    seeds = {derive_seed("adapt", 0, v, m) for v in ("v1", "v2") for m in ("a", "b")}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)


def test_run_is_reproducible_and_logs_rows(bundle, target) -> None:
    config = _config(mode="mixed", draws_per_step=2, dropout=0.1)
    first, state_a = _run(bundle.mmdit, target, config)
    second, state_b = _run(bundle.mmdit, target, config)
    assert _same(state_a, state_b)
    assert [r["loss"] for r in first.rows] == [r["loss"] for r in second.rows]
    assert [r["step"] for r in first.rows] == list(range(1, 7))
    assert [r["lr"] for r in first.rows] == pytest.approx([5e-4] + [1e-3] * 5)
    assert set(first.rows[0]) == {
        "step", "loss", "lr", "timestep", "cond_frames", "branch", "grad_norm", "seconds"
    }  # fmt: skip
    assert first.trainable_parameters == sum(v.numel() for v in state_a.values())
    assert len(first.adapted_modules) == 24 and first.final_loss == first.rows[-1]["loss"]
    _, other_seed = _run(bundle.mmdit, target, config, seed=12)
    assert not _same(state_a, other_seed)


def test_videos_are_isolated_and_base_is_unchanged(
    bundle, target, clip_latent, state_hash, tiny_ckpt_dir
) -> None:
    """Adapting video A then B in one model gives B what a freshly loaded model gives it."""
    from sora_tta.models.loader import load_mmdit

    config = _config(dropout=0.1)
    other = dataclasses.replace(target, x0=torch.flip(clip_latent, dims=[2]))
    loaded = state_hash(bundle.mmdit)
    _run(bundle.mmdit, target, config, seed=1)
    assert state_hash(bundle.mmdit) == loaded
    _, b_after_a = _run(bundle.mmdit, other, config, seed=2)
    assert state_hash(bundle.mmdit) == loaded
    fresh = load_mmdit(
        tiny_ckpt_dir / "Open_Sora_v2.safetensors", device="cpu", dtype=torch.float32
    )
    _, b_fresh = _run(fresh, other, config, seed=2)
    assert _same(b_after_a, b_fresh)


def test_resume_after_signal_matches_uninterrupted(bundle, target, tmp_path) -> None:
    config = _config(steps=7, checkpoint_every=3, dropout=0.1, mode="mixed", lr_schedule="cosine")
    options = ResumeOptions(tmp_path / "resume" / "state.pt", {"run": "x"})
    full, full_state = _run(bundle.mmdit, target, config)

    def preempt(row: dict[str, float]) -> None:
        if row["step"] == 4:
            os.kill(os.getpid(), signal.SIGUSR1)

    with (
        checkpoint.preemption_signals() as stop,
        pytest.raises(train.AdaptationInterrupted) as info,
    ):
        _run(bundle.mmdit, target, config, resume=options, stop=stop, on_step=preempt)
    assert info.value.step == 4 and info.value.signum == signal.SIGUSR1
    assert torch.load(options.state_path, weights_only=True)["step"] == 4
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert not lora.has_lora(bundle.mmdit)

    resumed, resumed_state = _run(bundle.mmdit, target, config, resume=options)
    assert resumed.resumed_from_step == 4
    assert _same(resumed_state, full_state)
    assert [r["loss"] for r in resumed.rows] == [r["loss"] for r in full.rows]
    # The final state is kept (for a kill while sampling); the generator deletes it later.
    assert torch.load(options.state_path, weights_only=True)["step"] == 7
    # A state of another run is ignored, not resumed.
    stranger = ResumeOptions(options.state_path, {"run": "y"})
    fresh, _ = _run(bundle.mmdit, target, config, resume=stranger)
    assert fresh.resumed_from_step == 0


def test_divergence_stops_with_step_and_loss(bundle, target) -> None:
    config = _config(lr=1e30, warmup_steps=0, steps=20)
    with pytest.raises(
        train.AdaptationDiverged, match=r"non-finite (loss|gradient) at adaptation step \d+"
    ) as info:
        _run(bundle.mmdit, target, config)
    assert 1 < info.value.step <= 20
    assert not math.isfinite(info.value.loss) or not math.isfinite(info.value.grad_norm)
    assert not lora.has_lora(bundle.mmdit)


def test_continue_frames_must_leave_a_loss_frame(bundle, target) -> None:
    with pytest.raises(ValueError, match="continue_frames must be in"):
        _run(bundle.mmdit, target, _config(continue_frames=9))


def test_adaptation_lowers_held_out_loss(bundle, target) -> None:
    """Issue 8: adapting on the clip lowers its flow-matching loss on fixed held-out draws."""
    spec = objective.ObjectiveSpec(mode="continue", draws_per_step=2)
    held_out = objective.fixed_draws(spec, target, 6, seed=987_654)
    before = objective.evaluate_loss(bundle.mmdit, target, held_out)
    config = _config(steps=25, lr=1e-2, warmup_steps=2, rank=8, draws_per_step=2)
    with train.adapted(bundle.mmdit, target, config, seed=5):
        after = objective.evaluate_loss(bundle.mmdit, target, held_out)
    assert objective.evaluate_loss(bundle.mmdit, target, held_out) == before
    assert after < 0.9 * before, (before, after)
