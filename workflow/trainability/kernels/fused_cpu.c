/* Fused per-pixel training, float64, depth-2 MLP: each pixel's whole run in one call,
   its weights, activations and gradients in registers and L1 (trainability/kernels/c_cpu.py).

   Built by c_cpu.py with the contract's constants (trainability/statistics.py) passed
   as -D definitions: MAX_RATIO, TAIL_STEPS, and the column of each float statistic in
   the (P, N_STATS) output, STAT_LOSS_INITIAL ... STAT_TAIL_MEAN_U.

   The bits do not depend on the machine or the ISA it is built for (c_cpu.BUILD_CLASS
   names this arithmetic; change it whenever an edit here changes bits):
   - every sum over rows has a fixed order written here: LANES partial sums, lane j takes
     rows i = j mod LANES in increasing order, then the fixed tree of lane_sum. The
     compiler may vectorise across lanes (element-wise, exact) but may not reassociate:
     no -ffast-math, no omp simd reduction;
   - built with -ffp-contract=off: a fused multiply-add is where FMA() is written, and
     nowhere else; without FMA hardware it is libm's fma, correctly rounded, so the same;
   - tanh is fused_tanh below, not libm's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FMA(a, b, c) __builtin_fma((a), (b), (c))

/* tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)), sign restored; branch-free and
   vectorisable. expm1(z), z in [-40, 0]: z = k ln2 + r, |r| <= ln2/2 (Cody-Waite),
   expm1(r) by its Taylor series to degree 13 (truncation < 2e-17 relative),
   expm1(z) = 2^k expm1(r) + (2^k - 1). NaN propagates; |x| > 20 gives +-1. <= 2.1 ulp
   (measured against long-double tanhl, tests/test_fused_bits.py).
   tanh(+-0) = +-0, so zero (padded) rows stay zero. */
static inline double fused_tanh(double x)
{
    double ax = x < 0.0 ? -x : x;
    double z = -2.0 * ax;
    z = z < -40.0 ? -40.0 : z; /* NaN stays NaN */
    const double magic = 6755399441055744.0; /* 1.5 * 2^52: round to integer */
    double km = FMA(z, 1.4426950408889634, magic); /* magic + k exactly */
    double kd = km - magic;
    /* k ln2_hi is exact (ln2_hi has 21 trailing zero bits), and so (Sterbenz) is z - k ln2_hi */
    double r = FMA(-kd, 1.90821492927058770002e-10, FMA(-kd, 6.93147180369123816490e-01, z));
    double p = 1.0 / 6227020800.0;
    p = FMA(p, r, 1.0 / 479001600.0);
    p = FMA(p, r, 1.0 / 39916800.0);
    p = FMA(p, r, 1.0 / 3628800.0);
    p = FMA(p, r, 1.0 / 362880.0);
    p = FMA(p, r, 1.0 / 40320.0);
    p = FMA(p, r, 1.0 / 5040.0);
    p = FMA(p, r, 1.0 / 720.0);
    p = FMA(p, r, 1.0 / 120.0);
    p = FMA(p, r, 1.0 / 24.0);
    p = FMA(p, r, 1.0 / 6.0);
    p = FMA(p, r, 0.5);
    double em_r = FMA(r * r, p, r); /* expm1(r) */
    /* 2^k (k in [-58, 0]) from the bits of km, whose low bits hold k: no double -> int64
       conversion, which AVX2 cannot vectorise (the bits of magic << 52 are zero) */
    uint64_t bits;
    __builtin_memcpy(&bits, &km, sizeof bits);
    bits = (bits + 1023) << 52;
    double two_k;
    __builtin_memcpy(&two_k, &bits, sizeof two_k);
    double em = FMA(two_k, em_r, two_k - 1.0);
    /* 2 + em with one rounding, not two: <= 2.1 ulp instead of 2.6 */
    double t = __builtin_fabs(em / FMA(two_k, em_r, two_k + 1.0));
    return __builtin_copysign(t, x);
}

/* tanh of n values, for the tests (accuracy, bits across builds). */
void fused_tanh_f64(int64_t n, const double *x, double *y)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = fused_tanh(x[i]);
}

#if !defined(MAX_RATIO) || !defined(TAIL_STEPS) || !defined(N_STATS) || !defined(STAT_LOSS_INITIAL) || \
    !defined(STAT_LOSS_FINAL) || !defined(STAT_LOSS_MIN) || !defined(STAT_SUM_U) || \
    !defined(STAT_SUM_INV_U) || !defined(STAT_TAIL_MEAN_U)
#error "build with the statistics contract's -D definitions (trainability/kernels/c_cpu.py)"
#endif
#define NB 16   /* rows per register block; c_cpu.ROW_BLOCK pads rows to a multiple */
#define LANES 8 /* partial sums per sum over rows; NB is a multiple */

enum { PHI_TANH = 0, PHI_RELU = 1, PHI_IDENTITY = 2 };

/* The fixed reduction tree of the LANES partial sums. */
_Static_assert(LANES == 8 && NB % LANES == 0, "lane_sum is written for 8 lanes");
static inline double lane_sum(const double *s)
{
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/* One pass over rows (transposed, padded to np rows, padded rows all zero, so their
   activations, residuals and products are +-0 and add nothing): returns the mean squared
   error over the n real rows and, when gW0 != NULL, the gradients (gW0: d_in x H,
   gW1: H x D). Scratch: A (H x np), R (D x np). */
static double pass(int d_in, int H, int D, int n, int np, const double *restrict XT,
                   const double *restrict YT, const double *restrict W0, const double *restrict W1,
                   int phi, double c1, double *restrict A, double *restrict R,
                   double *restrict gW0, double *restrict gW1)
{
    /* zeta = (X c0) W0, a = phi(zeta): register blocks of NB rows, sums over k in order. */
    for (int n0 = 0; n0 < np; n0 += NB) {
        for (int h = 0; h < H; h++) {
            double acc[NB];
            #pragma omp simd
            for (int j = 0; j < NB; j++) acc[j] = 0.0;
            for (int k = 0; k < d_in; k++) {
                const double w = W0[k * H + h];
                const double *x = XT + (size_t)k * np + n0;
                #pragma omp simd
                for (int j = 0; j < NB; j++) acc[j] = FMA(w, x[j], acc[j]);
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
    /* f = (a W1) c1, r = f - y, loss = mean r^2: register blocks of NB rows, sums over h
       in order; lane j of sq takes rows j, j + LANES, ... */
    double sq = 0.0;
    for (int d = 0; d < D; d++) {
        double s[LANES] = {0};
        const double *y = YT + (size_t)d * np;
        for (int n0 = 0; n0 < np; n0 += NB) {
            double acc[NB];
            #pragma omp simd
            for (int j = 0; j < NB; j++) acc[j] = 0.0;
            for (int h = 0; h < H; h++) {
                const double w = W1[h * D + d];
                const double *a = A + (size_t)h * np + n0;
                #pragma omp simd
                for (int j = 0; j < NB; j++) acc[j] = FMA(w, a[j], acc[j]);
            }
            double *r = R + (size_t)d * np + n0;
            #pragma omp simd
            for (int j = 0; j < NB; j++) r[j] = FMA(acc[j], c1, -y[n0 + j]);
            for (int b = 0; b < NB; b += LANES) {
                #pragma omp simd
                for (int j = 0; j < LANES; j++) s[j] = FMA(r[b + j], r[b + j], s[j]);
            }
        }
        sq += lane_sum(s);
    }
    const double loss = sq / ((double)n * D);
    if (gW0 == NULL) return loss;

    /* dL/dzeta_out = r * 2 / (n D) */
    const double scale = 2.0 / ((double)n * D);
    #pragma omp simd
    for (size_t i = 0; i < (size_t)D * np; i++) R[i] *= scale;
    /* gW1 = c1 a^T dz; da = c1 dz W1^T, then dzeta = da phi'(zeta), in place of A. */
    for (int h = 0; h < H; h++) {
        double *a = A + (size_t)h * np;
        for (int d = 0; d < D; d++) {
            const double *r = R + (size_t)d * np;
            double s[LANES] = {0};
            for (int i = 0; i < np; i += LANES) {
                #pragma omp simd
                for (int j = 0; j < LANES; j++) s[j] = FMA(a[i + j], r[i + j], s[j]);
            }
            gW1[h * D + d] = lane_sum(s) * c1;
        }
        double da[NB];
        for (int n0 = 0; n0 < np; n0 += NB) {
            #pragma omp simd
            for (int j = 0; j < NB; j++) da[j] = 0.0;
            for (int d = 0; d < D; d++) {
                const double w = W1[h * D + d] * c1;
                const double *r = R + (size_t)d * np + n0;
                #pragma omp simd
                for (int j = 0; j < NB; j++) da[j] = FMA(w, r[j], da[j]);
            }
            double *an = a + n0;
            if (phi == PHI_TANH) { /* da (1 - a^2) */
                #pragma omp simd
                for (int j = 0; j < NB; j++) an[j] = FMA(-da[j], an[j] * an[j], da[j]);
            } else if (phi == PHI_RELU) {
                #pragma omp simd
                for (int j = 0; j < NB; j++) an[j] = an[j] > 0.0 ? da[j] : 0.0;
            } else {
                #pragma omp simd
                for (int j = 0; j < NB; j++) an[j] = da[j];
            }
        }
    }
    /* gW0 = (X c0)^T dzeta: 2x2 tiles of (k, h) dot products over rows, LANES lanes each. */
    int k = 0;
    for (; k + 1 < d_in; k += 2) {
        const double *x0 = XT + (size_t)k * np, *x1 = x0 + np;
        int h = 0;
        for (; h + 1 < H; h += 2) {
            const double *z0 = A + (size_t)h * np, *z1 = z0 + np;
            double s00[LANES] = {0}, s01[LANES] = {0}, s10[LANES] = {0}, s11[LANES] = {0};
            for (int i = 0; i < np; i += LANES) {
                #pragma omp simd
                for (int j = 0; j < LANES; j++) {
                    s00[j] = FMA(x0[i + j], z0[i + j], s00[j]);
                    s01[j] = FMA(x0[i + j], z1[i + j], s01[j]);
                    s10[j] = FMA(x1[i + j], z0[i + j], s10[j]);
                    s11[j] = FMA(x1[i + j], z1[i + j], s11[j]);
                }
            }
            gW0[k * H + h] = lane_sum(s00); gW0[k * H + h + 1] = lane_sum(s01);
            gW0[(k + 1) * H + h] = lane_sum(s10); gW0[(k + 1) * H + h + 1] = lane_sum(s11);
        }
        for (; h < H; h++) {
            const double *z0 = A + (size_t)h * np;
            double s00[LANES] = {0}, s10[LANES] = {0};
            for (int i = 0; i < np; i += LANES) {
                #pragma omp simd
                for (int j = 0; j < LANES; j++) {
                    s00[j] = FMA(x0[i + j], z0[i + j], s00[j]);
                    s10[j] = FMA(x1[i + j], z0[i + j], s10[j]);
                }
            }
            gW0[k * H + h] = lane_sum(s00); gW0[(k + 1) * H + h] = lane_sum(s10);
        }
    }
    for (; k < d_in; k++) {
        const double *x0 = XT + (size_t)k * np;
        for (int h = 0; h < H; h++) {
            const double *z0 = A + (size_t)h * np;
            double s[LANES] = {0};
            for (int i = 0; i < np; i += LANES) {
                #pragma omp simd
                for (int j = 0; j < LANES; j++) s[j] = FMA(x0[i + j], z0[i + j], s[j]);
            }
            gW0[k * H + h] = lane_sum(s);
        }
    }
    return loss;
}

/* Train pixels [0, P): returns 0, or -1 when out of memory.
   stats: (P, N_STATS) float64, columns STAT_*;
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
            for (int i = 0; i < d_in * H; i++) W0[i] = FMA(-gW0[i], lr0, W0[i]);
            for (int i = 0; i < H * D; i++) W1[i] = FMA(-gW1[i], lr1, W1[i]);
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
        double *s = stats + N_STATS * (size_t)p;
        s[STAT_LOSS_INITIAL] = v0;
        s[STAT_LOSS_FINAL] = vfinal;
        s[STAT_LOSS_MIN] = vmin;
        s[STAT_SUM_U] = sum_u;
        s[STAT_SUM_INV_U] = sum_inv;
        s[STAT_TAIL_MEAN_U] = tail / (steps < TAIL_STEPS ? steps : TAIL_STEPS);
        diverged[p] = div;
    }
    free(buf);
    return 0;
}
