"""Tests for trainability.boundary.box_counting: edge maps and box counting on shapes of known dimension."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from trainability.boundary.box_counting import (
    BoxCount,
    DimensionEstimate,
    box_count,
    box_sizes,
    edge_map,
    fractal_dimension,
    smallest_measurable_resolution,
)

KOCH_DIMENSION = math.log(4) / math.log(3)  # 1.2619


# --------------------------------------------------------------------------- helpers


def porespy_boxcount_counts(im: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """porespy.metrics.boxcount's 2-D counting loop, written plainly."""
    counts = []
    for d in sizes:
        n = 0
        for i in range(0, im.shape[0], d):
            for j in range(0, im.shape[1], d):
                tile = im[i : i + d, j : j + d]
                n += bool(np.any(tile)) - bool(np.all(tile))
        counts.append(n)
    return np.array(counts)


def koch_curve(start: complex, end: complex, level: int) -> np.ndarray:
    """Vertices of a Koch curve (4**level segments) as complex numbers."""
    z = np.array([start, end], dtype=complex)
    turn = np.exp(1j * np.pi / 3)
    for _ in range(level):
        a, step = z[:-1], (z[1:] - z[:-1]) / 3
        z = np.append(np.stack([a, a + step, a + step + step * turn, a + 2 * step], axis=1), z[-1])
    return z


def rasterise_polyline(z: np.ndarray, n: int, spacing: float = 0.25) -> np.ndarray:
    """Mark every pixel of an n x n image that the polyline passes through."""
    a, b = z[:-1], z[1:]
    k = int(np.ceil(np.abs(b - a).max() / spacing)) + 1
    points = (a[:, None] + (b - a)[:, None] * np.linspace(0, 1, k)[None, :]).ravel()
    image = np.zeros((n, n), dtype=bool)
    rows = np.clip(points.imag.astype(int), 0, n - 1)
    cols = np.clip(points.real.astype(int), 0, n - 1)
    image[rows, cols] = True
    return image


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:n, 0:n]
    return x.astype(float), y.astype(float)


# --------------------------------------------------------------------------- edge map


def test_edge_map_hand_example():
    values = np.array(
        [
            [-1.0, -2.0, 3.0],
            [-1.0, -1.0, 5.0],
            [-4.0, -1.0, -1.0],
        ]
    )
    expected = np.array(
        [
            [False, True],
            [False, True],
        ]
    )
    np.testing.assert_array_equal(edge_map(values), expected)


def test_edge_map_equals_max_times_min_rule():
    """The paper's rule: sign(max * min) < 0 over each 2x2 window."""
    values = np.random.default_rng(3).integers(-2, 3, size=(60, 45)).astype(float)
    window = np.stack([values[1:, 1:], values[:-1, 1:], values[1:, :-1], values[:-1, :-1]], axis=-1)
    expected = np.sign(window.max(axis=-1) * window.min(axis=-1)) < 0
    np.testing.assert_array_equal(edge_map(values), expected)


def test_edge_map_shape_zero_and_nan():
    assert edge_map(np.ones((5, 7))).shape == (4, 6)
    assert not edge_map(np.ones((5, 7))).any()
    # Zero is neither sign (max * min == 0 in the paper's code).
    assert not edge_map(np.array([[0.0, 1.0], [1.0, 1.0]])).any()
    assert not edge_map(np.array([[0.0, -1.0], [-1.0, -1.0]])).any()
    # NaN counts as diverged (positive), infinities keep their sign.
    assert edge_map(np.array([[np.nan, -1.0], [-1.0, -1.0]])).all()
    assert edge_map(np.array([[np.inf, -np.inf], [1.0, 1.0]])).all()
    with pytest.raises(ValueError):
        edge_map(np.ones(4))


# --------------------------------------------------------------------------- box count


def test_box_sizes_are_porespy_defaults():
    np.testing.assert_array_equal(box_sizes((4095, 4095)), [10, 19, 38, 74, 144, 282, 551, 1075, 2098, 4095])
    np.testing.assert_array_equal(box_sizes((100, 300)), [10, 12, 16, 21, 27, 35, 46, 59, 77, 100])
    np.testing.assert_array_equal(box_sizes((50, 50), bins=[3, 7]), [3, 7])


@pytest.mark.parametrize("shape", [(37, 53), (64, 129), (100, 100), (11, 300), (257, 91)])
def test_box_count_matches_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    for density in (0.01, 0.3, 0.97):
        image = rng.random(shape) < density
        image[: shape[0] // 3, : shape[1] // 4] = True  # a solid block: some all-True tiles
        result = box_count(image)
        np.testing.assert_array_equal(result.counts, porespy_boxcount_counts(image, result.sizes))
        # Arbitrary sizes, including ones that do not divide the image.
        sizes = [1, 2, 3, 5, 7, 13]
        np.testing.assert_array_equal(
            box_count(image, bins=sizes).counts, porespy_boxcount_counts(image, np.array(sizes))
        )


def test_box_count_slopes_are_porespy_gradient():
    rng = np.random.default_rng(7)
    image = rng.random((200, 230)) < 0.05
    result = box_count(image)
    expected = -np.gradient(np.log(result.counts), np.log(result.sizes))
    np.testing.assert_allclose(result.slopes, expected)


def test_box_count_zero_counts_give_nan_without_warnings():
    image = np.zeros((64, 64), dtype=bool)
    image[:, :32] = True  # a straight boundary: only tiles straddling column 32 are mixed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blank = box_count(np.zeros((64, 64), dtype=bool))
        aligned = box_count(image, bins=[8, 16, 32])
    assert np.all(blank.counts == 0) and np.all(np.isnan(blank.slopes))
    # Tiles of 8, 16, 32 all align with column 32, so no tile is mixed.
    assert np.all(aligned.counts == 0)
    single = box_count(image, bins=[5])
    assert single.counts[0] == 13 and np.isnan(single.slopes[0])


def test_box_count_rejects_bad_input():
    with pytest.raises(ValueError):
        box_count(np.zeros((4, 4, 4), dtype=bool))


# --------------------------------------------------------------------------- known dimensions


def test_straight_line_has_dimension_one():
    x, y = grid(2048)
    estimate = fractal_dimension([edge_map(y - 0.37 * x - 300.5)])
    assert estimate.median == pytest.approx(1.0, abs=0.05)


def test_disc_boundary_has_dimension_one():
    x, y = grid(2048)
    inside_outside = np.hypot(x - 1030.3, y - 1017.7) - 700.0
    estimate = fractal_dimension([edge_map(inside_outside)])
    assert estimate.median == pytest.approx(1.0, abs=0.05)
    assert estimate.q25 <= estimate.median <= estimate.q75


def test_koch_curve_dimension():
    """A level-8 Koch curve (65536 segments, ~0.3 px each) in four orientations."""
    n = 2048
    rng = np.random.default_rng(11)
    frames = []
    for _ in range(4):
        angle = rng.uniform(0, 2 * np.pi)
        centre = complex(*(n / 2 + rng.uniform(-30, 30, size=2)))
        half = 0.47 * n * np.exp(1j * angle)
        frames.append(rasterise_polyline(koch_curve(centre - half, centre + half, 8), n))
    estimate = fractal_dimension(frames)
    assert estimate.median == pytest.approx(KOCH_DIMENSION, abs=0.06)
    assert len(estimate.box_counts) == 4
    assert estimate.n_slopes == 40


def test_random_boundary_fills_the_plane():
    rng = np.random.default_rng(12)
    signs = rng.choice([-1.0, 1.0], size=(1024, 1024))
    estimate = fractal_dimension([edge_map(signs)])
    assert estimate.median == pytest.approx(2.0, abs=0.08)


def test_dimension_ordering_line_koch_plane():
    """Rougher boundaries give larger estimates, at a modest resolution."""
    n = 512
    x, y = grid(n)
    line = fractal_dimension([edge_map(y - 0.21 * x - 100.5)]).median
    koch = fractal_dimension([rasterise_polyline(koch_curve(10 + 200j, n - 10 + 200j, 6), n)]).median
    plane = fractal_dimension([edge_map(np.random.default_rng(0).normal(size=(n, n)))]).median
    assert line < koch < plane


# --------------------------------------------------------------------------- estimate object


def test_estimate_pools_frames_and_skips_nan():
    rng = np.random.default_rng(13)
    frames = [rng.random((128, 128)) < 0.5, np.zeros((128, 128), dtype=bool)]
    estimate = fractal_dimension(frames)
    finite = np.concatenate([bc.slopes for bc in estimate.box_counts])
    finite = finite[np.isfinite(finite)]
    assert estimate.n_slopes == finite.size == len(estimate.box_counts[0].sizes)
    assert estimate.median == pytest.approx(np.median(finite))
    assert estimate.q25 == pytest.approx(np.percentile(finite, 25))
    assert estimate.q75 == pytest.approx(np.percentile(finite, 75))


def test_estimate_accepts_single_map_and_handles_no_edges():
    single = fractal_dimension(np.random.default_rng(0).random((64, 64)) < 0.5)
    assert len(single.box_counts) == 1
    empty = fractal_dimension([np.zeros((64, 64), dtype=bool)])
    assert math.isnan(empty.median) and empty.n_slopes == 0


def line_frame(resolution: int) -> np.ndarray:
    """A frame of ``resolution`` pixels per side split by a slanted line through its middle."""
    y, x = np.mgrid[0:resolution, 0:resolution]
    return y - 0.37 * x - 0.3 * resolution - 0.5


def test_a_frame_too_small_for_two_box_sizes_has_no_dimension_and_says_why():
    """At resolution 4 every box size (3..10) covers the whole 3x3 edge map: one box at every
    size, so every slope was 0 and the table said 0.00, spread -0.00 to -0.00."""
    edges = edge_map(line_frame(4))
    counts = box_count(edges)
    assert edges.any() and (counts.sizes >= 3).all() and set(counts.counts) == {1}
    estimate = fractal_dimension([edges])
    assert math.isnan(estimate.median) and estimate.n_slopes == 0
    assert estimate.reason.startswith(f"resolution 4 < {smallest_measurable_resolution()}, ")
    data = json.loads(json.dumps(estimate.to_dict(), allow_nan=False))
    assert data["median"] is None and data["reason"] == estimate.reason
    assert DimensionEstimate.from_dict(data).reason == estimate.reason


def test_box_counting_measures_from_the_smallest_measurable_resolution_on():
    """Below it a frame's edge map leaves fewer than 2 box sizes that fit (at most its side);
    from it on, every frame with a boundary gets slopes."""
    smallest = smallest_measurable_resolution()
    for resolution in range(2, smallest + 30):
        edges = edge_map(line_frame(resolution))
        sizes_that_fit = np.count_nonzero(box_count(edges).sizes <= resolution - 1)
        estimate = fractal_dimension([edges])
        if resolution >= smallest:
            assert sizes_that_fit >= 2 and estimate.n_slopes > 0 and estimate.reason is None, resolution
        elif sizes_that_fit < 2:
            assert estimate.n_slopes == 0 and estimate.reason.startswith(f"resolution {resolution} <")
    below = fractal_dimension([edge_map(line_frame(smallest - 1))])
    assert below.n_slopes == 0


def test_a_frame_without_boundary_says_so():
    estimate = fractal_dimension([np.zeros((64, 64), dtype=bool)])
    assert math.isnan(estimate.median) and estimate.reason.startswith("no boundary")


def test_to_dict_is_json_and_round_trips():
    frames = [np.random.default_rng(1).random((100, 90)) < 0.5, np.zeros((50, 50), dtype=bool)]
    estimate = fractal_dimension(frames)
    data = json.loads(json.dumps(estimate.to_dict(), allow_nan=False))
    assert data["n_slopes"] == estimate.n_slopes
    assert data["box_counts"][1]["slopes"][0] is None  # NaN stored as null
    back = DimensionEstimate.from_dict(data)
    assert back.median == pytest.approx(estimate.median)
    for a, b in zip(back.box_counts, estimate.box_counts):
        assert isinstance(a, BoxCount)
        np.testing.assert_array_equal(a.sizes, b.sizes)
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_allclose(a.slopes, b.slopes)
    empty = DimensionEstimate.from_dict(fractal_dimension([np.zeros((20, 20), bool)]).to_dict())
    assert math.isnan(empty.median)
