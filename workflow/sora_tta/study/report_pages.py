"""The entries of Snakemake's report, defined once: an HTML page per table (and one for the
GIF strip, which the report cannot show inline), and the figures of ``sora-tta plot``.

The rules build their outputs from :data:`PAGES` and :data:`FIGURES`; each entry's caption
is ``workflow/report/<caption>.rst``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1rem;font-size:14px}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.25rem .5rem}"
    "th{background:#f0f0f0;position:sticky;top:0}td{font-variant-numeric:tabular-nums}"
)


def html_page(title: str, body: str) -> str:
    """A small self-contained HTML document (inline style, no external resources)."""
    import html

    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>"
        f"<body><h3>{html.escape(title)}</h3>\n{body}\n</body></html>\n"
    )


@dataclass(frozen=True)
class Entry:
    """One entry of the report: where it is filed and which caption describes it."""

    caption: str  #: workflow/report/<caption>.rst
    category: str
    subcategory: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    title: str = ""  #: the heading of an HTML page

    def report_args(self, caption_dir: str) -> dict[str, Any]:
        """Keyword arguments of Snakemake's ``report()`` (captions under ``caption_dir``)."""
        args: dict[str, Any] = {
            "caption": f"{caption_dir}/{self.caption}.rst",
            "category": self.category,
        }
        if self.subcategory:
            args["subcategory"] = self.subcategory
        if self.labels:
            args["labels"] = dict(self.labels)
        return args


def _table(name: str, label: str, title: str, category: str = "Tables") -> Entry:
    return Entry(name, category, labels={"table": label}, title=title)


#: The HTML pages (``results/report/<name>.html``): every table, then the GIF strip.
PAGES: dict[str, Entry] = {
    "summary": _table("summary", "summary", "Mean metrics per method"),
    "paired": _table("paired", "paired vs baseline", "Each variant vs the baseline (paired)"),
    "per_class": _table("per_class", "per class", "Mean metrics per class"),
    "per_type": _table("per_type", "per action type",
                       "Final variants vs the baseline per UCF-101 action type (paired)"),
    "validation_paired": _table(
        "validation_paired", "exploratory (validation)",
        "Exploratory: every variant vs the baseline on the validation videos",
    ),
    "cost": _table("cost", "cost", "Cost per video: predicted (sora-tta plan) and measured"),
    "branches": _table("branches", "guidance branches",
                       "Guidance branches moved by adaptation (first sampling step)"),
    "failures": _table("failures", "failures", "Failed generations (left out of the tables)"),
    "fvd": _table("fvd", "FVD", "FVD (optional, I3D): each method vs the ground truth, "
                  "each variant minus the baseline"),
    "methods": _table("methods", "methods", "Methods and their parameters", "Methods"),
    "manifest": _table("manifest", "manifest", "Manifest: selected videos and their status",
                       "Data"),
    "strip": Entry("strip", "Figures", "Examples", {"figure": "strip"}, "Example continuations"),
}  # fmt: skip
#: The page that shows an image (the GIF strip); every other page shows a table.
IMAGE_PAGE = "strip"

#: The figures (``results/figures/<name>.png``, drawn by ``sora-tta plot``).
FIGURES: dict[str, Entry] = {
    "per_frame_psnr": Entry("per_frame", "Figures", "Per frame"),
    "per_frame_ssim": Entry("per_frame", "Figures", "Per frame"),
    "per_frame_lpips": Entry("per_frame", "Figures", "Per frame"),
    "paired_diff": Entry("paired_diff", "Figures", "Comparison"),
    "per_class": Entry("per_class_figure", "Figures", "Comparison"),
    "loss_curves": Entry("loss_curves", "Figures", "Adaptation"),
}


#: How a random-backbone LPIPS is labelled wherever it is shown (tables and figures).
RANDOM_LPIPS_LABEL = "lpips (RANDOM backbone: pipeline test, not comparable)"


#: Said above a table page without rows (e.g. the failures of a run where nothing failed).
EMPTY_TABLE_NOTE = "No rows in this run."


def table_page(
    path: str | os.PathLike[str],
    title: str,
    float_format: str = "{:.4g}",
    random_lpips: bool = False,
) -> str:
    """A CSV or TSV table rendered as a self-contained HTML page for the report.

    LPIPS rows computed with the random backbone (their ``lpips_backbone`` says so, or
    ``random_lpips`` for tables without that column) are relabelled, with a warning above."""
    import pandas as pd

    sep = "\t" if str(path).endswith(".tsv") else ","
    table = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""])
    warning = ""
    if "metric" in table.columns:
        is_lpips = table["metric"].astype(str) == "lpips"
        if "lpips_backbone" in table.columns:
            is_lpips &= table["lpips_backbone"].astype(str).str.contains("random")
        elif not random_lpips:
            is_lpips &= False
        if is_lpips.any():
            table.loc[is_lpips, "metric"] = RANDOM_LPIPS_LABEL
            warning = (
                "<p><strong>Warning:</strong> LPIPS in this table was computed with a seeded "
                "RANDOM AlexNet trunk (lpips_backbone: random); it tests the pipeline and is not "
                "comparable with published LPIPS.</p>"
            )
    body = table.to_html(
        index=False, na_rep="", border=0, float_format=float_format.format, escape=True
    )
    if table.empty:
        body = f"<p>{EMPTY_TABLE_NOTE}</p>" + body
    return html_page(title, warning + body)


def image_page(path: str | os.PathLike[str], title: str) -> str:
    """An image (e.g. an animated GIF the report cannot show inline) embedded in a page."""
    import base64
    import mimetypes

    mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return html_page(title, f"<img alt='{Path(path).name}' src='data:{mime};base64,{data}'>")


def write_report_pages(
    inputs: Mapping[str, str], outputs: Mapping[str, str], random_lpips: bool = False
) -> None:
    """Render every page of :data:`PAGES` from the input of the same name (``random_lpips``:
    the run's LPIPS backbone is the random one, see :func:`table_page`)."""
    from sora_tta.io import write_text_atomic

    for name, entry in PAGES.items():
        if name == IMAGE_PAGE:
            page = image_page(inputs[name], entry.title)
        else:
            page = table_page(inputs[name], entry.title, random_lpips=random_lpips)
        write_text_atomic(outputs[name], page)
