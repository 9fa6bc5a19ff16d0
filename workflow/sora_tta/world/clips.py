"""Synthetic clips: a deterministic moving pattern, the input of the smoke run and of tests
that need frames but no particular content."""

from __future__ import annotations

from typing import Any


def synthetic_clip(num_frames: int, height: int, width: int) -> Any:
    """A deterministic moving pattern ``(T, H, W, 3)`` uint8: drifting stripes and a square."""
    import numpy as np

    t = np.arange(num_frames, dtype=np.float32)[:, None, None]
    y = np.arange(height, dtype=np.float32)[None, :, None]
    x = np.arange(width, dtype=np.float32)[None, None, :]
    red = 0.5 + 0.5 * np.sin(2 * np.pi * (x - 1.5 * t) / 24)
    green = 0.5 + 0.5 * np.cos(2 * np.pi * (y + t) / 32)
    side = max(height // 4, 1)
    left = (t * 2) % max(width - side, 1)
    top = height // 2 - side // 2
    square = (x >= left) & (x < left + side) & (y >= top) & (y < top + side)
    shape = (num_frames, height, width)
    channels = [np.broadcast_to(c, shape) for c in (red, green, square.astype(np.float32))]
    frames = np.stack(channels, axis=-1)
    return np.round(frames * 255).astype(np.uint8)
