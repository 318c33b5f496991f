"""Double-double training on CPUs (``training.dtype: float64x2``): ``fused_cpu_dd.c``, for
zooms past float64's resolution. Part of the fused C backend (``c_cpu.train`` hands it runs
of that dtype).

A zoom sequence stops near 14 decades of magnification: there neighbouring pixels' learning
rates round to the same float64, and the frame shows blocks. This kernel trains the same
network as ``fused_cpu.c`` with weights, activations, gradients, losses and updates in
double-double (hi + lo, about 32 digits; ``fused_cpu_dd.c`` states the algorithms and their
error bounds), each pixel's learning rates and offset given as (hi, lo) pairs
(``Run.learning_rates_lo``, ``Run.offsets_lo``), and returns the same statistics (of each
step's loss rounded to float64), so everything downstream is unchanged. The layer constants
c0, c1 are computed at 192 bits and rounded to double-double. Its bits depend on the source
only, as the float64 kernel's (``BUILD_CLASS``). One shared problem (no per-pixel
randomness), depth 2.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import gmpy2
import numpy as np

from trainability.contract import numerics
from trainability.contract.optimizers import MAX_HYPERPARAMETERS, OPTIMIZER_CODES
from trainability.contract.problem import NONLINEARITY_CODES, Problem, gain_squared
from trainability.contract.statistics import FLOAT_FIELDS, from_columns
from trainability.kernels import c_library
from trainability.kernels.backend import Run

SOURCE = Path(__file__).with_name("fused_cpu_dd.c")
ROW_BLOCK = 8  # the kernel's rows per vector: rows are zero-padded to a multiple
N_HYPER = MAX_HYPERPARAMETERS
DEFINES = c_library.CONTRACT_DEFINES
# The kernel's arithmetic: bump the number whenever a change to fused_cpu_dd.c changes bits.
BUILD_CLASS = "double-double-fixed-order-1"
_lock = threading.Lock()
_state: dict = {}


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    d, i, p = ctypes.c_double, ctypes.c_int, ctypes.c_void_p
    train_args = [i, i, i, i, i, i, i, p, p, i, i, p, p, p, p, p, p, i, i, d, d, d, d, i, p, p, p]
    lib.fused_train_dd.restype = i
    lib.fused_train_dd.argtypes = train_args
    lib.fused_losses_dd.restype = i
    lib.fused_losses_dd.argtypes = [*train_args, p]
    lib.fused_tanh_dd.restype = None
    lib.fused_tanh_dd.argtypes = [ctypes.c_int64, p, p, p, p]
    return lib


def load_library() -> ctypes.CDLL | None:
    """The kernel's native build, cached (``c_library``); None when it cannot be built (``why``)."""
    with _lock:
        if "lib" not in _state:
            lib, _state["why"] = c_library.cached_library(SOURCE, DEFINES)
            _state["lib"] = None if lib is None else _declare(lib)
        return _state["lib"]


def why() -> str:
    """Why ``load_library`` returned None."""
    return _state.get("why", "")


def build_variant(march: str, out_dir, extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The kernel built for ``-march=<march>`` into ``out_dir``, uncached, for comparing builds."""
    return _declare(c_library.variant_library(SOURCE, DEFINES, march, out_dir, extra_flags))


def layer_constants_dd(problem: Problem, nonlinearity: str) -> list[tuple[float, float]]:
    """``problem.layer_constants`` as (hi, lo): c0 = sqrt(gain_squared / fan_in), c1 = 1 / fan_in of
    the output layer, computed at 192 bits and rounded to double-double."""
    (d_in, H), _ = problem.weight_shapes()
    with numerics.precise_arithmetic():
        values = [gmpy2.sqrt(gmpy2.mpz(gain_squared(nonlinearity)) / d_in), gmpy2.mpz(1) / gmpy2.mpfr(H)]
    hi, lo = numerics.to_double_double(values)
    return list(zip(hi.tolist(), lo.tolist()))


def _padded_transpose(rows: np.ndarray) -> np.ndarray:
    out = np.zeros((rows.shape[-1], -(-rows.shape[0] // ROW_BLOCK) * ROW_BLOCK))
    out[:, : rows.shape[0]] = rows.T
    return out


def _pairs(hi: np.ndarray, lo: np.ndarray | None) -> np.ndarray:
    """(..., 2) contiguous float64 (hi, lo) pairs (lo None: 0)."""
    lo = np.zeros_like(hi) if lo is None else lo
    return np.ascontiguousarray(np.stack([hi, lo], axis=-1), dtype=np.float64)


class _Operands:
    """One run's arrays, laid out as the kernel reads them (X, Y transposed and not scaled, rows
    zero-padded to ROW_BLOCK; per-pixel (hi, lo) pairs), kept alive while it reads them."""

    def __init__(self, run: Run):
        problem, steps = run.problem, run.steps
        if problem.per_pixel or len(problem.weights) != 2:
            raise ValueError("the double-double kernel trains one shared depth-2 problem")
        self.W0, self.W1 = (np.ascontiguousarray(w, np.float64) for w in problem.weights)
        self.lrs = _pairs(run.learning_rates, run.learning_rates_lo)
        self.offsets = None if run.offsets is None else _pairs(run.offsets, run.offsets_lo)
        # The hyperparameters as double-doubles with lo = 0: the config gives them as float64.
        self.hyper = None if run.optimizer == "gd" else _pairs(run.hyperparameters(), None)
        X, Y = np.asarray(problem.X, np.float64), np.asarray(problem.Y, np.float64)
        self.XT, self.YT = _padded_transpose(X), _padded_transpose(Y)
        self.batch, self.XmbT, self.YmbT = 0, None, None
        if problem.minibatch_indices is not None:
            idx = np.asarray(problem.minibatch_indices[:steps], np.int64)
            self.batch = idx.shape[1]
            self.XmbT = np.ascontiguousarray([_padded_transpose(X[i]) for i in idx])
            self.YmbT = np.ascontiguousarray([_padded_transpose(Y[i]) for i in idx])
        (d_in, H), D = self.W0.shape, self.W1.shape[1]
        self.sizes = (steps, d_in, H, D, X.shape[0], self.XT.shape[1])
        self.every_step = int(run.offset_mode == "every_step")
        self.phi, self.optimizer = NONLINEARITY_CODES[run.nonlinearity], OPTIMIZER_CODES[run.optimizer]
        self.constants = [c for pair in layer_constants_dd(problem, run.nonlinearity) for c in pair]

    def arguments(self, lo: int, hi: int, stats: np.ndarray, diverged: np.ndarray) -> list:
        """fused_train_dd's arguments for pixels [lo, hi)."""

        def shared(a):  # its address, None for no array
            return None if a is None else a.ctypes.data

        def rows(a):  # a per-pixel array's row lo
            return None if a is None else a.ctypes.data + lo * a.strides[0]

        mbp = 0 if self.XmbT is None else self.XmbT.shape[2]
        return [
            hi - lo, *self.sizes, shared(self.XT), shared(self.YT), self.batch, mbp, shared(self.XmbT),
            shared(self.YmbT), shared(self.W0), shared(self.W1), rows(self.lrs), rows(self.offsets),
            self.every_step, self.phi, *self.constants, self.optimizer, rows(self.hyper), rows(stats),
            rows(diverged),
        ]  # fmt: skip


def _check(rc: int) -> None:
    if rc == -1:
        raise MemoryError("double-double kernel: out of memory")
    if rc != 0:
        raise ValueError(f"double-double kernel: bad arguments (code {rc})")


def _library(lib: ctypes.CDLL | None) -> ctypes.CDLL:
    lib = load_library() if lib is None else lib
    if lib is None:
        raise RuntimeError(f"the double-double C kernel is unavailable: {why()}")
    return lib


def train(run: Run, *, chunk: int | None = None, lib: ctypes.CDLL | None = None) -> dict:
    """Per-pixel statistics (``contract.statistics``) of the run's pixels trained in double-double.
    ``chunk`` pixels per kernel call (results depend neither on it nor on threads); ``lib`` a
    build from ``build_variant``."""
    lib = _library(lib)
    ops = _Operands(run)
    stats, diverged = np.empty((run.pixels, len(FLOAT_FIELDS))), np.empty(run.pixels, np.int64)

    def work(lo: int, hi: int) -> int:
        _check(lib.fused_train_dd(*ops.arguments(lo, hi, stats, diverged)))
        return hi - lo

    c_library.in_chunks(work, run, chunk)
    return from_columns(stats, diverged)


def losses(run: Run, lib: ctypes.CDLL | None = None) -> tuple[np.ndarray, dict]:
    """Every step's loss of every pixel, (P, steps, 2) (hi, lo) pairs, and the statistics (tests)."""
    lib = _library(lib)
    ops = _Operands(run)
    stats, diverged = np.empty((run.pixels, len(FLOAT_FIELDS))), np.empty(run.pixels, np.int64)
    out = np.empty((run.pixels, run.steps, 2))
    _check(lib.fused_losses_dd(*ops.arguments(0, run.pixels, stats, diverged), out.ctypes.data))
    return out, from_columns(stats, diverged)


def tanh_dd(x_hi, x_lo, lib: ctypes.CDLL | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's tanh of double-doubles x_hi + x_lo (1-D arrays): (hi, lo)."""
    lib = _library(lib)
    xh, xl = (np.ascontiguousarray(a, np.float64) for a in (x_hi, x_lo))
    yh, yl = np.empty_like(xh), np.empty_like(xl)
    lib.fused_tanh_dd(xh.size, xh.ctypes.data, xl.ctypes.data, yh.ctypes.data, yl.ctypes.data)
    return yh, yl
