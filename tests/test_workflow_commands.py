"""Unit tests of the workflow's small steps in sora_tta.workflow_commands: preflight,
method-file, methods-table, report-pages (each rule is one ``sora-tta`` call)."""

from __future__ import annotations

import json

from sora_tta.io import read_json
from sora_tta.study.report_pages import PAGES


def test_method_file_writes_the_settings_as_the_workflow_did(tmp_path, run_cli):
    settings = {"sampling": {"num_steps": 4}, "adapt": None, "method": "baseline"}
    out = tmp_path / "methods" / "baseline.json"
    code, _, _ = run_cli(["method-file", out, "--settings", json.dumps(settings)])
    assert code == 0 and read_json(out) == settings
    assert out.read_text() == json.dumps(settings, indent=2, sort_keys=True) + "\n"
    code, _, err = run_cli(["method-file", out, "--settings", "[1, 2]"])
    assert code == 2 and "expected a JSON dict" in err


def test_methods_table(tmp_path, run_cli):
    rows = [{"method": "baseline", "name": "baseline"}, {"method": "r4-ab", "name": "a\tb"}]
    out = tmp_path / "methods.tsv"
    assert run_cli(["methods-table", out, "--rows", json.dumps(rows)])[0] == 0
    assert out.read_text() == "method\tname\nbaseline\tbaseline\nr4-ab\ta b\n"
    code, _, err = run_cli(["methods-table", out, "--rows", json.dumps([{"a": 1}, {"b": 2}])])
    assert code == 1 and "same keys" in err


def test_report_pages_needs_every_page(tmp_path, run_cli):
    table = tmp_path / "t.csv"
    table.write_text("method,metric,mean\nbaseline,lpips,0.5\n")
    image = tmp_path / "strip.gif"
    image.write_bytes(b"GIF89a")
    pages = [f"{name}={image if name == 'strip' else table}" for name in PAGES]
    args = ["report-pages", "--out-dir", tmp_path / "report"]
    for page in pages:
        args += ["--page", page]
    code, out, _ = run_cli([*args, "--random-lpips"])
    assert code == 0 and len(out.split()) == len(PAGES)
    assert "RANDOM backbone" in (tmp_path / "report" / "summary.html").read_text()
    assert "data:image/gif;base64" in (tmp_path / "report" / "strip.html").read_text()
    code, _, err = run_cli(args[:-2])
    assert code == 1 and "missing ['strip']" in err


def test_preflight_command_lists_the_missing_files(tmp_path, run_cli, shipped_config):
    config = shipped_config("config.yaml", defaults=True)
    config["checkpoints"] = {"dir": str(tmp_path / "ckpts")}
    argv = ["preflight", "--config-json", json.dumps(config), "--scope", "checkpoints"]
    code, _, err = run_cli([*argv, "--source", "my.yaml"])
    assert code == 1 and "required file(s) missing for my.yaml" in err
    assert str(tmp_path / "ckpts" / "Open_Sora_v2.safetensors") in err
    demo = shipped_config("demo.yaml", defaults=True)
    code, out, _ = run_cli(["preflight", "--config-json", json.dumps(demo)])
    assert code == 0 and "preflight: all 0 required inputs present (config)" in out
