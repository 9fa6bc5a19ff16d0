"""Atomic writes: an I/O failure names the final path, and the command line prints one line."""

from __future__ import annotations

import errno
import os

import pytest

from sora_tta import cli, io


def test_failed_write_names_the_final_path_and_leaves_nothing(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr(os, "replace", full)
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(OSError) as info:
        io.write_text_atomic(target, "a,b\n")
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    assert "No space left on device" in info.value.strerror
    assert list(target.parent.iterdir()) == []


def test_command_line_prints_one_line_for_io_errors(tmp_path, monkeypatch, capsys):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr(os, "replace", full)
    out = tmp_path / "ckpts"
    code = cli.main(["make-tiny-checkpoints", str(out), "--seed", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("sora-tta make-tiny-checkpoints: error: ") and str(out) in err
    assert ".tmp" not in err and "No space left on device" in err
