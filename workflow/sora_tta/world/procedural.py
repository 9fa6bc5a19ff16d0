"""A procedural video world with two appearance distributions and one physics.

Every video shows one to three textured objects (disc, square or diamond) moving at constant
velocity and bouncing off the frame edges over a textured background that the camera pans at a
constant velocity. Per-video parameters (:class:`VideoParams`) fix everything: shapes, sizes,
textures, colours, speeds, directions and the pan.

Two distributions share the physics and differ in appearance:

- ``pretrain``: object and background textures ``stripes`` / ``checker``, colours from the
  hue bands of :data:`APPEARANCES` (reds, greens, blues);
- ``novel``: textures ``dots`` / ``rings`` and the disjoint hue bands (yellows, cyans, purples)
  - the case test-time adaptation is for.

Motion and appearance are drawn from separate seeded streams: for the same ``(seed, key)`` a
``pretrain`` and a ``novel`` video move identically and look different. Lengths and speeds
are fractions of the frame height, so a video rendered at another size shows the same scene.

``make_world(out, config)`` writes a tree in UCF-101's folder and split layout through
:func:`~sora_tta.world.synthetic_ucf101.make_synthetic_ucf101` (same lists, encoding and broken
cases), plus ``world.json`` (the configuration and every video's parameters and caption) and
``captions.tsv`` (video id -> caption, the manifest's ``--caption-overrides`` format).
"""

from __future__ import annotations

import colorsys
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sora_tta.data.ucf101 import CLASS_NAMES
from sora_tta.io import write_json_atomic, write_text_atomic
from sora_tta.layout import WORLD_CAPTIONS_FILE
from sora_tta.world.synthetic_ucf101 import (
    SyntheticConfig,
    SyntheticTree,
    _bounce,
    make_synthetic_ucf101,
)

PRETRAIN = "pretrain"
NOVEL = "novel"
DISTRIBUTIONS = (PRETRAIN, NOVEL)
SHAPES = ("disc", "square", "diamond")
WORLD_FILE = "world.json"
#: Speed range of objects and camera, in frame heights per frame (shared by both worlds).
OBJECT_SPEED = (0.004, 0.016)
PAN_SPEED = (0.0, 0.008)
OBJECT_RADIUS = (0.09, 0.17)
# Key offset of the appearance stream: ``[seed, *key, _APPEARANCE, distribution index]``.
_MOTION, _APPEARANCE = 0, 1


@dataclass(frozen=True)
class Appearance:
    """What a distribution's videos look like: textures and hue bands (hue in [0, 1))."""

    object_textures: tuple[str, ...]
    background_textures: tuple[str, ...]
    hue_bands: tuple[tuple[float, float], ...]


APPEARANCES: dict[str, Appearance] = {
    PRETRAIN: Appearance(
        object_textures=("stripes", "checker"),
        background_textures=("stripes", "checker"),
        hue_bands=((0.96, 1.04), (0.28, 0.40), (0.58, 0.68)),
    ),
    NOVEL: Appearance(
        object_textures=("dots", "rings"),
        background_textures=("dots", "rings"),
        hue_bands=((0.11, 0.19), (0.46, 0.53), (0.75, 0.88)),
    ),
}
HUE_NAMES = {
    PRETRAIN: ("red", "green", "blue"),
    NOVEL: ("yellow", "cyan", "purple"),
}


@dataclass(frozen=True)
class Texture:
    """A two-colour pattern: ``kind``, colours ``a``/``b`` (RGB 0..255), period (heights), angle."""

    kind: str
    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    period: float
    angle: float
    hue_name: str


@dataclass(frozen=True)
class ObjectParams:
    """One moving object: shape, radius, start and velocity (frame heights, per frame)."""

    shape: str
    radius: float
    start: tuple[float, float]
    velocity: tuple[float, float]
    texture: Texture


@dataclass(frozen=True)
class VideoParams:
    """Everything that determines one video of the world."""

    distribution: str
    aspect: float  #: scene width in frame heights (objects bounce inside [0, aspect] x [0, 1])
    background: Texture
    pan: tuple[float, float]
    objects: tuple[ObjectParams, ...]

    def caption(self) -> str:
        """A caption made of the parameters (object count, colours, shapes, direction, pan)."""
        parts = [f"{o.texture.hue_name} {o.texture.kind} {o.shape}" for o in self.objects]
        scene = " and ".join(parts)
        bg = f"{self.background.hue_name} {self.background.kind} background"
        pan = _direction(self.pan) if math.hypot(*self.pan) > 0.002 else "still"
        return f"a {scene} moving over a {bg}, camera {pan}"


def _direction(vector: tuple[float, float]) -> str:
    """Compass-like name of a screen direction (y grows downwards)."""
    angle = math.degrees(math.atan2(-vector[1], vector[0])) % 360
    names = ("right", "up right", "up", "up left", "left", "down left", "down", "down right")
    return "panning " + names[int((angle + 22.5) // 45) % 8]


def _color(rng: np.random.Generator, band: tuple[float, float], dark: bool) -> tuple:
    hue = rng.uniform(*band) % 1.0
    sat = rng.uniform(0.55, 0.95) if not dark else rng.uniform(0.3, 0.6)
    val = rng.uniform(0.75, 1.0) if not dark else rng.uniform(0.3, 0.6)
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(hue, sat, val))


def _texture(rng: np.random.Generator, distribution: str, kinds: tuple[str, ...], bg: bool):
    look = APPEARANCES[distribution]
    band = int(rng.integers(len(look.hue_bands)))
    kind = kinds[int(rng.integers(len(kinds)))]
    return Texture(
        kind=kind,
        color_a=_color(rng, look.hue_bands[band], dark=bg),
        color_b=_color(rng, look.hue_bands[band], dark=not bg),
        period=float(rng.uniform(0.12, 0.25) if bg else rng.uniform(0.06, 0.11)),
        angle=float(rng.uniform(0, np.pi)),
        hue_name=HUE_NAMES[distribution][band],
    )


def _velocity(rng: np.random.Generator, speed_range: tuple[float, float]) -> tuple[float, float]:
    speed, angle = rng.uniform(*speed_range), rng.uniform(0, 2 * np.pi)
    return (float(speed * np.cos(angle)), float(speed * np.sin(angle)))


def video_params(distribution: str, seed: int, key: tuple[int, ...], aspect: float) -> VideoParams:
    """Draw a video's parameters from ``(seed, key)``; ``aspect`` is width / height.

    Motion (object count, shapes, radii, starts, velocities, pan) comes from a stream that
    does not depend on ``distribution``; textures and colours from one that does.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; choose one of {DISTRIBUTIONS}")
    motion = np.random.default_rng([seed, *key, _MOTION])
    look = np.random.default_rng([seed, *key, _APPEARANCE, DISTRIBUTIONS.index(distribution)])
    count = int(motion.integers(1, 4))
    pan = _velocity(motion, PAN_SPEED)
    objects = []
    for _ in range(count):
        shape = SHAPES[int(motion.integers(len(SHAPES)))]
        radius = float(motion.uniform(*OBJECT_RADIUS))
        start = (float(motion.uniform(0, aspect)), float(motion.uniform(0, 1)))
        texture = _texture(look, distribution, APPEARANCES[distribution].object_textures, False)
        objects.append(ObjectParams(shape, radius, start, _velocity(motion, OBJECT_SPEED), texture))
    background = _texture(look, distribution, APPEARANCES[distribution].background_textures, True)
    return VideoParams(distribution, aspect, background, pan, tuple(objects))


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, period: float, angle: float) -> np.ndarray:
    """Soft two-tone pattern in [0, 1] at coordinates ``u, v`` (frame heights)."""
    c, s = math.cos(angle), math.sin(angle)
    a = (u * c + v * s) / period
    b = (-u * s + v * c) / period
    if kind == "stripes":
        return 0.5 + 0.5 * np.cos(2 * np.pi * a)
    if kind == "checker":
        return 0.5 + 0.5 * np.tanh(3.0 * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b))
    if kind == "dots":
        d = np.hypot(a - np.round(a), b - np.round(b))
        return np.clip((0.32 - d) * 8.0, 0, 1)
    if kind == "rings":
        return 0.5 + 0.5 * np.cos(2 * np.pi * np.hypot(a, b) * 1.2)
    raise ValueError(f"unknown texture {kind!r}")


def _paint(pattern: np.ndarray, texture: Texture) -> np.ndarray:
    a = np.asarray(texture.color_a, dtype=np.float32)
    b = np.asarray(texture.color_b, dtype=np.float32)
    return a + pattern[..., None].astype(np.float32) * (b - a)


def render_video(
    params: VideoParams, frames: int, width: int, height: int, supersample: int = 1
) -> np.ndarray:
    """Render ``(frames, height, width, 3)`` uint8 frames of ``params``.

    The scene is scaled to cover ``width x height`` and centre-cropped (as the workflow's
    preprocessing does with a source video), so any output size shows the same scene;
    ``supersample`` renders ``s x s`` samples per pixel and averages them (anti-aliasing).
    """
    sub = max(int(supersample), 1)
    scale = max(height, width / params.aspect) * sub  # samples per frame height
    rows, cols = height * sub, width * sub
    ys = (np.arange(rows, dtype=np.float64)[:, None] + 0.5) / scale + (1 - rows / scale) / 2
    xs = (np.arange(cols, dtype=np.float64)[None, :] + 0.5) / scale
    xs = xs + (params.aspect - cols / scale) / 2
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    bg = params.background
    for t in range(frames):
        pattern = _pattern(bg.kind, xs + params.pan[0] * t, ys + params.pan[1] * t, bg.period,
                           bg.angle)  # fmt: skip
        image = _paint(pattern, bg)
        for obj in params.objects:
            r = obj.radius
            cx = _bounce(obj.start[0], obj.velocity[0], t, r, params.aspect - r)
            cy = _bounce(obj.start[1], obj.velocity[1], t, r, 1.0 - r)
            u, v = xs - cx, ys - cy
            if obj.shape == "disc":
                dist = np.hypot(u, v) - r
            elif obj.shape == "square":
                dist = np.maximum(np.abs(u), np.abs(v)) - r * 0.85
            else:
                dist = (np.abs(u) + np.abs(v)) / np.sqrt(2) - r * 0.8
            alpha = np.clip(0.5 - dist * scale, 0, 1).astype(np.float32)[..., None]
            tex = obj.texture
            color = _paint(_pattern(tex.kind, u, v, tex.period, tex.angle), tex)
            image += alpha * (color - image)
        if sub > 1:
            image = image.reshape(height, sub, width, sub, 3).mean(axis=(1, 3))
        np.clip(image + 0.5, 0, 255, out=image)
        out[t] = image
    return out


@dataclass(frozen=True)
class WorldConfig:
    """A world tree: distribution, size and layout (the layout fields are SyntheticConfig's)."""

    distribution: str = NOVEL
    classes: int = 3
    per_class: int = 2
    frames: int = 80
    seed: int = 0
    clips_per_group: int = 4
    width: int = 320
    height: int = 240
    fps: int = 25
    bit_rate: int = 1_200_000
    broken: bool = False

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}"
            )
        self.layout()  # validates the shared fields

    def layout(self) -> SyntheticConfig:
        """The synthetic-tree configuration that writes the folders and lists."""
        fields = asdict(self)
        fields.pop("distribution")
        return SyntheticConfig(**fields)

    def params(self, class_index: int, group: int, clip: int) -> VideoParams:
        """Parameters of the clip ``(class_index, group, clip)`` (0-based class, 1-based rest)."""
        key = (class_index, group, clip)
        return video_params(self.distribution, self.seed, key, self.width / self.height)


def make_world(
    out: str | os.PathLike[str], config: WorldConfig, overwrite: bool = False
) -> SyntheticTree:
    """Write a world tree to ``out`` in UCF-101's layout (see module docstring)."""

    def render(class_index: int, group: int, clip: int) -> np.ndarray:
        params = config.params(class_index, group, clip)
        return render_video(params, config.frames, config.width, config.height)

    tree = make_synthetic_ucf101(out, config.layout(), overwrite=overwrite, render=render)
    videos: dict[str, dict] = {}
    for c, name in enumerate(CLASS_NAMES[: config.classes]):
        for j in range(config.per_class):
            group, clip = j // config.clips_per_group + 1, j % config.clips_per_group + 1
            params = config.params(c, group, clip)
            videos[f"v_{name}_g{group:02d}_c{clip:02d}"] = {
                "caption": params.caption(),
                "params": asdict(params),
            }
    write_json_atomic(Path(out) / WORLD_FILE, {"config": asdict(config), "videos": videos})
    rows = "".join(f"{video_id}\t{v['caption']}\n" for video_id, v in sorted(videos.items()))
    write_text_atomic(Path(out) / WORLD_CAPTIONS_FILE, rows)
    return tree
