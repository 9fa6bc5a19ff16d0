"""Checkpoint staging: one verified copy per node on node-local disk, shared by later jobs.

``stage_checkpoints(source, stage_dir)`` returns a folder in the checkpoint layout holding
the files generation loads (the MMDiT and the VAE), under ``stage_dir`` on local disk:

- the staged folder's name carries a fingerprint of the source files (relative path, size,
  modification time), so a changed source is staged again into a new folder;
- one job at a time copies (an exclusive ``fcntl`` lock on ``<name>.lock``); the others wait
  on the lock and then find the copy done;
- the copy is made in a temporary folder, checked (sizes, or SHA-256 on request), marked
  with ``staged.json`` and renamed into place in one step: a killed copy leaves only a
  temporary folder (removed by the next stager), never a folder that looks complete;
- a staged folder is trusted only when its ``staged.json`` matches the fingerprint and every
  file has the recorded size.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from sora_tta.hashing import file_sha256
from sora_tta.layout import CheckpointLayout

logger = logging.getLogger(__name__)

MARKER = "staged.json"
TMP_PREFIX = ".staging-"
VERIFY_MODES = ("size", "sha256")


class StagingError(RuntimeError):
    """A checkpoint could not be staged; the message names the file."""


def generation_files(source: Path) -> list[Path]:
    """The files ``sora-tta generate`` loads, relative to the checkpoint folder."""
    layout = CheckpointLayout(source)
    return [layout.mmdit.relative_to(source), layout.vae.relative_to(source)]


def _entries(source: Path, files: Sequence[Path]) -> list[dict[str, object]]:
    entries = []
    for rel in files:
        path = source / rel
        try:
            stat = path.stat()
        except FileNotFoundError as err:
            raise StagingError(f"{path}: checkpoint file not found") from err
        entries.append({"path": str(rel), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return entries


def fingerprint(entries: list[dict[str, object]]) -> str:
    """Short hash of the source files' paths, sizes and modification times."""
    text = json.dumps(entries, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_complete(folder: Path, expected: str) -> bool:
    """Whether ``folder`` is a finished copy with fingerprint ``expected``."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("fingerprint") != expected:
        return False
    for entry in marker.get("files", []):
        path = folder / entry["path"]
        if not path.is_file() or path.stat().st_size != entry["size"]:
            return False
    return True


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (created if needed), released on exit."""
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _copy(
    source: Path, tmp: Path, entries: list[dict[str, object]], verify: str, digest: str
) -> None:
    entries = [dict(entry) for entry in entries]
    for entry in entries:
        rel = Path(str(entry["path"]))
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
        size = target.stat().st_size
        if size != entry["size"]:
            raise StagingError(f"{source / rel}: copied {size} bytes, expected {entry['size']}")
        if verify == "sha256":
            entry["sha256"] = file_sha256(source / rel)
            if file_sha256(target) != entry["sha256"]:
                raise StagingError(f"{source / rel}: the copy's SHA-256 differs from the source")
    with open(tmp / MARKER, "w") as handle:
        json.dump({"source": str(source), "fingerprint": digest, "files": entries}, handle)
        handle.flush()
        os.fsync(handle.fileno())


def stage_checkpoints(
    source: str | os.PathLike[str],
    stage_dir: str | os.PathLike[str],
    *,
    files: Sequence[str | os.PathLike[str]] | None = None,
    verify: str = "size",
) -> Path:
    """Copy the checkpoint files of ``source`` under ``stage_dir`` once; return the copy.

    ``stage_dir`` may contain environment variables (expanded here, on the node).
    ``files`` are relative to ``source`` (default: the MMDiT and the VAE).
    """
    if verify not in VERIFY_MODES:
        raise StagingError(f"verify must be one of {list(VERIFY_MODES)}, got {verify!r}")
    source = Path(source).resolve()
    root = Path(os.path.expandvars(os.fspath(stage_dir))).expanduser()
    rel_files = [Path(f) for f in files] if files is not None else generation_files(source)
    entries = _entries(source, rel_files)
    digest = fingerprint(entries)
    dest = root / f"{source.name}-{digest}"
    if is_complete(dest, digest):
        return dest  # the common case: staged by an earlier job, no lock needed
    root.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    with file_lock(root / f"{dest.name}.lock"):
        if is_complete(dest, digest):
            return dest  # another job finished the copy while this one waited
        # Leftovers of killed copies (only the lock holder copies, so none is in use).
        for stale in root.glob(f"{TMP_PREFIX}{dest.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if dest.exists():  # a folder without a valid marker: never trusted, replaced
            shutil.rmtree(dest)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{dest.name}-", dir=root))
        try:
            _copy(source, tmp, entries, verify, digest)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    size = sum(int(e["size"]) for e in entries) / 2**30
    logger.info(
        "staged %s (%.2f GiB) to %s in %.1f s", source, size, dest, time.perf_counter() - begin
    )
    return dest


def staged_or_source(source: Path, stage_dir: str | None) -> Path:
    """The staged copy of ``source`` when ``stage_dir`` is set, else ``source`` itself.

    A failed copy (node-local disk full, unwritable) costs only the speed-up: the job loads
    from ``source`` (a missing checkpoint then fails there, naming the file).
    """
    if not stage_dir:
        return source
    try:
        return stage_checkpoints(source, stage_dir)
    except (StagingError, OSError) as err:
        logger.warning("staging to %s failed, loading from %s: %s", stage_dir, source, err)
        return source
