"""Training the pixels at grid coordinates, from an experiment's training settings.

One path for a frame's shards (``workflow/scripts/train_shard.py``), the centre
search's pilot pixels (``converged_function``) and the estimators' points (the
uncertainty exponent, the line): hyperparameters ``10**x, 10**y`` -> per-layer
learning rates, offsets and optimiser hyperparameters (``trainability.contract.phase_space``)
-> each pixel's problem (shared, or drawn per pixel: ``trainability.contract.randomness``) ->
``dispatch.train_pixels``; or, for Liu's one-dimensional control (model kind
``quadratic_cosine``), ``quadratic_cosine.train``. So a pilot pixel and a frame pixel at
the same coordinates get the same answer from the same kernel.

The backend is chosen once per experiment (``experiment_backend``) and passed down to every
training call; its name (``kernel_name``) and ``arithmetic_identity`` are what each result
records.
"""

from __future__ import annotations

import numpy as np
import torch

from trainability.boundary import line_dimension, scoring, uncertainty
from trainability.boundary.centre import Converged
from trainability.contract import numerics, optimizers, phase_space, problem, randomness
from trainability.kernels import dispatch, quadratic_cosine
from trainability.kernels.backend import Backend, ProgressCallback

# The 1-D model's trainer is numpy on the CPU whatever the device: its "kernel".
ONE_DIMENSIONAL_KERNEL = "numpy"


def shared_problem(settings: dict, workdir=".") -> problem.Problem | None:
    """What an mlp experiment's pixels share (None for the 1-D model, which has no data)."""
    if problem.model_kind(settings["model"]) != "mlp":
        return None
    return problem.build_problem(settings["model"], settings["data"], settings["training"], workdir)


def _pixel_problem(shared: problem.Problem, settings: dict, pixels) -> problem.Problem:
    return randomness.pixel_problem(shared, settings["model"], settings["data"], settings["training"], pixels)


def experiment_backend(
    shared: problem.Problem | None, settings: dict, device: torch.device, kernel: str
) -> Backend | None:
    """The backend that trains the experiment's pixels, for the config's ``kernel`` (``auto``,
    ``fused``, ``torch``): chosen on pixel 0's problem (every pixel's has the same shapes and
    kinds), KernelUnsupported naming why a named one cannot; None for the 1-D model (numpy)."""
    if shared is None:
        return None
    probe = _pixel_problem(shared, settings, [0])
    return dispatch.choose_backend(probe, settings["training"]["dtype"], device, kernel)


def kernel_name(backend: Backend | None) -> str:
    """The ``kernel`` each result records: the backend's name (``fused``, ``torch``), or
    ``numpy`` for the 1-D model."""
    return ONE_DIMENSIONAL_KERNEL if backend is None else backend.NAME


def arithmetic_identity(backend: Backend | None, device: torch.device, settings: dict) -> dict[str, str]:
    """What the bits depend on (``dispatch.arithmetic_identity``); the 1-D model's numpy float64."""
    if backend is None:
        return {"kernel": ONE_DIMENSIONAL_KERNEL, "build": f"numpy {np.__version__} float64", "device": "cpu"}
    training = settings["training"]
    return dispatch.arithmetic_identity(
        backend.NAME, device, training["dtype"], optimizers.optimizer_of(training)
    )


def train_points(
    shared: problem.Problem | None,
    settings: dict,
    x_values: np.ndarray,
    y_values: np.ndarray,
    *,
    device: torch.device,
    backend: Backend | None = None,
    kernel: str = "auto",
    first_pixel: int = 0,
    progress: ProgressCallback | None = None,
    pixel_indices: np.ndarray | None = None,
    x_lo: np.ndarray | None = None,
    y_lo: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Loss statistics of the pixels at hyperparameter values (x, y) (not log10); for dtype
    float64x2, (x + x_lo, y + y_lo) (``grid.axis_values_double_double``; lo None: exact x, y).

    ``settings``: ``config.training_params`` of the experiment; ``backend``: the one
    ``experiment_backend`` chose (without it, one is chosen here for ``kernel``; the 1-D model
    needs neither); ``first_pixel``: the global index of the first pixel (see
    ``dispatch.train_pixels``); ``pixel_indices``: the indices whose per-pixel draws the points
    use (default first_pixel, first_pixel + 1, ...; points that must share a draw share an index).
    """
    x_values = np.asarray(x_values, dtype=np.float64).reshape(-1)
    y_values = np.asarray(y_values, dtype=np.float64).reshape(-1)
    kind = settings["phase_space"]["kind"]
    optimizer, optimizer_params = phase_space.optimizer_settings(kind, settings["training"], y_values)
    steps = settings["training"]["steps"]
    if shared is None:
        model, n = settings["model"], len(x_values)
        fixed = {name: np.full(n, float(model.get(name, np.nan))) for name in ("amplitude", "wavelength")}
        axis = phase_space.axis_field(kind)
        if axis in fixed:
            fixed[axis] = y_values
        return quadratic_cosine.train(
            x_values,
            fixed["amplitude"],
            fixed["wavelength"],
            form=model["form"],
            start=model["start"],
            steps=steps,
            optimizer=optimizer,
            optimizer_params=optimizer_params,
        )
    if pixel_indices is None:
        pixel_indices = np.arange(first_pixel, first_pixel + len(x_values))
    learning_rates, offsets = phase_space.mlp_learning_rates(kind, x_values, y_values, len(shared.weights))
    low_parts = {}
    if x_lo is not None or y_lo is not None:  # the same map of the low parts (a selection)
        lows = (
            np.zeros_like(x_values) if lo is None else np.asarray(lo, np.float64).reshape(-1)
            for lo in (x_lo, y_lo)
        )
        rates_lo, offsets_lo = phase_space.mlp_learning_rates(kind, *lows, len(shared.weights))
        low_parts = {"learning_rates_lo": rates_lo, "offsets_lo": offsets_lo}
    return dispatch.train_pixels(
        _pixel_problem(shared, settings, pixel_indices),
        learning_rates,
        offsets,
        nonlinearity=settings["model"]["nonlinearity"],
        steps=steps,
        offset_mode=settings["phase_space"]["offset_mode"],
        dtype=settings["training"]["dtype"],
        device=device,
        first_pixel=first_pixel,
        progress=progress,
        kernel=kernel,
        backend=backend,
        optimizer=optimizer,
        optimizer_params=optimizer_params,
        **low_parts,
    )


def trainable_labels(settings: dict, stats: dict) -> np.ndarray:
    """Each point's label by the experiment's own criterion (``scoring.label_measure``)."""
    measure = scoring.label_measure(settings["model"])
    return scoring.trainable(measure, scoring.MEASURES[measure](stats))


def converged_function(
    settings: dict, device: torch.device, kernel: str = "auto"
) -> tuple[Converged, Backend | None]:
    """(converged(x, y), the backend it runs: ``experiment_backend``) for the centre search;
    x, y are log10 coordinates."""
    shared = shared_problem(settings)
    chosen = experiment_backend(shared, settings, device, kernel)

    def converged(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x_values, y_values = numerics.pow10(x), numerics.pow10(y)
        stats = train_points(shared, settings, x_values, y_values, device=device, backend=chosen)
        return trainable_labels(settings, stats)

    return converged, chosen


# --------------------------------------------------- the estimators beside the box count


def converged_about_function(settings: dict, device: torch.device, kernel: str = "auto"):
    """(converged_about(origin), the backend) for the double-double centre search
    (``precise_centre``): ``converged_about((x0, y0))`` (192-bit log10 coordinates) is the
    ``converged(dx, dy)`` of the points x0 + dx, y0 + dy, computed at 192 bits and raised to
    double-double values."""
    shared = shared_problem(settings)
    chosen = experiment_backend(shared, settings, device, kernel)

    def converged_about(origin):
        def converged(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
            points = []
            for o, offsets in zip(origin, (dx, dy)):
                with numerics.precise_arithmetic():
                    coordinates = [o + numerics.precise(float(d)) for d in np.asarray(offsets).ravel()]
                points.append(numerics.pow10_double_double(coordinates))
            (x, x_lo), (y, y_lo) = points
            stats = train_points(shared, settings, x, y, x_lo=x_lo, y_lo=y_lo, device=device, backend=chosen)
            return trainable_labels(settings, stats)

        return converged

    return converged_about, chosen


def uncertainty_estimate(
    settings: dict, window, spec: dict, *, device: torch.device, kernel: str, progress=None
) -> tuple[uncertainty.UncertaintyResult, Backend | None]:
    """(the fit, the backend that trained: ``experiment_backend``); ``spec``: the experiment's
    resolved ``uncertainty``."""
    shared = shared_problem(settings)
    chosen = experiment_backend(shared, settings, device, kernel)
    eps = uncertainty.epsilons(
        window, settings["training"]["dtype"], per_decade=spec["per_decade"], largest=spec["largest"]
    )
    samples = uncertainty.sample(window, spec["points"], eps, spec["seed"])
    points = samples.all_points()
    stats = train_points(
        shared,
        settings,
        numerics.pow10(points[:, 0]),
        numerics.pow10(points[:, 1]),
        device=device,
        backend=chosen,
        progress=progress,
        pixel_indices=np.tile(np.arange(spec["points"]), eps.size + 1),
    )
    base, perturbed = samples.split(trainable_labels(settings, stats))
    fit = uncertainty.fit(eps, base, perturbed, d=2, bootstrap=spec["bootstrap"], seed=spec["seed"])
    return fit, chosen


def line_points(spec: dict) -> np.ndarray:
    """The line's x coordinates (log10 units): 2**K + 1 points across its x (resolved ``line``)."""
    x_lo, x_hi = spec["x"]
    return np.linspace(x_lo, x_hi, 2 ** spec["points_log2"] + 1)


def line_estimate(
    settings: dict, spec: dict, *, device: torch.device, kernel: str, progress=None
) -> tuple[line_dimension.LineDimension, np.ndarray, Backend | None]:
    """(the fit, the labels along the line, the backend that trained: ``experiment_backend``)."""
    shared = shared_problem(settings)
    chosen = experiment_backend(shared, settings, device, kernel)
    x = line_points(spec)
    stats = train_points(
        shared,
        settings,
        numerics.pow10(x),
        np.full(x.size, numerics.pow10(spec["y"])),
        device=device,
        backend=chosen,
        progress=progress,
    )
    labels = trainable_labels(settings, stats)
    return line_dimension.fit(labels), labels, chosen
