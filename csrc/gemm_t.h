/* gemm_t.h - body of the blocked GEMM, included by gemm.c once per dtype (FNN_T, FNN_P, KERNEL).
 *
 * Loop nest (BLIS):  jc over NC columns  ->  pc over KC  -> pack B (KC x NC, NR-wide panels)
 *                    -> ic over MC rows  -> pack A (MC x KC, MR-wide panels)  -> (jr, ir) tiles.
 * Threads share the packing and split the tiles of each (jc, pc, ic) block; K is never split, so
 * every element of C is summed in the same order whatever the thread count.
 */
#define T FNN_T

/* op(A)[i][p] for the panel starting at row i0: dst[p*mr + r], zero rows past `rows`. */
static void FNN_FN(pack_a)(int mr, size_t rows, size_t kc, const T *a, size_t lda, int ta, T *dst) {
    if (ta) { /* op(A)[i][p] = a[p*lda + i]: each p is a contiguous run of rows */
        for (size_t p = 0; p < kc; p++) {
            const T *src = a + p * lda;
            T *d = dst + p * (size_t)mr;
            size_t r = 0;
            for (; r < rows; r++) d[r] = src[r];
            for (; r < (size_t)mr; r++) d[r] = 0;
        }
    } else { /* op(A)[i][p] = a[i*lda + p] */
        size_t r = 0;
        for (; r < rows; r++) {
            const T *src = a + r * lda;
            for (size_t p = 0; p < kc; p++) dst[p * (size_t)mr + r] = src[p];
        }
        for (; r < (size_t)mr; r++)
            for (size_t p = 0; p < kc; p++) dst[p * (size_t)mr + r] = 0;
    }
}

/* op(B)[p][j] for the panel starting at column j0: dst[p*nr + j], zero columns past `cols`. */
static void FNN_FN(pack_b)(int nr, size_t cols, size_t kc, const T *b, size_t ldb, int tb, T *dst) {
    if (!tb) { /* op(B)[p][j] = b[p*ldb + j]: each p is a contiguous run of columns */
        for (size_t p = 0; p < kc; p++) {
            const T *src = b + p * ldb;
            T *d = dst + p * (size_t)nr;
            size_t j = 0;
            for (; j < cols; j++) d[j] = src[j];
            for (; j < (size_t)nr; j++) d[j] = 0;
        }
    } else { /* op(B)[p][j] = b[j*ldb + p] */
        size_t j = 0;
        for (; j < cols; j++) {
            const T *src = b + j * ldb;
            for (size_t p = 0; p < kc; p++) dst[p * (size_t)nr + j] = src[p];
        }
        for (; j < (size_t)nr; j++)
            for (size_t p = 0; p < kc; p++) dst[p * (size_t)nr + j] = 0;
    }
}

/* C[rows x cols] = beta*C (C not read when beta == 0). */
static void FNN_FN(scale_c)(size_t rows, size_t cols, T beta, T *c, size_t ldc) {
    for (size_t i = 0; i < rows; i++) {
        T *ci = c + i * ldc;
        if (beta == 0)
            for (size_t j = 0; j < cols; j++) ci[j] = 0;
        else if (beta != 1)
            for (size_t j = 0; j < cols; j++) ci[j] *= beta;
    }
}

/* The fused epilogue on a finished tile: c = act(c + bias). */
static void FNN_FN(epilogue)(T *c, size_t ldc, size_t rows, size_t cols, const T *bias, int act,
                             T act_alpha) {
    for (size_t i = 0; i < rows; i++) {
        T *ci = c + i * ldc;
        if (bias)
            for (size_t j = 0; j < cols; j++) ci[j] += bias[j];
        if (act != FNN_ACT_LINEAR) FNN_FN(act_forward)(act, act_alpha, ci, ci, 1, cols, 1);
    }
}

void FNN_FN(gemm_ref)(int ta, int tb, size_t m, size_t n, size_t k, T alpha, const T *a, size_t lda,
                      const T *b, size_t ldb, T beta, T *c, size_t ldc) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            T s = 0;
            for (size_t p = 0; p < k; p++)
                s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
            T *cij = c + i * ldc + j;
            *cij = beta == 0 ? alpha * s : alpha * s + beta * *cij;
        }
}

void FNN_FN(gemm_ex)(int ta, int tb, size_t m, size_t n, size_t k, T alpha, const T *a, size_t lda,
                     const T *b, size_t ldb, T beta, T *c, size_t ldc, const T *bias, int act,
                     T act_alpha, int nt) {
    if (m == 0 || n == 0) return;
    int fused = bias != NULL || act != FNN_ACT_LINEAR;
    if (k == 0 || alpha == 0) {
        FNN_FN(scale_c)(m, n, beta, c, ldc);
        if (fused)
            for (size_t i = 0; i < m; i++) FNN_FN(epilogue)(c + i * ldc, ldc, 1, n, bias, act, act_alpha);
        return;
    }
    const KERNEL *kr = FNN_FN(gemm_kernel_active)();
    size_t mr = (size_t)kr->mr;
    const size_t nr = (size_t)kr->nr;
    UKR_FN ukr = kr->ukr;
    /* The narrower tile when the wide one would pad M by more than ~12% beyond it. */
    if (kr->mr2) {
        size_t mr2 = (size_t)kr->mr2;
        if ((m + mr2 - 1) / mr2 * mr2 * 9 < (m + mr - 1) / mr * mr * 8) { mr = mr2; ukr = kr->ukr2; }
    }
    /* Split K into equal blocks of at most KC (a multiple of 4), so that no block is a sliver. */
    /* Cache blocks from the kernel's table (or the tuning override), as whole register tiles. */
    size_t KC = fnn_gemm_blocks[1] ? fnn_gemm_blocks[1] : (size_t)kr->kc;
    size_t MC = fnn_gemm_blocks[0] ? fnn_gemm_blocks[0] : (size_t)kr->mc;
    size_t NC = fnn_gemm_blocks[2] ? fnn_gemm_blocks[2] : (size_t)kr->nc;
    MC = MC < mr ? mr : MC / mr * mr;
    NC = NC < nr ? nr : NC / nr * nr;
    /* Split K into equal blocks of at most KC (a multiple of 4), so that no block is a sliver. */
    size_t nkb = (k + KC - 1) / KC;
    size_t kc = (k + nkb - 1) / nkb;
    kc = (kc + 3) & ~(size_t)3;
    size_t mc = MC < m ? MC : (m + mr - 1) / mr * mr;
    size_t nc = NC < n ? NC : (n + nr - 1) / nr * nr;

    /* packed A, then packed B from the next FNN_ALIGN boundary (the kernels load B aligned) */
    const size_t per_line = FNN_ALIGN / sizeof(T);
    size_t a_len = (mc * kc + per_line - 1) / per_line * per_line;
    T *pa = FNN_FN(gemm_workspace)(a_len + kc * nc);
    if (!pa) { /* out of memory for the packing buffers: the unblocked loop needs none */
        FNN_FN(gemm_ref)(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        if (fused)
            for (size_t i = 0; i < m; i++) FNN_FN(epilogue)(c + i * ldc, ldc, 1, n, bias, act, act_alpha);
        return;
    }
    T *pb = pa + a_len;

    /* about 20 microseconds of work per thread at least */
    double flops = 2.0 * (double)m * (double)n * (double)k;
    if (flops < 4e6 * nt) nt = (int)(flops / 4e6);
    if (nt < 1) nt = 1;

#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        for (size_t jc = 0; jc < n; jc += nc) {
            size_t ncur = n - jc < nc ? n - jc : nc;
            long npan = (long)((ncur + nr - 1) / nr);
            for (size_t pc = 0; pc < k; pc += kc) {
                size_t kcur = k - pc < kc ? k - pc : kc;
                T beta_cur = pc == 0 ? beta : (T)1;
                int last = pc + kcur == k;
                const T *bsrc = tb ? b + jc * ldb + pc : b + pc * ldb + jc;
#pragma omp for schedule(static)
                for (long jp = 0; jp < npan; jp++) {
                    size_t j0 = (size_t)jp * nr;
                    size_t cols = ncur - j0 < nr ? ncur - j0 : nr;
                    FNN_FN(pack_b)((int)nr, cols, kcur, bsrc + (tb ? j0 * ldb : j0), ldb, tb, pb + j0 * kcur);
                }
                for (size_t ic = 0; ic < m; ic += mc) {
                    size_t mcur = m - ic < mc ? m - ic : mc;
                    long mpan = (long)((mcur + mr - 1) / mr);
                    const T *asrc = ta ? a + pc * lda + ic : a + ic * lda + pc;
#pragma omp for schedule(static)
                    for (long ip = 0; ip < mpan; ip++) {
                        size_t i0 = (size_t)ip * mr;
                        size_t rows = mcur - i0 < mr ? mcur - i0 : mr;
                        FNN_FN(pack_a)((int)mr, rows, kcur, asrc + (ta ? i0 : i0 * lda), lda, ta, pa + i0 * kcur);
                    }
#pragma omp for schedule(static)
                    for (long t = 0; t < npan * mpan; t++) {
                        size_t jr = (size_t)(t / mpan), ir = (size_t)(t % mpan);
                        size_t i0 = ir * mr, j0 = jr * nr;
                        size_t rows = mcur - i0 < mr ? mcur - i0 : mr;
                        size_t cols = ncur - j0 < nr ? ncur - j0 : nr;
                        T *ct = c + (ic + i0) * ldc + jc + j0;
                        const T *ap = pa + i0 * kcur, *bp = pb + j0 * kcur;
                        if (rows == mr && cols == nr) {
                            ukr(kcur, ap, bp, ct, ldc, alpha, beta_cur);
                        } else {
                            T tmp[FNN_MAX_TILE] __attribute__((aligned(FNN_ALIGN)));
                            ukr(kcur, ap, bp, tmp, nr, alpha, 0);
                            for (size_t i = 0; i < rows; i++)
                                for (size_t j = 0; j < cols; j++) {
                                    T *cij = ct + i * ldc + j;
                                    *cij = beta_cur == 0 ? tmp[i * nr + j] : tmp[i * nr + j] + beta_cur * *cij;
                                }
                        }
                        if (last && fused) FNN_FN(epilogue)(ct, ldc, rows, cols, bias ? bias + jc + j0 : NULL, act, act_alpha);
                    }
                }
            }
        }
    }
}

#undef T
