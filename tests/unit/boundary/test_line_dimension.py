"""Tests for trainability.boundary.line_dimension: Liu's change-count dimension on labels built to have it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from trainability.boundary.line_dimension import LineDimension, change_counts, fit


def labels_with_counts(counts, seed=0) -> np.ndarray:
    """Labels of 2**K + 1 points whose level-k change count is ``counts[k]``.

    Refining a level puts a point between each pair of neighbours. A pair that
    changes gives one change whatever the midpoint; a pair that does not gives two
    when the midpoint takes the other label, else none. So N(k + 1) = N(k) + 2 q,
    with q <= 2**k - N(k) equal pairs flipped (chosen at random here).
    """
    rng = np.random.default_rng(seed)
    assert counts[0] in (0, 1)
    labels = np.array([False, bool(counts[0])])
    for k in range(len(counts) - 1):
        q, odd = divmod(counts[k + 1] - counts[k], 2)
        equal = np.nonzero(labels[:-1] == labels[1:])[0]
        assert not odd and 0 <= q <= equal.size, (k, counts[k], counts[k + 1])
        mid = labels[:-1].copy()
        flip = rng.choice(equal, size=q, replace=False)
        mid[flip] = ~mid[flip]
        finer = np.empty(2 * labels.size - 1, dtype=bool)
        finer[0::2], finer[1::2] = labels, mid
        labels = finer
    return labels


def plain_counts(labels) -> list[int]:
    """Liu's subsampling written as a loop over levels and neighbours."""
    K = round(math.log2(len(labels) - 1))
    out = []
    for k in range(K + 1):
        sub = [labels[i * 2 ** (K - k)] for i in range(2**k + 1)]
        out.append(sum(a != b for a, b in zip(sub[:-1], sub[1:])))
    return out


def test_change_counts_by_hand_and_by_a_plain_loop():
    ks, counts = change_counts([0, 0, 1, 1, 0])
    assert ks.tolist() == [0, 1, 2] and counts.tolist() == [0, 2, 2]
    labels = np.random.default_rng(3).integers(0, 2, 2**9 + 1)
    counts = change_counts(labels)[1]
    assert counts.tolist() == plain_counts(labels.tolist())
    assert np.all(np.diff(counts) >= 0)  # a coarse change is a change somewhere below it


def test_the_construction_has_the_counts_it_was_asked_for():
    want = [1, 1, 3, 3, 7, 9, 15]
    assert change_counts(labels_with_counts(want))[1].tolist() == want


def test_a_step_has_dimension_zero():
    labels = np.arange(2**12 + 1) >= 1234
    d = fit(labels)
    assert d.counts == (1,) * 13
    assert d.dimension == pytest.approx(0.0, abs=1e-12)
    assert (d.k_min, d.k_max) == (0, 12) and d.boundary and d.reason == ""


def test_finitely_many_boundary_points_give_a_small_dimension():
    labels = np.zeros(2**14 + 1, dtype=bool)
    labels[3000:5000] = labels[9000:9001] = labels[12000:] = True  # 5 boundary points
    d = fit(labels)
    assert d.counts[-1] == 5
    assert 0 <= d.dimension < 0.15


def test_counts_doubling_every_level_give_dimension_one():
    K = 18
    counts = [0, 2] + [2 ** (k - 1) for k in range(2, K + 1)]
    d = fit(labels_with_counts(counts, seed=1))
    assert list(d.counts) == counts
    assert (d.k_min, d.k_max) == (4, K)  # the first level with 8 changes, to K
    assert d.dimension == pytest.approx(1.0, abs=1e-12)
    assert d.intercept == pytest.approx(-1.0, abs=1e-10)


def test_counts_growing_like_a_square_root_give_dimension_one_half():
    K = 20
    counts = [1]
    for k in range(1, K + 1):
        target = 2 * round((2 ** (k / 2) - 1) / 2) + 1  # odd, as with ends of different labels
        counts.append(max(counts[-1], target))
    d = fit(labels_with_counts(counts, seed=2))
    assert list(d.counts) == counts
    assert d.dimension == pytest.approx(0.5, abs=0.02)


def test_the_default_range_keeps_three_levels():
    counts = [1, 1, 1, 1, 1, 1, 3, 9]  # 8 changes only at K = 7
    d = fit(labels_with_counts(counts))
    assert (d.k_min, d.k_max) == (5, 7)
    assert d.dimension == pytest.approx(np.polyfit([5, 6, 7], np.log2([1, 3, 9]), 1)[0], rel=1e-12)


def test_an_explicit_range():
    counts = [1, 1, 3, 5, 9, 17, 33]
    labels = labels_with_counts(counts)
    d = fit(labels, k_min=2, k_max=4)
    assert (d.k_min, d.k_max) == (2, 4)
    assert d.dimension == pytest.approx(np.polyfit([2, 3, 4], np.log2([3, 5, 9]), 1)[0], rel=1e-12)
    assert fit(labels, k_min=3).k_max == 6 and (fit(labels, k_max=5).k_min, fit(labels, k_max=5).k_max) == (
        4,
        5,
    )
    assert (fit(labels, k_max=3).k_min, fit(labels, k_max=3).k_max) == (3, 3)  # one level: no slope
    for lo, hi in ((-1, 4), (4, 2), (0, 7)):
        with pytest.raises(ValueError, match="k_min"):
            fit(labels, k_min=lo, k_max=hi)
    with pytest.raises(ValueError, match="k_min=1"):
        fit(labels_with_counts([0, 0, 2, 2]), k_min=1)


def test_no_boundary_is_a_result_not_an_error():
    d = fit(np.ones(2**6 + 1))
    assert not d.boundary and math.isnan(d.dimension) and math.isnan(d.intercept)
    assert d.counts == (0,) * 7 and d.k_min is None and "no boundary" in d.reason
    assert fit(np.ones(9), k_min=1).boundary is False


def test_a_single_level_has_no_slope():
    d = fit([0, 1])
    assert d.boundary and d.counts == (1,) and math.isnan(d.dimension) and "one level" in d.reason


@pytest.mark.parametrize("n", [0, 1, 4, 6, 1024, 1026])
def test_lengths_other_than_a_power_of_two_plus_one_are_refused(n):
    with pytest.raises(ValueError, match=r"2\*\*K \+ 1"):
        change_counts(np.zeros(n))
    with pytest.raises(ValueError, match=r"2\*\*K \+ 1"):
        fit(np.zeros(n))


def test_two_dimensional_labels_are_refused():
    with pytest.raises(ValueError, match="1-D"):
        change_counts(np.zeros((3, 3)))


def test_round_trip_through_json():
    fitted = fit(labels_with_counts([1, 1, 3, 5, 9, 17, 33]))
    assert LineDimension.from_dict(json.loads(json.dumps(fitted.to_dict()))) == fitted
    for d in (fit(np.zeros(17)), fit([0, 1])):
        data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
        assert data["dimension"] is None
        back = LineDimension.from_dict(data)
        assert back.to_dict() == d.to_dict() and math.isnan(back.dimension)
