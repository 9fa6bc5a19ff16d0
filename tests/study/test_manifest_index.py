"""Unit tests of sora_tta.study.manifest_index: the input functions' lookups, the per-version
cache and when a checkpoint's output may be read."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from sora_tta.data.manifest import MANIFEST_COLUMNS, write_manifest
from sora_tta.prompts import format_prompt, prompt_id
from sora_tta.study.manifest_index import (
    CheckpointOutputs,
    ManifestCache,
    ManifestError,
    ManifestIndex,
)


def write(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """A manifest of (video_id, class_name, status, role) rows."""
    records = []
    for video, class_name, status, role in rows:
        record = dict.fromkeys(MANIFEST_COLUMNS, "")
        record.update(video_id=video, class_name=class_name, class_index=1, split=1,
                      subset="test", group=1, clip=1, caption=f"{class_name} caption",
                      source_path=f"src/{video}.avi", status=status, role=role,
                      num_frames=80, fps=25.0, width=320, height=240)  # fmt: skip
        records.append(record)
    write_manifest(pd.DataFrame(records, columns=list(MANIFEST_COLUMNS)), path)
    return path


ROWS = [
    ("a1", "A", "ok", "test"),
    ("b1", "B", "ok", "test"),
    ("a2", "A", "ok", "validation"),
    ("b2", "B", "too_short", "test"),
    ("c1", "C", "ok", "validation"),
]


def index_of(path: Path, final=("final-1",)) -> ManifestIndex:
    return ManifestIndex(path, final, prompt_fps=24, motion_score=4, seed=0)


def test_methods_see_the_videos_of_their_roles(tmp_path):
    index = index_of(write(tmp_path / "m.csv", ROWS))
    assert index.usable == ["a1", "b1", "a2", "c1"] and index.has_validation
    assert index.method_classes("baseline") == {"A": ["a1", "a2"], "B": ["b1"], "C": ["c1"]}
    assert index.method_classes("final-1") == index.method_classes("baseline")
    # an exploratory variant never runs on a test video
    assert index.method_classes("explore-2") == {"A": ["a2"], "C": ["c1"]}
    assert index.method_videos("explore-2") == ("a2", "c1")
    with pytest.raises(ManifestError, match="no usable video of class 'B' for explore-2"):
        index.method_class_videos("explore-2", "B")


def test_rows_prompts_and_donors(tmp_path):
    path = write(tmp_path / "m.csv", ROWS)
    index = index_of(path)
    assert index.usable_row("a1")["source_path"] == "src/a1.avi"
    with pytest.raises(ManifestError, match=f"{path}: video 'b2' is not usable \\(too_short\\)"):
        index.usable_row("b2")
    with pytest.raises(ManifestError, match="no video 'zz'"):
        index.row("zz")
    assert index.prompt_id("a1") == prompt_id(format_prompt("A caption", 24, 4))
    # donors: another class, the same selection (role)
    for video in index.usable:
        donor = index.cross_video_donor(video)
        assert index.rows[donor]["class_name"] != index.rows[video]["class_name"]
        assert index.rows[donor]["role"] == index.rows[video]["role"]


def test_class_names_must_be_usable_in_file_names(tmp_path):
    path = write(tmp_path / "m.csv", [("x1", "Bad Class", "ok", "test")])
    with pytest.raises(ManifestError, match="not usable in file names"):
        index_of(path)


def test_cache_rereads_only_a_changed_file(tmp_path):
    path = write(tmp_path / "m.csv", ROWS)
    reads = []
    cache = ManifestCache(lambda p: reads.append(p) or index_of(Path(p)))
    first = cache.get(str(path))
    assert cache.get(str(path)) is first and len(reads) == 1
    write(path, ROWS[:2])
    os.utime(path, ns=(1, 1))  # a new version, whatever the clock's resolution
    assert cache.get(str(path)).usable == ["a1", "b1"] and len(reads) == 2


class Incomplete(Exception):
    """Stands for Snakemake's IncompleteCheckpointException."""


class Pending:
    def __init__(self, done: bool) -> None:
        self.done, self.calls = done, 0

    def get(self) -> None:
        self.calls += 1
        if not self.done:
            raise Incomplete


def test_checkpoint_outputs(tmp_path):
    path = str(tmp_path / "manifest.csv")
    # the main process defers until the checkpoint has run
    main = CheckpointOutputs(is_main_process=True, incomplete=Incomplete)
    with pytest.raises(Incomplete):
        main.get(Pending(done=False), path)
    done = Pending(done=True)
    assert main.get(done, path) == path and main.get(done, path) == path
    assert done.calls == 1  # asked once, then remembered
    # a job's own process: the file is the proof that the checkpoint ran
    job = CheckpointOutputs(is_main_process=False, incomplete=Incomplete)
    with pytest.raises(Incomplete):
        job.get(Pending(done=False), path)
    Path(path).write_text("x")
    assert job.get(Pending(done=False), path) == path
