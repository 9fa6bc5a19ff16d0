"""The guidance-branch table from the generations' meta.json (branch_movement)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sora_tta.evaluation.branches import BRANCH_COLUMNS, branch_table, branches_markdown
from sora_tta.evaluation.tables import AggregateConfig


def _meta(folder: Path, movement: dict | None) -> None:
    folder.mkdir(parents=True)
    meta = {"timings": {"total": 1.0}}
    if movement is not None:
        meta["branch_movement"] = movement
    (folder / "meta.json").write_text(json.dumps(meta))


def test_branch_table_summarises_the_evaluated_videos(tmp_path: Path) -> None:
    gens = tmp_path / "generations"
    for video, scale in (("v1", 1.0), ("v2", 3.0), ("v3", 100.0)):
        _meta(gens / "var" / video, {
            "abs": {"prompt+cond": 0.1 * scale, "guided": 0.5 * scale},
            "relative": {"prompt+cond": 0.01 * scale, "guided": 0.05 * scale},
        })  # fmt: skip
    _meta(gens / "baseline" / "v1", None)  # the baseline records none
    long = pd.DataFrame({"method": ["baseline", "var", "var"], "video": ["v1", "v1", "v2"]})
    config = AggregateConfig(("baseline", "var"))
    table = branch_table(long, gens, config)  # v3 is not evaluated: left out
    assert list(table.columns) == BRANCH_COLUMNS
    assert table["branch"].tolist() == ["prompt+cond", "guided"]
    row = table.set_index("branch").loc["guided"]
    assert row["n"] == 2
    assert row["abs_mean"] == pytest.approx(1.0) and row["relative_median"] == pytest.approx(0.1)
    text = branches_markdown(table)
    assert "| var | 0.02 | 0.1 |" in text
    assert branches_markdown(branch_table(long, None, config)) == ""
