"""Split-file parsing and reproducible selection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sora_tta.data.ucf101 import (
    CLASS_NAMES,
    SelectionConfig,
    SplitError,
    VideoEntry,
    check_disjoint_groups,
    group_key,
    load_split,
    parse_video_id,
    read_class_index,
    read_list_file,
    read_split_list,
    select_validation,
    select_videos,
    split_file,
)

CLASSES = {"ApplyEyeMakeup": 1, "HandstandPushups": 2, "YoYo": 3}


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_class_names_are_the_official_101() -> None:
    assert len(CLASS_NAMES) == 101 == len(set(CLASS_NAMES))
    assert CLASS_NAMES[:3] == ("ApplyEyeMakeup", "ApplyLipstick", "Archery")
    assert CLASS_NAMES[36] == "HandstandPushups" and CLASS_NAMES[-1] == "YoYo"
    assert list(CLASS_NAMES) == sorted(CLASS_NAMES, key=str.lower)


def test_parse_video_id() -> None:
    assert parse_video_id("v_ApplyEyeMakeup_g01_c01") == ("ApplyEyeMakeup", 1, 1)
    assert parse_video_id("v_YoYo_g25_c07") == ("YoYo", 25, 7)
    for bad in ("ApplyEyeMakeup_g01_c01", "v_X_g01", "v_X_gAA_c01", "v_X_g01_c01.avi"):
        with pytest.raises(ValueError, match="not a UCF-101 video name"):
            parse_video_id(bad)


def test_read_class_index_official_format_with_crlf_and_bom(tmp_path: Path) -> None:
    path = write(
        tmp_path / "classInd.txt", "\ufeff1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n\r\n"
    )
    assert read_class_index(path) == CLASSES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 A\n3 B\n", "expected index 2"),
        ("1 A\n2 a\n", "listed twice"),
        ("1 A extra\n", "expected '<index> <ClassName>'"),
        ("one A\n", "expected '<index> <ClassName>'"),
        ("\n", "no classes"),
    ],
)
def test_read_class_index_errors_name_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "classInd.txt", text)
    with pytest.raises(SplitError, match=message) as err:
        read_class_index(path)
    assert str(path) in str(err.value)


def test_read_testlist(tmp_path: Path) -> None:
    path = write(
        tmp_path / "testlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
        # the official lists spell this class's files differently from its folder
        "HandstandPushups/v_HandStandPushups_g02_c03.avi\r\n",
    )
    entries = read_split_list(path, CLASSES)
    first = "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    second = "HandstandPushups/v_HandStandPushups_g02_c03.avi"
    assert entries == [
        VideoEntry("v_ApplyEyeMakeup_g01_c01", "ApplyEyeMakeup", 1, 1, 1, first),
        VideoEntry("v_HandStandPushups_g02_c03", "HandstandPushups", 2, 2, 3, second),
    ]


def test_read_trainlist_checks_labels(tmp_path: Path) -> None:
    good = write(
        tmp_path / "trainlist02.txt", "YoYo/v_YoYo_g08_c01.avi 3\nYoYo/v_YoYo_g08_c02.avi 3\n"
    )
    entries = read_split_list(good, CLASSES)
    assert [(e.video_id, e.class_index, e.group, e.clip) for e in entries] == [
        ("v_YoYo_g08_c01", 3, 8, 1),
        ("v_YoYo_g08_c02", 3, 8, 2),
    ]
    bad = write(
        tmp_path / "trainlist03.txt", "YoYo/v_YoYo_g08_c01.avi 3\nYoYo/v_YoYo_g08_c02.avi 1\n"
    )
    with pytest.raises(
        SplitError, match=r"trainlist03.txt:2: label '1' does not match class index 3"
    ):
        read_split_list(bad, CLASSES)
    unlabelled = write(tmp_path / "trainlist01.txt", "YoYo/v_YoYo_g08_c01.avi\n")
    with pytest.raises(SplitError, match=r"expected '<Class>/<video>\.avi <label>'"):
        read_split_list(unlabelled, CLASSES)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("YoYo/v_YoYo_g01_c01.avi 3", "expected '<Class>/<video>.avi'"),
        ("v_YoYo_g01_c01.avi", "expected '<ClassName>/v_<ClassName>_gNN_cMM.avi'"),
        ("YoYo/v_YoYo_g01_c01.mp4", "expected '<ClassName>/v_<ClassName>_gNN_cMM.avi'"),
        ("YoYo/v_YoYo_g01.avi", "not a UCF-101 video name"),
        ("YoYo/v_Archery_g01_c01.avi", "does not match file class"),
        ("Archery/v_Archery_g01_c01.avi", "not in classInd"),
    ],
)
def test_read_testlist_errors(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "testlist01.txt", f"YoYo/v_YoYo_g02_c01.avi\n{line}\n")
    with pytest.raises(SplitError, match=f"testlist01.txt:2: .*{message}"):
        read_split_list(path, CLASSES)


def test_duplicate_entry_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "testlist01.txt", "YoYo/v_YoYo_g02_c01.avi\nYoYo/v_YoYo_g02_c01.avi\n")
    with pytest.raises(SplitError, match="listed twice"):
        read_split_list(path, CLASSES)


def test_split_file_and_load_split(tmp_path: Path) -> None:
    assert split_file(tmp_path, 2, "train") == tmp_path / "trainlist02.txt"
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        split_file(tmp_path, 4, "test")
    with pytest.raises(ValueError, match="subset must be"):
        split_file(tmp_path, 1, "val")
    write(tmp_path / "classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    with pytest.raises(SplitError, match=r"testlist03.txt: file not found"):
        load_split(tmp_path, 3)
    write(tmp_path / "testlist03.txt", "YoYo/v_YoYo_g02_c01.avi\n")
    assert [e.video_id for e in load_split(tmp_path, 3)] == ["v_YoYo_g02_c01"]


def make_entries(clips: dict[str, dict[int, int]]) -> list[VideoEntry]:
    """``{class: {group: number of clips}}`` -> entries."""
    out = []
    for index, (name, groups) in enumerate(clips.items(), 1):
        for group, count in groups.items():
            for clip in range(1, count + 1):
                vid = f"v_{name}_g{group:02d}_c{clip:02d}"
                out.append(VideoEntry(vid, name, index, group, clip, f"{name}/{vid}.avi"))
    return out


ENTRIES = make_entries(
    {
        "ApplyEyeMakeup": {1: 5, 2: 4, 3: 6, 4: 4},
        "Archery": {1: 4, 2: 7, 3: 3},
        "YoYo": {1: 2, 2: 1},
    }
)


def ids(entries: list[VideoEntry]) -> list[str]:
    return [e.video_id for e in entries]


def test_select_all_is_everything_sorted() -> None:
    chosen = select_videos(list(reversed(ENTRIES)), SelectionConfig())
    assert ids(chosen) == ids(ENTRIES)


def test_per_class_same_seed_same_selection_and_order_independent() -> None:
    config = SelectionConfig(per_class=3, seed=11)
    first = select_videos(ENTRIES, config)
    assert ids(select_videos(ENTRIES, config)) == ids(first)
    assert ids(select_videos(list(reversed(ENTRIES)), config)) == ids(first)
    counts = Counter(e.class_name for e in first)
    assert counts == {"ApplyEyeMakeup": 3, "Archery": 3, "YoYo": 3}
    seeds = {
        tuple(ids(select_videos(ENTRIES, SelectionConfig(per_class=3, seed=s)))) for s in range(8)
    }
    assert len(seeds) > 1, "the seed must change the selection"


def test_per_class_spreads_over_groups_first() -> None:
    # 3 per class with >= 3 groups: one clip from each of 3 distinct groups
    for seed in range(5):
        chosen = select_videos(ENTRIES, SelectionConfig(per_class=3, seed=seed))
        for name in ("ApplyEyeMakeup", "Archery"):
            groups = [e.group for e in chosen if e.class_name == name]
            assert len(set(groups)) == 3, (seed, name, groups)


def test_per_class_short_class_gives_all_it_has(caplog: pytest.LogCaptureFixture) -> None:
    chosen = select_videos(ENTRIES, SelectionConfig(per_class=5, seed=0))
    assert Counter(e.class_name for e in chosen)["YoYo"] == 3
    assert "YoYo has only 3" in caplog.text


def test_selection_of_a_class_does_not_depend_on_other_classes() -> None:
    config = SelectionConfig(per_class=4, seed=3)
    alone = [e for e in ENTRIES if e.class_name == "Archery"]
    with_others = [e for e in select_videos(ENTRIES, config) if e.class_name == "Archery"]
    assert ids(select_videos(alone, config)) == ids(with_others)


def test_max_per_group() -> None:
    config = SelectionConfig(max_per_group=1, seed=5)
    chosen = select_videos(ENTRIES, config)
    assert ids(select_videos(ENTRIES, config)) == ids(chosen)
    per_group = Counter((e.class_name, e.group) for e in chosen)
    assert set(per_group.values()) == {1}
    assert len(chosen) == 4 + 3 + 2  # one per group
    two = select_videos(ENTRIES, SelectionConfig(per_class=10, max_per_group=2, seed=5))
    assert max(Counter((e.class_name, e.group) for e in two).values()) == 2
    assert Counter(e.class_name for e in two) == {"ApplyEyeMakeup": 8, "Archery": 6, "YoYo": 3}


def test_total_spreads_over_classes() -> None:
    chosen = select_videos(ENTRIES, SelectionConfig(total=7, seed=2))
    counts = Counter(e.class_name for e in chosen)
    assert sum(counts.values()) == 7
    assert max(counts.values()) - min(counts.values()) <= 1
    assert ids(select_videos(ENTRIES, SelectionConfig(total=7, seed=2))) == ids(chosen)
    # YoYo has 3 clips: the surplus goes to the other classes
    big = Counter(e.class_name for e in select_videos(ENTRIES, SelectionConfig(total=20, seed=2)))
    assert big["YoYo"] == 3 and big["ApplyEyeMakeup"] + big["Archery"] == 17
    assert abs(big["ApplyEyeMakeup"] - big["Archery"]) <= 1
    limited = select_videos(ENTRIES, SelectionConfig(total=9, max_per_group=1, seed=2))
    assert len(limited) == 9 and set(
        Counter((e.class_name, e.group) for e in limited).values()
    ) == {1}


def test_total_larger_than_available_is_an_error() -> None:
    with pytest.raises(ValueError, match="total 10 exceeds the 9 eligible videos"):
        select_videos(ENTRIES, SelectionConfig(total=10, max_per_group=1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_class": 2, "total": 5}, "not both"),
        ({"per_class": 0}, "per_class must be a positive"),
        ({"max_per_group": -1}, "max_per_group must be a positive"),
        ({"seed": -1}, "seed must be non-negative"),
    ],
)
def test_selection_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SelectionConfig(**kwargs)


def test_read_list_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "list.txt",
        "# chosen by hand\nv_Archery_g02_c03\nYoYo/v_YoYo_g02_c01.avi 3\n"
        "v_ApplyEyeMakeup_g01_c01.avi  # ok\n",
    )
    assert ids(read_list_file(path, ENTRIES)) == [
        "v_ApplyEyeMakeup_g01_c01",
        "v_Archery_g02_c03",
        "v_YoYo_g02_c01",
    ]
    unknown = write(tmp_path / "unknown.txt", "v_Archery_g02_c03\nv_Archery_g09_c01\n")
    with pytest.raises(
        SplitError, match=r"unknown.txt:2: v_Archery_g09_c01 is not in the selected"
    ):
        read_list_file(unknown, ENTRIES)
    malformed = write(tmp_path / "bad.txt", "Archery g02\n")
    with pytest.raises(SplitError, match=r"bad.txt:1: not a UCF-101 video name"):
        read_list_file(malformed, ENTRIES)
    with pytest.raises(SplitError, match="file not found"):
        read_list_file(tmp_path / "absent.txt", ENTRIES)


def test_validation_never_takes_a_group_of_the_test_list() -> None:
    test_list = [e for e in ENTRIES if e.group == 1]
    candidates = list(ENTRIES)  # a list that also holds the test groups
    chosen = select_validation(candidates, test_list, SelectionConfig(per_class=10, seed=3))
    assert chosen and all(e.group != 1 for e in chosen)
    assert {group_key(e) for e in chosen} == {
        group_key(e) for e in ENTRIES if e.group != 1
    }  # every other group is eligible
    check_disjoint_groups(chosen, test_list)  # no error


def test_shared_groups_are_an_error_naming_them() -> None:
    a = [e for e in ENTRIES if e.class_name == "Archery" and e.group == 2]
    b = [VideoEntry("v_archery_g02_c09", "archery", 3, 2, 9, "x.avi")]  # case-insensitive
    with pytest.raises(SplitError, match=r"share 1 UCF-101 group\(s\): archery g02"):
        check_disjoint_groups(a, b)
