"""The one-dimensional control (Liu 2024, arXiv:2406.13971): a "model" with one weight x.

Gradient descent (or momentum, Adam) on a quadratic with a cosine perturbation::

    additive        f(x) = x**2 + a cos(2 pi x / lam)
    multiplicative  f(x) = x**2 (1 + a cos(2 pi x / lam))        (a <= 1)

from x_0 = ``start`` (Liu: 1.0, 1000 steps, learning rate in [0, 1.5], a = 0.2,
lam = 0.1). The arithmetic follows Liu's code term by term (phase = 2 pi x / lam,
gradient 2x - 2 pi a sin(phase) / lam), in float64, every operation elementwise:
each pixel's bits depend on its own arguments only, never on how pixels are grouped.
sin and cos are ``numerics.sin_cos``, fdlibm's in a fixed operation order: numpy's
np.sin and np.cos are SIMD code chosen at run time, whose last bits may change with the
CPU or numpy's version, and near the fractal boundary one bit changes labels. Julia's
sin and cos (Liu's code) are ports of fdlibm's: with Liu's threshold this gives Liu's
stored N(k), k = 14..20, exactly (np.sin and np.cos did not). Past |phase| = 2**48 they
are not sin and cos (see there); x**2 dominates f by far there.

Convexity: the additive f has f'' = 2 - a (2 pi / lam)**2 cos(phase) >= 0 everywhere
iff a / lam**2 <= 1 / (2 pi**2); Liu's learning-rate boundary has finitely many points
there and is fractal past it. The multiplicative f has, with k = 2 pi / lam,
f'' = 2 (1 + a cos) - 4 a k x sin - a k**2 x**2 cos, so f''(n lam) = 2 (1 + a) -
4 pi**2 a n**2 < 0 once n**2 > (1 + a) / (2 pi**2 a): for every a > 0 (and every lam)
f is non-convex, so it is convex on the real line only for a = 0 (threshold 0).

Statistics: ``train`` returns ``trainability.contract.statistics``'s contract over the recorded
losses v_t = f(x_t) - ``loss_floor`` (t = 0..T-1, each recorded before the t-th update,
as the network kernels do): the floor makes v >= 0, so that the ratios u = v / v_0 mean
what they mean for a network's mean squared error. The label is Liu's: a pixel
diverged when some u_t reached MAX_RATIO (``diverged``), i.e. f(x_t) > 1e6 v_0 - a
(about 1.4e6 at Liu's setting) where Liu stops at f > 1e8, checking x_1..x_T where
this checks x_0..x_{T-1}. On Liu's setting they differ only in a band just above
lr = 1, where |x| escapes slowly (by 2 lr - 1 a step) and late runs pass 1.4e6 but not
1e8 within 1000 steps: measured, 15 of 2**14 + 1 rates on [0, 1.5] differ, and 843 of
the 2**13 + 1 rates of [0.996, 1.008] (where every change lies), all in [1.0005,
1.006], all diverged here and not for Liu; the dimension over k = 15..20 is 1.00
here and 0.99 by Liu's threshold (Liu's stored counts, the same);
tests/unit/kernels/test_quadratic_cosine.py (test_liu_threshold_*) checks the cell's.
A diverging x overflows to inf and then NaN (numpy's warnings silenced): the contract
maps non-finite losses to MAX_RATIO.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trainability.contract import numerics, optimizers
from trainability.contract.statistics import stats_from_losses

FORMS = ("additive", "multiplicative")
# Liu's setting (exp-1.jl): the fractal case; the boundary lies just above lr = 1.
LIU_START = 1.0
LIU_STEPS = 1000
LIU_AMPLITUDE = 0.2
LIU_WAVELENGTH = 0.1
LIU_LEARNING_RATES = (0.0, 1.5)
# Pixels per block of recorded losses: (T, 4096) float64 is 33 MB at T = 1000.
BLOCK_PIXELS = 4096


def _check_form(form: str) -> str:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return form


def _check_values(form: str, amplitude, wavelength) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(amplitude, dtype=np.float64)
    lam = np.asarray(wavelength, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"amplitude must be finite and >= 0, got {a[~(a >= 0) | ~np.isfinite(a)][:3]}")
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"wavelength must be finite and > 0, got {lam[~(lam > 0) | ~np.isfinite(lam)][:3]}")
    if form == "multiplicative" and np.any(a > 1):
        # 1 + a cos would turn negative: f is unbounded below and loss_floor's 0 is false.
        raise ValueError(f"amplitude must be <= 1 for the multiplicative form, got {a[a > 1][:3]}")
    return a, lam


def _value_and_gradient(x, form, a, lam):
    """f(x) and f'(x), term by term as Liu's code (sin and cos: ``numerics.sin_cos``)."""
    phase = 2 * np.pi * x / lam
    s, c = numerics.sin_cos(phase)
    if form == "additive":
        return x**2 + a * c, 2 * x - 2 * np.pi * a * s / lam
    return x**2 * (1 + a * c), 2 * x * (1 + a * c) - 2 * np.pi * x**2 * a * s / lam


def _elementwise(x, form, amplitude, wavelength):
    a, lam = _check_values(_check_form(form), amplitude, wavelength)
    x = np.asarray(x, dtype=np.float64)
    try:
        np.broadcast_shapes(x.shape, a.shape, lam.shape)
    except ValueError:
        raise ValueError(
            f"x, amplitude and wavelength must broadcast, got shapes {x.shape}, {a.shape}, {lam.shape}"
        ) from None
    with np.errstate(all="ignore"):
        return _value_and_gradient(x, form, a, lam)


def loss(x, form: str, amplitude, wavelength) -> np.ndarray:
    """f(x), elementwise; amplitude and wavelength broadcast against x (per pixel)."""
    return _elementwise(x, form, amplitude, wavelength)[0]


def gradient(x, form: str, amplitude, wavelength) -> np.ndarray:
    """f'(x), analytic, elementwise (as ``loss``)."""
    return _elementwise(x, form, amplitude, wavelength)[1]


def loss_floor(form: str, amplitude) -> np.ndarray:
    """A lower bound of f (not its minimum): -a (additive), 0 (multiplicative, a <= 1).

    ``train`` records v = f(x) - floor >= 0, so that the statistics contract's loss
    ratios u = v / v_0 are ratios of non-negative losses, as for a network's MSE.
    """
    a, _ = _check_values(_check_form(form), amplitude, 1.0)
    return -a if form == "additive" else np.zeros_like(a)


def convexity_threshold(form: str) -> float:
    """The largest amplitude / wavelength**2 for which f is convex on the real line.

    additive: 1 / (2 pi**2) (f'' = 2 - a (2 pi / lam)**2 cos >= 0); multiplicative: 0
    (for any a > 0, f'' < 0 somewhere once |x| is large: see the module docstring).
    """
    return 1 / (2 * np.pi**2) if _check_form(form) == "additive" else 0.0


def is_convex(form: str, amplitude, wavelength) -> np.ndarray:
    """Whether f is convex on the real line: amplitude / wavelength**2 <= threshold (elementwise)."""
    a, lam = _check_values(_check_form(form), amplitude, wavelength)
    return a / lam**2 <= convexity_threshold(form)


def diverged(stats: Mapping[str, np.ndarray]) -> np.ndarray:
    """The label of this model (Liu's): True where some loss ratio reached MAX_RATIO."""
    return np.asarray(stats["diverged_step"]) >= 0


def _check_train(learning_rates, amplitudes, wavelengths, form, start, steps):
    _check_form(form)
    lr = np.asarray(learning_rates, dtype=np.float64)
    if lr.ndim != 1 or lr.size == 0:
        raise ValueError(f"learning_rates must have shape (P,) with P >= 1, got {lr.shape}")
    if not np.all(np.isfinite(lr)) or np.any(lr < 0):
        raise ValueError("learning_rates must be finite and >= 0")
    for name, values in (("amplitudes", amplitudes), ("wavelengths", wavelengths)):
        if np.shape(values) != lr.shape:
            raise ValueError(f"{name} must have shape {lr.shape} (as learning_rates), got {np.shape(values)}")
    a, lam = _check_values(form, amplitudes, wavelengths)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not np.isfinite(start):
        raise ValueError(f"start must be a finite number, got {start!r}")
    v0 = _value_and_gradient(np.float64(start), form, a, lam)[0] - loss_floor(form, a)
    if np.any(v0 <= 0):
        # u = v / v_0 is undefined (the multiplicative form at start = 0, for instance).
        raise ValueError(f"start={start!r} gives f(start) - loss_floor = 0 for some pixels; ratios undefined")
    return lr, a, lam


def train(
    learning_rates,
    amplitudes,
    wavelengths,
    *,
    form: str,
    start: float = LIU_START,
    steps: int = LIU_STEPS,
    optimizer: str = "gd",
    optimizer_params: Mapping[str, np.ndarray] | None = None,
    block_pixels: int = BLOCK_PIXELS,
) -> dict[str, np.ndarray]:
    """Train x from ``start`` for ``steps`` updates per pixel; the statistics contract per pixel.

    Args:
        learning_rates, amplitudes, wavelengths: (P,) arrays, one value per pixel.
        form: ``additive`` or ``multiplicative``.
        optimizer, optimizer_params: as ``trainability.contract.optimizers`` states them (the
            hyperparameters (P,) arrays; none for gd), with g = f'(x).
        block_pixels: pixels whose (steps, block) losses are held at once (memory only:
            the results do not depend on it).

    Returns:
        dict of ``statistics.STAT_FIELDS`` -> (P,) arrays, ``stats_from_losses`` of each
        pixel's v_0..v_{T-1}, v_t = f(x_t) - loss_floor recorded before update t.
    """
    lr, a, lam = _check_train(learning_rates, amplitudes, wavelengths, form, start, steps)
    params = {k: np.asarray(v, dtype=np.float64) for k, v in (optimizer_params or {}).items()}
    optimizers.check_arguments(optimizer, params, lr.size)
    if isinstance(block_pixels, bool) or not isinstance(block_pixels, (int, np.integer)) or block_pixels < 1:
        raise ValueError(f"block_pixels must be an integer >= 1, got {block_pixels!r}")
    floor = loss_floor(form, a)
    parts = []
    for lo in range(0, lr.size, block_pixels):
        block = slice(lo, lo + block_pixels)
        hyper = {k: v[block] for k, v in params.items()}
        losses = _run(lr[block], a[block], lam[block], floor[block], form, start, steps, optimizer, hyper)
        # (B, T) C-ordered, as the definition's (P, T): numpy sums a contiguous last axis
        # pairwise and a strided one in order, and the bits of sum_u must be the definition's.
        # 1 / u overflows to inf for losses that reach (almost) 0: the contract's own value.
        with np.errstate(over="ignore"):
            parts.append(stats_from_losses(np.ascontiguousarray(losses.T)))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _run(lr, a, lam, floor, form, start, steps, optimizer, hyper) -> np.ndarray:
    """(steps, B) recorded losses of one block of pixels."""
    x = np.full(lr.shape, float(start))
    losses = np.empty((steps, lr.size))
    m = np.zeros_like(x)
    s = np.zeros_like(x)
    b1 = np.ones_like(x)
    b2 = np.ones_like(x)
    # Overflow to inf and inf - inf = NaN are how a diverging run ends; the contract maps them.
    with np.errstate(all="ignore"):
        for t in range(steps):
            f, g = _value_and_gradient(x, form, a, lam)
            losses[t] = f - floor
            if optimizer == "gd":
                x = x - lr * g
            elif optimizer == "momentum":
                m = hyper["beta"] * m + g
                x = x - lr * m
            else:
                beta1, beta2 = hyper["beta1"], hyper["beta2"]
                m = beta1 * m + (1 - beta1) * g
                s = beta2 * s + (1 - beta2) * g**2
                b1 = b1 * beta1
                b2 = b2 * beta2
                step, r = lr / (1 - b1), 1 / np.sqrt(1 - b2)
                x = x - step * (m / (np.sqrt(s) * r + hyper["eps"]))
    return losses
