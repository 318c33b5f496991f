"""Pilot frames of the automatic centre search (trainability.boundary.centre): small frames trained
to see where the boundary runs, how rough it is, where to look next, and a bisection that
pins a boundary point. Pure functions of a ``converged(x, y)`` function and label maps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Largest move of a path's point per step, as a fraction of its probe's width: the moves
# of all later steps add up to less than half the entry probe's width.
MOVE = 0.25
# Points per bisection round (one training run of this many pixels).
SECTIONS = 63
# A frame's central region: the middle quarter of each axis of its edge map.
CENTRAL_FRACTION = 0.25

Converged = Callable[[np.ndarray, np.ndarray], np.ndarray]


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


def roughness(signs: np.ndarray) -> tuple[float, int]:
    """(log2 of the growth of the edge pixels from the every-other-pixel lattice to the whole
    probe, capped to [0, 2]; the probe's edge pixels). 0 where the boundary crosses less
    than half the probe's side, or not at all on the coarser lattice."""
    full = int(edge_pixels(signs).sum())
    half = int(edge_pixels(signs[::2, ::2]).sum())
    if full < signs.shape[0] / 2 or half == 0:
        return 0.0, full
    return float(min(max(math.log2(full / half), 0.0), 2.0)), full


def _inside(centre: float, half: float, n: int) -> tuple[int, int]:
    """[lo, hi): the edge pixels (at index + 0.5) inside [centre - half, centre + half]."""
    lo = int(np.ceil(centre - half - 0.5 - 1e-9))
    hi = int(np.floor(centre + half - 0.5 + 1e-9)) + 1
    return min(max(lo, 0), n), min(max(hi, 0), n)


def next_offsets(edges: np.ndarray, shrink: float, count: int) -> list[tuple[int, int, int]]:
    """Up to ``count`` (row, column, edges) offsets in pilot pixels of the next window
    (``shrink`` times narrower), richest first, at least half a next window apart.

    Edge pixel (i, j) sits at pilot coordinate (i + 0.5, j + 0.5). Candidates, whose moves
    are at most MOVE of the pilot's width, are ranked by the edge pixels in the central half
    of the next window (where the level after can still move to), then by those in the
    whole window, then by the smaller move; none without edges in the central half.
    """
    p = edges.shape[0] + 1
    span = p - 1  # the pilot's width in pixel spacings
    reach = int(np.floor(MOVE * span + 1e-9))
    half = span / shrink / 2
    table = np.zeros((p, p), dtype=np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(edges, axis=0), axis=1)
    middle = span / 2

    def inside(dr: int, dc: int, half_width: float) -> int:
        r_lo, r_hi = _inside(middle + dr, half_width, p - 1)
        c_lo, c_hi = _inside(middle + dc, half_width, p - 1)
        return int(table[r_hi, c_hi] - table[r_lo, c_hi] - table[r_hi, c_lo] + table[r_lo, c_lo])

    ranked = sorted(
        (-inside(dr, dc, half / 2), -inside(dr, dc, half), dr * dr + dc * dc, dr, dc)
        for dr in range(-reach, reach + 1)
        for dc in range(-reach, reach + 1)
    )
    chosen: list[tuple[int, int, int]] = []
    for minus_inner, _, _, dr, dc in ranked:
        if minus_inner == 0 or len(chosen) == count:
            break
        if all(max(abs(dr - r), abs(dc - c)) >= max(1.0, half) for r, c, _ in chosen):
            chosen.append((dr, dc, -minus_inner))
    return chosen


def crossings(signs: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> list[tuple[tuple, tuple]]:
    """(converged, diverged) ends of every pair of neighbouring pixels with different labels."""
    gx, gy = np.meshgrid(xs, ys)
    pairs = []
    horizontal = ((slice(None), slice(1, None)), (slice(None), slice(None, -1)))
    vertical = ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))
    for a, b in (horizontal, vertical):
        rows, cols = np.nonzero(signs[a] != signs[b])
        for r, c in zip(rows, cols):
            pa = (float(gx[a][r, c]), float(gy[a][r, c]))
            pb = (float(gx[b][r, c]), float(gy[b][r, c]))
            pairs.append((pa, pb) if signs[a][r, c] else (pb, pa))
    return pairs


def nearest_pair(signs: np.ndarray, xs: np.ndarray, ys: np.ndarray, centre):
    """The (converged, diverged) neighbouring pilot pixels nearest the centre, or None."""

    def distance(pair):
        (gx, gy), (bx, by) = pair
        return ((gx + bx) / 2 - centre[0]) ** 2 + ((gy + by) / 2 - centre[1]) ** 2

    pairs = crossings(signs, xs, ys)
    return min(pairs, key=lambda pair: (distance(pair), pair)) if pairs else None


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
