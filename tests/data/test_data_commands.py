"""The data subcommands through ``sora_tta.cli.main``: help, end to end, argument errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sora_tta.data.manifest import read_manifest
from sora_tta.data.preprocess import resize_cover_crop
from sora_tta.data.video import read_frames
from sora_tta.io import read_json
from sora_tta.world.synthetic_ucf101 import SyntheticTree

Run = Callable[[list[object]], tuple[int, str, str]]


@pytest.mark.parametrize("command", ["make-synthetic-ucf101", "manifest", "preprocess"])
def test_help(run_cli: Run, command: str) -> None:
    code, out, _ = run_cli([command, "--help"])
    assert code == 0 and f"sora-tta {command}" in out


def test_demo_end_to_end(run_cli: Run, tmp_path: Path) -> None:
    out = tmp_path / "ucf"
    code, _, err = run_cli(
        ["make-synthetic-ucf101", out, "--classes", 3, "--per-class", 2, "--seed", 1,
         "--frames", 66, "--width", 80, "--height", 64]
    )  # fmt: skip
    assert code == 0, err
    manifest = tmp_path / "manifest.csv"
    code, _, err = run_cli(
        ["manifest", "--ucf-root", out / "UCF-101", "--splits-dir", out / "ucfTrainTestlist",
         "--split", 1, "--subset", "test", "--per-class", 3, "--seed", 0,
         "--caption-template", "a person {action}", "--expected-size", "80x64", "--out", manifest]
    )  # fmt: skip
    assert code == 0, err
    frame = read_manifest(manifest)
    tree = SyntheticTree(out)
    assert len(frame) == 3 * 3  # each class lists 2 regular + 2 broken clips for test
    assert frame["class_name"].value_counts().to_dict() == {n: 3 for n in tree.info["classes"]}
    chosen_broken = set(frame["video_id"]) & set(tree.info["broken"])
    assert len(chosen_broken) >= 3
    assert set(frame.loc[frame["status"] != "ok", "video_id"]) == chosen_broken
    assert (
        frame.loc[frame["class_name"] == "ApplyEyeMakeup", "caption"].iloc[0]
        == "a person apply eye makeup"
    )
    row = frame[frame["status"] == "ok"].iloc[0]
    clip = tmp_path / "clips" / f"{row['video_id']}.mkv"
    code, _, err = run_cli(
        ["preprocess", "--input", row["source_path"], "--output", clip, "--start-frame", 1,
         "--num-frames", 65, "--height", 32, "--width", 48, "--expected-size", "80x64"]
    )  # fmt: skip
    assert code == 0, err
    expected = resize_cover_crop(read_frames(row["source_path"])[1:66], 32, 48)
    assert np.array_equal(read_frames(clip), expected)
    sidecar = read_json(clip.with_suffix(".json"))
    assert (sidecar["num_frames"], sidecar["start_frame"], sidecar["fps"]) == (65, 1, 25.0)


def test_manifest_is_reproducible_and_group_limited(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path
) -> None:
    common = ["manifest", "--ucf-root", small_tree.videos, "--splits-dir", small_tree.splits,
              "--subset", "train", "--split", 2, "--total", 5, "--max-per-group", 1,
              "--expected-size", "64x48"]  # fmt: skip
    for name, seed in (("a.csv", 4), ("b.csv", 4), ("c.csv", 5)):
        code, _, err = run_cli([*common, "--seed", seed, "--out", tmp_path / name])
        assert code == 0, err
    a, b = (tmp_path / "a.csv").read_bytes(), (tmp_path / "b.csv").read_bytes()
    assert a == b
    frame = read_manifest(tmp_path / "a.csv")
    assert len(frame) == 5 and frame[["class_name", "group"]].value_counts().max() == 1
    assert (frame["subset"] == "train").all() and (frame["split"] == 2).all()
    assert (frame["status"] == "ok").all()
    assert set(frame["group"]) <= {1, 3}  # split 2 tests group 2


def test_manifest_excludes_listed_videos_with_their_reason(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("v_Archery_g01_c02\nv_ApplyEyeMakeup_g01_c01\n")
    out = tmp_path / "m.csv"
    code, _, err = run_cli(
        ["manifest", "--ucf-root", small_tree.videos, "--splits-dir", small_tree.splits,
         "--list", listing, "--expected-size", "any", "--num-frames", 33, "--out", out,
         "--exclude", '{"v_Archery_g01_c02": "diverges with every variant", "v_Nope": "x"}']
    )  # fmt: skip
    assert code == 0, err
    frame = read_manifest(out).set_index("video_id")
    assert frame.loc["v_Archery_g01_c02", "status"] == "excluded"
    assert frame.loc["v_Archery_g01_c02", "reason"] == (
        "excluded by the configuration: diverges with every variant"
    )
    assert frame.loc["v_ApplyEyeMakeup_g01_c01", "status"] == "ok"
    assert "not in the selection: v_Nope" in caplog.text


def test_manifest_list_and_overrides(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("v_Archery_g01_c02\nApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    overrides = tmp_path / "captions.tsv"
    overrides.write_text("Archery\tsomeone shooting arrows at a target\n")
    out = tmp_path / "m.csv"
    argv = ["manifest", "--ucf-root", small_tree.videos, "--splits-dir", small_tree.splits,
            "--list", listing, "--caption-overrides", overrides, "--expected-size", "any",
            "--num-frames", 65, "--out", out]  # fmt: skip
    code, _, err = run_cli([*argv, "--start-frame", 0])
    assert code == 0, err
    frame = read_manifest(out)
    assert list(frame["video_id"]) == ["v_ApplyEyeMakeup_g01_c01", "v_Archery_g01_c02"]
    assert list(frame["caption"]) == ["apply eye makeup", "someone shooting arrows at a target"]
    assert list(frame["status"]) == ["ok", "ok"]
    # min_frames defaults to start + num_frames = 75 > 70 frames: nothing usable is an error
    out.unlink()
    code, _, err = run_cli([*argv, "--start-frame", 10])
    assert code == 1 and "no selected video is usable (too_short 2)" in err
    assert "(70 frames < min_frames 75)" in err and not out.exists()


PRE = ["preprocess", "--input", "a.avi", "--output", "b.mkv"]
MAN = ["manifest", "--ucf-root", ".", "--splits-dir", ".", "--out", "m.csv"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*PRE, "--height", 100], "100 is not a multiple of 16"),
        ([*PRE, "--width", -16], "is not a positive integer"),
        ([*PRE, "--fps", "fast"], "'fast' is not a number"),
        (PRE[:3], "required: --output"),
        ([*MAN, "--split", 4], "invalid choice: 4"),
        ([*MAN, "--subset", "val"], "invalid choice: 'val'"),
        ([*MAN, "--per-class", 2, "--total", 4], "not allowed with"),
        ([*MAN, "--expected-size", "320"], "is not WIDTHxHEIGHT"),
        (["make-synthetic-ucf101", "out", "--classes", 0], "0 is not a positive integer"),
    ],
)
def test_argument_errors_exit_2(run_cli: Run, argv: list[object], message: str) -> None:
    code, _, err = run_cli(argv)
    assert code == 2 and message in err


def test_missing_split_file(run_cli: Run, small_tree: SyntheticTree, tmp_path: Path) -> None:
    splits = tmp_path / "lists"
    splits.mkdir()
    (splits / "classInd.txt").write_bytes((small_tree.splits / "classInd.txt").read_bytes())
    code, _, err = run_cli(
        ["manifest", "--ucf-root", small_tree.videos, "--splits-dir", splits, "--split", 3,
         "--out", tmp_path / "m.csv"]
    )  # fmt: skip
    assert code == 1
    assert err.strip() == f"sora-tta manifest: error: {splits / 'testlist03.txt'}: file not found"
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--ucf-root", "/nonexistent/UCF-101"],
            "/nonexistent/UCF-101: UCF-101 video folder not found",
        ),
        (["--caption-template", "{verb}"], "unknown field 'verb'"),
        (["--total", 1000], "total 1000 exceeds the"),
    ],
)
def test_manifest_errors_are_one_line(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path, extra: list[object], message: str
) -> None:
    argv = ["manifest", "--ucf-root", small_tree.videos, "--splits-dir", small_tree.splits,
            "--out", tmp_path / "m.csv"]  # fmt: skip
    code, _, err = run_cli([*argv, *extra])
    assert code == 1 and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "kind", ["too_short", "truncated", "empty", "undecodable", "odd_size", "missing"]
)
def test_preprocess_bad_file_exits_1_naming_it(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path, kind: str
) -> None:
    source = small_tree.path(small_tree.broken(kind))
    out = tmp_path / "clip.mkv"
    code, _, err = run_cli(
        ["preprocess", "--input", source, "--output", out, "--height", 32, "--width", 48,
         "--expected-size", "64x48"]
    )  # fmt: skip
    assert code == 1
    assert err.startswith(f"sora-tta preprocess: error: {source}: ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_preprocess_needs_mkv(run_cli: Run, small_tree: SyntheticTree, tmp_path: Path) -> None:
    code, _, err = run_cli(
        [
            "preprocess",
            "--input",
            small_tree.path("v_Archery_g01_c01"),
            "--output",
            tmp_path / "c.mp4",
        ]
    )
    assert code == 1 and "c.mp4: output must be an .mkv file" in err


def test_synthetic_refuses_non_empty_out(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    code, _, err = run_cli(["make-synthetic-ucf101", tmp_path, "--classes", 1, "--per-class", 1])
    assert code == 1 and "folder is not empty" in err


def test_unwritable_output_is_a_one_line_error(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(
        ["manifest", "--ucf-root", small_tree.videos, "--splits-dir", small_tree.splits,
         "--expected-size", "64x48", "--out", blocker / "m.csv"]
    )  # fmt: skip
    assert code == 1 and f"{blocker / 'm.csv'}: cannot write" in err and err.count("\n") == 1
    code, _, err = run_cli(
        ["preprocess", "--input", small_tree.path("v_Archery_g01_c01"), "--output",
         blocker / "c.mkv", "--height", 32, "--width", 48, "--expected-size", "64x48"]
    )  # fmt: skip
    assert code == 1 and f"{blocker / 'c.mkv'}: cannot write" in err


def test_manifest_with_a_group_disjoint_validation_selection(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path
) -> None:
    out = tmp_path / "m.csv"
    code, _, err = run_cli(
        ["manifest", "--ucf-root", small_tree.videos, "--splits-dir", small_tree.splits,
         "--expected-size", "64x48", "--validation-subset", "train",
         "--validation-per-class", 2, "--validation-max-per-group", 1, "--out", out]
    )  # fmt: skip
    assert code == 0, err
    frame = read_manifest(out)
    test, val = frame[frame.role == "test"], frame[frame.role == "validation"]
    assert len(val) == 6 and (val.subset == "train").all() and (val.status == "ok").all()
    assert val.groupby("class_name").size().tolist() == [2, 2, 2]
    groups = lambda rows: set(zip(rows.class_name.str.lower(), rows.group, strict=True))  # noqa: E731
    assert not groups(test) & groups(val) and len(test) > 0
    code, _, err = run_cli(
        ["manifest", "--ucf-root", small_tree.videos, "--splits-dir", small_tree.splits,
         "--validation-total", 3, "--out", tmp_path / "x.csv"]
    )  # fmt: skip
    assert code == 1 and "--validation-total needs --validation-subset" in err


def test_manifest_fails_early_when_ucf_root_is_one_folder_too_high(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path
) -> None:
    too_high = Path(small_tree.videos).parent
    code, _, err = run_cli(
        ["manifest", "--ucf-root", too_high, "--splits-dir", small_tree.splits,
         "--out", tmp_path / "m.csv"]
    )  # fmt: skip
    assert code == 1 and err.count("\n") == 1
    assert "none of the 3 class folders of classInd.txt is here" in err
    assert f"did you mean --ucf-root {small_tree.videos}?" in err
    assert not (tmp_path / "m.csv").exists()


def test_manifest_fails_when_no_selected_video_is_usable(
    run_cli: Run, small_tree: SyntheticTree, tmp_path: Path
) -> None:
    # the class folders exist but hold no videos
    empty = tmp_path / "UCF-101"
    for folder in Path(small_tree.videos).iterdir():
        (empty / folder.name).mkdir(parents=True)
    code, _, err = run_cli(
        ["manifest", "--ucf-root", empty, "--splits-dir", small_tree.splits,
         "--out", tmp_path / "m.csv"]
    )  # fmt: skip
    assert code == 1 and err.count("\n") == 1
    assert f"{empty}: no selected video is usable (missing " in err
    assert f"expected the videos as {empty}/<Class>/v_<Class>_gNN_cMM.avi" in err
    assert not (tmp_path / "m.csv").exists()
