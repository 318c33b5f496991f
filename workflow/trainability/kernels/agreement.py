"""When two implementations of the training agree: the criteria the benchmark and the self-test apply.

Kernels agree to rounding, not bit for bit, and many pixels near the
trainability boundary are chaotic: a relative change of 1e-13 in a learning
rate moves their measure by percent after 1000 steps, so any two
implementations differ there by as much. The criteria therefore compare the
measure closely only where that makes sense:

* ``away_from_boundary``: pixels whose 3x3 neighbourhood shares their label;
* ``stable_pixels``: pixels whose measure barely moves when the learning
  rates or the initial weights are perturbed (``perturbed_learning_rates``,
  ``perturbed_weights``), i.e. not chaotic;
* ``settled_labels``: pixels whose label does not hinge on when a late loss
  spike happens;
* ``compare_pixels``: the verdict for pixels in no particular layout;
  ``check_agreement``: the same on a grid (adds the boundary criterion).

numpy only (no torch): the caller trains, this module judges.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from trainability.boundary.scoring import convergence_measure
from trainability.contract.problem import Problem
from trainability.contract.statistics import STAT_FIELDS

LABEL_AGREEMENT = 0.995  # minimum fraction of pixels with the same converged/diverged label
MEASURE_RTOL = 1e-9  # maximum relative difference of the measure away from the boundary
DIVERGED_RTOL = 1e-6  # the same for diverged pixels (see compare_pixels)
PERTURBATION = 1e-13  # relative change of the learning rates and weights in the chaos test
STABLE_RTOL = 1e-10  # a pixel is stable when that change moves its measure by no more

Stats = Mapping[str, np.ndarray]


def same_bits(a: Stats, b: Stats) -> np.ndarray:
    """Per pixel: every statistic bit-identical (float64 by its bits, so -0 differs from +0;
    any NaN equals any NaN)."""
    same = np.ones(len(a[STAT_FIELDS[0]]), dtype=bool)
    for name in STAT_FIELDS:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        equal = x.view(np.uint64) == y.view(np.uint64) if x.dtype == np.float64 else x == y
        if x.dtype == np.float64:
            equal |= np.isnan(x) & np.isnan(y)
        same &= equal
    return same


def away_from_boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood (clipped at the grid's edge) all share their label."""
    R0, R1 = labels.shape
    same = np.ones_like(labels, dtype=bool)
    padded = np.pad(labels, 1, mode="edge")
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            same &= padded[1 + di : 1 + di + R0, 1 + dj : 1 + dj + R1] == labels
    return same


def perturbed_learning_rates(
    learning_rates: np.ndarray, perturbation: float = PERTURBATION
) -> list[np.ndarray]:
    """The chaos test's inputs: one copy per layer with that layer's rate scaled by
    1 + perturbation (even layers) or 1 - perturbation (odd layers). Layer by layer
    because scaling all rates together is a weakly coupled direction that misses
    some chaotic pixels."""
    lrs = np.asarray(learning_rates, dtype=np.float64)
    out = []
    for layer in range(lrs.shape[1]):
        lp = lrs.copy()
        lp[:, layer] *= 1 + perturbation if layer % 2 == 0 else 1 - perturbation
        out.append(lp)
    return out


def perturbed_weights(problem: Problem, perturbation: float = PERTURBATION, seed: int = 0) -> Problem:
    """The chaos test's other input: every initial weight scaled by 1 +- perturbation, the
    signs drawn at random. The learning rates move a run along one direction only, a
    kernel's rounding along all of them, and some pixels amplify another direction far
    more (one of the self-test's at 200 steps: 725x along the learning rates, 3.4e4x along
    the weights, so the learning rates alone called it stable and the kernels differed there
    by 6e-9)."""
    rng = np.random.default_rng(seed)
    weights = tuple(w * (1 + perturbation * rng.choice([-1.0, 1.0], np.shape(w))) for w in problem.weights)
    return dataclasses.replace(problem, weights=weights)


def rounding_scale(dtype: str) -> float:
    """How much coarser ``dtype`` rounds than float64 (the ratio of their machine epsilons):
    a chaos test for a kernel computing in ``dtype`` perturbs, and tolerates, that much more."""
    return float(np.finfo(np.dtype(dtype)).eps / np.finfo(np.float64).eps)


def stable_pixels(reference: Stats, *perturbed: Stats, tol: float = STABLE_RTOL) -> np.ndarray:
    """Pixels whose measure moves by <= tol (relative), and keeps its label and divergence
    step, in every ``perturbed`` run (the same kernel on ``perturbed_learning_rates`` and
    ``perturbed_weights``): their trajectories are not chaotic, so implementations that
    differ only in rounding must agree closely there. Any pixel layout; the result has the
    measure's shape."""
    m = convergence_measure(reference)
    ok = np.ones(m.shape, dtype=bool)
    for run in perturbed:
        mp = convergence_measure(run)
        with np.errstate(divide="ignore", invalid="ignore"):
            ok &= (np.abs(mp - m) <= tol * np.abs(m)) & ((m < 0) == (mp < 0))
        ok &= np.asarray(run["diverged_step"]) == np.asarray(reference["diverged_step"])
    return ok


def settled_labels(*runs: Stats) -> np.ndarray:
    """Pixels whose label does not hinge on when a late loss spike happens: in every run the
    last loss lies on the same side of the first as the mean of u over the last TAIL_STEPS
    (the label's criterion). A loss crossing its start at the end flips the label when a
    spike comes a step earlier or later, and float32's rounding moves such spikes by steps
    (seen: 2 to 4 of 256 pixels of the self-test between 75 and 150 steps)."""
    settled = None
    for run in runs:
        with np.errstate(divide="ignore", invalid="ignore"):
            last = np.asarray(run["loss_final"]) / np.asarray(run["loss_initial"])
        same_side = (last < 1.0) == (np.asarray(run["tail_mean_u"]) < 1.0)
        settled = same_side if settled is None else settled & same_side
    return settled


def compare_pixels(
    reference: Stats,
    candidate: Stats,
    compared: np.ndarray | None = None,
    *,
    label_agreement: float = LABEL_AGREEMENT,
    rtol: float = MEASURE_RTOL,
    diverged_rtol: float = DIVERGED_RTOL,
    judged_labels: np.ndarray | None = None,
    onset_steps: int = 0,
) -> dict:
    """Compare one implementation's statistics with the reference's, pixel for pixel.

    Both cover the same pixels (1-D, any layout). Passes when

    * the converged/diverged label (sign of the paper's measure M) agrees on
      >= ``label_agreement`` of the ``judged_labels`` pixels (boolean mask; None
      = all), and, on the ``compared`` pixels (boolean mask; None = all;
      typically stable and away from the boundary):
    * converged pixels: |M - M_ref| <= rtol |M_ref|;
    * diverged pixels: the first step with u >= 1e6 at most ``onset_steps``
      steps apart, and |M - M_ref| <= diverged_rtol |M_ref|. (After a diverged run's loss
      passes 1e6 v_0 it keeps growing, chaotically, until it overflows; the
      step at which it becomes inf moves by a few steps between any two
      implementations, and each non-finite step adds 1/(1e6/v_0) instead of
      1e-6 to M: differences of ~1e-7 relative, in quanta.)
    """
    m_ref = convergence_measure(reference)
    m = convergence_measure(candidate)
    if m.shape != m_ref.shape:
        raise ValueError(f"candidate has {m.shape} pixels, expected {m_ref.shape}")
    judged = np.ones(m.shape, dtype=bool) if judged_labels is None else np.asarray(judged_labels, dtype=bool)
    same_label = ((m < 0) == (m_ref < 0))[judged]
    compared = np.ones(m.shape, dtype=bool) if compared is None else np.asarray(compared, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(m - m_ref) / np.abs(m_ref)
    rel = np.where(np.isnan(rel) & (m == m_ref), 0.0, rel)
    rel = np.where(np.isnan(rel), np.inf, rel)
    conv, div = compared & (m_ref < 0), compared & (m_ref >= 0)
    onset_shift = np.abs(np.asarray(candidate["diverged_step"]) - np.asarray(reference["diverged_step"]))
    same_onset = onset_shift <= onset_steps
    fraction = float(same_label.mean()) if same_label.size else 1.0
    max_conv = float(rel[conv].max()) if conv.any() else 0.0
    max_div = float(rel[div].max()) if div.any() else 0.0
    result = {
        "pixels": int(len(m)),
        "label_agreement": fraction,
        "label_disagreements": int((~same_label).sum()),
        "judged_label_pixels": int(same_label.size),
        "compared_converged_pixels": int(conv.sum()),
        "max_rel_diff_converged": max_conv,
        "compared_diverged_pixels": int(div.sum()),
        "max_rel_diff_diverged": max_div,
        "diverged_onset_mismatches": int((div & ~same_onset).sum()),
        "median_rel_diff_all": float(np.median(rel)) if len(rel) else 0.0,
        "criteria": {
            "label_agreement_min": label_agreement,
            "measure_rtol_converged": rtol,
            "measure_rtol_diverged": diverged_rtol,
            "diverged_onset": "equal" if onset_steps == 0 else f"within {onset_steps} step(s)",
        },
    }
    result["ok"] = bool(
        fraction >= label_agreement
        and max_conv <= rtol
        and max_div <= diverged_rtol
        and result["diverged_onset_mismatches"] == 0
    )
    return result


def check_agreement(
    reference: Stats,
    candidate: Stats,
    pixels: np.ndarray,
    shape: tuple[int, int],
    stable: np.ndarray | None = None,
    label_agreement: float = LABEL_AGREEMENT,
    rtol: float = MEASURE_RTOL,
    diverged_rtol: float = DIVERGED_RTOL,
    settled_only: bool = False,
    onset_steps: int = 0,
) -> dict:
    """``compare_pixels`` on a grid: ``reference`` covers the whole grid (row-major,
    ``shape``), ``candidate`` the grid pixels ``pixels``. The measure is compared on
    the pixels away from the boundary (3x3 neighbourhood of one label in the
    reference) that are also ``stable`` (grid-shaped boolean, None = all; see
    ``stable_pixels``). Labels are judged on every pixel, or with ``settled_only`` on
    those whose label cannot hinge on rounding: away from the boundary and
    ``settled_labels`` in both runs (a small grid has too few pixels for a fraction
    to absorb the few that do: 0.5% of 64 is none)."""
    pixels = np.asarray(pixels, dtype=np.int64)
    m_ref_grid = convergence_measure(reference).reshape(shape)
    away = away_from_boundary(m_ref_grid < 0).ravel()[pixels]
    compared = away.copy()
    if stable is not None:
        compared &= np.asarray(stable, dtype=bool).ravel()[pixels]
    at_pixels = {name: np.asarray(values)[pixels] for name, values in reference.items()}
    judged = (away & settled_labels(at_pixels, candidate)) if settled_only else None
    return compare_pixels(
        at_pixels,
        candidate,
        compared,
        label_agreement=label_agreement,
        rtol=rtol,
        diverged_rtol=diverged_rtol,
        judged_labels=judged,
        onset_steps=onset_steps,
    )
