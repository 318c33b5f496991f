"""When two implementations of the training agree: the criteria the benchmark and the self-test apply.

Kernels agree to rounding, not bit for bit, and many pixels near the
trainability boundary are chaotic: a relative change of 1e-13 in a learning
rate moves their measure by percent after 1000 steps, so any two
implementations differ there by as much. The criteria therefore compare the
measure closely only where that makes sense:

* ``away_from_boundary``: pixels whose 3x3 neighbourhood shares their label;
* ``stable_pixels``: pixels whose measure barely moves when the learning
  rates are perturbed (``perturbed_learning_rates``), i.e. not chaotic;
* ``compare_pixels``: the verdict for pixels in no particular layout;
  ``check_agreement``: the same on a grid (adds the boundary criterion).

numpy only (no torch): the caller trains, this module judges.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trainability.scoring import convergence_measure
from trainability.statistics import STAT_FIELDS

LABEL_AGREEMENT = 0.995  # minimum fraction of pixels with the same converged/diverged label
MEASURE_RTOL = 1e-9  # maximum relative difference of the measure away from the boundary
DIVERGED_RTOL = 1e-6  # the same for diverged pixels (see compare_pixels)
PERTURBATION = 1e-13  # relative change of the learning rates in the chaos test
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


def stable_pixels(reference: Stats, *perturbed: Stats, tol: float = STABLE_RTOL) -> np.ndarray:
    """Pixels whose measure moves by <= tol (relative), and keeps its label, in every
    ``perturbed`` run (the same kernel on ``perturbed_learning_rates``): their
    trajectories are not chaotic, so implementations that differ only in rounding
    must agree closely there. Any pixel layout; the result has the measure's shape."""
    m = convergence_measure(reference)
    ok = np.ones(m.shape, dtype=bool)
    for run in perturbed:
        mp = convergence_measure(run)
        with np.errstate(divide="ignore", invalid="ignore"):
            ok &= (np.abs(mp - m) <= tol * np.abs(m)) & ((m < 0) == (mp < 0))
    return ok


def compare_pixels(
    reference: Stats,
    candidate: Stats,
    compared: np.ndarray | None = None,
    *,
    label_agreement: float = LABEL_AGREEMENT,
    rtol: float = MEASURE_RTOL,
    diverged_rtol: float = DIVERGED_RTOL,
) -> dict:
    """Compare one implementation's statistics with the reference's, pixel for pixel.

    Both cover the same pixels (1-D, any layout). Passes when

    * the converged/diverged label (sign of the paper's measure M) agrees on
      >= ``label_agreement`` of the pixels, and, on the ``compared`` pixels
      (boolean mask; None = all; typically stable and away from the boundary):
    * converged pixels: |M - M_ref| <= rtol |M_ref|;
    * diverged pixels: the same first step with u >= 1e6 and
      |M - M_ref| <= diverged_rtol |M_ref|. (After a diverged run's loss
      passes 1e6 v_0 it keeps growing, chaotically, until it overflows; the
      step at which it becomes inf moves by a few steps between any two
      implementations, and each non-finite step adds 1/(1e6/v_0) instead of
      1e-6 to M: differences of ~1e-7 relative, in quanta.)
    """
    m_ref = convergence_measure(reference)
    m = convergence_measure(candidate)
    if m.shape != m_ref.shape:
        raise ValueError(f"candidate has {m.shape} pixels, expected {m_ref.shape}")
    same_label = (m < 0) == (m_ref < 0)
    compared = np.ones(m.shape, dtype=bool) if compared is None else np.asarray(compared, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(m - m_ref) / np.abs(m_ref)
    rel = np.where(np.isnan(rel) & (m == m_ref), 0.0, rel)
    rel = np.where(np.isnan(rel), np.inf, rel)
    conv, div = compared & (m_ref < 0), compared & (m_ref >= 0)
    same_onset = np.asarray(candidate["diverged_step"]) == np.asarray(reference["diverged_step"])
    fraction = float(same_label.mean()) if len(m) else 1.0
    max_conv = float(rel[conv].max()) if conv.any() else 0.0
    max_div = float(rel[div].max()) if div.any() else 0.0
    result = {
        "pixels": int(len(m)),
        "label_agreement": fraction,
        "label_disagreements": int((~same_label).sum()),
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
            "diverged_onset": "equal",
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
) -> dict:
    """``compare_pixels`` on a grid: ``reference`` covers the whole grid (row-major,
    ``shape``), ``candidate`` the grid pixels ``pixels``. The measure is compared on
    the pixels away from the boundary (3x3 neighbourhood of one label in the
    reference) that are also ``stable`` (grid-shaped boolean, None = all; see
    ``stable_pixels``)."""
    pixels = np.asarray(pixels, dtype=np.int64)
    m_ref_grid = convergence_measure(reference).reshape(shape)
    compared = away_from_boundary(m_ref_grid < 0).ravel()[pixels]
    if stable is not None:
        compared &= np.asarray(stable, dtype=bool).ravel()[pixels]
    at_pixels = {name: np.asarray(values)[pixels] for name, values in reference.items()}
    return compare_pixels(
        at_pixels,
        candidate,
        compared,
        label_agreement=label_agreement,
        rtol=rtol,
        diverged_rtol=diverged_rtol,
    )
