"""Snakemake's report of the demo run, rendered in headless Chromium."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from chromium_cdp import browser, find_chromium, page_url
from conftest import snakemake

from sora_tta.study import report_pages

pytestmark = pytest.mark.slow

FIGURES = {
    "per_frame_psnr.png",
    "per_frame_ssim.png",
    "per_frame_lpips.png",
    "paired_diff.png",
    "per_class.png",
    "loss_curves.png",
    "strip.html",
}
TABLES = {"summary.html", "paired.html", "per_class.html", "cost.html", "failures.html"}
OTHERS = {"methods.html", "manifest.html", "long.csv"}


@pytest.fixture(scope="module")
def report(demo_run, tmp_path_factory) -> Path:
    """The demo run's report (written outside the run folder, which stays read-only)."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    snakemake(demo_run, "--report", str(path))
    return path


def test_report_is_self_contained(report):
    text = report.read_text()
    assert report.stat().st_size > 100_000
    # every result is embedded; nothing is fetched from elsewhere
    assert 'src="http' not in text and "src='http" not in text
    assert "data:image/png" in text


def test_report_renders_with_every_figure_and_table(report):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with browser(chromium) as page:
        page.open(page_url(report))
        page.evaluate(
            "new Promise(r => { const t = () => window.app ? r() : setTimeout(t, 50); t(); })",
            await_promise=True,
        )
        text = page.evaluate("document.body.innerText")
        for word in ("Figures", "Tables", "Methods", "Data"):
            assert word in text
        assert "random AlexNet trunk" in text  # the demo's LPIPS caveat is on the page
        # the answer first: the verdicts of summary.md, then the description of the study
        assert "Does adaptation help?" in text and "summary.md" in text
        assert text.index("Does adaptation help?") < text.index("The study")
        assert "drawn from the configuration of this run" in text

        entries = page.evaluate(
            "Object.entries(results).map(([path, r]) => "
            "({path, name: r.name || path.split('/').pop(), category: r.category,"
            " mime: r.mime_type, size: (r.data_uri || '').length}))"
        )
        names = {Path(e["path"]).name for e in entries}
        assert names >= FIGURES | TABLES | OTHERS, names
        assert all(e["size"] > 100 for e in entries), entries
        categories = json.loads(page.evaluate("JSON.stringify(Object.keys(categories))"))
        assert {"Figures", "Tables", "Methods", "Data"} <= set(categories)

        # show every image in the content pane and check that it decodes
        for entry in entries:
            if entry["mime"] != "image/png":
                continue
            uri = f"results[{json.dumps(entry['path'])}].data_uri"
            loaded = page.evaluate(
                f"""new Promise(resolve => {{
                    app.setView({{content: "img", contentPath: {uri}}});
                    const check = (n) => {{
                        const img = document.querySelector("img[src^='data:image/png']");
                        if (img && img.complete) resolve([img.naturalWidth, img.naturalHeight]);
                        else if (n > 200) resolve([0, 0]);
                        else setTimeout(() => check(n + 1), 25);
                    }};
                    check(0);
                }})""",
                await_promise=True,
            )
            assert loaded[0] > 100 and loaded[1] > 100, (entry["path"], loaded)

        # every HTML page (tables, strip) opens in the content frame and holds its content
        for entry in entries:
            if entry["mime"] != "text/html":
                continue
            uri = f"results[{json.dumps(entry['path'])}].data_uri"
            html = base64.b64decode(page.evaluate(uri).split(",", 1)[1]).decode()
            expected = "<img" if entry["path"].endswith("strip.html") else "<table"
            assert expected in html, entry["path"]
            if entry["path"].endswith("failures.html"):  # nothing failed in the demo
                assert html.count("<tr") == 1 and report_pages.EMPTY_TABLE_NOTE in html
            elif expected == "<table":
                assert html.count("<tr") > 1, entry["path"]
            page.evaluate(f'app.setView({{content: "html", contentPath: {uri}}})')
            frames = page.evaluate("document.querySelectorAll('iframe').length")
            assert frames == 1

        assert page.problems() == []
