"""Checkpoint staging: one complete copy under concurrency, no complete-looking partial copy,
re-staging of a changed source."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from sora_tta import staging
from sora_tta.cli import main

MMDIT, VAE = "Open_Sora_v2.safetensors", "hunyuan_vae.safetensors"


def make_source(root: Path, size: int = 3 * 2**20) -> Path:
    source = root / "ckpts"
    source.mkdir()
    (source / MMDIT).write_bytes(os.urandom(size))
    (source / VAE).write_bytes(os.urandom(size // 3))
    (source / "google").mkdir()  # text encoders: not needed by generation, not staged
    (source / "google" / "big.bin").write_bytes(b"x" * 100)
    return source


def _stage(args: tuple[str, str]) -> str:
    return str(staging.stage_checkpoints(args[0], args[1]))


def test_concurrent_stagers_make_one_complete_copy(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    stage_dir = tmp_path / "local"
    with multiprocessing.get_context("fork").Pool(6) as pool:
        results = pool.map(_stage, [(str(source), str(stage_dir))] * 6)
    assert len(set(results)) == 1
    staged = Path(results[0])
    for name in (MMDIT, VAE):
        assert (staged / name).read_bytes() == (source / name).read_bytes()
    assert not (staged / "google").exists()
    folders = [p for p in stage_dir.iterdir() if p.is_dir()]
    assert folders == [staged]  # no other copy, no temporary folder left
    marker = json.loads((staged / staging.MARKER).read_text())
    assert {f["path"] for f in marker["files"]} == {MMDIT, VAE}


def test_later_jobs_reuse_the_copy(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    first = staging.stage_checkpoints(source, tmp_path / "local")
    mtime = (first / MMDIT).stat().st_mtime_ns
    second = staging.stage_checkpoints(source, tmp_path / "local")
    assert second == first and (second / MMDIT).stat().st_mtime_ns == mtime


def _slow_copy(source: str, stage_dir: str) -> None:
    original = staging.shutil.copyfile

    def slow(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = original(src, dst, *args, **kwargs)
        time.sleep(60)  # killed here: one file copied, no marker yet
        return result

    staging.shutil.copyfile = slow
    staging.stage_checkpoints(source, stage_dir)


def test_killed_copy_never_looks_complete(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    stage_dir = tmp_path / "local"
    process = multiprocessing.get_context("fork").Process(
        target=_slow_copy, args=(str(source), str(stage_dir))
    )
    process.start()
    deadline = time.monotonic() + 120
    while not list(stage_dir.glob(f"{staging.TMP_PREFIX}*/{MMDIT}")):
        assert time.monotonic() < deadline and process.is_alive()
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    leftovers = [p for p in stage_dir.iterdir() if p.is_dir()]
    assert leftovers and all(p.name.startswith(staging.TMP_PREFIX) for p in leftovers)
    # The next stager cleans the partial copy and makes a complete one.
    staged = staging.stage_checkpoints(source, stage_dir)
    assert (staged / VAE).read_bytes() == (source / VAE).read_bytes()
    assert [p for p in stage_dir.iterdir() if p.is_dir()] == [staged]


def test_changed_source_is_staged_again(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    first = staging.stage_checkpoints(source, tmp_path / "local")
    (source / VAE).write_bytes(b"new weights")
    second = staging.stage_checkpoints(source, tmp_path / "local")
    assert second != first
    assert (second / VAE).read_bytes() == b"new weights"


def test_damaged_copy_is_not_trusted(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    staged = staging.stage_checkpoints(source, tmp_path / "local")
    with open(staged / MMDIT, "r+b") as handle:
        handle.truncate(10)  # e.g. a node clean-up that went half way
    again = staging.stage_checkpoints(source, tmp_path / "local")
    assert again == staged
    assert (again / MMDIT).read_bytes() == (source / MMDIT).read_bytes()


def test_sha256_verification_and_env_expansion(tmp_path: Path, monkeypatch) -> None:
    source = make_source(tmp_path)
    monkeypatch.setenv("NODE_LOCAL", str(tmp_path / "node"))
    staged = staging.stage_checkpoints(source, "$NODE_LOCAL/stage", verify="sha256")
    assert staged.parent == tmp_path / "node" / "stage"
    marker = json.loads((staged / staging.MARKER).read_text())
    assert all(len(f["sha256"]) == 64 for f in marker["files"])


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    (source / VAE).unlink()
    with pytest.raises(staging.StagingError, match=VAE):
        staging.stage_checkpoints(source, tmp_path / "local")


def test_stage_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_source(tmp_path)
    args = [
        "stage-checkpoints",
        "--checkpoint-dir",
        str(source),
        "--stage-dir",
        str(tmp_path / "l"),
    ]
    assert main(args) == 0
    staged = Path(capsys.readouterr().out.strip())
    assert (staged / MMDIT).is_file()
    (source / MMDIT).unlink()
    assert main(args) == 1
    assert MMDIT in capsys.readouterr().err
