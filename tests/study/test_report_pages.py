"""Unit tests of sora_tta.study.report_pages: table pages, labels, empty tables."""

from __future__ import annotations

from pathlib import Path

from sora_tta.study import (
    report_pages,
)

REPO = Path(__file__).resolve().parents[2]


def test_table_pages_label_random_lpips(tmp_path):
    table = tmp_path / "summary.csv"
    table.write_text(
        "method,metric,lpips_backbone,mean\nbaseline,lpips,random,0.5\nbaseline,psnr,random,20\n"
    )
    page = report_pages.table_page(table, "Summary")
    assert report_pages.RANDOM_LPIPS_LABEL in page and "RANDOM AlexNet trunk" in page
    assert page.count(report_pages.RANDOM_LPIPS_LABEL) == 1  # the psnr row keeps its name
    plain = tmp_path / "per_class.csv"
    plain.write_text("method,metric,mean_diff\nvar,lpips,0.1\n")
    assert report_pages.RANDOM_LPIPS_LABEL not in report_pages.table_page(plain, "Per class")
    assert report_pages.RANDOM_LPIPS_LABEL in report_pages.table_page(
        plain, "Per class", random_lpips=True
    )
    assert report_pages.EMPTY_TABLE_NOTE not in report_pages.table_page(plain, "Per class")


def test_empty_table_page_says_so(tmp_path):
    table = tmp_path / "failures.csv"
    table.write_text("method,video,stage,reason\n")
    page = report_pages.table_page(table, "Failures")
    assert report_pages.EMPTY_TABLE_NOTE in page and "<th>reason</th>" in page


def test_every_entry_has_its_caption_and_the_plot_command_draws_every_figure():
    from sora_tta.evaluation.plots import FIGURE_FILES

    captions = REPO / "workflow" / "report"
    entries = [*report_pages.PAGES.values(), *report_pages.FIGURES.values()]
    assert all((captions / f"{e.caption}.rst").is_file() for e in entries)
    assert all(e.title for e in report_pages.PAGES.values())
    assert {f"{name}.png" for name in report_pages.FIGURES} <= set(FIGURE_FILES)
    args = report_pages.PAGES["strip"].report_args("../report")
    assert args == {"caption": "../report/strip.rst", "category": "Figures",
                    "subcategory": "Examples", "labels": {"figure": "strip"}}  # fmt: skip
