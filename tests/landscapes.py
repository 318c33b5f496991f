"""Stand-in landscapes whose boundary is known exactly, for estimators and the centre search.

Each is a label function of coordinates, computed without training: a Koch snowflake
(boundary of box dimension log 4 / log 3), the graph of the Takagi function, a circle.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.path import Path

KOCH_D = math.log(4) / math.log(3)


def snowflake_corners() -> np.ndarray:
    """Corners of the level-0 triangle (circumradius 1), clockwise, as complex numbers."""
    return np.exp(1j * (np.pi / 2 - 2 * np.pi / 3 * np.arange(3)))


def koch_polygon(level: int) -> np.ndarray:
    """(3 * 4**level, 2) vertices of the snowflake: each side's middle third gets an outward bump."""
    z = snowflake_corners()
    for _ in range(level):
        a, b = z, np.roll(z, -1)
        step = (b - a) / 3
        z = np.stack([a, a + step, a + step + step * np.exp(1j * np.pi / 3), a + 2 * step], axis=1).ravel()
    return np.c_[z.real, z.imag]


_TAN30 = math.tan(math.pi / 6)
_APEX = 0.5 + 1j * math.sqrt(3) / 6
_SUB_SEGMENTS = [(0, 1 / 3), (1 / 3, _APEX), (_APEX, 2 / 3), (2 / 3, 1)]


def _in_hull(w):
    """Inside the 30-degree triangle over the unit segment, which holds its whole Koch island."""
    return (w.imag >= 0) & (w.imag <= _TAN30 * w.real) & (w.imag <= _TAN30 * (1 - w.real))


def _in_island(z: np.ndarray, level: int) -> np.ndarray:
    """Inside the island between the unit segment and its level-``level`` Koch curve (bump up).

    The island is the middle bump's triangle plus four islands one level down
    on the four sub-segments; their hulls do not overlap, so each point
    follows one path down.
    """
    inside = np.zeros(z.shape, dtype=bool)
    idx = np.flatnonzero(_in_hull(z))
    w = z[idx]
    for _ in range(level):
        bump = (w.imag >= 0) & (w.imag <= math.sqrt(3) * (w.real - 1 / 3))
        bump &= w.imag <= math.sqrt(3) * (2 / 3 - w.real)
        inside[idx[bump]] = True
        down = [((w - a) / (b - a), idx) for a, b in _SUB_SEGMENTS]
        keep = [(v[_in_hull(v) & ~bump], i[_in_hull(v) & ~bump]) for v, i in down]
        w = np.concatenate([v for v, _ in keep])
        idx = np.concatenate([i for _, i in keep])
    return inside


def in_snowflake(points: np.ndarray, level: int = 10) -> np.ndarray:
    """Exactly ``Path(koch_polygon(level)).contains_points``, without its cost per vertex."""
    z = points[:, 0] + 1j * points[:, 1]
    corners = snowflake_corners()
    inside = Path(np.c_[corners.real, corners.imag]).contains_points(points)
    for a, b in zip(corners, np.roll(corners, -1)):
        inside |= _in_island((z - a) / (b - a), level)
    return inside


def snowflake(centre, radius: float, level: int):
    """converged(x, y): inside the level-``level`` Koch snowflake of circumradius ``radius``
    about ``centre`` (finest segment radius * sqrt(3) / 3**level)."""

    def converged(x, y):
        x, y = np.asarray(x, float), np.asarray(y, float)
        points = np.c_[(x - centre[0]) / radius, (y - centre[1]) / radius]
        return in_snowflake(points, level)

    return converged


def takagi(x, terms=40):
    """The Takagi (blancmange) function: continuous, nowhere differentiable."""
    x = np.asarray(x, float)
    total = np.zeros_like(x)
    for n in range(terms):
        t = (2.0**n) * x
        total += np.abs(t - np.round(t)) / 2.0**n
    return total


def circle(a=1.3, b=0.7, r=2.0):
    """converged(x, y): strictly inside the circle of radius r about (a, b)."""

    def converged(x, y):
        return (x - a) ** 2 + (y - b) ** 2 < r * r

    return converged
