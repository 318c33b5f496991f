"""The uncertainty exponent (Grebogi, McDonald, Ott & Yorke 1983) on boundaries of known dimension.

The estimator sees only labels, so stand-in label functions replace training:
a straight line (D = 1), a Koch snowflake (D = log 4 / log 3), the parity of the
first ternary digit 1 (a Cantor-set boundary on a line, D = log 2 / log 3),
coin flips (a boundary everywhere, D = 2) and a constant (no boundary).
"""

import json
import math

import numpy as np
import pytest
from matplotlib.path import Path

from landscapes import in_snowflake, koch_polygon
from trainability.boundary import uncertainty as unc
from trainability.figures.style import save_figure
from trainability.figures.uncertainty import uncertainty_figure

KOCH_D = math.log(4) / math.log(3)
CANTOR_D = math.log(2) / math.log(3)
KOCH_LEVEL = 10  # finest segment sqrt(3) / 3**10 = 2.9e-5, 1.2e-5 of the window's extent
KOCH_WINDOW = ((-1.2, 1.2), (-1.2, 1.2))
LINE_WINDOW = ((-3.0, -1.0), (-2.0, 0.0))

# --------------------------------------------------------------------------- stand-in labels


def cantor_parity(x: np.ndarray, levels: int = 16) -> np.ndarray:
    """Parity of the position of the first ternary digit 1 (False where none in ``levels``)."""
    x = np.array(x, dtype=float)
    label, pending = np.zeros(x.shape, dtype=bool), np.ones(x.shape, dtype=bool)
    for n in range(levels):
        x *= 3
        digit = np.floor(x)
        x -= digit
        hit = pending & (digit == 1)
        label[hit] = n % 2 == 1
        pending &= ~hit
    return label


def measure(window, n_points, eps, label, *, seed=0, d=2, **kwargs):
    samples = unc.sample(window, n_points, eps, seed)
    base, perturbed = samples.split(label(samples.all_points()))
    return unc.fit(eps, base, perturbed, d=d, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def koch_result():
    eps = unc.epsilons(KOCH_WINDOW, "float64", per_decade=4, largest=0.03)
    eps = eps[eps >= 3e-4]  # 25x the finest segment and above
    return measure(KOCH_WINDOW, 100_000, eps, in_snowflake)


def test_the_fast_snowflake_matches_the_polygon():
    points = np.random.default_rng(1).uniform(-1.2, 1.2, (3000, 2))
    polygon = Path(koch_polygon(6))
    np.testing.assert_array_equal(in_snowflake(points, 6), polygon.contains_points(points))
    area = in_snowflake(np.random.default_rng(2).uniform(-1.2, 1.2, (200_000, 2))).mean() * 2.4**2
    assert area == pytest.approx(8 / 5 * 3 * math.sqrt(3) / 4, rel=0.01)  # 8/5 of the triangle


# --------------------------------------------------------------------------- dimensions


def test_a_straight_line_has_dimension_one():
    eps = unc.epsilons(LINE_WINDOW, "float32", per_decade=4)
    # 40 seeds at half this size: mean 1.002, sd 0.020 (bias -0.007 from f's eps**2 term at 1e6 points).
    result = measure(LINE_WINDOW, 200_000, eps, lambda p: p[:, 1] > 0.7 * p[:, 0] + 1.1)
    assert result.reason is None and result.used.sum() >= 6
    assert abs(result.dimension - 1) < 0.05
    assert result.dimension_low <= 1 <= result.dimension_high


def test_a_koch_snowflake_has_dimension_log4_over_log3(koch_result):
    # Over 24 seeds at this size: mean 1.266 (+0.004 bias, log-periodic), sd 0.010.
    assert koch_result.used.all()
    assert abs(koch_result.dimension - KOCH_D) < 0.04
    assert koch_result.dimension_low <= KOCH_D <= koch_result.dimension_high


def test_a_cantor_boundary_on_a_line_has_dimension_log2_over_log3():
    # The window reaches 0.01 of its width beyond [0, 1]: points are drawn in [0, 1], the
    # window inset by the largest eps (labels outside: the construction's, False).
    window = (-0.01 / 0.98, 1 + 0.01 / 0.98)
    eps = unc.epsilons(window, "float64", per_decade=4, largest=0.01)

    def label(p):
        x = p[:, 0]
        return cantor_parity(np.clip(x, 0, 1)) & (x >= 0) & (x <= 1)

    result = measure(window, 20_000, eps[eps >= 1e-5], label, d=1)
    assert result.d == 1 and abs(result.dimension - CANTOR_D) < 0.03
    # An exactly self-similar set makes f(eps) oscillate in log eps: where the grid falls
    # moves the estimate by about +-0.01 (0.641 on [0, 1], 0.645 here), beyond the bootstrap's
    # reach, so the interval is held to within 0.01 of the true value.
    assert result.dimension_low - 0.01 <= CANTOR_D <= result.dimension_high + 0.01


def test_coin_flips_fill_the_window():
    eps = unc.epsilons(LINE_WINDOW, "float32", per_decade=4)
    result = measure(LINE_WINDOW, 4000, eps, lambda p: np.random.default_rng(5).random(len(p)) < 0.5)
    assert abs(result.alpha) < 0.01 and abs(result.dimension - 2) < 0.01
    assert result.dimension_low <= 2 <= result.dimension_high
    assert np.all(result.fraction[result.used] <= 0.5)  # the saturation rule


def test_no_boundary_gives_nan_with_a_reason():
    eps = unc.epsilons(LINE_WINDOW, "float32")
    result = measure(LINE_WINDOW, 1000, eps, lambda p: np.ones(len(p), dtype=bool))
    assert math.isnan(result.dimension) and math.isnan(result.dimension_low)
    assert "no boundary" in result.reason and not result.used.any() and result.n_bootstrap == 0
    data = json.loads(json.dumps(result.to_dict()))
    assert data["dimension"] is None and data["reason"] == result.reason


# --------------------------------------------------------------------------- the fit rule


def test_the_fit_is_weighted_least_squares_on_the_scaling_range():
    rng = np.random.default_rng(3)
    eps = np.array([0.1, 0.05, 0.02, 0.01, 0.005])
    counts = np.array([700, 450, 160, 60, 15])  # 700 / 1000 > saturation; 15 < min_changes
    base = np.zeros(1000, dtype=bool)
    perturbed = np.zeros((5, 1000), dtype=bool)
    for k, c in enumerate(counts):
        perturbed[k, rng.choice(1000, c, replace=False)] = True
    result = unc.fit(eps, base, perturbed, bootstrap=200)
    np.testing.assert_array_equal(result.used, [False, True, True, True, False])
    f = counts[1:4] / 1000
    slope, intercept = np.polyfit(np.log10(eps[1:4]), np.log10(f), 1, w=np.sqrt(counts[1:4] / (1 - f)))
    assert result.alpha == pytest.approx(slope, rel=1e-12)
    assert result.intercept == pytest.approx(intercept, rel=1e-12)
    assert result.dimension == pytest.approx(2 - slope, rel=1e-12)
    assert result.n_bootstrap == 200 and result.dimension_low < result.dimension < result.dimension_high


def test_the_fit_is_reproducible_from_its_seed(koch_result):
    eps = unc.epsilons(LINE_WINDOW, "float32", per_decade=4)
    args = (LINE_WINDOW, 20_000, eps, lambda p: p[:, 1] > p[:, 0] + 1.5)
    first, again, other = measure(*args), measure(*args), measure(*args, seed=1)
    assert first.to_dict() == again.to_dict()
    assert first.to_dict() != other.to_dict()


def test_the_result_round_trips_through_json(koch_result):
    data = json.loads(json.dumps(koch_result.to_dict()))
    back = unc.UncertaintyResult.from_dict(data)
    assert back.to_dict() == koch_result.to_dict()
    np.testing.assert_array_equal(back.eps, koch_result.eps)
    assert back.dimension == koch_result.dimension and back.reason is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        unc.fit([0.1, 0.01], np.zeros(10, bool), np.zeros((3, 10), bool))
    with pytest.raises(ValueError):
        unc.fit([0.1, 0.1], np.zeros(10, bool), np.zeros((2, 10), bool))
    with pytest.raises(ValueError):
        unc.sample(((0, 1), (1, 1)), 10, [0.1], 0)


# --------------------------------------------------------------------------- ε grid and samples


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_epsilons_decrease_to_the_smallest_resolved(dtype):
    window = ((-4.5, -1.0), (-0.5, 2.5))
    eps = unc.epsilons(window, dtype, per_decade=3, largest=0.2)
    assert eps[0] == 0.2 and np.allclose(eps[1:] / eps[:-1], 10 ** (-1 / 3))
    samples = unc.sample(window, 5000, eps[-1:], seed=4)
    dt = np.dtype(dtype)
    base, moved = samples.base.astype(dt), samples.perturbed()[0].astype(dt)
    assert np.all(np.any(moved != base, axis=1))  # every point moves in the dtype
    assert np.all(np.any(dt.type(10) ** moved != dt.type(10) ** base, axis=1))  # and so does 10**x
    ulps = np.abs(moved - base) / np.spacing(np.maximum(np.abs(base), np.abs(moved)))
    assert np.all(ulps.max(axis=1) >= 50)  # the margin: 100 ulps / sqrt(2), less rounding
    # The rule is not vacuous: a move 400 times smaller (about a quarter ulp) is lost.
    tiny = (samples.base + (eps[-1] / 400) * samples.directions * [3.5, 3.0]).astype(dt)
    assert np.any(np.all(tiny == base, axis=1))


def test_float32_resolves_fewer_decades_and_narrow_windows_none():
    window = ((-3.0, -1.0), (-2.0, 0.0))
    e32, e64 = unc.epsilons(window, "float32"), unc.epsilons(window, "float64")
    assert 2 <= e32.size < e64.size and e32[-1] > 1e3 * e64[-1]
    assert unc.epsilons(((-3.0, -3.0 + 1e-6), (-2.0, -2.0 + 1e-6)), "float32").size == 0
    result = unc.fit(np.empty(0), np.zeros(10, bool), np.zeros((0, 10), bool))
    assert math.isnan(result.dimension) and result.reason


def test_samples_follow_the_documented_draws():
    window, eps = ((-3.0, -1.0), (0.5, 2.5)), np.array([0.1, 0.01])
    samples = unc.sample(window, 1000, eps, seed=7)
    rng = np.random.default_rng(7)
    # Inside the window inset by the largest eps (0.1 of the width 2) on every side.
    expected = np.array([-3.0, 0.5]) + (0.1 + rng.random((1000, 2)) * 0.8) * 2.0
    np.testing.assert_array_equal(samples.base, expected)
    assert np.all((samples.perturbed() >= [-3.0, 0.5]) & (samples.perturbed() <= [-1.0, 2.5]))
    normal = rng.standard_normal((1000, 2))
    np.testing.assert_allclose(samples.directions, normal / np.hypot(*normal.T)[:, None], rtol=1e-15)
    moved = (samples.perturbed() - samples.base) / 2.0  # in window units
    np.testing.assert_allclose(np.linalg.norm(moved, axis=2), eps[:, None] * np.ones((1, 1000)))
    again = unc.sample(window, 1000, eps, seed=7)
    assert np.array_equal(again.base, samples.base) and np.array_equal(again.directions, samples.directions)
    assert not np.array_equal(unc.sample(window, 1000, eps, seed=8).base, samples.base)
    points = samples.all_points()
    assert points.shape == (3000, 2) and np.array_equal(points[:1000], samples.base)
    line = unc.sample((0.0, 1.0), 500, eps, seed=7)
    assert line.d == 1 and set(np.unique(line.directions)) == {-1.0, 1.0}


# --------------------------------------------------------------------------- figure


def test_the_figure_is_written(tmp_path, koch_result):
    save_figure(uncertainty_figure(koch_result, "Koch snowflake"), tmp_path / "k.pdf", tmp_path / "k.png")
    assert (tmp_path / "k.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = unc.fit([0.1, 0.01], np.ones(50, bool), np.ones((2, 50), bool))
    save_figure(uncertainty_figure(empty, "no boundary"), None, tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.png", "k.pdf", "k.png"]  # no temporaries
