"""The Open-Sora v2.0 diffusion transformer (MMDiT) and its configuration.

``MMDiTConfig`` has exactly the fields of the reference configuration (as stored in
the ``config`` metadata of our checkpoints and fixtures), so
``MMDiTConfig(**json.loads(metadata["config"]))`` works. Only the variant of the
official checkpoint is implemented: unfused q/k/v, no guidance embedding,
rotate-half rotary embedding; other flags are rejected with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sora_tta.models.layers import (
    DoubleStreamBlock,
    LastLayer,
    MLPEmbedder,
    SingleStreamBlock,
    rope_tables,
    timestep_embedding,
)

TIME_EMBED_DIM = 256


@dataclass
class MMDiTConfig:
    """Hyper-parameters of the MMDiT; field names match the reference ``MMDiTConfig``."""

    in_channels: int = 64
    vec_in_dim: int = 768
    context_in_dim: int = 4096
    hidden_size: int = 3072
    mlp_ratio: float = 4.0
    num_heads: int = 24
    depth: int = 19
    depth_single_blocks: int = 38
    axes_dim: list[int] = field(default_factory=lambda: [16, 56, 56])
    theta: int = 10000
    qkv_bias: bool = True
    guidance_embed: bool = False
    cond_embed: bool = True
    fused_qkv: bool = False
    # Training-time activation-checkpoint settings of the reference; recorded, not used here
    # (see ``MMDiT.gradient_checkpointing``).
    grad_ckpt_settings: Any = None
    use_liger_rope: bool = True
    patch_size: int = 2

    def __post_init__(self) -> None:
        self.axes_dim = [int(d) for d in self.axes_dim]
        problems = []
        if self.fused_qkv:
            problems.append(
                "fused_qkv=True is unsupported: the official checkpoint has separate "
                "q_proj/k_proj/v_proj (and v_mlp) weights"
            )
        if self.guidance_embed:
            problems.append(
                "guidance_embed=True is unsupported: Open-Sora v2.0 has no guidance embedding"
            )
        if not self.use_liger_rope:
            problems.append(
                "use_liger_rope=False (interleaved rotary pairs) is unsupported: the checkpoint "
                "was trained with the rotate-half convention"
            )
        if self.hidden_size % self.num_heads:
            problems.append(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        elif sum(self.axes_dim) != self.head_dim:
            problems.append(
                f"sum(axes_dim) = {sum(self.axes_dim)} must equal the head dim {self.head_dim}"
            )
        if any(d % 2 for d in self.axes_dim):
            problems.append(f"every axes_dim entry must be even, got {self.axes_dim}")
        if self.patch_size < 1 or self.in_channels % (self.patch_size**2):
            problems.append(
                f"in_channels {self.in_channels} is not a multiple of patch_size^2 "
                f"({self.patch_size}^2)"
            )
        if problems:
            raise ValueError("invalid MMDiTConfig: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.hidden_size // self.num_heads

    @property
    def cond_channels(self) -> int:
        """Input width of ``cond_in``: a 1-channel mask plus the latent, both patchified."""
        return self.in_channels + self.patch_size**2

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary with every field (the inverse of ``MMDiTConfig(**d)``)."""
        return dataclasses.asdict(self)


MMDIT_PRESETS: dict[str, MMDiTConfig] = {
    # The official Open_Sora_v2.safetensors (11,891,390,528 parameters).
    "opensora-v2": MMDiTConfig(),
    # The tiny configuration of the golden fixtures (same flags, small sizes).
    "tiny": MMDiTConfig(
        in_channels=64,
        vec_in_dim=32,
        context_in_dim=48,
        hidden_size=64,
        mlp_ratio=4.0,
        num_heads=4,
        depth=2,
        depth_single_blocks=2,
        axes_dim=[4, 6, 6],
        theta=10000,
    ),
}


def mmdit_config(name: str) -> MMDiTConfig:
    """A fresh copy of the preset ``name`` (``opensora-v2`` or ``tiny``)."""
    if name not in MMDIT_PRESETS:
        raise ValueError(f"unknown MMDiT preset {name!r}; choose one of {sorted(MMDIT_PRESETS)}")
    return dataclasses.replace(MMDIT_PRESETS[name], axes_dim=list(MMDIT_PRESETS[name].axes_dim))


class MMDiT(nn.Module):
    """Open-Sora v2.0 MMDiT: double-stream then single-stream blocks over [txt, img] tokens.

    Set ``gradient_checkpointing = True`` to recompute each block's activations in the
    backward pass (only while gradients are enabled).
    """

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        hidden = config.hidden_size
        self.img_in = nn.Linear(config.in_channels, hidden, bias=True)
        self.time_in = MLPEmbedder(TIME_EMBED_DIM, hidden)
        self.vector_in = MLPEmbedder(config.vec_in_dim, hidden)
        self.cond_in = (
            nn.Linear(config.cond_channels, hidden, bias=True) if config.cond_embed else None
        )
        self.txt_in = nn.Linear(config.context_in_dim, hidden)
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(hidden, config.num_heads, config.mlp_ratio, config.qkv_bias)
            for _ in range(config.depth)
        )
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(hidden, config.num_heads, config.mlp_ratio, config.qkv_bias)
            for _ in range(config.depth_single_blocks)
        )
        self.final_layer = LastLayer(hidden, config.in_channels)

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the weights (the activation dtype of a forward)."""
        return self.img_in.weight.dtype

    def linear_module_names(self) -> list[str]:
        """Qualified names of every ``nn.Linear`` (the valid LoRA targets), in module order."""
        return linear_module_names(self)

    def _run(self, block: nn.Module, *args: Any) -> Any:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(
        self,
        img: Tensor,
        img_ids: Tensor,
        txt: Tensor,
        txt_ids: Tensor,
        timesteps: Tensor,
        y_vec: Tensor,
        cond: Tensor | None = None,
    ) -> Tensor:
        """Predict the velocity of every image token.

        Args:
            img: patchified latent tokens (B, L, in_channels).
            img_ids: integer (t, h, w) position per image token (B, L, 3).
            txt: text encoder states (B, S, context_in_dim).
            txt_ids: text positions (B, S, 3), all zero in Open-Sora.
            timesteps: flow time per sample in [0, 1] (B,).
            y_vec: pooled text vector (B, vec_in_dim).
            cond: patchified [mask, masked latent] condition (B, L, cond_channels);
                required when ``config.cond_embed``.

        Returns:
            velocity (B, L, in_channels) in the model dtype.

        Floating inputs are cast to the model dtype; ``timesteps`` keep their dtype for the
        sinusoidal embedding (the reference passes them in the activation dtype).
        """
        if img.ndim != 3 or txt.ndim != 3:
            raise ValueError(
                f"img and txt must be (B, tokens, channels), got {img.shape}, {txt.shape}"
            )
        dtype = self.dtype
        x = self.img_in(img.to(dtype))
        if self.cond_in is not None:
            if cond is None:
                raise ValueError("this MMDiT has cond_embed=True: pass the visual condition `cond`")
            x = x + self.cond_in(cond.to(dtype))
        temb = timestep_embedding(timesteps, TIME_EMBED_DIM).to(dtype)
        vec = self.time_in(temb) + self.vector_in(y_vec.to(dtype))
        txt = self.txt_in(txt.to(dtype))
        rope = rope_tables(
            torch.cat((txt_ids, img_ids), dim=1), self.config.axes_dim, self.config.theta
        )

        for block in self.double_blocks:
            x, txt = self._run(block, x, txt, vec, rope)
        tokens = torch.cat((txt, x), dim=1)
        for block in self.single_blocks:
            tokens = self._run(block, tokens, vec, rope)
        x = tokens[:, txt.shape[1] :]
        return self.final_layer(x, vec)


def linear_module_names(model: nn.Module) -> list[str]:
    """Qualified names of every ``nn.Linear`` inside ``model``, in module order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
