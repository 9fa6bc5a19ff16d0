"""Snakemake's own command line and output as the workflow reads them: dry run or not,
forced rules, job counts, lint advice that is accepted."""

from __future__ import annotations

import re
from collections.abc import Iterable


def is_dry_run(argv: Iterable[str]) -> bool:
    """Whether a snakemake command line asks for a dry run (``-n``, also combined as in
    ``-np``, ``--dry-run``, ``--dryrun``, ``--just-print``). Snakemake decides its executor
    only after the Snakefile is read, so the preflight has to read the command line."""
    for arg in argv:
        if arg == "--":
            break
        if arg in ("--dry-run", "--dryrun", "--just-print"):
            return True
        if re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg):
            return True
    return False


def forced_rules(argv: Iterable[str]) -> set[str]:
    """The targets named after ``-R`` / ``--forcerun`` on a snakemake command line."""
    forced: set[str] = set()
    taking = False
    for arg in argv:
        if arg in ("-R", "--forcerun"):
            taking = True
        elif arg.startswith("-"):
            taking = False
        elif taking:
            forced.add(arg)
    return forced


#: ``snakemake --lint`` advice this workflow does not take: the rules run in the environment
#: that runs Snakemake (no per-rule conda environments, see workflow/rules/common.smk).
ACCEPTED_LINTS = ("Specify a conda environment or container for each rule.",)


def unexpected_lints(text: str, accepted: Iterable[str] = ACCEPTED_LINTS) -> list[str]:
    """The lints of ``snakemake --lint`` output other than ``accepted``, as "where: lint"."""
    found, where = [], ""
    for line in text.splitlines():
        if line.startswith("Lints for "):
            where = line.removeprefix("Lints for ").rstrip(":")
        elif line.startswith("    * ") and where:
            title = line.removeprefix("    * ").rstrip(":")
            if title not in accepted:
                found.append(f"{where}: {title}")
    return found


def parse_job_counts(text: str) -> dict[str, int]:
    """The last 'Job stats' table of Snakemake output as {rule: count} ({} if none)."""
    counts: dict[str, int] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Job stats:"):
            in_table, counts = True, {}
            continue
        if in_table:
            match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
            if match:
                counts[match.group(1)] = int(match.group(2))
            elif counts and not line.strip():
                in_table = False
    return counts
