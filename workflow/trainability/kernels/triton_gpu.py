"""Fused Triton backend for CUDA GPUs: one program per pixel, all its steps on chip.

Float64 and float32, depth-2 networks with one output and input and hidden
widths that are powers of two >= 16 (``tl.dot`` and ``tl.arange`` tiles).
The kernels are in ``triton_source`` (imported only where triton is
installed). Under ``TRITON_INTERPRET=1`` they run on CPU tensors, for tests.
Each pixel's arithmetic does not depend on the launch it lands in, so results
are invariant to sharding.

Knobs for GPU measurements (no effect on which pixels agree):
``TRAINABILITY_TRITON_DOT=0`` replaces ``tl.dot`` by elementwise sums,
``TRAINABILITY_TRITON_WARPS`` sets the warps per program (default 4).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import torch

from trainability.problem import Problem, layer_constants
from trainability.statistics import FLOAT_FIELDS, TAIL_STEPS, from_columns

if importlib.util.find_spec("triton") is not None:
    from trainability.kernels import triton_source
else:  # triton is optional: this backend then reports itself unsupported
    triton_source = None

NAME = "fused"
PHI = {"tanh": 0, "relu": 1, "identity": 2}
ROWS_PER_CHUNK = 16  # data rows per tl.dot (its minimum)
MIN_WIDTH = 16
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}
DEFAULT_LAUNCH_PIXELS = 1 << 20  # programs per launch; bounds device memory, not results


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def unsupported(problem: Problem, dtype: str, device) -> str | None:
    """Why this backend cannot run the case, or None. Needs no GPU to answer."""
    if device.type != "cuda" and not (device.type == "cpu" and interpreting()):
        return f"the fused Triton kernel runs on CUDA devices, not {device.type}"
    if triton_source is None:
        return "the fused Triton kernel needs triton (pip install triton)"
    if dtype not in TORCH_DTYPES:
        return f"the fused Triton kernel supports {tuple(TORCH_DTYPES)}, not {dtype}"
    if len(problem.weights) != 2:
        return f"the fused Triton kernel supports depth-2 networks only, not depth {len(problem.weights)}"
    d_in, width = problem.weights[0].shape
    if problem.weights[1].shape[1] != 1:
        return f"the fused Triton kernel supports one output only, not {problem.weights[1].shape[1]}"
    if not all(_power_of_two(n) and n >= MIN_WIDTH for n in (d_in, width)):
        return (
            f"the fused Triton kernel needs input and hidden widths that are powers of two "
            f">= {MIN_WIDTH}, not {d_in} and {width}"
        )
    return None


def train(
    problem: Problem,
    learning_rates: np.ndarray,
    offsets: np.ndarray | None,
    *,
    nonlinearity: str,
    steps: int,
    offset_mode: str,
    dtype: str,
    device,
    first_pixel: int = 0,
    block_pixels: int | None = None,
    threads: int | None = None,
    progress=None,
    use_dot: bool | None = None,
    num_warps: int | None = None,
) -> dict:
    """Per-pixel statistics of every pixel; see ``kernels.train_pixels``.

    Launched in blocks of ``block_pixels`` programs (default 2^20).
    """
    device = torch.device(device)
    reason = unsupported(problem, dtype, device)
    if reason:
        raise ValueError(reason)
    interpret = interpreting()
    dev = torch.device("cpu") if interpret else torch.device(device)
    tdt = TORCH_DTYPES[dtype]
    c = layer_constants(problem, nonlinearity)
    W0 = torch.as_tensor(np.asarray(problem.weights[0], np.float64), dtype=tdt, device=dev).contiguous()
    W1 = torch.as_tensor(np.asarray(problem.weights[1], np.float64)[:, 0], dtype=tdt, device=dev).contiguous()
    d_in, H = W0.shape
    # Same scaled input as the torch kernel: X * c_0 computed in the working dtype.
    X = torch.as_tensor(problem.X, dtype=tdt, device=dev)
    Xc = (X * c[0]).contiguous()
    Y = torch.as_tensor(np.asarray(problem.Y)[:, 0], dtype=tdt, device=dev).contiguous()
    N = X.shape[0]
    lrs = torch.as_tensor(np.asarray(learning_rates, np.float64), device=dev).contiguous()
    P = lrs.shape[0]
    offs = (
        torch.zeros(P, dtype=torch.float64, device=dev)
        if offsets is None
        else torch.as_tensor(np.asarray(offsets, np.float64), device=dev).contiguous()
    )
    MB = 0
    mb = torch.zeros(1, dtype=torch.int64, device=dev)
    if problem.minibatch_indices is not None:
        idx = np.asarray(problem.minibatch_indices[:steps], dtype=np.int64)
        MB = idx.shape[1]
        mb = torch.as_tensor(idx, device=dev).contiguous()
    stats = torch.empty((P, len(FLOAT_FIELDS)), dtype=torch.float64, device=dev)
    diverged = torch.empty(P, dtype=torch.int64, device=dev)
    if use_dot is None:  # tl.dot: DMMA tensor cores for float64 on sm_80+/sm_90 (ieee fp32 on CUDA cores)
        use_dot = not interpret and os.environ.get("TRAINABILITY_TRITON_DOT", "1") != "0"
    if num_warps is None:
        num_warps = int(os.environ.get("TRAINABILITY_TRITON_WARPS", "4"))
    tail_count = min(TAIL_STEPS, steps)
    block = block_pixels or DEFAULT_LAUNCH_PIXELS
    done = 0
    for lo in range(0, P, block):
        hi = min(P, lo + block)
        triton_source.train_kernel[(hi - lo,)](
            Xc,
            Y,
            W0,
            W1,
            lrs[lo:hi],
            offs[lo:hi],
            mb,
            stats[lo:hi],
            diverged[lo:hi],
            N,
            steps,
            steps - tail_count,
            tail_count,
            MB=MB,
            MBP=max(ROWS_PER_CHUNK, _next_pow2(MB)),
            HAS_OFF=offsets is not None,
            OFF_EVERY=offset_mode == "every_step",
            PHI=PHI[nonlinearity],
            DIN=d_in,
            H=H,
            RB=ROWS_PER_CHUNK,
            USE_DOT=use_dot,
            USE_LIBDEVICE=not interpret,
            num_warps=num_warps,
        )
        done += (hi - lo) * steps
        if progress is not None:
            progress(done, P * steps)
    return from_columns(stats.cpu().numpy(), diverged.cpu().numpy())
