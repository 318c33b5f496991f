/* Fused per-pixel training, float64, depth-2 MLP: each pixel's whole run in one call,
   its weights, activations and gradients in registers and L1 (trainability/kernels/c_cpu.py).

   Built by c_cpu.py with the contract's constants passed as -D definitions: from
   trainability/contract/statistics.py MAX_RATIO, TAIL_STEPS, and the column of each float
   statistic in the (P, N_STATS) output, STAT_LOSS_INITIAL ... STAT_TAIL_MEAN_U; the codes of
   the nonlinearities PHI_TANH, PHI_RELU, PHI_IDENTITY (contract/problem.py) and of the
   optimisers OPT_GD, OPT_MOMENTUM, OPT_ADAM, with N_HYPER hyperparameter columns
   (contract/optimizers.py). The kernel spells none of them itself.

   One pixel at a time; a step is one pass of five phases over the rows (transposed:
   a row of X, a or dzeta per input or hidden unit), each a register tile with enough
   independent FMA chains to fill both FMA pipes (FMA latency 4 x 2 pipes = 8 in flight)
   and few loads per FMA (Zen 3 here loads < 1.5 vectors per cycle, against 2 FMAs):
   forward X W0 (tiles of 16 rows x 3 h: 12 chains, 7 loads per 12 FMAs), tanh (32 values
   at a time, statement by statement), output and loss, gW1 with dzeta (4 h per pass),
   gW0 (per lane, vectors over k of a row-major copy of X: 12 chains, 8 loads per 12 FMAs).
   All buffers are 64-byte aligned (no load splits a cache line).

   The bits do not depend on the machine, the ISA it is built for, the tiling or which
   pixels share a call (c_cpu.BUILD_CLASS names this arithmetic; change it whenever an
   edit here changes bits): the tiles only interleave independent chains, each
   floating-point operation sequence is fixed here:
   - every sum over rows: LANES partial sums, lane j takes rows i = j mod LANES in
     increasing order from 0.0, then the fixed tree of lane_sum; X W0 and a W1: one FMA
     chain per output over k (h) in increasing order from 0.0. No -ffast-math, no omp simd
     reduction: the compiler may vectorise across independent chains (exact), never
     reassociate;
   - built with -ffp-contract=off: a fused multiply-add is where FMA() is written, and
     nowhere else; without FMA hardware it is libm's fma, correctly rounded, so the same;
     v4 (below) is 4 doubles, element-wise;
   - tanh is tanh_block below, not libm's.

   Optimisers (trainability/contract/optimizers.py states the rules and their codes):
   gd, momentum (heavy ball) and Adam, with per-pixel hyperparameters (hyper: P x N_HYPER;
   momentum: beta; adam: beta1, beta2, eps). The state (momentum buffers m of W0 and W1;
   Adam's m, v and the running products b1 = beta1^t, b2 = beta2^t) lives in the aligned
   buffer and is reset for each pixel. The branch on the optimiser is outside the update
   loops, each a plain element-wise loop the compiler vectorises; gd's loops are those of
   the gd-only kernel, so its bits are unchanged (BUILD_CLASS). Each update's operation
   sequence is fixed here, one FMA where FMA() is written (momentum_update, adam_update);
   the bias corrections are running products (b1 *= beta1 each step), not pow(); sqrt
   and division are IEEE, correctly rounded, so these bits too do not depend on the build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loss_statistics.h" /* the statistics' rules, shared by the C kernels */

#define FMA(a, b, c) __builtin_fma((a), (b), (c))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 6") /* the small loops over a tile: its values stay in registers */

/* tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)), sign restored; branch-free and
   vectorisable. expm1(z), z in [-40, 0]: z = k ln2 + r, |r| <= ln2/2 (Cody-Waite),
   expm1(r) by its Taylor series to degree 13 (truncation < 2e-17 relative),
   expm1(z) = 2^k expm1(r) + (2^k - 1). NaN propagates; |x| > 20 gives +-1. <= 2.1 ulp
   (measured against long-double tanhl, tests/test_fused_bits.py).
   tanh(+-0) = +-0, so zero (padded) rows stay zero.
   Statement by statement over tb values, so that tb / (vector width) independent chains
   are interleaved in program order (value by value the Horner chain's latency bounds it:
   29 cycles per 4 values on Zen 3, 12 here). */
#define TANH_TB 32
INLINE void tanh_block(const int tb, double *restrict v)
{
    double z[TANH_TB], km[TANH_TB], r[TANH_TB], p[TANH_TB];
    const double magic = 6755399441055744.0;
    #pragma omp simd
    for (int j = 0; j < tb; j++) {
        double zz = -2.0 * __builtin_fabs(v[j]); /* x < 0 ? -x : x would differ in the sign of -0 and
                                                     of NaN only, which the final copysign sets */
        z[j] = zz < -40.0 ? -40.0 : zz; /* NaN stays NaN */
    }
    #pragma omp simd
    for (int j = 0; j < tb; j++) km[j] = FMA(z[j], 1.4426950408889634, magic); /* magic + k exactly */
    #pragma omp simd
    for (int j = 0; j < tb; j++) { /* k ln2_hi is exact (21 trailing zero bits), so (Sterbenz) is z - k ln2_hi */
        double kd = km[j] - magic;
        r[j] = FMA(-kd, 1.90821492927058770002e-10, FMA(-kd, 6.93147180369123816490e-01, z[j]));
    }
    #pragma omp simd
    for (int j = 0; j < tb; j++) p[j] = FMA(1.0 / 6227020800.0, r[j], 1.0 / 479001600.0);
#define HORNER(c) _Pragma("omp simd") for (int j = 0; j < tb; j++) p[j] = FMA(p[j], r[j], (c));
    HORNER(1.0 / 39916800.0) HORNER(1.0 / 3628800.0) HORNER(1.0 / 362880.0) HORNER(1.0 / 40320.0)
    HORNER(1.0 / 5040.0) HORNER(1.0 / 720.0) HORNER(1.0 / 120.0) HORNER(1.0 / 24.0)
    HORNER(1.0 / 6.0) HORNER(0.5)
#undef HORNER
    #pragma omp simd
    for (int j = 0; j < tb; j++) {
        double em_r = FMA(r[j] * r[j], p[j], r[j]); /* expm1(r) */
        /* 2^k (k in [-58, 0]) from the bits of km, whose low bits hold k: no double -> int64
           conversion, which AVX2 cannot vectorise (the bits of magic << 52 are zero) */
        uint64_t bits;
        __builtin_memcpy(&bits, &km[j], sizeof bits);
        bits = (bits + 1023) << 52;
        double two_k;
        __builtin_memcpy(&two_k, &bits, sizeof two_k);
        double em = FMA(two_k, em_r, two_k - 1.0);
        /* 2 + em with one rounding, not two: <= 2.1 ulp instead of 2.6 */
        double t = __builtin_fabs(em / FMA(two_k, em_r, two_k + 1.0));
        v[j] = __builtin_copysign(t, v[j]);
    }
}

/* tanh of n values in place: blocks of TANH_TB, then of 16, the rest through a 16-block. */
static void tanh_n(size_t n, double *restrict v)
{
    size_t i = 0;
    for (; i + TANH_TB <= n; i += TANH_TB) tanh_block(TANH_TB, v + i);
    for (; i + 16 <= n; i += 16) tanh_block(16, v + i);
    if (i < n) {
        double t[16] = {0};
        memcpy(t, v + i, sizeof(double) * (n - i));
        tanh_block(16, t);
        memcpy(v + i, t, sizeof(double) * (n - i));
    }
}

/* tanh of n values, for the tests (accuracy, bits across builds): the kernel's code path. */
void fused_tanh_f64(int64_t n, const double *x, double *y)
{
    memmove(y, x, sizeof(double) * (size_t)n);
    tanh_n((size_t)n, y);
}

#if !defined(MAX_RATIO) || !defined(TAIL_STEPS) || !defined(N_STATS) || !defined(STAT_LOSS_INITIAL) || \
    !defined(STAT_LOSS_FINAL) || !defined(STAT_LOSS_MIN) || !defined(STAT_SUM_U) || \
    !defined(STAT_SUM_INV_U) || !defined(STAT_TAIL_MEAN_U)
#error "build with the statistics contract's -D definitions (trainability/kernels/c_cpu.py)"
#endif
#if !defined(PHI_TANH) || !defined(PHI_RELU) || !defined(PHI_IDENTITY) || !defined(OPT_GD) || \
    !defined(OPT_MOMENTUM) || !defined(OPT_ADAM) || !defined(N_HYPER)
#error "build with the contract's nonlinearity and optimiser codes as -D definitions (c_cpu.py)"
#endif
#if N_HYPER < 3
#error "adam's beta1, beta2, eps need N_HYPER >= 3 columns"
#endif
#define NB 16   /* rows per register block; c_cpu.ROW_BLOCK pads rows to a multiple */
#define LANES 8 /* partial sums per sum over rows; NB is a multiple */

/* The fixed reduction tree of the LANES partial sums. */
_Static_assert(LANES == 8 && NB % LANES == 0, "lane_sum is written for 8 lanes");
static inline double lane_sum(const double *s)
{
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/* 4 doubles as one value (GCC vector extension): the register tiles below are v4 values,
   which GCC keeps in registers (arrays of them, fully unrolled, too; plain arrays it
   often spills). Every operation on them is element-wise, vfma is 4 separate FMAs, so the
   bits are those of scalar code on any ISA: one ymm instruction with AVX2+FMA, 2 xmm or
   4 scalar (libm fma) otherwise. */
#pragma GCC diagnostic ignored "-Wpsabi" /* static inline only: no ABI crosses a call */
typedef double v4 __attribute__((vector_size(32)));
INLINE v4 vfma(v4 a, v4 b, v4 c)
{
    return (v4){FMA(a[0], b[0], c[0]), FMA(a[1], b[1], c[1]), FMA(a[2], b[2], c[2]), FMA(a[3], b[3], c[3])};
}
INLINE v4 ld(const double *p) { v4 v; memcpy(&v, p, sizeof v); return v; }
INLINE void st(double *p, v4 v) { memcpy(p, &v, sizeof v); }
INLINE v4 bc(double x) { return (v4){x, x, x, x}; }

/* zeta for rows n0 .. n0 + NB and h .. h + ht (ht <= 3): 4 ht independent FMA chains over
   k (each output's chain: k in order from 0.0), each x loaded once for the ht columns. */
INLINE void forward_tile(const int ht, int d_in, int H, int np, int n0, int h, const double *restrict XT,
                         const double *restrict W0, double *restrict A)
{
    v4 acc[3][4];
    UNROLL for (int b = 0; b < ht; b++)
        UNROLL for (int q = 0; q < 4; q++) acc[b][q] = bc(0.0);
    for (int k = 0; k < d_in; k++) {
        const double *x = XT + (size_t)k * np + n0;
        const v4 x0 = ld(x), x1 = ld(x + 4), x2 = ld(x + 8), x3 = ld(x + 12);
        UNROLL for (int b = 0; b < ht; b++) {
            const v4 w = bc(W0[k * H + h + b]);
            acc[b][0] = vfma(w, x0, acc[b][0]);
            acc[b][1] = vfma(w, x1, acc[b][1]);
            acc[b][2] = vfma(w, x2, acc[b][2]);
            acc[b][3] = vfma(w, x3, acc[b][3]);
        }
    }
    UNROLL for (int b = 0; b < ht; b++)
        UNROLL for (int q = 0; q < 4; q++) st(A + (size_t)(h + b) * np + n0 + 4 * q, acc[b][q]);
}

/* dzeta = da phi'(zeta), from a = phi(zeta) */
INLINE v4 dphi(const int phi, v4 a, v4 da)
{
    if (phi == PHI_TANH) return vfma(-da, a * a, da); /* da (1 - a^2) */
    if (phi == PHI_RELU)
        return (v4){a[0] > 0.0 ? da[0] : 0.0, a[1] > 0.0 ? da[1] : 0.0, a[2] > 0.0 ? da[2] : 0.0, a[3] > 0.0 ? da[3] : 0.0};
    return da;
}

/* For h .. h + ht (ht <= 4), over all rows: the gW1 lane sums (2 ht v4 chains) and
   dzeta = da phi'(zeta), da = c1 dz W1^T, in place of a; for D = 1 in the same pass. */
INLINE void backward_tile(const int ht, const int phi, int D, int np, int h, double c1, const double *restrict W1,
                          const double *restrict R, double *restrict A, double *restrict gW1)
{
    v4 s[4][2], w[4];
    UNROLL for (int b = 0; b < ht; b++) w[b] = bc(W1[(h + b) * D] * c1);
    for (int d = 0; d < D; d++) {
        const double *r = R + (size_t)d * np;
        UNROLL for (int b = 0; b < ht; b++) s[b][0] = s[b][1] = bc(0.0);
        for (int i = 0; i < np; i += LANES) {
            const v4 r0 = ld(r + i), r1 = ld(r + i + 4);
            UNROLL for (int b = 0; b < ht; b++) {
                double *a = A + (size_t)(h + b) * np + i;
                const v4 a0 = ld(a), a1 = ld(a + 4);
                s[b][0] = vfma(a0, r0, s[b][0]);
                s[b][1] = vfma(a1, r1, s[b][1]);
                if (D == 1) { /* da = FMA(w, dz, 0.0), the chain over d of one term */
                    st(a, dphi(phi, a0, vfma(w[b], r0, bc(0.0))));
                    st(a + 4, dphi(phi, a1, vfma(w[b], r1, bc(0.0))));
                }
            }
        }
        UNROLL for (int b = 0; b < ht; b++) {
            double l[LANES];
            st(l, s[b][0]);
            st(l + 4, s[b][1]);
            gW1[(h + b) * D + d] = lane_sum(l) * c1;
        }
    }
    if (D == 1) return;
    for (int b = 0; b < ht; b++) {
        double *a = A + (size_t)(h + b) * np;
        for (int i = 0; i < np; i += 4) {
            v4 da = bc(0.0);
            for (int d = 0; d < D; d++) da = vfma(bc(W1[(h + b) * D + d] * c1), ld(R + (size_t)d * np + i), da);
            st(a + i, dphi(phi, ld(a + i), da));
        }
    }
}

/* backward_tile over all h, phi a constant in each copy */
INLINE void backward(const int phi, int H, int D, int np, double c1, const double *restrict W1,
                     const double *restrict R, double *restrict A, double *restrict gW1)
{
    int h = 0;
    for (; h + 4 <= H; h += 4) backward_tile(4, phi, D, np, h, c1, W1, R, A, gW1);
    for (; h < H; h++) backward_tile(1, phi, D, np, h, c1, W1, R, A, gW1);
}

/* Lane j's partial sums of gW0 = X^T dzeta, C[j][h][k] = sum over rows i = j mod LANES
   (in increasing order, from 0.0) of x[i][k] dzeta[h][i], for k0 .. k0 + 8 and h0 .. h0 + ht
   (ht <= 6): 2 ht v4 chains, vectors over k of the row-major x (Xr: np x kp, kp a multiple
   of 8, zero-padded), dzeta broadcast: 8 loads per 12 FMAs (the transposed tile needs 10
   and spills; this CPU loads fewer than 1.5 vectors per cycle). */
INLINE void gw0_tile(const int ht, int j, int kp, int np, int k0, int h0, const double *restrict Xr,
                     const double *restrict Z, double *restrict C)
{
    v4 s[6][2];
    UNROLL for (int b = 0; b < ht; b++) s[b][0] = s[b][1] = bc(0.0);
    _Pragma("GCC unroll 2") /* measured: ~8% faster here, unrolling the forward's k loop slower */
    for (int i = j; i < np; i += LANES) {
        const v4 x0 = ld(Xr + (size_t)i * kp + k0), x1 = ld(Xr + (size_t)i * kp + k0 + 4);
        UNROLL for (int b = 0; b < ht; b++) {
            const v4 z = bc(Z[(size_t)(h0 + b) * np + i]);
            s[b][0] = vfma(x0, z, s[b][0]);
            s[b][1] = vfma(x1, z, s[b][1]);
        }
    }
    UNROLL for (int b = 0; b < ht; b++) {
        st(C + (size_t)(h0 + b) * kp + k0, s[b][0]);
        st(C + (size_t)(h0 + b) * kp + k0 + 4, s[b][1]);
    }
}

/* One pass over rows (transposed, padded to np rows, padded rows all zero, so their
   activations, residuals and products are +-0 and add nothing): returns the mean squared
   error over the n real rows and, when gW0 != NULL, the gradients (gW0: d_in x H,
   gW1: H x D). Xr: X row-major (np x kp). Scratch: A (H x np), R (D x np), G (LANES x H x kp). */
static double pass(int d_in, int H, int D, int n, int np, const double *restrict XT,
                   const double *restrict Xr, const double *restrict YT, const double *restrict W0, const double *restrict W1,
                   int phi, double c1, double *restrict A, double *restrict R, double *restrict G,
                   double *restrict gW0, double *restrict gW1)
{
    /* zeta = (X c0) W0, a = phi(zeta): tiles of NB rows x 3 h (x 2 for the last 4). */
    for (int n0 = 0; n0 < np; n0 += NB) {
        int h = 0;
        for (; H - h >= 3 && H - h != 4; h += 3) forward_tile(3, d_in, H, np, n0, h, XT, W0, A);
        for (; H - h >= 2; h += 2) forward_tile(2, d_in, H, np, n0, h, XT, W0, A);
        if (h < H) forward_tile(1, d_in, H, np, n0, h, XT, W0, A);
    }
    const size_t total = (size_t)H * np;
    if (phi == PHI_TANH) {
        tanh_n(total, A);
    } else if (phi == PHI_RELU) {
        #pragma omp simd
        for (size_t i = 0; i < total; i++) A[i] = A[i] > 0.0 ? A[i] : 0.0;
    }
    /* f = (a W1) c1, r = f - y, loss = mean r^2: blocks of 8 rows, sums over h in order;
       lane j of sq takes rows j, j + LANES, ...; R = r 2 / (n D) = dL/df */
    const double scale = 2.0 / ((double)n * D);
    double sq = 0.0;
    for (int d = 0; d < D; d++) {
        v4 s0 = bc(0.0), s1 = bc(0.0);
        const double *y = YT + (size_t)d * np;
        for (int i = 0; i < np; i += LANES) {
            v4 f0 = bc(0.0), f1 = bc(0.0);
            for (int h = 0; h < H; h++) {
                const v4 w = bc(W1[h * D + d]);
                const double *a = A + (size_t)h * np + i;
                f0 = vfma(w, ld(a), f0);
                f1 = vfma(w, ld(a + 4), f1);
            }
            const v4 r0 = vfma(f0, bc(c1), -ld(y + i)), r1 = vfma(f1, bc(c1), -ld(y + i + 4));
            s0 = vfma(r0, r0, s0);
            s1 = vfma(r1, r1, s1);
            st(R + (size_t)d * np + i, r0 * scale);
            st(R + (size_t)d * np + i + 4, r1 * scale);
        }
        double l[LANES];
        st(l, s0);
        st(l + 4, s1);
        sq += lane_sum(l);
    }
    const double loss = sq / ((double)n * D);
    if (gW0 == NULL) return loss;

    /* gW1 = c1 a^T dz and dzeta, tiles of 4 h */
    if (phi == PHI_TANH) backward(PHI_TANH, H, D, np, c1, W1, R, A, gW1);
    else if (phi == PHI_RELU) backward(PHI_RELU, H, D, np, c1, W1, R, A, gW1);
    else backward(PHI_IDENTITY, H, D, np, c1, W1, R, A, gW1);
    /* gW0 = (X c0)^T dzeta: lane j's sums C[j] (H x kp) in G, tiles of 8 k x 6 h, then
       the fixed tree over the lanes. */
    const int kp = (d_in + 7) / 8 * 8;
    for (int h0 = 0; h0 < H; h0 += 6) {
        for (int k0 = 0; k0 < kp; k0 += 8) {
            for (int j = 0; j < LANES; j++) {
                double *C = G + (size_t)j * H * kp;
                const int ht = H - h0 < 6 ? H - h0 : 6; /* each ht a constant in its copy */
                if (ht == 6) gw0_tile(6, j, kp, np, k0, h0, Xr, A, C);
                else if (ht >= 4) gw0_tile(4, j, kp, np, k0, h0, Xr, A, C);
                else if (ht >= 2) gw0_tile(2, j, kp, np, k0, h0, Xr, A, C);
                if (ht & 1 && ht < 6) gw0_tile(1, j, kp, np, k0, h0 + ht - 1, Xr, A, C);
            }
        }
    }
    for (int h = 0; h < H; h++)
        for (int k = 0; k < d_in; k += 4) { /* lane_sum's tree, 4 k at a time */
            const double *c = G + (size_t)h * kp + k;
            const size_t lane = (size_t)H * kp;
            const v4 g = ((ld(c) + ld(c + 4 * lane)) + (ld(c + 2 * lane) + ld(c + 6 * lane))) +
                         ((ld(c + lane) + ld(c + 5 * lane)) + (ld(c + 3 * lane) + ld(c + 7 * lane)));
            for (int e = 0; e < 4 && k + e < d_in; e++) gW0[(k + e) * H + h] = g[e];
        }
    return loss;
}

/* momentum: m <- beta m + g (one FMA: FMA(beta, m, g)); W <- W - lr m (one FMA, as gd's
   FMA(-g, lr, W)). */
static void momentum_update(int n, double beta, double lr, const double *restrict g, double *restrict m,
                            double *restrict w)
{
    for (int i = 0; i < n; i++) {
        const double mi = FMA(beta, m[i], g[i]);
        m[i] = mi;
        w[i] = FMA(-mi, lr, w[i]);
    }
}

/* adam, with omb1 = 1 - beta1, omb2 = 1 - beta2 and, per step (b1, b2 already multiplied
   by this step's beta1, beta2), step = lr / (1 - b1), inv_bc2 = 1 / sqrt(1 - b2):
   m <- beta1 m + (1 - beta1) g      FMA(beta1, m, omb1 g): the product omb1 g rounded first;
   v <- beta2 v + (1 - beta2) g^2    FMA(beta2, v, omb2 (g g)): g g rounded, then omb2 (g g);
   W <- W - step m / (sqrt(v) inv_bc2 + eps)
                                     sqrt, *, +, / rounded in that order (no FMA), then
                                     FMA(-q, step, W) as gd's FMA(-g, lr, W). */
INLINE void adam_update(int n, double beta1, double beta2, double omb1, double omb2, double step,
                        double inv_bc2, double eps, const double *restrict g, double *restrict m,
                        double *restrict v, double *restrict w)
{
    /* One division and one sqrt per weight: the divider bounds this loop (Zen 3 has one). */
    for (int i = 0; i < n; i++) {
        const double gi = g[i];
        const double mi = FMA(beta1, m[i], omb1 * gi);
        const double vi = FMA(beta2, v[i], omb2 * (gi * gi));
        m[i] = mi;
        v[i] = vi;
        const double q = mi / (__builtin_sqrt(vi) * inv_bc2 + eps);
        w[i] = FMA(-q, step, w[i]);
    }
}

/* Xr (rows x kp, columns from d_in on zero) = XT^T (XT: d_in x rows). */
static void transpose(int d_in, int rows, int kp, const double *restrict XT, double *restrict Xr)
{
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < kp; k++) Xr[(size_t)i * kp + k] = k < d_in ? XT[(size_t)k * rows + i] : 0.0;
}

/* Train pixels [0, P): returns 0, or -1 when out of memory (-2: unknown optimiser).
   stats: (P, N_STATS) float64, columns STAT_*;
   diverged: (P,) int64. Minibatch (mb > 0): XmbT (steps, d_in, mbp), YmbT (steps, D, mbp).
   opt: OPT_*; hyper: (P, N_HYPER) float64, the pixel's hyperparameters (momentum: beta, -, -;
   adam: beta1, beta2, eps), not read for gd (may be NULL). */
int fused_train_f64(int P, int steps, int d_in, int H, int D, int n, int np,
                    const double *XT, const double *YT, int mb, int mbp,
                    const double *XmbT, const double *YmbT,
                    const double *W0init, const double *W1init, const double *lrs,
                    const double *offsets, int offset_every_step, int phi, double c1,
                    int opt, const double *hyper, double *stats, int64_t *diverged)
{
    if (opt != OPT_GD && opt != OPT_MOMENTUM && opt != OPT_ADAM) return -2;
    if (opt != OPT_GD && hyper == NULL) return -2;
    /* One 64-byte aligned buffer: every row of X, a, dzeta and G starts a cache line
       (np, mbp are multiples of 16), so no vector load splits across two lines. */
    const int kp = (d_in + 7) / 8 * 8;
    const size_t rows = np > mbp ? np : mbp, nX = (size_t)d_in * np, nXm = (size_t)d_in * mbp;
    size_t size = (H + D) * rows + nX + nXm + (size_t)D * (np + mbp) + (size_t)kp * (np + mbp) +
                        LANES * (size_t)kp * H + 2 * (size_t)d_in * H + 2 * (size_t)H * D;
    /* the optimiser's state after them, each array a whole number of cache lines */
    const size_t n0 = (size_t)d_in * H, n1 = (size_t)H * D, s0 = (n0 + 7) / 8 * 8, s1 = (n1 + 7) / 8 * 8;
    const size_t state = opt == OPT_GD ? 0 : opt == OPT_MOMENTUM ? s0 + s1 : 2 * (s0 + s1);
    const size_t head = (size + 7) / 8 * 8;
    size = head + state;
    double *buf = aligned_alloc(64, (sizeof(double) * size + 63) / 64 * 64);
    if (!buf) return -1;
    double *A = buf, *R = A + H * rows, *Xa = R + D * rows, *Ya = Xa + nX, *Xm = Ya + (size_t)D * np;
    double *Ym = Xm + nXm, *Xr = Ym + (size_t)D * mbp, *Xrm = Xr + (size_t)kp * np, *G = Xrm + (size_t)kp * mbp;
    double *W0 = G + LANES * (size_t)kp * H, *gW0 = W0 + (size_t)d_in * H;
    double *W1 = gW0 + (size_t)d_in * H, *gW1 = W1 + (size_t)H * D;
    double *M0 = buf + head, *M1 = M0 + s0, *V0 = M1 + s1, *V1 = V0 + s0; /* V: adam only */
    memcpy(Xa, XT, sizeof(double) * d_in * np);
    memcpy(Ya, YT, sizeof(double) * D * np);
    transpose(d_in, np, kp, XT, Xr);
    for (int p = 0; p < P; p++) {
        memcpy(W0, W0init, sizeof(double) * d_in * H);
        memcpy(W1, W1init, sizeof(double) * H * D);
        const double lr0 = lrs[2 * p], lr1 = lrs[2 * p + 1];
        const double off = offsets ? offsets[p] : 0.0;
        if (offsets && !offset_every_step)
            for (int i = 0; i < d_in * H; i++) W0[i] += off;
        if (state) memset(M0, 0, sizeof(double) * state); /* m = v = 0 before step 1 */
        const double *hp = hyper ? hyper + N_HYPER * (size_t)p : NULL;
        const double beta1 = hp ? hp[0] : 0.0, beta2 = hp ? hp[1] : 0.0, eps = hp ? hp[2] : 0.0;
        const double omb1 = 1.0 - beta1, omb2 = 1.0 - beta2;
        double b1 = 1.0, b2 = 1.0; /* beta1^t, beta2^t */
        loss_statistics stats_p = loss_statistics_start(steps);
        for (int t = 0; t < steps; t++) {
            if (offsets && offset_every_step)
                for (int i = 0; i < d_in * H; i++) W0[i] += off;
            double v;
            if (mb == 0) {
                v = pass(d_in, H, D, n, np, Xa, Xr, Ya, W0, W1, phi, c1, A, R, G, gW0, gW1);
            } else {
                v = pass(d_in, H, D, n, np, Xa, Xr, Ya, W0, W1, phi, c1, A, R, G, NULL, NULL);
                memcpy(Xm, XmbT + (size_t)t * d_in * mbp, sizeof(double) * d_in * mbp);
                memcpy(Ym, YmbT + (size_t)t * D * mbp, sizeof(double) * D * mbp);
                transpose(d_in, mbp, kp, Xm, Xrm);
                pass(d_in, H, D, mb, mbp, Xm, Xrm, Ym, W0, W1, phi, c1, A, R, G, gW0, gW1);
            }
            if (opt == OPT_GD) {
                for (int i = 0; i < d_in * H; i++) W0[i] = FMA(-gW0[i], lr0, W0[i]);
                for (int i = 0; i < H * D; i++) W1[i] = FMA(-gW1[i], lr1, W1[i]);
            } else if (opt == OPT_MOMENTUM) { /* beta = hyper[0] */
                momentum_update(d_in * H, beta1, lr0, gW0, M0, W0);
                momentum_update(H * D, beta1, lr1, gW1, M1, W1);
            } else {
                b1 *= beta1;
                b2 *= beta2;
                const double inv_bc2 = 1.0 / __builtin_sqrt(1.0 - b2);
                adam_update(d_in * H, beta1, beta2, omb1, omb2, lr0 / (1.0 - b1), inv_bc2, eps, gW0, M0, V0, W0);
                adam_update(H * D, beta1, beta2, omb1, omb2, lr1 / (1.0 - b1), inv_bc2, eps, gW1, M1, V1, W1);
            }
            loss_statistics_step(&stats_p, v, t);
        }
        loss_statistics_write(&stats_p, stats + N_STATS * (size_t)p, diverged + p);
    }
    free(buf);
    return 0;
}
