"""UCF-101 split lists and reproducible video selection.

Official files (folder ``ucfTrainTestlist/``):

- ``classInd.txt``: ``<index> <ClassName>`` per line, indices 1..101.
- ``testlist0{1,2,3}.txt``: ``<ClassName>/v_<ClassName>_gNN_cMM.avi`` per line.
- ``trainlist0{1,2,3}.txt``: the same followed by `` <index>``.

The official files use CRLF line endings and one class directory whose case differs
from its file names (``HandstandPushups/v_HandStandPushups_g01_c01.avi``), so class
names are matched case-insensitively and the directory spelling is kept as the path.

Selection (:func:`select_videos`) is deterministic for a seed and independent of the
order of the input lines: every class gets its own random stream derived from the seed
and the class name, and clips are taken round-robin over the class's groups (``gNN``:
same actor and scene) in a random group order, so a sample spreads over groups before
it takes a second clip of any group; ``max_per_group`` caps clips per group.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SPLITS = (1, 2, 3)
SUBSETS = ("test", "train")

#: The 101 class names in ``classInd.txt`` order (index = position + 1).
CLASS_NAMES: tuple[str, ...] = (
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam",
    "BandMarching", "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress",
    "Biking", "Billiards", "BlowDryHair", "BlowingCandles", "BodyWeightSquats",
    "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth",
    "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot", "CuttingInKitchen",
    "Diving", "Drumming", "Fencing", "FieldHockeyPenalty", "FloorGymnastics",
    "FrisbeeCatch", "FrontCrawl", "GolfSwing", "Haircut", "Hammering",
    "HammerThrow", "HandstandPushups", "HandstandWalking", "HeadMassage", "HighJump",
    "HorseRace", "HorseRiding", "HulaHoop", "IceDancing", "JavelinThrow",
    "JugglingBalls", "JumpingJack", "JumpRope", "Kayaking", "Knitting",
    "LongJump", "Lunges", "MilitaryParade", "Mixing", "MoppingFloor",
    "Nunchucks", "ParallelBars", "PizzaTossing", "PlayingCello", "PlayingDaf",
    "PlayingDhol", "PlayingFlute", "PlayingGuitar", "PlayingPiano", "PlayingSitar",
    "PlayingTabla", "PlayingViolin", "PoleVault", "PommelHorse", "PullUps",
    "Punch", "PushUps", "Rafting", "RockClimbingIndoor", "RopeClimbing",
    "Rowing", "SalsaSpin", "ShavingBeard", "Shotput", "SkateBoarding",
    "Skiing", "Skijet", "SkyDiving", "SoccerJuggling", "SoccerPenalty",
    "StillRings", "SumoWrestling", "Surfing", "Swing", "TableTennisShot",
    "TaiChi", "TennisSwing", "ThrowDiscus", "TrampolineJumping", "Typing",
    "UnevenBars", "VolleyballSpiking", "WalkingWithDog", "WallPushups", "WritingOnBoard",
    "YoYo",
)  # fmt: skip

VIDEO_ID_RE = re.compile(r"^v_(?P<cls>[A-Za-z0-9]+)_g(?P<group>\d+)_c(?P<clip>\d+)$")


class SplitError(ValueError):
    """A split or list file is missing or malformed (the message names the file and line)."""


@dataclass(frozen=True)
class VideoEntry:
    """One UCF-101 clip as listed in a split file."""

    video_id: str  #: ``v_ApplyEyeMakeup_g01_c01``
    class_name: str  #: spelling of ``classInd.txt``
    class_index: int  #: 1-based label of ``classInd.txt``
    group: int
    clip: int
    relpath: str  #: ``ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`` (as listed)


@dataclass(frozen=True)
class SelectionConfig:
    """How many videos to pick: all (both counts ``None``), ``per_class`` or ``total``."""

    per_class: int | None = None
    total: int | None = None
    max_per_group: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_class is not None and self.total is not None:
            raise ValueError("choose per_class or total, not both")
        for name in ("per_class", "total", "max_per_group"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")


def parse_video_id(video_id: str) -> tuple[str, int, int]:
    """Split ``v_<Class>_gNN_cMM`` into ``(class_name, group, clip)`` (``ValueError`` if not)."""
    match = VIDEO_ID_RE.match(video_id)
    if match is None:
        raise ValueError(f"not a UCF-101 video name (v_<Class>_gNN_cMM): {video_id!r}")
    return match["cls"], int(match["group"]), int(match["clip"])


def split_file(splits_dir: str | os.PathLike[str], split: int, subset: str) -> Path:
    """Path of the official list of ``subset`` (``test``/``train``) for ``split`` (1-3)."""
    if split not in SPLITS:
        raise ValueError(f"split must be 1, 2 or 3, got {split}")
    if subset not in SUBSETS:
        raise ValueError(f"subset must be 'test' or 'train', got {subset!r}")
    return Path(splits_dir) / f"{subset}list{split:02d}.txt"


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty stripped lines with 1-based line numbers; handles CRLF and a BOM."""
    if not path.is_file():
        raise SplitError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise SplitError(f"{path}: cannot read ({err})") from err
    return [
        (number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()
    ]


def read_class_index(path: str | os.PathLike[str]) -> dict[str, int]:
    """Read ``classInd.txt`` into ``{ClassName: index}`` (indices must be 1..N, names unique)."""
    path = Path(path)
    classes: dict[str, int] = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitError(f"{path}:{number}: expected '<index> <ClassName>', got {line!r}")
        index, name = int(parts[0]), parts[1]
        if name.lower() in {known.lower() for known in classes}:
            raise SplitError(f"{path}:{number}: class {name!r} listed twice")
        if index != len(classes) + 1:
            raise SplitError(f"{path}:{number}: expected index {len(classes) + 1}, got {index}")
        classes[name] = index
    if not classes:
        raise SplitError(f"{path}: no classes listed")
    return classes


def _entry_from_relpath(
    relpath: str, classes_lower: dict[str, tuple[str, int]], where: str
) -> VideoEntry:
    parts = relpath.replace("\\", "/").split("/")
    if len(parts) != 2 or not parts[1].lower().endswith(".avi"):
        raise SplitError(
            f"{where}: expected '<ClassName>/v_<ClassName>_gNN_cMM.avi', got {relpath!r}"
        )
    folder, filename = parts
    video_id = filename[: -len(".avi")]
    try:
        file_class, group, clip = parse_video_id(video_id)
    except ValueError as err:
        raise SplitError(f"{where}: {err}") from err
    if folder.lower() != file_class.lower():
        raise SplitError(f"{where}: folder {folder!r} does not match file class {file_class!r}")
    if folder.lower() not in classes_lower:
        raise SplitError(f"{where}: class {folder!r} is not in classInd.txt")
    class_name, class_index = classes_lower[folder.lower()]
    return VideoEntry(video_id, class_name, class_index, group, clip, f"{folder}/{filename}")


def read_split_list(
    path: str | os.PathLike[str], classes: dict[str, int], labelled: bool | None = None
) -> list[VideoEntry]:
    """Read a ``testlist``/``trainlist`` file; ``labelled`` (default: from the name) expects labels.

    Train lines carry the 1-based class index, which must agree with ``classes``.
    """
    path = Path(path)
    if labelled is None:
        labelled = path.name.startswith("trainlist")
    classes_lower = {name.lower(): (name, index) for name, index in classes.items()}
    entries: list[VideoEntry] = []
    seen: set[str] = set()
    for number, line in _lines(path):
        where = f"{path}:{number}"
        parts = line.split()
        if len(parts) != (2 if labelled else 1):
            form = "<Class>/<video>.avi <label>" if labelled else "<Class>/<video>.avi"
            raise SplitError(f"{where}: expected '{form}', got {line!r}")
        entry = _entry_from_relpath(parts[0], classes_lower, where)
        if labelled and (not parts[1].isdigit() or int(parts[1]) != entry.class_index):
            raise SplitError(
                f"{where}: label {parts[1]!r} does not match class index {entry.class_index} "
                f"of {entry.class_name}"
            )
        if entry.video_id in seen:
            raise SplitError(f"{where}: {entry.video_id} listed twice")
        seen.add(entry.video_id)
        entries.append(entry)
    return entries


def load_split(
    splits_dir: str | os.PathLike[str], split: int, subset: str = "test"
) -> list[VideoEntry]:
    """Read ``classInd.txt`` and the list of ``subset`` of ``split`` from ``splits_dir``."""
    classes = read_class_index(Path(splits_dir) / "classInd.txt")
    return read_split_list(split_file(splits_dir, split, subset), classes)


def read_list_file(path: str | os.PathLike[str], candidates: list[VideoEntry]) -> list[VideoEntry]:
    """Restrict ``candidates`` to the videos named in ``path``.

    Each line is a video id (``v_X_g01_c01``), a file name or a split-list style path
    (``X/v_X_g01_c01.avi``, an optional trailing label is ignored); ``#`` starts a comment.
    Every listed video must be among ``candidates`` (the chosen split and subset).
    """
    path = Path(path)
    by_id = {entry.video_id.lower(): entry for entry in candidates}
    chosen: dict[str, VideoEntry] = {}
    for number, line in _lines(path):
        token = line.split("#", 1)[0].split()
        if not token:
            continue
        name = token[0].replace("\\", "/").rsplit("/", 1)[-1]
        video_id = name[: -len(".avi")] if name.lower().endswith(".avi") else name
        try:
            parse_video_id(video_id)
        except ValueError as err:
            raise SplitError(f"{path}:{number}: {err}") from err
        entry = by_id.get(video_id.lower())
        if entry is None:
            raise SplitError(f"{path}:{number}: {video_id} is not in the selected split/subset")
        chosen[entry.video_id] = entry
    if not chosen:
        raise SplitError(f"{path}: no videos listed")
    return sorted(chosen.values(), key=_order_key)


def _order_key(entry: VideoEntry) -> tuple[int, int, int, str]:
    return entry.class_index, entry.group, entry.clip, entry.video_id


def _class_rng(seed: int, class_name: str) -> np.random.Generator:
    # crc32 is stable across processes (unlike hash()), so a class's draw depends only on
    # the seed and its own name, not on which other classes are present.
    return np.random.default_rng([seed, zlib.crc32(class_name.encode())])


def _class_order(
    entries: list[VideoEntry], rng: np.random.Generator, max_per_group: int | None
) -> list[VideoEntry]:
    """Clips of one class in selection order: round-robin over randomly ordered groups."""
    groups: dict[int, list[VideoEntry]] = defaultdict(list)
    for entry in sorted(entries, key=_order_key):
        groups[entry.group].append(entry)
    group_ids = sorted(groups)
    group_order = [group_ids[i] for i in rng.permutation(len(group_ids))]
    queues = [[groups[g][i] for i in rng.permutation(len(groups[g]))] for g in group_order]
    rounds = max(len(q) for q in queues)
    if max_per_group is not None:
        rounds = min(rounds, max_per_group)
    return [queue[r] for r in range(rounds) for queue in queues if r < len(queue)]


def select_videos(entries: list[VideoEntry], config: SelectionConfig) -> list[VideoEntry]:
    """Pick videos from ``entries`` per ``config``; result sorted by class, group and clip.

    ``per_class=N`` takes N per class (all of a class that has fewer, with a warning);
    ``total=N`` spreads N over classes as evenly as their available clips allow, the
    remainder going to a seeded random subset of classes. ``ValueError`` when ``total``
    exceeds the available (group-limited) clips.
    """
    by_class: dict[str, list[VideoEntry]] = defaultdict(list)
    for entry in entries:
        by_class[entry.class_name].append(entry)
    class_names = sorted(by_class, key=lambda name: by_class[name][0].class_index)
    ordered = {
        name: _class_order(by_class[name], _class_rng(config.seed, name), config.max_per_group)
        for name in class_names
    }
    if config.per_class is not None:
        quota = {name: min(config.per_class, len(ordered[name])) for name in class_names}
        for name in class_names:
            if quota[name] < config.per_class:
                log.warning(
                    "class %s has only %d eligible videos (< per_class %d)",
                    name, quota[name], config.per_class,
                )  # fmt: skip
    elif config.total is not None:
        quota = _spread(
            config.total, {name: len(ordered[name]) for name in class_names}, config.seed
        )
    else:
        quota = {name: len(ordered[name]) for name in class_names}
    chosen = [entry for name in class_names for entry in ordered[name][: quota[name]]]
    return sorted(chosen, key=_order_key)


def _spread(total: int, available: dict[str, int], seed: int) -> dict[str, int]:
    """Split ``total`` over classes as evenly as ``available`` allows (seeded tie-break)."""
    capacity = sum(available.values())
    if total > capacity:
        raise ValueError(f"total {total} exceeds the {capacity} eligible videos")
    names = sorted(available)
    order = [names[i] for i in np.random.default_rng([seed, 1]).permutation(len(names))]
    quota = dict.fromkeys(names, 0)
    remaining = total
    while remaining:
        for name in order:
            if remaining and quota[name] < available[name]:
                quota[name] += 1
                remaining -= 1
    return quota


def group_key(entry: VideoEntry) -> tuple[str, int]:
    """The UCF-101 group of a clip: (class, gNN). Clips of one group share actor and scene."""
    return entry.class_name.lower(), entry.group


def select_validation(
    candidates: list[VideoEntry], test_entries: list[VideoEntry], config: SelectionConfig
) -> list[VideoEntry]:
    """Pick the validation videos from ``candidates`` (e.g. ``trainlist01``), never from a
    group of ``test_entries`` (the whole test list, not only the selected clips).

    Official splits already keep train and test groups apart; the exclusion makes the
    guarantee hold for any list the configuration names. Selection as :func:`select_videos`.
    """
    taken = {group_key(e) for e in test_entries}
    eligible = [e for e in candidates if group_key(e) not in taken]
    if len(eligible) < len(candidates):
        log.info(
            "validation: %d of %d candidates dropped (their group is in the test list)",
            len(candidates) - len(eligible),
            len(candidates),
        )
    return select_videos(eligible, config)


def check_disjoint_groups(validation: list[VideoEntry], test: list[VideoEntry]) -> None:
    """Raise :class:`SplitError` naming the shared groups when validation and test overlap."""
    shared = sorted({group_key(e) for e in validation} & {group_key(e) for e in test})
    if shared:
        names = ", ".join(f"{cls} g{group:02d}" for cls, group in shared[:10])
        raise SplitError(
            f"validation and test share {len(shared)} UCF-101 group(s): {names}; "
            "clips of one group show the same actors and scene"
        )
