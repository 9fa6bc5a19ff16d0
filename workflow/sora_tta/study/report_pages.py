"""The report's HTML pages: a table page per aggregate table, an image page per figure."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    titles: Mapping[str, str],
    random_lpips: bool = False,
) -> None:
    """Render each table input named in ``titles`` and the ``strip`` image as report pages
    (``random_lpips``: the run's LPIPS backbone is the random one, see :func:`table_page`)."""
    from sora_tta.io import write_text_atomic

    for name, title in titles.items():
        page = table_page(inputs[name], title, random_lpips=random_lpips)
        write_text_atomic(outputs[name], page)
    write_text_atomic(outputs["strip"], image_page(inputs["strip"], "Example continuations"))
