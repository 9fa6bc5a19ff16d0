"""Progress lines of the long steps (adaptation, sampling, decoding) for logs, not terminals.

A job's log and its SLURM log get plain lines through :mod:`logging` (the ``sora-tta``
command logs to standard error; the workflow's generation rules copy that into the rule log
with ``tee``); tqdm bars are only drawn when standard error is a terminal
(:func:`bars_wanted`). Hooks stay small: :class:`StepLogger` is the adaptation loop's
``on_step`` callback, :func:`stage` wraps sampling and decoding.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

log = logging.getLogger("sora_tta.progress")


def bars_wanted(requested: bool = True, stream: TextIO | None = None) -> bool:
    """Whether to draw tqdm bars: requested and standard error is a terminal."""
    stream = sys.stderr if stream is None else stream
    return requested and hasattr(stream, "isatty") and stream.isatty()


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class StepLogger:
    """``on_step`` callback: one line every ``every`` steps (and at the last step) with
    step, loss, learning rate, seconds per step and the ETA of the remaining steps."""

    def __init__(
        self,
        total: int,
        every: int = 10,
        label: str = "adapt",
        emit: Callable[[str], None] | None = None,
    ) -> None:
        if total < 1 or every < 1:
            raise ValueError(f"total and every must be positive, got {total} and {every}")
        self.total, self.every, self.label = total, every, label
        self.emit = emit or log.info
        self._seconds: list[float] = []

    def __call__(self, row: dict[str, float]) -> None:
        """Record one finished step (a row of the adaptation loop)."""
        self._seconds.append(float(row["seconds"]))
        step = int(row["step"])
        if step % self.every and step != self.total:
            return
        recent = self._seconds[-self.every :]
        per_step = sum(recent) / len(recent)
        eta = per_step * (self.total - step)
        self.emit(
            f"{self.label} step {step}/{self.total} loss {row['loss']:.5f} lr {row['lr']:.2e} "
            f"{per_step:.3f} s/step ETA {format_seconds(eta)}"
        )


@contextlib.contextmanager
def stage(name: str, emit: Callable[[str], None] | None = None) -> Iterator[None]:
    """Log ``<name>: start`` and ``<name>: done in X s`` (or ``failed after X s``)."""
    emit = emit or log.info
    emit(f"{name}: start")
    tick = time.perf_counter()
    try:
        yield
    except BaseException:
        emit(f"{name}: failed after {format_seconds(time.perf_counter() - tick)}")
        raise
    emit(f"{name}: done in {time.perf_counter() - tick:.2f} s")
