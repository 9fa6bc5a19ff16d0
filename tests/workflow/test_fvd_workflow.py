"""The optional FVD job in the workflow: skipped with a reason in the demo, computed (with a
TorchScript stand-in of the I3D weights) when evaluation.fvd_weights is set."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import yaml
from conftest import DEMO_CONFIG, snakemake

from sora_tta.evaluation.fvd import NO_WEIGHTS_REASON
from sora_tta.study.snakemake_cli import parse_job_counts

pytestmark = pytest.mark.slow


def test_demo_skips_fvd_with_the_reason(demo_run):
    table = pd.read_csv(demo_run / "results/aggregate/fvd.csv")
    assert len(table) >= 2 and table["fvd"].isna().all()
    assert (table["skipped"] == NO_WEIGHTS_REASON).all()
    page = (demo_run / "results/report/fvd.html").read_text()
    assert "evaluation.fvd_weights is not set" in page
    assert (demo_run / "results/logs/fvd.log").exists()
    assert (demo_run / "results/benchmarks/fvd.tsv").exists()


def test_fvd_with_weights_reruns_only_the_fvd_table(demo_copy, tmp_path, i3d_standin):
    weights = i3d_standin(demo_copy / "weights" / "i3d_torchscript.pt")
    overlay = tmp_path / "fvd.yaml"
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    evaluation = {**config["evaluation"], "fvd_weights": "weights/i3d_torchscript.pt"}
    overlay.write_text(yaml.safe_dump({"evaluation": evaluation}))
    args = ["--configfile", str(DEMO_CONFIG), str(overlay)]

    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({"evaluation": {**evaluation, "fvd_weights": "nope.pt"}}))
    refused = snakemake(
        demo_copy, "--cores", "2", "--configfile", str(DEMO_CONFIG), str(missing), check=False
    )
    assert refused.returncode != 0
    assert "FVD I3D weights (evaluation.fvd_weights): nope.pt" in refused.output

    result = snakemake(demo_copy, "--cores", "2", *args)
    ran = parse_job_counts(result.output)
    assert ran.get("fvd") == 1 and "generate_tta" not in ran and "evaluate" not in ran, ran
    table = pd.read_csv(demo_copy / "results/aggregate/fvd.csv")
    scored = table[table["skipped"].isna()]
    assert len(scored) == len(table) >= 2 and (scored["fvd"] > 0).all()
    variants = scored[scored["method"] != "baseline"]
    assert variants["diff"].notna().all() and variants["diff_ci_low"].notna().all()
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert set(table["weights_sha256"]) == {digest}
    assert digest in (demo_copy / "results/report/fvd.html").read_text()
    assert "Nothing to be done" in snakemake(demo_copy, "-n", "--cores", "1", *args).output
