"""Hyperparameter grids: axes, zoom-frame windows, precision limits, shards.

A frame is an R x R grid in log10 units; rows are y, columns are x, row 0 is
the lowest y (images are drawn with origin lower). Pixels are numbered
row-major, ``pixel = row * R + column``, and shard s holds the contiguous
pixels [s * shard_size, min((s + 1) * shard_size, R * R)).

Zoom sequences: frame k spans the configured window's width divided by
``factor**k`` on each axis, every frame concentric about the sequence's
centre (by default the configured window's centre, so frame 0 is that window).
An automatic centre (``centre: auto``) lies in the central half of the
configured window (trainability.boundary.centre keeps it there), which bounds the
coordinates every frame can reach before the centre is known.

Precision: a frame resolves when neighbouring pixels are RESOLVING_ULPS units in
the last place apart, both in their log10 coordinates and in their hyperparameter
values in the training dtype; deeper frames repeat values and turn blocky (the
paper's last frames did). Double-double (``float64x2``) frames keep their windows
as decimal strings of WINDOW_DIGITS digits (``numerics.precise``: 192 bits) and
their values as (hi, lo) pairs, so they resolve about twice as deep (about 30
decades below a 9-decade window instead of 15); every other dtype's windows are
float64, computed exactly as before.
"""

from __future__ import annotations

import math

import numpy as np

from trainability.contract import numerics

# Neighbouring pixels at least this many ulps apart: rounding in linspace and
# 10**x moves each value by up to about one ulp, so 2 keeps every pixel distinct.
RESOLVING_ULPS = 2.0
LN10 = float(numerics.log(10.0))
# Where the spacing passes the bound test by this factor, rounding (a few ulps in linspace
# and 10**x) cannot make neighbours equal, so the exact test (R values per axis through
# MPFR: a second per axis at 262144 pixels) is left out there.
SAFE_MARGIN = 4.0
# The most frames of one sequence. The deepest float64 sequence from the paper's [-3, 6]
# window at factor 2 has 42 frames at 4096 pixels and 54 at 2 (16 decades); 256 allows
# zooms four times as slow (factor 2**0.25: 165 to 214 frames) and bounds the plan
# (frames x shards jobs) and every loop over frames, e.g. a factor of 1.0000001 asking
# for frames: max (1.6e8 frames to the float64 limit).
MAX_FRAMES = 256
# Significant digits of a double-double frame's window bounds: 192 bits hold about 57; 50
# keep pixel spacings of 1e-45 of a coordinate of order 1 exact to many digits.
WINDOW_DIGITS = 50


def axis_log10(lo: float | str, hi: float | str, resolution: int) -> np.ndarray:
    """log10 coordinates of the pixel centres along one axis (``logspace`` exponents); for a
    precise window (decimal strings) each computed at 192 bits and rounded to float64."""
    if isinstance(lo, str) or isinstance(hi, str):
        return np.array([float(v) for v in numerics.linspace_precise(lo, hi, resolution)])
    return np.linspace(lo, hi, resolution)


def axis_values_double_double(lo, hi, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Hyperparameter values along one axis of a precise window as (hi, lo) double-doubles:
    coordinates evenly spaced at 192 bits, 10**x of each correctly rounded."""
    return numerics.pow10_double_double(numerics.linspace_precise(lo, hi, resolution))


def axis_values(lo: float, hi: float, resolution: int) -> np.ndarray:
    """Hyperparameter values along one axis, as the author's ``logspace`` (10**x correctly
    rounded: the same bits on every CPU, see ``trainability.contract.numerics``)."""
    return numerics.pow10(axis_log10(lo, hi, resolution))


def axis_resolves_pixels(lo: float, hi: float, resolution: int, dtype: str) -> bool:
    """True when neighbouring pixels get distinct values in this precision."""
    if dtype == "float64x2":
        high, low = axis_values_double_double(lo, hi, resolution)
        step_high, step_low = np.diff(high), np.diff(low)
        return bool(np.all((step_high > 0) | ((step_high == 0) & (step_low > 0))))
    values = axis_values(lo, hi, resolution).astype(np.dtype(dtype))
    return bool(np.all(np.diff(values) > 0))


def frame_window(exp: dict, frame: int, centre=None) -> tuple[tuple[float, float], tuple[float, float]]:
    """((x_lo, x_hi), (y_lo, y_hi)) of a zoom frame of a resolved experiment.

    ``centre`` ([x, y]) is needed only when the experiment's centre is ``auto``
    (it comes from the centre search); a given centre is used as configured.
    """
    zoom = exp.get("zoom", {})
    configured = zoom.get("centre")
    if configured == "auto":
        if centre is None:
            raise ValueError(f"experiment {exp.get('name')!r}: centre is auto; pass the centre found")
    elif configured is not None:
        centre = configured
    ps = exp["phase_space"]
    return concentric_window((ps["x"], ps["y"]), float(zoom.get("factor", 2.0)), frame, centre)


def concentric_window(window0, factor: float, frame: int, centre=None):
    """Frame ``frame`` of a sequence: window0's widths / factor**frame about ``centre``.

    Without a centre (or at the window's own centre) frame 0 is window0 bit for bit.
    """
    (x_lo, x_hi), (y_lo, y_hi) = window0
    middle = [(x_lo + x_hi) / 2, (y_lo + y_hi) / 2]
    if centre is None:
        centre = middle
    if frame == 0 and [float(c) for c in centre] == middle:
        return (x_lo, x_hi), (y_lo, y_hi)
    shrink = float(factor) ** frame
    window = []
    for (lo, hi), c in zip(window0, centre):
        half = (hi - lo) / 2 / shrink
        window.append((float(c - half), float(c + half)))
    return tuple(window)


def concentric_window_precise(window0, factor: float, frame: int, centre=None) -> list[list[str]]:
    """``concentric_window`` at 192 bits, for double-double frames: [[x_lo, x_hi], [y_lo, y_hi]]
    as decimal strings of WINDOW_DIGITS digits (``centre`` may be decimal strings)."""
    window = []
    with numerics.precise_arithmetic():
        shrink = numerics.precise(factor) ** frame
        for axis, (lo, hi) in enumerate(window0):
            lo, hi = numerics.precise(lo), numerics.precise(hi)
            middle = (lo + hi) / 2 if centre is None else numerics.precise(centre[axis])
            half = (hi - lo) / 2 / shrink
            bounds = (middle - half, middle + half)
            window.append([numerics.decimal(b, WINDOW_DIGITS) for b in bounds])
    return window


def window_spec(exp: dict, frame: int):
    """A frame's window as rule params: the window itself, or, for an automatic
    centre, what it is computed from once the centre is known (``resolve_window_spec``)."""
    zoom = exp["zoom"]
    ps = exp["phase_space"]
    if exp["training"]["dtype"] == "float64x2":  # computed precisely, once the centre is known
        centre = zoom["centre"]
        spec = {"centre": centre, "window0": [ps["x"], ps["y"]], "factor": zoom["factor"], "frame": frame}
        return spec | {"precise": True}
    if zoom["centre"] != "auto":
        return frame_window(exp, frame)
    return {"centre": "auto", "window0": [ps["x"], ps["y"]], "factor": zoom["factor"], "frame": frame}


def resolve_window_spec(spec, centre=None) -> list[list]:
    """The window of a ``window_spec`` as [[x_lo, x_hi], [y_lo, y_hi]]; a given
    window comes back as it is; ``centre`` is required for an automatic one. A precise
    spec (double-double) gives decimal strings (``concentric_window_precise``)."""
    if isinstance(spec, dict):
        if spec["centre"] != "auto":
            centre = spec["centre"]
        elif centre is None:
            raise ValueError("this frame's centre is automatic: the centre file is required")
        if spec.get("precise"):
            return concentric_window_precise(spec["window0"], spec["factor"], spec["frame"], centre)
        return [
            list(axis) for axis in concentric_window(spec["window0"], spec["factor"], spec["frame"], centre)
        ]
    return [list(axis) for axis in spec]


def _axis_resolves(lo: float, hi: float, reach: float, resolution: int, dtype: str) -> bool:
    """Bound form of the precision test: spacing against ulps at the largest |coordinate|."""
    return _spacing_resolves((hi - lo) / max(resolution - 1, 1), reach, dtype)


def _spacing_resolves(spacing: float, reach: float, dtype: str) -> bool:
    """Neighbours ``spacing`` apart (log10 units) at coordinates up to ``reach`` resolve:
    the spacing against the coordinates' ulp and the values' relative spacing (10**x)."""
    if numerics.COORDINATE_BITS[dtype] == 53:
        coordinate_ulp = float(np.spacing(np.float64(reach)))
    else:  # a precise coordinate's ulp at its bits
        coordinate_ulp = math.ldexp(1.0, math.frexp(reach)[1] - numerics.COORDINATE_BITS[dtype])
    value_eps = numerics.EPSILON[dtype]
    return spacing >= RESOLVING_ULPS * coordinate_ulp and LN10 * spacing >= RESOLVING_ULPS * value_eps


def centre_region(window0, centre) -> list[tuple[float, float]]:
    """Per axis, the interval the centre can lie in: the given point, or for
    ``auto`` the central half of window0."""
    if centre == "auto":
        return [((3 * lo + hi) / 4, (lo + 3 * hi) / 4) for lo, hi in window0]
    if centre is None:
        return [((lo + hi) / 2,) * 2 for lo, hi in window0]
    return [(float(c), float(c)) for c in centre]


def frame_resolves(
    window0, factor: float, frame: int, centre, resolution: int, dtype: str, exact: bool = True
) -> bool:
    """True when frame ``frame`` resolves neighbouring pixels wherever its centre
    may lie (``centre``: [x, y], None for window0's centre, or "auto"); ``exact=False``:
    by the bound test alone."""
    shrink = float(factor) ** frame
    for (lo, hi), (c_lo, c_hi) in zip(window0, centre_region(window0, centre)):
        half = (hi - lo) / 2 / shrink
        reach = max(abs(c_lo), abs(c_hi)) + half
        if dtype == "float64x2":  # precise coordinates: the spacing itself, not c +- half in float64
            if not _spacing_resolves(2 * half / max(resolution - 1, 1), reach, dtype):
                return False
            continue
        if not _axis_resolves(c_lo - half, c_lo + half, reach, resolution, dtype):
            return False
        # A window SAFE_MARGIN times narrower at the same reach passing the bound test means
        # this one's spacing is SAFE_MARGIN times what the test asks.
        safe = _axis_resolves(c_lo - half / SAFE_MARGIN, c_lo + half / SAFE_MARGIN, reach, resolution, dtype)
        if exact and centre != "auto" and not safe:
            if not axis_resolves_pixels(c_lo - half, c_lo + half, resolution, dtype):
                return False
    return True


def max_frames(
    window0, factor: float, centre, resolution: int, dtype: str, limit: int = MAX_FRAMES + 1
) -> int:
    """How many frames (0, 1, ...) of a sequence resolve, counted up to ``limit``; 0 when not
    even frame 0 does. The default limit tells a sequence deeper than MAX_FRAMES (the result
    is MAX_FRAMES + 1) from one that ends within it."""
    frames = 0
    while frames < limit and frame_resolves(window0, factor, frames, centre, resolution, dtype):
        frames += 1
    return frames


def smallest_factor(window0, centre, resolution: int, dtype: str, frames: int = MAX_FRAMES) -> float:
    """The smallest zoom factor (to 3 decimals, rounded up) whose deepest sequence has at
    most ``frames`` frames: the deepest resolving shrink S (bisected on the bound test, which
    never resolves less deeply than the exact one) reached in frames - 1 steps, S**(1/(frames-1))."""
    low, high = 1.0, 2.0  # shrinks that resolve / do not
    while frame_resolves(window0, high, 1, centre, resolution, dtype, exact=False) and high < 1e300:
        low, high = high, high * high
    for _ in range(200):
        middle = math.sqrt(low * high)
        if middle in (low, high):
            break
        deeper = frame_resolves(window0, middle, 1, centre, resolution, dtype, exact=False)
        low, high = (middle, high) if deeper else (low, middle)
    return math.ceil(high ** (1 / max(frames - 1, 1)) * 1000) / 1000


def depth_decades(factor: float, frame: int) -> float:
    """How many decades narrower than frame 0 frame ``frame`` is."""
    return frame * math.log10(factor)


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


def pixel_points(window, resolution: int, start: int, stop: int, dtype: str) -> dict[str, np.ndarray | None]:
    """The hyperparameter values of pixels start..stop-1 as ``training.train_points`` takes them:
    ``x_values``, ``y_values`` and, for double-double, their low parts ``x_lo``, ``y_lo`` (a
    precise window, decimal strings: values correctly rounded to hi + lo); else lo None."""
    if dtype != "float64x2":
        x, y = pixel_coordinates(window, resolution, start, stop)
        return {"x_values": x, "y_values": y, "x_lo": None, "y_lo": None}
    rows, cols = np.divmod(np.arange(start, stop), resolution)
    (x_hi, x_lo), (y_hi, y_lo) = (axis_values_double_double(lo, hi, resolution) for lo, hi in window)
    return {"x_values": x_hi[cols], "y_values": y_hi[rows], "x_lo": x_lo[cols], "y_lo": y_lo[rows]}
