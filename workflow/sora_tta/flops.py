"""Floating-point operation counts of the MMDiT, for benchmarks (achieved TFLOP/s).

The model used (documented in ``docs/performance.md``):

- a linear layer costs ``2 * in * out`` per token it is applied to (multiply + add);
  image tokens go through the image-stream weights of the double blocks, text tokens
  through the text-stream weights, both through the single blocks;
- one attention layer over ``L`` joint tokens costs ``4 * L**2 * hidden``
  (``Q K^T`` and ``P V``, each ``2 * L**2 * hidden``);
- the per-sample layers on the conditioning vector (modulations, ``time_in``,
  ``vector_in``) are counted once per sample, not per token;
- with frozen base weights the backward pass computes input gradients only: about the
  forward's linear FLOPs again plus twice its attention FLOPs; LoRA adapters add
  ``2 * r * (in + out)`` per token forward and twice that backward (input and weight gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

from sora_tta.models.mmdit import MMDiTConfig


@dataclass(frozen=True)
class FlopCount:
    """Forward and backward FLOPs of one model call, split by kind."""

    linear: float
    attention: float
    lora: float = 0.0
    backward: bool = False

    @property
    def forward(self) -> float:
        """FLOPs of the forward pass."""
        return self.linear + self.attention + self.lora

    @property
    def total(self) -> float:
        """Forward FLOPs, plus the backward's when ``backward`` is set."""
        if not self.backward:
            return self.forward
        return self.forward + self.linear + 2 * self.attention + 2 * self.lora


def _linear(fan_in: int, fan_out: int) -> int:
    return 2 * fan_in * fan_out


def per_token_linear_flops(config: MMDiTConfig) -> tuple[int, int]:
    """Forward FLOPs per image token and per text token of all token-wise linear layers."""
    h = config.hidden_size
    mlp = int(h * config.mlp_ratio)
    stream = 4 * _linear(h, h) + _linear(h, mlp) + _linear(mlp, h)  # q, k, v, proj, mlp.0, mlp.2
    single = 2 * _linear(h, h) + _linear(h, h + mlp) + _linear(h + mlp, h)
    out_channels = config.in_channels
    blocks = config.depth * stream + config.depth_single_blocks * single
    img = (
        _linear(config.in_channels, h)
        + (_linear(config.in_channels + 4, h) if config.cond_embed else 0)
        + blocks
        + _linear(h, out_channels)
    )
    txt = _linear(config.context_in_dim, h) + blocks
    return img, txt


def per_sample_linear_flops(config: MMDiTConfig) -> int:
    """Forward FLOPs of the layers applied once per sample (conditioning vector path)."""
    h = config.hidden_size
    embed = _linear(256, h) + _linear(h, h) + _linear(config.vec_in_dim, h) + _linear(h, h)
    modulation = config.depth * 2 * _linear(h, 6 * h) + config.depth_single_blocks * _linear(
        h, 3 * h
    )
    return embed + modulation + _linear(h, 2 * h)


#: The LoRA target presets of ``sora_tta.tta.lora`` whose FLOPs are modelled here.
LORA_PRESETS = ("attn-only", "attn+fused", "attn+fused+mlp")


def lora_flops_per_token(config: MMDiTConfig, rank: int, targets: str) -> tuple[int, int]:
    """Forward FLOPs per image and per text token of LoRA adapters of ``rank`` on a preset."""
    h = config.hidden_size
    mlp = int(h * config.mlp_ratio)

    def adapter(fan_in: int, fan_out: int) -> int:
        return 2 * rank * (fan_in + fan_out)

    if targets not in LORA_PRESETS:
        raise ValueError(
            f"FLOPs are modelled for the presets {list(LORA_PRESETS)}, not {targets!r}"
        )
    stream = 4 * adapter(h, h)
    if targets == "attn+fused+mlp":
        stream += adapter(h, mlp) + adapter(mlp, h)
    single = 2 * adapter(h, h)
    if targets != "attn-only":
        single += adapter(h, h + mlp) + adapter(h + mlp, h)
    per_token = config.depth * stream + config.depth_single_blocks * single
    return per_token, per_token


def mmdit_flops(
    config: MMDiTConfig,
    *,
    batch: int,
    img_tokens: int,
    txt_tokens: int,
    backward: bool = False,
    lora_rank: int = 0,
    lora_targets: str = "attn+fused",
) -> FlopCount:
    """FLOPs of one MMDiT call on ``batch`` samples of ``img_tokens`` + ``txt_tokens`` tokens."""
    img, txt = per_token_linear_flops(config)
    linear = batch * (img_tokens * img + txt_tokens * txt + per_sample_linear_flops(config))
    length = img_tokens + txt_tokens
    layers = config.depth + config.depth_single_blocks
    attention = batch * layers * 4 * length**2 * config.hidden_size
    lora = 0
    if lora_rank:
        lora_img, lora_txt = lora_flops_per_token(config, lora_rank, lora_targets)
        lora = batch * (img_tokens * lora_img + txt_tokens * lora_txt)
    return FlopCount(
        linear=float(linear), attention=float(attention), lora=float(lora), backward=backward
    )
