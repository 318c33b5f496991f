"""The per-pixel statistics contract: what every training kernel returns.

Kernels do not keep whole loss trajectories; they return a few running
statistics of each pixel's losses ``v_0..v_{T-1}`` (``STAT_FIELDS``), from
which ``trainability.boundary.scoring`` computes the paper's convergence measure and
alternatives without retraining. ``stats_from_losses`` computes the same
statistics from whole trajectories: the definition every kernel is held to.

    v_t <- MAX_RATIO where not finite;   u_t = min(v_t / v_0, MAX_RATIO)

This module is the one home of the constants: the C kernel gets them at build
time, the Triton kernel as compile-time arguments.
"""

from __future__ import annotations

import numpy as np

MAX_RATIO = 1e6  # losses are capped at this multiple of the initial loss
TAIL_STEPS = 20  # convergence is judged on the mean of u over the last 20 steps

STAT_FIELDS = (
    "loss_initial",  # v_0, non-finite replaced by MAX_RATIO
    "loss_final",  # v_{T-1}, same replacement
    "loss_min",  # min_t v_t
    "sum_u",  # sum_t u_t
    "sum_inv_u",  # sum_t 1 / u_t
    "tail_mean_u",  # mean of u_t over the last min(TAIL_STEPS, T) steps
    "diverged_step",  # first t with u_t >= MAX_RATIO, or -1
)

# The fused kernels write one (pixels, 6) float64 array whose columns are
# these fields in this order, and diverged_step as a separate int64 array.
FLOAT_FIELDS = STAT_FIELDS[:6]
INT_FIELDS = STAT_FIELDS[6:]


def empty_stats(n_pixels: int) -> dict[str, np.ndarray]:
    """Uninitialised result arrays of the contract's dtypes."""
    return {
        name: np.empty(n_pixels, dtype=np.int64 if name in INT_FIELDS else np.float64) for name in STAT_FIELDS
    }


def from_columns(floats: np.ndarray, diverged: np.ndarray) -> dict[str, np.ndarray]:
    """The stats dict from the fused kernels' (P, 6) float array and (P,) int array."""
    out = {name: np.ascontiguousarray(floats[:, i]) for i, name in enumerate(FLOAT_FIELDS)}
    out["diverged_step"] = np.asarray(diverged, dtype=np.int64)
    return out


def loss_ratios(losses: np.ndarray) -> np.ndarray:
    """u_t = min(v_t / v_0, MAX_RATIO) with non-finite v_t replaced by MAX_RATIO first."""
    v = np.asarray(losses, dtype=np.float64)
    if v.ndim < 1 or v.shape[-1] == 0:
        raise ValueError("losses need a non-empty last (time) axis")
    v = np.where(np.isfinite(v), v, MAX_RATIO)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.minimum(v / v[..., :1], MAX_RATIO)


def stats_from_losses(losses: np.ndarray) -> dict[str, np.ndarray]:
    """The kernels' per-pixel statistics computed from full trajectories (..., T)."""
    v = np.asarray(losses, dtype=np.float64)
    u = loss_ratios(v)
    v = np.where(np.isfinite(v), v, MAX_RATIO)
    hit = u >= MAX_RATIO
    with np.errstate(divide="ignore"):
        sum_inv_u = (1.0 / u).sum(axis=-1)
    return {  # copies, not views: a view would keep the whole (..., T) trajectory alive
        "loss_initial": v[..., 0].copy(),
        "loss_final": v[..., -1].copy(),
        "loss_min": v.min(axis=-1),
        "sum_u": u.sum(axis=-1),
        "sum_inv_u": sum_inv_u,
        "tail_mean_u": u[..., -TAIL_STEPS:].mean(axis=-1),
        "diverged_step": np.where(hit.any(axis=-1), hit.argmax(axis=-1), -1).astype(np.int64),
    }
