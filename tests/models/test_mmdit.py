"""The MMDiT reproduces the reference implementation (golden fixtures) and its key layout."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from sora_tta.models.layers import apply_rope, rope_tables, timestep_embedding
from sora_tta.models.loader import load_mmdit
from sora_tta.models.mmdit import MMDIT_PRESETS, MMDiT, MMDiTConfig, mmdit_config

FULL_NUM_PARAMETERS = 11_891_390_528


def test_config_fields_equal_reference(tiny_config_dict, fixtures_dir):
    full = json.loads((fixtures_dir / "opensora_v2_mmdit_keys.json").read_text())["config"]
    assert {f.name for f in dataclasses.fields(MMDiTConfig)} == set(tiny_config_dict)
    assert MMDiTConfig(**tiny_config_dict) == mmdit_config("tiny")
    assert MMDiTConfig(**full) == mmdit_config("opensora-v2")
    assert mmdit_config("tiny").to_dict() == tiny_config_dict
    assert MMDiTConfig(**json.loads(json.dumps(mmdit_config("opensora-v2").to_dict()))) == (
        mmdit_config("opensora-v2")
    )


def test_presets_are_copies():
    config = mmdit_config("tiny")
    config.axes_dim[0] = 99
    assert MMDIT_PRESETS["tiny"].axes_dim[0] == 4
    with pytest.raises(ValueError, match="unknown MMDiT preset 'huge'"):
        mmdit_config("huge")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"fused_qkv": True}, "fused_qkv=True is unsupported"),
        ({"guidance_embed": True}, "guidance_embed=True is unsupported"),
        ({"use_liger_rope": False}, "rotate-half"),
        ({"axes_dim": [4, 6, 8]}, r"sum\(axes_dim\) = 18 must equal the head dim 16"),
        ({"num_heads": 3}, "not divisible by num_heads"),
        ({"in_channels": 66}, "not a multiple of patch_size"),
    ],
)
def test_config_rejects_unsupported(change, reason):
    with pytest.raises(ValueError, match=reason):
        dataclasses.replace(mmdit_config("tiny"), **change)


def test_forward_matches_reference(tiny_checkpoint, tiny_forward, tiny_forward_inputs):
    model = load_mmdit(tiny_checkpoint, dtype=torch.float32)
    with torch.no_grad():
        out = model(**tiny_forward_inputs)
    expected = tiny_forward[0]["output"]
    err = (out - expected).abs().max().item()
    print(f"tiny forward max abs error vs fixture: {err:.3e}")
    assert out.shape == expected.shape
    assert err < 1e-4


def test_forward_depends_on_every_input(tiny_checkpoint, tiny_forward_inputs):
    """Guards against an input being silently ignored (e.g. cond or positions)."""
    model = load_mmdit(tiny_checkpoint, dtype=torch.float32)
    with torch.no_grad():
        base = model(**tiny_forward_inputs)
        for name, value in tiny_forward_inputs.items():
            if name == "txt_ids":
                changed = torch.ones_like(value)
            elif name == "img_ids":
                changed = value.flip(1)
            else:
                changed = value + 0.5
            out = model(**{**tiny_forward_inputs, name: changed})
            assert (out - base).abs().max() > 1e-3, name


def test_cond_is_required(tiny_checkpoint, tiny_forward_inputs):
    model = load_mmdit(tiny_checkpoint, dtype=torch.float32)
    inputs = {k: v for k, v in tiny_forward_inputs.items() if k != "cond"}
    with pytest.raises(ValueError, match="cond_embed=True"):
        model(**inputs)


def test_bf16_forward_close_to_fp32(tiny_checkpoint, tiny_forward_inputs):
    fp32 = load_mmdit(tiny_checkpoint, dtype=torch.float32)
    bf16 = load_mmdit(tiny_checkpoint, dtype=torch.bfloat16)
    inputs_bf16 = {
        k: v.to(torch.bfloat16) if k == "timesteps" else v for k, v in tiny_forward_inputs.items()
    }
    with torch.no_grad():
        ref = fp32(**tiny_forward_inputs)
        out = bf16(**inputs_bf16)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.05, f"bf16 relative error {rel:.3f}"


def test_full_size_keys_shapes_and_count(fixtures_dir):
    manifest = json.loads((fixtures_dir / "opensora_v2_mmdit_keys.json").read_text())
    with torch.device("meta"):
        model = MMDiT(mmdit_config("opensora-v2"))
    state = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert state == manifest["keys"]
    assert sum(p.numel() for p in model.parameters()) == FULL_NUM_PARAMETERS
    assert manifest["num_parameters"] == FULL_NUM_PARAMETERS


def test_linear_module_names_are_checkpoint_modules(fixtures_dir):
    keys = json.loads((fixtures_dir / "opensora_v2_mmdit_keys.json").read_text())["keys"]
    with torch.device("meta"):
        model = MMDiT(mmdit_config("opensora-v2"))
    names = model.linear_module_names()
    assert len(names) == 19 * 14 + 38 * 5 + 9
    assert all(f"{name}.weight" in keys for name in names)
    assert {"double_blocks.0.img_attn.q_proj", "single_blocks.37.v_mlp", "cond_in"} <= set(names)
    assert not [n for n in names if n.endswith((".qkv", ".linear1"))]


def test_gradient_checkpointing_gives_same_gradients(tiny_checkpoint, tiny_forward_inputs):
    grads, block_calls = [], []
    for checkpointing in (False, True):
        model = load_mmdit(tiny_checkpoint, dtype=torch.float32)
        model.requires_grad_(True)
        model.gradient_checkpointing = checkpointing
        calls: list[int] = []
        model.single_blocks[0].register_forward_pre_hook(lambda *_, calls=calls: calls.append(1))
        model(**tiny_forward_inputs).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        block_calls.append(len(calls))
    assert block_calls == [1, 2]  # checkpointed blocks run again in the backward pass
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_timestep_embedding_formula():
    t = torch.tensor([0.0, 0.25, 1.0])
    emb = timestep_embedding(t, 256)
    k = torch.arange(128, dtype=torch.float64)
    args = 1000 * t.double()[:, None] * torch.exp(-math.log(10000) * k / 128)[None]
    expected = torch.cat([args.cos(), args.sin()], -1)
    # float32 arguments up to 1000 rad carry ~1e-4 rounding, as in the reference.
    torch.testing.assert_close(emb.double(), expected, atol=2e-4, rtol=0)


def test_rope_is_rotate_half_and_relative():
    axes_dim = [4, 6, 6]
    ids = torch.tensor([[[0.0, 0, 0], [1, 2, 3], [3, 1, 0]]])
    rope = rope_tables(ids, axes_dim, 10000)
    x = torch.randn(1, 2, 3, 16, generator=torch.Generator().manual_seed(0))
    out = apply_rope(x, rope)
    # Channel i pairs with channel i + 8; angles are [t: 2, h: 3, w: 3] per axis, so
    # channel 3 is axis h (d = 6), j = 1, angle pos_h / theta^(2j/d).
    i, pos = 3, ids[0, 1]
    angle = pos[1] / 10000 ** (2 * 1 / 6)
    x1, x2 = x[0, 0, 1, i], x[0, 0, 1, i + 8]
    expected = x1 * angle.cos() - x2 * angle.sin()
    torch.testing.assert_close(out[0, 0, 1, i], expected)
    # Rotations preserve norms and make dot products depend on position differences only.
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    shifted = rope_tables(ids + torch.tensor([2.0, 5.0, 1.0]), axes_dim, 10000)
    q, k = x[:, :1], x[:, 1:]
    dots = apply_rope(q, rope) @ apply_rope(k, rope).transpose(-1, -2)
    dots_shifted = apply_rope(q, shifted) @ apply_rope(k, shifted).transpose(-1, -2)
    torch.testing.assert_close(dots, dots_shifted, atol=1e-4, rtol=1e-4)
