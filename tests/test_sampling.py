"""Sampling math: schedule, token layout, v2v condition and the guided sampler vs the fixture."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sora_tta.models.loader import load_mmdit
from sora_tta.sampling import (
    GuidanceConfig,
    build_cond,
    compute_shift_alpha,
    get_schedule,
    make_img_ids,
    make_txt_ids,
    oscillated_scale,
    patchify,
    sample_v2v,
    time_shift,
    tokens_per_frame,
    unpatchify,
    v2v_condition,
)


@pytest.fixture(scope="module")
def v2v_fixture(fixtures_dir):
    path = fixtures_dir / "mmdit_tiny_v2v_sampling.safetensors"
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
    return load_file(path), metadata


@pytest.fixture(scope="module")
def tiny_model(fixtures_dir, tmp_path_factory):
    """The fixture's tiny MMDiT, loaded through ``load_mmdit`` in float32."""
    source = fixtures_dir / "mmdit_tiny_forward.safetensors"
    with safe_open(source, framework="pt") as handle:
        metadata = {"config": handle.metadata()["config"]}
    prefix = "weights/"
    tensors = load_file(source)
    weights = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    path = tmp_path_factory.mktemp("tiny") / "mmdit.safetensors"
    save_file(weights, path, metadata=metadata)
    return load_mmdit(path, dtype=torch.float32)


def test_time_shift_values():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(time_shift(1.0, t), t)
    torch.testing.assert_close(time_shift(3.0, t), torch.tensor([0.0, 0.5, 0.75, 1.0]))
    assert time_shift(2.0, 0.5) == pytest.approx(2 / 3)


def test_shift_alpha_line():
    assert compute_shift_alpha(256, 1) == pytest.approx(1.0)
    assert compute_shift_alpha(4096, 1) == pytest.approx(3.0)
    assert compute_shift_alpha(2176, 4) == pytest.approx(4.0)  # midpoint 2.0 times sqrt(4)
    # 256px 4:3 (224 x 288 -> 28 x 36 latent), 17 latent frames.
    assert tokens_per_frame(28, 36) == 252
    expected = (1 + 2 * (252 - 256) / 3840) * math.sqrt(17)
    assert compute_shift_alpha(252, 17) == pytest.approx(expected)


def test_schedule_shape_and_shift():
    plain = get_schedule(4, 252, 17, shift=False)
    assert plain == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    shifted = get_schedule(25, 252, 17)
    assert len(shifted) == 26 and shifted[0] == 1.0 and shifted[-1] == 0.0
    assert all(a > b for a, b in itertools.pairwise(shifted))
    assert shifted[13] > 0.5  # alpha > 1 spends more steps near the noise end
    with pytest.raises(ValueError, match="num_steps"):
        get_schedule(0, 252, 17)


def test_schedule_matches_fixture(v2v_fixture):
    tensors, metadata = v2v_fixture
    _, _, frames, height, width = tensors["noise"].shape
    schedule = get_schedule(int(metadata["num_steps"]), tokens_per_frame(height, width), frames)
    assert torch.equal(torch.tensor(schedule), tensors["timesteps"])


def test_patchify_layout_and_round_trip():
    latent = torch.randn(2, 16, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    tokens = patchify(latent)
    assert tokens.shape == (2, 3 * 4 * 3, 64)
    # token (t=1, h=2, w=1) holds channels (c, ph, pw) of the 2x2 patch at rows 4-5, cols 2-3
    token = tokens[1, 1 * 12 + 2 * 3 + 1]
    torch.testing.assert_close(token, latent[1, :, 1, 4:6, 2:4].reshape(-1))
    assert torch.equal(unpatchify(tokens, 3, 8, 6), latent)
    with pytest.raises(ValueError, match="do not fit"):
        unpatchify(tokens, 3, 8, 8)
    with pytest.raises(ValueError, match="not divisible by patch size"):
        patchify(torch.zeros(1, 16, 1, 7, 6))


def test_ids_match_fixture(fixtures_dir):
    tensors = load_file(fixtures_dir / "mmdit_tiny_forward.safetensors")
    ids = make_img_ids(2, 3, 8, 6)  # fixture latent (2, 16, 3, 8, 6)
    assert torch.equal(ids, tensors["input/img_ids"])
    assert torch.equal(make_txt_ids(2, 5), tensors["input/txt_ids"])


def test_v2v_condition_and_cond():
    ref = torch.randn(1, 16, 4, 4, 6) + 3.0
    masks, masked_ref = v2v_condition(ref, num_latent_frames_total=7, num_cond_frames=3)
    assert masks.shape == (1, 1, 7, 4, 6) and masked_ref.shape == (1, 16, 7, 4, 6)
    assert torch.equal(masks[0, 0, :, 0, 0], torch.tensor([1.0, 1, 1, 0, 0, 0, 0]))
    assert torch.equal(masked_ref[:, :, :3], ref[:, :, :3])
    assert not masked_ref[:, :, 3:].any()
    cond = build_cond(masks, masked_ref)
    assert cond.shape == (1, 7 * 2 * 3, 68)
    first_frame, later_frame = cond[0, 0], cond[0, -1]
    assert torch.equal(first_frame[:4], torch.ones(4))  # mask channel (c=0, 2x2 patch) first
    assert not later_frame.any()
    with pytest.raises(ValueError, match="num_cond_frames=5"):
        v2v_condition(ref, 7, 5)
    with pytest.raises(ValueError, match=r"masks .* must be \(B, 1, T, H, W\)"):
        build_cond(masked_ref, masked_ref)


def test_oscillation_convention():
    scales = [oscillated_scale(7.5, step, True) for step in range(14)]
    assert scales == [7.5] * 11 + [1.0, 7.5, 1.0]
    assert all(oscillated_scale(7.5, step, False) == 7.5 for step in range(14))


def test_guidance_config_validation():
    assert GuidanceConfig() == GuidanceConfig(25, 7.5, 3.0, True, True)
    with pytest.raises(ValueError, match="num_steps"):
        GuidanceConfig(num_steps=0)


def _fixture_inputs(tensors):
    names = ("noise", "masks", "masked_ref", "txt_cond", "txt_neg", "y_vec_cond", "y_vec_neg")
    return [tensors[name] for name in names]


def test_sample_v2v_matches_fixture(tiny_model, v2v_fixture):
    tensors, metadata = v2v_fixture
    guidance = GuidanceConfig(
        num_steps=int(metadata["num_steps"]),
        guidance=float(metadata["guidance"]),
        guidance_img=float(metadata["guidance_img"]),
        text_osci=metadata["text_osci"] == "true",
        image_osci=metadata["image_osci"] == "true",
    )
    assert metadata["scale_temporal_osci"] == "false"
    _, _, frames, height, width = tensors["noise"].shape
    timesteps = get_schedule(guidance.num_steps, tokens_per_frame(height, width), frames)
    masks, masked_ref = v2v_condition(
        tensors["masked_ref"], frames, int(metadata["conditioned_latent_frames"])
    )
    assert torch.equal(masks, tensors["masks"]) and torch.equal(masked_ref, tensors["masked_ref"])
    out = sample_v2v(tiny_model, *_fixture_inputs(tensors), timesteps, guidance)
    err = (out - tensors["output_latent"]).abs().max().item()
    print(f"tiny v2v sampling max abs error vs fixture: {err:.3e}")
    assert out.dtype == torch.float32 and out.shape == tensors["noise"].shape
    assert err < 1e-4


def test_sample_v2v_one_batched_call_per_step(tiny_model, v2v_fixture):
    tensors, _ = v2v_fixture
    batches = []
    handle = tiny_model.register_forward_hook(
        lambda module, args, kwargs, output: batches.append(kwargs["img"].shape[0]),
        with_kwargs=True,
    )
    try:
        guidance = GuidanceConfig(num_steps=3)
        sample_v2v(tiny_model, *_fixture_inputs(tensors), [1.0, 0.6, 0.3, 0.0], guidance)
    finally:
        handle.remove()
    assert batches == [3, 3, 3]


def test_sample_v2v_rejects_bad_inputs(tiny_model, v2v_fixture):
    tensors, _ = v2v_fixture
    inputs = _fixture_inputs(tensors)
    with pytest.raises(ValueError, match="expected num_steps \\+ 1 = 4"):
        sample_v2v(tiny_model, *inputs, [1.0, 0.0], GuidanceConfig(num_steps=3))
    inputs[4] = inputs[4][:, :2]  # negative text shorter than the prompt's
    with pytest.raises(ValueError, match="equal shapes"):
        sample_v2v(tiny_model, *inputs, [1.0, 0.0], GuidanceConfig(num_steps=1))
