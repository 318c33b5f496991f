"""Figures of a zoom sequence: native frame images, a strip of frames, dimension against depth.

A zoom sequence is frames k = 0..n-1 of one experiment, each window
``factor`` times narrower than the one before, all concentric; frame k lies
k * log10(factor) decades deep. The native image of a frame has one pixel
per grid point in the paper's colours (:func:`trainability.figures.landscapes.plot_landscape`'s
mapping, without axes); the strip shows a few of them side by side, and the
dimension-against-depth figure shows each frame's own box-counting slopes,
the evidence that the boundary stays fractal over the decades zoomed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from trainability.boundary.box_counting import FrameSlopes
from trainability.boundary.scoring import rank_colour_values
from trainability.figures.landscapes import landscape_figure
from trainability.figures.style import BLUE, COLOUR_MAP, PALE_BLUE, RED, TITLE_STYLE
from trainability.results.files import atomic_path

STRIP_COUNT = 8  # frames shown in a zoom strip
STRIP_ROW_LENGTH = 4  # more frames than this go on two rows
STRIP_READ_SIZE = 1024  # frame images are box-averaged down to at most this many pixels a side
REFERENCE_PER_FRAME = 4096  # quantiles of each frame in a sequence's shared colour scale
FRAME_MEDIAN_COLOUR, FRAME_RANGE_COLOUR, SEQUENCE_COLOUR, PAPER_COLOUR = BLUE, PALE_BLUE, "black", RED


# --------------------------------------------------------------------------- frame images


def frame_rgb(values: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """(R, C, 3) uint8 picture of a landscape, one pixel per grid point, top row first.

    Colours as the landscape panels: rank-equalised convergence measure,
    ``Spectral``, range [-1, 1], ranked among ``values`` themselves or among
    ``reference`` (a whole sequence's, :func:`sequence_reference`). Row 0 of
    ``values`` (the lowest y) becomes the bottom row of the picture, as
    ``origin="lower"`` shows it.
    """
    values = np.asarray(values)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"values must be a non-empty 2-D array, got shape {values.shape}")
    rgba = colormaps[COLOUR_MAP](Normalize(-1, 1)(rank_colour_values(values, reference)), bytes=True)
    return np.ascontiguousarray(rgba[::-1, :, :3])


def sequence_reference(frames: Iterable[np.ndarray], per_frame: int = REFERENCE_PER_FRAME) -> np.ndarray:
    """Values that stand for a whole sequence's, for one colour scale over all its frames:
    each frame's ``per_frame`` quantiles (every n / per_frame-th of its sorted values), pooled.

    Each frame ranked among its own values alone fills the whole colour range, so the
    same measure gets other colours in neighbouring frames, and a deeper frame stacked
    inside a shallower one (the zoom video) shows as a square of other colours.
    """
    pooled = []
    for values in frames:
        flat = np.sort(np.asarray(values, dtype=np.float64).ravel())
        pooled.append(flat[:: max(1, flat.size // per_frame)])
    if not pooled:
        raise ValueError("a sequence reference needs at least one frame")
    return np.concatenate(pooled)


def save_frame_image(values: np.ndarray, path: str | os.PathLike) -> None:
    """Write :func:`frame_rgb` of a landscape as a PNG of exactly R x C pixels, no axes.

    RGB without alpha: half the bytes to compress of ``matplotlib.image.imsave``'s
    RGBA, which matters at 4096^2.
    """
    rgb = frame_rgb(values)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def frame_panel_figure(
    values: np.ndarray, window: Sequence[Sequence[float]], phase_space: str, title: str | None
) -> Figure:
    """A frame as a landscape panel with axes; ``window`` = [[x_lo, x_hi], [y_lo, y_hi]] (numbers,
    or a double-double frame's decimal strings)."""
    if np.shape(window) != (2, 2):
        raise ValueError(f"window must be [[x_lo, x_hi], [y_lo, y_hi]], got shape {np.shape(window)}")
    x_bounds, y_bounds = (tuple(v if isinstance(v, str) else float(v) for v in axis) for axis in window)
    return landscape_figure(values, x_bounds, y_bounds, phase_space, title)


def read_frame_image(path: str | os.PathLike, max_size: int = STRIP_READ_SIZE) -> np.ndarray:
    """A frame PNG as a (rows, columns, 3) uint8 RGB array, box-averaged to at most ``max_size`` a side.

    The strip shows each frame a few hundred pixels wide, so averaging blocks
    of pixels loses nothing visible and keeps eight 4096^2 frames in memory
    at once affordable.
    """
    if max_size < 1:
        raise ValueError(f"max_size must be a positive number of pixels, got {max_size}")
    with Image.open(path) as picture:
        picture = picture.convert("RGB")
        factor = math.ceil(max(picture.size) / max_size)
        if factor > 1:
            picture = picture.reduce(factor)
        return np.asarray(picture)


# --------------------------------------------------------------------------- zoom strip


def strip_frames(n_frames: int, count: int = STRIP_COUNT) -> list[int]:
    """Up to ``count`` frame indices spread evenly over 0..n_frames-1, first and last included.

    Strictly increasing and deterministic: all frames when there are at most
    ``count``, else the nearest integers to ``count`` evenly spaced points
    (spaced more than one apart, so they never collide).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if count < 2:
        raise ValueError(f"count must be at least 2 (the first and the last frame), got {count}")
    if n_frames <= count:
        return list(range(n_frames))
    points = np.linspace(0, n_frames - 1, count)
    return [int(k) for k in np.floor(points + 0.5)]


def frame_label(frame: int, depth: float) -> str:
    """'frame 12 · 3.6 decades'."""
    return f"frame {frame} · {depth:.1f} decades"


def zoom_strip_figure(images: Mapping[int, np.ndarray], depths: Sequence[float], title: str | None) -> Figure:
    """The chosen frames' images side by side, in frame order (two rows when more than four).

    ``images`` maps a frame number to its RGB image; ``depths`` gives the
    depth in decades of every frame of the sequence, indexed by frame number.
    """
    if not images:
        raise ValueError("images is empty: no frames to show")
    frames = sorted(images)
    if frames[0] < 0 or frames[-1] >= len(depths):
        raise ValueError(f"images holds frames {frames}, but depths covers frames 0..{len(depths) - 1}")
    n_rows = 1 if len(frames) <= STRIP_ROW_LENGTH else 2
    n_cols = math.ceil(len(frames) / n_rows)
    fig = Figure(figsize=(2.6 * n_cols, 2.9 * n_rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    for ax, frame in zip(axes, frames):
        # An image already has its orientation; "upper" shows its first row at the top, as stored.
        ax.imshow(images[frame], origin="upper", interpolation="antialiased")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(frame_label(frame, float(depths[frame])), fontsize="medium")
    for ax in axes[len(frames) :]:
        ax.set_visible(False)
    if title is not None:
        fig.suptitle(title, **TITLE_STYLE)
    return fig


# --------------------------------------------------------------------------- dimension against depth


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(float(x))


def dimension_depth_figure(
    depths: Sequence[float],
    summaries: Sequence[FrameSlopes],
    sequence_median: float | None,
    paper_dimension: float | None,
    title: str | None,
    edges: Sequence[int] | None = None,
    resolution: int | None = None,
    float64_limit: float | None = None,
) -> Figure:
    """Each frame's median local slope against its depth, with the frame's spread; below,
    each frame's edge pixels (``edges``), so that a smooth frame shows as such; a vertical
    line at ``float64_limit`` (decades; a double-double sequence's) marks where float64 frames
    would turn blocky.

    Dark error bars span each frame's q25-q75, light bars its min-max; frames
    without finite slopes are left out. The sequence's dimension (median of
    all slopes of all frames) is a solid line, the paper's a dashed one. In the
    lower panel a dotted line marks ``resolution`` edge pixels, about what a
    straight boundary across a frame makes.
    """
    if len(depths) != len(summaries):
        raise ValueError(
            f"depths and summaries must have one entry per frame, got {len(depths)} and {len(summaries)}"
        )
    shown = [(float(d), s) for d, s in zip(depths, summaries) if s.n_slopes > 0 and _finite(s.median)]
    if edges is None:
        fig = Figure(figsize=(6.4, 4.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = Figure(figsize=(6.4, 5.6), layout="constrained")
        ax, ax_edges = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
        _plot_edges(ax_edges, depths, edges, resolution)
    if shown:
        x = np.array([d for d, _ in shown])
        median, q25, q75, low, high = (
            np.array([getattr(s, k) for _, s in shown]) for k in ("median", "q25", "q75", "min", "max")
        )
        ax.vlines(
            x, low, high, color=FRAME_RANGE_COLOUR, linewidth=5, alpha=0.8, label="frame min–max", zorder=1
        )
        ax.errorbar(
            x,
            median,
            yerr=np.vstack([median - q25, q75 - median]),
            fmt="o",
            color=FRAME_MEDIAN_COLOUR,
            markersize=5,
            elinewidth=1.5,
            capsize=3,
            label="frame median (q25–q75)",
            zorder=3,
        )
        span = x.max() - x.min()
        ax.set_xlim(x.min() - 0.05 * span - 0.1, x.max() + 0.05 * span + 0.1)
        note = f"{len(shown)} of {len(summaries)} frames with slopes, over {span:.1f} decades"
    else:
        note = f"no finite slopes in any of {len(summaries)} frames"
    ax.text(0.02, 0.03, note, transform=ax.transAxes, fontsize="small", color="dimgrey")
    if _finite(sequence_median):
        m = float(sequence_median)
        ax.axhline(m, color=SEQUENCE_COLOUR, linewidth=1.2, label=f"sequence median {m:.3f}", zorder=2)
        # The value sits just right of the axes, like a tick label, clear of the points.
        ax.annotate(
            f"{m:.3f}",
            (1.0, m),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize="small",
            fontweight="bold",
        )
    if _finite(paper_dimension):
        p = float(paper_dimension)
        ax.axhline(p, color=PAPER_COLOUR, linestyle="--", linewidth=1.2, label=f"paper {p:.2f}", zorder=2)
    if float64_limit is not None:
        for axes in [ax] if edges is None else [ax, ax_edges]:
            axes.axvline(float64_limit, color="0.35", linestyle=":", linewidth=1.2, zorder=2)
        ax.annotate(
            "float64 limit",
            (float64_limit, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize="small",
            color="0.35",
        )
    if edges is None:
        ax.set_xlabel("depth (decades of zoom)")
    ax.set_ylabel("box-counting dimension")
    ax.grid(True, color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    if title is not None:
        ax.set_title(title, **TITLE_STYLE)
    return fig


def _plot_edges(ax, depths: Sequence[float], edges: Sequence[int], resolution: int | None) -> None:
    """Each frame's edge pixels against its depth (log scale), the straight-line level dotted."""
    if len(edges) != len(depths):
        raise ValueError(f"edges must have one entry per frame, got {len(edges)} for {len(depths)}")
    counts = np.maximum(np.asarray(edges, dtype=float), 0.5)  # a frame without edges at the bottom
    ax.semilogy(depths, counts, "o-", color=FRAME_MEDIAN_COLOUR, markersize=3, linewidth=0.8)
    if resolution:
        ax.axhline(resolution, color="grey", linestyle=":", linewidth=1, label="a straight boundary")
        ax.legend(loc="best", fontsize="small")
    ax.set_ylabel("edge pixels")
    ax.set_xlabel("depth (decades of zoom)")
    ax.grid(True, color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
