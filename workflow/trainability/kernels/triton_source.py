"""Triton kernels of the fused GPU backend (``triton_gpu``), defined at import.

Imported only where triton is installed. ``TRITON_INTERPRET=1`` must be set
before the import to run them on CPU tensors with Triton's interpreter (it is
read when ``triton.jit`` wraps a function). The contract's constants are
module-level ``tl.constexpr`` values, the only globals a Triton kernel may read.

Layout: a program trains PIXELS pixels. Their first-layer weights sit side by
side as one (DIN, PIXELS*H) matrix, column j belonging to pixel j // H, so one
``tl.dot`` of a data chunk (RB, DIN) serves all of them; nothing mixes columns
(no reduction runs across pixels), so padded pixels cannot touch real ones.

Optimisers (``trainability.contract.optimizers``; ``OPT`` is a constexpr, so gd compiles to the
code it always did): their state (m, and v for Adam) sits beside the weights, (DIN,
PIXELS*H) for W0, and their per-pixel hyperparameters are loaded per column like the
learning rates. Adam's bias corrections are running products per column in float64
(b1 *= beta1), as torch.optim.Adam computes 1 - beta1**t in Python floats; its step
lr / (1 - b1) and 1 / sqrt(1 - b2) are float64 too, rounded to the kernel's dtype once.
"""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.language.extra import libdevice

from trainability.contract.optimizers import MAX_HYPERPARAMETERS, OPTIMIZER_CODES
from trainability.contract.problem import NONLINEARITY_CODES
from trainability.contract.statistics import FLOAT_FIELDS
from trainability.contract.statistics import MAX_RATIO as _MAX_RATIO

MAX_RATIO = tl.constexpr(_MAX_RATIO)
N_STATS = tl.constexpr(len(FLOAT_FIELDS))
STAT_LOSS_INITIAL = tl.constexpr(FLOAT_FIELDS.index("loss_initial"))
STAT_LOSS_FINAL = tl.constexpr(FLOAT_FIELDS.index("loss_final"))
STAT_LOSS_MIN = tl.constexpr(FLOAT_FIELDS.index("loss_min"))
STAT_SUM_U = tl.constexpr(FLOAT_FIELDS.index("sum_u"))
STAT_SUM_INV_U = tl.constexpr(FLOAT_FIELDS.index("sum_inv_u"))
STAT_TAIL_MEAN_U = tl.constexpr(FLOAT_FIELDS.index("tail_mean_u"))
# The codes of the kernel's PHI and OPT (compile-time constants), from the contract.
PHI_TANH = tl.constexpr(NONLINEARITY_CODES["tanh"])
PHI_RELU = tl.constexpr(NONLINEARITY_CODES["relu"])
OPT_GD = tl.constexpr(OPTIMIZER_CODES["gd"])
OPT_MOMENTUM = tl.constexpr(OPTIMIZER_CODES["momentum"])
OPT_ADAM = tl.constexpr(OPTIMIZER_CODES["adam"])
# Hyperparameters per pixel: momentum (beta, 0, 0), adam (beta1, beta2, eps).
N_HYPER = tl.constexpr(MAX_HYPERPARAMETERS)


@triton.jit
def _phi(z, PHI: tl.constexpr, TANH_EXP: tl.constexpr):
    """The nonlinearity, evaluated once per element (its derivative comes from the value)."""
    if PHI == PHI_TANH:
        if TANH_EXP:
            # Also the interpreter's tanh (it has no libdevice): accurate to a few ulp
            # for |z| >~ 1e-3, to ~1e-16 absolute below.
            e = tl.exp(-2.0 * tl.abs(z))
            t = (1.0 - e) / (1.0 + e)
            out = tl.where(z < 0, -t, t)
        else:
            out = libdevice.tanh(z)
    elif PHI == PHI_RELU:
        out = tl.where(z > 0, z, 0.0)
    else:
        out = z
    return out


@triton.jit
def _chunk(
    X_ptr,
    Y_ptr,
    rows,
    mask,
    W0,
    W1,
    c1,
    scale,
    g0,
    g1,
    sq,
    WANT_GRAD: tl.constexpr,
    PHI: tl.constexpr,
    DIN: tl.constexpr,
    H: tl.constexpr,
    PIXELS: tl.constexpr,
    RB: tl.constexpr,
    USE_DOT: tl.constexpr,
    TANH_EXP: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """RB data rows for all PIXELS pixels: adds squared errors (PIXELS,) and gradients."""
    kk = tl.arange(0, DIN)
    x = tl.load(X_ptr + rows[:, None] * DIN + kk[None, :], mask=mask[:, None], other=0.0)
    y = tl.load(Y_ptr + rows, mask=mask, other=0.0)
    if USE_DOT:
        zeta = tl.dot(x, W0, input_precision=PRECISION, out_dtype=x.dtype)
    else:
        zeta = tl.sum(x[:, :, None] * W0[None, :, :], axis=1)
    # Padded rows (x = 0) would give 0 * inf = NaN activations once a pixel's W0 overflows,
    # and NaN * 0 in its gradients: they are zeroed, so they add exact zeros.
    a = tl.where(mask[:, None], _phi(zeta, PHI, TANH_EXP), 0.0)
    # The output layer per pixel: a sum over each pixel's own H columns.
    f = tl.sum(tl.reshape(a * W1[None, :], (RB, PIXELS, H)), axis=2) * c1
    r = tl.where(mask[:, None], f - y[:, None], 0.0)
    sq += tl.sum(r * r, axis=0)
    if WANT_GRAD:
        # Each pixel's residual, repeated over its H columns.
        dz = tl.reshape(tl.broadcast_to((r * scale)[:, :, None], (RB, PIXELS, H)), (RB, PIXELS * H))
        g1 += tl.sum(a * dz, axis=0) * c1
        da = dz * (W1 * c1)[None, :]
        if PHI == PHI_TANH:
            dzeta = da - da * (a * a)
        elif PHI == PHI_RELU:
            dzeta = tl.where(a > 0, da, 0.0)
        else:
            dzeta = da
        if USE_DOT:
            g0 = tl.dot(tl.trans(x), dzeta, g0, input_precision=PRECISION, out_dtype=x.dtype)
        else:
            g0 += tl.sum(x[:, :, None] * dzeta[:, None, :], axis=0)
    return sq, g0, g1


@triton.jit
def _momentum(W, m, g, lr, beta):
    """torch.optim.SGD's heavy ball: m <- beta m + g, W <- W - lr m (beta 0, m finite: gd's bits)."""
    m = beta * m + g
    return W - m * lr, m


@triton.jit
def _adam(W, m, v, g, step, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps):
    """torch.optim.Adam: W <- W - step m / (sqrt(v) / sqrt(1 - b2) + eps), step = lr / (1 - b1)."""
    m = beta1 * m + one_m_beta1 * g
    v = beta2 * v + one_m_beta2 * (g * g)
    if W.dtype == tl.float32:  # IEEE sqrt and division (float32's tl.sqrt and / are approximate)
        ratio = tl.div_rn(m, tl.sqrt_rn(v) * inv_bc2 + eps)
    else:
        ratio = m / (tl.sqrt(v) * inv_bc2 + eps)
    return W - step * ratio, m, v


# Sizes are not specialised (on == 1 or divisibility by 16): one compilation serves every
# launch and step count, and a warm-up call compiles what the timed call runs.
@triton.jit(do_not_specialize=["P", "N", "steps", "tail_from", "tail_count"])
def train_kernel(
    X_ptr,
    Y_ptr,
    W0_ptr,
    W1_ptr,
    LR_ptr,
    OFF_ptr,
    MB_ptr,
    STATS_ptr,
    DIV_ptr,
    P,
    N,
    steps,
    tail_from,
    tail_count,
    HP_ptr,
    MB: tl.constexpr,
    HAS_OFF: tl.constexpr,
    OFF_EVERY: tl.constexpr,
    PHI: tl.constexpr,
    DIN: tl.constexpr,
    H: tl.constexpr,
    PIXELS: tl.constexpr,
    RB: tl.constexpr,
    USE_DOT: tl.constexpr,
    TANH_EXP: tl.constexpr,
    PRECISION: tl.constexpr,
    UNROLL: tl.constexpr,
    OPT: tl.constexpr,
):
    """One program = PIXELS pixels (of the P in this launch), all steps on chip. ``HP_ptr``:
    (P, N_HYPER) float64 hyperparameters of the optimiser coded ``OPT`` (unread for gd)."""
    PH: tl.constexpr = PIXELS * H
    pid = tl.program_id(0)
    kk = tl.arange(0, DIN)
    jj = tl.arange(0, PH)
    pix = pid * PIXELS + tl.arange(0, PIXELS)
    live = pix < P
    col_pix = pid * PIXELS + jj // H
    col_live = col_pix < P
    W0 = tl.load(W0_ptr + kk[:, None] * H + (jj % H)[None, :])
    W1 = tl.load(W1_ptr + jj % H)
    dt = W0.dtype
    # Scalars are computed here in float64: Triton passes Python floats as fp32.
    n_f = tl.cast(N, tl.float64)
    c1 = tl.cast(1.0 / tl.cast(H, tl.float64), dt)  # output scale 1/fan_in
    scale_full = tl.cast(2.0 / n_f, dt)
    scale_mb = tl.cast(2.0 / tl.cast(tl.maximum(tl.cast(MB, tl.int32), 1), tl.float64), dt)
    inv_n_dt = tl.cast(1.0 / n_f, dt)
    inv_tail = 1.0 / tl.cast(tail_count, tl.float64)
    # Padded pixels (col_live false) train with zero learning rates: finite, harmless, not stored.
    lr0 = tl.load(LR_ptr + 2 * col_pix, mask=col_live, other=0.0).to(dt)
    lr1 = tl.load(LR_ptr + 2 * col_pix + 1, mask=col_live, other=0.0).to(dt)
    off = tl.load(OFF_ptr + col_pix, mask=col_live, other=0.0).to(dt)
    if HAS_OFF:
        if not OFF_EVERY:
            W0 += off[None, :]
    v0 = tl.zeros((PIXELS,), tl.float64)
    v_final = tl.zeros((PIXELS,), tl.float64)
    v_min = tl.full((PIXELS,), float("inf"), tl.float64)
    sum_u = tl.zeros((PIXELS,), tl.float64)
    sum_inv = tl.zeros((PIXELS,), tl.float64)
    tail = tl.zeros((PIXELS,), tl.float64)
    div = tl.full((PIXELS,), -1, tl.int64)
    rr = tl.arange(0, RB)
    hp = HP_ptr + N_HYPER * col_pix
    if OPT == OPT_MOMENTUM:
        beta = tl.load(hp, mask=col_live, other=0.0).to(dt)
        m0 = tl.zeros((DIN, PH), dt)
        m1 = tl.zeros((PH,), dt)
    if OPT == OPT_ADAM:
        # float64: the bias corrections' running products and what the steps are made from.
        beta1_64 = tl.load(hp, mask=col_live, other=0.0)
        beta2_64 = tl.load(hp + 1, mask=col_live, other=0.0)
        beta1, beta2 = beta1_64.to(dt), beta2_64.to(dt)
        one_m_beta1, one_m_beta2 = (1.0 - beta1_64).to(dt), (1.0 - beta2_64).to(dt)
        eps = tl.load(hp + 2, mask=col_live, other=1.0).to(dt)  # padded pixels: no 0 / 0
        lr0_64 = tl.load(LR_ptr + 2 * col_pix, mask=col_live, other=0.0)
        lr1_64 = tl.load(LR_ptr + 2 * col_pix + 1, mask=col_live, other=0.0)
        b1 = tl.full((PH,), 1.0, tl.float64)
        b2 = tl.full((PH,), 1.0, tl.float64)
        m0 = tl.zeros((DIN, PH), dt)
        s0 = tl.zeros((DIN, PH), dt)  # s: the rules' v (v0 here is the initial loss)
        m1 = tl.zeros((PH,), dt)
        s1 = tl.zeros((PH,), dt)
    for t in range(steps):
        if HAS_OFF:
            if OFF_EVERY:
                W0 += off[None, :]
        g0 = tl.zeros((DIN, PH), dt)
        g1 = tl.zeros((PH,), dt)
        sq = tl.zeros((PIXELS,), dt)
        # UNROLL chunks per iteration share one layout conversion of W0 for the dot (the
        # compiler does not hoist it out of the loop); the rest one by one, in the same order.
        whole = N - N % (RB * UNROLL) if UNROLL > 1 else 0
        for c in range(0, whole, RB * UNROLL):
            for k in tl.static_range(UNROLL):
                rows = c + k * RB + rr
                sq, g0, g1 = _chunk(
                    X_ptr, Y_ptr, rows, rows < N, W0, W1, c1, scale_full, g0, g1, sq,
                    MB == 0, PHI, DIN, H, PIXELS, RB, USE_DOT, TANH_EXP, PRECISION,
                )  # fmt: skip
        for c in range(whole, N, RB):
            rows = c + rr
            sq, g0, g1 = _chunk(
                X_ptr, Y_ptr, rows, rows < N, W0, W1, c1, scale_full, g0, g1, sq,
                MB == 0, PHI, DIN, H, PIXELS, RB, USE_DOT, TANH_EXP, PRECISION,
            )  # fmt: skip
        if MB > 0:
            g0 = tl.zeros((DIN, PH), dt)
            g1 = tl.zeros((PH,), dt)
            unused = tl.zeros((PIXELS,), dt)
            for c in range(0, MB, RB):
                picked = c + rr < MB
                rows = tl.load(MB_ptr + t * MB + c + rr, mask=picked, other=0)
                unused, g0, g1 = _chunk(
                    X_ptr, Y_ptr, rows, picked, W0, W1, c1, scale_mb, g0, g1, unused,
                    True, PHI, DIN, H, PIXELS, RB, USE_DOT, TANH_EXP, PRECISION,
                )  # fmt: skip
        if OPT == OPT_GD:
            W0 -= g0 * lr0[None, :]
            W1 -= g1 * lr1
        elif OPT == OPT_MOMENTUM:
            W0, m0 = _momentum(W0, m0, g0, lr0[None, :], beta[None, :])
            W1, m1 = _momentum(W1, m1, g1, lr1, beta)
        else:
            b1 *= beta1_64
            b2 *= beta2_64
            step0 = (lr0_64 / (1.0 - b1)).to(dt)
            step1 = (lr1_64 / (1.0 - b1)).to(dt)
            inv_bc2 = (1.0 / tl.sqrt(1.0 - b2)).to(dt)
            W0, m0, s0 = _adam(
                W0, m0, s0, g0, step0[None, :], inv_bc2[None, :], beta1[None, :], one_m_beta1[None, :],
                beta2[None, :], one_m_beta2[None, :], eps[None, :],
            )  # fmt: skip
            W1, m1, s1 = _adam(W1, m1, s1, g1, step1, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps)
        v = (sq * inv_n_dt).to(tl.float64)
        v = tl.where((v - v) == 0.0, v, MAX_RATIO)  # non-finite -> MAX_RATIO
        v0 = tl.where(t == 0, v, v0)
        u = v / v0
        u = tl.where(u > MAX_RATIO, MAX_RATIO, u)  # NaN stays NaN, as torch.clamp
        sum_u += u
        sum_inv += 1.0 / u
        tail += tl.where(t >= tail_from, u, 0.0)
        v_min = tl.where(v < v_min, v, v_min)
        div = tl.where((u >= MAX_RATIO) & (div < 0), t, div)
        v_final = v
    base = STATS_ptr + N_STATS * pix
    tl.store(base + STAT_LOSS_INITIAL, v0, mask=live)
    tl.store(base + STAT_LOSS_FINAL, v_final, mask=live)
    tl.store(base + STAT_LOSS_MIN, v_min, mask=live)
    tl.store(base + STAT_SUM_U, sum_u, mask=live)
    tl.store(base + STAT_SUM_INV_U, sum_inv, mask=live)
    tl.store(base + STAT_TAIL_MEAN_U, tail * inv_tail, mask=live)
    tl.store(DIV_ptr + pix, div, mask=live)


def compile_ahead(dtype: str, constexprs: dict, arch: int = 90, num_warps: int = 4, num_stages: int = 3):
    """``train_kernel`` compiled for CUDA ``sm_<arch>`` without a GPU (Triton's own ptxas)."""
    ptr = "*" + {"float64": "fp64", "float32": "fp32"}[dtype]
    signature = dict.fromkeys(("X_ptr", "Y_ptr", "W0_ptr", "W1_ptr"), ptr)
    signature.update(LR_ptr="*fp64", OFF_ptr="*fp64", MB_ptr="*i64", STATS_ptr="*fp64", DIV_ptr="*i64")
    signature.update(dict.fromkeys(("P", "N", "steps", "tail_from", "tail_count"), "i32"))
    signature.update(HP_ptr="*fp64")
    signature.update(dict.fromkeys(constexprs, "constexpr"))
    source = triton.compiler.ASTSource(fn=train_kernel, signature=signature, constexprs=constexprs)
    options = {"num_warps": num_warps, "num_stages": num_stages}
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)


def resource_usage(compiled) -> dict:
    """Registers per thread and spills of a compiled kernel, from its cubin by ``cuobjdump``:
    ``n_regs``, ``stack_bytes`` (per thread; spills live there), the static counts of local
    stores/loads (``STL``/``LDL``) and of tensor-core instructions (DMMA, HMMA); on a GPU also
    the loaded kernel's ``n_regs``/``n_spills``."""
    loaded = {}
    if getattr(compiled, "n_regs", None) is not None:
        loaded = {"n_regs": int(compiled.n_regs), "n_spills": int(compiled.n_spills)}
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    tool = str(tool) if tool.exists() else shutil.which("cuobjdump")
    if tool is None:
        return loaded
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "kernel.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        usage = subprocess.run([tool, "--dump-resource-usage", str(cubin)], capture_output=True, text=True)
        sass = subprocess.run([tool, "-sass", str(cubin)], capture_output=True, text=True).stdout
    fields = dict(re.findall(r"\b([A-Z]+):(\d+)", usage.stdout))
    return {
        "n_regs": int(fields.get("REG", -1)),
        "stack_bytes": int(fields.get("STACK", -1)),
        "spill_stores": len(re.findall(r"\bSTL\b", sass)),
        "spill_loads": len(re.findall(r"\bLDL\b", sass)),
        "dmma": len(re.findall(r"\bDMMA\b", sass)),
        "hmma": len(re.findall(r"\bHMMA\b", sass)),
        **loaded,
    }
