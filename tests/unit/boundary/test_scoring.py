"""Tests for trainability.boundary.scoring and .statistics: measures, statistics, colour map."""

from __future__ import annotations

import numpy as np
import pytest

from trainability.boundary.scoring import (
    MEASURES,
    convergence_measure,
    convergence_measure_from_losses,
    loss_ratio_measure,
    rank_colour_values,
    trainable,
)
from trainability.contract.statistics import MAX_RATIO, TAIL_STEPS, stats_from_losses


def reference_measure(trajectory: list[float]) -> float:
    """The README's definition, one trajectory at a time, in plain Python."""
    v = [x if np.isfinite(x) else 1e6 for x in trajectory]
    u = [min(x / v[0], 1e6) for x in v]
    tail = u[-20:]
    if sum(tail) / len(tail) < 1:
        return -sum(u)
    return sum(1.0 / x for x in u)


def random_trajectories(rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
    """Converging, diverging, oscillating and overflowing loss curves."""
    t = np.arange(steps)
    rates = rng.uniform(-0.3, 0.3, size=(n, 1))
    start = rng.uniform(0.5, 2.0, size=(n, 1))
    wiggle = 1 + 0.5 * rng.uniform(0, 1, size=(n, 1)) * np.sin(t * rng.uniform(0, 3, size=(n, 1)))
    with np.errstate(over="ignore"):
        losses = start * np.exp(rates * t) * wiggle
    losses[rng.random((n, steps)) < 0.02] = np.inf
    losses[rng.random((n, steps)) < 0.02] = np.nan
    return losses


def test_constants():
    assert MAX_RATIO == 1e6
    assert TAIL_STEPS == 20


@pytest.mark.parametrize("steps", [5, 20, 60])
def test_from_losses_matches_plain_definition(steps):
    losses = random_trajectories(np.random.default_rng(steps), 200, steps)
    ours = convergence_measure_from_losses(losses)
    expected = np.array([reference_measure(list(row)) for row in losses])
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_stats_path_matches_trajectory_path():
    losses = random_trajectories(np.random.default_rng(1), 500, 50).reshape(20, 25, 50)
    stats = stats_from_losses(losses)
    np.testing.assert_allclose(
        convergence_measure(stats), convergence_measure_from_losses(losses), rtol=1e-12
    )
    assert convergence_measure(stats).shape == (20, 25)


def test_sign_and_magnitude_bounds():
    losses = random_trajectories(np.random.default_rng(2), 400, 40)
    m = convergence_measure_from_losses(losses)
    assert np.all((m <= -1) | (m >= 1))  # u_0 = 1 bounds both branches
    assert (m < 0).any() and (m > 0).any()


def test_known_trajectories():
    steps = 30
    t = np.arange(steps)
    halving = 0.5**t  # converges
    doubling = 2.0**t  # diverges and saturates at 1e6
    nan_at_start = np.full(steps, np.nan)  # v_0 = 1e6, every u = 1: not converged
    m = convergence_measure_from_losses(np.stack([halving, doubling, nan_at_start]))
    assert m[0] == pytest.approx(-halving.sum())
    u = np.minimum(doubling, 1e6)
    assert m[1] == pytest.approx((1 / u).sum())
    assert m[2] == pytest.approx(steps)


def test_stats_fields_from_losses():
    losses = np.array([[2.0, 1.0, np.inf, 4e7, 0.5]])
    stats = stats_from_losses(losses)
    assert stats["loss_initial"][0] == 2.0
    assert stats["loss_final"][0] == 0.5
    assert stats["loss_min"][0] == 0.5
    assert stats["diverged_step"][0] == 3  # 4e7 / 2 >= 1e6; inf -> 1e6 -> 5e5 is not
    assert stats["diverged_step"].dtype == np.int64
    assert stats["tail_mean_u"][0] == pytest.approx(np.mean([1, 0.5, 5e5, 1e6, 0.25]))
    assert stats_from_losses(np.ones((1, 4)))["diverged_step"][0] == -1


def test_stats_hold_no_view_of_the_trajectories():
    # A view keeps the whole (P, T) array alive: blocks of trajectories would pile up.
    losses = np.random.default_rng(5).uniform(0.1, 2.0, (6, 40))
    for name, values in stats_from_losses(losses).items():
        assert values.base is None and values.flags.owndata, f"{name} is a view"


def test_loss_ratio_measure():
    stats = {"loss_initial": np.array([1.0, 2.0, 1.0]), "loss_final": np.array([0.01, 20.0, 1.0])}
    np.testing.assert_allclose(loss_ratio_measure(stats), [-2.0, 1.0, 0.0])
    np.testing.assert_array_equal(
        trainable("log_loss_ratio", loss_ratio_measure(stats)), [True, False, False]
    )


def test_bounded_measure_is_liu_criterion():
    """Trajectories by hand: one that stays bounded yet ends above its start (the paper's
    measure calls it diverged, Liu's criterion not), one that reaches 1e6 times its start."""
    losses = np.array([[1.0, 3.0, 2.0, 5.0], [1.0, 10.0, 1e7, 1e9], [1.0, 0.5, 0.2, 0.1]])
    stats = stats_from_losses(losses)
    bounded = MEASURES["bounded"](stats)
    np.testing.assert_array_equal(trainable("bounded", bounded), [True, False, True])
    np.testing.assert_array_equal(trainable("convergence", convergence_measure(stats)), [False, False, True])
    assert bounded[0] == -(1 + 3 + 2 + 5) and bounded[1] == pytest.approx(1 + 0.1 + 1e-6 + 1e-6)


def test_measures_registry_and_trainable():
    assert set(MEASURES) == {"convergence", "log_loss_ratio", "bounded"}
    stats = stats_from_losses(random_trajectories(np.random.default_rng(3), 50, 30))
    for name, measure in MEASURES.items():
        values = measure(stats)
        assert values.shape == (50,)
        assert trainable(name, values).dtype == bool
    np.testing.assert_array_equal(
        trainable("convergence", np.array([-3.0, 2.0, np.nan])), [True, False, False]
    )
    with pytest.raises(KeyError):
        trainable("nope", np.zeros(2))


def test_missing_field_is_named():
    with pytest.raises(KeyError, match="sum_inv_u"):
        convergence_measure({"sum_u": np.ones(2), "tail_mean_u": np.ones(2)})


# --------------------------------------------------------------------------- colour map


def notebook_style_colours(x: np.ndarray, buffer: float = 0.25) -> np.ndarray:
    """The README's recipe written plainly: one interpolation over the sorted frame."""
    u = np.sort(x.ravel())
    n_neg = int(np.sum(u < 0))
    v = np.concatenate([np.linspace(-1, -buffer, n_neg), np.linspace(buffer, 1, u.size - n_neg)])
    return -np.interp(x, u, v)


def test_colour_matches_readme_recipe():
    rng = np.random.default_rng(4)
    x = np.where(rng.random((64, 48)) < 0.4, -1, 1) * np.exp(rng.normal(size=(64, 48)) * 3)
    np.testing.assert_allclose(rank_colour_values(x), notebook_style_colours(x), atol=1e-12)


def test_colour_matches_readme_recipe_with_ties():
    rng = np.random.default_rng(6)
    x = rng.integers(-5, 6, size=(40, 30)).astype(float)  # many ties, and zeros
    np.testing.assert_allclose(rank_colour_values(x), notebook_style_colours(x), atol=1e-12)
    # Given a reference inside which the values lie, both also agree.
    reference = rng.normal(size=500) * 10
    y = rng.uniform(reference.min(), reference.max(), size=300)
    y = y[(y < reference[reference < 0].max()) | (y >= reference[reference >= 0].min())]
    u = np.sort(reference)
    n_neg = int(np.sum(u < 0))
    levels = np.concatenate([np.linspace(-1, -0.25, n_neg), np.linspace(0.25, 1, u.size - n_neg)])
    np.testing.assert_allclose(rank_colour_values(y, reference), -np.interp(y, u, levels), atol=1e-12)


def test_colour_properties():
    rng = np.random.default_rng(5)
    x = rng.normal(size=5000) * 100
    c = rank_colour_values(x)
    order = np.argsort(x)
    assert np.all(np.diff(c[order]) <= 1e-15)  # monotone (decreasing) in the value
    assert np.all(np.sign(c) == -np.sign(x))  # sign kept, then negated: converged > 0
    assert np.all((np.abs(c) >= 0.25 - 1e-12) & (np.abs(c) <= 1 + 1e-12))
    assert c.max() == pytest.approx(1.0) and c.min() == pytest.approx(-1.0)
    # Rank equalisation: half of each sign lies on each side of its midpoint.
    assert np.median(c[x < 0]) == pytest.approx(0.625, abs=0.01)


def test_colour_single_sign_frames():
    neg = -np.arange(1.0, 11.0)
    c = rank_colour_values(neg)
    np.testing.assert_allclose(np.sort(c), np.linspace(0.25, 1.0, 10))
    pos = np.arange(1.0, 11.0)
    np.testing.assert_allclose(np.sort(rank_colour_values(pos)), np.linspace(-1.0, -0.25, 10))
    assert rank_colour_values(np.array([-5.0])) == pytest.approx(1.0)


def test_colour_nan_and_inf_count_as_diverged():
    x = np.array([-3.0, -1.0, 2.0, np.nan, np.inf, 5.0])
    c = rank_colour_values(x)
    assert np.all(np.isfinite(c))
    assert c[3] == pytest.approx(-1.0) and c[4] == pytest.approx(-1.0)  # most diverged
    assert np.all(c[:2] > 0) and np.all(c[2:] < 0)


def test_colour_with_separate_reference_keeps_sign():
    reference = np.array([-10.0, -5.0, 3.0, 7.0])
    x = np.array([-1.0, 0.5, -100.0, 100.0, -7.5])
    c = rank_colour_values(x, reference)
    assert np.all(np.sign(c) == -np.sign(x))
    assert c[2] == pytest.approx(1.0) and c[3] == pytest.approx(-1.0)
    assert c[4] == pytest.approx(0.625)  # halfway between the two negatives
    # A sign absent from the reference maps to its pale end.
    assert rank_colour_values(np.array([-2.0]), np.array([1.0, 2.0])) == pytest.approx(0.25)


def test_colour_buffer_and_empty_reference():
    c = rank_colour_values(np.array([-2.0, -1.0, 1.0, 2.0]), buffer=0.0)
    np.testing.assert_allclose(c, [1.0, 0.0, 0.0, -1.0])
    with pytest.raises(ValueError):
        rank_colour_values(np.array([1.0]), np.array([]))
