"""Uncertainty exponent of a boundary between two labels: a second dimension estimator.

Grebogi, McDonald, Ott & Yorke (1983), "Final state sensitivity: an obstruction
to predictability", Phys. Lett. A 99, 415: draw M points uniformly in a window,
move each by ε in a random direction and let f(ε) be the fraction whose label
changes. Near a boundary of dimension D in d dimensions f(ε) ~ ε**α with
α = d − D, so D = d − α (d = 2 for a window, 1 for a segment of a line).

Units: a window is ((x_lo, x_hi), (y_lo, y_hi)) in log10 hyperparameter units,
or (x_lo, x_hi) for a line (d = 1); any (d, 2) array of axes is accepted. ε is
relative to the window's extent on each axis: a point p moves to
``p + ε * (hi - lo) * u`` with u a unit vector (so the boundary is measured in
coordinates where the window is the unit cube). Base points are drawn in the
window inset by the largest ε on every side (``sample``), so every point trained,
partners included, lies inside the window: the hyperparameters the config checked.

Fit: α is the weighted least-squares slope of log10 f against log10 ε over
the scaling range, the ε values with at least ``min_changes`` changed points
and f <= ``saturation`` (0.5 is what independent, balanced labels give: beyond
it a perturbation no longer probes the boundary's scaling); weights c / (1 - f)
for c changed points, the inverse binomial variance of ln f. The 95% interval
of D comes from a bootstrap over the points (rows) refitted on the same ε.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainability.contract import numerics

DEFAULT_MARGIN_ULPS = 100.0
INTERVAL_PERCENTILES = (2.5, 97.5)
_BOOTSTRAP_CHUNK = 2**22  # resample indices drawn at most this many at a time


def _axes(window) -> np.ndarray:
    """The window as a float64 (d, 2) array of (lo, hi) rows; (lo, hi) alone is d = 1."""
    axes = np.asarray(window, dtype=np.float64)
    if axes.shape == (2,):
        axes = axes[None, :]
    if axes.ndim != 2 or axes.shape[1] != 2 or axes.shape[0] < 1:
        raise ValueError(f"window must be (lo, hi) or ((lo, hi), ...), got shape {axes.shape}")
    if not np.all(np.isfinite(axes)) or np.any(axes[:, 1] <= axes[:, 0]):
        raise ValueError(f"every axis of the window needs finite lo < hi, got {axes.tolist()}")
    return axes


def smallest_epsilon(
    window, dtype, *, largest: float = 0.1, margin_ulps: float = DEFAULT_MARGIN_ULPS
) -> float:
    """The smallest ε that ``dtype`` resolves in this window, by the rule of :func:`epsilons`."""
    axes = _axes(window)
    # Its points' coordinates are float64 (float32's are cast); double-double's values are finer.
    dt = np.dtype(np.float64 if dtype == "float64x2" else dtype)
    widths = axes[:, 1] - axes[:, 0]
    reach = np.abs(axes).max(axis=1) + largest * widths  # largest |coordinate| a perturbed point takes
    coordinate_ulp = np.spacing(reach.astype(dt)).astype(np.float64)
    # The log10 step that moves 10**x by one ulp at most.
    value_step = numerics.EPSILON[dtype] / float(numerics.log(10.0))
    return float(margin_ulps * np.max(np.maximum(coordinate_ulp, value_step) / widths))


def epsilons(
    window,
    dtype,
    *,
    per_decade: float = 2,
    largest: float = 0.1,
    margin_ulps: float = DEFAULT_MARGIN_ULPS,
) -> np.ndarray:
    """Decreasing ε grid ``largest * 10**(-k / per_decade)``, k = 0, 1, ..., down to the dtype's limit.

    Rule: on every axis the largest possible move, ε * (hi - lo), is at least
    ``margin_ulps`` times the larger of (a) the ulp, in ``dtype``, of the
    largest |coordinate| a perturbed point can take (max(|lo|, |hi|) + largest
    * (hi - lo)) and (b) finfo(dtype).eps / ln 10, the log10 step that moves
    10**x by at most one ulp (10**x assumed in dtype's normal range). A unit
    direction has a component of at least 1/sqrt(d) on some axis, so every
    perturbed point differs from its base by at least margin_ulps / sqrt(d)
    ulps there, in x and in 10**x; and rounding (about one ulp per
    coordinate) changes the realised move by at most about sqrt(d) /
    margin_ulps of its length. Empty when even ``largest`` is below the limit
    (a window too narrow for the dtype).
    """
    if not largest > 0 or not per_decade > 0 or not margin_ulps > 0:
        raise ValueError("largest, per_decade and margin_ulps must be positive")
    floor = smallest_epsilon(window, dtype, largest=largest, margin_ulps=margin_ulps)
    if largest < floor:
        return np.empty(0)
    n = int(math.floor(per_decade * float(numerics.log10(largest / floor)))) + 2
    grid = largest * numerics.pow10(-np.arange(n) / per_decade)
    return grid[grid >= floor]


@dataclass(frozen=True, eq=False)
class Samples:
    """Base points, unit directions and the ε grid of one uncertainty measurement.

    ``base`` (M, d) and ``directions`` (M, d) in window coordinates (log10
    units); arrays are read-only. Compare with ``np.array_equal``, not ``==``.
    """

    window: tuple[tuple[float, float], ...]
    eps: np.ndarray  # (K,)
    base: np.ndarray  # (M, d)
    directions: np.ndarray  # (M, d), unit rows
    seed: int

    @property
    def d(self) -> int:
        return self.base.shape[1]

    def perturbed(self) -> np.ndarray:
        """(K, M, d): ``base + eps[k] * (hi - lo) * directions``, float64."""
        widths = np.array([hi - lo for lo, hi in self.window])
        return self.base[None] + self.eps[:, None, None] * (self.directions * widths)[None]

    def all_points(self) -> np.ndarray:
        """((K + 1) * M, d): the base points, then the perturbed points ε by ε (label them in one go)."""
        return np.concatenate([self.base, self.perturbed().reshape(-1, self.d)])

    def split(self, labels) -> tuple[np.ndarray, np.ndarray]:
        """Labels of :meth:`all_points` as (base (M,), perturbed (K, M)) for :func:`fit`."""
        labels = np.asarray(labels, dtype=bool).reshape(self.eps.size + 1, self.base.shape[0])
        return labels[0], labels[1:]


def sample(window, n_points: int, eps, seed: int) -> Samples:
    """Draw M = ``n_points`` base points uniform in the window and uniform unit directions.

    Base points lie in the window inset by e = max(eps) (at least 0) of its extent on
    each side, so that every perturbed point stays in the window. Draw order, from
    ``numpy.random.default_rng(seed)``: ``rng.random((M, d))`` (point i's coordinates
    lo + (e + u (1 - 2 e)) (hi - lo), axis by axis), then
    ``rng.standard_normal((M, d))`` normalised row by row (uniform on the
    circle for d = 2, a random sign for d = 1). The ε grid takes no draws, so
    the points and directions do not depend on it.
    """
    axes = _axes(window)
    if n_points < 1:
        raise ValueError(f"n_points must be positive, got {n_points}")
    grid = np.asarray(eps, dtype=np.float64).reshape(-1)
    inset = float(grid.max()) if grid.size else 0.0
    if not 0.0 <= inset < 0.5:
        raise ValueError(f"the largest eps must lie in [0, 0.5) for the inset window, got {inset}")
    rng = np.random.default_rng(seed)
    widths = axes[:, 1] - axes[:, 0]
    base = axes[:, 0] + (inset + rng.random((n_points, axes.shape[0])) * (1.0 - 2.0 * inset)) * widths
    normal = rng.standard_normal((n_points, axes.shape[0]))
    directions = normal / np.linalg.norm(normal, axis=1, keepdims=True)
    for array in (grid, base, directions):
        array.flags.writeable = False
    window_tuple = tuple((float(lo), float(hi)) for lo, hi in axes)
    return Samples(window=window_tuple, eps=grid, base=base, directions=directions, seed=int(seed))


_FLOATS = ("alpha", "intercept", "dimension", "dimension_low", "dimension_high", "saturation")
_INTS = ("n_points", "d", "bootstrap", "n_bootstrap", "min_changes", "seed")


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


@dataclass(frozen=True, eq=False)
class UncertaintyResult:
    """f(ε), the fitted exponent α and the dimension D = d − α with its bootstrap interval.

    ``used`` marks the scaling range; ``intercept`` is the fitted log10 f at
    ε = 1 (the line is log10 f = intercept + alpha * log10 ε). Without a
    usable range alpha, intercept and dimension are NaN and ``reason`` says
    why (None when the fit exists). ``n_bootstrap`` counts the resamples
    with at least two ε values still holding changes (those give the interval).
    """

    eps: np.ndarray  # (K,)
    counts: np.ndarray  # (K,) changed points per ε
    n_points: int
    used: np.ndarray  # (K,) bool
    alpha: float
    intercept: float
    dimension: float
    dimension_low: float
    dimension_high: float
    d: int
    bootstrap: int
    n_bootstrap: int
    min_changes: int
    saturation: float
    seed: int
    reason: str | None = None

    @property
    def fraction(self) -> np.ndarray:
        """f per ε: changed points / M."""
        return self.counts / self.n_points

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; NaN becomes None; ``fraction`` is informative (not read back)."""
        return {
            "eps": [float(e) for e in self.eps],
            "counts": [int(c) for c in self.counts],
            "fraction": [float(f) for f in self.fraction],
            "used": [bool(u) for u in self.used],
            **{k: _json_float(getattr(self, k)) for k in _FLOATS},
            **{k: int(getattr(self, k)) for k in _INTS},
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UncertaintyResult:
        return cls(
            eps=np.asarray(data["eps"], dtype=np.float64),
            counts=np.asarray(data["counts"], dtype=np.int64),
            used=np.asarray(data["used"], dtype=bool),
            **{k: _num(data[k]) for k in _FLOATS},
            **{k: int(data[k]) for k in _INTS},
            reason=data.get("reason"),
        )


def _slopes(log_eps: np.ndarray, counts: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise weighted least squares of log10(counts / M) on log10 ε: (slope, intercept).

    Weights c / (1 - f), the inverse of the binomial variance of ln f (delta
    method), zero where a count is 0; NaN for rows with fewer than two
    positive counts.
    """
    counts = np.asarray(counts, dtype=np.float64)
    fraction = counts / n_points
    positive = counts > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(positive, counts / np.maximum(1.0 - fraction, 1.0 / n_points), 0.0)
        y = np.where(positive, numerics.log10(np.where(positive, fraction, 1.0)), 0.0)
    s, sx, sy = weight.sum(axis=1), (weight * log_eps).sum(axis=1), (weight * y).sum(axis=1)
    sxx, sxy = (weight * log_eps**2).sum(axis=1), (weight * log_eps * y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (s * sxy - sx * sy) / (s * sxx - sx * sx)
        intercept = (sy - slope * sx) / s
    ok = positive.sum(axis=1) >= 2
    return np.where(ok, slope, np.nan), np.where(ok, intercept, np.nan)


def fit(
    eps: Sequence[float] | np.ndarray,
    base_labels,
    perturbed_labels,
    *,
    d: int = 2,
    bootstrap: int = 1000,
    seed: int = 0,
    min_changes: int = 20,
    saturation: float = 0.5,
) -> UncertaintyResult:
    """Fit f(ε) ~ ε**α on the scaling range (module docstring) and return D = d − α.

    A point changes at ε when its perturbed label differs from its base label;
    fewer than two ε in the scaling range give NaN and a ``reason``. Bootstrap
    (resampling the M points with replacement): only the M' points changing at
    some ε of the range matter, so their multiplicities come from
    ``default_rng(seed).multinomial(M, [1/M] * M' + [1 - M'/M], size=bootstrap)``
    (drawn in chunks of rows, the same draws as one call); counts per resample
    are one matrix product; each is refitted by the same weighted fit on the
    same ε. Interval: 2.5 and 97.5 percentiles of d − α over the resamples
    with a slope (NaN when ``bootstrap`` is 0).
    """
    grid = np.asarray(eps, dtype=np.float64).reshape(-1)
    base = np.asarray(base_labels, dtype=bool).reshape(-1)
    perturbed = np.asarray(perturbed_labels, dtype=bool)
    n_points = base.size
    if n_points == 0 or perturbed.shape != (grid.size, n_points):
        raise ValueError(f"need perturbed_labels of shape (K, M) = {(grid.size, n_points)}, M > 0")
    if np.any(~(grid > 0)) or np.unique(grid).size != grid.size:
        raise ValueError("eps must be positive and distinct")
    changed = perturbed != base[None, :]
    counts = changed.sum(axis=1)
    used = (counts >= min_changes) & (counts / n_points <= saturation)
    common = dict(eps=grid, counts=counts, n_points=n_points, used=used, d=int(d), bootstrap=int(bootstrap))
    common.update(min_changes=int(min_changes), saturation=float(saturation), seed=int(seed))
    if used.sum() < 2:
        reason = (
            f"no boundary in the sample: {int(used.sum())} eps value(s) with at least {min_changes} "
            f"changed points of {n_points} and f <= {saturation} (need 2)"
        )
        nan = dict.fromkeys(("alpha", "intercept", "dimension", "dimension_low", "dimension_high"), math.nan)
        return UncertaintyResult(**nan, n_bootstrap=0, reason=reason, **common)
    log_eps = numerics.log10(grid[used])
    slope, intercept = _slopes(log_eps, counts[used][None, :], n_points)
    dims = d - _bootstrap_slopes(changed[used], log_eps, bootstrap, seed)
    dims = dims[np.isfinite(dims)]
    low, high = np.percentile(dims, INTERVAL_PERCENTILES) if dims.size else (math.nan, math.nan)
    return UncertaintyResult(
        alpha=float(slope[0]),
        intercept=float(intercept[0]),
        dimension=float(d - slope[0]),
        dimension_low=float(low),
        dimension_high=float(high),
        n_bootstrap=int(dims.size),
        **common,
    )


def _bootstrap_slopes(changed: np.ndarray, log_eps: np.ndarray, bootstrap: int, seed: int) -> np.ndarray:
    """Slopes of ``bootstrap`` resamples of the columns (points) of ``changed`` (K', M)."""
    n_points = changed.shape[1]
    cols = np.flatnonzero(changed.any(axis=0))  # points that never change add nothing to a count
    matrix = changed[:, cols].T.astype(np.float64)  # (M', K')
    pvals = np.full(cols.size + 1, 1.0 / n_points)
    pvals[-1] = max(0.0, 1.0 - cols.size / n_points)  # every other point, lumped
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK // (cols.size + 1))
    slopes = []
    for start in range(0, bootstrap, chunk):
        multiplicity = rng.multinomial(n_points, pvals, size=min(chunk, bootstrap - start))
        counts = np.rint(multiplicity[:, :-1] @ matrix)  # (rows, K'), exact integers
        slopes.append(_slopes(log_eps, counts, n_points)[0])
    return np.concatenate(slopes) if slopes else np.empty(0)


def fit_thresholds() -> tuple[int, float]:
    """``fit``'s ``min_changes`` and ``saturation`` as the workflow calls it (the defaults)."""
    parameters = inspect.signature(fit).parameters
    return parameters["min_changes"].default, parameters["saturation"].default


def fewest_fitting_points() -> int:
    """The fewest points with which ``fit`` can ever fit: an ε counts only when at least
    ``min_changes`` points change and at most a ``saturation`` fraction of them do, so fewer
    than min_changes / saturation points leave no ε that counts."""
    min_changes, saturation = fit_thresholds()
    return math.ceil(min_changes / saturation)
