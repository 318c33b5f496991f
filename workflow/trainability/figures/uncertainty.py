"""The uncertainty-exponent diagnostic: f(ε) against ε on log axes, with the fit.

One panel: the fraction f of points whose label changes under a perturbation
of size ε (ε relative to the window's extent), with binomial error bars
sqrt(c (1 - f)) / M; the ε values of the scaling range are filled, the
others hollow; the fitted power law f = 10**intercept * ε**α is drawn over
the scaling range, and the legend gives α and D = d − α with its 95%
bootstrap interval. ε with no changed point cannot be shown on log axes and
are left out. Built as a plain ``Figure`` (no pyplot); each file is written
to a temporary name beside its target and renamed into place
(:func:`trainability.results.files.atomic_path`), as in :mod:`trainability.figures.landscapes`.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure

from trainability.boundary.uncertainty import UncertaintyResult
from trainability.figures.style import BLUE, GREY, RED, TITLE_STYLE

USED_COLOUR, OTHER_COLOUR, FIT_COLOUR = BLUE, GREY, RED


def _dimension_text(result: UncertaintyResult) -> str:
    if not math.isfinite(result.dimension):
        return "D n/a"
    text = f"D = {result.d} − α = {result.dimension:.3f}"
    if math.isfinite(result.dimension_low) and math.isfinite(result.dimension_high):
        text += f"  (95% bootstrap {result.dimension_low:.3f}–{result.dimension_high:.3f})"
    return text


def uncertainty_figure(result: UncertaintyResult, title: str) -> Figure:
    """The diagnostic as a Figure: log10 f against log10 ε, scaling range highlighted, fitted line."""
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    eps = np.asarray(result.eps, dtype=float)
    counts = np.asarray(result.counts, dtype=float)
    fraction = counts / result.n_points
    error = np.sqrt(counts * (1 - fraction)) / result.n_points
    shown = counts > 0
    used = np.asarray(result.used, dtype=bool) & shown
    other = shown & ~used
    # Error bars may reach 0, which log axes cannot show: clip them just above it.
    lower = np.minimum(error, fraction * (1 - 1e-9))
    for mask, colour, face, label in (
        (used, USED_COLOUR, USED_COLOUR, f"scaling range ({int(used.sum())} ε)"),
        (other, OTHER_COLOUR, "white", "other ε"),
    ):
        if mask.any():
            ax.errorbar(
                eps[mask],
                fraction[mask],
                yerr=[lower[mask], error[mask]],
                fmt="o",
                color=colour,
                markerfacecolor=face,
                markersize=5,
                capsize=2,
                linewidth=1,
                label=label,
            )
    ax.set_xscale("log")
    if shown.any():
        ax.set_yscale("log")
    if math.isfinite(result.alpha):
        span = np.geomspace(eps[result.used].min(), eps[result.used].max(), 50)
        ax.plot(
            span,
            10.0**result.intercept * span**result.alpha,
            color=FIT_COLOUR,
            linewidth=1.5,
            label=rf"fit $f \propto \varepsilon^\alpha$, α = {result.alpha:.3f}"
            f"\n{_dimension_text(result)}",
        )
    else:
        message = textwrap.fill("no fit" if result.reason is None else f"no fit: {result.reason}", 50)
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center")
    if eps.size:
        ax.set_xlim(eps.min() / 1.5, eps.max() * 1.5)
    ax.set_xlabel("perturbation ε (fraction of the window's extent)")
    ax.set_ylabel("fraction f(ε) of points whose label changes")
    ax.set_title(title, **TITLE_STYLE)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small", title=f"M = {result.n_points} points")
    return fig
