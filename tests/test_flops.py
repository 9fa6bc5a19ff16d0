"""The FLOP model against FLOPs counted on a real forward of the tiny MMDiT."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sora_tta import sampling
from sora_tta.flops import mmdit_flops
from sora_tta.models.mmdit import MMDiT, mmdit_config


def counted_linear_flops(model: nn.Module, **inputs: torch.Tensor) -> int:
    """2 * in * out for every row each nn.Linear actually processes in one forward."""
    total = 0

    def hook(module: nn.Linear, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        nonlocal total
        rows = args[0].numel() // module.in_features
        total += 2 * rows * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


@pytest.mark.parametrize("batch", [1, 3])
def test_linear_flops_match_a_counted_forward(batch: int) -> None:
    config = mmdit_config("tiny")
    model = MMDiT(config)
    frames, h, w, txt_tokens = 3, 8, 6, 5
    latent = torch.randn(batch, 16, frames, h, w)
    masks, masked_ref = sampling.v2v_condition(latent[:1], frames, 1)
    inputs = {
        "img": sampling.patchify(latent),
        "img_ids": sampling.make_img_ids(batch, frames, h, w),
        "txt": torch.randn(batch, txt_tokens, config.context_in_dim),
        "txt_ids": sampling.make_txt_ids(batch, txt_tokens),
        "timesteps": torch.rand(batch),
        "y_vec": torch.randn(batch, config.vec_in_dim),
        "cond": sampling.build_cond(masks, masked_ref).expand(batch, -1, -1),
    }
    img_tokens = frames * (h // 2) * (w // 2)
    flops = mmdit_flops(config, batch=batch, img_tokens=img_tokens, txt_tokens=txt_tokens)
    assert flops.linear == counted_linear_flops(model, **inputs)


def test_full_size_counts_and_backward_rule() -> None:
    config = mmdit_config("opensora-v2")
    fwd = mmdit_flops(config, batch=1, img_tokens=2268, txt_tokens=512)
    # Each token passes one stream of a double block (4 h^2 + 2 h * 4h weights) and every
    # single block (the same count); modulations act once per sample, not per token.
    per_block = 4 * 3072**2 + 2 * 3072 * 12288
    assert fwd.linear == pytest.approx(2 * 57 * per_block * (2268 + 512), rel=0.01)
    assert fwd.attention == 57 * 4 * (2268 + 512) ** 2 * 3072
    bwd = mmdit_flops(config, batch=1, img_tokens=2268, txt_tokens=512, backward=True)
    assert bwd.total == pytest.approx(2 * fwd.linear + 3 * fwd.attention)
    lora = mmdit_flops(config, batch=1, img_tokens=10, txt_tokens=0, lora_rank=16)
    # attn+fused: 4 square projections per double stream, q/k/v_mlp/linear2 per single block.
    per_token = 19 * 4 * 2 * 16 * 6144 + 38 * 2 * 16 * (2 * 6144 + 2 * (3072 + 15360))
    assert lora.lora == 10 * per_token
    # attn-only leaves the single blocks' fused v_mlp/linear2 alone.
    only = mmdit_flops(
        config, batch=1, img_tokens=10, txt_tokens=0, lora_rank=16, lora_targets="attn-only"
    )
    assert only.lora == 10 * (19 * 4 * 2 * 16 * 6144 + 38 * 2 * 16 * 2 * 6144)
