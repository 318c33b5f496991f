"""Edges of the trainable region and their box-counting fractal dimension.

Matches the paper's procedure: the edge map marks 2x2 windows whose values
hold both signs, and box counting follows ``porespy.metrics.boxcount`` with
its defaults (without depending on porespy): box sizes
``unique(int(logspace(1, log10(min(shape)), 10)))``; non-overlapping tiles
from (0, 0), partial tiles at the right and bottom edges included; a tile
counts when it holds both edge and non-edge pixels; local slope
``-gradient(log count, log size)``. The dimension is the median of all local
slopes over all frames of a zoom sequence. A frame too small for two of those
box sizes (``measurable``: below ``smallest_measurable_resolution``) has no
slopes, and a sequence without any gets NaN with the ``reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainability.contract import numerics


def edge_map(values: np.ndarray) -> np.ndarray:
    """Bool (R-1, C-1) map: True where the 2x2 window of ``values`` holds both signs.

    Zero counts as neither sign (as ``max * min < 0`` in the paper's code);
    NaN counts as positive (diverged), consistent with the colour map.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"values must be 2-D, got shape {x.shape}")
    # max > 0 and min < 0 over a window <=> it holds a positive and a negative
    # pixel; working on boolean sign maps avoids a (4, R, C) float stack.
    positive = (x > 0) | np.isnan(x)
    negative = x < 0
    return _any_in_window(positive) & _any_in_window(negative)


def _any_in_window(mask: np.ndarray) -> np.ndarray:
    """(R-1, C-1) map: True where the 2x2 window of ``mask`` holds a True."""
    rows = mask[1:, :] | mask[:-1, :]
    return rows[:, 1:] | rows[:, :-1]


@dataclass
class BoxCount:
    """Box counts of one binary image at several box sizes."""

    sizes: np.ndarray  # box edge lengths in pixels (int)
    counts: np.ndarray  # tiles holding both phases (int)
    slopes: np.ndarray  # local -d log(count) / d log(size); NaN where undefined
    # True pixels of the image (a frame's edge pixels: a straight boundary across an
    # R x R frame makes about R of them, a fractal one many times more).
    pixels: int = 0

    def to_dict(self) -> dict[str, list]:
        return {
            "sizes": [int(s) for s in self.sizes],
            "counts": [int(c) for c in self.counts],
            "slopes": [_json_float(s) for s in self.slopes],
            "edge_pixels": int(self.pixels),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoxCount:
        return cls(
            sizes=np.asarray(data["sizes"], dtype=np.int64),
            counts=np.asarray(data["counts"], dtype=np.int64),
            slopes=np.asarray([np.nan if s is None else s for s in data["slopes"]], dtype=float),
            pixels=int(data.get("edge_pixels", 0)),
        )


def box_sizes(shape: tuple[int, ...], bins: int | Sequence[int] = 10) -> np.ndarray:
    """porespy's default sizes: unique(int(logspace(1, log10(min(shape)), bins))), with the
    logarithm and powers correctly rounded (numpy's may round a size such as 100 down to 99
    on one CPU and not on another)."""
    if isinstance(bins, (int, np.integer)):
        top = float(numerics.log10(min(shape)))
        return np.unique(numerics.logspace(1, top, int(bins)).astype(np.int64))
    return np.asarray(bins).astype(np.int64)


def _local_slopes(sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if sizes.size < 2:
        return np.full(sizes.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = -np.gradient(numerics.log(counts.astype(float)), numerics.log(sizes.astype(float)))
    return np.where(np.isfinite(slopes), slopes, np.nan)


def measurable(shape: tuple[int, ...], bins: int | Sequence[int] = 10) -> bool:
    """Whether box counting measures a slope on an image of ``shape``: at least 2 of its box
    sizes fit in the image (at most its smaller side; a larger box is the whole image again,
    and its count repeats the count of the whole image, which makes a slope of 0)."""
    return int(np.count_nonzero(box_sizes(shape, bins) <= min(shape))) >= 2


def smallest_measurable_resolution(bins: int | Sequence[int] = 10) -> int:
    """The frame resolution R from which on every frame's (R-1) x (R-1) edge map is
    ``measurable`` (porespy's sizes: 12). From an edge map of 12 pixels on, the default
    sizes run from 10 to about its side, so scanning up to 64 settles it."""
    unmeasurable = [r for r in range(2, 65) if not measurable((r - 1, r - 1), bins)]
    return max(unmeasurable) + 1 if unmeasurable else 2


def box_count(image: np.ndarray, bins: int | Sequence[int] = 10) -> BoxCount:
    """Tiled box counting of a 2-D boolean image, as ``porespy.metrics.boxcount``.

    For each size d the image is cut into d x d tiles from (0, 0) (the last
    row and column of tiles may be partial); a tile counts when it holds both
    True and False. Vectorised with a summed-area table: each tile's number of
    True pixels comes from four corner lookups, and a tile is mixed when that
    number lies strictly between 0 and the tile's area.
    """
    im = np.asarray(image, dtype=bool)
    if im.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {im.shape}")
    if im.size == 0:
        raise ValueError("image is empty")
    sizes = box_sizes(im.shape, bins)
    if np.any(sizes < 1):
        raise ValueError(f"box sizes must be positive, got {sizes}")

    rows, cols = im.shape
    # int32 suffices: a sum never exceeds the pixel count (< 2**31 here).
    table = np.zeros((rows + 1, cols + 1), dtype=np.int64 if im.size >= 2**31 else np.int32)
    np.cumsum(im, axis=0, dtype=table.dtype, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, dtype=table.dtype, out=table[1:, 1:])

    counts = np.empty(sizes.shape, dtype=np.int64)
    for k, d in enumerate(sizes):
        r = np.append(np.arange(0, rows, d), rows)  # tile boundaries, last tile partial
        c = np.append(np.arange(0, cols, d), cols)
        t = table[np.ix_(r, c)].astype(np.int64)
        ones = t[1:, 1:] - t[:-1, 1:] - t[1:, :-1] + t[:-1, :-1]
        area = np.outer(np.diff(r), np.diff(c))
        counts[k] = np.count_nonzero((ones > 0) & (ones < area))
    return BoxCount(
        sizes=sizes, counts=counts, slopes=_local_slopes(sizes, counts), pixels=int(table[-1, -1])
    )


def _json_float(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass
class DimensionEstimate:
    """Median of all finite local box-counting slopes, with their spread; ``reason``: why
    there is none (NaN), else None."""

    median: float
    q25: float
    q75: float
    n_slopes: int
    box_counts: list[BoxCount] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; NaN becomes None."""
        return {
            "median": _json_float(self.median),
            "q25": _json_float(self.q25),
            "q75": _json_float(self.q75),
            "n_slopes": int(self.n_slopes),
            "reason": self.reason,
            "box_counts": [bc.to_dict() for bc in self.box_counts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DimensionEstimate:
        def num(x: float | None) -> float:
            return np.nan if x is None else float(x)

        return cls(
            median=num(data["median"]),
            q25=num(data["q25"]),
            q75=num(data["q75"]),
            n_slopes=int(data["n_slopes"]),
            box_counts=[BoxCount.from_dict(b) for b in data.get("box_counts", [])],
            reason=data.get("reason"),
        )


def fractal_dimension(
    edge_maps: Sequence[np.ndarray] | np.ndarray, bins: int | Sequence[int] = 10
) -> DimensionEstimate:
    """Box-counting dimension over the frames of a zoom sequence.

    ``edge_maps``: a list of 2-D boolean edge maps (or one 2-D map, or a 3-D
    stack of frames). Returns the median and quartiles of every finite local
    slope of every frame; slopes where a count is 0 are left out, and so are all
    of a frame that is not ``measurable``.
    """
    if isinstance(edge_maps, np.ndarray) and edge_maps.ndim == 2:
        edge_maps = [edge_maps]
    counts = []
    for frame in edge_maps:
        bc = box_count(frame, bins)
        if not measurable(np.shape(frame), bins):
            bc.slopes = np.full(bc.slopes.shape, np.nan)
        counts.append(bc)
    slopes = np.concatenate([bc.slopes for bc in counts]) if counts else np.empty(0)
    slopes = slopes[np.isfinite(slopes)]
    if slopes.size == 0:
        return DimensionEstimate(np.nan, np.nan, np.nan, 0, counts, _why_no_slopes(edge_maps, bins))
    q25, median, q75 = np.percentile(slopes, [25, 50, 75])
    return DimensionEstimate(float(median), float(q25), float(q75), int(slopes.size), counts)


def _why_no_slopes(edge_maps, bins) -> str:
    if len(edge_maps) and not any(measurable(np.shape(frame), bins) for frame in edge_maps):
        resolution = min(np.shape(edge_maps[0])) + 1  # an edge map is one pixel smaller than its frame
        return (
            f"resolution {resolution} < {smallest_measurable_resolution(bins)}, the smallest at which "
            f"box counting has 2 box sizes"
        )
    return "no boundary: no box at 2 or more sizes holds both edge and non-edge pixels"


@dataclass
class FrameSlopes:
    """Spread of the finite local slopes of one frame of a zoom sequence."""

    median: float
    q25: float
    q75: float
    min: float
    max: float
    n_slopes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; NaN becomes None."""
        spread = {k: _json_float(getattr(self, k)) for k in ("median", "q25", "q75", "min", "max")}
        return {**spread, "n_slopes": int(self.n_slopes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameSlopes:
        def num(x: float | None) -> float:
            return np.nan if x is None else float(x)

        spread = {k: num(data[k]) for k in ("median", "q25", "q75", "min", "max")}
        return cls(**spread, n_slopes=int(data["n_slopes"]))


def frame_slope_summary(estimate: DimensionEstimate) -> list[FrameSlopes]:
    """Per frame of ``estimate``, in frame order: the spread of its finite local slopes.

    Each frame's median, quartiles, min and max are over that frame's own
    local slopes only (the sequence's dimension, ``estimate.median``, pools
    the slopes of all frames, so it is not the median of these medians).
    Quartiles use ``np.percentile``'s default (linear) interpolation, as
    :func:`fractal_dimension`. A frame without finite slopes gets NaN
    throughout and ``n_slopes`` 0.
    """
    summaries = []
    for bc in estimate.box_counts:
        slopes = np.asarray(bc.slopes, dtype=float)
        slopes = slopes[np.isfinite(slopes)]
        if slopes.size == 0:
            summaries.append(FrameSlopes(np.nan, np.nan, np.nan, np.nan, np.nan, 0))
            continue
        q25, median, q75 = np.percentile(slopes, [25, 50, 75])
        summaries.append(
            FrameSlopes(
                float(median), float(q25), float(q75), float(slopes.min()), float(slopes.max()), slopes.size
            )
        )
    return summaries
