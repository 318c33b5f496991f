"""What every figure shares: the paper's colour map, title style, a small palette, and
writing a figure to its files (each under a temporary name, then renamed)."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from trainability.results.files import atomic_path

COLOUR_MAP = "Spectral"  # the paper's: blue converged, red diverged, paler the faster
TITLE_STYLE = {"fontweight": "bold", "family": "serif", "fontsize": 13}
BLUE, PALE_BLUE, GREY, RED = "#2b5d8a", "#9ec3e0", "#9a9a9a", "#c0392b"


def save_figure(fig: Figure, *paths: str | os.PathLike | None, dpi: float = 150) -> Figure:
    """Write ``fig`` to each path (its format from the suffix; None is skipped); returns it."""
    for path in paths:
        if path is None:
            continue
        fmt = Path(path).suffix.lstrip(".").lower() or None
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
    return fig
