/* gemv_t.h - body of the small-M kernel, included once per (ISA, dtype) by the files beside it:
 * C[m x n] = alpha * A * B + beta * C for m <= FNN_GEMV_MAX_M rows, A (m x k, row stride lda) and
 * B (k x n, row stride ldb) both as stored (not transposed), C not read when beta == 0.
 *
 * With so few rows the product is a stream over B: each row of B is read once, contiguously, and
 * added into the rows of C, four rows of B at a time (the sums run over k in order, four terms per
 * step).  A blocked GEMM would pad A to a full register tile (8 rows for one) and pack B first.
 *
 * Define before including: GEMV_T, GEMV_NAME, GEMV_ATTR (target attribute), GEMV_VBYTES.
 */
#define GEMV_L ((int)(GEMV_VBYTES / sizeof(GEMV_T)))
#define GEMV_VU FNN_CAT(GEMV_NAME, _uvec)
typedef GEMV_T GEMV_VU __attribute__((vector_size(GEMV_VBYTES), aligned(sizeof(GEMV_T)), may_alias));

GEMV_ATTR void GEMV_NAME(size_t m, size_t n, size_t k, GEMV_T alpha, const GEMV_T *FNN_RESTRICT a, size_t lda,
                         const GEMV_T *FNN_RESTRICT b, size_t ldb, GEMV_T beta, GEMV_T *FNN_RESTRICT c,
                         size_t ldc, GEMV_T *FNN_RESTRICT acc) {
    /* acc: m x n scratch (the caller's), so that C is written once, after the k loop */
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) acc[i * n + j] = 0;
    const size_t nv = n / GEMV_L * GEMV_L;
    size_t p = 0;
    for (; p + 4 <= k; p += 4) {
        const GEMV_T *b0 = b + p * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
        for (size_t i = 0; i < m; i++) {
            const GEMV_T x0 = a[i * lda + p], x1 = a[i * lda + p + 1], x2 = a[i * lda + p + 2], x3 = a[i * lda + p + 3];
            GEMV_T *ci = acc + i * n;
            size_t j = 0;
            for (; j < nv; j += GEMV_L) {
                GEMV_VU s = *(GEMV_VU *)(ci + j);
                s += x0 * *(const GEMV_VU *)(b0 + j);
                s += x1 * *(const GEMV_VU *)(b1 + j);
                s += x2 * *(const GEMV_VU *)(b2 + j);
                s += x3 * *(const GEMV_VU *)(b3 + j);
                *(GEMV_VU *)(ci + j) = s;
            }
            for (; j < n; j++) {
                GEMV_T s = ci[j];
                s += x0 * b0[j];
                s += x1 * b1[j];
                s += x2 * b2[j];
                s += x3 * b3[j];
                ci[j] = s;
            }
        }
    }
    for (; p < k; p++) {
        const GEMV_T *b0 = b + p * ldb;
        for (size_t i = 0; i < m; i++) {
            const GEMV_T x0 = a[i * lda + p];
            GEMV_T *ci = acc + i * n;
            size_t j = 0;
            for (; j < nv; j += GEMV_L) *(GEMV_VU *)(ci + j) += x0 * *(const GEMV_VU *)(b0 + j);
            for (; j < n; j++) ci[j] += x0 * b0[j];
        }
    }
    for (size_t i = 0; i < m; i++) {
        GEMV_T *ci = c + i * ldc;
        const GEMV_T *si = acc + i * n;
        if (beta == 0)
            for (size_t j = 0; j < n; j++) ci[j] = alpha * si[j];
        else
            for (size_t j = 0; j < n; j++) ci[j] = alpha * si[j] + beta * ci[j];
    }
}

#undef GEMV_L
#undef GEMV_VU
