"""Training the pixels at grid coordinates, from an experiment's training settings.

One path for a frame's shards (``workflow/scripts/train_shard.py``) and the
centre search's pilot pixels (``converged_function``): hyperparameters
``10**x, 10**y`` -> per-layer learning rates (and offsets) -> ``kernels.train_pixels``.
So a pilot pixel and a frame pixel at the same coordinates get the same answer
from the same kernel.
"""

from __future__ import annotations

import numpy as np
import torch

from trainability import kernels, problem, scoring
from trainability.centre import Converged


def train_points(
    shared: problem.Problem,
    settings: dict,
    x_values: np.ndarray,
    y_values: np.ndarray,
    *,
    device: torch.device,
    kernel: str,
    first_pixel: int = 0,
    progress: kernels.ProgressCallback | None = None,
) -> dict[str, np.ndarray]:
    """Loss statistics of the pixels at hyperparameter values (x, y) (not log10).

    ``settings``: ``config.training_params`` of the experiment; ``first_pixel``:
    the global index of the first pixel (see ``kernels.train_pixels``).
    """
    learning_rates, offsets = problem.per_layer_learning_rates(
        x_values, y_values, settings["phase_space"]["kind"], len(shared.weights)
    )
    return kernels.train_pixels(
        shared,
        learning_rates,
        offsets,
        nonlinearity=settings["model"]["nonlinearity"],
        steps=settings["training"]["steps"],
        offset_mode=settings["phase_space"]["offset_mode"],
        dtype=settings["training"]["dtype"],
        device=device,
        first_pixel=first_pixel,
        progress=progress,
        kernel=kernel,
    )


def converged_function(settings: dict, device: torch.device, kernel: str = "auto") -> tuple[Converged, str]:
    """(converged(x, y), the kernel it runs) for the centre search; x, y are log10 coordinates."""
    shared = problem.build_problem(settings["model"], settings["data"], settings["training"])
    chosen = kernels.select_kernel(shared, settings["training"]["dtype"], device, kernel)

    def converged(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x_values, y_values = 10.0 ** np.asarray(x, float), 10.0 ** np.asarray(y, float)
        stats = train_points(shared, settings, x_values, y_values, device=device, kernel=chosen)
        return scoring.convergence_measure(stats) < 0

    return converged, chosen
