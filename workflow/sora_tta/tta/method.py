"""The method-file contract: what ``results/methods/{method}.json`` holds and
``sora-tta generate --method-json`` reads: the method id, the sampler settings
(:class:`SamplingConfig`) and the adaptation settings (:class:`~sora_tta.tta.adapt.AdaptConfig`,
``None`` for the baseline). Values are checked by the study's one value checker
(:func:`sora_tta.study.values.dataclass_from_json`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sora_tta.models import pipeline
from sora_tta.sampling import GuidanceConfig
from sora_tta.study.values import dataclass_from_json
from sora_tta.study.variants import BASELINE
from sora_tta.tta.adapt import AdaptConfig

#: The sampler's own defaults (the reference's guidance, 25 steps), defined in sampling.py.
_GUIDANCE = GuidanceConfig()


@dataclass
class SamplingConfig:
    """Sampler settings (``sampling`` of a ``--method-json`` file): the guidance of
    :class:`~sora_tta.sampling.GuidanceConfig` plus the frame counts of ``v2v_head``."""

    num_steps: int = _GUIDANCE.num_steps
    guidance: float = _GUIDANCE.guidance
    guidance_img: float = _GUIDANCE.guidance_img
    text_osci: bool = _GUIDANCE.text_osci
    image_osci: bool = _GUIDANCE.image_osci
    num_cond_frames: int = pipeline.NUM_COND_FRAMES
    num_frames: int = pipeline.NUM_FRAMES

    def __post_init__(self) -> None:
        for name in ("num_cond_frames", "num_frames"):
            value = getattr(self, name)
            if value < 1 or (value - 1) % 4:
                raise ValueError(f"{name} must be 4k + 1 (the VAE's causal layout), got {value}")
        if self.num_cond_frames >= self.num_frames:
            raise ValueError(
                f"num_cond_frames ({self.num_cond_frames}) must be below "
                f"num_frames ({self.num_frames})"
            )
        self.guidance_config()  # validates num_steps

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "sampling config") -> SamplingConfig:
        """Build from a JSON object; unknown keys or wrong types raise ``ValueError``."""
        return dataclass_from_json(cls, data, source)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)

    def guidance_config(self) -> GuidanceConfig:
        """The sampler's guidance settings."""
        return GuidanceConfig(
            num_steps=self.num_steps,
            guidance=self.guidance,
            guidance_img=self.guidance_img,
            text_osci=self.text_osci,
            image_osci=self.image_osci,
        )

    @property
    def cond_latent_frames(self) -> int:
        """Latent frames of the conditioning clip (33 frames -> 9)."""
        return (self.num_cond_frames - 1) // 4 + 1


@dataclass(frozen=True)
class MethodSpec:
    """One method of the study: the content of a ``--method-json`` file
    (``results/methods/{method}.json``): its id, the sampler settings and the adaptation
    settings (``None``: the baseline, no adaptation)."""

    method: str = BASELINE
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    adapt: AdaptConfig | None = None

    @classmethod
    def from_dict(cls, data: Any, source: str = "method config") -> MethodSpec:
        """Build from ``{"method": ..., "sampling": {...}, "adapt": {...} | null}``; missing
        sampling keys take their defaults; unknown keys or wrong types raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"method", "sampling", "adapt"})
        if unknown:
            raise ValueError(
                f"{source}: unknown keys {unknown}; valid keys are ['method', 'sampling', 'adapt']"
            )
        method = data.get("method", BASELINE)
        if not isinstance(method, str) or not method:
            raise ValueError(f"{source}: 'method' must be a non-empty string, got {method!r}")
        sampling = SamplingConfig.from_dict(data.get("sampling") or {}, f"{source} (sampling)")
        adapt = data.get("adapt")
        if adapt is not None:
            adapt = AdaptConfig.from_dict(adapt, f"{source} (adapt)")
        return cls(method, sampling, adapt)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the inverse of :meth:`from_dict`)."""
        return {
            "method": self.method,
            "sampling": self.sampling.to_dict(),
            "adapt": None if self.adapt is None else self.adapt.to_dict(),
        }
