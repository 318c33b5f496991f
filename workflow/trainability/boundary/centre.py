"""Automatic zoom centres: a point where the trainability boundary is rough at every scale.

The search (``find_centre``) needs only a function ``converged(x, y)`` that trains the
pixels at log10 coordinates ``x, y`` (flat arrays) and says which converged; it is pure
and deterministic given that function.

Why not simply the most boundary: at the top of a sequence a boundary is often smooth
almost everywhere (tanh with dataset size 1: a curve across [-3, 6]**2 whose rough stretch
spans 0.06 of the window and turns rough only 2 to 3 decades down), and "most edge
pixels, greedy, one level at a time" follows any long smooth stretch (a straight line
scores the same at every level) and cannot leave it. So the search looks deeper before
it commits, and ranks by roughness, not by the amount of boundary:

1. Survey. A pilot frame of ``SURVEY_SCALE * pilot`` pixels per side over frame 0's
   window (the configured window) shows where the boundary runs. Every pair of
   neighbouring survey pixels with different labels whose midpoint lies in the
   candidates' region (the central half of the window, inset so that the later moves
   keep the centre in the central half) is a candidate; at most ``MAX_CANDIDATES``,
   spread along the boundary.
2. Entry. Each candidate is pinned onto the boundary by bisection and probed
   ``ENTRY_DECADES`` deeper: a ``pilot`` x ``pilot`` pilot frame about it at that level.
   The roughness of a probe, ``roughness``, is the growth of its number of edge pixels
   from its every-other-pixel lattice to all of it, log2(E_p / E_p/2): 1 along a smooth
   curve, D along a boundary of box dimension D, 2 for noise; 0 where the boundary
   barely crosses the probe.
3. Look-ahead descent. The ``BEAM`` best candidates descend ``step_levels`` levels at a
   time (the width shrinks about ``STEP_SHRINK``-fold per step): each path's latest probe
   offers its ``CHILDREN`` best next centres (the next probe's windows whose central half
   holds the most edge pixels, moves of at most ``pilots.MOVE`` of the probe's width, at
   least half a next window apart), every child is probed at the next level, and the
   ``BEAM`` best paths go on. A path ranks by its last ``RECENT`` probes: their mean
   roughness capped at ``ROUGH`` (fractal enough), then their edge pixels, then order. A
   stretch that looks busy at one level loses to one that stays rough below it.
4. Pinning. At the deepest level, the converged/diverged pair of neighbouring pilot
   pixels nearest the best path's point is bisected (``pilots.SECTIONS`` points per round)
   until the pair is closer than ``tolerance``; the centre is the pair's midpoint, so
   every frame, concentric about it, has the boundary through its centre.

Measured with the author's weights and data (500 steps, [-3, 6]**2, factor 2, 24**2
pilots, frames of 96**2 about the centre found): tanh with dataset size 1, whose old
search ended on straight boundaries (box-count medians 0.97-1.10), gets medians 1.64-1.91
from 3 decades down and 2,500-4,500 edge pixels a frame; deep linear 1.53-1.71 and
1,100-1,700. The centre stays in the central half of the window, so frame 0 about it
covers at least three quarters of each axis of the configured window.

A level whose probes hold no boundary stops the search with ``NoBoundary``. The cost is
the survey, ``pilots.SECTIONS`` per bisection round, and one pilot frame per candidate
and per child (``CentreSearch.pixels_trained``): about 125,000 pixels for 47 levels of
24**2 (39% of the 35 frames of 96**2 of config/zoom.yaml; 0.04% at 4096**2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainability.boundary.pilots import (
    Converged,
    crossings,
    edge_pixels,
    nearest_pair,
    next_offsets,
    pilot_axes,
    pilot_signs,
    pin_boundary,
    roughness,
)
from trainability.contract import grid

SURVEY_SCALE = 2  # the survey's side in pilot sides
MAX_CANDIDATES = 64  # entry candidates at most
ENTRY_DECADES = 2.0  # how much deeper than frame 0 the candidates are first probed
BEAM, CHILDREN = 3, 3  # paths kept, next centres each path offers
# Roughness this high is fractal enough: among paths that reach it, more boundary wins
# (a higher cap sends the search after sparse speckle: deep linear then passes through
# stretches of few edge pixels).
ROUGH = 1.3
# Paths are ranked by their last this many probes: a lineage rough long ago but smooth
# now loses to one rough now.
RECENT = 3
STEP_SHRINK = 4.0  # about how much narrower each step's probes are than the last
# Part of what a centre is made with (centre.json's made_with): bump when a change of the
# search changes the centres it finds, so that every automatic centre is found again.
SEARCH_VERSION = 2


class NoBoundary(RuntimeError):
    """A level of the search found no boundary where it looked."""

    def __init__(self, frame: int, message: str):
        self.frame = frame
        super().__init__(message)


@dataclass
class Level:
    """One probe of the chosen path: its level (frame number), centre, edge pixels, roughness."""

    frame: int
    centre: tuple[float, float]
    edges: int
    roughness: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "centre": list(self.centre),
            "edges": self.edges,
            "roughness": self.roughness,
        }


@dataclass
class CentreSearch:
    """The result: the centre, the bracketing pair it came from, and the chosen path."""

    centre: tuple[float, float]
    converged_end: tuple[float, float]
    diverged_end: tuple[float, float]
    pixels_trained: int
    candidates: int = 0
    levels: list[Level] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "centre": list(self.centre),
            "converged_end": list(self.converged_end),
            "diverged_end": list(self.diverged_end),
            "pixels_trained": self.pixels_trained,
            "candidates": self.candidates,
            "levels": [level.to_dict() for level in self.levels],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CentreSearch:
        levels = [
            Level(int(v["frame"]), tuple(v["centre"]), int(v["edges"]), float(v["roughness"]))
            for v in data.get("levels", [])
        ]
        return cls(
            centre=tuple(data["centre"]),
            converged_end=tuple(data["converged_end"]),
            diverged_end=tuple(data["diverged_end"]),
            pixels_trained=int(data["pixels_trained"]),
            candidates=int(data.get("candidates", 0)),
            levels=levels,
        )


@dataclass
class _Path:
    """A point descending the levels, and what its probes saw."""

    point: np.ndarray
    frame: int
    signs: np.ndarray  # its latest probe, about ``point`` at level ``frame``
    axes: tuple[np.ndarray, np.ndarray]
    levels: list[Level]

    def score(self) -> tuple[float, float]:
        """Mean roughness (capped at ROUGH) over its last RECENT probes, then their mean log
        edge count."""
        recent = self.levels[-RECENT:]
        return (
            float(np.mean([min(level.roughness, ROUGH) for level in recent])),
            float(np.mean([math.log1p(level.edges) for level in recent])),
        )


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


def step_levels(factor: float) -> int:
    """Levels per step of the descent: the width shrinks about STEP_SHRINK-fold (at least one level)."""
    return max(1, round(math.log(STEP_SHRINK) / math.log(factor)))


def entry_level(factor: float, depth: int) -> int:
    """The level of the entry probes: ENTRY_DECADES below frame 0, or the deepest."""
    return min(depth - 1, math.ceil(ENTRY_DECADES / math.log10(factor) - 1e-9))


def _candidates(signs, xs, ys, region, most: int = MAX_CANDIDATES) -> list[tuple[tuple, tuple]]:
    """The survey's crossings with their midpoint in ``region``; more than ``most`` are
    thinned to that many spread along the boundary (farthest-point order from the one nearest
    the region's middle)."""
    (x_lo, x_hi), (y_lo, y_hi) = region
    pairs = []
    for pair in crossings(signs, xs, ys):
        mx, my = ((a + b) / 2 for a, b in zip(*pair))
        if x_lo <= mx <= x_hi and y_lo <= my <= y_hi:
            pairs.append(pair)
    if len(pairs) <= most:
        return pairs
    # In units of the region's sides, so both axes count alike.
    mids = np.array([[(a + b) / 2 for a, b in zip(*pair)] for pair in pairs])
    mids = (mids - [x_lo, y_lo]) / [x_hi - x_lo, y_hi - y_lo]
    distance = np.sum((mids - 0.5) ** 2, axis=1)
    chosen = [int(np.argmin(distance))]
    distance = np.sum((mids - mids[chosen[0]]) ** 2, axis=1)
    while len(chosen) < most:
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.sum((mids - mids[chosen[-1]]) ** 2, axis=1))
    return [pairs[i] for i in chosen]


def _probe(converged, point, half, frame: int, pilot: int) -> _Path:
    xs, ys = pilot_axes(point, half, pilot)
    signs = pilot_signs(converged, xs, ys)
    r, edges = roughness(signs)
    return _Path(
        np.asarray(point, float), frame, signs, (xs, ys), [Level(frame, tuple(map(float, point)), edges, r)]
    )


def find_centre(
    converged: Converged,
    window0,
    factor: float,
    depth: int,
    pilot: int = 32,
    tolerance: float | None = None,
    max_candidates: int = MAX_CANDIDATES,
) -> CentreSearch:
    """A point on the boundary, rough at every level down to frame ``depth - 1`` (see the module
    docstring), inside the central half of ``window0``.

    ``window0``: ((x_lo, x_hi), (y_lo, y_hi)) of frame 0, log10 units; ``tolerance``: how close
    the final bracketing pair gets (log10 units; default a thousandth of the deepest frame's width);
    ``max_candidates``: entry candidates at most.
    """
    paths, trained, candidates = enter(converged, window0, factor, depth, pilot, max_candidates)
    half0 = half_widths(window0)
    paths, descended = descend(converged, paths, half0, factor, depth - 1, depth, pilot)
    return pin(converged, paths[0], half0, factor, depth, tolerance, trained + descended, candidates)


def half_widths(window0) -> np.ndarray:
    return np.array([(hi - lo) / 2 for lo, hi in window0], dtype=float)


def enter(converged: Converged, window0, factor: float, depth: int, pilot: int, max_candidates: int):
    """Steps 1 and 2 (the survey and the entry probes): (the BEAM best paths, pixels trained,
    candidates)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if pilot < 4:
        raise ValueError(f"pilot resolution must be >= 4, got {pilot}")
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    half0 = half_widths(window0)
    middle = np.array([(lo + hi) / 2 for lo, hi in window0], dtype=float)
    entry = entry_level(factor, depth)

    # 1. Survey: candidates inside the central half, inset by what later moves can add.
    xs, ys = pilot_axes(middle, half0, SURVEY_SCALE * pilot)
    survey = pilot_signs(converged, xs, ys)
    trained = survey.size
    inset = half0 / factor**entry
    region = [(lo + i, hi - i) for (lo, hi), i in zip(grid.centre_region(window0, "auto"), inset)]
    pairs = _candidates(survey, xs, ys, region, max_candidates)
    if not pairs:
        raise NoBoundary(
            0,
            f"{_level(0, depth)}: no boundary within the central region of the {len(xs)}x{len(ys)} survey "
            f"of frame 0 (x {[float(xs[0]), float(xs[-1])]}, y {[float(ys[0]), float(ys[-1])]}): "
            f"{_what_it_holds(survey)}; choose a window whose central half holds the boundary",
        )

    # 2. Entry: every candidate pinned onto the boundary and probed ENTRY_DECADES down.
    paths = []
    for good, bad in pairs:
        good, bad, bisected = pin_boundary(converged, good, bad, float(inset.min()) / 8)
        paths.append(_probe(converged, (np.add(good, bad)) / 2, inset, entry, pilot))
        trained += bisected + pilot * pilot
    return sorted(paths, key=_Path.score, reverse=True)[:BEAM], trained, len(pairs)


def descend(converged: Converged, paths: list, half0, factor: float, last: int, depth: int, pilot: int):
    """Step 3, the look-ahead descent of ``paths`` (best first) down to level ``last``:
    (the BEAM best paths then, pixels trained)."""
    step, trained = step_levels(factor), 0
    while paths[0].frame < last:
        frame = min(paths[0].frame + step, last)
        children = []
        for path in paths:
            px, py = path.axes
            for dr, dc, _ in next_offsets(edge_pixels(path.signs), factor ** (frame - path.frame), CHILDREN):
                point = path.point + np.array([dc * (px[1] - px[0]), dr * (py[1] - py[0])])
                child = _probe(converged, point, half0 / factor**frame, frame, pilot)
                child.levels = path.levels + child.levels
                children.append(child)
                trained += pilot * pilot
        if not children:
            raise NoBoundary(
                paths[0].frame,
                f"{_level(paths[0].frame, depth)}: none of the {len(paths)} pilot frames of the search's "
                f"paths (about {[p.point.tolist() for p in paths]}) holds boundary in its central region; "
                "try a larger pilot_resolution",
            )
        paths = sorted(children, key=_Path.score, reverse=True)[:BEAM]
    return paths, trained


def pin(
    converged: Converged, best, half0, factor: float, depth: int, tolerance, trained: int, candidates: int
):
    """Step 4, pinning on the best path's deepest probe: the CentreSearch."""
    pair = nearest_pair(best.signs, *best.axes, best.point)
    if pair is None:
        raise NoBoundary(
            best.frame,
            f"{_level(best.frame, depth)}: the deepest pilot frame about {best.point.tolist()} holds no "
            f"boundary ({_what_it_holds(best.signs)}); try a larger pilot_resolution",
        )
    if tolerance is None:
        tolerance = float(2 * half0.max()) / factor ** (depth - 1) / 1000
    good, bad, bisected = pin_boundary(converged, *pair, tolerance)
    point = tuple(float((g + b) / 2) for g, b in zip(good, bad))
    return CentreSearch(point, good, bad, trained + bisected, candidates, best.levels)
