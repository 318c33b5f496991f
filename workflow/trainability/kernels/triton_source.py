"""Triton kernels of the fused GPU backend (``triton_gpu``), defined at import.

Imported only where triton is installed. ``TRITON_INTERPRET=1`` must be set
before the import to run them on CPU tensors with Triton's interpreter (it is
read when ``triton.jit`` wraps a function). The contract's constants are
module-level ``tl.constexpr`` values, the only globals a Triton kernel may read.
"""

import triton
import triton.language as tl
from triton.language.extra import libdevice

from trainability.statistics import FLOAT_FIELDS
from trainability.statistics import MAX_RATIO as _MAX_RATIO

MAX_RATIO = tl.constexpr(_MAX_RATIO)
N_STATS = tl.constexpr(len(FLOAT_FIELDS))
STAT_LOSS_INITIAL = tl.constexpr(FLOAT_FIELDS.index("loss_initial"))
STAT_LOSS_FINAL = tl.constexpr(FLOAT_FIELDS.index("loss_final"))
STAT_LOSS_MIN = tl.constexpr(FLOAT_FIELDS.index("loss_min"))
STAT_SUM_U = tl.constexpr(FLOAT_FIELDS.index("sum_u"))
STAT_SUM_INV_U = tl.constexpr(FLOAT_FIELDS.index("sum_inv_u"))
STAT_TAIL_MEAN_U = tl.constexpr(FLOAT_FIELDS.index("tail_mean_u"))


@triton.jit
def _tanh(z, USE_LIBDEVICE: tl.constexpr):
    if USE_LIBDEVICE:
        out = libdevice.tanh(z)
    else:
        # The interpreter has no libdevice: tanh from exp (accurate to a
        # few ulp for |z| >~ 1e-3, relative error ~1e-16/|z| below).
        e = tl.exp(-2.0 * tl.abs(z))
        t = (1.0 - e) / (1.0 + e)
        out = tl.where(z < 0, -t, t)
    return out


@triton.jit
def _rows(
    X_ptr,
    Y_ptr,
    rows,
    mask,
    W0,
    W1,
    c1,
    scale,
    grad_W0,
    grad_W1,
    loss_acc,
    WANT_GRAD: tl.constexpr,
    PHI: tl.constexpr,
    DIN: tl.constexpr,
    USE_DOT: tl.constexpr,
    USE_LIBDEVICE: tl.constexpr,
):
    """One chunk of data rows: adds its squared error (and gradients) to the accumulators."""
    kk = tl.arange(0, DIN)
    x = tl.load(X_ptr + rows[:, None] * DIN + kk[None, :], mask=mask[:, None], other=0.0)
    y = tl.load(Y_ptr + rows, mask=mask, other=0.0)
    if USE_DOT:
        zeta = tl.dot(x, W0, input_precision="ieee", out_dtype=x.dtype)
    else:
        zeta = tl.sum(x[:, :, None] * W0[None, :, :], axis=1)
    if PHI == 0:
        a = _tanh(zeta, USE_LIBDEVICE)
    elif PHI == 1:
        a = tl.where(zeta > 0, zeta, 0.0)
    else:
        a = zeta
    f = tl.sum(a * W1[None, :], axis=1) * c1
    r = tl.where(mask, f - y, 0.0)
    loss_acc += tl.sum(r * r, axis=0)
    if WANT_GRAD:
        dz = r * scale
        grad_W1 += tl.sum(a * dz[:, None], axis=0) * c1
        da = dz[:, None] * (W1 * c1)[None, :]
        if PHI == 0:
            dzeta = da - da * (a * a)
        elif PHI == 1:
            dzeta = tl.where(a > 0, da, 0.0)
        else:
            dzeta = da
        if USE_DOT:
            grad_W0 += tl.dot(tl.trans(x), dzeta, input_precision="ieee", out_dtype=x.dtype)
        else:
            grad_W0 += tl.sum(x[:, :, None] * dzeta[:, None, :], axis=0)
    return loss_acc, grad_W0, grad_W1


@triton.jit
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
    N,
    steps,
    tail_from,
    tail_count,
    MB: tl.constexpr,
    MBP: tl.constexpr,
    HAS_OFF: tl.constexpr,
    OFF_EVERY: tl.constexpr,
    PHI: tl.constexpr,
    DIN: tl.constexpr,
    H: tl.constexpr,
    RB: tl.constexpr,
    USE_DOT: tl.constexpr,
    USE_LIBDEVICE: tl.constexpr,
):
    """One program = one pixel, all steps; its weights never leave the chip."""
    pid = tl.program_id(0)
    kk = tl.arange(0, DIN)
    hh = tl.arange(0, H)
    W0 = tl.load(W0_ptr + kk[:, None] * H + hh[None, :])
    W1 = tl.load(W1_ptr + hh)
    dt = W0.dtype
    # Scalars are computed here in float64: Triton passes Python floats as fp32.
    n_f = tl.cast(N, tl.float64)
    c1 = tl.cast(1.0 / tl.cast(H, tl.float64), dt)  # output scale 1/fan_in
    scale_full = tl.cast(2.0 / n_f, dt)
    scale_mb = tl.cast(2.0 / tl.cast(tl.maximum(tl.cast(MB, tl.int32), 1), tl.float64), dt)
    inv_n_dt = tl.cast(1.0 / n_f, dt)
    inv_tail = 1.0 / tl.cast(tail_count, tl.float64)
    lr0 = tl.load(LR_ptr + 2 * pid).to(dt)
    lr1 = tl.load(LR_ptr + 2 * pid + 1).to(dt)
    off = tl.load(OFF_ptr + pid).to(dt)
    if HAS_OFF:
        if not OFF_EVERY:
            W0 += off
    v0 = tl.full((), 0.0, tl.float64)
    v_final = tl.full((), 0.0, tl.float64)
    v_min = tl.full((), float("inf"), tl.float64)
    sum_u = tl.full((), 0.0, tl.float64)
    sum_inv = tl.full((), 0.0, tl.float64)
    tail = tl.full((), 0.0, tl.float64)
    div = tl.full((), -1, tl.int64)
    rr = tl.arange(0, RB)
    for t in range(steps):
        if HAS_OFF:
            if OFF_EVERY:
                W0 += off
        g0 = tl.zeros((DIN, H), dt)
        g1 = tl.zeros((H,), dt)
        sq = tl.zeros((), dt)
        for c in range(0, N, RB):
            rows = c + rr
            sq, g0, g1 = _rows(
                X_ptr,
                Y_ptr,
                rows,
                rows < N,
                W0,
                W1,
                c1,
                scale_full,
                g0,
                g1,
                sq,
                MB == 0,
                PHI,
                DIN,
                USE_DOT,
                USE_LIBDEVICE,
            )
        if MB > 0:
            g0 = tl.zeros((DIN, H), dt)
            g1 = tl.zeros((H,), dt)
            mm = tl.arange(0, MBP)
            rows = tl.load(MB_ptr + t * MB + mm, mask=mm < MB, other=0)
            unused = tl.zeros((), dt)
            unused, g0, g1 = _rows(
                X_ptr,
                Y_ptr,
                rows,
                mm < MB,
                W0,
                W1,
                c1,
                scale_mb,
                g0,
                g1,
                unused,
                True,
                PHI,
                DIN,
                USE_DOT,
                USE_LIBDEVICE,
            )
        W0 -= g0 * lr0
        W1 -= g1 * lr1
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
    base = STATS_ptr + N_STATS * pid
    tl.store(base + STAT_LOSS_INITIAL, v0)
    tl.store(base + STAT_LOSS_FINAL, v_final)
    tl.store(base + STAT_LOSS_MIN, v_min)
    tl.store(base + STAT_SUM_U, sum_u)
    tl.store(base + STAT_SUM_INV_U, sum_inv)
    tl.store(base + STAT_TAIL_MEAN_U, tail * inv_tail)
    tl.store(DIV_ptr + pid, div)
