"""Resume state of an adaptation run and preemption signals.

The resume state (``{out_dir}/resume/state.pt``) holds everything the next step of
the run depends on: adapter weights, optimiser and scheduler state, the adaptation
generator and the global RNG states (LoRA dropout draws from those), the step
reached and the loss rows so far. It is written atomically, so a kill while saving
leaves the previous state intact.

SLURM announces preemption or the end of the time limit with SIGTERM (or SIGUSR1
when a job asks for ``--signal=USR1@...``); Ctrl-C (or Snakemake passing on its own
interruption) sends SIGINT. :func:`preemption_signals` turns all three into a flag that
the training loop polls after every step and the sampler before every step (and the
generator after decoding): the run saves its state, including the trained adapter once
adaptation is done, and exits with :data:`EXIT_PREEMPTED` (75, ``EX_TEMPFAIL`` of
``sysexits.h``: "try again later"); running the same command again resumes where it
stopped, with only the sampling left when the adaptation had finished.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sora_tta.io import atomic_path

logger = logging.getLogger(__name__)

EXIT_PREEMPTED = 75
RESUME_DIR = "resume"
STATE_FILE = "state.pt"
STATE_VERSION = 1
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def resume_state_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where the resume state of the run writing into ``out_dir`` lives."""
    return Path(out_dir) / RESUME_DIR / STATE_FILE


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically with ``torch.save``."""
    with atomic_path(path) as tmp:
        torch.save({"version": STATE_VERSION, **state}, tmp)


def load_state(path: str | os.PathLike[str], identity: dict[str, Any]) -> dict[str, Any] | None:
    """Load the resume state at ``path`` if it exists and belongs to the run ``identity``.

    A state written by another configuration, video, method or seed (or an unreadable one)
    is ignored with a warning: resuming it would mix two runs.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file means: start afresh
        logger.warning("%s: unreadable resume state ignored (%s)", path, err)
        return None
    if state.get("version") != STATE_VERSION or state.get("identity") != identity:
        logger.warning("%s: resume state of a different run ignored", path)
        return None
    return state


def remove_state(path: str | os.PathLike[str]) -> None:
    """Delete the resume state and its folder (after the final outputs exist)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    if path.parent.name == RESUME_DIR and path.parent.is_dir():
        shutil.rmtree(path.parent, ignore_errors=True)


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """Global RNG states the run depends on (CPU, and the CUDA device if used)."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


class PreemptionFlag:
    """Set when a preemption signal arrived; polled between adaptation steps."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    def set(self, signum: int) -> None:
        """Record that ``signum`` arrived."""
        self.signal = signum


@contextlib.contextmanager
def preemption_signals(flag: PreemptionFlag | None = None) -> Iterator[PreemptionFlag]:
    """Route SIGTERM/SIGUSR1/SIGINT into a :class:`PreemptionFlag` for the block.

    Outside the main thread (where Python cannot install handlers) the flag is returned
    without handlers and the signals keep their previous behaviour.
    """
    flag = flag if flag is not None else PreemptionFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, _frame: object) -> None:
        logger.warning("received %s: saving state and stopping", signal.Signals(signum).name)
        flag.set(signum)

    previous = {sig: signal.signal(sig, handler) for sig in PREEMPTION_SIGNALS}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
