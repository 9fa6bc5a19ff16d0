"""The flow-matching adaptation objective: distribution, formula and the no-copy guarantee."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from sora_tta import sampling
from sora_tta.tta import objective
from sora_tta.tta.objective import AdaptationTarget, Draw, ObjectiveSpec


class Recorder(nn.Module):
    """Calls the real model and keeps what it was given and what it returned."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls: list[dict[str, torch.Tensor]] = []

    def forward(self, **kwargs: torch.Tensor) -> torch.Tensor:
        # A leaf: the loss gradient with respect to the prediction lands in ``out.grad``.
        out = self.model(**kwargs).detach().requires_grad_(True)
        self.calls.append({**kwargs, "out": out})
        return out


def test_timesteps_follow_the_training_distribution() -> None:
    alpha = sampling.compute_shift_alpha(6, 9)
    t = objective.sample_timesteps(20_000, alpha, torch.Generator().manual_seed(0))
    n = torch.randn(20_000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(t, sampling.time_shift(alpha, torch.sigmoid(n)))
    assert float(t.min()) > 0 and float(t.max()) < 1
    # Not uniform: the logit-normal has its mass in the middle (unshifted: alpha = 1).
    plain = objective.sample_timesteps(20_000, 1.0, torch.Generator().manual_seed(1))
    assert abs(float(plain.median()) - 0.5) < 0.02
    assert float(((plain < 0.1) | (plain > 0.9)).float().mean()) < 0.06  # uniform: 0.2


def test_velocity_is_the_time_derivative_of_the_path() -> None:
    gen = torch.Generator().manual_seed(0)
    x0, noise = (
        torch.randn(2, 16, 3, 4, 4, generator=gen),
        torch.randn(2, 16, 3, 4, 4, generator=gen),
    )
    t = torch.tensor([0.3, 0.8], requires_grad=True)
    x_t, v = objective.noisy_input(x0, noise, t)
    (jac,) = torch.autograd.grad(x_t.sum(), t)
    assert torch.allclose(jac, v.flatten(1).sum(1), rtol=1e-5, atol=1e-3)
    x_start, _ = objective.noisy_input(x0, noise, torch.zeros(2))
    assert torch.allclose(x_start, x0 + objective.SIGMA_MIN * noise)
    x_end, _ = objective.noisy_input(x0, noise, torch.ones(2))
    assert torch.equal(x_end, noise)


@pytest.mark.parametrize("mode", ["denoise", "continue", "mixed"])
def test_loss_never_covers_a_clean_conditioned_frame(bundle, target, mode: str) -> None:
    """For every draw: the frames whose clean latent is in ``cond`` carry no loss gradient.

    Checked on the real model's actual inputs: the mask channel of ``cond`` says which
    tokens are given clean, and the gradient of the loss with respect to the prediction
    on exactly those tokens must be zero (and non-zero on every other token). The clean
    frames are the separately encoded ones, never a slice of the loss target, and the text
    is the prompt or the negative prompt as the draw says.
    """
    spec = ObjectiveSpec(mode=mode, continue_frames=(2, 5), draws_per_step=2)
    recorder = Recorder(bundle.mmdit)
    tokens_per_frame = target.tokens_per_frame
    seen_modes, seen_k = set(), set()
    for draw in objective.fixed_draws(spec, target, 10, seed=4):
        seen_modes.add(draw.mode)
        loss = objective.flow_matching_loss(recorder, target, draw)
        loss.backward()
        call = recorder.calls[-1]
        cond, grad = call["cond"], call["out"].grad
        given = cond[..., :4].amax(dim=-1) > 0  # mask channel, 2x2 patch = first 4 channels
        clean = sampling.unpatchify(cond, 9, 4, 6)[:, 1:]
        k = draw.cond_frames
        seen_k.add(k)
        txt = target.txt if draw.text == "prompt" else target.txt_neg
        assert torch.equal(call["txt"], txt.expand(2, -1, -1))
        if draw.mode == "denoise" or k == 0:
            assert not given.any() and torch.equal(cond, torch.zeros_like(cond))
            assert draw.branch.endswith("+zero")
        else:
            assert k in (2, 5) and draw.branch.endswith("+cond")
            expected = torch.arange(9).repeat_interleave(tokens_per_frame) < k
            assert torch.equal(given, expected.expand_as(given))
            own = target.conditions[k].expand(2, -1, -1, -1, -1)
            assert torch.equal(clean[:, :, :k], own)
            assert not torch.allclose(clean[:, :, :k], target.x0[:, :, :k].expand_as(own))
            assert not clean[:, :, k:].any()
            # Conditioned frames enter x_t noisy, as at inference (not the clean latent).
            x_t = sampling.unpatchify(call["img"], 9, 4, 6)
            assert not torch.allclose(x_t[:, :, :k], own)
        assert torch.equal(grad[given], torch.zeros_like(grad[given]))
        assert (grad[~given].abs().sum(dim=-1) > 0).all()
    assert seen_modes == ({"denoise", "continue"} if mode == "mixed" else {mode})
    if mode == "continue":
        assert {2, 5} <= seen_k


def test_every_guidance_branch_receives_training_draws(bundle, target) -> None:
    """Issue 12: each branch the sampler evaluates is trained, in the configured shares.

    The model's inputs are checked, not only the draw's labels: negative-prompt draws feed
    the negative embedding, zero-condition draws an all-zero ``cond``.
    """
    spec = ObjectiveSpec(mode="continue", text_dropout=0.4, cond_dropout=0.5)
    draws = objective.fixed_draws(spec, target, 2000, seed=3)
    shares = {b: sum(d.branch == b for d in draws) / len(draws) for b in objective.BRANCHES}
    assert set(shares) == {d.branch for d in draws}
    assert shares == pytest.approx(
        {"prompt+cond": 0.6, "negative+cond": 0.2, "negative+zero": 0.2}, abs=0.03
    )
    assert {d.cond_frames for d in draws if d.branch.endswith("+cond")} == set(range(1, 9))
    recorder = Recorder(bundle.mmdit)
    seen = set()
    for draw in draws[:40]:
        with torch.no_grad():
            objective.flow_matching_loss(recorder, target, draw)
        call = recorder.calls[-1]
        negative = torch.equal(call["txt"], target.txt_neg)
        zero = not call["cond"].any()
        seen.add(("negative" if negative else "prompt") + ("+zero" if zero else "+cond"))
        assert seen and draw.branch in seen
    assert seen == set(objective.BRANCHES)
    # Without dropout only the (prompt, condition) branch is trained: the old behaviour.
    plain = ObjectiveSpec(mode="continue", text_dropout=0.0)
    assert {d.branch for d in objective.fixed_draws(plain, target, 200, seed=3)} == {"prompt+cond"}


def test_negative_embedding_is_required_for_text_dropout(target) -> None:
    bare = dataclasses.replace(target, txt_neg=None, y_neg=None)
    (draw,) = [d for d in objective.fixed_draws(ObjectiveSpec(text_dropout=1.0), target, 1, seed=0)]
    with pytest.raises(ValueError, match="negative prompt"):
        objective.flow_matching_loss(nn.Identity(), bare, draw)


def test_a_missing_separate_condition_is_an_error_not_a_slice(target) -> None:
    partial = dataclasses.replace(target, conditions={5: target.conditions[5]})
    with pytest.raises(ValueError, match="no separately encoded condition of 3 latent frames"):
        objective.frame_condition(partial, 3)
    assert objective.condition_lengths(ObjectiveSpec(continue_frames=(3, 1)), 9) == [1, 3]
    assert objective.condition_lengths(ObjectiveSpec(mode="denoise"), 9) == []
    assert objective.condition_lengths(ObjectiveSpec(mode="published"), 9) == [9]


def test_published_objective_conditions_and_scores_every_frame(bundle, target) -> None:
    """The labelled control: all 9 frames clean (the window's own encoding), loss on all of
    them, t ~ U(0, 1)."""
    spec = ObjectiveSpec(mode="published", text_dropout=0.0, draws_per_step=1)
    draws = objective.fixed_draws(spec, target, 400, seed=0)
    t = torch.cat([d.timesteps for d in draws])
    assert float(((t < 0.1) | (t > 0.9)).float().mean()) == pytest.approx(0.2, abs=0.05)
    assert {(d.cond_frames, d.loss_from, d.branch) for d in draws} == {(9, 0, "prompt+cond")}
    recorder = Recorder(bundle.mmdit)
    loss = objective.flow_matching_loss(recorder, target, draws[0])
    loss.backward()
    call = recorder.calls[-1]
    assert bool((call["cond"][..., :4] > 0).all())
    assert (call["out"].grad.abs().sum(dim=-1) > 0).all()


def test_conditioning_every_frame_is_refused(target) -> None:
    with pytest.raises(ValueError, match="at least one frame must carry the loss"):
        objective.cond_frames_for("continue", 9, 9)
    draw = Draw(mode="continue", cond_frames=9, timesteps=torch.tensor([0.5]),
                noise=torch.zeros(1, *target.x0.shape[1:]))  # fmt: skip
    with pytest.raises(ValueError, match="no latent frame carries the loss"):
        objective.flow_matching_loss(nn.Identity(), target, draw)


def test_loss_mask_layout() -> None:
    mask = objective.loss_token_mask(9, 6, 5)
    assert mask.shape == (54,) and not mask[:30].any() and mask[30:].all()
    assert objective.loss_token_mask(9, 6, 0).all()


def test_draws_batch_equals_mean_of_single_draws(bundle, target) -> None:
    spec = ObjectiveSpec(mode="continue", draws_per_step=3)
    (draw,) = objective.fixed_draws(spec, target, 1, seed=7)
    with torch.no_grad():
        batched = float(objective.flow_matching_loss(bundle.mmdit, target, draw))
        singles = [
            float(objective.flow_matching_loss(bundle.mmdit, target, Draw(
                draw.mode, draw.cond_frames, draw.timesteps[i : i + 1], draw.noise[i : i + 1],
                draw.text)))
            for i in range(3)
        ]  # fmt: skip
    assert math.isclose(batched, sum(singles) / 3, rel_tol=1e-5)
    assert draw.noise.shape == (3, *target.x0.shape[1:]) and draw.timesteps.shape == (3,)


def test_mixed_weights_and_reproducible_draws(target) -> None:
    spec = ObjectiveSpec(mode="mixed", mixed_weights=(("denoise", 0.25), ("continue", 0.75)))
    draws = objective.fixed_draws(spec, target, 400, seed=1)
    share = sum(d.mode == "continue" for d in draws) / len(draws)
    assert 0.68 < share < 0.82
    again = objective.fixed_draws(spec, target, 400, seed=1)
    assert all(
        torch.equal(a.noise, b.noise) and a.mode == b.mode
        for a, b in zip(draws, again, strict=True)
    )
    only = ObjectiveSpec(mode="mixed", mixed_weights=(("denoise", 0.0), ("continue", 1.0)))
    assert {d.mode for d in objective.fixed_draws(only, target, 50, seed=2)} == {"continue"}


def test_shift_uses_the_clip_size(target: AdaptationTarget) -> None:
    assert target.latent_frames == 9 and target.tokens_per_frame == 6
    assert target.shift_alpha() == pytest.approx(sampling.compute_shift_alpha(6, 9))


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="unknown adaptation mode"):
        ObjectiveSpec(mode="copy")
    with pytest.raises(ValueError, match="mixed_weights"):
        ObjectiveSpec(mixed_weights=(("denoise", -1.0), ("continue", 1.0)))
    with pytest.raises(ValueError, match="mixed_weights"):
        ObjectiveSpec(mixed_weights=(("first_frame", 1.0),))
    with pytest.raises(ValueError, match="continue_frames must be a non-empty set"):
        ObjectiveSpec(continue_frames=())
    with pytest.raises(ValueError, match="text_dropout must be in"):
        ObjectiveSpec(text_dropout=1.5)
