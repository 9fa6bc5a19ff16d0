"""sora_tta.progress: step lines with loss, lr, s/step and ETA; stage timings; bars only on
a terminal."""

from __future__ import annotations

import io

import pytest

from sora_tta import progress


def test_step_logger_every_n_steps_and_at_the_end() -> None:
    lines: list[str] = []
    logger = progress.StepLogger(total=25, every=10, emit=lines.append)
    for step in range(1, 26):
        logger({"step": step, "loss": 1.0 / step, "lr": 2e-4, "seconds": 0.5})
    assert len(lines) == 3  # steps 10, 20 and the last one
    assert lines[0] == "adapt step 10/25 loss 0.10000 lr 2.00e-04 0.500 s/step ETA 8 s"
    assert lines[-1].startswith("adapt step 25/25 loss 0.04000") and lines[-1].endswith("ETA 0 s")


def test_eta_uses_the_recent_steps() -> None:
    lines: list[str] = []
    logger = progress.StepLogger(total=300, every=2, emit=lines.append)
    logger({"step": 1, "loss": 1.0, "lr": 1e-3, "seconds": 100.0})
    logger({"step": 2, "loss": 1.0, "lr": 1e-3, "seconds": 2.0})
    logger({"step": 3, "loss": 1.0, "lr": 1e-3, "seconds": 2.0})
    logger({"step": 4, "loss": 1.0, "lr": 1e-3, "seconds": 2.0})
    assert lines[-1].endswith("2.000 s/step ETA 9 min 52 s")
    with pytest.raises(ValueError):
        progress.StepLogger(total=0)


def test_stage_logs_start_and_end_with_timing() -> None:
    lines: list[str] = []
    with progress.stage("v1: sampling 4 steps", emit=lines.append):
        pass
    assert lines[0] == "v1: sampling 4 steps: start"
    assert lines[1].startswith("v1: sampling 4 steps: done in ") and lines[1].endswith(" s")
    with pytest.raises(RuntimeError), progress.stage("decoding", emit=lines.append):
        raise RuntimeError("boom")
    assert lines[-1].startswith("decoding: failed after ")


def test_bars_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress.bars_wanted(True, Tty())
    assert not progress.bars_wanted(False, Tty())
    assert not progress.bars_wanted(True, io.StringIO())
    assert progress.format_seconds(3725) == "1 h 02 min"
