/* Fused per-pixel training in double-double (dd: an unevaluated sum hi + lo of two float64,
   about 32 significant digits), depth-2 MLP without biases: fused_cpu.c's network, training
   and statistics past float64's resolution (trainability/kernels/c_cpu_dd.py builds and
   calls it). Longer than the house's 350 lines: dd arithmetic, its tanh and the training
   passes belong together (every operation sequence that fixes the bits is in this file).

   The weights W0, W1, activations, gradients, losses and updates are dd; so are each pixel's
   learning rates, offset and optimiser hyperparameters, and the layer constants c0, c1
   (computed correctly rounded by the caller). X and Y are float64 (exact data):
   zeta = (X W0) c0, a = phi(zeta), f = (a W1) c1, loss = mean (f - Y)^2. X W0 exploits
   that X is exact: x W0.hi as an exact product (two_prod) summed with two_sum, the product
   errors and x W0.lo in a plain double beside it (their rounding is ~u^2 of the sum).
   The statistics are fused_cpu.c's, of each step's loss rounded to float64 (hi + lo).

   dd algorithms, u = 2^-53 (bounds from Joldes, Muller, Popescu, ACM TOMS 44 (2017)):
   two_sum (Knuth, exact), fast_two_sum (Dekker, exact when |a| >= |b|), two_prod (FMA,
   exact); dd_add AccurateDWPlusDW (<= 3u^2 relative), dd_add_d DWPlusFP (<= 2u^2),
   dd_mul DWTimesDW2 (<= 5u^2), dd_mul_d DWTimesFP3 (<= 2u^2), dd_div DWDivDW2 (<= 15u^2),
   dd_sqrt one Newton step on sqrt(hi) with an exact residual; tanh below.

   Bits: as in fused_cpu.c, they depend on nothing but this source. vd is 8 doubles (a
   GCC vector: one zmm, 2 ymm, 4 xmm or scalar code; every operation element-wise), FMAs
   only where vfma or two_prod is written (built with -ffp-contract=off; libm's correctly
   rounded fma without FMA hardware), division and sqrt IEEE. Sums over rows: LANES = 8
   partial sums, lane j takes rows i = j mod 8 in increasing order (the 8 elements of a vd
   of rows), then fused_cpu.c's tree ((0+4)+(2+6))+((1+5)+(3+7)) of dd_add; X W0 and a W1:
   one chain per output over k (h) in increasing order. Pixels are independent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loss_statistics.h" /* the statistics' rules, shared by the C kernels */

#if !defined(MAX_RATIO) || !defined(TAIL_STEPS) || !defined(N_STATS) || !defined(STAT_LOSS_INITIAL) || \
    !defined(STAT_LOSS_FINAL) || !defined(STAT_LOSS_MIN) || !defined(STAT_SUM_U) || \
    !defined(STAT_SUM_INV_U) || !defined(STAT_TAIL_MEAN_U)
#error "build with the statistics contract's -D definitions (trainability/kernels/c_cpu_dd.py)"
#endif
#if !defined(PHI_TANH) || !defined(PHI_RELU) || !defined(PHI_IDENTITY) || !defined(OPT_GD) || \
    !defined(OPT_MOMENTUM) || !defined(OPT_ADAM) || !defined(N_HYPER)
#error "build with the contract's nonlinearity and optimiser codes as -D definitions (c_cpu_dd.py)"
#endif
#if N_HYPER < 3
#error "adam's beta1, beta2, eps need N_HYPER >= 3 columns"
#endif

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
#define VW 8    /* doubles per vd; rows are padded to a multiple (c_cpu_dd.ROW_BLOCK) */
#define LANES 8 /* partial sums per sum over rows: the elements of one vd */
_Static_assert(VW == LANES, "a vd of rows holds the LANES partial sums");

#pragma GCC diagnostic ignored "-Wpsabi" /* static inline only: no ABI crosses a call */
typedef double vd __attribute__((vector_size(8 * VW)));
typedef int64_t vi __attribute__((vector_size(8 * VW)));
typedef struct { vd h, l; } vdd;

#define FMA(a, b, c) __builtin_fma((a), (b), (c))
#define L8(E) {E(0), E(1), E(2), E(3), E(4), E(5), E(6), E(7)}
INLINE vd vfma(vd a, vd b, vd c)
{
#define LANE_FMA(j) FMA(a[j], b[j], c[j])
    return (vd)L8(LANE_FMA);
#undef LANE_FMA
}
INLINE vd vsqrt(vd a)
{
#define LANE_SQRT(j) __builtin_sqrt(a[j])
    return (vd)L8(LANE_SQRT);
#undef LANE_SQRT
}
INLINE vd ld(const double *p) { vd v; memcpy(&v, p, sizeof v); return v; }
INLINE void st(double *p, vd v) { memcpy(p, &v, sizeof v); }
INLINE vd bc(double x) { return (vd){x, x, x, x, x, x, x, x}; }
INLINE vdd ldd(const double *h, const double *l) { return (vdd){ld(h), ld(l)}; }
INLINE void stdd(double *h, double *l, vdd v) { st(h, v.h); st(l, v.l); }
INLINE vdd bcdd(double h, double l) { return (vdd){bc(h), bc(l)}; }
/* where m (a comparison's all-ones lanes): a, elsewhere b */
INLINE vd pick(vi m, vd a, vd b) { return (vd)(((vi)a & m) | ((vi)b & ~m)); }

/* ---- error-free transformations and dd arithmetic ---- */
INLINE vdd two_sum(vd a, vd b)
{
    const vd s = a + b, bb = s - a;
    return (vdd){s, (a - (s - bb)) + (b - bb)};
}
INLINE vdd fast_two_sum(vd a, vd b) /* |a| >= |b| or a = 0 */
{
    const vd s = a + b;
    return (vdd){s, b - (s - a)};
}
INLINE vdd two_prod(vd a, vd b)
{
    const vd p = a * b;
    return (vdd){p, vfma(a, b, -p)};
}
INLINE vdd dd_neg(vdd x) { return (vdd){-x.h, -x.l}; }
INLINE vdd dd_add(vdd x, vdd y)
{
    const vdd s = two_sum(x.h, y.h), t = two_sum(x.l, y.l);
    const vdd v = fast_two_sum(s.h, s.l + t.h);
    return fast_two_sum(v.h, t.l + v.l);
}
INLINE vdd dd_add_d(vdd x, vd y)
{
    const vdd s = two_sum(x.h, y);
    return fast_two_sum(s.h, x.l + s.l);
}
INLINE vdd dd_mul(vdd x, vdd y)
{
    const vdd c = two_prod(x.h, y.h);
    return fast_two_sum(c.h, c.l + vfma(x.l, y.h, x.h * y.l));
}
INLINE vdd dd_mul_d(vdd x, vd y)
{
    const vdd c = two_prod(x.h, y);
    return fast_two_sum(c.h, vfma(x.l, y, c.l));
}
INLINE vdd dd_sqr(vdd x)
{
    const vdd c = two_prod(x.h, x.h);
    return fast_two_sum(c.h, vfma(x.h + x.h, x.l, c.l));
}
INLINE vdd dd_div(vdd x, vdd y)
{
    const vd th = x.h / y.h;
    const vdd r = dd_mul_d(y, th);
    const vd delta = (x.h - r.h) + (x.l - r.l);
    return fast_two_sum(th, delta / y.h);
}
/* sqrt(x), x >= 0: q = sqrt(x.h) corrected by (x - q^2) / (2q), the residual exact
   (x.h - q^2 by Sterbenz); 0 at 0, where the correction would be 0/0 */
INLINE vdd dd_sqrt(vdd x)
{
    const vd q = vsqrt(x.h);
    const vdd p = two_prod(q, q);
    const vd c = (((x.h - p.h) - p.l) + x.l) / (q + q);
    return fast_two_sum(q, pick(q > bc(0.0), c, bc(0.0)));
}

/* ---- tanh ----
   tanh(x) = -em / (2 + em), em = expm1(z), z = -2|x| clamped at -80 (tanh(40) is 1 - 4e-35),
   sign restored; |x| < 2^-60: tanh(x) = x to dd precision.
   expm1(z): z = k ln2 + r, |r| <= ln2/2, with ln2 in three parts (LN2_1 has 32 bits, so k LN2_1
   is exact for |k| <= 2^21 and z.hi - k LN2_1 exact by Sterbenz); r' = r / 16;
   expm1(r') = r' q1(r'), q_j = 1/j! + r' q_{j+1}: q_8 = sum_{j=8..15} r'^(j-8)/j! in double
   (its error times r'^7 is < 2^-107 relative), q_7 .. q_1 in dd (|r'| <= 0.0217: the series'
   truncation < 2^-110); 4 doublings expm1(2y) = e (e + 2); expm1(z) = 2^k e + (2^k - 1).
   Measured against mpmath: tests/kernels/test_double_double.py.
   Statement by statement over TB vd values (32 doubles), so that TB independent chains are
   interleaved in program order (one value's chain is latency bound). */
#define TB 4
#define EACH(j) UNROLL for (int j = 0; j < TB; j++)
static const double LN2_1 = 0x1.62e42fee00000p-1, LN2_2 = 0x1.a39ef35793c76p-33, LN2_3 = 0x1.cc01f97b57a08p-87;
/* 1/j!, j = 1 .. 7 as dd (hi, lo); 8 .. 15 as doubles */
static const double INV_FACT_DD[8][2] = {
    {0, 0}, {1.0, 0.0}, {0x1.0p-1, 0.0}, {0x1.5555555555555p-3, 0x1.5555555555555p-57},
    {0x1.5555555555555p-5, 0x1.5555555555555p-59}, {0x1.1111111111111p-7, 0x1.1111111111111p-63},
    {0x1.6c16c16c16c17p-10, -0x1.f49f49f49f49fp-65}, {0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-73}};
static const double INV_FACT_D[16] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0x1.a01a01a01a01ap-16, 0x1.71de3a556c734p-19, 0x1.27e4fb7789f5cp-22,
    0x1.ae64567f544e4p-26, 0x1.1eed8eff8d898p-29, 0x1.6124613a86d09p-33, 0x1.93974a8c07c9dp-37,
    0x1.ae7f3e733b81fp-41};

INLINE void tanh_block(double *restrict xh, double *restrict xl)
{
    vdd x[TB], z[TB], r[TB], q[TB];
    vd km[TB], sign[TB];
    const vd magic = bc(6755399441055744.0); /* 1.5 2^52: magic + k holds k in its low bits */
    EACH(j) x[j] = ldd(xh + j * VW, xl + j * VW);
    EACH(j) { /* z = -2|x|: both parts negated where x.h < 0; clamp (NaN stays NaN) */
        sign[j] = (vd)((vi)x[j].h & (vi)bc(-0.0));
        z[j] = (vdd){-2.0 * (vd)((vi)x[j].h ^ (vi)sign[j]), -2.0 * (vd)((vi)x[j].l ^ (vi)sign[j])};
        const vi low = z[j].h < bc(-80.0);
        z[j] = (vdd){pick(low, bc(-80.0), z[j].h), pick(low, bc(0.0), z[j].l)};
    }
    EACH(j) km[j] = vfma(z[j].h, bc(0x1.71547652b82fep+0), magic); /* magic + round(z / ln2) */
    EACH(j) {
        const vd k = km[j] - magic, t = vfma(-k, bc(LN2_1), z[j].h); /* exact */
        const vdd p = two_prod(-k, bc(LN2_2)), s = two_sum(t, p.h);
        r[j] = fast_two_sum(s.h, s.l + (p.l + vfma(-k, bc(LN2_3), z[j].l)));
        r[j] = (vdd){r[j].h * 0.0625, r[j].l * 0.0625};
    }
    EACH(j) {
        vd p = bc(INV_FACT_D[15]);
        for (int n = 14; n >= 8; n--) p = vfma(p, r[j].h, bc(INV_FACT_D[n]));
        q[j] = (vdd){p, bc(0.0)};
    }
    for (int n = 7; n >= 1; n--) {
        const vdd c = bcdd(INV_FACT_DD[n][0], INV_FACT_DD[n][1]);
        EACH(j) { /* q = c + r q: |r q| < c, so fast_two_sum */
            const vdd p = two_prod(q[j].h, r[j].h);
            const vdd s = fast_two_sum(c.h, p.h);
            const vd pl = p.l + vfma(q[j].l, r[j].h, q[j].h * r[j].l);
            q[j] = fast_two_sum(s.h, s.l + (c.l + pl));
        }
    }
    EACH(j) q[j] = dd_mul(r[j], q[j]); /* expm1(r') */
    for (int n = 0; n < 4; n++)
        EACH(j) { /* e (e + 2) = 2e + e^2, |e| < 1 */
            const vdd e = q[j], sq = two_prod(e.h, e.h);
            const vd sql = vfma(e.h + e.h, e.l, sq.l);
            const vdd s = fast_two_sum(e.h + e.h, sq.h);
            q[j] = fast_two_sum(s.h, s.l + ((e.l + e.l) + sql));
        }
    EACH(j) {
        /* 2^k from the bits of km (k in [-116, 0]): no double -> int conversion */
        const vd two_k = (vd)(((vi)km[j] + 1023) << 52);
        const vdd m1 = fast_two_sum(bc(-1.0), two_k); /* 2^k - 1, exact */
        const vdd e = {two_k * q[j].h, two_k * q[j].l};
        const vdd s = fast_two_sum(m1.h, e.h); /* |2^k - 1| >= 1/2 > |2^k e|, or k = 0 */
        const vdd em = fast_two_sum(s.h, s.l + (m1.l + e.l));
        const vdd d = fast_two_sum(bc(2.0), em.h);
        vdd t = dd_div(dd_neg(em), fast_two_sum(d.h, d.l + em.l));
        t = (vdd){(vd)((vi)t.h ^ (vi)sign[j]), (vd)((vi)t.l ^ (vi)sign[j])};
        const vi tiny = (vd)((vi)x[j].h & ~(vi)bc(-0.0)) < bc(0x1.0p-60);
        stdd(xh + j * VW, xl + j * VW, (vdd){pick(tiny, x[j].h, t.h), pick(tiny, x[j].l, t.l)});
    }
}

/* tanh of n values in place (hi, lo arrays): blocks of TB vd, the rest through a padded block */
static void tanh_n(size_t n, double *restrict h, double *restrict l)
{
    const size_t block = TB * VW;
    size_t i = 0;
    for (; i + block <= n; i += block) tanh_block(h + i, l + i);
    if (i < n) {
        double th[TB * VW] = {0}, tl[TB * VW] = {0};
        memcpy(th, h + i, sizeof(double) * (n - i));
        memcpy(tl, l + i, sizeof(double) * (n - i));
        tanh_block(th, tl);
        memcpy(h + i, th, sizeof(double) * (n - i));
        memcpy(l + i, tl, sizeof(double) * (n - i));
    }
}

/* tanh of n dd values (xh + xl), for the tests: the kernel's code path */
void fused_tanh_dd(int64_t n, const double *xh, const double *xl, double *yh, double *yl)
{
    memmove(yh, xh, sizeof(double) * (size_t)n);
    memmove(yl, xl, sizeof(double) * (size_t)n);
    tanh_n((size_t)n, yh, yl);
}

/* ---- one pass over the rows ---- */

/* The lanes of v summed in fused_cpu.c's lane_sum tree ((0+4)+(2+6))+((1+5)+(3+7)): lane 0. */
INLINE vdd lane_tree(vdd v)
{
    const vi swap4 = {4, 5, 6, 7, 0, 1, 2, 3}, swap2 = {2, 3, 0, 1, 6, 7, 4, 5}, swap1 = {1, 0, 3, 2, 5, 4, 7, 6};
    v = dd_add(v, (vdd){__builtin_shuffle(v.h, swap4), __builtin_shuffle(v.l, swap4)});
    v = dd_add(v, (vdd){__builtin_shuffle(v.h, swap2), __builtin_shuffle(v.l, swap2)});
    return dd_add(v, (vdd){__builtin_shuffle(v.h, swap1), __builtin_shuffle(v.l, swap1)});
}

/* A running dd sum: s the two_sum chain of the products' hi parts, c in plain double the
   errors and lo parts (rounded: ~u^2 of the sum); (s + c) normalised at the end. */
typedef struct { vd s, c; } acc_t;
INLINE void acc_add(acc_t *a, vd hi, vd lo)
{
    const vdd t = two_sum(a->s, hi);
    a->s = t.h;
    a->c = a->c + (t.l + lo);
}
/* x (exact double) times y (dd): its hi part and the rest (x y.h - p exactly, + x y.l) */
INLINE void acc_xy(acc_t *a, vd x, vdd y)
{
    const vd p = x * y.h;
    acc_add(a, p, vfma(x, y.l, vfma(x, y.h, -p)));
}
/* x y, both dd (x.l y.l, ~u^2 of the product, left out) */
INLINE void acc_dd(acc_t *a, vdd x, vdd y)
{
    const vdd p = two_prod(x.h, y.h);
    acc_add(a, p.h, vfma(x.h, y.l, vfma(x.l, y.h, p.l)));
}
INLINE vdd acc_value(acc_t a) { return two_sum(a.s, a.c); }

/* zeta = (X W0) c0 for the rows i .. i + VW and h .. h + ht (ht <= 4): one chain over k per
   output, each x loaded once for the ht columns. */
INLINE void forward_tile(const int ht, int d_in, int H, int np, int i, int h, const double *restrict XT,
                         const double *restrict W0h, const double *restrict W0l, vdd c0, double *restrict Ah,
                         double *restrict Al)
{
    acc_t a[4];
    UNROLL for (int b = 0; b < ht; b++) a[b] = (acc_t){bc(0.0), bc(0.0)};
    for (int k = 0; k < d_in; k++) {
        const vd x = ld(XT + (size_t)k * np + i);
        UNROLL for (int b = 0; b < ht; b++) acc_xy(&a[b], x, bcdd(W0h[k * H + h + b], W0l[k * H + h + b]));
    }
    UNROLL for (int b = 0; b < ht; b++) {
        const size_t o = (size_t)(h + b) * np + i;
        stdd(Ah + o, Al + o, dd_mul(acc_value(a[b]), c0));
    }
}

/* gW0[k][h] for h .. h + ht (ht <= 4) = c0 sum over rows of x[i][k] dzeta[h][i], lane sums
   over rows, then lane_tree. */
INLINE void gw0_tile(const int ht, int H, int np, int k, int h, const double *restrict XT, const double *restrict Zh,
                     const double *restrict Zl, vdd c0, double *restrict gh, double *restrict gl)
{
    acc_t a[4];
    UNROLL for (int b = 0; b < ht; b++) a[b] = (acc_t){bc(0.0), bc(0.0)};
    for (int i = 0; i < np; i += VW) {
        const vd x = ld(XT + (size_t)k * np + i);
        UNROLL for (int b = 0; b < ht; b++) {
            const size_t o = (size_t)(h + b) * np + i;
            acc_xy(&a[b], x, ldd(Zh + o, Zl + o));
        }
    }
    UNROLL for (int b = 0; b < ht; b++) {
        const vdd g = dd_mul(lane_tree(acc_value(a[b])), c0);
        gh[k * H + h + b] = g.h[0];
        gl[k * H + h + b] = g.l[0];
    }
}

/* dzeta = da phi'(zeta), from a = phi(zeta) */
INLINE vdd dphi(const int phi, vdd a, vdd da)
{
    if (phi == PHI_TANH) {
        const vdd a2 = dd_sqr(a), s = fast_two_sum(bc(1.0), -a2.h); /* a^2 <= 1 */
        return dd_mul(da, fast_two_sum(s.h, s.l - a2.l));
    }
    if (phi == PHI_RELU) {
        const vi on = a.h > bc(0.0);
        return (vdd){pick(on, da.h, bc(0.0)), pick(on, da.l, bc(0.0))};
    }
    return da;
}

/* gW1 = c1 a^T R and, in place of a, dzeta = phi'(zeta) (R W1c^T), W1c = c1 W1; phi constant */
INLINE void backward(const int phi, int H, int D, int np, vdd c1, const double *restrict W1ch,
                     const double *restrict W1cl, const double *restrict Rh, const double *restrict Rl,
                     double *restrict Ah, double *restrict Al, double *restrict g1h, double *restrict g1l)
{
    for (int h = 0; h < H; h++) {
        for (int d = 0; d < D; d++) {
            acc_t s = {bc(0.0), bc(0.0)};
            for (int i = 0; i < np; i += VW) {
                const size_t o = (size_t)h * np + i, r = (size_t)d * np + i;
                acc_dd(&s, ldd(Ah + o, Al + o), ldd(Rh + r, Rl + r));
            }
            const vdd g = dd_mul(lane_tree(acc_value(s)), c1);
            g1h[h * D + d] = g.h[0];
            g1l[h * D + d] = g.l[0];
        }
        for (int i = 0; i < np; i += VW) {
            vdd da = dd_mul(ldd(Rh + i, Rl + i), bcdd(W1ch[h * D], W1cl[h * D]));
            for (int d = 1; d < D; d++) {
                const size_t r = (size_t)d * np + i;
                da = dd_add(da, dd_mul(ldd(Rh + r, Rl + r), bcdd(W1ch[h * D + d], W1cl[h * D + d])));
            }
            const size_t o = (size_t)h * np + i;
            stdd(Ah + o, Al + o, dphi(phi, ldd(Ah + o, Al + o), da));
        }
    }
}

typedef struct { /* one pixel's weights and gradients, dd as (hi, lo) arrays */
    double *W0h, *W0l, *W1h, *W1l, *g0h, *g0l, *g1h, *g1l, *W1ch, *W1cl;
} net_t;

/* The mean squared error over the n real rows of (XT, YT) (np rows, the padding zero) and,
   when grad, the gradients in net. Scratch: A (H x np), R (D x np), hi and lo each. */
static vdd pass(int d_in, int H, int D, int n, int np, const double *restrict XT, const double *restrict YT,
                const net_t *net, int phi, vdd c0, vdd c1, int grad, double *restrict Ah, double *restrict Al,
                double *restrict Rh, double *restrict Rl)
{
    for (int i = 0; i < np; i += VW) {
        int h = 0;
        for (; h + 4 <= H; h += 4) forward_tile(4, d_in, H, np, i, h, XT, net->W0h, net->W0l, c0, Ah, Al);
        if (H - h == 3) forward_tile(3, d_in, H, np, i, h, XT, net->W0h, net->W0l, c0, Ah, Al);
        if (H - h == 2) forward_tile(2, d_in, H, np, i, h, XT, net->W0h, net->W0l, c0, Ah, Al);
        if (H - h == 1) forward_tile(1, d_in, H, np, i, h, XT, net->W0h, net->W0l, c0, Ah, Al);
    }
    const size_t total = (size_t)H * np;
    if (phi == PHI_TANH) {
        tanh_n(total, Ah, Al);
    } else if (phi == PHI_RELU) {
        for (size_t i = 0; i < total; i += VW) {
            const vi on = ld(Ah + i) > bc(0.0);
            st(Ah + i, pick(on, ld(Ah + i), bc(0.0)));
            st(Al + i, pick(on, ld(Al + i), bc(0.0)));
        }
    }
    /* f = (a W1) c1, r = f - y, loss = sum r^2 / (n D); R = r 2 / (n D) = dL/df */
    const vdd nD = bcdd((double)n * D, 0.0), scale = dd_div(bcdd(2.0, 0.0), nD);
    vdd sq = bcdd(0.0, 0.0);
    for (int d = 0; d < D; d++) {
        acc_t s2 = {bc(0.0), bc(0.0)};
        for (int i = 0; i < np; i += VW) {
            acc_t f = {bc(0.0), bc(0.0)};
            for (int h = 0; h < H; h++) {
                const size_t o = (size_t)h * np + i;
                acc_dd(&f, ldd(Ah + o, Al + o), bcdd(net->W1h[h * D + d], net->W1l[h * D + d]));
            }
            const vdd r = dd_add_d(dd_mul(acc_value(f), c1), -ld(YT + (size_t)d * np + i));
            const vdd r2 = dd_sqr(r);
            acc_add(&s2, r2.h, r2.l);
            stdd(Rh + (size_t)d * np + i, Rl + (size_t)d * np + i, dd_mul(r, scale));
        }
        sq = dd_add(sq, lane_tree(acc_value(s2)));
    }
    const vdd loss = dd_div(sq, nD);
    if (!grad) return loss;

    if (phi == PHI_TANH) backward(PHI_TANH, H, D, np, c1, net->W1ch, net->W1cl, Rh, Rl, Ah, Al, net->g1h, net->g1l);
    else if (phi == PHI_RELU) backward(PHI_RELU, H, D, np, c1, net->W1ch, net->W1cl, Rh, Rl, Ah, Al, net->g1h, net->g1l);
    else backward(PHI_IDENTITY, H, D, np, c1, net->W1ch, net->W1cl, Rh, Rl, Ah, Al, net->g1h, net->g1l);
    for (int k = 0; k < d_in; k++) {
        int h = 0;
        for (; h + 4 <= H; h += 4) gw0_tile(4, H, np, k, h, XT, Ah, Al, c0, net->g0h, net->g0l);
        if (H - h == 3) gw0_tile(3, H, np, k, h, XT, Ah, Al, c0, net->g0h, net->g0l);
        if (H - h == 2) gw0_tile(2, H, np, k, h, XT, Ah, Al, c0, net->g0h, net->g0l);
        if (H - h == 1) gw0_tile(1, H, np, k, h, XT, Ah, Al, c0, net->g0h, net->g0l);
    }
    return loss;
}

/* ---- optimisers (contract/optimizers.py), element-wise over np_w weights (a multiple of VW;
   the padding's gradient is 0, so its weights and state stay 0) ---- */
static void gd_update(int np_w, vdd lr, const double *gh, const double *gl, double *wh, double *wl)
{
    for (int i = 0; i < np_w; i += VW)
        stdd(wh + i, wl + i, dd_add(ldd(wh + i, wl + i), dd_neg(dd_mul(ldd(gh + i, gl + i), lr))));
}
/* m <- beta m + g; W <- W - lr m */
static void momentum_update(int np_w, vdd beta, vdd lr, const double *gh, const double *gl, double *mh, double *ml,
                            double *wh, double *wl)
{
    for (int i = 0; i < np_w; i += VW) {
        const vdd m = dd_add(dd_mul(ldd(mh + i, ml + i), beta), ldd(gh + i, gl + i));
        stdd(mh + i, ml + i, m);
        stdd(wh + i, wl + i, dd_add(ldd(wh + i, wl + i), dd_neg(dd_mul(m, lr))));
    }
}
/* m <- beta1 m + (1 - beta1) g; v <- beta2 v + (1 - beta2) g^2;
   W <- W - step (m / (sqrt(v) inv_bc2 + eps)), step = lr / (1 - beta1^t), inv_bc2 = 1 / sqrt(1 - beta2^t) */
static void adam_update(int np_w, vdd beta1, vdd beta2, vdd omb1, vdd omb2, vdd step, vdd inv_bc2, vdd eps,
                        const double *gh, const double *gl, double *mh, double *ml, double *vh, double *vl,
                        double *wh, double *wl)
{
    for (int i = 0; i < np_w; i += VW) {
        const vdd g = ldd(gh + i, gl + i);
        const vdd m = dd_add(dd_mul(ldd(mh + i, ml + i), beta1), dd_mul(g, omb1));
        const vdd v = dd_add(dd_mul(ldd(vh + i, vl + i), beta2), dd_mul(dd_sqr(g), omb2));
        stdd(mh + i, ml + i, m);
        stdd(vh + i, vl + i, v);
        const vdd q = dd_div(m, dd_add(dd_mul(dd_sqrt(v), inv_bc2), eps));
        stdd(wh + i, wl + i, dd_add(ldd(wh + i, wl + i), dd_neg(dd_mul(q, step))));
    }
}

static size_t round_up(size_t n) { return (n + VW - 1) / VW * VW; }

/* Train pixels [0, P) (fused_train_dd's arguments); losses: NULL or (P, steps, 2) hi, lo. */
static int train(int P, int steps, int d_in, int H, int D, int n, int np, const double *XT, const double *YT,
                 int mb, int mbp, const double *XmbT, const double *YmbT, const double *W0init,
                 const double *W1init, const double *lrs, const double *offsets, int offset_every_step, int phi,
                 double c0h, double c0l, double c1h, double c1l, int opt, const double *hyper, double *stats,
                 int64_t *diverged, double *losses)
{
    if (opt != OPT_GD && opt != OPT_MOMENTUM && opt != OPT_ADAM) return -2;
    if (opt != OPT_GD && hyper == NULL) return -2;
    if (np % VW || (mb && mbp % VW)) return -3;
    const size_t rows = np > mbp ? np : mbp, n0 = round_up((size_t)d_in * H), n1 = round_up((size_t)H * D);
    /* hi and lo arrays, each a whole number of cache lines (64-byte aligned buffer) */
    const size_t sizes[] = {
        H * rows, H * rows, D * rows, D * rows,          /* Ah Al Rh Rl */
        (size_t)d_in * np, (size_t)D * np,               /* X, Y */
        (size_t)d_in * mbp, (size_t)D * mbp,             /* a minibatch's X, Y */
        n0, n0, n1, n1, n0, n0, n1, n1, n1, n1,          /* W0 W1 gW0 gW1 c1 W1 */
        n0, n0, n1, n1, n0, n0, n1, n1};                 /* optimiser state: m0 m1 v0 v1 */
    enum { N_ARRAYS = sizeof sizes / sizeof sizes[0] };
    double *arr[N_ARRAYS];
    size_t total = 0;
    for (int a = 0; a < N_ARRAYS; a++) total += round_up(sizes[a]);
    double *buf = aligned_alloc(64, sizeof(double) * total);
    if (!buf) return -1;
    memset(buf, 0, sizeof(double) * total); /* the weights' padding stays 0 */
    for (int a = 0, at = 0; a < N_ARRAYS; at += round_up(sizes[a]), a++) arr[a] = buf + at;
    double *Ah = arr[0], *Al = arr[1], *Rh = arr[2], *Rl = arr[3], *Xa = arr[4], *Ya = arr[5], *Xm = arr[6];
    double *Ym = arr[7];
    net_t net = {arr[8], arr[9], arr[10], arr[11], arr[12], arr[13], arr[14], arr[15], arr[16], arr[17]};
    double *m0h = arr[18], *m0l = arr[19], *m1h = arr[20], *m1l = arr[21];
    double *v0h = arr[22], *v0l = arr[23], *v1h = arr[24], *v1l = arr[25];
    memcpy(Xa, XT, sizeof(double) * d_in * np);
    memcpy(Ya, YT, sizeof(double) * D * np);
    const vdd c0 = bcdd(c0h, c0l), c1 = bcdd(c1h, c1l), one = bcdd(1.0, 0.0);
    for (int p = 0; p < P; p++) {
        for (size_t i = 0; i < n0; i++) net.W0h[i] = net.W0l[i] = m0h[i] = m0l[i] = v0h[i] = v0l[i] = 0.0;
        for (size_t i = 0; i < n1; i++) net.W1h[i] = net.W1l[i] = m1h[i] = m1l[i] = v1h[i] = v1l[i] = 0.0;
        memcpy(net.W0h, W0init, sizeof(double) * d_in * H);
        memcpy(net.W1h, W1init, sizeof(double) * H * D);
        const double *lr = lrs + 4 * (size_t)p; /* [layer][hi, lo] */
        const vdd lr0 = bcdd(lr[0], lr[1]), lr1 = bcdd(lr[2], lr[3]);
        const vdd off = offsets ? bcdd(offsets[2 * p], offsets[2 * p + 1]) : bcdd(0.0, 0.0);
        if (offsets && !offset_every_step)
            for (size_t i = 0; i < n0; i += VW) stdd(net.W0h + i, net.W0l + i, dd_add(ldd(net.W0h + i, net.W0l + i), off));
        const double *hp = hyper ? hyper + 2 * N_HYPER * (size_t)p : NULL; /* [column][hi, lo] */
        const vdd beta1 = hp ? bcdd(hp[0], hp[1]) : bcdd(0.0, 0.0), beta2 = hp ? bcdd(hp[2], hp[3]) : bcdd(0.0, 0.0);
        const vdd eps = hp ? bcdd(hp[4], hp[5]) : bcdd(0.0, 0.0);
        const vdd omb1 = dd_add(one, dd_neg(beta1)), omb2 = dd_add(one, dd_neg(beta2));
        vdd b1 = one, b2 = one; /* beta1^t, beta2^t */
        loss_statistics stats_p = loss_statistics_start(steps);
        for (int t = 0; t < steps; t++) {
            if (offsets && offset_every_step)
                for (size_t i = 0; i < n0; i += VW)
                    stdd(net.W0h + i, net.W0l + i, dd_add(ldd(net.W0h + i, net.W0l + i), off));
            for (size_t i = 0; i < n1; i += VW)
                stdd(net.W1ch + i, net.W1cl + i, dd_mul(ldd(net.W1h + i, net.W1l + i), c1));
            vdd loss;
            if (mb == 0) {
                loss = pass(d_in, H, D, n, np, Xa, Ya, &net, phi, c0, c1, 1, Ah, Al, Rh, Rl);
            } else {
                loss = pass(d_in, H, D, n, np, Xa, Ya, &net, phi, c0, c1, 0, Ah, Al, Rh, Rl);
                memcpy(Xm, XmbT + (size_t)t * d_in * mbp, sizeof(double) * d_in * mbp);
                memcpy(Ym, YmbT + (size_t)t * D * mbp, sizeof(double) * D * mbp);
                pass(d_in, H, D, mb, mbp, Xm, Ym, &net, phi, c0, c1, 1, Ah, Al, Rh, Rl);
            }
            if (opt == OPT_GD) {
                gd_update(n0, lr0, net.g0h, net.g0l, net.W0h, net.W0l);
                gd_update(n1, lr1, net.g1h, net.g1l, net.W1h, net.W1l);
            } else if (opt == OPT_MOMENTUM) { /* beta = hyper column 0 */
                momentum_update(n0, beta1, lr0, net.g0h, net.g0l, m0h, m0l, net.W0h, net.W0l);
                momentum_update(n1, beta1, lr1, net.g1h, net.g1l, m1h, m1l, net.W1h, net.W1l);
            } else {
                b1 = dd_mul(b1, beta1);
                b2 = dd_mul(b2, beta2);
                const vdd inv_bc2 = dd_div(one, dd_sqrt(dd_add(one, dd_neg(b2))));
                const vdd step0 = dd_div(lr0, dd_add(one, dd_neg(b1))), step1 = dd_div(lr1, dd_add(one, dd_neg(b1)));
                adam_update(n0, beta1, beta2, omb1, omb2, step0, inv_bc2, eps, net.g0h, net.g0l, m0h, m0l, v0h, v0l,
                            net.W0h, net.W0l);
                adam_update(n1, beta1, beta2, omb1, omb2, step1, inv_bc2, eps, net.g1h, net.g1l, m1h, m1l, v1h, v1l,
                            net.W1h, net.W1l);
            }
            if (losses) {
                losses[((size_t)p * steps + t) * 2] = loss.h[0];
                losses[((size_t)p * steps + t) * 2 + 1] = loss.l[0];
            }
            /* the statistics of fused_cpu.c, of the loss rounded to float64 */
            loss_statistics_step(&stats_p, loss.h[0] + loss.l[0], t);
        }
        loss_statistics_write(&stats_p, stats + N_STATS * (size_t)p, diverged + p);
    }
    free(buf);
    return 0;
}

/* Train pixels [0, P): returns 0, or -1 when out of memory (-2: unknown optimiser or no
   hyperparameters; -3: rows not padded to a multiple of 8).
   XT (d_in, np), YT (D, np): X and Y transposed (not scaled), rows zero-padded to np;
   minibatch (mb > 0 rows, padded to mbp): XmbT (steps, d_in, mbp), YmbT (steps, D, mbp).
   W0init (d_in, H), W1init (H, D): float64. lrs (P, 2, 2): each pixel's learning rate of
   layer 0 and 1 as (hi, lo); offsets (P, 2) (hi, lo) or NULL; c0, c1: the layer constants
   (zeta = (X W0) c0, f = (a W1) c1) as (hi, lo); hyper (P, N_HYPER, 2) (hi, lo) or NULL for
   gd (momentum: beta; adam: beta1, beta2, eps). stats (P, N_STATS), diverged (P,). */
int fused_train_dd(int P, int steps, int d_in, int H, int D, int n, int np, const double *XT, const double *YT,
                   int mb, int mbp, const double *XmbT, const double *YmbT, const double *W0init,
                   const double *W1init, const double *lrs, const double *offsets, int offset_every_step, int phi,
                   double c0h, double c0l, double c1h, double c1l, int opt, const double *hyper, double *stats,
                   int64_t *diverged)
{
    return train(P, steps, d_in, H, D, n, np, XT, YT, mb, mbp, XmbT, YmbT, W0init, W1init, lrs, offsets,
                 offset_every_step, phi, c0h, c0l, c1h, c1l, opt, hyper, stats, diverged, NULL);
}

/* fused_train_dd, and every step's loss (P, steps, 2) as (hi, lo), for the tests */
int fused_losses_dd(int P, int steps, int d_in, int H, int D, int n, int np, const double *XT, const double *YT,
                    int mb, int mbp, const double *XmbT, const double *YmbT, const double *W0init,
                    const double *W1init, const double *lrs, const double *offsets, int offset_every_step, int phi,
                    double c0h, double c0l, double c1h, double c1l, int opt, const double *hyper, double *stats,
                    int64_t *diverged, double *losses)
{
    return train(P, steps, d_in, H, D, n, np, XT, YT, mb, mbp, XmbT, YmbT, W0init, W1init, lrs, offsets,
                 offset_every_step, phi, c0h, c0l, c1h, c1l, opt, hyper, stats, diverged, losses);
}
