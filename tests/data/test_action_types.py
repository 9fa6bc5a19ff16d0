"""The UCF-101 class-to-type list covers every class of classInd exactly once."""

from __future__ import annotations

from collections import Counter

from sora_tta.data.action_types import ACTION_TYPES, UNKNOWN_TYPE, action_type
from sora_tta.data.ucf101 import CLASS_NAMES


def test_every_class_has_exactly_one_type() -> None:
    listed = Counter(name.lower() for names in ACTION_TYPES.values() for name in names)
    assert [n for n, count in listed.items() if count > 1] == []
    assert set(listed) == {n.lower() for n in CLASS_NAMES}
    assert len(CLASS_NAMES) == 101


def test_type_sizes_of_the_paper() -> None:
    sizes = {kind: len(names) for kind, names in ACTION_TYPES.items()}
    assert sizes == {
        "Human-Object Interaction": 20,
        "Body-Motion Only": 16,
        "Human-Human Interaction": 5,
        "Playing Musical Instruments": 10,
        "Sports": 50,
    }


def test_lookup_ignores_case_and_flags_unknown_names() -> None:
    assert action_type("HandStandPushups") == "Body-Motion Only"
    assert action_type("PlayingDhol") == "Playing Musical Instruments"
    assert action_type("SalsaSpin") == "Human-Human Interaction"
    assert action_type("NotAClass") == UNKNOWN_TYPE
