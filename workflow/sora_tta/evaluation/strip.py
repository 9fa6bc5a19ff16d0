"""Qualitative strip: an animated GIF of ground truth | baseline | variants for a few videos.

Rows are videos, columns are clips; every GIF frame shows the same clip frame
number in all tiles. A banner names the frame and whether it is conditioning,
the seam (first generated frame, red borders, held longer) or generated.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from sora_tta.data.video import VideoReadError, read_frames
from sora_tta.evaluation.definitions import SEGMENT_CONTINUATION
from sora_tta.evaluation.plots import PlotConfig
from sora_tta.evaluation.tables import context_frames_of, per_video
from sora_tta.io import atomic_path

log = logging.getLogger(__name__)

TILE_HEIGHT = 112
PAD = 4
BORDER = 3
LABEL_HEIGHT = 16
FRAME_MS = 125  # 8 frames per second
SEAM_MS = 1200
COLOR_CONTEXT = (70, 130, 180)
COLOR_SEAM = (220, 30, 30)
COLOR_GENERATED = (240, 150, 20)
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


def choose_strip_videos(long: pd.DataFrame, config: PlotConfig) -> list[tuple[str, str]]:
    """Pick ``config.strip_videos`` videos evaluated for every method, spread over the ranking.

    Videos are ranked by the PSNR gain of the first variant over the baseline
    (by baseline PSNR when there is no variant) and picked at evenly spaced
    ranks: for three, the best, the median and the worst. Returns ``(video, tag)``.
    """
    videos = per_video(long)
    sel = videos[(videos["segment"] == SEGMENT_CONTINUATION) & (videos["metric"] == "psnr")]
    wide = sel.pivot_table(index="video", columns="method", values="value", aggfunc="first")
    wide = wide.reindex(columns=list(config.methods)).dropna()
    if wide.empty or config.strip_videos <= 0:
        return []
    if config.variants:
        key = wide[config.variants[0]] - wide[config.baseline]
        what = f"PSNR gain of {config.variants[0]}"
    else:
        key = wide[config.baseline]
        what = f"PSNR of {config.baseline}"
    ranked = key.sort_values(ascending=False, kind="stable")
    count = min(config.strip_videos, len(ranked))
    ranks = sorted(set(np.linspace(0, len(ranked) - 1, count).round().astype(int)))
    return [
        (str(ranked.index[r]), f"{what}: {ranked.iloc[r]:+.2f} dB, rank {r + 1}/{len(ranked)}")
        for r in ranks
    ]


def _resize(frames: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(frames.shape[2] * height / frames.shape[1]))
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames]
    )


def _load_row(
    video: str, config: PlotConfig, clips_dir: Path, generations_dir: Path
) -> list[np.ndarray] | None:
    paths = [clips_dir / f"{video}.mkv"]
    paths += [generations_dir / method / video / "video.mkv" for method in config.methods]
    try:
        clips = [read_frames(p) for p in paths]
    except VideoReadError as err:
        log.warning("strip: skipping %s (%s)", video, err)
        return None
    if len({c.shape[1:] for c in clips}) != 1:
        log.warning("strip: skipping %s (clip sizes differ)", video)
        return None
    frames = min(len(c) for c in clips)
    return [_resize(c[:frames], TILE_HEIGHT) for c in clips]


def _status(frame: int, context: int) -> tuple[str, tuple[int, int, int]]:
    if frame <= context:
        return "context (model re-render of the conditioning)", COLOR_CONTEXT
    if frame == context + 1:
        return "SEAM: first generated frame", COLOR_SEAM
    return "generated continuation", COLOR_GENERATED


def render_strip(
    rows: list[tuple[str, list[np.ndarray]]], columns: list[str], context: int
) -> tuple[list[Image.Image], list[int]]:
    """GIF frames and their durations (ms) for ``rows`` of ``(title, clips)``."""
    font = ImageFont.load_default()
    tile_h, tile_w = rows[0][1][0].shape[1:3]
    n_frames = min(len(clip) for _, clips in rows for clip in clips)
    cell_w = tile_w + 2 * BORDER + PAD
    row_h = LABEL_HEIGHT + tile_h + 2 * BORDER + PAD
    texts = [title for title, _ in rows] + [
        f"frame {n_frames}/{n_frames}: {_status(context + 1, context)[0]}"
    ]
    text_w = max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(t, font=font) for t in texts)
    width = max(PAD + cell_w * len(columns), int(text_w) + 2 * PAD)
    top = 2 * LABEL_HEIGHT + PAD
    height = top + row_h * len(rows)
    images, durations = [], []
    for t in range(n_frames):
        frame_no = t + 1
        status, color = _status(frame_no, context)
        canvas = Image.new("RGB", (width, height), BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        draw.text((PAD, 2), f"frame {frame_no}/{n_frames}: {status}", fill=color, font=font)
        for j, name in enumerate(columns):
            draw.text((PAD + j * cell_w, LABEL_HEIGHT + 2), name, fill=TEXT, font=font)
        for i, (title, clips) in enumerate(rows):
            y = top + i * row_h
            draw.text((PAD, y), title, fill=TEXT, font=font)
            for j, clip in enumerate(clips):
                x = PAD + j * cell_w
                box_top = y + LABEL_HEIGHT
                draw.rectangle(
                    [x, box_top, x + tile_w + 2 * BORDER - 1, box_top + tile_h + 2 * BORDER - 1],
                    fill=color,
                )
                canvas.paste(Image.fromarray(clip[t]), (x + BORDER, y + LABEL_HEIGHT + BORDER))
        images.append(canvas)
        durations.append(SEAM_MS if frame_no == context + 1 else FRAME_MS)
    return images, durations


def _message_image(text: str) -> Image.Image:
    image = Image.new("RGB", (480, 60), BACKGROUND)
    ImageDraw.Draw(image).text((PAD, 20), text, fill=TEXT, font=ImageFont.load_default())
    return image


def write_gif(
    path: str | os.PathLike[str], images: list[Image.Image], durations: list[int]
) -> None:
    """Write an animated GIF atomically (loops forever)."""
    # Fast octree quantisation per frame: PIL's default median cut is ~100x slower.
    images = [im.quantize(256, method=Image.Quantize.FASTOCTREE) for im in images]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=durations,
            loop=0,
            disposal=1,
        )


def make_strip(
    long: pd.DataFrame,
    config: PlotConfig,
    clips_dir: str | os.PathLike[str],
    generations_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
) -> list[str]:
    """Write the strip GIF to ``out`` and return the videos shown.

    When no chosen video can be read, a one-frame GIF saying so is written instead.
    """
    context = context_frames_of(long)
    rows, shown = [], []
    for video, tag in choose_strip_videos(long, config):
        clips = _load_row(video, config, Path(clips_dir), Path(generations_dir))
        if clips is not None:
            rows.append((f"{video} ({tag})", clips))
            shown.append(video)
    if not rows:
        write_gif(out, [_message_image("no video available for every method: no strip")], [1000])
        return []
    images, durations = render_strip(rows, ["ground truth", *config.methods], context)
    write_gif(out, images, durations)
    return shown
