"""Automatic zoom centres past float64's resolution: ``centre.find_centre``'s search with its
coordinates re-based on precise origins as it descends.

``find_centre`` works in float64 log10 coordinates, which tell pilot pixels apart down to about
12 decades below a window of order 1 (its pilots need spacings of many ulps). A double-double
sequence goes about 30 decades deep. So this search is ``find_centre``'s own steps (the survey
and entry probes over the configured window, the look-ahead descent, the pinning: the
``centre`` module's ``enter``, ``descend``, ``pin``) with one change: every STAGE_DECADES of
descent, the origin of the coordinates moves to the best path's point (kept at 192 bits,
``numerics.precise``) and every path of the beam, with its latest probe and its roughness
history, is carried over in coordinates relative to it, which float64 resolves for another
STAGE_DECADES. The descent goes on unbroken: the same beam, ranked by the same history.
``converged_about(origin)`` gives the ``Converged`` function of coordinates relative to a
precise origin ((x, y) at 192 bits); the result's coordinates are decimal strings.

The search's levels are finer than the frames' where the frames' factor is large
(``search_factor``: about 2 per level), as each probe's next window must hold pilot pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gmpy2
import numpy as np

from trainability.boundary import centre
from trainability.boundary.centre import CentreSearch, Level, NoBoundary
from trainability.boundary.pilots import Converged, pilot_axes
from trainability.contract import numerics

# Decades each stage descends below its frame 0: its pilot spacings (its width / factor**k /
# pilot, relative coordinates of order its width) stay more than 100 ulps of float64 apart.
STAGE_DECADES = 12.0
DIGITS = 50  # of the decimal strings the result's coordinates are written with
SEARCH_FACTOR = 2.0  # about how much narrower each level of the search is than the last
# Recorded with each double-double centre (made_with.search.precise_version): bump it when a
# change moves the centres this search finds.
VERSION = 1

ConvergedAbout = Callable[[tuple[gmpy2.mpfr, gmpy2.mpfr]], Converged]


def search_factor(factor: float) -> tuple[float, int]:
    """(the search's own factor per level, levels per frame): the frames' ``factor`` split into
    steps of about SEARCH_FACTOR, so that each probe's next window holds pilot pixels (a probe
    ten times narrower than the last fits within one pixel of a 12**2 pilot)."""
    per_frame = max(1, round(math.log(factor) / math.log(SEARCH_FACTOR)))
    return float(factor) ** (1.0 / per_frame), per_frame


def stage_levels(factor: float) -> int:
    """Search levels each stage descends: STAGE_DECADES at ``factor`` per level, at least 1."""
    return max(1, math.floor(STAGE_DECADES / math.log10(factor)))


def _absolute(origin, point) -> list[str]:
    with numerics.precise_arithmetic():
        return [numerics.decimal(o + numerics.precise(float(p)), DIGITS) for o, p in zip(origin, point)]


def find_centre_precise(
    converged_about: ConvergedAbout,
    window0,
    factor: float,
    depth: int,
    pilot: int = 32,
    tolerance: float | None = None,
) -> CentreSearch:
    """A centre on the boundary, rough down to frame ``depth - 1`` of a sequence of ``factor``
    (``centre.find_centre``'s survey, entry, descent and pinning, the descent re-based every
    STAGE_DECADES: module docstring), for sequences deeper than float64 resolves; its centres
    are [x, y] decimal strings, its levels the frames'. With a factor near SEARCH_FACTOR and
    ``depth`` within one stage, it is ``find_centre`` itself."""
    step, per_frame = search_factor(factor)
    deepest = (depth - 1) * per_frame  # the search's level of frame depth - 1
    half0 = centre.half_widths(window0)
    origin = (numerics.precise(0.0), numerics.precise(0.0))
    paths, trained, candidates = centre.enter(
        converged_about(origin), window0, step, deepest + 1, pilot, centre.MAX_CANDIDATES
    )
    while True:
        stop = min(deepest, paths[0].frame + stage_levels(step))
        try:
            paths, descended = centre.descend(
                converged_about(origin), paths, half0, step, stop, deepest + 1, pilot
            )
        except NoBoundary as err:
            raise NoBoundary(err.frame // per_frame, f"{_about(origin)}: {err}") from None
        trained += descended
        if stop == deepest:
            break
        origin, paths = _rebased(origin, paths, half0, step, pilot)
    found = centre.pin(
        converged_about(origin), paths[0], half0, step, deepest + 1, tolerance, trained, candidates
    )
    ends = [tuple(_absolute(origin, p)) for p in (found.centre, found.converged_end, found.diverged_end)]
    levels = [_frame_level(level, origin, per_frame) for level in found.levels]
    return CentreSearch(*ends, found.pixels_trained, candidates, [lv for lv in levels if lv is not None])


def _about(origin) -> str:
    return f"the centre search about {_absolute(origin, (0.0, 0.0))} (coordinates relative to it)"


def _frame_level(level: Level, origin, per_frame: int) -> Level | None:
    """A search level as the frames' (None between frames), its centre absolute (decimal strings)."""
    if level.frame % per_frame:
        return None
    absolute = level.centre if isinstance(level.centre[0], str) else tuple(_absolute(origin, level.centre))
    return Level(level.frame // per_frame, absolute, level.edges, level.roughness)


def _rebased(origin, paths: list, half0, step: float, pilot: int):
    """(the new origin: the best path's point, the paths' points and pilot axes relative to it,
    and their past levels made absolute), so that float64 resolves the next STAGE_DECADES."""
    best = paths[0].point
    with numerics.precise_arithmetic():
        new_origin = tuple(o + numerics.precise(float(b)) for o, b in zip(origin, best))
    rebased = []
    for path in paths:
        with numerics.precise_arithmetic():  # differences of nearby doubles: exact
            point = np.array(
                [
                    float(numerics.precise(float(p)) - numerics.precise(float(b)))
                    for p, b in zip(path.point, best)
                ]
            )
        levels = [
            lv
            if isinstance(lv.centre[0], str)
            else Level(lv.frame, tuple(_absolute(origin, lv.centre)), lv.edges, lv.roughness)
            for lv in path.levels
        ]
        axes = pilot_axes(point, half0 / step**path.frame, pilot)
        rebased.append(centre._Path(point, path.frame, path.signs, axes, levels))
    return new_origin, rebased
