"""The automatic zoom centre (trainability.centre) on landscapes whose boundary is known exactly."""

import math

import numpy as np
import pytest

from trainability import centre, grid
from trainability.dimension import edge_map

WINDOW = ((-3.0, 6.0), (-3.0, 6.0))


def circle(a=1.3, b=0.7, r=2.0):
    """Converged strictly inside the circle of radius r about (a, b)."""

    def converged(x, y):
        return (x - a) ** 2 + (y - b) ** 2 < r * r

    return converged


def takagi(x, terms=40):
    """The Takagi (blancmange) function: continuous, nowhere differentiable, boundary of dimension 1.5-ish."""
    x = np.asarray(x, float)
    total = np.zeros_like(x)
    for n in range(terms):
        t = (2.0**n) * x
        total += np.abs(t - np.round(t)) / 2.0**n
    return total


def below_takagi(x, y):
    # Scaled so the curve crosses the middle of WINDOW: y = 1.5 + 3 * (T(x / 4) - 0.5).
    return y < 1.5 + 3.0 * (takagi(np.asarray(x) / 4.0) - 0.5)


def frame_signs(converged, window0, factor, frame, point, resolution):
    (x_lo, x_hi), (y_lo, y_hi) = grid.concentric_window(window0, factor, frame, point)
    gx, gy = np.meshgrid(grid.axis_log10(x_lo, x_hi, resolution), grid.axis_log10(y_lo, y_hi, resolution))
    return converged(gx.ravel(), gy.ravel()).reshape(gx.shape)


def test_the_centre_lands_on_a_circle_and_every_frame_shows_it():
    a, b, r = 1.3, 0.7, 2.0
    depth = grid.max_frames(WINDOW, 2.0, "auto", 16, "float64")
    assert 40 <= depth <= 60
    found = centre.find_centre(circle(a, b, r), WINDOW, 2.0, depth, pilot=32, tolerance=1e-14)
    # On the true boundary, to the tolerance asked for.
    assert abs(math.hypot(found.centre[0] - a, found.centre[1] - b) - r) < 1e-14
    # The pinned pair brackets the boundary.
    assert math.hypot(found.converged_end[0] - a, found.converged_end[1] - b) < r
    assert math.hypot(found.diverged_end[0] - a, found.diverged_end[1] - b) >= r
    # Inside the central half of frame 0 (so frame 0 about it still covers most of the window).
    for (lo, hi), c in zip(WINDOW, found.centre):
        assert (3 * lo + hi) / 4 <= c <= (lo + 3 * hi) / 4
    # Every frame about the centre, at 16 x 16, has boundary in its central region.
    for frame in range(depth):
        signs = frame_signs(circle(a, b, r), WINDOW, 2.0, frame, found.centre, 16)
        assert centre.central_edges(edge_map(np.where(signs, -1.0, 1.0))) > 0, frame


def test_the_centre_lands_on_a_fractal_curve():
    depth = 30
    found = centre.find_centre(below_takagi, WINDOW, 2.0, depth, pilot=32, tolerance=1e-12)
    good, bad = np.array(found.converged_end), np.array(found.diverged_end)
    assert below_takagi(good[:1], good[1:])[0] and not below_takagi(bad[:1], bad[1:])[0]
    assert np.max(np.abs(good - bad)) <= 1e-12
    # A continuous curve separates the two ends: it passes within the tolerance of the centre.
    x, y = found.centre
    assert abs(y - (1.5 + 3.0 * (takagi(np.array([x / 4.0]))[0] - 0.5))) < 1e-9
    for frame in range(depth):
        signs = frame_signs(below_takagi, WINDOW, 2.0, frame, found.centre, 16)
        assert centre.central_edges(edge_map(np.where(signs, -1.0, 1.0))) > 0, frame


def test_the_search_prefers_the_window_with_more_boundary():
    # Two boundaries at frame 0: a straight edge left of centre and a wiggly one right of it;
    # the wiggly one holds more edge pixels, so the descent goes right.
    def converged(x, y):
        wiggle = 2.2 + 0.3 * np.sin(40 * y)
        return (x > 0.6) & (x < wiggle)

    found = centre.find_centre(converged, WINDOW, 2.0, 6, pilot=32)
    assert found.centre[0] > 1.5
    assert found.levels[0].chosen_edges > 0


def test_the_same_inputs_give_the_same_centre_bit_for_bit():
    one = centre.find_centre(below_takagi, WINDOW, 2.0, 20, pilot=24)
    two = centre.find_centre(below_takagi, WINDOW, 2.0, 20, pilot=24)
    assert one.to_dict() == two.to_dict()
    assert centre.CentreSearch.from_dict(one.to_dict()) == one


def test_it_costs_a_small_fraction_of_the_frames():
    depth = 40
    found = centre.find_centre(circle(), WINDOW, 2.0, depth, pilot=32)
    frames_pixels = depth * 256**2
    assert found.pixels_trained <= depth * 32**2 + 10 * centre.SECTIONS
    assert found.pixels_trained / frames_pixels < 0.02


def test_a_window_without_boundary_names_the_frame():
    def everything_converges(x, y):
        return np.ones_like(x, dtype=bool)

    with pytest.raises(centre.NoBoundary, match=r"level 0 of 0\.\.4 .*every pilot pixel converged") as err:
        centre.find_centre(everything_converges, WINDOW, 2.0, 5)
    assert err.value.frame == 0
    message = str(err.value)
    assert "np.float64" not in message and "(x [-3.0, " in message, message
    # the search's levels go deeper than a short sequence: the message says whose level it is
    assert message.startswith("centre search, level 0 of 0..4") and "whatever zoom.frames says" in message


def test_a_boundary_that_leaves_the_central_region_names_the_frame():
    # Boundary only along the window's far-left edge: no candidate window reaches it.
    def converged(x, y):
        return x < -2.9

    with pytest.raises(centre.NoBoundary, match=r"level 0 of 0\.\.4 .*only near its edges"):
        centre.find_centre(converged, WINDOW, 2.0, 5)


def test_central_edges_counts_only_the_middle():
    edges = np.zeros((15, 15), bool)
    edges[0, :] = True
    assert centre.central_edges(edges) == 0
    edges[7, 7] = True
    assert centre.central_edges(edges) == 1


@pytest.mark.parametrize("bad", [dict(depth=0), dict(pilot=3), dict(factor=1.0)])
def test_bad_arguments(bad):
    args = dict(converged=circle(), window0=WINDOW, factor=2.0, depth=3, pilot=16) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        centre.find_centre(**args)
