"""The diagnostic figure of Liu's line dimension: label changes against the grid level."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from trainability.boundary.line_dimension import LineDimension
from trainability.figures.style import TITLE_STYLE


def line_dimension_figure(result: LineDimension, title: str) -> Figure:
    """log2 N(k) against k, the fitted levels marked, the fitted line and its slope."""
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.add_subplot()
    ks, counts = np.asarray(result.ks), np.asarray(result.counts, dtype=float)
    shown = counts > 0  # log2 0 is undefined
    ax.plot(ks[shown], np.log2(counts[shown]), "o", color="grey", markersize=4, label="N(k)")
    if result.k_min is not None:
        fitted = shown & (ks >= result.k_min) & (ks <= result.k_max)
        ax.plot(ks[fitted], np.log2(counts[fitted]), "o", color="black", markersize=5, label="fitted levels")
        line_k = np.array([result.k_min, result.k_max], dtype=float)
        ax.plot(
            line_k,
            result.intercept + result.dimension * line_k,
            "--",
            color="tab:red",
            label=f"slope (dimension) {result.dimension:.3f}",
        )
    else:
        ax.text(0.5, 0.5, result.reason or "no fit", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("level k (2^k + 1 points on the line)")
    ax.set_ylabel("log2 N(k), label changes between neighbours")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title, **{**TITLE_STYLE, "fontsize": 11})
    return fig
