/* fma_probe.c - the CPU's FP32 FMA throughput per core, measured: independent FMA chains on the widest
 * vectors the CPU runs, so that the benchmarks can print a fraction of a peak they measured instead
 * of one they assumed.  Prints "gflops=<per core> lanes=<fp32 lanes of the vectors used>".
 * The throughput is the peak itself; no clock is derived from it, since that would need the number
 * and width of the FMA pipes, which differ between cores of the same ISA (two 512-bit pipes on many
 * Xeons, one 512-bit or two 256-bit on AMD Zen 4).
 *   cc -O2 fma_probe.c -o fma_probe && ./fma_probe */
#include <stdio.h>
#include <time.h>

#define NACC 12

/* The thread's CPU time, not the wall clock: on a shared machine the probe's time slices are what the
 * core gave it, and the peak is the same whether or not other processes took turns (wall time
 * halves it when one other busy process shares the core). */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define PROBE(NAME, BYTES, TARGET)                                                          \
    __attribute__((target(TARGET))) static double NAME(long iters) {                       \
        typedef float v __attribute__((vector_size(BYTES)));                                 \
        v acc[NACC], m = (v){0} + 0.999999f, c = (v){0} + 1e-6f;                               \
        for (int k = 0; k < NACC; k++) acc[k] = (v){0} + (float)k;                            \
        double t0 = now();                                                                   \
        for (long i = 0; i < iters; i++) {                                                   \
            _Pragma("GCC unroll 12") for (int k = 0; k < NACC; k++)                           \
                acc[k] = acc[k] * m + c;                                                     \
        }                                                                                    \
        double dt = now() - t0;                                                              \
        v s = acc[0];                                                                        \
        for (int k = 1; k < NACC; k++) s += acc[k];                                          \
        if (s[0] == 12345.f) puts("");                                                       \
        return 2.0 * NACC * (BYTES / 4) * (double)iters / dt / 1e9;                          \
    }

PROBE(probe512, 64, "avx512f,fma")
PROBE(probe256, 32, "avx2,fma")

int main(void) {
    __builtin_cpu_init();
    int w512 = __builtin_cpu_supports("avx512f"), w256 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!w256) { puts("gflops=0 lanes=0"); return 0; }
    double best = 0;
    int lanes = w512 ? 16 : 8;
    for (int r = 0; r < 5; r++) {
        double g = w512 ? probe512(20000000) : probe256(20000000);
        if (g > best) best = g;
    }
    printf("gflops=%.1f lanes=%d\n", best, lanes);
    return 0;
}
