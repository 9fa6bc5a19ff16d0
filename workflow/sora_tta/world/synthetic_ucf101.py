"""A synthetic stand-in for UCF-101 with the same layout, list formats and file format.

``make_synthetic_ucf101(out, config)`` writes::

    out/UCF-101/<Class>/v_<Class>_gNN_cMM.avi   MPEG-4 part 2 ('mpeg4', fourcc XVID) in AVI
    out/ucfTrainTestlist/classInd.txt, testlist0{1,2,3}.txt, trainlist0{1,2,3}.txt
    out/synthetic.json                           config and the broken cases with expected status

Class ``i`` is the ``i``-th real UCF-101 class. Every clip shows a background of three
coloured plane waves panning at a constant sub-pixel velocity and two textured shapes
(disc, square or diamond, with stripes that move with the shape) moving at constant
velocity and bouncing off the frame edges: motion that is predictable from the first
frames. Palette, wave frequencies, pan and shape velocities are drawn per class; the
background phase per group (same "scene") and the shape positions per clip.

Groups: ``per_class`` clips are numbered ``c01..`` within groups ``g01..`` of
``clips_per_group`` clips. Split ``s`` tests groups with ``(g - 1) % k == (s - 1) % k``,
``k = min(groups, 3)``, and trains on the rest. Broken cases (``too_short``,
``truncated``, ``empty``, ``undecodable``, ``odd_size``, ``missing``) get their own
group after the regular ones, are spread over the classes and are listed in all three
test lists. Everything is deterministic from ``seed``.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from sora_tta.data.ucf101 import CLASS_NAMES
from sora_tta.io import atomic_path, read_json, write_json_atomic, write_text_atomic

VIDEO_DIR = "UCF-101"
SPLITS_DIR = "ucfTrainTestlist"
INFO_FILE = "synthetic.json"

#: Broken case kind -> status the manifest must report.
BROKEN_CASES: dict[str, str] = {
    "too_short": "too_short",
    "truncated": "unreadable",
    "empty": "unreadable",
    "undecodable": "unreadable",
    "odd_size": "bad_size",
    "missing": "missing",
}
SHORT_FRAMES = 30
TRUNCATE_FRACTION = 0.55


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and content of a synthetic UCF-101 tree."""

    classes: int = 3
    per_class: int = 2
    frames: int = 80
    seed: int = 0
    clips_per_group: int = 4
    width: int = 320
    height: int = 240
    fps: int = 25
    bit_rate: int = 1_200_000
    broken: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.classes <= len(CLASS_NAMES):
            raise ValueError(f"classes must be 1..{len(CLASS_NAMES)}, got {self.classes}")
        for name in ("per_class", "frames", "clips_per_group", "fps", "bit_rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.width < 32 or self.height < 32 or self.width % 2 or self.height % 2:
            raise ValueError(
                f"size must be even and at least 32x32, got {self.width}x{self.height}"
            )

    @property
    def groups(self) -> int:
        """Regular groups per class."""
        return math.ceil(self.per_class / self.clips_per_group)


@dataclass(frozen=True)
class SyntheticTree:
    """A synthetic UCF-101 tree on disk, described by its ``synthetic.json``."""

    root: Path

    @property
    def videos(self) -> Path:
        """The ``UCF-101`` video folder (``--ucf-root``)."""
        return self.root / VIDEO_DIR

    @property
    def splits(self) -> Path:
        """The ``ucfTrainTestlist`` folder (``--splits-dir``)."""
        return self.root / SPLITS_DIR

    @property
    def info(self) -> dict:
        """Content of ``synthetic.json``: config, classes, broken cases."""
        return read_json(self.root / INFO_FILE)

    @property
    def config(self) -> SyntheticConfig:
        """The configuration the tree was made with."""
        return SyntheticConfig(**self.info["config"])

    def path(self, video_id: str) -> Path:
        """Path of a video (regular or broken) by id."""
        return self.videos / video_id.split("_")[1] / f"{video_id}.avi"

    def broken(self, kind: str) -> str:
        """Video id of the broken case ``kind`` (a key of :data:`BROKEN_CASES`)."""
        for video_id, case in self.info["broken"].items():
            if case["kind"] == kind:
                return video_id
        raise KeyError(f"{self.root}: no broken case {kind!r}")


@dataclass(frozen=True)
class ClassStyle:
    """Appearance and motion shared by all clips of a class."""

    base: np.ndarray  # (3,) background mean colour, float 0..255
    wave_colors: np.ndarray  # (3 waves, 3) colour of each plane wave
    wave_freqs: np.ndarray  # (3 waves, 2) cycles per pixel along x, y
    pan: np.ndarray  # (2,) background velocity, pixels per frame
    shapes: tuple[str, str]
    shape_colors: np.ndarray  # (2 shapes, 2 colours, 3)
    stripe_period: float
    velocities: np.ndarray  # (2 shapes, 2) pixels per frame


def class_style(seed: int, class_index: int) -> ClassStyle:
    """Draw the style of class ``class_index`` (0-based) from ``seed``."""
    rng = np.random.default_rng([seed, class_index, 0])
    angles = rng.uniform(0, np.pi, 3) + np.array([0, np.pi / 3, 2 * np.pi / 3])
    freq = rng.uniform(1 / 60, 1 / 25, 3)
    pan_angle = rng.uniform(0, 2 * np.pi)
    vel_angle = rng.uniform(0, 2 * np.pi, 2)
    speed = rng.uniform(1.5, 3.5, 2)
    return ClassStyle(
        base=rng.uniform(70, 180, 3),
        wave_colors=rng.uniform(-35, 35, (3, 3)),
        wave_freqs=np.stack([freq * np.cos(angles), freq * np.sin(angles)], axis=1),
        pan=rng.uniform(0.4, 1.2) * np.array([np.cos(pan_angle), np.sin(pan_angle)]),
        shapes=tuple(rng.choice(["disc", "square", "diamond"], 2).tolist()),  # type: ignore[arg-type]
        shape_colors=rng.uniform(0, 255, (2, 2, 3)),
        stripe_period=float(rng.uniform(5, 12)),
        velocities=np.stack([speed * np.cos(vel_angle), speed * np.sin(vel_angle)], axis=1),
    )


def _bounce(start: float, velocity: float, t: int, low: float, high: float) -> float:
    """Position at frame ``t`` of a point moving in ``[low, high]`` with reflecting walls."""
    span = high - low
    q = (start - low + velocity * t) % (2 * span)
    return low + (q if q <= span else 2 * span - q)


def render_clip(
    style: ClassStyle,
    frames: int,
    width: int,
    height: int,
    rng: np.random.Generator,
    phase: np.ndarray,
) -> np.ndarray:
    """Render ``(frames, height, width, 3)`` uint8 frames of one clip."""
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    radius = height * rng.uniform(0.09, 0.14, 2)
    starts = rng.uniform(0, 1, (2, 2)) * np.array([width, height])
    stripe_angle = rng.uniform(0, np.pi, 2)
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    base = style.base.astype(np.float32)[:, None, None]
    for t in range(frames):
        # Background: sum over waves k of colour_k * cos(2 pi f_k.(p + pan t) + phase_k).
        # cos(a + b) = cos a cos b - sin a sin b makes it a rank-6 product per channel.
        ax = 2 * np.pi * np.outer(xs + style.pan[0] * t, style.wave_freqs[:, 0])  # (W, 3)
        ay = 2 * np.pi * np.outer(ys + style.pan[1] * t, style.wave_freqs[:, 1]) + phase  # (H, 3)
        rows = np.concatenate([np.cos(ay), -np.sin(ay)], axis=1)  # (H, 6)
        cols = np.concatenate([np.cos(ax), np.sin(ax)], axis=1).T  # (6, W)
        colors = np.concatenate([style.wave_colors, style.wave_colors]).T  # (3 channels, 6)
        left = (rows[None] * colors[:, None, :]).astype(np.float32)  # (3, H, 6)
        planes = left @ cols.astype(np.float32) + base  # (3, H, W)
        for s in range(2):
            r = radius[s]
            cx = _bounce(starts[s, 0], style.velocities[s, 0], t, r, width - r)
            cy = _bounce(starts[s, 1], style.velocities[s, 1], t, r, height - r)
            _draw_shape(planes, style, s, cx, cy, r, stripe_angle[s])
        planes += 0.5  # round to nearest on the cast below
        np.clip(planes, 0, 255, out=planes)
        out[t] = planes.transpose(1, 2, 0)
    return out


def _draw_shape(
    planes: np.ndarray, style: ClassStyle, s: int, cx: float, cy: float, r: float, angle: float
) -> None:
    """Alpha-blend shape ``s`` centred at ``(cx, cy)`` into ``planes`` (3, H, W) in place."""
    height, width = planes.shape[1:]
    x0, x1 = max(int(cx - r) - 2, 0), min(int(cx + r) + 3, width)
    y0, y1 = max(int(cy - r) - 2, 0), min(int(cy + r) + 3, height)
    u = np.arange(x0, x1)[None, :] - cx
    v = np.arange(y0, y1)[:, None] - cy
    kind = style.shapes[s]
    if kind == "disc":
        dist = np.sqrt(u**2 + v**2) - r
    elif kind == "square":
        dist = np.maximum(np.abs(u), np.abs(v)) - r * 0.85
    else:
        dist = (np.abs(u) + np.abs(v)) / np.sqrt(2) - r * 0.8
    alpha = np.clip(0.5 - dist, 0, 1).astype(np.float32)
    stripes = 0.5 + 0.5 * np.cos(
        2 * np.pi * (u * np.cos(angle) + v * np.sin(angle)) / style.stripe_period
    )
    color_a, color_b = style.shape_colors[s]
    color = color_a[:, None, None] + stripes[None] * (color_b - color_a)[:, None, None]
    patch = planes[:, y0:y1, x0:x1]
    patch += alpha * (color.astype(np.float32) - patch)


def encode_avi(path: str | os.PathLike[str], frames: np.ndarray, fps: int, bit_rate: int) -> None:
    """Encode ``frames`` as MPEG-4 part 2 (fourcc XVID) in AVI, atomically and deterministically."""
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        stream.codec_tag = "XVID"
        stream.codec_context.thread_count = 1  # one thread: byte-identical files for a seed
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _test_groups(groups: int, split: int) -> set[int]:
    k = min(groups, 3)
    return {g for g in range(1, groups + 1) if (g - 1) % k == (split - 1) % k}


def listed_clips(config: SyntheticConfig, split: int, subset: str) -> list[str]:
    """Regular clips (``Class/v_Class_gNN_cMM.avi``) that split ``split``'s ``subset`` list
    (``test`` or ``train``) of a tree made with ``config`` holds, without the broken cases."""
    test_groups = _test_groups(config.groups, split)
    clips = []
    for name in CLASS_NAMES[: config.classes]:
        for j in range(config.per_class):
            group, clip = j // config.clips_per_group + 1, j % config.clips_per_group + 1
            if (group in test_groups) == (subset == "test"):
                clips.append(f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi")
    return clips


#: Renders a regular clip: ``(class_index, group, clip) -> (frames, height, width, 3)`` uint8.
ClipRenderer = Callable[[int, int, int], np.ndarray]


def make_synthetic_ucf101(
    out: str | os.PathLike[str],
    config: SyntheticConfig,
    overwrite: bool = False,
    render: ClipRenderer | None = None,
) -> SyntheticTree:
    """Write the synthetic tree to ``out`` (see module docstring).

    Refuses a non-empty ``out`` unless ``overwrite`` (which replaces the two data folders).
    ``render`` replaces the plane-wave clips of the regular videos (e.g. ``sora_tta.world``);
    the layout, split lists, encoding and broken cases stay the same.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: folder is not empty (use overwrite)")
        for name in (VIDEO_DIR, SPLITS_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
    names = CLASS_NAMES[: config.classes]
    lines: dict[str, list[str]] = {f"{sub}{s}": [] for sub in ("test", "train") for s in (1, 2, 3)}
    for c, name in enumerate(names):
        style = class_style(config.seed, c)
        test_groups = {s: _test_groups(config.groups, s) for s in (1, 2, 3)}
        for j in range(config.per_class):
            group, clip = j // config.clips_per_group + 1, j % config.clips_per_group + 1
            relpath = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
            if render is not None:
                frames = render(c, group, clip)
            else:
                phase = np.random.default_rng([config.seed, c, group]).uniform(0, 2 * np.pi, 3)
                rng = np.random.default_rng([config.seed, c, group, clip])
                frames = render_clip(style, config.frames, config.width, config.height, rng, phase)
            encode_avi(out / VIDEO_DIR / relpath, frames, config.fps, config.bit_rate)
            for s in (1, 2, 3):
                if group in test_groups[s]:
                    lines[f"test{s}"].append(relpath)
                else:
                    lines[f"train{s}"].append(f"{relpath} {c + 1}")
    broken = _write_broken(out / VIDEO_DIR, config, names) if config.broken else {}
    for case in broken.values():
        for s in (1, 2, 3):
            lines[f"test{s}"].append(case["relpath"])
    splits = out / SPLITS_DIR
    write_text_atomic(
        splits / "classInd.txt", "".join(f"{i} {n}\r\n" for i, n in enumerate(names, 1))
    )
    for key, rows in lines.items():
        subset, split = key[:-1], int(key[-1])
        write_text_atomic(
            splits / f"{subset}list{split:02d}.txt", "".join(f"{row}\r\n" for row in sorted(rows))
        )
    info = {"config": asdict(config), "classes": list(names), "broken": broken}
    write_json_atomic(out / INFO_FILE, info)
    return SyntheticTree(out)


def _write_broken(root: Path, config: SyntheticConfig, names: tuple[str, ...]) -> dict[str, dict]:
    """Write the broken clips; return ``{video_id: {kind, relpath, expected_status}}``."""
    cases: dict[str, dict] = {}
    for k, kind in enumerate(BROKEN_CASES):
        c = k % len(names)
        name = names[c]
        video_id = f"v_{name}_g{config.groups + 1:02d}_c{k // len(names) + 1:02d}"
        relpath = f"{name}/{video_id}.avi"
        path = root / relpath
        style = class_style(config.seed, c)
        rng = np.random.default_rng([config.seed, c, 10_000 + k])
        phase = rng.uniform(0, 2 * np.pi, 3)
        width, height, frames = config.width, config.height, config.frames
        if kind == "too_short":
            frames = SHORT_FRAMES
        elif kind == "odd_size":
            width, height = width + 1, height + 1
        if kind in ("too_short", "odd_size", "truncated"):
            clip = render_clip(style, frames, width, height, rng, phase)
            encode_avi(path, clip, config.fps, config.bit_rate)
        if kind == "truncated":
            data = path.read_bytes()
            with atomic_path(path) as tmp:
                tmp.write_bytes(data[: int(len(data) * TRUNCATE_FRACTION)])
        elif kind == "empty":
            with atomic_path(path) as tmp:
                tmp.write_bytes(b"")
        elif kind == "undecodable":
            with atomic_path(path) as tmp:
                tmp.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        # "missing": listed in the test lists, no file written
        cases[video_id] = {"kind": kind, "relpath": relpath, "expected_status": BROKEN_CASES[kind]}
    return cases
