"""Where a study stands, per video and method, and the command that redoes chosen videos.

:func:`collect` reads the manifest, the generation outputs, the job logs and Snakemake's
metadata (``.snakemake/metadata``: finished jobs; ``.snakemake/incomplete``: jobs that started
and did not finish) of a workflow directory and classifies every (method, video):

- ``done``: the generated video and its ``meta.json`` exist and no job is marked incomplete;
- ``failed``: the generation recorded a deterministic failure (``meta.json`` with
  ``"outcome": "failed"``: divergence, non-finite samples), or an output is missing and
  the job's log has an error line (the detail is the
  last one; the SLURM job id comes from ``.snakemake/slurm_logs`` when the job ran there),
  or the job is marked incomplete (killed mid-way);
- ``pending``: no output and no log yet (never run), or the output was deleted after its job
  finished (a record or a log without any error: Snakemake records failed jobs too);
- ``excluded``: the manifest did not keep the video (status and reason of the manifest).

A method has rows only for the videos it runs on: exploratory variants (``analysis`` column
of the methods table) only on the manifest's validation videos when there are any
(:func:`sora_tta.data.manifest.method_runs_on`).

:func:`rerun_command` builds the Snakemake command that regenerates chosen videos for every
method and everything behind them (evaluation of their classes, aggregate, figures, report
pages): ``--forcerun`` on their generation files (and on their clip when it is missing), which
also covers finished or deleted videos that a plain run would leave alone.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from sora_tta.io import write_text_atomic
from sora_tta.layout import (
    CLIPS,
    GENERATIONS,
    LOGS,
    MANIFEST,
    METHODS_TABLE,
    SLURM_LOGS,
)
from sora_tta.study.variants import BASELINE

STATES = ("done", "failed", "pending", "excluded")
_ERROR = re.compile(r"error|exception|traceback|killed|cancelled|out of memory", re.I)


class StatusError(ValueError):
    """The workflow directory cannot be read (the message names the file)."""


@dataclass(frozen=True)
class VideoStatus:
    """The state of one (method, video)."""

    method: str
    video_id: str
    class_name: str
    state: str
    detail: str = ""
    slurm_job_id: str = ""
    log: str = ""


def generation_files(method: str, video: str) -> tuple[str, str]:
    """The generation job's output, ``meta.json`` (what Snakemake records and ``--forcerun``
    names), and the generated video (relative to the workflow directory)."""
    folder = f"{GENERATIONS}/{method}/{video}"
    return f"{folder}/meta.json", f"{folder}/video.mkv"


def rule_and_log(method: str, video: str) -> tuple[str, str]:
    """The rule that generates (method, video) and its log file."""
    if method == BASELINE:
        return "generate_baseline", f"{LOGS}/generate_baseline/{video}.log"
    return "generate_tta", f"{LOGS}/generate_tta/{method}/{video}.log"


def read_methods(workdir: Path) -> dict[str, str]:
    """Method id -> analysis (``baseline``, ``final``, ``exploratory``) of the run: the
    methods table (every variant ``final`` in a table without that column), else the folders
    under generations/ (all ``final``)."""
    table = workdir / METHODS_TABLE
    if table.exists():
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        return {
            r["method"]: r.get("analysis") or (BASELINE if r["method"] == BASELINE else "final")
            for r in rows
        }
    folder = workdir / GENERATIONS
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return {name: "final" for name in names}


def read_manifest_rows(workdir: Path) -> list[dict[str, str]]:
    """The manifest's rows (video_id, class_name, status, reason, ...)."""
    path = workdir / MANIFEST
    if not path.exists():
        raise StatusError(f"{path}: no manifest yet (run the workflow first)")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"video_id", "class_name", "status", "reason"} - set(rows[0] if rows else {})
    if rows and missing:
        raise StatusError(f"{path}: missing columns {sorted(missing)}")
    return rows


def snakemake_records(workdir: Path, kind: str) -> dict[str, float]:
    """{output path: record time} of Snakemake's per-file records under ``.snakemake/kind``
    (``metadata``: finished jobs; ``incomplete``: started, not finished). A record's name is
    the url-safe base64 of the path, split into 255-character folder levels marked by "@"."""
    root = workdir / ".snakemake" / kind
    found: dict[str, float] = {}
    if root.is_dir():
        for record in root.rglob("*"):
            if record.is_file():
                encoded = "".join(p.removeprefix("@") for p in record.relative_to(root).parts)
                try:
                    found[base64.urlsafe_b64decode(encoded).decode()] = record.stat().st_mtime
                except (ValueError, UnicodeDecodeError):
                    continue
    return found


def slurm_job_ids(workdir: Path) -> dict[tuple[str, str], str]:
    """{(rule, wildcard text): latest SLURM job id} from the plugin's log folders."""
    root = workdir / SLURM_LOGS
    ids: dict[tuple[str, str], tuple[float, str]] = {}
    if root.is_dir():
        for log in root.glob("rule_*/**/*.log"):
            rule = log.relative_to(root).parts[0].removeprefix("rule_")
            key = (rule, "/".join(log.relative_to(root).parts[1:-1]))
            mtime = log.stat().st_mtime
            if key not in ids or mtime > ids[key][0]:
                ids[key] = (mtime, log.stem)
    return {key: job for key, (_, job) in ids.items()}


def find_job_id(ids: dict[tuple[str, str], str], rule: str, method: str, video: str) -> str:
    """The SLURM job id of a generation (the plugin names folders after the wildcards)."""
    for (job_rule, wildcards), job in ids.items():
        if (
            job_rule == rule
            and video in wildcards
            and (rule != "generate_tta" or method in wildcards)
        ):
            return job
    return ""


def error_line(log: Path) -> str:
    """The last line of a log that reads like an error ("" when there is none)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError as err:
        return f"log unreadable ({err.strerror or err})"
    errors = [line for line in lines if line and _ERROR.search(line)]
    return errors[-1][:300] if errors else ""


def failed_outcome(meta: Path) -> str:
    """What a generation recorded as its deterministic failure (divergence, non-finite
    samples: ``"outcome": "failed"`` in its ``meta.json``, a final result that reruns would
    repeat), or "" when it recorded none."""
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(record, dict) or record.get("outcome") != "failed":
        return ""
    return f"outcome failed at {record.get('stage')}: {record.get('error')}"


def collect(workdir: Path) -> list[VideoStatus]:
    """The state of every (method, video) of the run in ``workdir``."""
    rows = read_manifest_rows(workdir)
    methods = read_methods(workdir)
    if not methods:
        raise StatusError(f"{workdir / METHODS_TABLE}: no methods yet (run the workflow first)")
    incomplete = snakemake_records(workdir, "incomplete")
    finished = snakemake_records(workdir, "metadata")
    job_ids = slurm_job_ids(workdir)
    from sora_tta.data.manifest import ROLE_TEST, ROLE_VALIDATION, method_runs_on

    final = [m for m, analysis in methods.items() if analysis == "final"]
    has_validation = any(r.get("role") == ROLE_VALIDATION and r["status"] == "ok" for r in rows)
    statuses = []
    for method in methods:
        roles = method_runs_on(method, final, has_validation, BASELINE)
        for row in rows:
            video, class_name = row["video_id"], row["class_name"]
            if (row.get("role") or ROLE_TEST) not in roles:
                continue
            if row["status"] != "ok":
                detail = f"{row['status']}: {row['reason']}".rstrip(": ")
                statuses.append(VideoStatus(method, video, class_name, "excluded", detail))
                continue
            rule, log_rel = rule_and_log(method, video)
            outputs = generation_files(method, video)
            job = find_job_id(job_ids, rule, method, video)
            log = workdir / log_rel
            if set(outputs) & set(incomplete):
                state, detail = "failed", "incomplete: the job was killed before it finished"
            elif all((workdir / out).exists() for out in outputs):
                state, detail = "done", ""
            elif failed_outcome(workdir / outputs[0]):
                state, detail = "failed", failed_outcome(workdir / outputs[0])
            elif log.exists() and error_line(log):
                state, detail = "failed", error_line(log)
            elif outputs[0] in finished or log.exists():
                # Snakemake keeps a record of failed jobs too: the log tells them apart
                state, detail = "pending", "finished once, output deleted since"
            else:
                state, detail = "pending", ""
            shown_log = log_rel if log.exists() else ""
            statuses.append(VideoStatus(method, video, class_name, state, detail, job, shown_log))
    return statuses


def write_tsv(statuses: Sequence[VideoStatus], path: Path) -> None:
    """One row per (method, video), columns as :class:`VideoStatus` (atomic)."""
    columns = [f.name for f in fields(VideoStatus)]
    lines = ["\t".join(columns)]
    for status in statuses:
        values = asdict(status)
        lines.append("\t".join(str(values[c]).replace("\t", " ") for c in columns))
    write_text_atomic(path, "\n".join(lines) + "\n")


def summary(statuses: Sequence[VideoStatus]) -> str:
    """Per method: counts of each state, then the failed videos with their error."""
    out = []
    methods = list(dict.fromkeys(s.method for s in statuses))
    width = max([len(m) for m in methods] + [6])
    out.append(f"{'method':<{width}}  " + "  ".join(f"{s:>8}" for s in STATES))
    for method in methods:
        counts = Counter(s.state for s in statuses if s.method == method)
        out.append(f"{method:<{width}}  " + "  ".join(f"{counts[s]:>8}" for s in STATES))
    failed = [s for s in statuses if s.state == "failed"]
    if failed:
        out.append("")
        out.append("failed:")
        for s in failed:
            job = f" [SLURM job {s.slurm_job_id}]" if s.slurm_job_id else ""
            where = f" ({s.log})" if s.log else ""
            out.append(f"  {s.method} {s.video_id}{job}: {s.detail}{where}")
    excluded = [s for s in statuses if s.state == "excluded" and s.method == methods[0]]
    if excluded:
        out.append("")
        out.append("excluded by the manifest (every method):")
        out.extend(f"  {s.video_id}: {s.detail}" for s in excluded)
    return "\n".join(out)


def select_videos(statuses: Sequence[VideoStatus], selectors: Iterable[str]) -> list[str]:
    """Video ids chosen by ``FAILED`` (any method failed), video ids or class names."""
    usable = [s for s in statuses if s.state != "excluded"]
    videos = list(dict.fromkeys(s.video_id for s in usable))
    classes = {s.class_name for s in usable}
    excluded = {s.video_id for s in statuses if s.state == "excluded"}
    chosen: list[str] = []
    for selector in selectors:
        if selector == "FAILED":
            chosen += [s.video_id for s in usable if s.state == "failed"]
        elif selector in videos:
            chosen.append(selector)
        elif selector in classes:
            chosen += [s.video_id for s in usable if s.class_name == selector]
        elif selector in excluded:
            raise StatusError(f"{selector}: excluded by the manifest, nothing to regenerate")
        else:
            raise StatusError(
                f"{selector!r} is neither FAILED, a usable video id nor a class of the manifest"
            )
    return list(dict.fromkeys(chosen))


def rerun_targets(
    workdir: Path, statuses: Sequence[VideoStatus], videos: Sequence[str]
) -> list[str]:
    """Files to force: each video's generation for every method that runs on it (a row of
    ``statuses``), its clip when missing."""
    targets = []
    for video in videos:
        clip = f"{CLIPS}/{video}.mkv"
        if not (workdir / clip).exists():
            targets.append(clip)
        targets += [
            generation_files(s.method, video)[0]
            for s in statuses
            if s.video_id == video and s.state != "excluded"
        ]
    return targets


def rerun_command(
    workdir: Path,
    statuses: Sequence[VideoStatus],
    videos: Sequence[str],
    snakemake_args: Sequence[str] = (),
    snakemake: str = "snakemake",
) -> list[str]:
    """The Snakemake command regenerating ``videos`` (every method that runs on them, from
    ``statuses``) and what depends on them.

    ``--forcerun`` reruns the jobs of those files even when they are finished (or their
    folder was deleted, which a plain run ignores); their class's evaluations, the aggregate,
    the figures and the report pages then rerun because their inputs changed.
    """
    if not videos:
        raise StatusError("no video selected: nothing to rerun")
    command = [snakemake, *snakemake_args]
    if Path(workdir).resolve() != Path(os.getcwd()).resolve():
        command += ["--directory", str(workdir)]
    return [*command, "--forcerun", *rerun_targets(workdir, statuses, videos)]


def format_command(command: Sequence[str]) -> str:
    """A command as one shell line."""
    return shlex.join(command)
