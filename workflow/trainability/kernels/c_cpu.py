"""Fused C backend for CPUs: each pixel's whole run in one call of a small C kernel.

The batched torch backend makes a few dozen passes over a block's activations
in memory per step; the C kernel (``fused_cpu.c``, shipped beside this file)
keeps one pixel's weights, activations and gradients in registers and L1/L2 for
all its steps, so the cost is arithmetic only. Float64, depth-2 networks. Each
phase of a step is a register tile with enough independent FMA chains to fill
the FMA pipes and few loads per FMA (see the C file's header); the tiles only
interleave independent chains, so the bits are those of one value at a time.

It is compiled with the system's C compiler on first use (``$CC``, ``gcc`` or ``cc``;
``-O3 -march=native -ffp-contract=off``, IEEE semantics: no ``-ffast-math``), with the
contract's constants (the statistics' columns, the nonlinearities' and optimisers' codes)
passed as ``-D`` definitions, cached under ``$TRAINABILITY_CACHE`` (default
``$XDG_CACHE_HOME/trainability`` or ``~/.cache/trainability``) keyed by source,
definitions, flags, compiler and CPU, and called through ctypes (the GIL is
released, so Python threads run pixels in parallel).
``TRAINABILITY_NO_CPU_FUSED=1`` disables it.

Its bits do not depend on the machine, the vector width or the ISA it is built
for (x86-64 with or without AVX2/AVX-512/FMA, aarch64): every sum over rows has
an order fixed in the source (explicit lanes and reduction tree, nothing left
to the vectoriser), fused multiply-adds are written out (``__builtin_fma``;
libm's correctly rounded ``fma`` where the hardware has none, only slower) and
``-ffp-contract=off`` forbids others, so ``-march=native`` changes speed only.
``BUILD_CLASS`` names this arithmetic (bumped whenever the C source changes
bits); tests/kernels/test_c_cpu_bits.py builds several ISAs and compares bit for bit.

tanh is the kernel's own vectorisable implementation (expm1 by Cody-Waite
reduction and a degree-13 Taylor polynomial, Horner steps as FMAs; <= 2.1 ulp,
measured against long-double tanhl), 32 values at a time so that their Horner
chains interleave (on Zen 3 ~12 cycles per 4 values, against ~29 one value at a
time, which was already about twice as fast as glibc's vector tanh). Each
pixel's arithmetic does not depend on any other pixel, the chunking or the
thread count, so results are invariant to sharding, bit for bit
(tests/kernels/test_c_cpu_bits.py checks this, and the bits against digests recorded
for ``BUILD_CLASS``).

Optimisers: gd, momentum and Adam (``trainability.contract.optimizers`` states their update
rules and codes), the optimiser's code and its per-pixel hyperparameters a
(P, N_HYPER) array passed to the kernel, which keeps each pixel's state (momentum and
Adam buffers, Adam's running products beta^t) in its own buffer, reset per pixel.
The branch on the optimiser is outside the element-wise update loops; gd's loops
are those of the gd-only kernel, so its bits are still those of ``BUILD_CLASS``.
The kernel shares one problem (weights, data, minibatches) among its pixels:
per-pixel randomness (``Problem.per_pixel``) runs on the torch kernel.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainability.contract.optimizers import MAX_HYPERPARAMETERS, OPTIMIZER_CODES
from trainability.contract.problem import NONLINEARITY_CODES, Problem, layer_constants
from trainability.contract.statistics import FLOAT_FIELDS, from_columns
from trainability.kernels import c_cpu_dd, c_library
from trainability.kernels.backend import Run

NAME = "fused"
SOURCE = Path(__file__).with_name("fused_cpu.c")
# The kernel's arithmetic: bump the number whenever a change to fused_cpu.c changes bits.
BUILD_CLASS = "fixed-order-fma-1"
N_HYPER = MAX_HYPERPARAMETERS  # columns of the kernel's per-pixel hyperparameter array
# The contract's constants and codes, compiled in (the kernel spells none): part of the cache key.
DEFINES = c_library.CONTRACT_DEFINES
ROW_BLOCK = 16  # rows are padded to a multiple of the kernel's NB

_lib_lock = threading.Lock()
_lib_state: dict = {}


def unsupported(problem: Problem, dtype: str, device) -> str | None:
    """Why this backend cannot run the case (device: a torch.device or anything with ``.type``)."""
    if device.type != "cpu":
        return f"the fused C kernel runs on CPU, not {device.type}"
    if dtype not in ("float64", "float64x2"):
        return f"the fused C kernel supports float64 and float64x2 (double-double), not {dtype}"
    if problem.per_pixel:
        return _per_pixel_reason(problem)
    depth = len(problem.weight_shapes())
    if depth != 2:
        return f"the fused C kernel supports depth-2 networks only, not depth {depth}"
    if dtype == "float64x2" and c_cpu_dd.load_library() is None:
        return f"the double-double C kernel is unavailable: {c_cpu_dd.why()}"
    if load_library() is None:
        return f"the fused C kernel is unavailable: {_lib_state['why']}"
    return None


def build_class(dtype: str) -> str:
    """The arithmetic of this backend's results in ``dtype``: BUILD_CLASS, or the double-double
    kernel's (``c_cpu_dd.BUILD_CLASS``)."""
    return c_cpu_dd.BUILD_CLASS if dtype == "float64x2" else BUILD_CLASS


def _per_pixel_reason(problem: Problem) -> str:
    kinds = ", ".join(sorted(problem.per_pixel))
    return (
        f"per-pixel randomness (data.per_pixel: {kinds}) runs on the torch kernel; "
        "the fused C kernel shares one draw among its pixels"
    )


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    d, i, p = ctypes.c_double, ctypes.c_int, ctypes.c_void_p
    lib.fused_train_f64.restype = i
    lib.fused_train_f64.argtypes = [i, i, i, i, i, i, i, p, p, i, i, p, p, p, p, p, p, i, i, d, i, p, p, p]
    lib.fused_tanh_f64.restype = None
    lib.fused_tanh_f64.argtypes = [ctypes.c_int64, p, p]
    return lib


def _build() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("TRAINABILITY_NO_CPU_FUSED"):
        return None, "disabled by TRAINABILITY_NO_CPU_FUSED"
    lib, why = c_library.cached_library(SOURCE, DEFINES)
    return (None if lib is None else _declare(lib)), why


def build_variant(march: str, out_dir: Path, extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The kernel built for ``-march=<march>`` (later ``extra_flags`` override, e.g. ``-O1``)
    into ``out_dir``, uncached, for comparing builds (tests/kernels/test_c_cpu_bits.py); pass it to
    ``train(lib=...)``. Raises RuntimeError when it does not build."""
    return _declare(c_library.variant_library(SOURCE, DEFINES, march, out_dir, extra_flags))


def load_library() -> ctypes.CDLL | None:
    """The compiled kernel, built once per process; None when it cannot be built (see ``unsupported``)."""
    with _lib_lock:
        if "lib" not in _lib_state:
            _lib_state["lib"], _lib_state["why"] = _build()
        return _lib_state["lib"]


def _padded_transpose(rows: np.ndarray, padded: int) -> np.ndarray:
    out = np.zeros((rows.shape[1], padded))
    out[:, : rows.shape[0]] = rows.T
    return out


def _padded_rows(n: int) -> int:
    return -(-n // ROW_BLOCK) * ROW_BLOCK


@dataclass(frozen=True)
class _Operands:
    """What every pixel of a run shares, laid out as the kernel reads it: X scaled by c_0 and
    Y transposed, rows zero-padded to a multiple of ROW_BLOCK (so are each step's minibatch
    rows), the initial weights; and the output layer's constant c_1. The arrays stay alive
    while the kernel reads them through ``arguments``."""

    steps: int
    n: int  # data rows
    XT: np.ndarray  # (d_in, n padded)
    YT: np.ndarray  # (D, n padded)
    batch: int  # minibatch rows, 0: full batch
    XmbT: np.ndarray | None  # (steps, d_in, batch padded)
    YmbT: np.ndarray | None  # (steps, D, batch padded)
    W0: np.ndarray  # (d_in, H)
    W1: np.ndarray  # (H, D)
    c1: float

    @property
    def arguments(self) -> tuple:
        """The kernel's arguments from ``steps`` to ``W1init``, in its order."""
        (d_in, H), D = self.W0.shape, self.W1.shape[1]
        sizes = (self.steps, d_in, H, D, self.n, self.XT.shape[1])
        full = (_address(self.XT), _address(self.YT))
        minibatches = (self.batch, 0 if self.XmbT is None else self.XmbT.shape[2])
        minibatches += (_address(self.XmbT), _address(self.YmbT))
        return (*sizes, *full, *minibatches, _address(self.W0), _address(self.W1))


def _operands(problem: Problem, nonlinearity: str, steps: int) -> _Operands:
    c = layer_constants(problem, nonlinearity)
    W0, W1 = (np.ascontiguousarray(w, dtype=np.float64) for w in problem.weights)
    d_in, D = W0.shape[0], W1.shape[1]
    Xc = np.asarray(problem.X, np.float64) * c[0]
    Y = np.asarray(problem.Y, np.float64)
    padded = _padded_rows(Xc.shape[0])
    batch, XmbT, YmbT = 0, None, None
    if problem.minibatch_indices is not None:
        idx = np.asarray(problem.minibatch_indices[:steps], dtype=np.int64)
        batch = idx.shape[1]
        XmbT = np.zeros((steps, d_in, _padded_rows(batch)))
        YmbT = np.zeros((steps, D, _padded_rows(batch)))
        XmbT[:, :, :batch] = Xc[idx].transpose(0, 2, 1)
        YmbT[:, :, :batch] = Y[idx].transpose(0, 2, 1)
    XT, YT = _padded_transpose(Xc, padded), _padded_transpose(Y, padded)
    return _Operands(steps, Xc.shape[0], XT, YT, batch, XmbT, YmbT, W0, W1, c[1])


def _address(a: np.ndarray | None, first_row: int = 0):
    """The address of row ``first_row`` of a C-contiguous array (None for no array)."""
    return None if a is None else a.ctypes.data + first_row * a.strides[0]


def _call(lib: ctypes.CDLL, operands: _Operands, run: Run, per_pixel: dict, lo: int, hi: int) -> int:
    """One kernel call training pixels [lo, hi): reads and writes rows lo..hi of ``per_pixel``'s
    arrays (learning rates, offsets, hyperparameters; statistics, divergence steps)."""
    rows = {name: _address(a, lo) for name, a in per_pixel.items()}
    rc = lib.fused_train_f64(
        hi - lo,
        *operands.arguments,
        rows["learning_rates"],
        rows["offsets"],
        int(run.offset_mode == "every_step"),
        NONLINEARITY_CODES[run.nonlinearity],
        operands.c1,
        OPTIMIZER_CODES[run.optimizer],
        rows["hyper"],
        rows["stats"],
        rows["diverged"],
    )
    if rc == -2:
        raise ValueError(f"fused C kernel: unknown optimizer {run.optimizer!r}")
    if rc != 0:
        raise MemoryError("fused C kernel: out of memory")
    return hi - lo


def train(run: Run, *, chunk: int | None = None, lib: ctypes.CDLL | None = None) -> dict:
    """Per-pixel statistics of every pixel of the run (``backend.Run``).

    ``first_pixel`` and ``block_pixels`` do not matter here (pixels are independent);
    ``chunk`` is the number of pixels per kernel call (default: about four per thread,
    at most 64); ``lib`` a kernel from ``build_variant`` instead of the cached native build.
    """
    if run.problem.per_pixel:
        raise ValueError(_per_pixel_reason(run.problem))
    if run.dtype == "float64x2":
        return c_cpu_dd.train(run, chunk=chunk, lib=lib)
    lib = load_library() if lib is None else lib
    if lib is None:
        raise RuntimeError(f"the fused C kernel is unavailable: {_lib_state['why']}")
    operands = _operands(run.problem, run.nonlinearity, run.steps)
    P = run.pixels
    per_pixel = {
        "learning_rates": run.learning_rates,
        "offsets": run.offsets,
        "hyper": run.hyperparameters(),
        "stats": np.empty((P, len(FLOAT_FIELDS))),
        "diverged": np.empty(P, dtype=np.int64),
    }
    work = functools.partial(_call, lib, operands, run, per_pixel)  # work(lo, hi)
    c_library.in_chunks(work, run, chunk)
    return from_columns(per_pixel["stats"], per_pixel["diverged"])
