"""The interface every training backend implements, declared once: ``Run`` and ``Backend``.

A training call is one ``Run`` (what to train: the problem, each pixel's learning rates,
offsets and optimiser hyperparameters; how: steps, dtype, device...), checked and
normalised when it is made, so that a backend receives arguments already known to be right.
A backend is a module (``c_cpu``, ``triton_gpu``, ``torch_batched``, ``reference``) with
the members of the ``Backend`` protocol; the dispatcher (``kernels.dispatch``) chooses one
and calls its ``train(run)``. Backends import this module and the contract only, never the
dispatcher or each other. ``TORCH_DTYPES`` is the one map from the contract's dtype names to
torch's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from trainability.contract.optimizers import MAX_HYPERPARAMETERS, OPTIMIZERS
from trainability.contract.optimizers import check_arguments as check_optimizer_arguments
from trainability.contract.problem import DTYPES, Problem, check_training_arguments

# The contract's dtype names (problem.DTYPES) that torch has, as torch dtypes (double-double,
# float64x2, is the C kernel's only).
TORCH_DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPES if hasattr(torch, name)}

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class Run:
    """One training call: P pixels, each a network trained for ``steps`` steps.

    Made with ``Run(problem, learning_rates, offsets, nonlinearity=..., steps=..., ...)``; it
    raises ValueError naming the first argument that is wrong, and holds the arrays as
    contiguous float64 (what every backend reads).

    Fields:
        problem: shared initial weights, data and minibatch index sequence (or per pixel).
        learning_rates: (P, n_layers) learning rate of each layer, per pixel.
        offsets: (P,) value added to every entry of W_0, per pixel, or None.
        nonlinearity: ``tanh`` | ``relu`` | ``identity`` (``problem.NONLINEARITIES``).
        steps: number of training steps T (losses v_0..v_{T-1}).
        offset_mode: ``every_step`` re-adds the offset before every step, as the author's
            notebook does (W_0 drifts by t*offset); ``init_only`` adds it once.
        dtype: ``float64`` (as in the paper), ``float32``, or ``float64x2`` (double-double,
            the C kernel's: each rate and offset is then ``hi + lo``).
        device: the torch device it runs on (``dispatch.resolve_device`` resolves ``auto``).
        first_pixel: global index of the first pixel (aligns the torch backend's blocks, so
            that results do not depend on sharding).
        block_pixels: the torch backend's block width (default per device type; part of a
            result's identity), or the Triton launch size; None: the backend's default.
        threads: CPU threads of the C kernel (results do not depend on it).
        progress: called as ``progress(pixel_steps_done, pixel_steps_total)``.
        optimizer: ``gd``, ``momentum`` or ``adam`` (``contract.optimizers`` states the rules).
        optimizer_params: the optimiser's hyperparameters, each a (P,) array; none for gd.
        learning_rates_lo, offsets_lo: for ``float64x2``, the low parts of the rates and
            offsets (the rest of each value beyond its float64 ``hi``), or None (zeros).
    """

    problem: Problem
    learning_rates: np.ndarray
    offsets: np.ndarray | None = None
    _: KW_ONLY
    nonlinearity: str
    steps: int
    offset_mode: str = "every_step"
    dtype: str = "float64"
    device: torch.device = torch.device("cpu")
    first_pixel: int = 0
    block_pixels: int | None = None
    threads: int = 1
    progress: ProgressCallback | None = None
    optimizer: str = "gd"
    optimizer_params: Mapping[str, np.ndarray] = field(default_factory=dict)
    learning_rates_lo: np.ndarray | None = None
    offsets_lo: np.ndarray | None = None

    def __post_init__(self):
        check_training_arguments(
            self.problem,
            self.learning_rates,
            self.offsets,
            self.nonlinearity,
            self.steps,
            self.offset_mode,
            self.dtype,
        )
        params = {k: np.asarray(v, dtype=np.float64) for k, v in (self.optimizer_params or {}).items()}
        check_optimizer_arguments(self.optimizer, params, np.shape(self.learning_rates)[0])
        offsets = None if self.offsets is None else np.ascontiguousarray(self.offsets, dtype=np.float64)
        low_parts = {"learning_rates_lo": self.learning_rates_lo, "offsets_lo": self.offsets_lo}
        for name, low in low_parts.items():
            if low is None:
                continue
            high = getattr(self, name.removesuffix("_lo"))
            if self.dtype != "float64x2":
                raise ValueError(f"{name} is for dtype float64x2 only, not {self.dtype}")
            if high is None or np.shape(low) != np.shape(high):
                raise ValueError(f"{name} must have the shape of {name.removesuffix('_lo')}")
            low_parts[name] = np.ascontiguousarray(low, dtype=np.float64)
        normalised = {
            **low_parts,
            "learning_rates": np.ascontiguousarray(self.learning_rates, dtype=np.float64),
            "offsets": offsets,
            "optimizer_params": params,
            "device": torch.device(self.device),
            "threads": max(1, int(self.threads or 1)),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @property
    def pixels(self) -> int:
        """P, the number of pixels trained."""
        return self.learning_rates.shape[0]

    def hyperparameters(self) -> np.ndarray:
        """(P, MAX_HYPERPARAMETERS) float64, the fused kernels' layout: each pixel's
        hyperparameters in ``OPTIMIZERS`` order (momentum: beta, 0, 0; adam: beta1, beta2, eps;
        gd: zeros)."""
        columns = np.zeros((self.pixels, MAX_HYPERPARAMETERS))
        for column, name in enumerate(OPTIMIZERS[self.optimizer]):
            columns[:, column] = self.optimizer_params[name]
        return columns


@runtime_checkable
class Backend(Protocol):
    """What a backend module provides. Extra keyword-only arguments of ``train`` (the C
    kernel's ``chunk`` and ``lib``, the Triton kernel's knobs) are for tests and benchmarks;
    the dispatcher passes the run only."""

    NAME: str  # the ``kernel`` it answers to and that each shard records: ``fused`` or ``torch``

    def unsupported(self, problem: Problem, dtype: str, device: torch.device) -> str | None:
        """Why it cannot run the case, or None. Needs no GPU to answer."""

    def train(self, run: Run) -> dict[str, np.ndarray]:
        """Per-pixel statistics (``contract.statistics.STAT_FIELDS`` -> (P,) arrays) of the run."""
