"""The automatic zoom centre (trainability.boundary.centre) on landscapes whose boundary is known exactly."""

import math

import numpy as np
import pytest

from landscapes import KOCH_D, circle, snowflake, takagi
from trainability.boundary import centre, pilots
from trainability.boundary.box_counting import edge_map, fractal_dimension
from trainability.contract import grid

WINDOW = ((-3.0, 6.0), (-3.0, 6.0))


def below_takagi(x, y):
    # Scaled so the curve crosses the middle of WINDOW: y = 1.5 + 3 * (T(x / 4) - 0.5).
    return y < 1.5 + 3.0 * (takagi(np.asarray(x) / 4.0) - 0.5)


def frame_signs(converged, window0, factor, frame, point, resolution):
    (x_lo, x_hi), (y_lo, y_hi) = grid.concentric_window(window0, factor, frame, point)
    gx, gy = np.meshgrid(grid.axis_log10(x_lo, x_hi, resolution), grid.axis_log10(y_lo, y_hi, resolution))
    return converged(gx.ravel(), gy.ravel()).reshape(gx.shape)


def frame_edges(converged, window0, factor, frame, point, resolution):
    return edge_map(np.where(frame_signs(converged, window0, factor, frame, point, resolution), -1.0, 1.0))


def inside_central_half(point, window):
    return all((3 * lo + hi) / 4 <= c <= (lo + 3 * hi) / 4 for (lo, hi), c in zip(window, point))


# ------------------------------------------------- a smooth boundary richer than a fractal one
# A wave across the left of the window (smooth: box dimension 1) holds more edge pixels at
# the top than a small Koch snowflake on the right (log 4 / log 3 = 1.262 at every scale
# down to its finest segment). The old search (most edge pixels, greedy) took the wave.
KOCH_WINDOW = ((0.0, 4.0), (0.0, 4.0))
FLAKE_CENTRE, FLAKE_RADIUS, FLAKE_LEVEL = (2.5, 2.0), 0.35, 14
FINEST_SEGMENT = FLAKE_RADIUS * math.sqrt(3) / 3**FLAKE_LEVEL
WAVE_END = 2.05  # the wave for x below, the snowflake above
flake = snowflake(FLAKE_CENTRE, FLAKE_RADIUS, FLAKE_LEVEL)


def wave_and_snowflake(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return np.where(x < WAVE_END, y < 2.0 + 0.5 * np.sin(3 * np.pi * x), flake(x, y))


def test_the_wave_is_richer_than_the_snowflake_at_the_top():
    edges = frame_edges(wave_and_snowflake, KOCH_WINDOW, 2.0, 0, (2.0, 2.0), 64)
    middles = np.linspace(0.0, 4.0, 64)[:-1] + 2.0 / 63  # edge pixel (i, j) sits between pixels
    gx, gy = np.meshgrid(middles, middles)
    near_flake = np.hypot(gx - FLAKE_CENTRE[0], gy - FLAKE_CENTRE[1]) < 1.2 * FLAKE_RADIUS
    assert edges[gx < WAVE_END].sum() > 2 * edges[near_flake].sum() > 0


def test_the_search_ends_on_the_fractal_and_every_frame_has_its_dimension():
    resolution = 512
    # Frames whose pixels span at least two of the snowflake's finest segments resolve it.
    depth = int(math.log2(4.0 / (2 * FINEST_SEGMENT * (resolution - 1)))) + 1
    assert depth >= 15
    found = centre.find_centre(wave_and_snowflake, KOCH_WINDOW, 2.0, depth, pilot=24)
    assert found.centre[0] > WAVE_END
    assert flake(*np.array([found.converged_end]).T)[0] and not flake(*np.array([found.diverged_end]).T)[0]
    assert inside_central_half(found.centre, KOCH_WINDOW)
    for frame in range(depth):
        slope = fractal_dimension(frame_edges(wave_and_snowflake, KOCH_WINDOW, 2.0, frame, found.centre, 512))
        assert abs(slope.median - KOCH_D) <= 0.15, (frame, slope.median)


# ------------------------------------------------- exact boundaries: the centre is on them


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
    assert inside_central_half(found.centre, WINDOW)
    # Every frame about the centre, at 16 x 16, has boundary in its central region.
    for frame in range(depth):
        edges = frame_edges(circle(a, b, r), WINDOW, 2.0, frame, found.centre, 16)
        assert pilots.central_edges(edges) > 0, frame


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
        assert pilots.central_edges(frame_edges(below_takagi, WINDOW, 2.0, frame, found.centre, 16)) > 0


# ------------------------------------------------- the pieces


def test_roughness_tells_a_line_from_a_fractal_from_noise():
    xs = np.linspace(0, 1, 64)
    gx, gy = np.meshgrid(xs, xs)
    line, _ = pilots.roughness(gy < 0.3 + 0.4 * gx)
    noise, _ = pilots.roughness(np.random.default_rng(0).random((64, 64)) < 0.5)
    koch, _ = pilots.roughness(snowflake((0.5, 0.45), 0.45, 8)(gx.ravel(), gy.ravel()).reshape(64, 64))
    assert abs(line - 1) < 0.1 and noise > 1.9 and line + 0.1 < koch < noise
    assert pilots.roughness(np.zeros((64, 64), bool)) == (0.0, 0)
    assert pilots.roughness(gx > 0.99)[0] == 0.0, "a boundary along the probe's edge does not count"


def test_the_best_next_windows_are_the_richest_and_apart():
    edges = np.zeros((23, 23), bool)
    edges[5:8, 5:8] = True  # a dense patch up left
    edges[15, 15] = True  # one pixel down right
    offsets = pilots.next_offsets(edges, 4.0, 3)
    assert offsets[0][2] >= 4 and offsets[0][0] < 0 and offsets[0][1] < 0
    for (r1, c1, _), (r2, c2, _) in zip(offsets, offsets[1:]):
        assert max(abs(r1 - r2), abs(c1 - c2)) >= 23 / 4 / 2
    assert pilots.next_offsets(np.zeros((23, 23), bool), 4.0, 3) == []


def test_the_same_inputs_give_the_same_centre_bit_for_bit():
    one = centre.find_centre(below_takagi, WINDOW, 2.0, 20, pilot=24)
    two = centre.find_centre(below_takagi, WINDOW, 2.0, 20, pilot=24)
    assert one.to_dict() == two.to_dict()
    assert centre.CentreSearch.from_dict(one.to_dict()) == one


def test_its_cost_is_the_survey_the_candidates_and_the_beam():
    depth, pilot = 40, 32
    found = centre.find_centre(below_takagi, WINDOW, 2.0, depth, pilot=pilot)
    steps = math.ceil((depth - 1 - centre.entry_level(2.0, depth)) / centre.step_levels(2.0))
    probes = found.candidates + steps * centre.BEAM * centre.CHILDREN
    bisection = (found.candidates + 1) * 4 * pilots.SECTIONS  # at most 4 rounds each
    assert found.pixels_trained <= (centre.SURVEY_SCALE * pilot) ** 2 + probes * pilot**2 + bisection
    assert 0 < found.candidates <= centre.MAX_CANDIDATES
    assert found.pixels_trained / (depth * 4096**2) < 0.0005


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
    # Boundary only along the window's far-left edge: no candidate reaches it.
    def converged(x, y):
        return x < -2.9

    with pytest.raises(centre.NoBoundary, match=r"level 0 of 0\.\.4 .*only near its edges"):
        centre.find_centre(converged, WINDOW, 2.0, 5)


def test_central_edges_counts_only_the_middle():
    edges = np.zeros((15, 15), bool)
    edges[0, :] = True
    assert pilots.central_edges(edges) == 0
    edges[7, 7] = True
    assert pilots.central_edges(edges) == 1


@pytest.mark.parametrize("bad", [dict(depth=0), dict(pilot=3), dict(factor=1.0)])
def test_bad_arguments(bad):
    args = dict(converged=circle(), window0=WINDOW, factor=2.0, depth=3, pilot=16) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        centre.find_centre(**args)
