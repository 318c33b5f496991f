"""Double-double frames (trainability.contract.grid): windows as decimal strings, pixel values as
hi + lo, and the precision limit of float64x2, each checked against mpmath at 60 digits."""

import mpmath
import numpy as np
import pytest

from trainability.contract import grid

mpmath.mp.dps = 60
WINDOW0 = [[-3.0, 6.0], [-3.0, 6.0]]
CENTRE = ["1.6838000000000000000000012345678901", "1.2602999999999999999999987654321"]


def test_a_deep_window_keeps_its_centre_and_width_to_many_digits():
    window = grid.concentric_window_precise(WINDOW0, 10, 28, CENTRE)
    for (lo, hi), c in zip(window, CENTRE):
        lo, hi, c = mpmath.mpf(lo), mpmath.mpf(hi), mpmath.mpf(c)
        assert abs((lo + hi) / 2 - c) < mpmath.mpf("1e-45")
        assert abs((hi - lo) - mpmath.mpf(9) / mpmath.mpf(10) ** 28) < mpmath.mpf("1e-45")
    # float64 cannot tell these bounds apart; the strings can.
    assert float(window[0][0]) == float(window[0][1]) and window[0][0] != window[0][1]
    # Frame 0 about no centre is the window itself.
    assert [[float(v) for v in axis] for axis in grid.concentric_window_precise(WINDOW0, 2, 0)] == WINDOW0


def test_pixel_values_are_10_to_the_precise_coordinates_in_double_double():
    window = grid.concentric_window_precise(WINDOW0, 10, 25, CENTRE)
    resolution = 7
    points = grid.pixel_points(window, resolution, 5, 30, "float64x2")
    pixels = np.arange(5, 30)
    rows, cols = np.divmod(pixels, resolution)
    for axis, index, name in ((0, cols, "x"), (1, rows, "y")):
        lo, hi = (mpmath.mpf(v) for v in window[axis])
        for k, j in enumerate(index):
            exact = mpmath.power(10, lo + (hi - lo) * j / (resolution - 1))
            got = mpmath.mpf(points[f"{name}_values"][k]) + mpmath.mpf(points[f"{name}_lo"][k])
            assert abs(got / exact - 1) < mpmath.mpf(2) ** -104
    # Every pixel of an axis distinct in double-double, where float64 would give one value.
    assert len(set(zip(points["x_values"], points["x_lo"]))) == min(resolution, len(set(cols)))
    assert len(set(grid.axis_values(float(window[0][0]), float(window[0][1]), resolution))) == 1


def test_other_dtypes_get_the_float64_points_unchanged():
    window = [[-1.0, 2.0], [0.5, 0.75]]
    points = grid.pixel_points(window, 16, 3, 40, "float64")
    x, y = grid.pixel_coordinates(window, 16, 3, 40)
    assert points["x_lo"] is None and points["y_lo"] is None
    assert np.array_equal(points["x_values"], x) and np.array_equal(points["y_values"], y)


@pytest.mark.parametrize("resolution", [8, 96, 4096])
def test_double_double_resolves_about_twice_as_deep_as_float64(resolution):
    f64 = grid.max_frames(WINDOW0, 10, "auto", resolution, "float64")
    dd = grid.max_frames(WINDOW0, 10, "auto", resolution, "float64x2")
    # float64: neighbours 2 ulps apart (2**-52 relative); double-double: 2 units of 2**-104.
    assert 13 <= f64 <= 16 and 29 <= dd <= 32
    deepest = grid.concentric_window_precise(WINDOW0, 10, dd - 1, CENTRE)
    # (a few frames past the bound, the exact test may still pass where lo happens to be tiny)
    beyond = grid.concentric_window_precise(WINDOW0, 10, dd + 6, CENTRE)
    assert grid.axis_resolves_pixels(*deepest[0], resolution, "float64x2")
    assert not grid.axis_resolves_pixels(*beyond[0], resolution, "float64x2")
