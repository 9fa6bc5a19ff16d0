"""Checks of the intermediates that jobs read, run before any job is scheduled.

Snakemake reruns every job whose input is newer than its outputs, and deletes those outputs
first. A corrupt intermediate (garbage in a method file, a truncated prompt embedding or
clip) is newer than everything built from it, so without these checks a plain rerun deletes
valid results and then fails on the corrupt file. The workflow's preflight therefore checks
the intermediates first and repairs what is derivable: the repaired file gets the time of the
oldest result built from it (its content is what those results were built from), so nothing
valid reruns.

No torch here: the Snakefile imports this module at DAG time.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sora_tta.io import write_json_atomic
from sora_tta.prompts import NEGATIVE_FILE, prompt_file

#: Encoded prompt files that the preflight removed, with the time to give the new file
#: (``encode-prompts`` applies and removes it): {file name: mtime in ns}.
RESTORE_TIMES_FILE = ".restore-times.json"
#: Files verified good, by (size, mtime_ns): a clip is decoded again only when it changed.
VERIFIED_FILE = ".verified.json"
#: A generation's outcome record (the job's declared output) and the video it vouches for.
GENERATION_RECORD, GENERATION_VIDEO = "meta.json", "video.mkv"


@dataclass(frozen=True)
class Problem:
    """One bad intermediate: the file, what is wrong, and what was or must be done."""

    path: str
    reason: str
    action: str

    def describe(self) -> str:
        return f"{self.path}: {self.reason} ({self.action})"


# ---------------------------------------------------------------- single-file checks
def method_file_problem(path: str | os.PathLike[str], settings: Mapping[str, Any]) -> str | None:
    """Why the method file at ``path`` is not the one ``settings`` imply (None: it is)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"not valid JSON ({err})"
    expected = json.loads(json.dumps(settings, sort_keys=True, default=str))
    if data != expected:
        return "differs from the settings the configuration implies"
    return None


def safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file size (ValueError)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{size} bytes, shorter than a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if length > size - 8:
            raise ValueError(f"truncated: header of {length} bytes in a file of {size}")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"header is not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    if max(ends, default=0) != size - 8 - length:
        raise ValueError(f"tensor data ends at byte {max(ends, default=0)}, file has "
                         f"{size - 8 - length} (truncated or padded)")  # fmt: skip
    return header


def prompt_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a prompt-embedding file cannot be what its name says (None: it can).

    Checks the layout (tensors ``txt`` (1, S, D) and ``y_vec`` (1, D_vec), complete data)
    and that the ``prompt`` metadata hashes to the file name (``negative`` for the empty
    negative prompt).
    """
    path = Path(path)
    try:
        header = safetensors_header(path)
    except (OSError, ValueError) as err:
        return f"not a readable safetensors file ({err})"
    shapes = {k: v.get("shape") for k, v in header.items() if k != "__metadata__"}
    txt, y_vec = shapes.get("txt"), shapes.get("y_vec")
    if not (isinstance(txt, list) and len(txt) == 3 and txt[0] == 1):
        return f"tensor 'txt' has shape {txt}, expected (1, S, D)"
    if not (isinstance(y_vec, list) and len(y_vec) == 2 and y_vec[0] == 1):
        return f"tensor 'y_vec' has shape {y_vec}, expected (1, D_vec)"
    prompt = (header.get("__metadata__") or {}).get("prompt")
    if prompt is None:
        return "metadata has no 'prompt'"
    expected = prompt_file(prompt)
    if path.name != expected:
        return f"holds the embedding of {prompt!r}, which belongs in {expected}"
    return None


def clip_problem(
    clip: str | os.PathLike[str], sidecar: str | os.PathLike[str]
) -> tuple[str | None, dict[str, Any] | None]:
    """(why ``clip`` does not hold the frames its sidecar describes, the sidecar content).

    The reason is None when the clip decodes to ``num_frames`` frames whose SHA-256 is the
    sidecar's ``frames_sha256``; the sidecar content is None when it is unreadable.
    """
    import numpy as np

    from sora_tta.data.video import VideoReadError, read_frames

    try:
        info = json.loads(Path(sidecar).read_text())
        expected_frames, expected_sha = int(info["num_frames"]), str(info["frames_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"its sidecar {sidecar} is unreadable ({err})", None
    try:
        frames = read_frames(clip)
    except VideoReadError as err:
        return str(err).removeprefix(f"{clip}: "), info
    if len(frames) != expected_frames:
        return f"decodes to {len(frames)} frames, its sidecar says {expected_frames}", info
    if hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest() != expected_sha:
        return "frames differ from the sidecar's frames_sha256", info
    return None, info


# ---------------------------------------------------------------- times and the cache
def oldest_mtime_ns(paths: Iterable[str | os.PathLike[str]]) -> int | None:
    """The oldest modification time of the existing ``paths`` (None: none exists)."""
    times = []
    for path in paths:
        try:
            times.append(os.stat(path).st_mtime_ns)
        except FileNotFoundError:
            continue
    return min(times, default=None)


def restore_time(
    path: str | os.PathLike[str],
    consumers: Iterable[str | os.PathLike[str]],
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> bool:
    """Give a repaired ``path`` the time of its oldest existing consumer output, so that
    outputs built from the same content do not look outdated; never older than its own
    ``inputs`` (its own job would rerun). Returns whether the time was set."""
    oldest = oldest_mtime_ns(consumers)
    newest_input = max((os.stat(p).st_mtime_ns for p in inputs if os.path.exists(p)), default=0)
    if oldest is None or oldest < newest_input or oldest >= os.stat(path).st_mtime_ns:
        return False
    os.utime(path, ns=(oldest, oldest))
    return True


class VerifiedCache:
    """Files found good, keyed by path with their (size, mtime_ns): checks are skipped for
    files unchanged since (a changed byte count or time means a new check)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.entries: dict[str, list[int]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    @staticmethod
    def _key(path: str | os.PathLike[str]) -> list[int]:
        stat = os.stat(path)
        return [stat.st_size, stat.st_mtime_ns]

    def is_verified(self, path: str | os.PathLike[str]) -> bool:
        return self.entries.get(str(path)) == self._key(path)

    def mark(self, path: str | os.PathLike[str]) -> None:
        self.entries[str(path)] = self._key(path)
        self.changed = True

    def forget(self, path: str | os.PathLike[str]) -> None:
        self.changed |= self.entries.pop(str(path), None) is not None

    def save(self) -> None:
        if self.changed:
            write_json_atomic(self.path, self.entries)
            self.changed = False


def read_restore_times(prompt_dir: str | os.PathLike[str]) -> dict[str, int]:
    """The pending {file name: mtime_ns} of re-encoded prompt files (empty when none)."""
    try:
        data = json.loads((Path(prompt_dir) / RESTORE_TIMES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def add_restore_times(prompt_dir: str | os.PathLike[str], times: Mapping[str, int]) -> None:
    """Record the times that ``encode-prompts`` gives the files it re-encodes."""
    if times:
        write_json_atomic(
            Path(prompt_dir) / RESTORE_TIMES_FILE, {**read_restore_times(prompt_dir), **times}
        )


# ---------------------------------------------------------------- the source listing
def source_listing(root: str | os.PathLike[str]) -> dict[str, list[int]]:
    """Every file under ``root``: {relative path: [size, mtime_ns]}."""
    root = Path(root)
    listing = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            stat = path.stat()
            listing[path.relative_to(root).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return dict(sorted(listing.items()))


def update_source_listing(root: str | os.PathLike[str], out: str | os.PathLike[str]) -> bool:
    """Write the listing of ``root`` to ``out`` when it differs from the one there (an input
    of the manifest: a video added, removed or replaced reruns the manifest). Returns
    whether it was written; an unchanged listing keeps its file and time."""
    listing = source_listing(root)
    try:
        if json.loads(Path(out).read_text()) == listing:
            return False
    except (OSError, ValueError):
        pass
    write_json_atomic(out, listing)
    return True


# ---------------------------------------------------------------- the preflight pass
@dataclass(frozen=True)
class Layout:
    """Where the intermediates and the results built from them are (format patterns)."""

    method_file: str  # {method}
    clip: str  # {video}
    sidecar: str  # {video}
    prompt_dir: str
    generation_dir: str  # {method}, {video}
    metrics: str  # {method}, {class_name}
    verified: str  # the VerifiedCache file
    aggregate_files: tuple[str, ...] = ()  # the tables built from every metrics file
    final_files: tuple[str, ...] = ()  # figures and report pages built from the tables


@dataclass(frozen=True)
class Video:
    """What the pass needs to know of one usable video."""

    class_name: str
    source: str
    prompt_file: str  # file name in the prompt folder


@dataclass
class Intermediates:
    """The study's intermediates as the configuration implies them."""

    layout: Layout
    methods: Mapping[str, Mapping[str, Any]]  # method id -> method-file content
    videos: Mapping[str, Video]
    method_inputs: tuple[str, ...] = ()  # inputs of the method-file rule (checkpoints)
    preprocess_command: tuple[str, ...] = ()  # sora-tta preprocess + options, no paths
    #: method id -> the videos it runs on (exploratory variants: the validation videos
    #: only); a method not listed runs on every video.
    method_videos: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def videos_of(self, method: str) -> list[str]:
        """The usable videos that ``method`` is generated and evaluated for."""
        chosen = self.method_videos.get(method)
        return list(self.videos) if chosen is None else [v for v in self.videos if v in chosen]

    def generation_files(self, methods: Iterable[str], videos: Iterable[str]) -> list[str]:
        """The existing files of the generations of ``methods`` x ``videos``."""
        found = []
        videos = list(videos)
        for method in methods:
            for video in videos:
                folder = Path(self.layout.generation_dir.format(method=method, video=video))
                if folder.is_dir():
                    found += [str(p) for p in folder.iterdir() if p.is_file()]
        return found


@dataclass
class Report:
    """Outcome of :func:`check_intermediates`: what was repaired and what must be."""

    repaired: list[Problem]
    unrepaired: list[Problem]

    def message(self) -> str:
        """One message listing every file that stops the run and its repair command."""
        lines = [f"{len(self.unrepaired)} corrupt intermediate(s) that the run cannot repair:"]
        lines += [f"  {p.describe()}" for p in self.unrepaired]
        return "\n".join(lines)


def _check_methods(inter: Intermediates, repair: bool) -> list[Problem]:
    problems = []
    for method, settings in inter.methods.items():
        path = inter.layout.method_file.format(method=method)
        if not os.path.exists(path):
            continue
        reason = method_file_problem(path, settings)
        if reason is None:
            continue
        action = "rewritten from the configuration"
        if repair:
            write_json_atomic(path, settings)
            if restore_time(path, inter.generation_files([method], inter.videos),
                            inter.method_inputs):  # fmt: skip
                action += ", time of its results restored"
        problems.append(Problem(path, reason, action if repair else "to be rewritten"))
    return problems


#: What a user runs to re-encode damaged or missing prompt embeddings (the checkpoint's
#: output is only the negative prompt's file: Snakemake does not notice the others).
PROMPT_REPAIR = "the same snakemake command with --forcerun encode_prompts"


def _check_prompts(inter: Intermediates, repair: bool, forced: bool) -> list[Problem]:
    """Damaged or missing prompt embeddings of usable videos. Re-encoding needs the text
    encoders (a GPU job), so the run stops and names the command, unless that command is
    this run (``forced``). The times of the results built from each file are recorded so
    that the re-encoded file (same prompt, same encoders) reruns nothing."""
    prompt_dir = Path(inter.layout.prompt_dir)
    if not prompt_dir.is_dir():
        return []
    problems, times = [], {}
    wanted = {row.prompt_file for row in inter.videos.values()} | {NEGATIVE_FILE}
    for name in sorted(wanted):
        path = prompt_dir / name
        reason = prompt_file_problem(path) if path.exists() else "missing"
        if reason is None:
            continue
        videos = [v for v, row in inter.videos.items() if name in (row.prompt_file, NEGATIVE_FILE)]
        times[name] = oldest_mtime_ns(inter.generation_files(inter.methods, videos))
        if times[name] is None:
            continue  # nothing built from it yet: its jobs read it (and name it) when they run
        action = "encode_prompts encodes it again" if forced else f"repair: {PROMPT_REPAIR}"
        problems.append(Problem(str(path), reason, action))
    if problems and repair:
        add_restore_times(prompt_dir, {k: v for k, v in times.items() if v is not None})
    return problems


def _rebuild_clip(inter: Intermediates, video: str, row: Video) -> tuple[Path, Path]:
    """Preprocess ``video`` again into temporary files next to its clip; returns their paths."""
    import subprocess

    clip = Path(inter.layout.clip.format(video=video))
    tmp_clip = clip.with_name(f".{clip.stem}.rebuild{clip.suffix}")
    tmp_sidecar = clip.with_name(f".{clip.stem}.rebuild.json")
    command = [*inter.preprocess_command, "--input", row.source, "--output", str(tmp_clip),
               "--sidecar", str(tmp_sidecar)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tmp_clip.unlink(missing_ok=True)
        tmp_sidecar.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"cannot rebuild it from {row.source}: {last}")
    return tmp_clip, tmp_sidecar


def _check_clips(inter: Intermediates, repair: bool, cache: VerifiedCache) -> list[Problem]:
    problems = []
    for video, row in inter.videos.items():
        clip = inter.layout.clip.format(video=video)
        sidecar = inter.layout.sidecar.format(video=video)
        absent = [p for p in (clip, sidecar) if not os.path.exists(p)]
        if not absent and cache.is_verified(clip) and cache.is_verified(sidecar):
            continue
        consumers = inter.generation_files(inter.methods, [video]) + [
            inter.layout.metrics.format(method=m, class_name=row.class_name) for m in inter.methods
        ]
        if absent:
            # Snakemake would not notice while what was built from it is up to date.
            if not any(os.path.exists(p) for p in consumers):
                continue
            reason, old = f"missing ({', '.join(absent)})", None
            if os.path.exists(sidecar):
                old = json.loads(Path(sidecar).read_text())
        else:
            reason, old = clip_problem(clip, sidecar)
            if reason is None:
                cache.mark(clip)
                cache.mark(sidecar)
                continue
        cache.forget(clip)
        if not repair:
            problems.append(Problem(clip, reason, "to be rebuilt from its source"))
            continue
        try:
            tmp_clip, tmp_sidecar = _rebuild_clip(inter, video, row)
        except RuntimeError as err:
            if absent:  # nothing is damaged: the run goes on (the manifest may drop it)
                problems.append(Problem(clip, f"{reason}; {err}", "not rebuilt"))
            else:
                command = f"rm {clip} {sidecar} && snakemake (the same command)"
                problems.append(Problem(clip, f"{reason}; {err}", f"repair: {command}"))
            continue
        new = json.loads(tmp_sidecar.read_text())
        same = old is not None and new["frames_sha256"] == old.get("frames_sha256")
        os.replace(tmp_clip, clip)
        if same:
            tmp_sidecar.unlink()
        else:
            os.replace(tmp_sidecar, sidecar)
        action = "rebuilt from its source"
        if same and restore_time(clip, consumers, [row.source]):
            action += " (same frames: time of its results restored)"
        elif not same:
            action += " (its results are rebuilt after it)"
        problems.append(Problem(clip, reason, action))
    return problems


def _check_generations(inter: Intermediates, repair: bool) -> list[Problem]:
    """A generation whose record says ``ok`` but whose video is gone is done again: its
    record is removed (Snakemake then reruns the job and what depends on it)."""
    problems = []
    for method in inter.methods:
        for video in inter.videos_of(method):
            folder = Path(inter.layout.generation_dir.format(method=method, video=video))
            meta = folder / GENERATION_RECORD
            if (folder / GENERATION_VIDEO).exists() or not meta.exists():
                continue
            try:
                outcome = json.loads(meta.read_text()).get("outcome")
            except (OSError, ValueError, AttributeError):
                outcome = None
            if outcome == "failed":
                continue
            if repair:
                meta.unlink()
            action = "its record meta.json removed: the generation runs again"
            problems.append(Problem(str(folder / GENERATION_VIDEO), "missing",
                                    action if repair else "to be generated again"))  # fmt: skip
    return problems


def remove_downstream(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Remove the existing ``paths``: results built from a missing one, up to the study's
    targets. Snakemake neither rebuilds a missing intermediate whose consumers are up to
    date nor reruns a job whose older outputs have inputs of unchanged checksums; a missing
    target makes it rebuild the whole chain. Returns what was removed."""
    removed = []
    for path in paths:
        if os.path.exists(path):
            os.unlink(path)
            removed.append(str(path))
    return removed


def _check_missing_results(inter: Intermediates, repair: bool) -> list[Problem]:
    """Missing results whose consumers are up to date: Snakemake would not rebuild them
    ("Nothing to be done"), so what was built from them is removed up to the targets, and
    the plain command rebuilds the missing result and everything after it."""
    layout, problems = inter.layout, []
    tables, targets = list(layout.aggregate_files), list(layout.final_files)

    def mark(missing: list[str], consumers: list[str]) -> None:
        if not missing or not any(os.path.exists(p) for p in consumers):
            return
        action = "rebuilt with what depends on it" if repair else "to be rebuilt"
        if repair:
            remove_downstream(consumers)
        problems.extend(Problem(p, "missing", action) for p in missing)

    missing_metrics = []
    for method in inter.methods:
        classes: dict[str, list[str]] = {}
        for video in inter.videos_of(method):
            classes.setdefault(inter.videos[video].class_name, []).append(video)
        for class_name, videos in classes.items():
            metrics = layout.metrics.format(method=method, class_name=class_name)
            records = [
                os.path.join(layout.generation_dir.format(method=method, video=v),
                             GENERATION_RECORD)
                for v in videos
            ]  # fmt: skip
            mark([r for r in records if not os.path.exists(r)], [metrics, *tables, *targets])
            if not os.path.exists(metrics):
                missing_metrics.append(metrics)
    mark(missing_metrics, [*tables, *targets])
    mark([p for p in tables if not os.path.exists(p)], targets)
    return problems


def check_intermediates(
    inter: Intermediates, repair: bool = True, prompts_forced: bool = False
) -> Report:
    """Check method files, prompt embeddings and clips; repair what is derivable.

    With ``repair`` False (a dry run) nothing is written and every problem is reported as
    unrepaired. Clips that cannot be rebuilt and damaged prompt embeddings (unless this run
    forces the prompt checkpoint) are left untouched and reported with the command that
    repairs them.
    """
    cache = VerifiedCache(inter.layout.verified)
    problems = _check_methods(inter, repair) + _check_prompts(inter, repair, prompts_forced)
    problems += _check_clips(inter, repair, cache) + _check_generations(inter, repair)
    problems += _check_missing_results(inter, repair)
    if repair:
        cache.save()
    bad = [p for p in problems if not repair or p.action.startswith("repair:")]
    return Report([p for p in problems if p not in bad], bad)
