"""Class name -> action phrase -> caption, templates and override files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_tta.data.captions import (
    DEFAULT_TEMPLATE,
    Captioner,
    CaptionError,
    class_to_action,
    read_overrides,
    validate_template,
)
from sora_tta.data.ucf101 import CLASS_NAMES


@pytest.mark.parametrize(
    ("class_name", "action"),
    [
        ("ApplyEyeMakeup", "apply eye makeup"),
        ("PlayingDaf", "playing daf"),
        ("YoYo", "yo-yo"),
        ("TaiChi", "tai chi"),
        ("CleanAndJerk", "clean and jerk"),
        ("Archery", "archery"),
        ("PushUps", "push-ups"),
        ("HandstandPushups", "handstand push-ups"),
        ("Skijet", "jet skiing"),
        ("RockClimbingIndoor", "indoor rock climbing"),
        # not UCF-101 names: acronyms stay upper case, digits split off
        ("TVWatching", "TV watching"),
        ("PlayingDJDecks", "playing DJ decks"),
        ("Jump3D", "jump 3D"),
        ("Top10Dances", "top 10 dances"),
    ],
)
def test_class_to_action(class_name: str, action: str) -> None:
    assert class_to_action(class_name) == action


def test_every_ucf101_class_gets_a_clean_lower_case_phrase() -> None:
    phrases = [class_to_action(name) for name in CLASS_NAMES]
    assert len(set(phrases)) == 101
    for name, phrase in zip(CLASS_NAMES, phrases, strict=True):
        assert phrase == phrase.lower() and phrase == phrase.strip(), name
        assert "  " not in phrase and phrase.replace(" ", "").replace("-", "").isalpha(), name


def test_default_template_is_the_bare_phrase() -> None:
    assert DEFAULT_TEMPLATE == "{action}"
    assert Captioner()("ApplyEyeMakeup") == "apply eye makeup"


def test_custom_template() -> None:
    captioner = Captioner("a video of {action}  ({class_name})")
    assert captioner("YoYo", "v_YoYo_g01_c01") == "a video of yo-yo (YoYo)"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a person {verb}", "unknown field 'verb'"),
        ("a person {}", "unknown field"),
        ("a person {action", "caption template"),
        ("   ", "empty"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(CaptionError, match=message):
        validate_template(template)
    with pytest.raises(CaptionError):
        Captioner(template)


def test_yaml_overrides_with_video_precedence(tmp_path: Path) -> None:
    path = tmp_path / "captions.yaml"
    path.write_text(
        "YoYo: a child playing with a yo-yo\nv_YoYo_g01_c02: a man doing yo-yo tricks on a stage\n"
    )
    overrides = read_overrides(path, list(CLASS_NAMES))
    captioner = Captioner("a video of {action}", overrides)
    assert captioner("YoYo", "v_YoYo_g01_c01") == "a child playing with a yo-yo"
    assert captioner("YoYo", "v_YoYo_g01_c02") == "a man doing yo-yo tricks on a stage"
    assert captioner("Archery", "v_Archery_g01_c01") == "a video of archery"


def test_tsv_overrides(tmp_path: Path) -> None:
    path = tmp_path / "captions.tsv"
    path.write_text(
        "# class\tcaption\nArchery\ta person shooting a bow\r\n\nPunch\ta boxer punching\n"
    )
    assert read_overrides(path, list(CLASS_NAMES)) == {
        "Archery": "a person shooting a bow",
        "Punch": "a boxer punching",
    }


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.yaml", "Archerie: shooting\n", "neither a known class name nor a video id"),
        ("c.yaml", "- Archery\n", "expected a mapping"),
        ("c.yaml", "Archery: [a, b]\n", "non-empty string"),
        ("c.yaml", "Archery: ''\n", "non-empty string"),
        ("c.yaml", "Archery: {\n", "not valid YAML"),
        ("c.tsv", "Archery shooting\n", r"c.tsv:1: expected 'ClassName<TAB>caption'"),
        ("c.tsv", "Archery\ta\nArchery\tb\n", "given twice"),
        ("c.json", "{}", "must be .yaml, .yml or .tsv"),
    ],
)
def test_bad_override_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CaptionError, match=message) as err:
        read_overrides(path, list(CLASS_NAMES))
    assert str(path) in str(err.value)


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(CaptionError, match="override file not found"):
        read_overrides(tmp_path / "none.yaml")
