"""End to end: a study with a validation selection runs exploratory variants on the
validation videos only, and its tables keep the headline (final variants on test) apart."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def split_run(demo_run: Path) -> Path:
    """The demo: two groups per class (group 1 in testlist01, group 2 in trainlist01) and a
    validation selection from trainlist01; r4-continue is final, the controls exploratory."""
    return demo_run


def test_exploratory_variants_never_see_a_test_video(split_run: Path) -> None:
    with open(split_run / "results" / "manifest.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == "ok"]
    roles = {r["video_id"]: r["role"] for r in rows}
    assert sorted(roles.values()) == ["test"] * 3 + ["validation"] * 3
    # one clip per group: group 1 is in testlist01, group 2 in trainlist01
    assert all(r["group"] == ("1" if r["role"] == "test" else "2") for r in rows), rows
    methods = sorted(p.name for p in (split_run / "results" / "generations").iterdir())
    (final,) = [m for m in methods if m.startswith("r4-continue-")]
    explore = [m for m in methods if m.startswith(("cross-video-", "published-objective-"))]
    assert len(explore) == 2
    generated = {
        m: {p.name for p in (split_run / "results" / "generations" / m).iterdir()} for m in methods
    }
    assert generated["baseline"] == generated[final] == set(roles)
    for method in explore:
        assert generated[method] == {v for v, role in roles.items() if role == "validation"}


def test_headline_and_exploratory_tables(split_run: Path) -> None:
    agg = split_run / "results" / "aggregate"
    paired = pd.read_csv(agg / "paired.csv")
    assert len(set(paired.method)) == 1 and paired.method.iloc[0].startswith("r4-continue-")
    assert (paired.n_shared_videos == 3).all()
    validation = pd.read_csv(agg / "validation_paired.csv")
    assert {m.rsplit("-", 1)[0] for m in validation.method} == {
        "r4-continue",
        "cross-video",
        "published-objective",
    }
    assert set(validation.verdict) == {"not tested"} and (validation.n_shared_videos == 3).all()
    text = (agg / "summary.md").read_text()
    assert "**Exploratory**: every variant on the validation selection (3 videos" in text
    assert "## Exploratory: every variant vs baseline on the validation selection" in text
    assert (split_run / "results" / "report" / "validation_paired.html").is_file()
    assert "## Guidance branches moved by adaptation" in text  # every variant's branches
    branches = pd.read_csv(agg / "branches.csv")
    assert set(branches.branch) == {"prompt+cond", "negative+cond", "negative+zero", "guided"}
