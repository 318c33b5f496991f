/* The per-pixel statistics of one loss trajectory, a step at a time: the C kernels' one copy
   (fused_cpu.c, fused_cpu_dd.c) of the rules that trainability/contract/statistics.py states.
   Each step's loss v_t (float64) gives u_t = v_t / v_0, clamped at MAX_RATIO (a non-finite loss
   counts as MAX_RATIO; NaN stays NaN, as torch.clamp); the statistics are v_0, the last and the
   least loss, sum u, sum 1/u, the mean of u over the last TAIL_STEPS steps and the first step at
   MAX_RATIO (-1: never). MAX_RATIO, TAIL_STEPS and the columns STAT_* come as -D definitions
   (trainability/kernels/c_library.py). */
#ifndef TRAINABILITY_LOSS_STATISTICS_H
#define TRAINABILITY_LOSS_STATISTICS_H
#include <stdint.h>

typedef struct {
    double v0, vfinal, vmin, sum_u, sum_inv, tail;
    int64_t diverged;
    int tail_from, tail_steps;
} loss_statistics;

static inline loss_statistics loss_statistics_start(int steps)
{
    const int tail_steps = steps < TAIL_STEPS ? steps : TAIL_STEPS;
    loss_statistics s = {0.0, 0.0, __builtin_inf(), 0.0, 0.0, 0.0, -1, steps - tail_steps, tail_steps};
    return s;
}

static inline void loss_statistics_step(loss_statistics *s, double v, int t)
{
    if (!__builtin_isfinite(v)) v = MAX_RATIO;
    if (t == 0) s->v0 = v;
    double u = v / s->v0;
    u = u > MAX_RATIO ? MAX_RATIO : u; /* NaN stays NaN, as torch.clamp */
    s->sum_u += u;
    s->sum_inv += 1.0 / u;
    if (t >= s->tail_from) s->tail += u;
    s->vmin = v < s->vmin ? v : s->vmin;
    if (u >= MAX_RATIO && s->diverged < 0) s->diverged = t;
    s->vfinal = v;
}

/* The statistics into one pixel's row of the (P, N_STATS) output and its divergence step. */
static inline void loss_statistics_write(const loss_statistics *s, double *row, int64_t *diverged)
{
    row[STAT_LOSS_INITIAL] = s->v0;
    row[STAT_LOSS_FINAL] = s->vfinal;
    row[STAT_LOSS_MIN] = s->vmin;
    row[STAT_SUM_U] = s->sum_u;
    row[STAT_SUM_INV_U] = s->sum_inv;
    row[STAT_TAIL_MEAN_U] = s->tail / s->tail_steps;
    *diverged = s->diverged;
}
#endif
