"""Automatic zoom centres: a point on the trainability boundary at every scale.

The search (``find_centre``) needs only a function ``converged(x, y)`` that
trains the pixels at log10 coordinates ``x, y`` (flat arrays) and says which
converged; it is pure and deterministic given that function.

1. Descent. Level k is a pilot frame (``pilot`` x ``pilot`` pixels) over the
   window of frame k (the configured window's widths / factor**k) about the
   current centre. Among the windows of frame k + 1 whose centre lies within
   ``MOVE`` of frame k's width of the current centre (on the pilot's pixel
   lattice), the one holding the most edge pixels (2x2 windows of both signs,
   as in trainability.dimension) becomes the next centre; ties go to the one
   nearest the current centre, then to the lowest (row, column) offset. Moves
   shrink with the frames, so the centre never leaves the central half of the
   configured window, and each frame k about the final point covers most of
   pilot frame k: the frames show the most boundary-rich region at each scale.
2. Pinning. At the deepest level, the converged/diverged pair of neighbouring
   pilot pixels nearest the centre is bisected (``SECTIONS`` points per round:
   one training run each) until the pair is closer than ``tolerance``. The
   centre is the midpoint of the final pair, so the boundary passes within
   tolerance / 2 of it and every frame, concentric about it, has the boundary
   through its centre.

A level whose candidate windows hold no edge pixel stops the search with
``NoBoundary``, naming the frame. The cost is ``depth * pilot**2`` pixels plus
``SECTIONS`` per bisection round (``CentreSearch.pixels_trained``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Largest move of the centre per level, as a fraction of (1 - 1/factor) times the
# frame's width: summed over all levels it stays below a quarter of frame 0's width.
MOVE = 0.25
# Points per bisection round (one training run of this many pixels).
SECTIONS = 63
# A frame's central region: the middle quarter of each axis of its edge map.
CENTRAL_FRACTION = 0.25

Converged = Callable[[np.ndarray, np.ndarray], np.ndarray]


class NoBoundary(RuntimeError):
    """A frame's central region holds no boundary."""

    def __init__(self, frame: int, message: str):
        self.frame = frame
        super().__init__(message)


@dataclass
class Level:
    """One pilot frame of the descent: its centre and the edges it saw."""

    frame: int
    centre: tuple[float, float]
    edges: int  # edge pixels of the whole pilot frame
    chosen_edges: int  # edge pixels in the central half of the next window (0 at the deepest level)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "centre": list(self.centre),
            "edges": self.edges,
            "chosen_edges": self.chosen_edges,
        }


@dataclass
class CentreSearch:
    """The result: the centre, the bracketing pair it came from, and the descent."""

    centre: tuple[float, float]
    converged_end: tuple[float, float]
    diverged_end: tuple[float, float]
    pixels_trained: int
    levels: list[Level] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "centre": list(self.centre),
            "converged_end": list(self.converged_end),
            "diverged_end": list(self.diverged_end),
            "pixels_trained": self.pixels_trained,
            "levels": [level.to_dict() for level in self.levels],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CentreSearch:
        return cls(
            centre=tuple(data["centre"]),
            converged_end=tuple(data["converged_end"]),
            diverged_end=tuple(data["diverged_end"]),
            pixels_trained=int(data["pixels_trained"]),
            levels=[
                Level(int(v["frame"]), tuple(v["centre"]), int(v["edges"]), int(v["chosen_edges"]))
                for v in data.get("levels", [])
            ],
        )


def central_edges(edges: np.ndarray, fraction: float = CENTRAL_FRACTION) -> int:
    """Edge pixels in the central region of a frame's edge map (the middle ``fraction``
    of each axis, at least 2 x 2 pixels): the boundary a frame about its centre must show."""
    counts = []
    for n in edges.shape:
        size = min(n, max(2, int(round(n * fraction))))
        counts.append(slice((n - size) // 2, (n - size) // 2 + size))
    return int(np.count_nonzero(edges[tuple(counts)]))


def pilot_axes(centre, half_widths, pilot: int) -> tuple[np.ndarray, np.ndarray]:
    """log10 coordinates of a pilot frame's columns (x) and rows (y)."""
    return tuple(np.linspace(c - h, c + h, pilot) for c, h in zip(centre, half_widths))


def pilot_signs(converged: Converged, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(rows = y, columns = x) bool map of which pilot pixels converged."""
    gx, gy = np.meshgrid(xs, ys)
    signs = np.asarray(converged(gx.ravel(), gy.ravel()), dtype=bool)
    if signs.shape != (gx.size,):
        raise ValueError(f"converged() returned shape {signs.shape}, expected ({gx.size},)")
    return signs.reshape(gx.shape)


def edge_pixels(signs: np.ndarray) -> np.ndarray:
    """(p-1, p-1) map: 2x2 windows holding both converged and diverged pixels."""
    any_true = signs[1:, 1:] | signs[1:, :-1] | signs[:-1, 1:] | signs[:-1, :-1]
    all_true = signs[1:, 1:] & signs[1:, :-1] & signs[:-1, 1:] & signs[:-1, :-1]
    return any_true & ~all_true


def best_offset(edges: np.ndarray, factor: float) -> tuple[int, int, int]:
    """(row, column) offset in pilot pixels of the next window, and the edges in its central half.

    Edge pixel (i, j) sits at pilot coordinate (i + 0.5, j + 0.5). Candidates
    are ranked by the edge pixels in the central half of the next window (where
    the level after can still move to), then by those in the whole window.
    """
    p = edges.shape[0] + 1
    span = p - 1  # the pilot's width in pixel spacings
    reach = int(np.floor(MOVE * (1 - 1 / factor) * span + 1e-9))
    half = span / factor / 2
    table = np.zeros((p, p), dtype=np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(edges, axis=0), axis=1)
    middle = span / 2

    def count(dr: int, dc: int, half_width: float) -> int:
        r_lo, r_hi = _inside(middle + dr, half_width, p - 1)
        c_lo, c_hi = _inside(middle + dc, half_width, p - 1)
        return int(table[r_hi, c_hi] - table[r_lo, c_hi] - table[r_hi, c_lo] + table[r_lo, c_lo])

    best = None
    for dr in range(-reach, reach + 1):
        for dc in range(-reach, reach + 1):
            inner = count(dr, dc, half / 2)
            key = (-inner, -count(dr, dc, half), dr * dr + dc * dc, dr, dc)
            if best is None or key < best[0]:
                best = (key, dr, dc, inner)
    _, dr, dc, inner = best
    return dr, dc, inner


def _inside(centre: float, half: float, n: int) -> tuple[int, int]:
    """[lo, hi): the edge pixels (at index + 0.5) inside [centre - half, centre + half]."""
    lo = int(np.ceil(centre - half - 0.5 - 1e-9))
    hi = int(np.floor(centre + half - 0.5 + 1e-9)) + 1
    return min(max(lo, 0), n), min(max(hi, 0), n)


def nearest_pair(signs: np.ndarray, xs: np.ndarray, ys: np.ndarray, centre):
    """The (converged, diverged) neighbouring pilot pixels nearest the centre, or None."""
    gx, gy = np.meshgrid(xs, ys)
    pairs = []
    horizontal = ((slice(None), slice(1, None)), (slice(None), slice(None, -1)))
    vertical = ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))
    for a, b in (horizontal, vertical):
        differ = signs[a] != signs[b]
        rows, cols = np.nonzero(differ)
        for r, c in zip(rows, cols):
            pa = (gx[a][r, c], gy[a][r, c])
            pb = (gx[b][r, c], gy[b][r, c])
            distance = ((pa[0] + pb[0]) / 2 - centre[0]) ** 2 + ((pa[1] + pb[1]) / 2 - centre[1]) ** 2
            good, bad = (pa, pb) if signs[a][r, c] else (pb, pa)
            pairs.append((distance, good, bad))
    if not pairs:
        return None
    pairs.sort(key=lambda item: (item[0], item[1], item[2]))
    return pairs[0][1], pairs[0][2]


def pin_boundary(converged: Converged, good, bad, tolerance: float) -> tuple[tuple, tuple, int]:
    """Bisect the segment good (converged) .. bad (diverged) down to ``tolerance``.

    Returns the final (converged, diverged) pair and the number of pixels trained.
    Stops early when float64 cannot place points between the two ends.
    """
    good, bad = np.asarray(good, float), np.asarray(bad, float)
    trained = 0
    t = np.arange(1, SECTIONS + 1) / (SECTIONS + 1)
    while np.max(np.abs(bad - good)) > tolerance:
        points = good[None, :] + t[:, None] * (bad - good)[None, :]
        inner = np.any(points != good, axis=1) & np.any(points != bad, axis=1)
        if not inner.any():
            break
        points = points[inner]
        signs = np.asarray(converged(points[:, 0], points[:, 1]), dtype=bool)
        trained += len(points)
        # The last converged point before the first diverged one keeps the bracket.
        first_bad = int(np.argmin(signs)) if not signs.all() else len(signs)
        new_good = points[first_bad - 1] if first_bad > 0 else good
        new_bad = points[first_bad] if first_bad < len(signs) else bad
        good, bad = new_good, new_bad
    return tuple(map(float, good)), tuple(map(float, bad)), trained


def _what_it_holds(signs: np.ndarray) -> str:
    if signs.all():
        return "every pilot pixel converged"
    if not signs.any():
        return "every pilot pixel diverged"
    return "the boundary lies only near its edges"


def _level(frame: int, depth: int) -> str:
    """Where the search stopped: a level of its own descent, which goes deeper than a short sequence."""
    return (
        f"centre search, level {frame} of 0..{depth - 1} (a pilot frame over frame {frame}'s window; the "
        f"search descends to the deepest frame the dtype resolves, whatever zoom.frames says, so that "
        f"adding frames never moves the centre)"
    )


def find_centre(
    converged: Converged,
    window0,
    factor: float,
    depth: int,
    pilot: int = 32,
    tolerance: float | None = None,
) -> CentreSearch:
    """A point on the boundary at the scale of frame ``depth - 1`` (see the module docstring).

    ``window0``: ((x_lo, x_hi), (y_lo, y_hi)) of frame 0, log10 units;
    ``tolerance``: how close the final bracketing pair gets (log10 units; default
    a thousandth of the deepest frame's width).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if pilot < 4:
        raise ValueError(f"pilot resolution must be >= 4, got {pilot}")
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    half0 = np.array([(hi - lo) / 2 for lo, hi in window0], dtype=float)
    centre = np.array([(lo + hi) / 2 for lo, hi in window0], dtype=float)
    levels: list[Level] = []
    trained = 0
    for frame in range(depth):
        half = half0 / factor**frame
        xs, ys = pilot_axes(centre, half, pilot)
        signs = pilot_signs(converged, xs, ys)
        trained += signs.size
        edges = edge_pixels(signs)
        if frame == depth - 1:
            levels.append(Level(frame, tuple(map(float, centre)), int(edges.sum()), 0))
            break
        dr, dc, count = best_offset(edges, factor)
        levels.append(Level(frame, tuple(map(float, centre)), int(edges.sum()), count))
        if count == 0:
            raise NoBoundary(
                frame,
                f"{_level(frame, depth)}: no boundary within the central region of the {pilot}x{pilot} pilot "
                f"frame about {centre.tolist()} (x {[float(xs[0]), float(xs[-1])]}, y "
                f"{[float(ys[0]), float(ys[-1])]}): {_what_it_holds(signs)}; choose a window whose central "
                f"half holds the boundary, or a larger pilot_resolution",
            )
        # Offsets are whole pilot pixels, so the next centre stays on this pilot's lattice.
        centre = centre + np.array([dc * (xs[1] - xs[0]), dr * (ys[1] - ys[0])])
    pair = nearest_pair(signs, xs, ys, centre)
    if pair is None:
        raise NoBoundary(
            depth - 1,
            f"{_level(depth - 1, depth)}: the deepest pilot frame about {centre.tolist()} holds no boundary "
            f"({_what_it_holds(signs)}); try a larger pilot_resolution",
        )
    if tolerance is None:
        tolerance = float(2 * half.max()) / 1000
    good, bad, bisected = pin_boundary(converged, *pair, tolerance)
    point = tuple(float((g + b) / 2) for g, b in zip(good, bad))
    return CentreSearch(point, good, bad, trained + bisected, levels)
