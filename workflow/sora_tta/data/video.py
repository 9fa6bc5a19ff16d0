"""Reading and writing video clips.

Clips are held in memory as ``uint8`` arrays of shape ``(T, H, W, 3)`` (RGB).
Clips produced by this project (preprocessed ground truth and generated outputs)
are stored losslessly as FFV1 in Matroska with a ``bgr0`` pixel format, so that
decoding returns exactly the frames that were written.
"""

from __future__ import annotations

import fractions
import os
from pathlib import Path

import av
import numpy as np

from sora_tta.io import atomic_path

LOSSLESS_CODEC = "ffv1"
LOSSLESS_PIX_FMT = "bgr0"
BITEXACT = {"fflags": "+bitexact"}


class VideoReadError(RuntimeError):
    """A video file could not be opened or decoded."""


def read_frames(
    path: str | os.PathLike[str], max_frames: int | None = None, start: int = 0
) -> np.ndarray:
    """Decode frames ``start .. start + max_frames`` of ``path`` as a ``(T, H, W, 3)`` uint8 array.

    Raises :class:`VideoReadError` naming the file when it is missing, has no video
    stream, cannot be decoded, or a frame is flagged corrupt by the decoder (damaged
    payload that it concealed: such frames are not a trustworthy ground truth).
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: file not found")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            for index, frame in enumerate(container.decode(video=0)):
                if index < start:
                    continue
                if frame.is_corrupt:  # the decoder concealed damaged payload
                    raise VideoReadError(f"{path}: frame {index} is damaged (corrupt payload)")
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except VideoReadError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as err:
        raise VideoReadError(f"{path}: cannot decode ({err})") from err
    if not frames:
        raise VideoReadError(f"{path}: no decodable frames")
    return np.stack(frames)


def write_lossless(path: str | os.PathLike[str], frames: np.ndarray, fps: float) -> None:
    """Write ``frames`` (``(T, H, W, 3)`` uint8) to ``path`` as lossless FFV1, atomically."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"{path}: expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    rate = fractions.Fraction(fps).limit_denominator(1001)
    # bitexact: no random segment UID and no version strings, so the same frames always
    # give the same bytes (a rebuilt clip does not look changed).
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), mode="w", format="matroska", options=BITEXACT) as container,
    ):
        stream = container.add_stream(LOSSLESS_CODEC, rate=rate)
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = LOSSLESS_PIX_FMT
        # FFV1 slices encode in parallel threads; the output stays lossless.
        stream.thread_type = "SLICE"
        stream.options = {"slices": "4", "slicecrc": "1"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def clip_fps(path: str | os.PathLike[str]) -> float:
    """Frame rate of the first video stream of ``path``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise ValueError(f"{path}: cannot determine the frame rate")
    return float(rate)
