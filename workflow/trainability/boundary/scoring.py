"""Per-pixel trainability scores and the rank colour map.

The training kernels (``trainability.kernels``) do not keep whole loss
trajectories; they return a few running statistics per pixel
(``trainability.contract.statistics``). Every measure here is computed from those
statistics, so a measure can be changed without retraining. ``convergence_measure_from_losses`` computes the
paper's measure from full trajectories instead; it is the independent
reference the tests hold the statistics path to.

Paper's convergence measure (losses ``v_t``, t = 0..T-1, before update t)::

    v_t <- 1e6 where not finite;   u_t = min(v_t / v_0, 1e6)
    converged  <=>  mean(u over the last min(20, T) steps) < 1
    M = -sum_t u_t      if converged   (<= -1)
    M = +sum_t 1 / u_t  otherwise      (>= +1)

The sign says trainable or not; the magnitude grows the longer a run lingers,
which is what makes the region near the boundary visible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from trainability.contract import numerics
from trainability.contract.statistics import TAIL_STEPS, loss_ratios

Stats = Mapping[str, np.ndarray]

# Finite stand-in for +-inf in the colour map: far beyond any measure value
# (|M| <= 1e6 * T) yet small enough that np.interp's differences stay finite.
_COLOUR_SENTINEL = 1e300


def _field(stats: Stats, name: str) -> np.ndarray:
    try:
        return np.asarray(stats[name], dtype=np.float64)
    except KeyError:
        raise KeyError(f"statistics lack the field {name!r}; have {sorted(stats)}") from None


def convergence_measure(stats: Stats) -> np.ndarray:
    """The paper's convergence measure M from the kernel's running statistics.

    Uses ``sum_u``, ``sum_inv_u`` and ``tail_mean_u``; the result has their
    shape. Negative = converged (M <= -1), positive = diverged (M >= 1).
    """
    tail = _field(stats, "tail_mean_u")
    # A NaN tail compares False, so it counts as diverged, like the notebook.
    return np.where(tail < 1.0, -_field(stats, "sum_u"), _field(stats, "sum_inv_u"))


def convergence_measure_from_losses(losses: np.ndarray) -> np.ndarray:
    """The paper's convergence measure computed from full loss trajectories.

    ``losses`` has shape (..., T); the result has shape (...). This follows the
    definition directly and shares no code with the running statistics.
    """
    u = loss_ratios(losses)
    converged = u[..., -TAIL_STEPS:].mean(axis=-1) < 1.0
    with np.errstate(divide="ignore"):
        inv = (1.0 / u).sum(axis=-1)
    return np.where(converged, -u.sum(axis=-1), inv)


def loss_ratio_measure(stats: Stats) -> np.ndarray:
    """log10(loss_final / loss_initial), correctly rounded: negative = the loss went down."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerics.log10(_field(stats, "loss_final") / _field(stats, "loss_initial"))


def bounded_measure(stats: Stats) -> np.ndarray:
    """Liu's (2024) criterion with the paper's magnitudes: negative (-sum u) when the loss
    never reached MAX_RATIO times its start (``diverged_step`` = -1), else +sum 1/u. The label
    of the one-dimensional control, whose bounded orbits need not end below their start."""
    bounded = np.asarray(stats["diverged_step"]) < 0
    return np.where(bounded, -_field(stats, "sum_u"), _field(stats, "sum_inv_u"))


MEASURES: dict[str, Callable[[Stats], np.ndarray]] = {
    "convergence": convergence_measure,
    "log_loss_ratio": loss_ratio_measure,
    "bounded": bounded_measure,
}

# Which measure labels pixels trainable (the score's trainable map, the dimension,
# the colours), per model kind.
LABEL_MEASURES = {"mlp": "convergence", "quadratic_cosine": "bounded"}

# The datasets every frame's scores.h5 holds (the integrity check requires them): the
# paper's measures and the trainable map (uint8). Measures added later (bounded) are
# written too, but not required, so that scores made before them stay valid.
SCORE_FIELDS = ("convergence", "log_loss_ratio", "trainable")


def label_measure(model: Mapping) -> str:
    """The measure whose sign labels an experiment's pixels (``LABEL_MEASURES``)."""
    return LABEL_MEASURES[model.get("kind", "mlp")]


# Which side of zero counts as trainable, per measure.
_TRAINABLE_BELOW_ZERO = {"convergence": True, "log_loss_ratio": True, "bounded": True}


def trainable(measure_name: str, values: np.ndarray) -> np.ndarray:
    """Boolean map of trainable pixels for a named measure (NaN = not trainable)."""
    if measure_name not in _TRAINABLE_BELOW_ZERO:
        raise KeyError(f"unknown measure {measure_name!r}; known: {sorted(MEASURES)}")
    values = np.asarray(values, dtype=np.float64)
    return values < 0 if _TRAINABLE_BELOW_ZERO[measure_name] else values > 0


def _colour_ready(values: np.ndarray) -> np.ndarray:
    """NaN counts as diverged (+inf); infinities become large finite numbers."""
    x = np.asarray(values, dtype=np.float64)
    if np.isfinite(x).all():  # the usual case; skips two full passes
        return x
    x = np.where(np.isnan(x), np.inf, x)
    return np.clip(x, -_COLOUR_SENTINEL, _COLOUR_SENTINEL)


def rank_colour_values(
    values: np.ndarray, reference: np.ndarray | None = None, buffer: float = 0.25
) -> np.ndarray:
    """Sign-preserving rank equalisation onto [-1, -buffer] U [buffer, 1], negated.

    The sorted reference values (``values`` itself by default) are spread
    evenly by rank: negatives onto [-1, -buffer], non-negatives onto
    [buffer, 1]; each pixel is linearly interpolated and the result negated,
    so with the ``Spectral`` map converged pixels are blue and diverged red,
    paler the faster they go. NaN is treated as +inf (diverged).

    Unlike a single interpolation over the whole reference, each sign is
    interpolated within its own half, so a pixel never changes sign even when
    the reference differs from ``values``. (With the default reference the
    two agree exactly.) A sign missing from the reference maps to its pale end,
    +-buffer.
    """
    if not 0.0 <= buffer <= 1.0:
        raise ValueError(f"buffer must lie in [0, 1], got {buffer}")
    x = _colour_ready(values)
    flat = x.ravel()
    order = np.argsort(flat)
    queries = flat[order]
    n_neg = int(np.searchsorted(queries, 0.0, side="left"))  # count of values < 0

    if reference is None:
        # Each value is its own reference point, so interpolation reduces to a
        # lookup: np.interp at a tied reference value returns the level of the
        # last of the ties. O(n) after the sort, where np.interp on unsorted
        # queries takes ~40 s for a 4096^2 frame.
        levels = np.concatenate(
            [np.linspace(-1.0, -buffer, n_neg), np.linspace(buffer, 1.0, flat.size - n_neg)]
        )
        colours = levels[_last_of_ties(queries)]
    else:
        ref = np.sort(_colour_ready(reference).ravel())
        if ref.size == 0:
            raise ValueError("the reference holds no values")
        n_neg_ref = int(np.searchsorted(ref, 0.0, side="left"))
        # Sorted queries let np.interp find each bracket next to the last one.
        colours = np.empty_like(queries)
        colours[:n_neg] = _spread(queries[:n_neg], ref[:n_neg_ref], -1.0, -buffer)
        colours[n_neg:] = _spread(queries[n_neg:], ref[n_neg_ref:], buffer, 1.0)

    out = np.empty_like(flat)
    out[order] = -colours
    return out.reshape(x.shape)


def _last_of_ties(sorted_values: np.ndarray) -> np.ndarray:
    """For each position of a sorted array, the index of the last equal element."""
    n = sorted_values.size
    index = np.arange(n)
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = sorted_values[1:] != sorted_values[:-1]
    if is_last.all():
        return index
    return np.minimum.accumulate(np.where(is_last, index, n)[::-1])[::-1]


def _spread(queries: np.ndarray, ref: np.ndarray, first: float, last: float) -> np.ndarray:
    """Interpolate sorted ``queries`` on sorted ``ref`` spread evenly over [first, last].

    An empty ``ref`` maps everything to the end nearer zero (the pale end).
    """
    if ref.size == 0:
        pale = first if abs(first) < abs(last) else last
        return np.full(queries.shape, pale)
    return np.interp(queries, ref, np.linspace(first, last, ref.size))
