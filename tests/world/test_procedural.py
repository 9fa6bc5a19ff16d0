"""The procedural world: determinism, UCF-101 layout, pretrain vs novel appearance and motion."""

from __future__ import annotations

import colorsys
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sora_tta import cli
from sora_tta.data.manifest import read_manifest
from sora_tta.data.preprocess import resize_cover_crop
from sora_tta.data.ucf101 import load_split
from sora_tta.io import read_json
from sora_tta.layout import WORLD_CAPTIONS_FILE
from sora_tta.world.procedural import (
    APPEARANCES,
    NOVEL,
    PRETRAIN,
    WORLD_FILE,
    WorldConfig,
    make_world,
    render_video,
    video_params,
)

SMALL = WorldConfig(classes=2, per_class=2, frames=9, seed=3, width=64, height=48)


def _motion(params) -> list:
    return [params.pan, params.aspect] + [
        (o.shape, o.radius, o.start, o.velocity) for o in params.objects
    ]


def _hue_in(color: tuple, bands: tuple) -> bool:
    hue = colorsys.rgb_to_hsv(*(c / 255 for c in color))[0]
    return any(low <= hue <= high or low <= hue + 1 <= high for low, high in bands)


def test_same_seed_same_bytes_other_seed_other_videos(tmp_path: Path) -> None:
    a = make_world(tmp_path / "a", SMALL)
    b = make_world(tmp_path / "b", SMALL)
    c = make_world(tmp_path / "c", dataclasses.replace(SMALL, seed=4))
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".avi"]) == 4
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    video = "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    assert (a.root / video).read_bytes() != (c.root / video).read_bytes()


def test_layout_captions_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "world"
    code = cli.main(
        ["make-world", "--out", str(out), "--distribution", "pretrain", "--classes", "2",
         "--per-class", "2", "--frames", "66", "--width", "80", "--height", "64"]
    )  # fmt: skip
    assert code == 0
    info = read_json(out / WORLD_FILE)
    assert info["config"]["distribution"] == PRETRAIN
    assert sorted(info["videos"]) == [
        "v_ApplyEyeMakeup_g01_c01", "v_ApplyEyeMakeup_g01_c02",
        "v_ApplyLipstick_g01_c01", "v_ApplyLipstick_g01_c02",
    ]  # fmt: skip
    test = {e.video_id for e in load_split(out / "ucfTrainTestlist", 1, "test")}
    assert test == set(info["videos"])  # one group per class: every clip is a test clip
    manifest = tmp_path / "manifest.csv"
    code = cli.main(
        ["manifest", "--ucf-root", str(out / "UCF-101"), "--splits-dir",
         str(out / "ucfTrainTestlist"), "--split", "1", "--subset", "test", "--per-class", "2",
         "--caption-overrides", str(out / WORLD_CAPTIONS_FILE), "--expected-size", "80x64",
         "--out", str(manifest)]
    )  # fmt: skip
    assert code == 0
    frame = read_manifest(manifest)
    assert set(frame["status"]) == {"ok"}
    assert dict(zip(frame["video_id"], frame["caption"], strict=True)) == {
        video_id: v["caption"] for video_id, v in info["videos"].items()
    }


def test_novel_shares_motion_not_appearance() -> None:
    assert not set(APPEARANCES[PRETRAIN].object_textures) & set(APPEARANCES[NOVEL].object_textures)
    speeds = {PRETRAIN: [], NOVEL: []}
    for i in range(60):
        pre = video_params(PRETRAIN, 0, (i,), 4 / 3)
        nov = video_params(NOVEL, 0, (i,), 4 / 3)
        assert _motion(pre) == _motion(nov)  # same physics, draw for draw
        for dist, params in ((PRETRAIN, pre), (NOVEL, nov)):
            look = APPEARANCES[dist]
            other = APPEARANCES[NOVEL if dist == PRETRAIN else PRETRAIN]
            textures = [params.background, *(o.texture for o in params.objects)]
            for tex in textures:
                assert tex.kind in look.object_textures + look.background_textures
                for color in (tex.color_a, tex.color_b):
                    assert _hue_in(color, look.hue_bands)
                    assert not _hue_in(color, other.hue_bands)
            speeds[dist] += [float(np.hypot(*o.velocity)) for o in params.objects]
    assert speeds[PRETRAIN] == speeds[NOVEL]
    assert len(set(np.round(speeds[PRETRAIN], 6))) > 50  # speeds vary per object


def test_rendered_worlds_differ_in_colour_and_move() -> None:
    pre = render_video(video_params(PRETRAIN, 1, (0,), 4 / 3), 12, 80, 64)
    nov = render_video(video_params(NOVEL, 1, (0,), 4 / 3), 12, 80, 64)
    assert pre.shape == nov.shape == (12, 64, 80, 3)
    assert np.abs(pre.astype(int) - nov.astype(int)).mean() > 20
    for video in (pre, nov):
        assert np.abs(video[11].astype(int) - video[0].astype(int)).mean() > 1  # things move


def test_scene_is_the_same_at_any_size() -> None:
    params = video_params(PRETRAIN, 2, (5,), 320 / 240)
    big = resize_cover_crop(render_video(params, 3, 320, 240), 64, 80)
    small = render_video(params, 3, 80, 64)
    mse = np.mean((big.astype(float) - small.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 35


def test_caption_names_the_parameters() -> None:
    params = video_params(NOVEL, 0, (7,), 4 / 3)
    caption = params.caption()
    for obj in params.objects:
        assert f"{obj.texture.hue_name} {obj.texture.kind} {obj.shape}" in caption
    assert f"{params.background.kind} background" in caption


def test_bad_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="distribution"):
        WorldConfig(distribution="other")
    with pytest.raises(ValueError, match="size"):
        WorldConfig(width=33)
    with pytest.raises(ValueError, match="distribution"):
        video_params("other", 0, (0,), 1.0)
