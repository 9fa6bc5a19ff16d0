"""Manifest rows, statuses of the broken cases, CSV validation and atomic writing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sora_tta.data.captions import Captioner
from sora_tta.data.manifest import (
    MANIFEST_COLUMNS,
    ManifestError,
    ProbeSettings,
    build_manifest,
    method_runs_on,
    read_manifest,
    write_manifest,
)
from sora_tta.data.ucf101 import load_split
from sora_tta.world.synthetic_ucf101 import SyntheticTree

SETTINGS = ProbeSettings(min_frames=65, expected_size=(64, 48))


@pytest.fixture(scope="module")
def manifest(small_tree: SyntheticTree) -> pd.DataFrame:
    entries = load_split(small_tree.splits, 1, "test")
    return build_manifest(
        entries, small_tree.videos, Captioner("a video of {action}"), 1, "test", SETTINGS
    )


def test_one_row_per_entry_with_all_columns(
    manifest: pd.DataFrame, small_tree: SyntheticTree
) -> None:
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    # split 1 tests group 1 (2 clips) of each of 3 classes, plus the 6 broken cases
    assert len(manifest) == 3 * 2 + 6
    row = manifest.set_index("video_id").loc["v_ApplyLipstick_g01_c02"]
    assert row["class_name"] == "ApplyLipstick" and row["class_index"] == 2
    assert row["caption"] == "a video of apply lipstick"
    assert (row["split"], row["subset"], row["group"], row["clip"]) == (1, "test", 1, 2)
    assert row["source_path"] == str(small_tree.path("v_ApplyLipstick_g01_c02"))
    assert (row["num_frames"], row["fps"], row["width"], row["height"]) == (70, 25.0, 64, 48)
    assert (row["status"], row["reason"]) == ("ok", "")


def test_broken_cases_get_their_status_and_a_reason(
    manifest: pd.DataFrame, small_tree: SyntheticTree
) -> None:
    rows = manifest.set_index("video_id")
    broken = small_tree.info["broken"]
    assert set(broken) <= set(rows.index)
    for video_id, case in broken.items():
        assert rows.loc[video_id, "status"] == case["expected_status"], case["kind"]
        assert rows.loc[video_id, "reason"], case["kind"]
    ok = rows[~rows.index.isin(list(broken))]
    assert (ok["status"] == "ok").all()


def test_jobs_give_the_same_table(manifest: pd.DataFrame, small_tree: SyntheticTree) -> None:
    entries = load_split(small_tree.splits, 1, "test")
    settings = ProbeSettings(min_frames=65, expected_size=(64, 48), jobs=3)
    threaded = build_manifest(
        entries, small_tree.videos, Captioner("a video of {action}"), 1, "test", settings
    )
    pd.testing.assert_frame_equal(threaded, manifest)


def test_write_read_round_trip(manifest: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "results" / "manifest.csv"
    write_manifest(manifest, path)
    back = read_manifest(path)
    pd.testing.assert_frame_equal(back, manifest)
    assert str(back["num_frames"].dtype) == "Int64" and back["num_frames"].isna().sum() == 3
    assert back.loc[back["status"] == "missing", "fps"].isna().all()


def _edit(manifest: pd.DataFrame, path: Path, **changes: object) -> Path:
    frame = manifest.astype(object).copy()
    for key, value in changes.items():
        column, row = key.rsplit("__", 1)
        frame.loc[int(row), column] = value
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status__0": "broken"}, r"unknown status \['broken'\]"),
        ({"group__3": "g01"}, r"manifest.csv:5: group 'g01' is not a number"),
        ({"num_frames__1": "70.5"}, r"manifest.csv:3: num_frames '70.5' is not a number"),
        ({"split__2": ""}, r"manifest.csv:4: empty split"),
        ({"video_id__1": "v_ApplyEyeMakeup_g01_c01"}, "appears more than once"),
        ({"fps__0": ""}, r"manifest.csv:2: status ok but num_frames/fps/width/height missing"),
    ],
)
def test_read_manifest_rejects_bad_values(
    manifest: pd.DataFrame, tmp_path: Path, changes: dict, message: str
) -> None:
    path = _edit(manifest, tmp_path / "manifest.csv", **changes)
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_read_manifest_rejects_missing_columns_and_files(
    manifest: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "manifest.csv"
    manifest.drop(columns=["caption", "reason"]).to_csv(path, index=False)
    with pytest.raises(ManifestError, match=r"missing columns \['caption', 'reason'\]"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManifestError, match="not a readable CSV"):
        read_manifest(empty)


def test_captions_with_commas_and_quotes_survive(manifest: pd.DataFrame, tmp_path: Path) -> None:
    frame = manifest.copy()
    frame.loc[0, "caption"] = 'a person, smiling, says "NA"'
    path = tmp_path / "manifest.csv"
    write_manifest(frame, path)
    assert read_manifest(path).loc[0, "caption"] == 'a person, smiling, says "NA"'


def test_write_is_atomic(
    manifest: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "manifest.csv"
    write_manifest(manifest.head(2), path)
    before = path.read_bytes()
    real = pd.DataFrame.to_csv

    def partial_then_fail(self: pd.DataFrame, target: object, **kwargs: object) -> None:
        real(self.head(3), target, **kwargs)  # a partial file exists on disk ...
        raise OSError("disk full")  # ... when the writer dies

    monkeypatch.setattr(pd.DataFrame, "to_csv", partial_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(manifest, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.csv"]
    with pytest.raises(OSError, match="disk full"):
        write_manifest(manifest, tmp_path / "new.csv")
    assert not (tmp_path / "new.csv").exists()


def test_method_runs_on_keeps_exploration_off_the_test_videos() -> None:
    final = ["r16-abc"]
    assert method_runs_on("baseline", final, True, "baseline") == ("test", "validation")
    assert method_runs_on("r16-abc", final, True, "baseline") == ("test", "validation")
    assert method_runs_on("r8-def", final, True, "baseline") == ("validation",)
    assert method_runs_on("r8-def", final, False, "baseline") == (
        "test",
    )  # no validation selection


def test_manifest_without_role_column_is_all_test(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    header = "video_id,class_name,class_index,caption,split,subset,group,clip,source_path,"
    header += "num_frames,fps,width,height,status,reason\n"
    path.write_text(header + "v_A_g01_c01,A,1,a,1,test,1,1,x.avi,70,25,64,48,ok,\n")
    assert list(read_manifest(path)["role"]) == ["test"]
    path.write_text(
        header.rstrip("\n") + ",role\n" + "v_A_g01_c01,A,1,a,1,test,1,1,x.avi,70,25,64,48,ok,,dev\n"
    )
    with pytest.raises(ManifestError, match="unknown role"):
        read_manifest(path)
