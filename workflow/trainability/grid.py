"""Hyperparameter grids: axes, zoom-frame windows, and the split into shards.

A frame is an R x R grid in log10 units; rows are y, columns are x, row 0 is
the lowest y (images are drawn with origin lower). Pixels are numbered
row-major, ``pixel = row * R + column``, and shard s holds the contiguous
pixels [s * shard_size, min((s + 1) * shard_size, R * R)).
"""

from __future__ import annotations

import math

import numpy as np


def axis_log10(lo: float, hi: float, resolution: int) -> np.ndarray:
    """log10 coordinates of the pixel centres along one axis (``logspace`` exponents)."""
    return np.linspace(lo, hi, resolution)


def axis_values(lo: float, hi: float, resolution: int) -> np.ndarray:
    """Hyperparameter values along one axis, as the author's ``logspace``."""
    return 10.0 ** axis_log10(lo, hi, resolution)


def axis_resolves_pixels(lo: float, hi: float, resolution: int, dtype: str) -> bool:
    """True when neighbouring pixels get distinct values in this precision."""
    values = axis_values(lo, hi, resolution).astype(np.dtype(dtype))
    return bool(np.all(np.diff(values) > 0))


def frame_window(exp: dict, frame: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((x_lo, x_hi), (y_lo, y_hi)) of a zoom frame; frame 0 is the configured window."""
    zoom = exp.get("zoom", {"frames": 1, "factor": 2.0})
    ps = exp["phase_space"]
    if frame == 0:
        return tuple(ps["x"]), tuple(ps["y"])
    shrink = float(zoom.get("factor", 2.0)) ** frame
    centre = zoom.get("centre") or [sum(ps["x"]) / 2, sum(ps["y"]) / 2]
    window = []
    for (lo, hi), c in zip((ps["x"], ps["y"]), centre):
        half = (hi - lo) / 2 / shrink
        window.append((c - half, c + half))
    return tuple(window)


def shard_count(resolution: int, shard_size: int) -> int:
    return math.ceil(resolution * resolution / shard_size)


def shard_pixels(shard: int, resolution: int, shard_size: int) -> tuple[int, int]:
    """[start, stop) of the pixels of a shard."""
    n = resolution * resolution
    if not 0 <= shard < shard_count(resolution, shard_size):
        raise ValueError(f"shard {shard} out of range for {n} pixels in shards of {shard_size}")
    start = shard * shard_size
    return start, min(n, start + shard_size)


def pixel_coordinates(window, resolution: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Hyperparameter values (x, y) of pixels start..stop-1."""
    (x_lo, x_hi), (y_lo, y_hi) = window
    pixels = np.arange(start, stop)
    rows, cols = np.divmod(pixels, resolution)
    return axis_values(x_lo, x_hi, resolution)[cols], axis_values(y_lo, y_hi, resolution)[rows]
