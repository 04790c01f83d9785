/* gemm.c - row-major GEMM for float and double: packing, cache blocking and OpenMP around the
 * register-blocked micro-kernels of kernels/ (the active one is chosen from the CPU at run time).
 *
 * The packing buffers come from a per-calling-thread workspace that only grows, so repeated calls
 * of the same shapes (a training loop) allocate nothing.
 */
#include "fnn_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Products with at most this many rows read a row-major B in place instead of packing it (gemm_t.h,
 * direct_b_): rows of B on cache lines, or not. */
#ifndef FNN_DIRECT_B_MAX_M
#define FNN_DIRECT_B_MAX_M 64
#endif
#ifndef FNN_DIRECT_B_MAX_M_UNALIGNED
#define FNN_DIRECT_B_MAX_M_UNALIGNED 8
#endif
#define FNN_MAX_TILE (16 * 32) /* >= mr * nr of every registered kernel */

/* Block sizes (mc, kc, nc) that override the kernel's table when non-zero: for tuning runs only. */
size_t fnn_gemm_blocks[6]; /* mc, kc, nc, tile (1 wide, 2 narrow, 3 thin, 4 both), direct-B rows + 1,
                            * no workspace */

/* ---- per-thread packing workspace (repeated shapes allocate nothing) ---------------- */
static float *fnn_sgemm_workspace(size_t n) {
    return n > SIZE_MAX / sizeof(float) ? NULL : fnn_thread_buffer(FNN_TBUF_GEMM, n * sizeof(float));
}
static double *fnn_dgemm_workspace(size_t n) {
    return n > SIZE_MAX / sizeof(double) ? NULL : fnn_thread_buffer(FNN_TBUF_GEMM, n * sizeof(double));
}

#define FNN_T float
#define FNN_P s
#define KERNEL fnn_sgemm_kernel
#define UKR_FN fnn_sgemm_ukr_fn
#define PACKT_FN fnn_spackt_fn
#define GEMV_FN fnn_sgemv_fn
#include "gemm_t.h"
#undef GEMV_FN
#undef FNN_T
#undef FNN_P
#undef KERNEL
#undef UKR_FN
#undef PACKT_FN

#define FNN_T double
#define FNN_P d
#define KERNEL fnn_dgemm_kernel
#define UKR_FN fnn_dgemm_ukr_fn
#define PACKT_FN fnn_dpackt_fn
#define GEMV_FN fnn_dgemv_fn
#include "gemm_t.h"
#undef GEMV_FN
#undef FNN_T
#undef FNN_P
#undef KERNEL
#undef UKR_FN
#undef PACKT_FN

/* ---- public entry points ------------------------------------------------------------ */
void fnn_sgemm(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
               const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    fnn_sgemm_ex(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, FNN_ACT_LINEAR, 0,
                 fnn_get_num_threads());
}

void fnn_dgemm(int ta, int tb, size_t m, size_t n, size_t k, double alpha, const double *a, size_t lda,
               const double *b, size_t ldb, double beta, double *c, size_t ldc) {
    fnn_dgemm_ex(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, FNN_ACT_LINEAR, 0,
                 fnn_get_num_threads());
}

/* ---- the micro-kernel's own ceiling ------------------------------------------------------------
 * GFLOP/s of the active float micro-kernel (tile: 0 wide, 1 narrow) on operands that stay in L1:
 * one packed B panel (k x nr) against 16 packed A panels, repeated for about `seconds`.  What the
 * blocked GEMM could reach if packing and memory cost nothing; the benchmarks print it beside the
 * FMA peak.  Returns 0 when the buffers cannot be allocated. */
double fnn_sgemm_ukr_rate(int tile, size_t k, double seconds) {
    const fnn_sgemm_kernel *kr = fnn_sgemm_kernel_active();
    const int narrow = tile == 1 && kr->mr2;
    const size_t mr = (size_t)(narrow ? kr->mr2 : kr->mr), nr = (size_t)kr->nr, panels = 16;
    fnn_sgemm_ukr_fn ukr = narrow ? kr->ukr2 : kr->ukr;
    if (k == 0) k = 1;
    float *a = fnn_aligned_alloc(panels * mr * k * sizeof(float));
    float *b = fnn_aligned_alloc(k * nr * sizeof(float));
    float *c = fnn_aligned_alloc(panels * mr * nr * sizeof(float));
    double rate = 0;
    if (a && b && c) {
        for (size_t i = 0; i < panels * mr * k; i++) a[i] = (float)(i % 7) * 1e-3f;
        for (size_t i = 0; i < k * nr; i++) b[i] = (float)(i % 5) * 1e-3f;
        struct timespec t0, t1;
        long reps = 0;
        double dt = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            for (size_t p = 0; p < panels; p++) ukr(k, a + p * mr * k, b, nr, c + p * mr * nr, nr, 0.0f);
            reps++;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        } while (dt < seconds);
        rate = 2.0 * (double)(mr * nr * k * panels) * (double)reps / dt / 1e9;
    }
    fnn_aligned_free(a);
    fnn_aligned_free(b);
    fnn_aligned_free(c);
    return rate;
}
