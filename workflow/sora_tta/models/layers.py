"""Building blocks of the Open-Sora v2.0 MMDiT (Flux-style, q/k/v projections not fused).

Module and parameter names equal those of the official checkpoint
``Open_Sora_v2.safetensors``, so its state dict loads without renaming.
Numerics follow the reference inference code: RMSNorm and rotary embedding run
in float32 and are cast back; modulation and residual math run in the
activation dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS = 1e-6
RMS_EPS = 1e-6

# (cos, sin), each (B, L, head_dim) in float32, shared by every attention layer of one forward.
RopeTables = tuple[Tensor, Tensor]


def timestep_embedding(
    t: Tensor, dim: int = 256, max_period: float = 10000.0, time_factor: float = 1000.0
) -> Tensor:
    """Sinusoidal embedding ``[cos, sin]`` of timesteps ``t`` (shape ``(B,)``, values in [0, 1]).

    Frequencies are ``exp(-ln(max_period) * k / (dim / 2))``; ``t`` is scaled by
    ``time_factor`` first. Computed in float32, returned in ``t``'s dtype.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = (time_factor * t).float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding.to(t.dtype) if torch.is_floating_point(t) else embedding


def rope_tables(ids: Tensor, axes_dim: list[int] | tuple[int, ...], theta: float) -> RopeTables:
    """Rotary tables for positions ``ids`` (B, L, n_axes) in the rotate-half layout.

    Per axis with dim ``d``: angles ``pos / theta^(2j/d)`` for ``j < d/2``; the
    angles of all axes are concatenated (``head_dim / 2`` values) and repeated
    twice so that channel ``i`` and ``i + head_dim/2`` share an angle.
    """
    if ids.shape[-1] != len(axes_dim):
        raise ValueError(f"ids have {ids.shape[-1]} axes, axes_dim has {len(axes_dim)}")
    angles = []
    for axis, dim in enumerate(axes_dim):
        exponent = torch.arange(0, dim, 2, dtype=torch.float32, device=ids.device) / dim
        omega = 1.0 / (theta**exponent)
        angles.append(ids[..., axis].float()[..., None] * omega)
    angle = torch.cat(angles, dim=-1)
    cos, sin = angle.cos(), angle.sin()
    return torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)


def apply_rope(x: Tensor, rope: RopeTables) -> Tensor:
    """Rotate ``x`` (B, H, L, D) in the rotate-half convention, in float32, cast back."""
    cos, sin = (table[:, None] for table in rope)  # broadcast over heads
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, rope: RopeTables) -> Tensor:
    """Softmax attention over heads (B, H, L, D) with rotary positions; returns (B, L, H*D)."""
    q, k = apply_rope(q, rope), apply_rope(k, rope)
    out = F.scaled_dot_product_attention(q, k, v)
    batch, heads, length, head_dim = out.shape
    return out.transpose(1, 2).reshape(batch, length, heads * head_dim)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, L, H*D) -> (B, H, L, D)."""
    batch, length, _ = x.shape
    return x.view(batch, length, num_heads, -1).transpose(1, 2)


class MLPEmbedder(nn.Module):
    """Linear, SiLU, Linear (``in_layer`` / ``out_layer``)."""

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_dim, bias=True)
        self.silu = nn.SiLU()
        self.out_layer = nn.Linear(hidden_dim, hidden_dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(self.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim in float32, cast back, times ``scale``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        rrms = torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + RMS_EPS)
        return (xf * rrms).to(x.dtype) * self.scale


class QKNorm(nn.Module):
    """Separate per-head RMSNorms for queries and keys."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(head_dim)
        self.key_norm = RMSNorm(head_dim)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return self.query_norm(q).to(v.dtype), self.key_norm(k).to(v.dtype)


class ModulationOut:
    """One (shift, scale, gate) triple, each (B, 1, hidden)."""

    __slots__ = ("gate", "scale", "shift")

    def __init__(self, shift: Tensor, scale: Tensor, gate: Tensor) -> None:
        self.shift, self.scale, self.gate = shift, scale, gate

    def modulate(self, x: Tensor) -> Tensor:
        """``(1 + scale) * x + shift``."""
        return (1 + self.scale) * x + self.shift


class Modulation(nn.Module):
    """``lin(silu(vec))`` split into one (``double=False``) or two (``double=True``) triples."""

    def __init__(self, dim: int, double: bool) -> None:
        super().__init__()
        self.is_double = double
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim, bias=True)

    def forward(self, vec: Tensor) -> tuple[ModulationOut, ...]:
        out = self.lin(F.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1)
        return tuple(ModulationOut(*out[i : i + 3]) for i in range(0, self.multiplier, 3))


class SelfAttention(nn.Module):
    """Unfused q/k/v projections, per-head QK RMSNorm and output projection ``proj``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.norm = QKNorm(head_dim)
        self.proj = nn.Linear(dim, dim)

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised per-head q, k and v, each (B, H, L, D)."""
        q = split_heads(self.q_proj(x), self.num_heads)
        k = split_heads(self.k_proj(x), self.num_heads)
        v = split_heads(self.v_proj(x), self.num_heads)
        q, k = self.norm(q, k, v)
        return q, k, v


def _mlp(hidden_size: int, mlp_hidden_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(hidden_size, mlp_hidden_dim, bias=True),
        nn.GELU(approximate="tanh"),
        nn.Linear(mlp_hidden_dim, hidden_size, bias=True),
    )


class DoubleStreamBlock(nn.Module):
    """Separate weights for image and text tokens, joint attention over [txt, img]."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        mlp_hidden_dim = int(hidden_size * mlp_ratio)
        self.num_heads = num_heads
        self.hidden_size = hidden_size
        self.img_mod = Modulation(hidden_size, double=True)
        self.img_norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LN_EPS)
        self.img_attn = SelfAttention(hidden_size, num_heads, qkv_bias)
        self.img_norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LN_EPS)
        self.img_mlp = _mlp(hidden_size, mlp_hidden_dim)

        self.txt_mod = Modulation(hidden_size, double=True)
        self.txt_norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LN_EPS)
        self.txt_attn = SelfAttention(hidden_size, num_heads, qkv_bias)
        self.txt_norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LN_EPS)
        self.txt_mlp = _mlp(hidden_size, mlp_hidden_dim)

    def forward(
        self, img: Tensor, txt: Tensor, vec: Tensor, rope: RopeTables
    ) -> tuple[Tensor, Tensor]:
        img_mod1, img_mod2 = self.img_mod(vec)
        txt_mod1, txt_mod2 = self.txt_mod(vec)

        img_q, img_k, img_v = self.img_attn.qkv(img_mod1.modulate(self.img_norm1(img)))
        txt_q, txt_k, txt_v = self.txt_attn.qkv(txt_mod1.modulate(self.txt_norm1(txt)))

        q = torch.cat((txt_q, img_q), dim=2)
        k = torch.cat((txt_k, img_k), dim=2)
        v = torch.cat((txt_v, img_v), dim=2)
        attn = attention(q, k, v, rope)
        txt_attn, img_attn = attn[:, : txt.shape[1]], attn[:, txt.shape[1] :]

        img = img + img_mod1.gate * self.img_attn.proj(img_attn)
        img = img + img_mod2.gate * self.img_mlp(img_mod2.modulate(self.img_norm2(img)))

        txt = txt + txt_mod1.gate * self.txt_attn.proj(txt_attn)
        txt = txt + txt_mod2.gate * self.txt_mlp(txt_mod2.modulate(self.txt_norm2(txt)))
        return img, txt


class SingleStreamBlock(nn.Module):
    """Shared weights over [txt, img]; attention and MLP in parallel.

    ``v_mlp`` fuses the value projection with the MLP input and ``linear2`` fuses
    the attention output projection with the MLP output.
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        head_dim = hidden_size // num_heads
        self.mlp_hidden_dim = int(hidden_size * mlp_ratio)
        self.q_proj = nn.Linear(hidden_size, hidden_size, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=qkv_bias)
        self.v_mlp = nn.Linear(hidden_size, hidden_size + self.mlp_hidden_dim, bias=qkv_bias)
        self.linear2 = nn.Linear(hidden_size + self.mlp_hidden_dim, hidden_size)
        self.norm = QKNorm(head_dim)
        self.pre_norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LN_EPS)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.modulation = Modulation(hidden_size, double=False)

    def forward(self, x: Tensor, vec: Tensor, rope: RopeTables) -> Tensor:
        (mod,) = self.modulation(vec)
        x_mod = mod.modulate(self.pre_norm(x))
        q = split_heads(self.q_proj(x_mod), self.num_heads)
        k = split_heads(self.k_proj(x_mod), self.num_heads)
        v, mlp = torch.split(self.v_mlp(x_mod), [self.hidden_size, self.mlp_hidden_dim], dim=-1)
        v = split_heads(v, self.num_heads)
        q, k = self.norm(q, k, v)
        attn = attention(q, k, v, rope)
        return x + mod.gate * self.linear2(torch.cat((attn, self.mlp_act(mlp)), dim=2))


class LastLayer(nn.Module):
    """Final adaptive LayerNorm (``adaLN_modulation`` = SiLU, Linear) and output ``linear``."""

    def __init__(self, hidden_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LN_EPS)
        self.linear = nn.Linear(hidden_size, out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(
            nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True)
        )

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)
        x = (1 + scale[:, None, :]) * self.norm_final(x) + shift[:, None, :]
        return self.linear(x)
