/* gemv_t.h - body of the small-M kernel, included once per (ISA, dtype) by the files beside it:
 * C[m x n] = (alpha*op(A)) * op(B) (+ C when beta = 1; C not read when beta = 0) for m <= FNN_GEMV_MAX_M
 * rows, with op(A)[i][p] = a[i*rsa + p*csa] and op(B)[p][j] = b[p*rsb + j*csb] (any strides), needing
 * no memory but a few KiB of stack.
 *
 * Each element is computed as the blocked GEMM computes it (gemm_t.h, ukr_t.h), so that a row gets the
 * same bits here as in a product of any size: alpha multiplies each value of A (as packing does), and
 * per block of kc values of K a chain of multiply-adds from zero in the order of K is stored into C
 * (the first block when beta = 0) or added to it.
 *
 * With so few rows the product is a stream over B: each row of B is read once, contiguously, and added
 * into the rows of the sums, four rows of B at a time, GEMV_NB columns at a time (a strided B is
 * copied into a row buffer first).  It serves one-row predictions, and any product when the blocked
 * GEMM's packing buffers cannot be allocated.
 *
 * Define before including: GEMV_T, GEMV_NAME, GEMV_ATTR (target attribute), GEMV_VBYTES.
 */
#define GEMV_L ((int)(GEMV_VBYTES / sizeof(GEMV_T)))
#define GEMV_NB ((size_t)(2048 / sizeof(GEMV_T))) /* columns per pass: the sums of 4 rows in 8 KiB */
#define GEMV_VU FNN_CAT(GEMV_NAME, _uvec)
#define GEMV_BLOCK FNN_CAT(GEMV_NAME, _block_)
#define GEMV_PLAIN FNN_CAT(GEMV_NAME, _plain_)
#define GEMV_STRIDED FNN_CAT(GEMV_NAME, _strided_)
typedef GEMV_T GEMV_VU __attribute__((vector_size(GEMV_VBYTES), aligned(sizeof(GEMV_T)), may_alias));

/* sum[i*lds + j] += sum over p in [p0, p1) of alpha*op(A)[i][p] * op(B)[p][j0 + j] for j < nj, in
 * the order of p.  `plain` (a constant where it is inlined): A and B contiguous along K and N and alpha = 1, the
 * one-row prediction's case, without the strided copies and the scaling. */
GEMV_ATTR static inline __attribute__((always_inline)) void
GEMV_BLOCK(const int plain, size_t m, size_t nj, size_t p0, size_t p1, GEMV_T alpha, const GEMV_T *a, size_t rsa,
           size_t csa, const GEMV_T *b, size_t rsb, size_t csb, size_t j0, GEMV_T *sum, size_t lds,
           GEMV_T (*buf)[GEMV_NB]) {
    const size_t nv = nj / GEMV_L * GEMV_L;
    size_t p = p0;
    for (; p + 4 <= p1; p += 4) {
        const GEMV_T *b0 = b + p * rsb + j0 * csb, *b1 = b0 + rsb, *b2 = b1 + rsb, *b3 = b2 + rsb;
        if (!plain && csb != 1) {
            for (size_t j = 0; j < nj; j++) {
                buf[0][j] = b0[j * csb];
                buf[1][j] = b1[j * csb];
                buf[2][j] = b2[j * csb];
                buf[3][j] = b3[j * csb];
            }
            b0 = buf[0], b1 = buf[1], b2 = buf[2], b3 = buf[3];
        }
        for (size_t i = 0; i < m; i++) {
            const GEMV_T *ai = a + i * rsa + p * (plain ? 1 : csa);
            GEMV_T x0 = ai[0], x1 = ai[plain ? 1 : csa], x2 = ai[plain ? 2 : 2 * csa], x3 = ai[plain ? 3 : 3 * csa];
            if (!plain) x0 *= alpha, x1 *= alpha, x2 *= alpha, x3 *= alpha;
            GEMV_T *si = sum + i * lds;
            size_t j = 0;
            for (; j < nv; j += GEMV_L) {
                GEMV_VU s = *(GEMV_VU *)(si + j);
                s += x0 * *(const GEMV_VU *)(b0 + j);
                s += x1 * *(const GEMV_VU *)(b1 + j);
                s += x2 * *(const GEMV_VU *)(b2 + j);
                s += x3 * *(const GEMV_VU *)(b3 + j);
                *(GEMV_VU *)(si + j) = s;
            }
            for (; j < nj; j++) {
                GEMV_T s = si[j];
                s += x0 * b0[j];
                s += x1 * b1[j];
                s += x2 * b2[j];
                s += x3 * b3[j];
                si[j] = s;
            }
        }
    }
    for (; p < p1; p++) {
        const GEMV_T *b0 = b + p * rsb + j0 * csb;
        if (!plain && csb != 1) {
            for (size_t j = 0; j < nj; j++) buf[0][j] = b0[j * csb];
            b0 = buf[0];
        }
        for (size_t i = 0; i < m; i++) {
            GEMV_T x0 = a[i * rsa + p * (plain ? 1 : csa)];
            if (!plain) x0 *= alpha;
            GEMV_T *si = sum + i * lds;
            size_t j = 0;
            for (; j < nv; j += GEMV_L) *(GEMV_VU *)(si + j) += x0 * *(const GEMV_VU *)(b0 + j);
            for (; j < nj; j++) si[j] += x0 * b0[j];
        }
    }
}

/* The two instances, each a function of its own.  The plain one's loops are vectorized by hand: GCC's
 * own vectorizer would also version the scalar tail loop for aliasing, which costs a one-row
 * prediction of a small network a fifth of its instructions in set-up per row of B. */
#if defined(__GNUC__) && !defined(__clang__)
#define GEMV_NOVEC __attribute__((optimize("no-tree-vectorize")))
#else
#define GEMV_NOVEC
#endif
GEMV_ATTR static __attribute__((noinline)) GEMV_NOVEC void GEMV_PLAIN(size_t m, size_t nj, size_t p0, size_t p1,
                                                                      const GEMV_T *a, size_t rsa, const GEMV_T *b,
                                                                      size_t rsb, size_t j0, GEMV_T *sum, size_t lds) {
    GEMV_BLOCK(1, m, nj, p0, p1, 1, a, rsa, 1, b, rsb, 1, j0, sum, lds, NULL);
}

GEMV_ATTR static __attribute__((noinline)) void GEMV_STRIDED(size_t m, size_t nj, size_t p0, size_t p1, GEMV_T alpha,
                                                             const GEMV_T *a, size_t rsa, size_t csa, const GEMV_T *b,
                                                             size_t rsb, size_t csb, size_t j0, GEMV_T *sum, size_t lds,
                                                             GEMV_T (*buf)[GEMV_NB]) {
    GEMV_BLOCK(0, m, nj, p0, p1, alpha, a, rsa, csa, b, rsb, csb, j0, sum, lds, buf);
}

GEMV_ATTR void GEMV_NAME(size_t m, size_t n, size_t k, size_t kc, GEMV_T alpha, const GEMV_T *FNN_RESTRICT a,
                         size_t rsa, size_t csa, const GEMV_T *FNN_RESTRICT b, size_t rsb, size_t csb, GEMV_T beta,
                         GEMV_T *FNN_RESTRICT c, size_t ldc) {
    GEMV_T acc[FNN_GEMV_MAX_M][GEMV_NB] __attribute__((aligned(FNN_ALIGN)));
    GEMV_T buf[4][GEMV_NB] __attribute__((aligned(FNN_ALIGN)));
    if (m > FNN_GEMV_MAX_M || kc == 0) return;
    /* alpha = 1 multiplies exactly: the plain loop gives the bits of the scaling one */
    const int plain = csa == 1 && csb == 1 && alpha == 1;
    for (size_t j0 = 0; j0 < n; j0 += GEMV_NB) {
        const size_t nj = n - j0 < GEMV_NB ? n - j0 : GEMV_NB;
        for (size_t pc = 0; pc < k; pc += kc) {
            const size_t pend = k - pc < kc ? k : pc + kc;
            /* the micro-kernel's store: the sum (summed in C itself), or the sum added to C */
            const int add = pc > 0 || beta != 0;
            GEMV_T *sum = add ? acc[0] : c + j0;
            const size_t lds = add ? GEMV_NB : ldc;
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < nj; j++) sum[i * lds + j] = 0;
            if (plain) GEMV_PLAIN(m, nj, pc, pend, a, rsa, b, rsb, j0, sum, lds);
            else GEMV_STRIDED(m, nj, pc, pend, alpha, a, rsa, csa, b, rsb, csb, j0, sum, lds, buf);
            for (size_t i = 0; add && i < m; i++) {
                GEMV_T *ci = c + i * ldc + j0;
                for (size_t j = 0; j < nj; j++) ci[j] = acc[i][j] + ci[j];
            }
        }
    }
}

#undef GEMV_L
#undef GEMV_NB
#undef GEMV_VU
#undef GEMV_BLOCK
#undef GEMV_PLAIN
#undef GEMV_NOVEC
#undef GEMV_STRIDED
