"""The repository stands alone: no tracked file points at a path outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARENT_RUN = re.compile(r"(?:\.\./)+")
# Files whose relative paths are taken from the repository root (the working directory of
# make, snakemake and CI), not from the file's own folder.
ROOT_RELATIVE = ("Makefile", ".ci/", "config/", "profiles/")


def tracked_text_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    files = []
    for name in filter(None, listing.split("\0")):
        path = REPO / name
        data = path.read_bytes() if path.is_file() else b"\0"
        if b"\0" not in data[:8192]:
            files.append(path)
    return files


def escapes(path: Path, text: str) -> list[str]:
    """The parent-relative paths in ``text`` that resolve outside the repository."""
    relative = path.relative_to(REPO).as_posix()
    depth = 0 if relative.startswith(ROOT_RELATIVE) else relative.count("/")
    found = []
    for match in PARENT_RUN.finditer(text):
        if match.group().count("../") > depth:
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{relative}:{line}: {text[match.start() : match.end() + 30]!r}")
    return found


def test_no_tracked_file_points_outside_the_repository():
    problems = []
    for path in tracked_text_files():
        problems += escapes(path, path.read_text(errors="replace"))
    assert not problems, "\n".join(problems)


def test_escape_detection_can_fail():
    up = "../"  # the examples are built so this file does not trip the scan itself
    assert escapes(REPO / "README.md", f"see {up}shared/reference/README.md")
    assert escapes(REPO / "config" / "x.yaml", f"dir: {up}outside")
    assert not escapes(REPO / "docs" / "metrics.md", f"[readme]({up}README.md)")
    assert escapes(REPO / "docs" / "metrics.md", f"[x]({up * 2}elsewhere.md)")
