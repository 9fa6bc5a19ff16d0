"""Turn one source video into a ground-truth clip.

``num_frames`` consecutive frames from ``start_frame`` are decoded, each frame is
resized to cover ``height x width`` and center-cropped (done in one antialiased PIL
resize of the centred source box with the target aspect ratio, so no intermediate
rounding), and the clip is stored losslessly (FFV1/MKV) at the source frame rate.
With ``fps`` set, time is resampled by nearest-frame selection (no blending): output
frame ``i`` is source frame ``start_frame + round(i * source_fps / fps)``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sora_tta.data.probe import UCF101_SIZE, probe_video
from sora_tta.data.video import VideoReadError, read_frames, write_lossless
from sora_tta.io import write_json_atomic

FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}


class PreprocessError(RuntimeError):
    """A source video cannot be turned into a clip (the message names the file)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Frame window, output size and resampling of a preprocessed clip."""

    start_frame: int = 0
    num_frames: int = 65
    height: int = 224
    width: int = 288
    fps: float | None = None  #: resample time to this rate; None keeps the source rate
    resample: str = "bicubic"
    expected_size: tuple[int, int] | None = UCF101_SIZE  #: source (width, height); None: any

    def __post_init__(self) -> None:
        if self.start_frame < 0:
            raise ValueError(f"start_frame must be >= 0, got {self.start_frame}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 16 or value % 16:
                raise ValueError(f"{name} must be a positive multiple of 16, got {value}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.resample not in FILTERS:
            raise ValueError(f"resample must be one of {sorted(FILTERS)}, got {self.resample!r}")

    def source_indices(self, source_fps: float) -> list[int]:
        """Source frame index of every output frame."""
        if self.fps is None:
            return list(range(self.start_frame, self.start_frame + self.num_frames))
        step = source_fps / self.fps
        return [self.start_frame + int(np.floor(i * step + 0.5)) for i in range(self.num_frames)]

    def frames_needed(self, source_fps: float) -> int:
        """Source frames the clip needs, counted from frame 0."""
        return self.source_indices(source_fps)[-1] + 1


def cover_box(src_w: int, src_h: int, width: int, height: int) -> tuple[float, float, float, float]:
    """Centred source box ``(x0, y0, x1, y1)`` that a cover-resize + center-crop keeps."""
    scale = max(width / src_w, height / src_h)
    box_w, box_h = width / scale, height / scale
    x0, y0 = (src_w - box_w) / 2, (src_h - box_h) / 2
    return x0, y0, x0 + box_w, y0 + box_h


def resize_cover_crop(
    frames: np.ndarray, height: int, width: int, resample: str = "bicubic"
) -> np.ndarray:
    """Resize ``(T, H, W, 3)`` uint8 frames to cover ``height x width`` and center-crop them.

    PIL widens the filter support when downscaling, so downscaling is antialiased.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    src_h, src_w = frames.shape[1:3]
    if (src_h, src_w) == (height, width):
        return frames.copy()
    box = cover_box(src_w, src_h, width, height)
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        image = Image.fromarray(frame).resize((width, height), FILTERS[resample], box=box)
        out[i] = np.asarray(image)
    return out


def load_clip(source: str | os.PathLike[str], config: PreprocessConfig) -> tuple[np.ndarray, dict]:
    """Decode, check, resample in time and resize; return ``(frames, info)``.

    Raises :class:`PreprocessError` (one line naming the file) for a missing, damaged,
    too-short or odd-sized source.
    """
    source = Path(source)
    probe = probe_video(source, min_frames=1, expected_size=config.expected_size)
    if not probe.ok:
        raise PreprocessError(f"{source}: {probe.status}: {probe.reason}")
    assert probe.fps is not None and probe.num_frames is not None
    indices = config.source_indices(probe.fps)
    needed = indices[-1] + 1
    if probe.num_frames < needed:
        raise PreprocessError(
            f"{source}: too_short: {probe.num_frames} frames, need {needed} "
            f"(start {config.start_frame} + {config.num_frames} frames)"
        )
    try:
        decoded = read_frames(
            source, max_frames=needed - config.start_frame, start=config.start_frame
        )
    except VideoReadError as err:
        raise PreprocessError(str(err)) from err
    if len(decoded) < needed - config.start_frame:
        raise PreprocessError(
            f"{source}: only {config.start_frame + len(decoded)} frames decode, need {needed}"
        )
    frames = resize_cover_crop(
        decoded[[i - config.start_frame for i in indices]],
        config.height,
        config.width,
        config.resample,
    )
    info = {
        "source_path": str(source),
        "source_fps": probe.fps,
        "source_num_frames": probe.num_frames,
        "source_width": probe.width,
        "source_height": probe.height,
        "fps": config.fps if config.fps is not None else probe.fps,
        "start_frame": config.start_frame,
        "num_frames": int(frames.shape[0]),
        "height": config.height,
        "width": config.width,
        "resample": config.resample,
        "source_indices": indices,
        "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
    }
    return frames, info


def preprocess_video(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: PreprocessConfig,
    sidecar: str | os.PathLike[str] | None = None,
) -> dict:
    """Write the clip of ``source`` to ``output`` (FFV1/MKV) and optionally a JSON sidecar.

    Both files are written atomically; returns the sidecar content (see :func:`load_clip`).
    """
    frames, info = load_clip(source, config)
    size = config.expected_size
    info["config"] = {**asdict(config), "expected_size": list(size) if size else None}
    write_lossless(output, frames, info["fps"])
    if sidecar is not None:
        write_json_atomic(sidecar, info)
    return info
