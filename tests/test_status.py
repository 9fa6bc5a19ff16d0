"""sora_tta.status on a hand-made workflow directory: each state, the TSV, the selection of
videos and the rerun command (the end-to-end check is tests/workflow/test_status_rerun.py)."""

from __future__ import annotations

import base64
import csv
import os
from pathlib import Path

import pytest

from sora_tta import cli
from sora_tta import status as st

MANIFEST_HEADER = ["video_id", "class_name", "status", "reason"]
ROWS = [
    ["v_A_g01_c01", "A", "ok", ""],
    ["v_A_g02_c01", "A", "ok", ""],
    ["v_B_g01_c01", "B", "ok", ""],
    ["v_B_g02_c01", "B", "too_short", "40 frames < min_frames 65"],
    ["v_C_g01_c01", "C", "ok", ""],
]


def record(workdir: Path, kind: str, path: str) -> None:
    name = base64.urlsafe_b64encode(path.encode()).decode()
    target = workdir / ".snakemake" / kind / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("{}")


def touch(path: Path, text: str = "x", mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """baseline + one variant; A1 done, A2 failed on SLURM, B1 deleted after it finished,
    C1 never run, C1's variant killed mid-way; B2 excluded by the manifest."""
    results = tmp_path / "results"
    results.mkdir()
    with open(results / "manifest.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([MANIFEST_HEADER, *ROWS])
    touch(results / "methods" / "methods.tsv", "method\tkind\nbaseline\tbaseline\nr4-abc\ttta\n")
    for method in ("baseline", "r4-abc"):
        for out in st.generation_files(method, "v_A_g01_c01"):
            touch(tmp_path / out)
        record(tmp_path, "metadata", st.generation_files(method, "v_B_g01_c01")[0])
        touch(tmp_path / st.rule_and_log(method, "v_B_g01_c01")[1], "done", mtime=1.0)
        touch(
            tmp_path / st.rule_and_log(method, "v_A_g02_c01")[1],
            "loading\nsora-tta generate: error: clip.mkv: not a video\nbye\n",
        )
    touch(tmp_path / ".snakemake/slurm_logs/rule_generate_tta/r4-abc_v_A_g02_c01/4711.log")
    record(tmp_path, "incomplete", st.generation_files("r4-abc", "v_C_g01_c01")[0])
    for video in ("v_A_g01_c01", "v_A_g02_c01", "v_B_g01_c01", "v_C_g01_c01"):
        touch(results / "clips" / f"{video}.mkv")
    return tmp_path


def states(statuses: list[st.VideoStatus]) -> dict[tuple[str, str], str]:
    return {(s.method, s.video_id): s.state for s in statuses}


def test_every_state_is_recognised(run: Path) -> None:
    statuses = st.collect(run)
    assert states(statuses) == {
        ("baseline", "v_A_g01_c01"): "done",
        ("baseline", "v_A_g02_c01"): "failed",
        ("baseline", "v_B_g01_c01"): "pending",
        ("baseline", "v_B_g02_c01"): "excluded",
        ("baseline", "v_C_g01_c01"): "pending",
        ("r4-abc", "v_A_g01_c01"): "done",
        ("r4-abc", "v_A_g02_c01"): "failed",
        ("r4-abc", "v_B_g01_c01"): "pending",
        ("r4-abc", "v_B_g02_c01"): "excluded",
        ("r4-abc", "v_C_g01_c01"): "failed",
    }
    by_key = {(s.method, s.video_id): s for s in statuses}
    failed = by_key[("r4-abc", "v_A_g02_c01")]
    assert failed.detail == "sora-tta generate: error: clip.mkv: not a video"
    assert failed.slurm_job_id == "4711" and failed.log.endswith("r4-abc/v_A_g02_c01.log")
    assert by_key[("baseline", "v_A_g02_c01")].slurm_job_id == ""
    assert by_key[("baseline", "v_B_g01_c01")].detail == "finished once, output deleted since"
    assert by_key[("r4-abc", "v_C_g01_c01")].detail.startswith("incomplete")
    assert by_key[("r4-abc", "v_B_g02_c01")].detail == "too_short: 40 frames < min_frames 65"


def test_summary_and_tsv(run: Path) -> None:
    statuses = st.collect(run)
    text = st.summary(statuses)
    lines = text.splitlines()
    assert lines[0].split() == ["method", "done", "failed", "pending", "excluded"]
    assert lines[1].split() == ["baseline", "1", "1", "2", "1"]
    assert lines[2].split() == ["r4-abc", "1", "2", "1", "1"]
    assert "  r4-abc v_A_g02_c01 [SLURM job 4711]: sora-tta generate: error:" in text
    assert "  v_B_g02_c01: too_short: 40 frames < min_frames 65" in text
    st.write_tsv(statuses, run / "status.tsv")
    with open(run / "status.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 10 and rows[0]["state"] == "done"


def test_recorded_failure_is_failed_with_its_reason(run: Path) -> None:
    meta, _ = st.generation_files("r4-abc", "v_B_g01_c01")
    touch(run / meta, '{"outcome": "failed", "stage": "adapt", "error": "loss is nan"}')
    status = next(s for s in st.collect(run) if (s.method, s.video_id) == ("r4-abc", "v_B_g01_c01"))
    assert (status.state, status.detail) == ("failed", "outcome failed at adapt: loss is nan")


def test_selection_and_rerun_command(run: Path) -> None:
    statuses = st.collect(run)
    assert st.select_videos(statuses, ["FAILED"]) == ["v_A_g02_c01", "v_C_g01_c01"]
    assert st.select_videos(statuses, ["B", "v_A_g01_c01"]) == ["v_B_g01_c01", "v_A_g01_c01"]
    with pytest.raises(st.StatusError, match="excluded by the manifest"):
        st.select_videos(statuses, ["v_B_g02_c01"])
    with pytest.raises(st.StatusError, match="neither FAILED"):
        st.select_videos(statuses, ["Z"])
    (run / "results/clips/v_B_g01_c01.mkv").unlink()
    command = st.rerun_command(run, statuses, ["v_B_g01_c01"], ["--cores", "2"])
    assert command == [
        "snakemake", "--cores", "2", "--directory", str(run), "--forcerun",
        "results/clips/v_B_g01_c01.mkv",
        "results/generations/baseline/v_B_g01_c01/meta.json",
        "results/generations/r4-abc/v_B_g01_c01/meta.json",
    ]  # fmt: skip


def test_exploratory_variants_have_rows_only_on_validation_videos(run: Path) -> None:
    """With a validation selection, an exploratory variant neither counts as pending on a
    test video nor is forced there by a rerun; the final one runs on both roles."""
    roles = ["test", "validation", "test", "test", "validation"]
    with open(run / "results/manifest.csv", "w", newline="") as handle:
        rows = [[*row, role] for row, role in zip(ROWS, roles, strict=True)]
        csv.writer(handle).writerows([[*MANIFEST_HEADER, "role"], *rows])
    touch(
        run / "results/methods/methods.tsv",
        "method\tanalysis\nbaseline\tbaseline\nr4-abc\tfinal\nx-def\texploratory\n",
    )
    statuses = st.collect(run)
    by_method = {m: {s.video_id for s in statuses if s.method == m} for m in st.read_methods(run)}
    assert by_method["baseline"] == by_method["r4-abc"] == {r[0] for r in ROWS}
    assert by_method["x-def"] == {"v_A_g02_c01", "v_C_g01_c01"}
    command = st.rerun_command(run, statuses, ["v_A_g01_c01", "v_C_g01_c01"])
    forced = [t for t in command if "/generations/" in t]
    assert forced == [
        "results/generations/baseline/v_A_g01_c01/meta.json",
        "results/generations/r4-abc/v_A_g01_c01/meta.json",
        "results/generations/baseline/v_C_g01_c01/meta.json",
        "results/generations/r4-abc/v_C_g01_c01/meta.json",
        "results/generations/x-def/v_C_g01_c01/meta.json",
    ]


def test_status_command(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["status", "-d", str(run), "--rerun", "FAILED", "--", "--profile", "slurm"])
    out = capsys.readouterr().out
    assert code == 0
    assert (run / "results" / "status.tsv").exists()
    assert "regenerate 2 video(s) (v_A_g02_c01, v_C_g01_c01)" in out
    assert f"snakemake --profile slurm --directory {run} --forcerun " in out


def test_status_without_a_run_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "-d", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "results/manifest.csv: no manifest yet" in err and err.count("\n") == 1
