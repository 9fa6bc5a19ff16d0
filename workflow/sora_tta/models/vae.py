"""HunyuanVideo causal 3D video autoencoder, loaded from an official ``hunyuan_vae.safetensors``.

The network is ``diffusers.AutoencoderKLHunyuanVideo``, whose state-dict keys are the official
ones unchanged. This module adds what Open-Sora v2.0 wraps around it: its configuration format,
the latent scaling (``scale_factor * (z - shift_factor)``), the tiling settings the reference
uses, and loading straight from the checkpoint without a randomly initialised copy in memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLHunyuanVideo
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from sora_tta.io import atomic_path

logger = logging.getLogger(__name__)

CONFIG_METADATA_KEY = "config"


class VAECheckpointError(ValueError):
    """A VAE checkpoint file is missing, unreadable or does not match the configuration."""


@dataclass(frozen=True)
class VAEConfig:
    """Open-Sora v2.0 configuration of the HunyuanVideo VAE (the official config dict, as is).

    ``VAEConfig(**config_dict)`` accepts the dict stored in the checkpoint metadata. Tiling sizes
    follow the reference: spatial tiles of ``sample_size`` pixels and temporal tiles of
    ``sample_tsize`` frames, overlapping by ``tile_overlap_factor``. ``dropout`` only matters in
    training and is kept for round trips; ``channel`` must stay off (the only published value).
    """

    act_fn: str = "silu"
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 16
    layers_per_block: int = 2
    norm_num_groups: int = 32
    scale_factor: float = 0.476986
    shift_factor: float = 0.0
    time_compression_ratio: int = 4
    spatial_compression_ratio: int = 8
    mid_block_add_attention: bool = True
    block_out_channels: tuple[int, ...] = field(default=(128, 256, 512, 512))
    sample_size: int = 256
    sample_tsize: int = 64
    use_slicing: bool = False
    use_spatial_tiling: bool = True
    use_temporal_tiling: bool = False
    tile_overlap_factor: float = 0.25
    dropout: float = 0.0
    channel: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "block_out_channels", tuple(int(c) for c in self.block_out_channels)
        )
        if self.channel:
            raise ValueError("VAEConfig: channel=True is not supported (Open-Sora v2.0 uses False)")
        if not 0.0 <= self.tile_overlap_factor < 1.0:
            raise ValueError(
                f"VAEConfig: tile_overlap_factor {self.tile_overlap_factor} not in [0, 1)"
            )
        if self.scale_factor == 0:
            raise ValueError("VAEConfig: scale_factor must not be 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "VAE config") -> VAEConfig:
        """Build from a config dict, naming ``source`` and the offending keys on error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown VAE config keys {unknown}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the official key order (``block_out_channels`` as a list)."""
        data = dataclasses.asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
        return data

    def diffusers_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of ``diffusers.AutoencoderKLHunyuanVideo`` for this config."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "latent_channels": self.latent_channels,
            "block_out_channels": self.block_out_channels,
            "layers_per_block": self.layers_per_block,
            "act_fn": self.act_fn,
            "norm_num_groups": self.norm_num_groups,
            "scaling_factor": self.scale_factor,
            "spatial_compression_ratio": self.spatial_compression_ratio,
            "temporal_compression_ratio": self.time_compression_ratio,
            "mid_block_add_attention": self.mid_block_add_attention,
        }

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """Latent shape ``(C, T_lat, H_lat, W_lat)`` of a ``num_frames x height x width`` clip."""
        t_ratio, s_ratio = self.time_compression_ratio, self.spatial_compression_ratio
        if num_frames < 1 or (num_frames - 1) % t_ratio:
            raise ValueError(f"num_frames must be {t_ratio}k + 1, got {num_frames}")
        if height % s_ratio or width % s_ratio or height <= 0 or width <= 0:
            raise ValueError(
                f"height and width must be positive multiples of {s_ratio}, got {height}x{width}"
            )
        return (
            self.latent_channels,
            (num_frames - 1) // t_ratio + 1,
            height // s_ratio,
            width // s_ratio,
        )


VAE_PRESETS: dict[str, VAEConfig] = {
    "hunyuan-vae": VAEConfig(),
    "tiny": VAEConfig(
        layers_per_block=1,
        norm_num_groups=4,
        block_out_channels=(8, 16, 16, 16),
        use_spatial_tiling=False,
    ),
}


def vae_config(name: str) -> VAEConfig:
    """Preset by name: ``hunyuan-vae`` (the published model) or ``tiny`` (tests, smoke runs)."""
    try:
        return VAE_PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown VAE preset {name!r}; choose from {sorted(VAE_PRESETS)}"
        ) from None


def build_autoencoder(config: VAEConfig) -> AutoencoderKLHunyuanVideo:
    """Randomly initialised diffusers autoencoder with the tiling settings of ``config`` applied."""
    model = AutoencoderKLHunyuanVideo(**config.diffusers_kwargs())
    _configure_tiling(model, config, config.use_spatial_tiling)
    return model


def _configure_tiling(model: AutoencoderKLHunyuanVideo, config: VAEConfig, spatial: bool) -> None:
    # diffusers defaults to temporal tiling with 16-frame tiles; the reference encodes and decodes
    # the whole clip at once unless use_temporal_tiling is set, and uses its own tile sizes.
    keep = 1.0 - config.tile_overlap_factor
    model.tile_sample_min_height = model.tile_sample_min_width = config.sample_size
    model.tile_sample_stride_height = model.tile_sample_stride_width = int(
        config.sample_size * keep
    )
    model.tile_sample_min_num_frames = config.sample_tsize
    model.tile_sample_stride_num_frames = int(config.sample_tsize * keep)
    model.use_framewise_encoding = config.use_temporal_tiling
    model.use_framewise_decoding = config.use_temporal_tiling
    model.use_tiling = spatial
    model.use_slicing = config.use_slicing


class VideoAutoencoder(torch.nn.Module):
    """Open-Sora view of the HunyuanVideo VAE: pixels in ``[-1, 1]`` to scaled latents and back.

    Pixels are ``(B, 3, T, H, W)`` with ``T = 4k + 1``; latents ``(B, 16, (T - 1) / 4 + 1, H / 8,
    W / 8)``. Both directions run without gradients and return float32.
    """

    def __init__(self, model: AutoencoderKLHunyuanVideo, config: VAEConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point type of the weights."""
        return next(self.model.parameters()).dtype

    @property
    def spatial_tiling(self) -> bool:
        """Whether frames larger than ``sample_size`` are processed in overlapping tiles."""
        return bool(self.model.use_tiling)

    def set_spatial_tiling(self, enabled: bool) -> None:
        """Switch spatial tiling (the reference keeps it on for large frames)."""
        self.model.use_tiling = bool(enabled)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """Latent shape ``(C, T_lat, H_lat, W_lat)`` of a clip of the given size."""
        return self.config.latent_shape(num_frames, height, width)

    def _check_video(self, video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected video (B, {self.config.in_channels}, T, H, W), got {tuple(video.shape)}"
            )
        self.config.latent_shape(*video.shape[2:])

    @torch.no_grad()
    def posterior(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and (clamped) log-variance of the posterior, unscaled, float32."""
        self._check_video(video)
        dist = self.model.encode(video.to(self.device, self.dtype)).latent_dist
        return dist.mean.float(), dist.logvar.float()

    @torch.no_grad()
    def encode(
        self,
        video: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Scaled latent ``scale_factor * (z - shift_factor)`` of ``video`` in ``[-1, 1]``.

        ``z`` is the posterior mode, or with ``sample=True`` a draw using ``generator`` (a CPU
        generator gives the same draw on every device).
        """
        mean, logvar = self.posterior(video)
        z = mean
        if sample:
            noise = torch.randn(mean.shape, generator=generator, dtype=torch.float32, device="cpu")
            z = mean + torch.exp(0.5 * logvar) * noise.to(mean.device)
        return self.config.scale_factor * (z - self.config.shift_factor)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Video ``(B, 3, T, H, W)`` of a scaled latent, float32, nominally in ``[-1, 1]``.

        The decoder output is returned unclamped (as the reference computes it); clamp when
        converting to pixels.
        """
        if latent.ndim != 5 or latent.shape[1] != self.config.latent_channels:
            channels = self.config.latent_channels
            raise ValueError(f"expected latent (B, {channels}, T, H, W), got {tuple(latent.shape)}")
        z = latent.float() / self.config.scale_factor + self.config.shift_factor
        return self.model.decode(z.to(self.device, self.dtype)).sample.float()


def read_config_metadata(path: Path) -> dict[str, Any] | None:
    """The JSON ``config`` entry of a safetensors file's metadata, or ``None`` when absent."""
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise VAECheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    raw = metadata.get(CONFIG_METADATA_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise VAECheckpointError(f"{path}: metadata 'config' is not valid JSON ({err})") from err


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"


def check_checkpoint_keys(
    path: Path, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]
) -> None:
    """Raise :class:`VAECheckpointError` naming ``path`` and keys when names or shapes differ."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(
        f"{k} {found[k]} != {expected[k]}"
        for k in set(expected) & set(found)
        if found[k] != expected[k]
    )
    problems = []
    if missing:
        problems.append(f"missing keys {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_describe(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_describe(wrong)}")
    if problems:
        raise VAECheckpointError(f"{path}: does not match the VAE config: " + "; ".join(problems))


def load_vae(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: VAEConfig | None = None,
    tiling: bool | None = None,
) -> VideoAutoencoder:
    """Load an official-format ``hunyuan_vae.safetensors`` into a :class:`VideoAutoencoder`.

    The configuration comes from ``config``, else the file's ``config`` metadata, else the
    published preset. The network is built on the meta device and the tensors are read straight
    to ``device`` in ``dtype``, so no random copy is ever allocated. ``tiling`` overrides the
    config's ``use_spatial_tiling``. The result is in eval mode with gradients off.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: VAE checkpoint not found")
    start = time.perf_counter()
    if config is None:
        meta_config = read_config_metadata(path)
        config = VAEConfig() if meta_config is None else VAEConfig.from_dict(meta_config, str(path))
    with torch.device("meta"):
        model = AutoencoderKLHunyuanVideo(**config.diffusers_kwargs())
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    target = torch.device(device)
    with safe_open(path, framework="pt", device="cpu") as handle:
        found = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
        check_checkpoint_keys(path, expected, found)
        state = {k: handle.get_tensor(k).to(device=target, dtype=dtype) for k in expected}
    model.load_state_dict(state, strict=True, assign=True)
    _configure_tiling(model, config, config.use_spatial_tiling if tiling is None else tiling)
    model.eval().requires_grad_(False)
    vae = VideoAutoencoder(model, config)
    logger.info(
        "loaded VAE %s (%.1fM params, %s, %s) in %.2f s",
        path,
        sum(p.numel() for p in model.parameters()) / 1e6,
        target,
        dtype,
        time.perf_counter() - start,
    )
    return vae


def save_vae(
    model: VideoAutoencoder | AutoencoderKLHunyuanVideo,
    path: str | os.PathLike[str],
    config: VAEConfig | None = None,
) -> None:
    """Write official-key weights plus the ``config`` metadata to ``path`` atomically."""
    if isinstance(model, VideoAutoencoder):
        config = config or model.config
        model = model.model
    if config is None:
        raise ValueError("save_vae: config is required when saving a bare diffusers model")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {CONFIG_METADATA_KEY: json.dumps(config.to_dict())}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
