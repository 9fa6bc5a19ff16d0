"""Captions for UCF-101 videos: class name -> action phrase -> caption.

``class_to_action`` splits a CamelCase class name into lower-case words
(``ApplyEyeMakeup`` -> ``apply eye makeup``, ``PlayingDaf`` -> ``playing daf``); runs of
capitals stay one upper-case acronym (``TVWatching`` -> ``TV watching``) and a doubled
word is hyphenated (``YoYo`` -> ``yo-yo``). A few UCF-101 names whose word split reads
wrongly have a fixed phrase (:data:`ACTION_PHRASES`, e.g. ``PushUps`` -> ``push-ups``,
``Skijet`` -> ``jet skiing``).

The caption is ``template.format(action=..., class_name=...)``. The default template is
``"{action}"``: UCF-101 class names mix verbs (``ApplyLipstick``), gerunds
(``PlayingCello``) and nouns (``Archery``), so no fixed sentence frame around them is
grammatical for all 101 classes, and the bare phrase is the usual UCF-101 prompt.

An override file maps a class name or a video id (``v_X_gNN_cMM``, takes precedence) to
the full caption (the template is not applied): YAML (``Class: caption``) or TSV
(``Class<TAB>caption`` per line, ``#`` comments).
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sora_tta.data.ucf101 import VIDEO_ID_RE

DEFAULT_TEMPLATE = "{action}"
TEMPLATE_FIELDS = frozenset({"action", "class_name"})

#: Fixed phrases for class names whose mechanical word split reads wrongly.
ACTION_PHRASES: dict[str, str] = {
    "BlowDryHair": "blow-dry hair",
    "HandstandPushups": "handstand push-ups",
    "PullUps": "pull-ups",
    "PushUps": "push-ups",
    "RockClimbingIndoor": "indoor rock climbing",
    "Shotput": "shot put",
    "SkateBoarding": "skateboarding",
    "Skijet": "jet skiing",
    "SkyDiving": "skydiving",
    "WallPushups": "wall push-ups",
}

_WORD_RE = re.compile(r"\d+[A-Z]*(?![a-z])|[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


class CaptionError(ValueError):
    """A caption template or override file is invalid (the message names the file)."""


def class_to_action(class_name: str) -> str:
    """Turn a UCF-101 class name into a lower-case action phrase."""
    if class_name in ACTION_PHRASES:
        return ACTION_PHRASES[class_name]
    words = _WORD_RE.findall(class_name)
    if not words:
        raise ValueError(f"cannot split class name {class_name!r} into words")
    # all-caps tokens of 2+ letters are acronyms and keep their case, as do "3D"-like ones
    words = [w if len(w) > 1 and w.isupper() else w.lower() for w in words]
    out: list[str] = []
    for word in words:
        if out and out[-1].split("-")[-1] == word:
            out[-1] = f"{out[-1]}-{word}"
        else:
            out.append(word)
    return " ".join(out)


def validate_template(template: str) -> str:
    """Check that ``template`` only uses ``{action}`` / ``{class_name}``; return it."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise CaptionError(f"caption template {template!r}: {err}") from err
    unknown = names - TEMPLATE_FIELDS
    if unknown or "" in names:
        bad = ", ".join(sorted(repr(n) for n in unknown)) or "'{}'"
        raise CaptionError(
            f"caption template {template!r}: unknown field {bad}; use {{action}} or {{class_name}}"
        )
    if not template.strip():
        raise CaptionError("caption template is empty")
    return template


def read_overrides(
    path: str | os.PathLike[str], class_names: list[str] | None = None
) -> dict[str, str]:
    """Read a YAML or TSV override file into ``{class name or video id: caption}``.

    Class-name keys must be known (``class_names``, case-sensitive as in classInd.txt)
    when ``class_names`` is given; captions must be non-empty strings.
    """
    path = Path(path)
    if not path.is_file():
        raise CaptionError(f"{path}: caption override file not found")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in {".yaml", ".yml"}:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise CaptionError(f"{path}: not valid YAML ({err})") from err
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise CaptionError(f"{path}: expected a mapping 'ClassName: caption'")
        items = [(str(key), value, f"{path}: key {key!r}") for key, value in data.items()]
    elif path.suffix.lower() in {".tsv", ".txt"}:
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) != 2:
                raise CaptionError(
                    f"{path}:{number}: expected 'ClassName<TAB>caption', got {line!r}"
                )
            items.append((parts[0].strip(), parts[1].strip(), f"{path}:{number}"))
    else:
        raise CaptionError(f"{path}: caption overrides must be .yaml, .yml or .tsv")
    known = set(class_names) if class_names is not None else None
    overrides: dict[str, str] = {}
    for key, value, where in items:
        if not isinstance(value, str) or not value.strip():
            raise CaptionError(f"{where}: caption must be a non-empty string, got {value!r}")
        if VIDEO_ID_RE.match(key) is None and known is not None and key not in known:
            raise CaptionError(f"{where}: {key!r} is neither a known class name nor a video id")
        if key in overrides:
            raise CaptionError(f"{where}: {key!r} given twice")
        overrides[key] = value.strip()
    return overrides


@dataclass(frozen=True)
class Captioner:
    """Makes the caption of a video from its class, the template and the overrides."""

    template: str = DEFAULT_TEMPLATE
    overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_template(self.template)

    def __call__(self, class_name: str, video_id: str | None = None) -> str:
        """Caption of ``video_id`` (or of any video of ``class_name``)."""
        if video_id is not None and video_id in self.overrides:
            return self.overrides[video_id]
        if class_name in self.overrides:
            return self.overrides[class_name]
        caption = self.template.format(action=class_to_action(class_name), class_name=class_name)
        return " ".join(caption.split())
