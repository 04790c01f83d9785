# GEMM (csrc/gemm.c).  Arrays arrive validated and with unit stride along one axis; the caller
# passes the leading dimensions and transpose flags it derived from the strides.

cdef extern from "fnn_impl.h" nogil:
    void fnn_sgemm_ex(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                      size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                      const float *bias, int act, float act_alpha, int nt)
    void fnn_dgemm_ex(int ta, int tb, size_t m, size_t n, size_t k, double alpha, const double *a,
                      size_t lda, const double *b, size_t ldb, double beta, double *c, size_t ldc,
                      const double *bias, int act, double act_alpha, int nt)
    size_t fnn_gemm_blocks[6]
    double fnn_sgemm_ukr_rate(int tile, size_t k, double seconds)
    void fnn_sgemm_ref(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                       size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
    void fnn_dgemm_ref(int ta, int tb, size_t m, size_t n, size_t k, double alpha, const double *a,
                       size_t lda, const double *b, size_t ldb, double beta, double *c, size_t ldc)


def gemm(bint ta, bint tb, size_t m, size_t n, size_t k, double alpha,
         const floating[:, ::1] a, size_t lda, const floating[:, ::1] b, size_t ldb, double beta,
         floating[:, ::1] c, size_t ldc, bint reference=False):
    """C = alpha*op(A)*op(B) + beta*C on row-major buffers; m, n, k >= 1 (checked by the caller)."""
    cdef int nt = fnn_get_num_threads()
    if floating is float:
        if reference:
            with nogil:
                fnn_sgemm_ref(ta, tb, m, n, k, <float>alpha, &a[0, 0], lda, &b[0, 0], ldb,
                              <float>beta, &c[0, 0], ldc)
        else:
            with nogil:
                fnn_sgemm_ex(ta, tb, m, n, k, <float>alpha, &a[0, 0], lda, &b[0, 0], ldb,
                             <float>beta, &c[0, 0], ldc, NULL, 0, 0, nt)
    else:
        if reference:
            with nogil:
                fnn_dgemm_ref(ta, tb, m, n, k, alpha, &a[0, 0], lda, &b[0, 0], ldb, beta, &c[0, 0], ldc)
        else:
            with nogil:
                fnn_dgemm_ex(ta, tb, m, n, k, alpha, &a[0, 0], lda, &b[0, 0], ldb, beta, &c[0, 0], ldc,
                             NULL, 0, 0, nt)


def _set_gemm_blocks(size_t mc=0, size_t kc=0, size_t nc=0, size_t tile=0, size_t direct_b=0,
                     size_t no_workspace=0):
    """Override the GEMM cache blocks (0 = the kernel's own); for tuning runs and tests, not thread-safe.
    tile: 1 the wide register tile, 2 its narrow rows, 3 its thin columns (one vector), 4 both narrow
    and thin (where the kernel has them).  no_workspace=1 runs every product as if its packing buffers
    could not be allocated."""
    fnn_gemm_blocks[0] = mc
    fnn_gemm_blocks[1] = kc
    fnn_gemm_blocks[2] = nc
    fnn_gemm_blocks[3] = tile
    fnn_gemm_blocks[4] = direct_b
    fnn_gemm_blocks[5] = no_workspace


def _ukr_rate(int tile=0, size_t k=256, double seconds=0.3):
    """GFLOP/s of the active float32 micro-kernel with its operands in L1 (tile 0 wide, 1 narrow):
    the ceiling of the blocked GEMM on one core, for the benchmarks."""
    cdef double r
    with nogil:
        r = fnn_sgemm_ukr_rate(tile, k, seconds)
    return r
