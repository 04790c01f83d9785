/* gemm.c - row-major GEMM for float and double: packing, cache blocking and OpenMP around the
 * register-blocked micro-kernels of kernels/ (the active one is chosen from the CPU at run time).
 *
 * The packing buffers come from a per-calling-thread workspace that only grows, so repeated calls
 * of the same shapes (a training loop) allocate nothing.
 */
#include "fnn_impl.h"

#include <stdlib.h>
#include <threads.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Products with at most this many rows read a row-major B in place instead of packing it. */
#ifndef FNN_DIRECT_B_MAX_M
#define FNN_DIRECT_B_MAX_M 64
#endif
#define FNN_MAX_TILE (16 * 32) /* >= mr * nr of every registered kernel */

/* Block sizes (mc, kc, nc) that override the kernel's table when non-zero: for tuning runs only. */
size_t fnn_gemm_blocks[5]; /* mc, kc, nc, tile (1 wide, 2 narrow), direct-B rows + 1 */

/* ---- per-thread packing workspace ----------------------------------------------- */
typedef struct { void *p; size_t bytes; } workspace;
static tss_t ws_key;
static once_flag ws_once = ONCE_FLAG_INIT;
static int ws_ok;

static void ws_free(void *w) {
    if (w) { fnn_aligned_free(((workspace *)w)->p); free(w); }
}
static void ws_init(void) { ws_ok = tss_create(&ws_key, ws_free) == thrd_success; }

static void *gemm_workspace_bytes(size_t bytes) {
    call_once(&ws_once, ws_init);
    if (!ws_ok) return NULL;
    workspace *w = tss_get(ws_key);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w || tss_set(ws_key, w) != thrd_success) { free(w); return NULL; }
    }
    if (w->bytes < bytes) {
        fnn_aligned_free(w->p);
        w->p = fnn_aligned_alloc(bytes);
        w->bytes = w->p ? bytes : 0;
    }
    return w->p;
}

static float *fnn_sgemm_workspace(size_t n) {
    return n > SIZE_MAX / sizeof(float) ? NULL : gemm_workspace_bytes(n * sizeof(float));
}
static double *fnn_dgemm_workspace(size_t n) {
    return n > SIZE_MAX / sizeof(double) ? NULL : gemm_workspace_bytes(n * sizeof(double));
}

#define FNN_T float
#define FNN_P s
#define KERNEL fnn_sgemm_kernel
#define UKR_FN fnn_sgemm_ukr_fn
#define PACKT_FN fnn_spackt_fn
#include "gemm_t.h"
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
#include "gemm_t.h"
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
