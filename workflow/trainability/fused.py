"""Fused per-pixel training kernels: each pixel's whole run in one kernel call.

The batched torch kernel (``trainability.training``) trains a block of pixels
with a few dozen tensor operations per step, each a pass over the block's
activations in memory. The fused kernels instead keep one pixel's weights,
activations and gradients on chip (registers and L1 on CPU; registers and
shared memory on GPU) for all its steps, so the cost is arithmetic only.

* CPU: a small C kernel (``C_SOURCE``), compiled with the system's C compiler
  on first use (``gcc`` or ``$CC``; ``-O3 -march=native``, IEEE semantics:
  no ``-ffast-math``), cached under ``$TRAINABILITY_CACHE`` or
  ``~/.cache/trainability`` and called through ctypes (the GIL is released, so
  Python threads run pixels in parallel). tanh is the kernel's own
  vectorisable implementation (expm1 by Cody-Waite reduction and a degree-13
  Taylor polynomial; <= 2.5 ulp, measured against long-double tanhl), about
  twice as fast as glibc's vector tanh and the same on every machine. float64 only,
  depth-2 networks; when the compiler is missing or the build fails,
  ``cpu_kernel_available()`` is False and ``train_pixels`` falls back to torch.
* GPU: a Triton kernel (see ``triton_available``), float64 and float32,
  depth-2 networks; one program per pixel.

Each pixel's arithmetic does not depend on any other pixel, the block width
or the thread count, so results are invariant to sharding, bit for bit. They
agree with the torch kernel to rounding (different operation order and tanh).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

C_SOURCE = r"""
/* Per-pixel fused training step, float64, depth-2 MLP (see trainability/fused.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)), sign restored; branch-free and
   vectorisable. expm1(z), z in [-40, 0]: z = k ln2 + r, |r| <= ln2/2 (Cody-Waite),
   expm1(r) by its Taylor series to degree 13 (truncation < 2e-17 relative),
   expm1(z) = 2^k expm1(r) + (2^k - 1). NaN propagates; |x| > 20 gives +-1. */
static inline double fused_tanh(double x)
{
    double ax = x < 0.0 ? -x : x;
    double z = -2.0 * ax;
    z = z < -40.0 ? -40.0 : z; /* NaN stays NaN */
    const double magic = 6755399441055744.0; /* 1.5 * 2^52: round to integer */
    double kd = (z * 1.4426950408889634 + magic) - magic;
    double r = (z - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    double em_r = r + (r * r) * p; /* expm1(r) */
    /* 2^k from the exponent bits (k in [-58, 0]) */
    long long ki = (long long)kd;
    unsigned long long bits = (unsigned long long)(ki + 1023) << 52;
    double two_k;
    __builtin_memcpy(&two_k, &bits, sizeof two_k);
    double em = two_k * em_r + (two_k - 1.0);
    double t = __builtin_fabs(em / (2.0 + em));
    return __builtin_copysign(t, x);
}

#define MAX_RATIO 1e6
#define TAIL_STEPS 20
#define NB 16 /* rows per register block (a multiple of 8) */

enum { PHI_TANH = 0, PHI_RELU = 1, PHI_IDENTITY = 2 };

/* One pass over rows (transposed, padded to np rows, padded rows all zero):
   returns the mean squared error over the n real rows and, when gW0 != NULL,
   the gradients (gW0: d_in x H, gW1: H x D). Scratch: A (H x np), R (D x np). */
static double pass(int d_in, int H, int D, int n, int np, const double *restrict XT,
                   const double *restrict YT, const double *restrict W0, const double *restrict W1,
                   int phi, double c1, double *restrict A, double *restrict R,
                   double *restrict gW0, double *restrict gW1)
{
    /* zeta = (X c0) W0, a = phi(zeta): register blocks of NB rows. */
    for (int n0 = 0; n0 < np; n0 += NB) {
        for (int h = 0; h < H; h++) {
            double acc[NB];
            #pragma omp simd
            for (int j = 0; j < NB; j++) acc[j] = 0.0;
            for (int k = 0; k < d_in; k++) {
                const double w = W0[k * H + h];
                const double *x = XT + (size_t)k * np + n0;
                #pragma omp simd
                for (int j = 0; j < NB; j++) acc[j] += w * x[j];
            }
            double *a = A + (size_t)h * np + n0;
            #pragma omp simd
            for (int j = 0; j < NB; j++) a[j] = acc[j];
        }
    }
    const size_t total = (size_t)H * np;
    if (phi == PHI_TANH) {
        #pragma omp simd
        for (size_t i = 0; i < total; i++) A[i] = fused_tanh(A[i]);
    } else if (phi == PHI_RELU) {
        #pragma omp simd
        for (size_t i = 0; i < total; i++) A[i] = A[i] > 0.0 ? A[i] : 0.0;
    }
    /* f = (a W1) c1, r = f - y, loss = mean r^2. */
    double sq = 0.0;
    for (int d = 0; d < D; d++) {
        double *r = R + (size_t)d * np;
        #pragma omp simd
        for (int i = 0; i < np; i++) r[i] = 0.0;
        for (int h = 0; h < H; h++) {
            const double w = W1[h * D + d];
            const double *a = A + (size_t)h * np;
            #pragma omp simd
            for (int i = 0; i < np; i++) r[i] += w * a[i];
        }
        const double *y = YT + (size_t)d * np;
        double s = 0.0;
        #pragma omp simd reduction(+ : s)
        for (int i = 0; i < np; i++) {
            r[i] = r[i] * c1 - y[i];
            s += r[i] * r[i];
        }
        sq += s;
    }
    const double loss = sq / ((double)n * D);
    if (gW0 == NULL) return loss;

    /* dL/dzeta_out = r * 2 / (n D) */
    const double scale = 2.0 / ((double)n * D);
    for (size_t i = 0; i < (size_t)D * np; i++) R[i] *= scale;
    /* gW1 = c1 a^T dz; da = c1 dz W1^T, then dzeta = da phi'(zeta), in place of A. */
    for (int h = 0; h < H; h++) {
        double *a = A + (size_t)h * np;
        for (int d = 0; d < D; d++) {
            const double *r = R + (size_t)d * np;
            double s = 0.0;
            #pragma omp simd reduction(+ : s)
            for (int i = 0; i < np; i++) s += a[i] * r[i];
            gW1[h * D + d] = s * c1;
        }
        double da[NB];
        for (int n0 = 0; n0 < np; n0 += NB) {
            #pragma omp simd
            for (int j = 0; j < NB; j++) da[j] = 0.0;
            for (int d = 0; d < D; d++) {
                const double w = W1[h * D + d] * c1;
                const double *r = R + (size_t)d * np + n0;
                #pragma omp simd
                for (int j = 0; j < NB; j++) da[j] += w * r[j];
            }
            double *an = a + n0;
            if (phi == PHI_TANH) {
                #pragma omp simd
                for (int j = 0; j < NB; j++) an[j] = da[j] - da[j] * (an[j] * an[j]);
            } else if (phi == PHI_RELU) {
                #pragma omp simd
                for (int j = 0; j < NB; j++) an[j] = an[j] > 0.0 ? da[j] : 0.0;
            } else {
                #pragma omp simd
                for (int j = 0; j < NB; j++) an[j] = da[j];
            }
        }
    }
    /* gW0 = (X c0)^T dzeta: 2x2 tiles of (k, h) dot products over rows. */
    int k = 0;
    for (; k + 1 < d_in; k += 2) {
        const double *x0 = XT + (size_t)k * np, *x1 = x0 + np;
        int h = 0;
        for (; h + 1 < H; h += 2) {
            const double *z0 = A + (size_t)h * np, *z1 = z0 + np;
            double s00 = 0.0, s01 = 0.0, s10 = 0.0, s11 = 0.0;
            #pragma omp simd reduction(+ : s00, s01, s10, s11)
            for (int i = 0; i < np; i++) {
                s00 += x0[i] * z0[i];
                s01 += x0[i] * z1[i];
                s10 += x1[i] * z0[i];
                s11 += x1[i] * z1[i];
            }
            gW0[k * H + h] = s00; gW0[k * H + h + 1] = s01;
            gW0[(k + 1) * H + h] = s10; gW0[(k + 1) * H + h + 1] = s11;
        }
        for (; h < H; h++) {
            const double *z0 = A + (size_t)h * np;
            double s00 = 0.0, s10 = 0.0;
            #pragma omp simd reduction(+ : s00, s10)
            for (int i = 0; i < np; i++) { s00 += x0[i] * z0[i]; s10 += x1[i] * z0[i]; }
            gW0[k * H + h] = s00; gW0[(k + 1) * H + h] = s10;
        }
    }
    for (; k < d_in; k++) {
        const double *x0 = XT + (size_t)k * np;
        for (int h = 0; h < H; h++) {
            const double *z0 = A + (size_t)h * np;
            double s = 0.0;
            #pragma omp simd reduction(+ : s)
            for (int i = 0; i < np; i++) s += x0[i] * z0[i];
            gW0[k * H + h] = s;
        }
    }
    return loss;
}

/* Train pixels [0, P): returns 0, or -1 when out of memory.
   stats: (P, 6) float64 = loss_initial, loss_final, loss_min, sum_u, sum_inv_u, tail_mean_u;
   diverged: (P,) int64. Minibatch (mb > 0): XmbT (steps, d_in, mbp), YmbT (steps, D, mbp). */
int fused_train_f64(int P, int steps, int d_in, int H, int D, int n, int np,
                    const double *XT, const double *YT, int mb, int mbp,
                    const double *XmbT, const double *YmbT,
                    const double *W0init, const double *W1init, const double *lrs,
                    const double *offsets, int offset_every_step, int phi, double c1,
                    double *stats, int64_t *diverged)
{
    const int rows = np > mbp ? np : mbp;
    double *buf = malloc(sizeof(double) * ((size_t)(H + D) * rows + 2 * (size_t)d_in * H + 2 * (size_t)H * D));
    if (!buf) return -1;
    double *A = buf, *R = A + (size_t)H * rows, *W0 = R + (size_t)D * rows, *gW0 = W0 + (size_t)d_in * H;
    double *W1 = gW0 + (size_t)d_in * H, *gW1 = W1 + (size_t)H * D;
    const int tail_from = steps - (steps < TAIL_STEPS ? steps : TAIL_STEPS);
    for (int p = 0; p < P; p++) {
        memcpy(W0, W0init, sizeof(double) * d_in * H);
        memcpy(W1, W1init, sizeof(double) * H * D);
        const double lr0 = lrs[2 * p], lr1 = lrs[2 * p + 1];
        const double off = offsets ? offsets[p] : 0.0;
        if (offsets && !offset_every_step)
            for (int i = 0; i < d_in * H; i++) W0[i] += off;
        double v0 = 0.0, vfinal = 0.0, vmin = __builtin_inf(), sum_u = 0.0, sum_inv = 0.0, tail = 0.0;
        int64_t div = -1;
        for (int t = 0; t < steps; t++) {
            if (offsets && offset_every_step)
                for (int i = 0; i < d_in * H; i++) W0[i] += off;
            double v;
            if (mb == 0) {
                v = pass(d_in, H, D, n, np, XT, YT, W0, W1, phi, c1, A, R, gW0, gW1);
            } else {
                v = pass(d_in, H, D, n, np, XT, YT, W0, W1, phi, c1, A, R, NULL, NULL);
                pass(d_in, H, D, mb, mbp, XmbT + (size_t)t * d_in * mbp, YmbT + (size_t)t * D * mbp,
                     W0, W1, phi, c1, A, R, gW0, gW1);
            }
            for (int i = 0; i < d_in * H; i++) W0[i] -= gW0[i] * lr0;
            for (int i = 0; i < H * D; i++) W1[i] -= gW1[i] * lr1;
            if (!__builtin_isfinite(v)) v = MAX_RATIO;
            if (t == 0) v0 = v;
            double u = v / v0;
            u = u > MAX_RATIO ? MAX_RATIO : u; /* NaN stays NaN, as torch.clamp */
            sum_u += u;
            sum_inv += 1.0 / u;
            if (t >= tail_from) tail += u;
            vmin = v < vmin ? v : vmin;
            if (u >= MAX_RATIO && div < 0) div = t;
            vfinal = v;
        }
        double *s = stats + 6 * (size_t)p;
        s[0] = v0; s[1] = vfinal; s[2] = vmin; s[3] = sum_u; s[4] = sum_inv;
        s[5] = tail / (steps < TAIL_STEPS ? steps : TAIL_STEPS);
        diverged[p] = div;
    }
    free(buf);
    return 0;
}
"""

# ---------------------------------------------------------------- CPU (C) path
_PHI = {"tanh": 0, "relu": 1, "identity": 2}
_ROW_BLOCK = 16  # rows are padded to a multiple of the C kernel's NB
_lib_lock = threading.Lock()
_lib_state: dict = {}


def _cache_dir() -> Path:
    root = os.environ.get("TRAINABILITY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "trainability")
    return Path(root)


def _cpu_identity() -> str:
    """Distinguishes machines that share a cache directory (-march=native)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    import platform

    return platform.machine() + "".join(lines)


def _compile(compiler: str, out: Path) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="trainability-cc-") as tmp:
        src = Path(tmp) / "fused_cpu.c"
        src.write_text(C_SOURCE)
        so = Path(tmp) / "fused_cpu.so"
        cmd = [compiler, "-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared",
               "-o", str(so), str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, str(err)
        if proc.returncode != 0:
            return False, proc.stderr[-2000:]
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp_out = out.with_name(f"{out.name}.{os.getpid()}.tmp")
            shutil.copyfile(so, tmp_out)
            os.replace(tmp_out, out)  # atomic: concurrent builders each write their own file
        except OSError as err:
            return False, f"cannot write {out}: {err}"
        return True, ""


def _load_cpu_library():
    """The compiled C kernel (ctypes.CDLL), or None; the reason is kept in ``_lib_state``."""
    with _lib_lock:
        if "lib" in _lib_state:
            return _lib_state["lib"]
        lib, why = None, ""
        if os.environ.get("TRAINABILITY_NO_CPU_FUSED"):
            why = "disabled by TRAINABILITY_NO_CPU_FUSED"
        else:
            compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
            if compiler is None:
                why = "no C compiler (gcc/cc/$CC) found"
            else:
                try:
                    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                             timeout=30).stdout
                except (OSError, subprocess.TimeoutExpired):
                    version = ""
                key = hashlib.sha256("\0".join(
                    [C_SOURCE, compiler, version, _cpu_identity()]).encode()).hexdigest()[:16]
                for cache in (_cache_dir(), Path(tempfile.gettempdir()) / f"trainability-{os.getuid()}"):
                    path = cache / f"fused_cpu_{key}.so"
                    ok = path.exists()
                    if not ok:
                        ok, why = _compile(compiler, path)
                    if ok or not why.startswith("cannot write"):
                        break
                if ok:
                    try:
                        lib = ctypes.CDLL(str(path))
                    except OSError as err:
                        why = str(err)
        if lib is not None:
            d, i, p = ctypes.c_double, ctypes.c_int, ctypes.c_void_p
            lib.fused_train_f64.restype = i
            lib.fused_train_f64.argtypes = [i, i, i, i, i, i, i, p, p, i, i, p, p, p, p, p, p, i, i, d, p, p]
        _lib_state["lib"] = lib
        _lib_state["why"] = why
        return lib


def cpu_kernel_available() -> bool:
    return _load_cpu_library() is not None


def cpu_kernel_unavailable_reason() -> str:
    _load_cpu_library()
    return _lib_state.get("why", "")


def cpu_supports(problem, dtype: str) -> bool:
    return dtype == "float64" and len(problem.weights) == 2


def _padded_transpose(rows: np.ndarray, padded: int) -> np.ndarray:
    out = np.zeros((rows.shape[1], padded))
    out[:, : rows.shape[0]] = rows.T
    return out


def _ptr(a):
    return None if a is None else a.ctypes.data


def train_pixels_cpu(problem, learning_rates, offsets, *, nonlinearity, steps, offset_mode,
                     threads=None, chunk=None, progress=None):
    """The C kernel over all pixels; returns the stats dict of ``train_pixels``."""
    from trainability.training import STAT_FIELDS, layer_constants

    lib = _load_cpu_library()
    if lib is None:
        raise RuntimeError(f"the fused CPU kernel is unavailable: {cpu_kernel_unavailable_reason()}")
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    c = layer_constants(problem, nonlinearity)
    W0, W1 = (np.ascontiguousarray(w, dtype=np.float64) for w in problem.weights)
    d_in, H = W0.shape
    D = W1.shape[1]
    Xc = np.asarray(problem.X, np.float64) * c[0]
    Y = np.asarray(problem.Y, np.float64)
    n = Xc.shape[0]
    np_ = -(-n // _ROW_BLOCK) * _ROW_BLOCK
    XT, YT = _padded_transpose(Xc, np_), _padded_transpose(Y, np_)
    mb = mbp = 0
    XmbT = YmbT = None
    if problem.minibatch_indices is not None:
        idx = np.asarray(problem.minibatch_indices[:steps], dtype=np.int64)
        mb = idx.shape[1]
        mbp = -(-mb // _ROW_BLOCK) * _ROW_BLOCK
        XmbT = np.zeros((steps, d_in, mbp))
        YmbT = np.zeros((steps, D, mbp))
        XmbT[:, :, :mb] = Xc[idx].transpose(0, 2, 1)
        YmbT[:, :, :mb] = Y[idx].transpose(0, 2, 1)
    lrs = np.ascontiguousarray(learning_rates, dtype=np.float64)
    P = lrs.shape[0]
    offs = None if offsets is None else np.ascontiguousarray(offsets, dtype=np.float64)
    stats = np.empty((P, 6))
    diverged = np.empty(P, dtype=np.int64)
    if chunk is None:
        chunk = max(1, min(64, -(-P // (4 * max(1, threads)))))
    keep = (XT, YT, XmbT, YmbT, W0, W1, lrs, offs, stats, diverged)  # alive during the calls

    def work(lo, hi):
        rc = lib.fused_train_f64(
            hi - lo, steps, d_in, H, D, n, np_, _ptr(XT), _ptr(YT), mb, mbp, _ptr(XmbT), _ptr(YmbT),
            _ptr(W0), _ptr(W1), lrs.ctypes.data + lo * 2 * 8,
            None if offs is None else offs.ctypes.data + lo * 8,
            int(offset_mode == "every_step"), _PHI[nonlinearity], c[1],
            stats.ctypes.data + lo * 6 * 8, diverged.ctypes.data + lo * 8)
        if rc != 0:
            raise MemoryError("fused CPU kernel: out of memory")
        return hi - lo

    bounds = [(lo, min(P, lo + chunk)) for lo in range(0, P, chunk)]
    done = 0
    if threads <= 1 or len(bounds) == 1:
        for lo, hi in bounds:
            done += work(lo, hi) * steps
            if progress is not None:
                progress(done, P * steps)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for width in pool.map(lambda b: work(*b), bounds):
                done += width * steps
                if progress is not None:
                    progress(done, P * steps)
    del keep
    out = {name: stats[:, i].copy() for i, name in enumerate(STAT_FIELDS[:6])}
    out["diverged_step"] = diverged
    return out


# ------------------------------------------------------------ GPU (Triton) path
def triton_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def gpu_supports(problem, dtype: str) -> bool:
    return len(problem.weights) == 2 and problem.weights[1].shape[1] == 1


_GPU_ROWS = 16  # rows per chunk of the data (tl.dot needs >= 16)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


train_kernel = None
triton = tl = libdevice = None  # imported on first use: triton is optional and slow to import


def _define_triton_kernels():
    """Import triton and define the kernels as module globals (Triton resolves the
    helpers a kernel calls among its module's globals). Reads TRITON_INTERPRET."""
    global triton, tl, libdevice, _tanh, _rows, train_kernel
    if train_kernel is not None:
        return train_kernel
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice

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
    def _rows(X_ptr, Y_ptr, rows, mask, W0, W1, c1, scale, grad_W0, grad_W1, loss_acc,
              WANT_GRAD: tl.constexpr, PHI: tl.constexpr, DIN: tl.constexpr,
              USE_DOT: tl.constexpr, USE_LIBDEVICE: tl.constexpr):
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
    def train_kernel(X_ptr, Y_ptr, W0_ptr, W1_ptr, LR_ptr, OFF_ptr, MB_ptr, STATS_ptr, DIV_ptr,
                     N, steps, tail_from, tail_count,
                     MB: tl.constexpr, MBP: tl.constexpr, HAS_OFF: tl.constexpr,
                     OFF_EVERY: tl.constexpr, PHI: tl.constexpr, DIN: tl.constexpr, H: tl.constexpr,
                     RB: tl.constexpr, USE_DOT: tl.constexpr, USE_LIBDEVICE: tl.constexpr):
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
                sq, g0, g1 = _rows(X_ptr, Y_ptr, rows, rows < N, W0, W1, c1, scale_full, g0, g1, sq,
                                   MB == 0, PHI, DIN, USE_DOT, USE_LIBDEVICE)
            if MB > 0:
                g0 = tl.zeros((DIN, H), dt)
                g1 = tl.zeros((H,), dt)
                mm = tl.arange(0, MBP)
                rows = tl.load(MB_ptr + t * MB + mm, mask=mm < MB, other=0)
                unused = tl.zeros((), dt)
                unused, g0, g1 = _rows(X_ptr, Y_ptr, rows, mm < MB, W0, W1, c1, scale_mb, g0, g1,
                                       unused, True, PHI, DIN, USE_DOT, USE_LIBDEVICE)
            W0 -= g0 * lr0
            W1 -= g1 * lr1
            v = (sq * inv_n_dt).to(tl.float64)
            v = tl.where((v - v) == 0.0, v, 1e6)  # non-finite -> 1e6
            v0 = tl.where(t == 0, v, v0)
            u = v / v0
            u = tl.where(u > 1e6, 1e6, u)  # NaN stays NaN, as torch.clamp
            sum_u += u
            sum_inv += 1.0 / u
            tail += tl.where(t >= tail_from, u, 0.0)
            v_min = tl.where(v < v_min, v, v_min)
            div = tl.where((u >= 1e6) & (div < 0), t, div)
            v_final = v
        base = STATS_ptr + 6 * pid
        tl.store(base + 0, v0)
        tl.store(base + 1, v_final)
        tl.store(base + 2, v_min)
        tl.store(base + 3, sum_u)
        tl.store(base + 4, sum_inv)
        tl.store(base + 5, tail * inv_tail)
        tl.store(DIV_ptr + pid, div)
    return train_kernel


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def train_pixels_gpu(problem, learning_rates, offsets, *, nonlinearity, steps, offset_mode, dtype,
                     device, block_pixels=None, progress=None, use_dot=None, num_warps=None):
    """The Triton kernel over all pixels, launched in blocks of ``block_pixels``
    programs (bounds device memory for the outputs; results do not depend on it).
    Under ``TRITON_INTERPRET=1`` it runs on CPU tensors (for tests)."""
    import torch

    from trainability.training import STAT_FIELDS, TAIL_STEPS, layer_constants

    if not triton_available():
        raise RuntimeError("the fused GPU kernel needs triton (pip install triton)")
    kernel = _define_triton_kernels()
    interpret = _interpreting()
    dev = torch.device("cpu") if interpret else torch.device(device)
    tdt = {"float64": torch.float64, "float32": torch.float32}[dtype]
    c = layer_constants(problem, nonlinearity)
    W0 = torch.as_tensor(np.asarray(problem.weights[0], np.float64), dtype=tdt, device=dev).contiguous()
    W1 = torch.as_tensor(np.asarray(problem.weights[1], np.float64)[:, 0], dtype=tdt, device=dev).contiguous()
    d_in, H = W0.shape
    if d_in != _next_pow2(d_in) or H != _next_pow2(H) or d_in < 16 or H < 16:
        raise ValueError("the fused GPU kernel needs input and hidden widths that are powers of two >= 16")
    # Same scaled input as the torch kernel: X * c_0 computed in the working dtype.
    X = torch.as_tensor(problem.X, dtype=tdt, device=dev)
    Xc = (X * c[0]).contiguous()
    Y = torch.as_tensor(np.asarray(problem.Y)[:, 0], dtype=tdt, device=dev).contiguous()
    N = X.shape[0]
    lrs = torch.as_tensor(np.asarray(learning_rates, np.float64), device=dev).contiguous()
    P = lrs.shape[0]
    offs = torch.zeros(P, dtype=torch.float64, device=dev) if offsets is None else \
        torch.as_tensor(np.asarray(offsets, np.float64), device=dev).contiguous()
    MB = 0
    mb = torch.zeros(1, dtype=torch.int64, device=dev)
    if problem.minibatch_indices is not None:
        idx = np.asarray(problem.minibatch_indices[:steps], dtype=np.int64)
        MB = idx.shape[1]
        mb = torch.as_tensor(idx, device=dev).contiguous()
    stats = torch.empty((P, 6), dtype=torch.float64, device=dev)
    diverged = torch.empty(P, dtype=torch.int64, device=dev)
    if use_dot is None:  # tl.dot: DMMA tensor cores for float64 on sm_80+/sm_90 (ieee fp32 on CUDA cores)
        use_dot = not interpret and os.environ.get("TRAINABILITY_TRITON_DOT", "1") != "0"
    if num_warps is None:  # tuning knob for GPU measurements; no effect on results' agreement
        num_warps = int(os.environ.get("TRAINABILITY_TRITON_WARPS", "4"))
    tail_count = min(TAIL_STEPS, steps)
    block = block_pixels or 1 << 20
    done = 0
    for lo in range(0, P, block):
        hi = min(P, lo + block)
        kernel[(hi - lo,)](
            Xc, Y, W0, W1, lrs[lo:hi], offs[lo:hi], mb, stats[lo:hi], diverged[lo:hi],
            N, steps, steps - tail_count, tail_count,
            MB=MB, MBP=max(16, _next_pow2(MB)), HAS_OFF=offsets is not None,
            OFF_EVERY=offset_mode == "every_step", PHI=_PHI[nonlinearity], DIN=d_in, H=H,
            RB=_GPU_ROWS, USE_DOT=use_dot, USE_LIBDEVICE=not interpret, num_warps=num_warps,
        )
        done += (hi - lo) * steps
        if progress is not None:
            progress(done, P * steps)
    stats = stats.cpu().numpy()
    out = {name: stats[:, i].copy() for i, name in enumerate(STAT_FIELDS[:6])}
    out["diverged_step"] = diverged.cpu().numpy()
    return out
