"""Fast checks of source videos from container metadata.

:func:`probe_video` opens the container (no decoding) and reads size, frame rate and
frame count. The count comes from the stream header; it is trusted only when it is
present and agrees with the timestamp of the last packet, found by seeking to the last
keyframe before the declared end and demuxing the few packets after it (a GOP, not the
file). Otherwise all video packets are counted by demuxing without decoding.

Truncation: an AVI file starts with ``RIFF <size> AVI ``, where ``size`` is written when
the file is finalised. A file shorter than ``size + 8`` bytes lost its tail; its header
still claims every frame, so that check (12 bytes read, O(1)) is what catches it. A
truncated file is reported ``unreadable`` (a damaged source is not used as ground
truth) and only then decoded, to report how many frames survive.

Statuses: ``ok``, ``too_short`` (fewer than ``min_frames``), ``unreadable`` (empty, not a
video, truncated, undecodable with ``decode_check``), ``missing`` and ``bad_size`` (frame
size differs from ``expected_size``; UCF-101 is 320x240 throughout).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import av

#: Manifest statuses; ``excluded``: listed under ``selection.exclude`` by the user.
STATUSES = ("ok", "too_short", "unreadable", "missing", "bad_size", "excluded")
UCF101_SIZE = (320, 240)


@dataclass(frozen=True)
class ProbeResult:
    """What the metadata says about one video; ``status`` is one of :data:`STATUSES`."""

    path: str
    status: str
    reason: str = ""
    num_frames: int | None = None  #: frames in the file (source frame count)
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str = ""
    frames_from: str = ""  #: ``header``, ``packets`` or ``decoded``

    @property
    def ok(self) -> bool:
        """True when the video can be used."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, object]:
        """Plain dict of the fields."""
        return asdict(self)


def riff_truncation(path: Path, file_size: int) -> str | None:
    """Reason string if ``path`` is a RIFF (AVI) file shorter than its header declares."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    if len(head) < 12 or head[:4] != b"RIFF":
        return None
    declared = int.from_bytes(head[4:8], "little") + 8
    if file_size < declared:
        return f"truncated: {file_size} bytes but the RIFF header declares {declared}"
    return None


def _count_packets(path: Path) -> int:
    """Video packets in ``path`` (demuxed, not decoded)."""
    with av.open(str(path)) as container:
        # the demuxer ends with an empty flush packet per stream: skip it
        return sum(1 for packet in container.demux(video=0) if packet.size > 0)


def _frames_from_tail(
    container: av.container.InputContainer, stream: av.VideoStream, declared: int, fps: float
) -> int | None:
    """Frame count implied by the timestamps of the last packets.

    Seeks to the keyframe before the declared last frame and demuxes to the end;
    ``None`` when that fails or yields no timestamp.
    """
    start = stream.start_time or 0
    target = start + int((declared - 1) / fps / stream.time_base)
    try:
        container.seek(target, stream=stream, backward=True)
        stamps = [
            packet.pts if packet.pts is not None else packet.dts
            for packet in container.demux(stream)
            if packet.size > 0
        ]
    except (av.error.FFmpegError, ValueError, OSError):
        return None
    stamps = [stamp for stamp in stamps if stamp is not None]
    if not stamps:
        return None
    return round(float((max(stamps) - start) * stream.time_base) * fps) + 1


def _count_decoded(path: Path, limit: int | None = None) -> tuple[int, str]:
    """Number of frames that decode intact (up to ``limit``) and why decoding stopped, if
    it did: a decoder error, or a frame the decoder flags as corrupt (it concealed damaged
    payload, e.g. random bytes inside the packets, which no metadata shows)."""
    count = 0
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                if frame.is_corrupt:
                    return count, f"frame {count} is damaged (the decoder concealed errors)"
                count += 1
                if limit is not None and count >= limit:
                    break
    except (av.error.FFmpegError, ValueError, OSError) as err:
        return count, str(err)
    return count, ""


def probe_video(
    path: str | os.PathLike[str],
    min_frames: int = 65,
    expected_size: tuple[int, int] | None = UCF101_SIZE,
    decode_check: bool = False,
) -> ProbeResult:
    """Check ``path`` from its metadata; never raises for a bad file (see module docstring).

    ``expected_size`` is ``(width, height)`` or ``None`` for any size. ``decode_check``
    additionally decodes the first ``min_frames`` frames, catching damaged payloads that
    the metadata cannot reveal (slower).
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        return ProbeResult(name, "missing", "file not found")
    file_size = path.stat().st_size
    if file_size == 0:
        return ProbeResult(name, "unreadable", "empty file (0 bytes)")
    try:
        truncated = riff_truncation(path, file_size)
        with av.open(name) as container:
            if not container.streams.video:
                return ProbeResult(name, "unreadable", "no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            width, height = int(ctx.width or 0), int(ctx.height or 0)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else None
            declared = int(stream.frames or 0)
            base = {"fps": fps, "width": width, "height": height, "codec": ctx.name or ""}
            if truncated is None and declared and fps:
                tail = _frames_from_tail(container, stream, declared, fps)
            else:
                tail = None
        if truncated is not None:
            decoded, error = _count_decoded(path)
            reason = f"{truncated}; {decoded} of {declared} declared frames decode"
            reason += f" ({error})" if error else ""
            return ProbeResult(name, "unreadable", reason, decoded, frames_from="decoded", **base)
        if tail is not None and abs(tail - declared) <= 1:
            num_frames, frames_from, note = declared, "header", ""
        else:
            num_frames, frames_from = _count_packets(path), "packets"
            note = ""
            if declared:
                note = f"header says {declared} frames but packets end at frame {tail}; counted"
    except (av.error.FFmpegError, ValueError, OSError) as err:
        detail = getattr(err, "strerror", None) or str(err)
        return ProbeResult(name, "unreadable", f"cannot open: {detail}")
    result = ProbeResult(name, "ok", note, num_frames, frames_from=frames_from, **base)
    if width <= 0 or height <= 0 or not fps:
        return _with(result, "unreadable", f"incomplete metadata: size {width}x{height}, fps {fps}")
    if expected_size is not None and (width, height) != tuple(expected_size):
        want = f"{expected_size[0]}x{expected_size[1]}"
        return _with(result, "bad_size", f"frame size {width}x{height}, expected {want}")
    if num_frames < min_frames:
        return _with(result, "too_short", f"{num_frames} frames < min_frames {min_frames}")
    if decode_check:
        decoded, error = _count_decoded(path, limit=min_frames)
        if decoded < min_frames:
            why = f" ({error})" if error else ""
            reason = f"only {decoded} of the first {min_frames} frames decode{why}"
            return _with(result, "unreadable", reason)
    return result


def _with(result: ProbeResult, status: str, reason: str) -> ProbeResult:
    """Copy of ``result`` with another status and reason."""
    return ProbeResult(**{**result.to_dict(), "status": status, "reason": reason})
