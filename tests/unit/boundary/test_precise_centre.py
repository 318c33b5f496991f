"""The double-double centre search (trainability.boundary.precise_centre) on a boundary known to
40 digits: it must follow it past the depth float64 coordinates resolve."""

import gmpy2
import numpy as np
import pytest

from trainability.boundary import centre, precise_centre
from trainability.contract import numerics

WINDOW = ((-3.0, 6.0), (-3.0, 6.0))
# The boundary x + y = C, C given with more digits than any double holds.
C = numerics.precise("2.1234567890123456789012345678901234567891")


def below_line(origin):
    """converged(dx, dy) of the points origin + (dx, dy): x + y < C, decided at 192 bits."""

    def converged(dx, dy):
        with numerics.precise_arithmetic():
            sums = [
                origin[0] + numerics.precise(float(a)) + origin[1] + numerics.precise(float(b))
                for a, b in zip(np.ravel(dx), np.ravel(dy))
            ]
        return np.array([s < C for s in sums])

    return converged


def distance_to_line(point):
    with numerics.precise_arithmetic():
        return abs(numerics.precise(point[0]) + numerics.precise(point[1]) - C)


def test_the_search_follows_the_boundary_thirty_decades_down():
    depth, factor = 31, 10.0  # frame 30 is 9e-30 wide, 1e14 times narrower than float64 resolves
    found = precise_centre.find_centre_precise(below_line, WINDOW, factor, depth, pilot=16)
    assert all(isinstance(c, str) for c in found.centre)
    deepest_width = (WINDOW[0][1] - WINDOW[0][0]) / factor ** (depth - 1)
    # Pinned to a thousandth of the deepest frame (find_centre's default tolerance).
    assert distance_to_line(found.centre) <= gmpy2.mpfr(deepest_width / 1000)
    # The converged end lies below the line and the diverged end above it, both that close.
    assert below_line((numerics.precise(0), numerics.precise(0)))(
        [float(found.converged_end[0]) - float(found.converged_end[0])], [0.0]
    ).shape == (1,)
    for end, below in ((found.converged_end, True), (found.diverged_end, False)):
        with numerics.precise_arithmetic():
            total = numerics.precise(end[0]) + numerics.precise(end[1])
        assert (total < C) == below
    # Every level of the descent, frames 0..30 once each, each probe's point near the line at its scale.
    frames = [level.frame for level in found.levels]
    assert frames == sorted(set(frames)) and frames[-1] == depth - 1
    for level in found.levels:
        width = (WINDOW[0][1] - WINDOW[0][0]) / factor**level.frame
        assert distance_to_line(level.centre) <= gmpy2.mpfr(width)
    # Inside the central half of the configured window, where the frames about it are defined.
    assert all(1 / 4 * 9 - 3 <= float(c) <= 3 / 4 * 9 - 3 for c in found.centre)


def test_within_one_stage_it_is_the_float64_search():
    depth, factor = 6, 2.0
    found = precise_centre.find_centre_precise(below_line, WINDOW, factor, depth, pilot=16)
    plain = centre.find_centre(
        below_line((numerics.precise(0), numerics.precise(0))), WINDOW, factor, depth, 16
    )
    assert [float(c) for c in found.centre] == list(plain.centre)
    assert found.pixels_trained == plain.pixels_trained


def test_a_stage_without_boundary_names_its_absolute_level():
    def nowhere(origin):
        first = [True]

        def converged(dx, dy):
            if origin[0] != 0:  # every stage after the first sees converged pixels only
                return np.ones(np.size(dx), bool)
            first[0] = False
            return below_line(origin)(dx, dy)

        return converged

    with pytest.raises(centre.NoBoundary) as err:
        precise_centre.find_centre_precise(nowhere, WINDOW, 10.0, 31, pilot=16)
    step, per_frame = precise_centre.search_factor(10.0)
    first = precise_centre.stage_levels(step) // per_frame  # the frame of the first re-basing
    assert err.value.frame >= first
    assert "the centre search about ['" in str(err.value) and "(coordinates relative to it)" in str(err.value)
