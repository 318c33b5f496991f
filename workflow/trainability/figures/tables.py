"""The dimension table: our fractal dimensions beside the paper's, as CSV and Markdown.

Both of our estimators side by side: the box count (``ours``, with the quartiles of its
local slopes) and, where the experiment asks for them, the uncertainty exponent's D = 2 -
alpha with its 95% bootstrap interval and Liu's line dimension (of a 1-D cut: 0..1).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trainability.results.files import atomic_path

CSV_COLUMNS = (
    "experiment",
    "condition",
    "ours",
    "q25",
    "q75",
    "uncertainty",
    "uncertainty_low",
    "uncertainty_high",
    "line",
    "paper",
    "difference",
    "resolution",
    "frames",
    "decades",
)
MARKDOWN_COLUMNS = (
    "experiment",
    "condition",
    "box count",
    "spread (q25–q75)",
    "uncertainty exponent",
    "95% interval",
    "line (Liu)",
    "paper",
    "difference",
    "resolution",
    "frames",
    "decades",
)


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _fmt(x: float | None, spec: str) -> str:
    return "" if x is None else format(x, spec)


def dimension_table(rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(CSV text, Markdown text) comparing our dimensions with the paper's.

    Each row: ``experiment``, ``title``, ``dimension``, ``q25``, ``q75``,
    ``paper_dimension`` (None when the paper has none), ``resolution``,
    ``frames``, ``decades`` (the zoom the sequence spans, (frames - 1) *
    log10(factor); 0 for a single frame); optional ``uncertainty``,
    ``uncertainty_low``, ``uncertainty_high`` and ``line`` (None or absent: not
    measured; NaN: measured, no boundary); optional ``dimension_reason``: why the box count
    has no dimension (shown as ``n/a (reason)``). ``difference`` is ours minus the
    paper's. The CSV keeps the quartiles in separate columns and more digits;
    the Markdown shows them as one spread column and decades to one decimal.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    md = [
        "| " + " | ".join(MARKDOWN_COLUMNS) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(MARKDOWN_COLUMNS) - 2)) + "|",
    ]
    for row in rows:
        ours, q25, q75 = (_finite(row.get(k)) for k in ("dimension", "q25", "q75"))
        ue, ue_lo, ue_hi, line = (
            _finite(row.get(k)) for k in ("uncertainty", "uncertainty_low", "uncertainty_high", "line")
        )
        paper = _finite(row.get("paper_dimension"))
        diff = None if ours is None or paper is None else ours - paper
        resolution = row.get("resolution")
        frames = row.get("frames")
        decades = _finite(row.get("decades"))
        writer.writerow(
            [
                row["experiment"],
                row["title"],
                _fmt(ours, ".4f"),
                _fmt(q25, ".4f"),
                _fmt(q75, ".4f"),
                _fmt(ue, ".4f"),
                _fmt(ue_lo, ".4f"),
                _fmt(ue_hi, ".4f"),
                _fmt(line, ".4f"),
                _fmt(paper, ".2f"),
                _fmt(diff, "+.4f"),
                "" if resolution is None else resolution,
                "" if frames is None else frames,
                _fmt(decades, ".4f"),
            ]
        )
        spread = "" if q25 is None or q75 is None else f"{q25:.2f}–{q75:.2f}"
        if isinstance(resolution, (int, np.integer)):
            shown_resolution = f"{resolution}×{resolution}"
        else:
            shown_resolution = "" if resolution is None else str(resolution)
        cells = [
            str(row["experiment"]),
            str(row["title"]),
            _fmt(ours, ".2f") or (f"n/a ({row['dimension_reason']})" if row.get("dimension_reason") else ""),
            spread,
            _fmt(ue, ".2f") or "—",
            "" if ue_lo is None or ue_hi is None else f"{ue_lo:.2f}–{ue_hi:.2f}",
            _fmt(line, ".2f") or "—",
            _fmt(paper, ".2f") or "—",
            _fmt(diff, "+.2f") or "—",
            shown_resolution,
            "" if frames is None else str(frames),
            _fmt(decades, ".1f"),
        ]
        md.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return buffer.getvalue(), "\n".join(md) + "\n"


def write_dimension_table(
    rows: Sequence[Mapping[str, Any]], csv_path: str | os.PathLike, md_path: str | os.PathLike
) -> None:
    """Write ``dimension_table(rows)`` to a CSV and a Markdown file."""
    for path, text in zip((csv_path, md_path), dimension_table(rows)):
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
