"""The two estimators beside the box count, run on an experiment's own training path.

``uncertainty_estimate``: the uncertainty exponent (``trainability.uncertainty``) of
the experiment's window: every random point and its partners (one per epsilon) are
trained in one batch through ``training.train_points`` and labelled by the
experiment's own criterion (``training.trainable_labels``). With per-pixel randomness
a point and its partners share one draw (the point's index), so that a label change
comes from the move, not from a new problem.

``line_estimate``: Liu's line dimension (``trainability.line_dimension``) along x at
the line's y: 2**K + 1 points equally spaced in x (log10 units) across the line's x
(by default the window's).
"""

from __future__ import annotations

import numpy as np
import torch

from trainability import line_dimension, numerics, training, uncertainty


def uncertainty_estimate(
    settings: dict, window, spec: dict, *, device: torch.device, kernel: str, progress=None
) -> tuple[uncertainty.UncertaintyResult, str]:
    """(the fit, the kernel that trained); ``spec``: the experiment's resolved ``uncertainty``."""
    shared = training.shared_problem(settings)
    chosen = training.select_kernel(shared, settings, device, kernel)
    eps = uncertainty.epsilons(
        window, settings["training"]["dtype"], per_decade=spec["per_decade"], largest=spec["largest"]
    )
    samples = uncertainty.sample(window, spec["points"], eps, spec["seed"])
    points = samples.all_points()
    stats = training.train_points(
        shared,
        settings,
        numerics.pow10(points[:, 0]),
        numerics.pow10(points[:, 1]),
        device=device,
        kernel=chosen,
        progress=progress,
        pixel_indices=np.tile(np.arange(spec["points"]), eps.size + 1),
    )
    base, perturbed = samples.split(training.trainable_labels(settings, stats))
    fit = uncertainty.fit(eps, base, perturbed, d=2, bootstrap=spec["bootstrap"], seed=spec["seed"])
    return fit, chosen


def line_points(spec: dict) -> np.ndarray:
    """The line's x coordinates (log10 units): 2**K + 1 points across its x (resolved ``line``)."""
    x_lo, x_hi = spec["x"]
    return np.linspace(x_lo, x_hi, 2 ** spec["points_log2"] + 1)


def line_estimate(
    settings: dict, spec: dict, *, device: torch.device, kernel: str, progress=None
) -> tuple[line_dimension.LineDimension, np.ndarray, str]:
    """(the fit, the labels along the line, the kernel that trained)."""
    shared = training.shared_problem(settings)
    chosen = training.select_kernel(shared, settings, device, kernel)
    x = line_points(spec)
    stats = training.train_points(
        shared,
        settings,
        numerics.pow10(x),
        np.full(x.size, numerics.pow10(spec["y"])),
        device=device,
        kernel=chosen,
        progress=progress,
    )
    labels = training.trainable_labels(settings, stats)
    return line_dimension.fit(labels), labels, chosen
