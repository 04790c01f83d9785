/* gemm_timer.c - times one float32 product of the blocked GEMM (fnn_sgemm_ex, an internal entry point)
 * from C, with no Python and no NumPy around it: what the GEMM commits' before/after figures come from.
 *   make -C csrc && cc -O2 bench/gemm_timer.c -Icsrc csrc/build/libfastnn.a -fopenmp -lm -o gemm_timer
 *   ./gemm_timer M N K TA TB [THREADS [MC KC NC TILE DIRECT]]
 * Prints the best GFLOP/s of 15 rounds of about 1 GFLOP each.  TA/TB: 1 = operand transposed.  THREADS:
 * default 1.  MC..DIRECT: the tuning overrides of fnn_gemm_blocks (0 = the kernel's own; TILE 1 wide,
 * 2 narrow; DIRECT rows + 1 up to which B is read in place, 1 = never).  A_OFF, B_OFF, C_OFF in the
 * environment: bytes past a 64-byte cache line at which that operand starts (NumPy's arrays: 16).
 * To compare two builds, link each against its own libfastnn.a (make -C csrc BUILD=DIR at each commit)
 * and alternate the two binaries on a shared machine. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fnn_impl.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* n values in [-0.5, 0.5] starting `getenv(off)` bytes past a 64-byte line (the base is kept in *base) */
static float *operand(size_t n, const char *off, void **base) {
    size_t skip = getenv(off) ? (size_t)atoi(getenv(off)) % 64 : 0;
    char *p = aligned_alloc(64, (n * sizeof(float) + 128) / 64 * 64);
    if (!p) return NULL;
    *base = p;
    float *v = (float *)(p + skip / sizeof(float) * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return v;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s M N K TA TB [THREADS [MC KC NC TILE DIRECT]]\n", argv[0]);
        return 2;
    }
    const size_t m = (size_t)atol(argv[1]), n = (size_t)atol(argv[2]), k = (size_t)atol(argv[3]);
    const int ta = atoi(argv[4]), tb = atoi(argv[5]), nt = argc > 6 ? atoi(argv[6]) : 1;
    if (!m || !n || !k || nt < 1) {
        fprintf(stderr, "M, N, K and THREADS must be positive\n");
        return 2;
    }
    for (int i = 0; i < 5 && 7 + i < argc; i++) fnn_gemm_blocks[i] = (size_t)atol(argv[7 + i]);
    void *ba, *bb, *bc;
    float *a = operand(m * k, "A_OFF", &ba), *b = operand(k * n, "B_OFF", &bb), *c = operand(m * n, "C_OFF", &bc);
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    const size_t lda = ta ? m : k, ldb = tb ? k : n;
    const double flop = 2.0 * (double)m * (double)n * (double)k;
    const int reps = flop < 1e9 / 3 ? (int)(1e9 / flop) : 3;
    double best = 1e300;
    for (int r = 0; r < 15; r++) {
        double t = now();
        for (int i = 0; i < reps; i++)
            fnn_sgemm_ex(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, n, NULL, FNN_ACT_LINEAR, 0, nt);
        t = now() - t;
        if (t < best) best = t;
    }
    printf("%.1f\n", flop * reps / best / 1e9);
    free(ba);
    free(bb);
    free(bc);
    return 0;
}
