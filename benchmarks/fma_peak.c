/* Float64 FMA throughput of one core: a loop of independent multiply-adds and nothing else.

   Compiled by benchmarks/peaks.py at benchmark time (-O2 -march=native -ffp-contract=fast)
   and called from one Python thread per core (ctypes releases the GIL); the measured
   peak is the rate of all the threads together.

   The accumulators are GCC vectors of the widest registers -march=native allows (zmm
   with AVX-512, ymm with AVX/AVX2, 128-bit otherwise): wider GCC vectors would be split
   through memory. acc * m + a contracts to one vector FMA. To hide the FMA latency each
   FMA port needs latency (4-5 cycles) independent chains in flight, 2 ports x 5 = 10 at
   least; the chain count fills the register file without spilling: 16 of 32 registers
   with AVX-512 or NEON, 14 of 16 with AVX (two more hold m and a), 12 of 16 with SSE2. */

#if defined(__AVX512F__)
#define VEC_BYTES 64
#define CHAINS 16
#define ISA "avx512f zmm"
#elif defined(__AVX__)
#define VEC_BYTES 32
#define CHAINS 14
#define ISA "avx ymm"
#elif defined(__aarch64__)
#define VEC_BYTES 16
#define CHAINS 16
#define ISA "neon q"
#else
#define VEC_BYTES 16
#define CHAINS 12
#define ISA "sse2 xmm"
#endif

typedef double vec __attribute__((vector_size(VEC_BYTES)));
#define LANES (VEC_BYTES / 8)

/* Floating-point operations of one iteration: CHAINS FMAs of LANES doubles, 2 each. */
int fma_peak_flops_per_iteration(void) { return CHAINS * LANES * 2; }

const char *fma_peak_isa(void) { return ISA; }

int fma_peak_chains(void) { return CHAINS; }

int fma_peak_lanes(void) { return LANES; }

#define STEP(x) x = x * m + a

/* iterations x CHAINS vector FMAs. m and a are arguments, so nothing folds; with m just
   below 1 and a small the accumulators stay normal numbers (no denormal slow path, no
   overflow). Returns their sum, so the loop is not dead code. */
double fma_peak_run(long iterations, double mult, double add)
{
    vec m = (vec){0} + mult, a = (vec){0} + add;
    vec c0 = (vec){0} + 0.50, c1 = c0 + 0.01, c2 = c0 + 0.02, c3 = c0 + 0.03, c4 = c0 + 0.04;
    vec c5 = c0 + 0.05, c6 = c0 + 0.06, c7 = c0 + 0.07, c8 = c0 + 0.08, c9 = c0 + 0.09;
    vec c10 = c0 + 0.10, c11 = c0 + 0.11;
#if CHAINS >= 14
    vec c12 = c0 + 0.12, c13 = c0 + 0.13;
#endif
#if CHAINS >= 16
    vec c14 = c0 + 0.14, c15 = c0 + 0.15;
#endif
    for (long i = 0; i < iterations; i++) {
        STEP(c0); STEP(c1); STEP(c2); STEP(c3); STEP(c4); STEP(c5);
        STEP(c6); STEP(c7); STEP(c8); STEP(c9); STEP(c10); STEP(c11);
#if CHAINS >= 14
        STEP(c12); STEP(c13);
#endif
#if CHAINS >= 16
        STEP(c14); STEP(c15);
#endif
    }
    vec s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
#if CHAINS >= 14
    s += c12 + c13;
#endif
#if CHAINS >= 16
    s += c14 + c15;
#endif
    double total = 0.0;
    for (int k = 0; k < LANES; k++)
        total += s[k];
    return total;
}
