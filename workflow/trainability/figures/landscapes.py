"""Figures and tables: landscapes, box-counting diagnostics, the six-panel figure.

Styled after the paper's figure 1: rank-equalised convergence measure shown
with matplotlib's ``Spectral`` map (blue = trainable, red = diverged, paler =
faster), axes in log10 units with only the two extreme ticks, labelled with
as many digits as it takes to tell them apart.

Figures are built as plain ``matplotlib.figure.Figure`` objects, never through
``pyplot``: no global figure registry, no backend state, nothing to close, and
safe in worker processes without a display. Every file is written to a
temporary name beside its target and renamed into place when complete.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gmpy2
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from trainability.boundary.box_counting import DimensionEstimate
from trainability.boundary.scoring import rank_colour_values
from trainability.contract import numerics
from trainability.figures.style import COLOUR_MAP, TITLE_STYLE

AXIS_LABELS = {
    "lr_vs_lr": ("Input layer learning rate", "Output layer learning rate"),
    "paraminit_vs_lr": ("Input layer weight offset", "Learning rate"),
    "lr_vs_beta": ("Learning rate", "Momentum β"),
    "lr_vs_beta1": ("Learning rate", "Adam β₁"),
    "lr_vs_beta2": ("Learning rate", "Adam β₂"),
    "lr_vs_eps": ("Learning rate", "Adam ε"),
    "lr_vs_amplitude": ("Learning rate", "Amplitude ε of the cosine"),
    "lr_vs_wavelength": ("Learning rate", "Wavelength λ of the cosine"),
}
_SIGNIFICANT = 15  # digits after the point in the scientific form labels start from
PRECISE_SIGNIFICANT = 40  # the same for a double-double frame's (32 digits resolve its pixels)
LONG_LABEL = 20  # characters of a tick label beyond which a precise axis is labelled relative


# --------------------------------------------------------------------------- ticks


def extreme_tick_labels(lo_log10: float | str, hi_log10: float | str) -> tuple[str, str]:
    """Labels for 10**lo and 10**hi that differ in their last four digits.

    Both values are written in scientific notation with 15 digits after the
    point, then cut to the first differing digit plus three more (four
    significant digits if the exponents differ), e.g.
    ``1.90010080e+2`` / ``1.90011840e+2``. The exponent carries its sign and
    no zero padding, as in the paper's figure. Bounds given as decimal strings (a
    double-double frame's window) are raised at 192 bits and written with up to
    PRECISE_SIGNIFICANT digits, as many as tell them apart.
    """
    if isinstance(lo_log10, str) or isinstance(hi_log10, str):
        with numerics.precise_arithmetic():
            powers = [gmpy2.exp10(numerics.precise(v)) for v in (lo_log10, hi_log10)]
        parts = [format(v, f".{PRECISE_SIGNIFICANT}e").split("e") for v in powers]
        return _labels(parts, PRECISE_SIGNIFICANT)
    values = (10.0 ** float(lo_log10), 10.0 ** float(hi_log10))
    if not all(math.isfinite(v) and v > 0 for v in values):
        return f"{values[0]:g}", f"{values[1]:g}"
    return _labels([f"{v:.{_SIGNIFICANT}e}".split("e") for v in values], _SIGNIFICANT)


def _labels(parts: list[list[str]], significant: int) -> tuple[str, str]:
    """Two (mantissa, exponent) pairs cut to their first differing digit plus three more."""
    (mant_a, exp_a), (mant_b, exp_b) = parts
    digits_a, digits_b = mant_a.replace(".", ""), mant_b.replace(".", "")
    if int(exp_a) != int(exp_b):
        first_difference = 0
    else:
        first_difference = next(
            (k for k, (p, q) in enumerate(zip(digits_a, digits_b)) if p != q), significant
        )
    decimals = min(first_difference + 3, significant)

    def label(mantissa: str, exponent: str) -> str:
        return f"{mantissa[: 2 + decimals]}e{int(exponent):+d}"

    return label(mant_a, exp_a), label(mant_b, exp_b)


def _relative_axis(name: str, bounds) -> tuple[str, tuple[str, str]]:
    """(axis label, tick labels) of a precise axis: 10**(c + d), c the middle of the bounds (log10
    units, with the digits that tell the bounds apart), the ticks d = -h and +h."""
    with numerics.precise_arithmetic():
        lo, hi = (numerics.precise(v) for v in bounds)
        middle, half = (lo + hi) / 2, (hi - lo) / 2
        digits = 4 + max(0, int(gmpy2.floor(gmpy2.log10(abs(middle) / half)))) if half > 0 else 17
    label = f"{name}: 10^(c + d)\nc = {numerics.decimal(middle, min(digits, 55))}"
    offset = f"{float(half):.3g}"
    return label, (f"d = −{offset}", f"+{offset}")


def axis_labels(phase_space: str) -> tuple[str, str]:
    """(x label, y label) for a phase space."""
    try:
        return AXIS_LABELS[phase_space]
    except KeyError:
        raise ValueError(f"unknown phase space {phase_space!r}; known: {sorted(AXIS_LABELS)}") from None


# --------------------------------------------------------------------------- landscapes


def plot_landscape(
    ax: Axes,
    values: np.ndarray,
    x_bounds: tuple[float, float],
    y_bounds: tuple[float, float],
    phase_space: str,
    title: str | None = None,
) -> AxesImage:
    """Draw one landscape on ``ax``; bounds are (min, max) in log10 units.

    ``values`` is (rows = y, columns = x) with row 0 at the bottom. Bounds given as decimal
    strings (a double-double frame, perhaps narrower than float64 tells apart) span the
    axes' unit square, their ticks labelled with the precise values.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D, got shape {values.shape}")
    x0, x1 = (float(v) for v in x_bounds)
    y0, y1 = (float(v) for v in y_bounds)
    x_labels, y_labels = extreme_tick_labels(*x_bounds), extreme_tick_labels(*y_bounds)
    xlabel, ylabel = axis_labels(phase_space)
    if any(isinstance(v, str) for v in (*x_bounds, *y_bounds)):
        x0, x1, y0, y1 = 0.0, 1.0, 0.0, 1.0
        # Labels too long to sit side by side: the axis names the middle, the ticks the offsets.
        if max(map(len, x_labels + y_labels)) > LONG_LABEL:
            (xlabel, x_labels), (ylabel, y_labels) = (
                _relative_axis(name, bounds) for name, bounds in ((xlabel, x_bounds), (ylabel, y_bounds))
            )
    image = ax.imshow(
        rank_colour_values(values),
        extent=(x0, x1, y0, y1),
        origin="lower",
        cmap=COLOUR_MAP,
        vmin=-1,
        vmax=1,
        interpolation="nearest",
        aspect="auto",
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks([x0, x1], x_labels)
    ax.set_yticks([y0, y1], y_labels, rotation=90)
    # Long labels sit inside the axis span: first one starts at its tick,
    # last one ends at its tick.
    low_x, high_x = ax.get_xticklabels()
    low_x.set_horizontalalignment("left")
    high_x.set_horizontalalignment("right")
    low_y, high_y = ax.get_yticklabels()
    low_y.set_verticalalignment("bottom")
    high_y.set_verticalalignment("top")
    if title is not None:
        ax.set_title(title, **TITLE_STYLE)
    return image


def landscape_figure(
    values: np.ndarray,
    x_bounds: tuple[float, float],
    y_bounds: tuple[float, float],
    phase_space: str,
    title: str | None = None,
) -> Figure:
    """A one-panel landscape figure."""
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    plot_landscape(fig.add_subplot(), values, x_bounds, y_bounds, phase_space, title)
    return fig


# --------------------------------------------------------------------------- box counting


def boxcount_figure(estimate: DimensionEstimate) -> Figure:
    """Box counts and local slopes against box size, one line per frame."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_count, ax_slope = fig.subplots(1, 2)
    n = max(len(estimate.box_counts), 1)
    colours = [_frame_colour(k, n) for k in range(n)]
    for bc, colour in zip(estimate.box_counts, colours):
        counts = np.where(bc.counts > 0, bc.counts, np.nan).astype(float)  # log axes cannot show 0
        ax_count.plot(bc.sizes, counts, "-o", color=colour, markersize=3, linewidth=1)
        ax_slope.plot(bc.sizes, bc.slopes, "-o", color=colour, markersize=3, linewidth=1)
    ax_count.set_xscale("log")
    if any((bc.counts > 0).any() for bc in estimate.box_counts):
        ax_count.set_yscale("log")
    else:
        # A frame with no boundary (all pixels train, or none do) has nothing to count.
        ax_count.text(
            0.5, 0.5, "no boundary in any frame", transform=ax_count.transAxes, ha="center", va="center"
        )
    ax_count.set_xlabel("box edge length (pixels)")
    ax_count.set_ylabel("boxes holding edge and non-edge pixels")
    ax_slope.set_xscale("log")
    ax_slope.set_xlabel("box edge length (pixels)")
    ax_slope.set_ylabel("local slope  -d log N / d log size")
    if math.isfinite(estimate.median):
        ax_slope.axhline(
            estimate.median,
            color="black",
            linestyle="--",
            label=f"median {estimate.median:.3f} (IQR {estimate.q25:.3f}-{estimate.q75:.3f}, "
            f"{estimate.n_slopes} slopes)",
        )
        ax_slope.axhspan(estimate.q25, estimate.q75, color="grey", alpha=0.2)
        ax_slope.legend(loc="best", fontsize="small")
    ax_slope.set_title(f"{len(estimate.box_counts)} frame(s)", fontsize="medium")
    return fig


def _frame_colour(k: int, n: int) -> tuple[float, ...]:
    return colormaps["viridis"](k / max(n - 1, 1))


# --------------------------------------------------------------------------- six panels


def panel_title(title: str, dimension: float | None) -> str:
    """'<title> (fractal dim X.XX)', as the paper's panel titles."""
    if dimension is None or not math.isfinite(float(dimension)):
        return f"{title} (fractal dim n/a)"
    return f"{title} (fractal dim {float(dimension):.2f})"


def six_panel_figure(panels: Sequence[Mapping[str, Any]]) -> Figure:
    """Panels in rows of two, as the paper's figure 1 (any number of panels).

    Each panel: ``values``, ``x_bounds``, ``y_bounds`` (log10 units),
    ``phase_space``, ``title`` and ``dimension`` (None if unknown).
    """
    if not panels:
        raise ValueError("no panels to draw")
    n_cols = min(2, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    fig = Figure(figsize=(5 * n_cols, 4.4 * n_rows), layout="constrained")
    fig.get_layout_engine().set(wspace=0.08)  # a gutter between columns, as in the paper
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels):
        plot_landscape(
            ax,
            panel["values"],
            panel["x_bounds"],
            panel["y_bounds"],
            panel["phase_space"],
            panel_title(panel["title"], panel.get("dimension")),
        )
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return fig
