"""The optimisers every training kernel implements, and their exact update rules.

Each pixel runs one of (g: the gradient of a weight at step t = 1, 2, ...; lr: that
layer's learning rate; every other hyperparameter is per pixel, so that a phase
space can put it on an axis)::

    gd        W <- W - lr g
    momentum  m <- beta m + g;                       W <- W - lr m          (m = 0 before step 1)
    adam      m <- beta1 m + (1 - beta1) g;          v <- beta2 v + (1 - beta2) g^2
              b1 <- b1 beta1;  b2 <- b2 beta2        (b1 = b2 = 1 before step 1)
              s = lr / (1 - b1);  r = 1 / sqrt(1 - b2)      (per step, per pixel and layer)
              W <- W - s (m / (sqrt(v) r + eps))

``momentum`` is torch.optim.SGD's heavy ball (dampening 0, not Nesterov); ``adam`` is
torch.optim.Adam (no weight decay, no AMSGrad) with the bias corrections as running
products, so that every kernel computes beta**t the same way, and its step in torch's
order (bias corrections on the scalars: one division and one square root per weight,
which is what makes Adam cost no more than gd in the fused kernels). The autograd reference
(``kernels.reference``) runs torch.optim itself, so the kernels are held to torch's
optimisers, not to a copy of these formulas.

This module is the one home of the optimisers' names, their codes in the kernels,
hyperparameters, defaults and allowed ranges: the config validation, the kernels and the
phase spaces use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

# Each optimiser's hyperparameters (the training fields that set them), in kernel order.
OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "gd": (),
    "momentum": ("beta",),
    "adam": ("beta1", "beta2", "eps"),
}
DEFAULTS = {"beta": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
# The number that names each optimiser inside the kernels (C's OPT_* definitions, the Triton
# kernel's OPT constexpr): its place in OPTIMIZERS. Generated here, never spelled out there.
OPTIMIZER_CODES: dict[str, int] = {name: code for code, name in enumerate(OPTIMIZERS)}
# Columns of the kernels' per-pixel hyperparameter array: the most any optimiser takes.
MAX_HYPERPARAMETERS = max(len(names) for names in OPTIMIZERS.values())


def _unit_interval(v):
    return (v >= 0.0) & (v < 1.0)


# Allowed values, as (test on a number or an array, words for the error message).
RANGES = {
    "beta": (_unit_interval, "0 <= beta < 1"),
    "beta1": (_unit_interval, "0 <= beta1 < 1"),
    "beta2": (_unit_interval, "0 <= beta2 < 1"),
    "eps": (lambda v: v > 0.0, "eps > 0"),
}
HYPERPARAMETERS = tuple(DEFAULTS)


def optimizer_of(training: Mapping) -> str:
    """The experiment's optimiser (a resolved training section leaves out gd, the default)."""
    return training.get("optimizer", "gd")


def value_problems(name: str, value) -> list[str]:
    """Why ``value`` is not allowed for hyperparameter ``name`` (empty: it is)."""
    test, words = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return [f"{value!r} is not a finite number; allowed: {words}"]
    return [] if bool(test(float(value))) else [f"{value!r} is outside the allowed range; allowed: {words}"]


def pixel_parameters(
    optimizer: str, training: Mapping, n_pixels: int, axis: tuple[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Each hyperparameter of ``optimizer`` as a (P,) float64 array: the training
    section's value (or the default), or the axis values for the one a phase space varies."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {optimizer!r}")
    out = {}
    for name in OPTIMIZERS[optimizer]:
        if axis is not None and axis[0] == name:
            out[name] = np.asarray(axis[1], dtype=np.float64).reshape(n_pixels)
        else:
            out[name] = np.full(n_pixels, float(training.get(name, DEFAULTS[name])))
    if axis is not None and axis[0] not in OPTIMIZERS[optimizer]:
        raise ValueError(f"optimizer {optimizer!r} has no hyperparameter {axis[0]!r}")
    return out


def check_arguments(optimizer: str, params: Mapping[str, np.ndarray] | None, n_pixels: int) -> None:
    """Raise ValueError naming what is wrong with a kernel call's optimiser arguments."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {optimizer!r}")
    params = params or {}
    expected = set(OPTIMIZERS[optimizer])
    if set(params) != expected:
        raise ValueError(
            f"optimizer {optimizer!r} takes the hyperparameters {sorted(expected)}, got {sorted(params)}"
        )
    for name, values in params.items():
        values = np.asarray(values)
        if values.shape != (n_pixels,):
            raise ValueError(f"optimizer parameter {name} must have shape ({n_pixels},), got {values.shape}")
        test, words = RANGES[name]
        bad = ~test(values.astype(np.float64))
        if bad.any():
            raise ValueError(f"optimizer parameter {name} must satisfy {words}; got {values[bad][:3]}")
