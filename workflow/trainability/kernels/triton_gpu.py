"""Fused Triton backend for CUDA GPUs: each program trains a few pixels, all steps on chip.

Float64 and float32, depth-2 networks with one output and input and hidden
widths that are powers of two >= 16 (``tl.dot`` and ``tl.arange`` tiles).
The kernels are in ``triton_source`` (imported only where triton is
installed). Under ``TRITON_INTERPRET=1`` they run on CPU tensors, for tests.

A program holds the weights of ``pixels`` pixels side by side, W0 as one
(d_in, pixels*H) matrix, so each chunk of ``rows`` data rows is read once for
all of them and goes through the tensor cores (float64 DMMA) in one ``tl.dot``
of N = pixels*H; the gradient of W0 is one ``tl.dot`` of X^T and the
pre-activation gradients. tanh is evaluated once per element (its derivative
is 1 - a^2).

Knobs (keyword arguments of ``train``, else environment variables, else the
defaults of ``DEFAULTS``; ``variant`` resolves them):

=========  ===========================  ==========================================
knob       environment variable         values
=========  ===========================  ==========================================
pixels     TRAINABILITY_TRITON_PIXELS   pixels per program: 1, 2, 4, ... 64
rows       TRAINABILITY_TRITON_ROWS     data rows per chunk: 16, 32, 64, ...
warps      TRAINABILITY_TRITON_WARPS    warps per program: 1, 2, 4, 8, 16
stages     TRAINABILITY_TRITON_STAGES   software-pipelining stages (loads only)
dot        TRAINABILITY_TRITON_DOT      1: ``tl.dot``; 0: elementwise sums
tanh       TRAINABILITY_TRITON_TANH     ``libdevice`` or ``exp`` (from exp(-2|z|))
f32dot     TRAINABILITY_TRITON_F32_DOT  float32 ``tl.dot``: ``ieee`` (FMAs) or
                                        ``tf32x3`` (tensor cores, ~fp32 accuracy)
unroll     TRAINABILITY_TRITON_UNROLL   chunks per loop iteration, 1|2|4 (same
                                        order; fewer layout conversions of W0)
=========  ===========================  ==========================================

Defaults (chosen without a GPU, from sm_90 AOT register counts,
``compile_ahead``; ``benchmarks.triton_sweep`` measures them): 8 pixels x
H = 16 make N = 128 for the dot. float64 on 8 warps: 222 registers (247 with
unroll 2), no spills, one program per SM either way (on 4 warps it spills; 1
pixel on 4 warps replicates its small tiles over the warps); unroll 2 halves
the shared-memory round trips (and barriers) of W0's conversion to the dot's
operand layout. float32 on 4 warps: 167 registers, 3 programs per SM (unroll
2 would need 255). 16 rows is the dot's minimum and the fewest registers;
``f32dot=ieee`` keeps float32 on the arithmetic of the torch kernel. The
interpreter has no libdevice: there tanh is always ``exp``. Expected bound
(float64): the FP64 vector pipe, ~40 operations per hidden unit and row
(libdevice tanh ~33), i.e. at most ~1e8 pixel-steps/s on an H100/H200 for
N = 272 with the DMMA work overlapped.

Optimisers (``trainability.contract.optimizers``) are a compile-time constant: gd's SASS is the
one it had before there were others. Their state (m; v for Adam) is one or two more
(d_in, pixels*H) tiles on chip, so ``OPTIMIZER_DEFAULTS`` changes the defaults where
gd's would spill (sm_90 AOT): float64 momentum unroll 1 (248 registers; unroll 2: 255
and 16 bytes of spills), float64 Adam 4 pixels (219; 8 pixels spill 176-296 bytes);
float32 keeps gd's (momentum 198, Adam 238: 2 programs per SM, gd 3). The knobs, not
the optimiser, make ``build_identity``: gd's is unchanged.

Bits: for a fixed variant each pixel's arithmetic does not depend on the
launch it lands in, its place in its program or its neighbours (nothing
reduces across pixels; padded pixels are masked), so results are invariant
to sharding and launch size (tested under the interpreter; on a GPU by a CUDA test).
Variants round differently: ``rows`` changes the summation order over rows,
``dot``, ``tanh`` and ``f32dot`` the arithmetic, and ``pixels`` changes the
shapes of the reductions (the output layer's sum over H, the sums over rows):
under the interpreter numpy's summation order depends on the array's shape
(``pixels`` 1 vs 4 differ by ~1 ulp), on a GPU the tile layouts, which also
depend on ``warps``, decide it. ``stages`` should only reorder loads and
``unroll`` keeps the order of every operation (bit-identical under the
interpreter, tested), but on a GPU this is unmeasured; ``build_identity``
therefore names every knob.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import numpy as np
import torch

from trainability.contract.optimizers import MAX_HYPERPARAMETERS, OPTIMIZER_CODES, OPTIMIZERS
from trainability.contract.problem import NONLINEARITY_CODES, Problem, layer_constants
from trainability.contract.statistics import FLOAT_FIELDS, TAIL_STEPS, from_columns
from trainability.kernels.backend import TORCH_DTYPES, Run

if importlib.util.find_spec("triton") is not None:
    from trainability.kernels import triton_source
else:  # triton is optional: this backend then reports itself unsupported
    triton_source = None

NAME = "fused"
MIN_WIDTH = 16
MIN_ROWS = 16  # tl.dot's minimum tile
KNOB_ENV = {
    "pixels": "TRAINABILITY_TRITON_PIXELS",
    "rows": "TRAINABILITY_TRITON_ROWS",
    "warps": "TRAINABILITY_TRITON_WARPS",
    "stages": "TRAINABILITY_TRITON_STAGES",
    "dot": "TRAINABILITY_TRITON_DOT",
    "tanh": "TRAINABILITY_TRITON_TANH",
    "f32dot": "TRAINABILITY_TRITON_F32_DOT",
    "unroll": "TRAINABILITY_TRITON_UNROLL",
}
DEFAULTS = {
    "float64": dict(pixels=8, rows=16, warps=8, stages=2, dot=1, tanh="libdevice", f32dot="ieee", unroll=2),
    "float32": dict(pixels=8, rows=16, warps=4, stages=2, dot=1, tanh="libdevice", f32dot="ieee", unroll=1),
}
# Where the optimiser state would make the gd defaults spill (module docstring).
OPTIMIZER_DEFAULTS = {("float64", "momentum"): {"unroll": 1}, ("float64", "adam"): {"pixels": 4}}
# Elementwise sums hold (rows, d_in, pixels*H) products: 8 pixels would spill heavily.
NO_DOT_DEFAULTS = {"pixels": 1, "warps": 4}
TANH = ("libdevice", "exp")
F32_DOT = ("ieee", "tf32x3")  # float32 tl.dot: CUDA-core FMAs, or three TF32 tensor-core products
# Device bytes per pixel of one launch: stats, learning rates, offset, diverged step, hyperparameters.
BYTES_PER_PIXEL = 8 * (len(FLOAT_FIELDS) + 2 + 1 + 1 + MAX_HYPERPARAMETERS)
LAUNCH_MEMORY_FRACTION = 1 / 16  # of the free device memory, for the per-launch buffers
MAX_LAUNCH_PIXELS = 1 << 24  # a 4096^2 frame in one launch
INTERPRETER_LAUNCH_PIXELS = 1 << 12


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def unsupported(problem: Problem, dtype: str, device) -> str | None:
    """Why this backend cannot run the case, or None. Needs no GPU to answer."""
    if device.type != "cuda" and not (device.type == "cpu" and interpreting()):
        return f"the fused Triton kernel runs on CUDA devices, not {device.type}"
    if triton_source is None:
        return "the fused Triton kernel needs triton (pip install triton)"
    if dtype not in TORCH_DTYPES:
        return f"the fused Triton kernel supports {tuple(TORCH_DTYPES)}, not {dtype}"
    if problem.per_pixel:
        return (
            "per-pixel randomness (data.per_pixel) runs on the torch kernel; "
            "the fused Triton kernel shares one draw among its pixels"
        )
    shapes = problem.weight_shapes()
    if len(shapes) != 2:
        return f"the fused Triton kernel supports depth-2 networks only, not depth {len(shapes)}"
    d_in, width = shapes[0]
    if shapes[1][1] != 1:
        return f"the fused Triton kernel supports one output only, not {shapes[1][1]}"
    if not all(_power_of_two(n) and n >= MIN_WIDTH for n in (d_in, width)):
        return (
            f"the fused Triton kernel needs input and hidden widths that are powers of two "
            f">= {MIN_WIDTH}, not {d_in} and {width}"
        )
    return None


def variant(dtype: str, optimizer: str = "gd", **knobs) -> dict:
    """The knobs a run uses: those given (None = unset), else the environment, else DEFAULTS[dtype]
    with OPTIMIZER_DEFAULTS[dtype, optimizer] (else NO_DOT_DEFAULTS for pixels and warps when dot is 0)."""
    unknown = set(knobs) - set(KNOB_ENV)
    if unknown:
        raise ValueError(f"unknown Triton knobs {sorted(unknown)}; known: {sorted(KNOB_ENV)}")
    given = {name: os.environ.get(env) or None for name, env in KNOB_ENV.items()}
    given.update({name: value for name, value in knobs.items() if value is not None})
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {optimizer!r}")
    defaults = dict(DEFAULTS[dtype], **OPTIMIZER_DEFAULTS.get((dtype, optimizer), {}))
    if str(defaults["dot"] if given["dot"] is None else given["dot"]) == "0":
        defaults.update(NO_DOT_DEFAULTS)
    out = {}
    for name in KNOB_ENV:
        value = defaults[name] if given[name] is None else given[name]
        try:
            out[name] = str(value) if name in ("tanh", "f32dot") else int(value)
        except ValueError:
            source = f"{KNOB_ENV[name]}={value!r}" if name not in knobs else f"{name}={value!r}"
            raise ValueError(f"bad Triton knob {source}: an integer is expected") from None
    if interpreting():
        out["tanh"] = "exp"  # the interpreter has no libdevice
    if dtype == "float64":
        out["f32dot"] = "ieee"  # a float64 tl.dot is always IEEE (DMMA)
    checks = {
        "pixels": _power_of_two(out["pixels"]) and out["pixels"] <= 64,
        "rows": _power_of_two(out["rows"]) and out["rows"] >= MIN_ROWS,
        "warps": out["warps"] in (1, 2, 4, 8, 16),
        "stages": out["stages"] >= 1,
        "dot": out["dot"] in (0, 1),
        "tanh": out["tanh"] in TANH,
        "f32dot": out["f32dot"] in F32_DOT,
        "unroll": out["unroll"] in (1, 2, 4),
    }
    from_env = {name for name in KNOB_ENV if knobs.get(name) is None and os.environ.get(KNOB_ENV[name])}
    bad = [
        f"{KNOB_ENV[name] if name in from_env else name}={out[name]}" for name, ok in checks.items() if not ok
    ]
    if bad:
        raise ValueError(
            f"bad Triton knobs {', '.join(bad)}; allowed: pixels a power of two <= 64, rows a power of "
            f"two >= {MIN_ROWS}, warps 1|2|4|8|16, stages >= 1, dot 0|1, tanh {'|'.join(TANH)}, "
            f"f32dot {'|'.join(F32_DOT)}, unroll 1|2|4"
        )
    return out


def knob_problems() -> list[str]:
    """The errors of the TRAINABILITY_TRITON_* variables set in the environment, for the
    workflow's start-up checks (before any job); [] when none is set or all are valid."""
    if not any(os.environ.get(env) for env in KNOB_ENV.values()):
        return []
    problems = []
    for dtype in TORCH_DTYPES:
        try:
            variant(dtype)
        except ValueError as err:
            problems.append(str(err))
    return sorted(set(problems))


def build_identity(dtype: str, optimizer: str = "gd", **knobs) -> str:
    """The arithmetic of a variant, for ``kernels.arithmetic``: Triton's version and every knob
    (as ``variant`` resolves them for the optimiser), e.g. ``triton 3.9.0 pixels=8 rows=16 warps=8
    stages=2 dot=1 tanh=libdevice``. Two runs with the same string (on the same GPU model) of the
    same experiment (optimiser included) hold the same bits."""
    v = variant(dtype, optimizer, **knobs)
    where = " interpreter" if interpreting() else ""
    return f"triton {importlib.metadata.version('triton')}{where} " + " ".join(
        f"{k}={v[k]}" for k in KNOB_ENV
    )


def launch_pixels(device: torch.device, pixels_per_program: int, block_pixels: int | None = None) -> int:
    """Pixels per launch: ``block_pixels`` when given, else what a fraction of the free device
    memory holds (a fixed size under the interpreter). Results do not depend on it."""
    if block_pixels:
        return int(block_pixels)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        n = min(MAX_LAUNCH_PIXELS, int(free * LAUNCH_MEMORY_FRACTION) // BYTES_PER_PIXEL)
    else:
        n = INTERPRETER_LAUNCH_PIXELS
    return max(pixels_per_program, n // pixels_per_program * pixels_per_program)


def constexprs(
    MB: int, has_offsets: bool, offset_mode: str, nonlinearity: str, d_in: int, H: int, knobs: dict, opt="gd"
) -> dict:
    """The kernel's compile-time constants for a case, an optimiser and a ``variant``."""
    return dict(
        MB=MB,
        HAS_OFF=has_offsets,
        OFF_EVERY=offset_mode == "every_step",
        PHI=NONLINEARITY_CODES[nonlinearity],
        DIN=d_in,
        H=H,
        PIXELS=knobs["pixels"],
        RB=knobs["rows"],
        USE_DOT=bool(knobs["dot"]),
        TANH_EXP=knobs["tanh"] == "exp",
        PRECISION=knobs["f32dot"],
        UNROLL=knobs["unroll"],
        OPT=OPTIMIZER_CODES[opt],
    )


def compile_ahead(
    dtype, *, nonlinearity="tanh", MB=0, offset_mode=None, d_in=16, H=16, arch=90, optimizer="gd", **knobs
):
    """The kernel of a variant compiled for CUDA ``sm_<arch>`` with no GPU, and its resource
    usage (``triton_source.resource_usage``): for tests and for choosing defaults."""
    v = variant(dtype, optimizer, **knobs)
    mode = offset_mode or "every_step"
    consts = constexprs(MB, offset_mode is not None, mode, nonlinearity, d_in, H, v, optimizer)
    compiled = triton_source.compile_ahead(dtype, consts, arch, num_warps=v["warps"], num_stages=v["stages"])
    return compiled, triton_source.resource_usage(compiled)


def _operands(problem: Problem, nonlinearity: str, steps: int, dtype: str, dev) -> tuple[list, int]:
    """X * c_0, Y, W0, W1 and the minibatch indices on ``dev``, and the minibatch size (0: full)."""
    tdt = TORCH_DTYPES[dtype]
    c = layer_constants(problem, nonlinearity)
    W0 = torch.as_tensor(np.asarray(problem.weights[0], np.float64), dtype=tdt, device=dev).contiguous()
    W1 = torch.as_tensor(np.asarray(problem.weights[1], np.float64)[:, 0], dtype=tdt, device=dev).contiguous()
    # Same scaled input as the torch kernel: X * c_0 computed in the working dtype.
    Xc = (torch.as_tensor(problem.X, dtype=tdt, device=dev) * c[0]).contiguous()
    Y = torch.as_tensor(np.asarray(problem.Y)[:, 0], dtype=tdt, device=dev).contiguous()
    if problem.minibatch_indices is None:
        return [Xc, Y, W0, W1, torch.zeros(1, dtype=torch.int64, device=dev)], 0
    idx = np.asarray(problem.minibatch_indices[:steps], dtype=np.int64)
    return [Xc, Y, W0, W1, torch.as_tensor(idx, device=dev).contiguous()], idx.shape[1]


def train(
    run: Run,
    *,
    use_dot: bool | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
    pixels: int | None = None,
    rows: int | None = None,
    tanh: str | None = None,
    f32dot: str | None = None,
    unroll: int | None = None,
    launch_info: dict | None = None,
) -> dict:
    """Per-pixel statistics of every pixel of the run (``backend.Run``).

    ``use_dot``, ``num_warps``, ``num_stages``, ``pixels``, ``rows``, ``tanh``, ``f32dot``,
    ``unroll``: the knobs (module docstring; unset ones default per dtype and optimiser).
    ``run.block_pixels``: pixels per launch (default ``launch_pixels``).
    ``launch_info``, if given, receives the variant and the compiled kernel of the last launch.
    """
    reason = unsupported(run.problem, run.dtype, run.device)
    if reason:
        raise ValueError(reason)
    dot = None if use_dot is None else int(bool(use_dot))
    knobs = variant(
        run.dtype, run.optimizer, pixels=pixels, rows=rows, warps=num_warps, stages=num_stages, dot=dot,
        tanh=tanh, f32dot=f32dot, unroll=unroll,
    )  # fmt: skip
    dev = torch.device("cpu") if interpreting() else run.device
    steps = run.steps
    operands, MB = _operands(run.problem, run.nonlinearity, steps, run.dtype, dev)
    d_in, H = operands[2].shape
    N = operands[0].shape[0]
    P = run.pixels
    offs_all = np.zeros(P) if run.offsets is None else run.offsets
    hp_all = run.hyperparameters()
    consts = constexprs(
        MB, run.offsets is not None, run.offset_mode, run.nonlinearity, d_in, H, knobs, run.optimizer
    )
    tail_count = min(TAIL_STEPS, steps)
    stats = np.empty((P, len(FLOAT_FIELDS)), dtype=np.float64)
    diverged = np.empty(P, dtype=np.int64)
    block = launch_pixels(dev, knobs["pixels"], run.block_pixels)
    for lo in range(0, P, block):
        hi = min(P, lo + block)
        n = hi - lo
        out_stats = torch.empty((n, len(FLOAT_FIELDS)), dtype=torch.float64, device=dev)
        out_div = torch.empty(n, dtype=torch.int64, device=dev)
        lrs, offs, hp = (
            torch.as_tensor(a[lo:hi], device=dev) for a in (run.learning_rates, offs_all, hp_all)
        )
        Xc, Y, W0, W1, mb = operands
        compiled = triton_source.train_kernel[(-(-n // knobs["pixels"]),)](
            Xc, Y, W0, W1, lrs, offs, mb, out_stats, out_div, n, N, steps, steps - tail_count, tail_count, hp,
            **consts, num_warps=knobs["warps"], num_stages=knobs["stages"],
        )  # fmt: skip
        stats[lo:hi] = out_stats.cpu().numpy()
        diverged[lo:hi] = out_div.cpu().numpy()
        if launch_info is not None:
            launch_info.update(variant=knobs, compiled=compiled, launch_pixels=block)
        if run.progress is not None:
            run.progress(hi * steps, P * steps)
    return from_columns(stats, diverged)
