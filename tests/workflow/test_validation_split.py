"""End to end: a study with a validation selection runs exploratory variants on the
validation videos only, and its tables keep the headline (final variants on test) apart."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import DEMO_CONFIG, DEMO_TIMEOUT, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo configuration on a synthetic set with two groups per class (group 1 in
    testlist01, group 2 in trainlist01) and a validation selection from trainlist01."""
    root = tmp_path_factory.mktemp("split")
    data = root / "ucf"
    subprocess.run(
        [Path(sys.executable).parent / "sora-tta", "make-synthetic-ucf101", str(data),
         "--classes", "3", "--per-class", "2", "--clips-per-group", "1", "--frames", "48",
         "--no-broken"],
        check=True,
    )  # fmt: skip
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["data"] = {
        "ucf_root": str(data / "UCF-101"),
        "splits_dir": str(data / "ucfTrainTestlist"),
    }
    config["selection"]["validation"] = {"subset": "train", "max_per_group": 1}
    path = root / "split.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = root / "run"
    workdir.mkdir()
    snakemake(workdir, "--cores", "2", "--configfile", str(path), timeout=DEMO_TIMEOUT)
    return workdir


def test_exploratory_variants_never_see_a_test_video(split_run: Path) -> None:
    with open(split_run / "results" / "manifest.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == "ok"]
    roles = {r["video_id"]: r["role"] for r in rows}
    assert sorted(roles.values()) == ["test"] * 3 + ["validation"] * 3
    # one clip per group: group 1 is in testlist01, group 2 in trainlist01
    assert all(r["group"] == ("1" if r["role"] == "test" else "2") for r in rows), rows
    methods = sorted(p.name for p in (split_run / "results" / "generations").iterdir())
    (final,) = [m for m in methods if m.startswith("r4-continue-")]
    (explore,) = [m for m in methods if m.startswith("obj-mixed-")]
    generated = {
        m: {p.name for p in (split_run / "results" / "generations" / m).iterdir()} for m in methods
    }
    assert generated["baseline"] == generated[final] == set(roles)
    assert generated[explore] == {v for v, role in roles.items() if role == "validation"}


def test_headline_and_exploratory_tables(split_run: Path) -> None:
    agg = split_run / "results" / "aggregate"
    paired = pd.read_csv(agg / "paired.csv")
    assert len(set(paired.method)) == 1 and paired.method.iloc[0].startswith("r4-continue-")
    assert (paired.n_shared_videos == 3).all()
    validation = pd.read_csv(agg / "validation_paired.csv")
    assert {m.split("-")[0] for m in validation.method} == {"r4", "obj"}
    assert set(validation.verdict) == {"not tested"} and (validation.n_shared_videos == 3).all()
    text = (agg / "summary.md").read_text()
    assert "**Exploratory**: every variant on the validation selection (3 videos" in text
    assert "## Exploratory: every variant vs baseline on the validation selection" in text
    assert (split_run / "results" / "report" / "validation_paired.html").is_file()
