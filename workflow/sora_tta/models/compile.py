"""Regional ``torch.compile`` of the MMDiT blocks for sampling, with a fallback to eager.

Each double and single block is compiled in place with static shapes (the shapes are fixed
within a study), the rest of the model stays eager. Compilation is lazy: the first call
traces and compiles, so errors surface there; :func:`run_compiled` then restores the eager
blocks and runs the same function again eagerly (sampling is deterministic given its seed,
so the result is the one an eager run gives). ``auto`` compiles on CUDA only, where it was
measured to pay (docs/performance.md); on the CPU it is slower to compile than to run.

Compiled kernels are cached on disk by Inductor (``TORCHINDUCTOR_CACHE_DIR``): with a
persistent node-local folder (:func:`set_cache_dir`) later processes on the node load them
instead of compiling again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # torch is imported where used: the workflow imports compile_mode at DAG time
    import torch

logger = logging.getLogger(__name__)

COMPILE_MODES = ("auto", "on", "off")
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
T = TypeVar("T")


def compile_mode(value: str | bool) -> str:
    """``auto``/``on``/``off`` of a config value (YAML reads unquoted on/off as booleans)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {list(COMPILE_MODES)}, got {value!r}")
    return value


def compile_enabled(mode: str | bool, device_type: str) -> bool:
    """Whether sampling is compiled: ``auto`` = on for CUDA only."""
    mode = compile_mode(mode)
    return mode == "on" or (mode == "auto" and device_type == "cuda")


def set_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path | None:
    """Point Inductor's on-disk cache at ``cache_dir`` (environment variables expanded).

    Must run before the first compilation of the process. ``None`` keeps torch's default.
    """
    if cache_dir is None:
        return None
    path = Path(os.path.expandvars(os.fspath(cache_dir))).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(path)
    return path


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of an MMDiT (the regions that are compiled)."""
    return [*model.double_blocks, *model.single_blocks]


@contextlib.contextmanager
def compiled_blocks(
    model: torch.nn.Module, backend: str | Callable[..., Any] = "inductor"
) -> Iterator[None]:
    """Compile every block of ``model`` in place for the duration of the context."""
    blocks = transformer_blocks(model)
    for block in blocks:
        block.compile(backend=backend, dynamic=False)
    try:
        yield
    finally:
        for block in blocks:
            block._compiled_call_impl = None  # back to the eager forward


def is_compile_error(err: BaseException) -> bool:
    """Whether ``err`` comes from Dynamo / Inductor rather than from the model itself."""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import InductorError

    return isinstance(err, (TorchDynamoException, InductorError)) or type(
        err
    ).__module__.startswith(("torch._dynamo", "torch._inductor"))


def run_compiled(
    model: torch.nn.Module,
    mode: str | bool,
    fn: Callable[[], T],
    *,
    backend: str | Callable[..., Any] = "inductor",
) -> tuple[T, dict[str, Any]]:
    """``fn()`` with the blocks of ``model`` compiled when ``mode`` asks for it.

    Returns the result and a record for ``meta.json``: mode, whether the compiled run was
    used, the compiled run's seconds (compilation included) and the fallback reason.
    """
    import torch

    mode = compile_mode(mode)
    device_type = next(model.parameters()).device.type
    record: dict[str, Any] = {"mode": mode, "compiled": False, "fallback": None}
    if not compile_enabled(mode, device_type):
        return fn(), record
    tick = time.perf_counter()
    try:
        with compiled_blocks(model, backend):
            result = fn()
    except Exception as err:
        if not is_compile_error(err):
            raise
        reason = f"{type(err).__name__}: {' '.join(str(err).split())}"[:500]
        logger.warning("compiled sampling failed, running eager instead (%s)", reason)
        torch._dynamo.reset()
        record["fallback"] = reason
        return fn(), record
    record.update(compiled=True, compiled_seconds=time.perf_counter() - tick)
    return result, record
