"""LoRA injection: presets map to real checkpoint modules, counts, freezing, clean removal."""

from __future__ import annotations

import re

import pytest
import torch
from peft.tuners.lora import LoraLayer
from torch import nn

from sora_tta.models.mmdit import MMDiT, mmdit_config
from sora_tta.sampling import make_img_ids, make_txt_ids
from sora_tta.tta import lora


@pytest.fixture(scope="module")
def full_meta() -> MMDiT:
    """The full-size Open-Sora v2.0 MMDiT on the meta device (no memory)."""
    with torch.device("meta"):
        return MMDiT(mmdit_config("opensora-v2"))


@pytest.mark.parametrize(
    ("preset", "modules", "expected"),
    [
        ("attn-only", 19 * 8 + 38 * 2, 22_413_312),
        ("attn+fused", 19 * 8 + 38 * 4, 44_826_624),
        ("attn+fused+mlp", 19 * 12 + 38 * 4, 63_504_384),
    ],
)
def test_full_size_trainable_parameters(
    full_meta: MMDiT, preset: str, modules: int, expected: int
) -> None:
    names = lora.inject_lora(full_meta, lora.LoraSpec(rank=16, targets=preset))
    try:
        assert len(names) == modules
        assert lora.count_trainable_parameters(full_meta) == expected
        assert sum(p.numel() for p in lora.lora_parameters(full_meta)) == expected
        adapter = full_meta.single_blocks[0].q_proj
        assert adapter.lora_A[lora.ADAPTER_NAME].weight.dtype == torch.float32
    finally:
        lora.remove_lora(full_meta)
    assert not lora.has_lora(full_meta)


def test_presets_name_only_modules_of_the_checkpoint(full_meta: MMDiT, mmdit_keys_file) -> None:
    import json

    keys = json.loads(mmdit_keys_file.read_text())["keys"]
    checkpoint_modules = {k.rsplit(".", 1)[0] for k in keys}
    for preset in lora.TARGET_PRESETS:
        names = lora.resolve_targets(full_meta, preset)
        assert set(names) <= checkpoint_modules
        assert not any(re.search(r"(^|\.)(qkv|linear1)$", n) for n in names)
    only = set(lora.resolve_targets(full_meta, "attn-only"))
    attn = set(lora.resolve_targets(full_meta, "attn+fused"))
    for suffix in ("img_attn.q_proj", "txt_attn.k_proj", "img_attn.v_proj", "txt_attn.proj"):
        assert f"double_blocks.18.{suffix}" in only
    for suffix in ("q_proj", "k_proj", "v_mlp", "linear2"):
        assert f"single_blocks.37.{suffix}" in attn
    # The pure attention preset leaves the fused attention+MLP layers of single blocks alone.
    assert attn - only == {
        f"single_blocks.{i}.{s}" for i in range(38) for s in ("v_mlp", "linear2")
    }
    assert not any("mlp" in n or "linear2" in n or "mod" in n for n in only)
    assert not any("mlp." in n or "mod" in n for n in attn)
    for old, new in lora.RENAMED_PRESETS.items():
        with pytest.raises(ValueError, match=f"was renamed '{re.escape(new)}'"):
            lora.resolve_targets(full_meta, old)
    mlp_only = set(lora.resolve_targets(full_meta, "attn+fused+mlp")) - attn
    assert mlp_only == {
        f"double_blocks.{i}.{s}_mlp.{j}" for i in range(19) for s in ("img", "txt") for j in (0, 2)
    }


def test_regex_targets(full_meta: MMDiT) -> None:
    names = lora.resolve_targets(full_meta, r"single_blocks\.\d+\.linear2")
    assert names == [f"single_blocks.{i}.linear2" for i in range(38)]
    with pytest.raises(ValueError, match=r"match no nn\.Linear"):
        lora.resolve_targets(full_meta, r".*\.qkv")
    with pytest.raises(ValueError, match=r"match no nn\.Linear"):
        lora.resolve_targets(full_meta, "linear1")
    with pytest.raises(ValueError, match="regular expression"):
        lora.resolve_targets(full_meta, "single_blocks.(")


def _forward(model: nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return model(
        img=torch.randn(1, 12, 64, generator=gen),
        img_ids=make_img_ids(1, 3, 4, 4),
        txt=torch.randn(1, 5, 48, generator=gen),
        txt_ids=make_txt_ids(1, 5),
        timesteps=torch.tensor([0.7]),
        y_vec=torch.randn(1, 32, generator=gen),
        cond=torch.randn(1, 12, 68, generator=gen),
    )


def test_inject_freezes_base_and_remove_restores_bits(bundle, state_hash) -> None:
    model = bundle.mmdit
    before_hash = state_hash(model)
    before_out = _forward(model).detach()
    base_linear = model.double_blocks[0].img_attn.q_proj
    lora.inject_lora(model, lora.LoraSpec(rank=4), torch.Generator().manual_seed(0))
    try:
        # lora_B starts at zero: the adapted model equals the base model exactly.
        assert torch.equal(_forward(model).detach(), before_out)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
        # Train the adapter so that it changes the function, then remove it.
        params = lora.lora_parameters(model)
        optimizer = torch.optim.SGD(params, lr=0.5)
        for _ in range(2):
            optimizer.zero_grad()
            _forward(model).square().mean().backward()
            optimizer.step()
        assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
        assert not torch.allclose(_forward(model).detach(), before_out)
    finally:
        assert lora.remove_lora(model) == 24
    assert model.double_blocks[0].img_attn.q_proj is base_linear
    assert not any(isinstance(m, LoraLayer) for m in model.modules())
    assert state_hash(model) == before_hash
    assert torch.equal(_forward(model).detach(), before_out)
    # A second injection works (no peft state left on the model) and starts from the seed.
    first = lora.inject_lora(model, lora.LoraSpec(rank=4), torch.Generator().manual_seed(0))
    state_a = lora.lora_state_dict(model)
    lora.remove_lora(model)
    lora.inject_lora(model, lora.LoraSpec(rank=4), torch.Generator().manual_seed(0))
    state_b = lora.lora_state_dict(model)
    lora.remove_lora(model)
    assert len(first) == 24 and state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    model.requires_grad_(False)  # as loaded


def test_context_manager_restores_flags(bundle) -> None:
    model = bundle.mmdit
    model.img_in.weight.requires_grad_(True)
    try:
        with lora.lora_adapters(model, lora.LoraSpec(rank=2)):
            assert not model.img_in.weight.requires_grad
            with pytest.raises(RuntimeError, match="already holds"):
                lora.inject_lora(model, lora.LoraSpec(rank=2))
        assert model.img_in.weight.requires_grad
        assert not lora.has_lora(model)
    finally:
        model.img_in.weight.requires_grad_(False)


def test_bf16_base_float32_adapters(tiny_ckpt_dir) -> None:
    from sora_tta.models.loader import load_mmdit

    model = load_mmdit(
        tiny_ckpt_dir / "Open_Sora_v2.safetensors", device="cpu", dtype=torch.bfloat16
    )
    with lora.lora_adapters(model, lora.LoraSpec(rank=4, targets="attn+fused+mlp")):
        for name, param in model.named_parameters():
            if ".lora_" in name:
                assert param.dtype == torch.float32 and param.requires_grad
            else:
                assert param.dtype == torch.bfloat16 and not param.requires_grad
        out = _forward(model)
        assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
        out.float().square().mean().backward()
        grads = [p.grad for p in lora.lora_parameters(model)]
        assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert not lora.has_lora(model)


def test_lora_spec_validation() -> None:
    with pytest.raises(ValueError, match="rank"):
        lora.LoraSpec(rank=0)
    with pytest.raises(ValueError, match="dropout"):
        lora.LoraSpec(dropout=1.0)


def test_adapters_cast_to_runs_in_bf16_and_restores_float32_bits() -> None:
    torch.manual_seed(0)
    model = MMDiT(mmdit_config("tiny")).to(torch.bfloat16)
    base = _forward(model)
    with lora.lora_adapters(model, lora.LoraSpec(rank=4), torch.Generator().manual_seed(0)):
        with torch.no_grad():
            for param in lora.lora_parameters(model):
                param.normal_()  # a trained, non-zero adapter
        before = {k: v.clone() for k, v in lora.lora_state_dict(model).items()}
        expected = _forward(model)
        with lora.adapters_cast_to(model, torch.bfloat16):
            assert {p.dtype for p in lora.lora_parameters(model)} == {torch.bfloat16}
            fast = _forward(model)
        after = lora.lora_state_dict(model)
        assert all(after[k].dtype == torch.float32 for k in after)
        assert all(torch.equal(before[k], after[k]) for k in before)
        # Same function up to bf16 rounding of the adapter weights.
        assert torch.allclose(fast.float(), expected.float(), rtol=0.1, atol=0.1)
        assert (fast.float() - base.float()).abs().max() > 0.1  # the adapter still acts
