/* gemm_t.h - body of the blocked GEMM, included by gemm.c once per dtype (FNN_T, FNN_P, KERNEL).
 *
 * Loop nest (BLIS):  jc over NC columns  ->  pc over KC  -> pack B (KC x NC, NR-wide panels)
 *                    -> ic over MC rows  -> pack A (MC x KC, MR-wide panels)  -> (jr, ir) tiles.
 * With several threads, C is cut along tile boundaries into rectangles that threads take on demand,
 * each running the loop nest with its own packing buffers (no barrier but the final join).  K is never
 * split, so every element of C is summed in the same order whatever the thread count.
 *
 * A row's bits do not depend on the other rows either: every path (the micro-kernel on a full tile or
 * on an edge tile, narrow or wide, B packed or read in place, the small-M kernel, the fallback without
 * packing buffers) computes an element as the micro-kernel does: alpha multiplies each value of A
 * (when A is packed), and per K block of kc (which depends on k alone) a chain of multiply-adds from
 * zero is stored into C, or added to it for later blocks and for beta = 1.  Any other beta scales C
 * once before the product, so that the kernels see 0 or 1.  The kernels thus do nothing but sum
 * products, and no choice of the compiler (which products it fuses into FMAs) can differ between
 * them.
 */
#define T FNN_T

/* d[0, n) = s[0, n) for a register tile's width n: a fixed-size copy for the widths the kernels have
 * (a loop with a run-time trip count of 4 to 32 costs more than the copy). */
static inline void FNN_FN(copy_run)(T *FNN_RESTRICT d, const T *FNN_RESTRICT s, size_t n) {
    switch (n) {
    case 4: memcpy(d, s, 4 * sizeof(T)); break;
    case 6: memcpy(d, s, 6 * sizeof(T)); break;
    case 8: memcpy(d, s, 8 * sizeof(T)); break;
    case 14: memcpy(d, s, 14 * sizeof(T)); break;
    case 16: memcpy(d, s, 16 * sizeof(T)); break;
    case 32: memcpy(d, s, 32 * sizeof(T)); break;
    default:
        for (size_t i = 0; i < n; i++) d[i] = s[i];
    }
}

/* alpha*op(A)[i][p] for the rows [0, mcur) of an MC x KC block, as MR-wide panels: panel i0 at
 * dst + i0*kc holds dst[i0*kc + p*mr + r] = alpha*op(A)[i0 + r][p], zero rows past mcur.  alpha is
 * applied here, to each value of A, so that the kernels only sum products (see the top). */
static void FNN_FN(pack_a)(PACKT_FN packt, size_t mr, size_t mcur, size_t kc, const T *a, size_t lda, int ta,
                           T alpha, T *dst) {
    if (ta) { /* op(A)[i][p] = a[p*lda + i]: rows p are read front to back, 8 at a time, and dealt out
               * to the panels, 8 x mr contiguous values to each (one row at a time would write a few
               * values to each of the panels, whose lines, kc*mr values apart, fall into the same
               * cache sets and leave before the next row fills them) */
        const size_t full = mcur / mr * mr;
        for (size_t p0 = 0; p0 < kc; p0 += 8) {
            const size_t p1 = kc - p0 < 8 ? kc : p0 + 8;
            for (size_t p = p1; p < p1 + 8 && p < kc; p++)
                for (size_t i = 0; i < mcur; i += FNN_ALIGN / sizeof(T)) __builtin_prefetch(a + p * lda + i);
            for (size_t i0 = 0; i0 < full; i0 += mr)
                for (size_t p = p0; p < p1; p++) FNN_FN(copy_run)(dst + i0 * kc + p * mr, a + p * lda + i0, mr);
            if (full < mcur)
                for (size_t p = p0; p < p1; p++) {
                    T *d = dst + full * kc + p * mr;
                    size_t r = 0;
                    for (; r < mcur - full; r++) d[r] = a[p * lda + full + r];
                    for (; r < mr; r++) d[r] = 0;
                }
        }
    } else { /* op(A)[i][p] = a[i*lda + p]: a transposing copy, a panel at a time */
        for (size_t i0 = 0; i0 < mcur; i0 += mr) {
            size_t rows = mcur - i0 < mr ? mcur - i0 : mr;
            T *d = dst + i0 * kc;
            packt(rows, kc, a + i0 * lda, lda, d, mr);
            for (size_t p = 0; p < kc && rows < mr; p++)
                for (size_t r = rows; r < mr; r++) d[p * mr + r] = 0;
        }
    }
    if (alpha != 1)
        for (size_t i = 0; i < (mcur + mr - 1) / mr * mr * kc; i++) dst[i] *= alpha;
}

/* op(B)[p][j] for the columns [0, ncur) of a K block, as NR-wide panels: panel j0 at dst + j0*kc holds
 * dst[j0*kc + p*nr + j] = op(B)[p][j0 + j], zero columns past ncur.  Only the last, partial panel
 * when `partial_only` (the kernel reads the full ones in place). */
static void FNN_FN(pack_b)(PACKT_FN packt, size_t nr, size_t ncur, size_t kc, const T *b, size_t ldb, int tb,
                           int partial_only, T *dst) {
    const size_t full = ncur / nr * nr;
    if (!tb) { /* op(B)[p][j] = b[p*ldb + j]: row p is read once, front to back, and dealt out to the
                * panels (a panel at a time would read a cache line per row, ldb apart, page after
                * page, and wait on each) */
        for (size_t p = 0; p < kc; p++) {
            const T *src = b + p * ldb;
            if (!partial_only)
                for (size_t j0 = 0; j0 < full; j0 += nr) { /* and fetch the row 4 ahead */
                    if (p + 4 < kc) __builtin_prefetch(src + 4 * ldb + j0);
                    FNN_FN(copy_run)(dst + j0 * kc + p * nr, src + j0, nr);
                }
            if (full < ncur) {
                T *d = dst + full * kc + p * nr;
                size_t j = 0;
                for (; j < ncur - full; j++) d[j] = src[full + j];
                for (; j < nr; j++) d[j] = 0;
            }
        }
    } else { /* op(B)[p][j] = b[j*ldb + p]: a transposing copy, a panel at a time */
        for (size_t j0 = partial_only ? full : 0; j0 < ncur; j0 += nr) {
            size_t cols = ncur - j0 < nr ? ncur - j0 : nr;
            T *d = dst + j0 * kc;
            packt(cols, kc, b + j0 * ldb, ldb, d, nr);
            for (size_t p = 0; p < kc && cols < nr; p++)
                for (size_t j = cols; j < nr; j++) d[p * nr + j] = 0;
        }
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

/* Cache blocks of the active kernel for a product with M = m: the register tile (the narrower one
 * when the wide one would pad M by more than ~12% beyond it) and MC/KC/NC as whole tiles. */
typedef struct { size_t mr, nr, mc, kc, nc; UKR_FN ukr; PACKT_FN packt; GEMV_FN gemv; } FNN_FN(gemm_plan);

/* K in equal blocks of at most KC (a multiple of 4), so that no block is a sliver.  KC depends on k
 * alone: every element of C is summed in the same order whatever the threads and the other rows do. */
static size_t FNN_FN(gemm_kc)(const KERNEL *kr, size_t k) {
    size_t KC = fnn_gemm_blocks[1] ? fnn_gemm_blocks[1] : (size_t)kr->kc;
    size_t nkb = (k + KC - 1) / KC;
    return ((k + nkb - 1) / nkb + 3) & ~(size_t)3;
}

static FNN_FN(gemm_plan) FNN_FN(gemm_plan_for)(size_t m, size_t n, size_t k) {
    const KERNEL *kr = FNN_FN(gemm_kernel_active)();
    FNN_FN(gemm_plan) p = {(size_t)kr->mr, (size_t)kr->nr, 0, 0, 0, kr->ukr, kr->packt, kr->gemv};
    const size_t tile = fnn_gemm_blocks[3];
    int narrow = 0; /* the tile of mr2 rows */
    if (kr->mr2) {
        size_t mr2 = (size_t)kr->mr2;
        narrow = tile ? tile == 2 || tile == 4 : (m + mr2 - 1) / mr2 * mr2 <= (m + p.mr - 1) / p.mr * p.mr;
        if (narrow) { p.mr = mr2; p.ukr = kr->ukr2; }
    }
    if (kr->nrn && (tile ? tile == 3 || tile == 4 : n <= (size_t)kr->nrn)) { /* the tile of nrn columns */
        p.nr = (size_t)kr->nrn;
        p.ukr = narrow ? kr->ukrn2 : kr->ukrn;
    }
    size_t MC = fnn_gemm_blocks[0] ? fnn_gemm_blocks[0] : (size_t)kr->mc;
    size_t NC = fnn_gemm_blocks[2] ? fnn_gemm_blocks[2] : (size_t)kr->nc;
    p.mc = MC < p.mr ? p.mr : MC / p.mr * p.mr;
    p.nc = NC < p.nr ? p.nr : NC / p.nr * p.nr;
    p.kc = FNN_FN(gemm_kc)(kr, k);
    return p;
}

/* Whether the kernel reads the full panels of B in place instead of packing them: B as stored and few
 * rows (each panel serves few tiles, so packing it would not pay).  Rows of B that do not start on a
 * cache line (NumPy's own arrays start 16 bytes past one) make every other vector load cross two
 * lines, which costs more than packing from 16 rows up (AVX2: 51 against 61 GFLOP/s at 16x512x784,
 * where 64-byte rows run at 68).  The tuning override (fnn_gemm_blocks[4]) decides on rows alone. */
static int FNN_FN(direct_b_)(int tb, size_t m, const T *b, size_t ldb) {
    if (fnn_gemm_blocks[4]) return !tb && m <= fnn_gemm_blocks[4] - 1;
    const int lines = (uintptr_t)b % FNN_ALIGN == 0 && ldb * sizeof(T) % FNN_ALIGN == 0;
    return !tb && m <= (lines ? FNN_DIRECT_B_MAX_M : FNN_DIRECT_B_MAX_M_UNALIGNED);
}

/* The blocked product for the rows [0, m) and columns [0, n) of a sub-block of C, run by one thread
 * with its own packing buffers.  Returns 0, or -1 when the buffers cannot be allocated. */
static int FNN_FN(gemm_block)(const FNN_FN(gemm_plan) *pl, int ta, int tb, size_t m, size_t n, size_t k,
                              T alpha, const T *a, size_t lda, const T *b, size_t ldb, T beta, T *c,
                              size_t ldc, const T *bias, int act, T act_alpha) {
    const size_t mr = pl->mr, nr = pl->nr, kc = pl->kc;
    const int fused = bias != NULL || act != FNN_ACT_LINEAR;
    size_t mc = pl->mc < m ? pl->mc : (m + mr - 1) / mr * mr;
    size_t nc = pl->nc < n ? pl->nc : (n + nr - 1) / nr * nr;
    /* packed A, then packed B from the next FNN_ALIGN boundary (the kernels load B aligned) */
    const size_t per_line = FNN_ALIGN / sizeof(T);
    size_t a_len = (mc * kc + per_line - 1) / per_line * per_line;
    T *pa = fnn_gemm_blocks[5] ? NULL : FNN_FN(gemm_workspace)(a_len + kc * nc);
    if (!pa) return -1;
    T *pb = pa + a_len;
    /* B read in place (direct_b_): a partial last panel is still packed, zero-padded */
    const int direct_b = FNN_FN(direct_b_)(tb, m, b, ldb);

    for (size_t jc = 0; jc < n; jc += nc) {
        size_t ncur = n - jc < nc ? n - jc : nc;
        for (size_t pc = 0; pc < k; pc += kc) {
            size_t kcur = k - pc < kc ? k - pc : kc;
            T beta_cur = pc == 0 ? beta : (T)1;
            int last = pc + kcur == k;
            FNN_FN(pack_b)(pl->packt, nr, ncur, kcur, tb ? b + jc * ldb + pc : b + pc * ldb + jc, ldb, tb, direct_b,
                           pb);
            for (size_t ic = 0; ic < m; ic += mc) {
                size_t mcur = m - ic < mc ? m - ic : mc;
                const T *ablk = ta ? a + pc * lda + ic : a + ic * lda + pc;
                FNN_FN(pack_a)(pl->packt, mr, mcur, kcur, ablk, lda, ta, alpha, pa);
                for (size_t j0 = 0; j0 < ncur; j0 += nr) {
                    size_t cols = ncur - j0 < nr ? ncur - j0 : nr;
                    const int in_place = direct_b && cols == nr;
                    const T *bp = in_place ? b + pc * ldb + jc + j0 : pb + j0 * kcur;
                    const size_t bld = in_place ? ldb : nr;
                    for (size_t i0 = 0; i0 < mcur; i0 += mr) {
                        size_t rows = mcur - i0 < mr ? mcur - i0 : mr;
                        T *ct = c + (ic + i0) * ldc + jc + j0;
                        const T *ap = pa + i0 * kcur;
                        if (rows == mr && cols == nr) {
                            pl->ukr(kcur, ap, bp, bld, ct, ldc, beta_cur);
                        } else { /* an edge tile: the same kernel, and store, on a copy of it */
                            T tmp[FNN_MAX_TILE] __attribute__((aligned(FNN_ALIGN)));
                            if (beta_cur != 0) {
                                memset(tmp, 0, mr * nr * sizeof(T));
                                for (size_t i = 0; i < rows; i++)
                                    memcpy(tmp + i * nr, ct + i * ldc, cols * sizeof(T));
                            }
                            pl->ukr(kcur, ap, bp, bld, tmp, nr, beta_cur);
                            for (size_t i = 0; i < rows; i++) memcpy(ct + i * ldc, tmp + i * nr, cols * sizeof(T));
                        }
                        if (last && fused)
                            FNN_FN(epilogue)(ct, ldc, rows, cols, bias ? bias + jc + j0 : NULL, act, act_alpha);
                    }
                }
            }
        }
    }
    return 0;
}

/* The product through the small-M kernel, FNN_GEMV_MAX_M rows at a time: no heap memory at all. */
static void FNN_FN(gemm_rows)(const FNN_FN(gemm_plan) *pl, int ta, int tb, size_t m, size_t n, size_t k,
                              T alpha, const T *a, size_t lda, const T *b, size_t ldb, T beta, T *c,
                              size_t ldc, const T *bias, int act, T act_alpha) {
    const size_t rsa = ta ? 1 : lda, csa = ta ? lda : 1, rsb = tb ? 1 : ldb, csb = tb ? ldb : 1;
    for (size_t i = 0; i < m; i += FNN_GEMV_MAX_M) {
        size_t r = m - i < FNN_GEMV_MAX_M ? m - i : FNN_GEMV_MAX_M;
        pl->gemv(r, n, k, pl->kc, alpha, a + i * rsa, rsa, csa, b, rsb, csb, beta, c + i * ldc, ldc);
    }
    if (bias != NULL || act != FNN_ACT_LINEAR) FNN_FN(epilogue)(c, ldc, m, n, bias, act, act_alpha);
}

/* gemm_block, or when its packing buffers cannot be allocated (gemm_block fails before it touches C)
 * gemm_rows, which needs none and gives the same bits, over the same sub-block.  Per sub-block, so
 * that the parts of C that other threads finished are not computed twice. */
static void FNN_FN(gemm_rect)(const FNN_FN(gemm_plan) *pl, int ta, int tb, size_t m, size_t n, size_t k,
                              T alpha, const T *a, size_t lda, const T *b, size_t ldb, T beta, T *c,
                              size_t ldc, const T *bias, int act, T act_alpha) {
    if (FNN_FN(gemm_block)(pl, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act, act_alpha) != 0)
        FNN_FN(gemm_rows)(pl, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act, act_alpha);
}

/* A product prepared for its rectangles: the arguments, the plan and the grid of rectangles. */
typedef struct {
    FNN_FN(gemm_plan) pl;
    FNN_FN(gemm_args) op;
    const T *bias;
    int act;
    T act_alpha;
    size_t mt, ntl, pm, pn; /* tiles along M and N; the grid */
} FNN_FN(gemm_job);

/* Prepares the product C = act(alpha*op(A)*op(B) + beta*C + bias) to run as rectangles on up to nt
 * threads and returns how many there are; 0 when nothing is left (the product was empty, or trivial,
 * or few enough rows for the small-M kernel, and was done here, serially). */
static size_t FNN_FN(gemm_job_)(FNN_FN(gemm_job) *j, const FNN_FN(gemm_args) *op, const T *bias, int act,
                                T act_alpha, int nt) {
    const int ta = op->ta, tb = op->tb;
    const size_t m = op->m, n = op->n, k = op->k;
    T alpha = op->alpha, beta = op->beta;
    if (m == 0 || n == 0) return 0;
    const int fused = bias != NULL || act != FNN_ACT_LINEAR;
    if (k == 0 || alpha == 0) {
        FNN_FN(scale_c)(m, n, beta, op->c, op->ldc);
        if (fused) FNN_FN(epilogue)(op->c, op->ldc, m, n, bias, act, act_alpha);
        return 0;
    }
    if (beta != 0 && beta != 1) { /* the kernels add C with one rounding: beta is 0 or 1 for them */
        FNN_FN(scale_c)(m, n, beta, op->c, op->ldc);
        beta = 1;
    }
    /* A few rows (one-row predictions): stream B once instead of padding A to a register tile. */
    if (m <= FNN_GEMV_MAX_M && !ta && !tb && !fnn_gemm_blocks[4]) {
        const KERNEL *kr = FNN_FN(gemm_kernel_active)();
        const FNN_FN(gemm_plan) small = {.kc = FNN_FN(gemm_kc)(kr, k), .gemv = kr->gemv};
        FNN_FN(gemm_rows)(&small, 0, 0, m, n, k, alpha, op->a, op->lda, op->b, op->ldb, beta, op->c, op->ldc, bias,
                          act, act_alpha);
        return 0;
    }
    j->op = *op;
    j->op.beta = beta;
    j->bias = bias;
    j->act = act;
    j->act_alpha = act_alpha;
    j->pl = FNN_FN(gemm_plan_for)(m, n, k);
    const FNN_FN(gemm_plan) pl = j->pl;
    const size_t mt = (m + pl.mr - 1) / pl.mr, ntl = (n + pl.nr - 1) / pl.nr; /* tiles along M, N */

    /* about 20 microseconds of work per thread at least, and no more threads than tiles */
    double flops = 2.0 * (double)m * (double)n * (double)k;
    if (flops < 4e6 * nt) nt = (int)(flops / 4e6);
    if ((size_t)nt > mt * ntl) nt = (int)(mt * ntl);
    if (nt < 1) nt = 1;

    /* C is cut along tile boundaries into rectangles on a pm x pn grid, handed out on demand; each
     * runs the whole loop nest with its thread's own packing buffers, so each packs its own rows of
     * A and columns of B.  The grid minimises an estimate of the slowest thread's time: per
     * rectangle, its multiply-adds (32 per cycle) plus its packing (a strided copy of A as stored
     * costs about a cycle per value, a contiguous one a quarter; B read in place as much as a
     * contiguous copy: in a training step the weights come from memory, not from the cache, and two
     * threads that each read all of them take twice the traffic of one), times the rounds of
     * rectangles a thread takes.  More rectangles than threads balance a
     * thread that the OS starves, but only pay off where packing is cheap next to the arithmetic.
     * Tile-aligned cuts keep every element's arithmetic the same as in the serial product, so
     * results do not depend on nt. */
    size_t pm = 1, pn = 1;
    if (nt > 1) {
        const double pack_a = ta ? 0.25 : 1.0, pack_b = tb ? 1.0 : 0.25;
        double best = -1;
        for (size_t per = 1; per <= 4; per *= 2) {
            size_t want = per * (size_t)nt;
            for (size_t dm = 1; dm <= mt && dm <= want; dm++) {
                size_t dn = (want + dm - 1) / dm;
                if (dn > ntl) dn = ntl;
                if (dm * dn < (size_t)nt) continue;
                double rows = (double)((mt + dm - 1) / dm * pl.mr), cols = (double)((ntl + dn - 1) / dn * pl.nr);
                double one = rows * cols * (double)k / 32.0 + (rows * pack_a + cols * pack_b) * (double)k;
                double cost = one * (double)((dm * dn + (size_t)nt - 1) / (size_t)nt);
                if (best < 0 || cost < best * 0.999) { best = cost; pm = dm; pn = dn; }
            }
        }
    }
    j->mt = mt;
    j->ntl = ntl;
    j->pm = pm;
    j->pn = pn;
    return pm * pn;
}

/* Rectangle r of a prepared product's grid: the same arithmetic for every element whoever runs it. */
static void FNN_FN(gemm_job_rect_)(const FNN_FN(gemm_job) *j, size_t r) {
    const FNN_FN(gemm_args) *o = &j->op;
    const size_t mr = j->pl.mr, nr = j->pl.nr;
    size_t tm = r / j->pn, tn = r % j->pn;
    size_t i0 = j->mt * tm / j->pm * mr, i1 = j->mt * (tm + 1) / j->pm * mr;
    size_t j0 = j->ntl * tn / j->pn * nr, j1 = j->ntl * (tn + 1) / j->pn * nr;
    if (i1 > o->m) i1 = o->m;
    if (j1 > o->n) j1 = o->n;
    if (i0 < i1 && j0 < j1)
        FNN_FN(gemm_rect)(&j->pl, o->ta, o->tb, i1 - i0, j1 - j0, o->k, o->alpha, o->ta ? o->a + i0 : o->a + i0 * o->lda,
                          o->lda, o->tb ? o->b + j0 * o->ldb : o->b + j0, o->ldb, o->beta, o->c + i0 * o->ldc + j0,
                          o->ldc, j->bias ? j->bias + j0 : NULL, j->act, j->act_alpha);
}

/* A rough rate of one thread on a product (flop/s), by SIMD level: what fnn_team_begin weighs the
 * product's time on one thread by.  On the low side, so that it rather keeps a product on the team. */
static double FNN_FN(serial_rate_)(void) {
    const double by_level[] = {1e10, 6e10, 1.2e11}; /* generic, AVX2, AVX-512; double half of it */
    const int l = fnn_simd_level();
    return (l >= 0 && l <= 2 ? by_level[l] : 1e10) * (sizeof(T) == 4 ? 1.0 : 0.5);
}

void FNN_FN(gemm_ex)(int ta, int tb, size_t m, size_t n, size_t k, T alpha, const T *a, size_t lda,
                     const T *b, size_t ldb, T beta, T *c, size_t ldc, const T *bias, int act,
                     T act_alpha, int nt) {
    const FNN_FN(gemm_args) op = {ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc};
    FNN_FN(gemm_job) j;
    const long nrect = (long)FNN_FN(gemm_job_)(&j, &op, bias, act, act_alpha, nt);
    if (nrect == 1) {
        FNN_FN(gemm_job_rect_)(&j, 0);
    } else if (nrect > 1) {
        nt = nt < nrect ? nt : (int)nrect;
        /* A team idle long enough to be asleep (see fnn_team_begin): this thread takes rectangles
         * while the others wake, w seconds, and the join waits for them, so the product ends about
         * w + (t - w) / nt after it starts when the rectangles are many, w + t / nt when there is one
         * per thread: one thread alone (t) is sooner when t < w (1 + nt / nrect), roughly. */
        fnn_team team;
        const double t1 = 2.0 * (double)m * (double)n * (double)k / FNN_FN(serial_rate_)();
        nt = fnn_team_begin(&team, nt, t1 / (1.0 + (double)nt / (double)nrect));
        if (nt <= 1) { /* planned again for one thread: one rectangle, nothing packed twice, the same
                        * bits (j.op's beta is already 0 or 1, so C is not scaled again) */
            FNN_FN(gemm_job) one;
            if (FNN_FN(gemm_job_)(&one, &j.op, j.bias, j.act, j.act_alpha, 1) == 1) FNN_FN(gemm_job_rect_)(&one, 0);
        } else {
#pragma omp parallel num_threads(nt)
            {
                fnn_team_arrive(&team);
#pragma omp for schedule(dynamic, 1) nowait
                for (long r = 0; r < nrect; r++) FNN_FN(gemm_job_rect_)(&j, (size_t)r);
            }
        }
        fnn_team_end(&team, nt);
    }
}

/* Piece r of a gemm_set: a rectangle of one of the products (the first `total`), or a side task. */
static void FNN_FN(gemm_set_run_)(const FNN_FN(gemm_job) *jobs, const size_t *first, size_t total, fnn_task_fn task,
                                  void *ctx, size_t r) {
    if (r >= total) {
        task(ctx, r - total);
        return;
    }
    int i = 0;
    while (r >= first[i + 1]) i++;
    FNN_FN(gemm_job_rect_)(&jobs[i], r - first[i]);
}

/* Several independent products (disjoint outputs) and `ntasks` side tasks, all handed out from one
 * counter in one parallel region: one join instead of one per product, the end of one product
 * filled with the others' work, and products too small to split (gemm_ex would run them serially)
 * side by side.  Each product is cut into the rectangles gemm_ex would run on nt threads, so every
 * element's bits are the same, and a thread that loses its core holds no more than one rectangle.
 * (Cutting each for nt / nops threads instead, whole products on threads of their own with 2
 * threads and 2 products, packs nothing twice but measured the same on 2 cores.) */
void FNN_FN(gemm_set)(const FNN_FN(gemm_args) *ops, int nops, fnn_task_fn task, void *ctx, size_t ntasks,
                      double task_flops, int nt) {
    FNN_FN(gemm_job) jobs[FNN_GEMM_SET_MAX];
    size_t first[FNN_GEMM_SET_MAX + 1];
    double flops = task_flops;
    if (nops > FNN_GEMM_SET_MAX) { /* the products past the first FNN_GEMM_SET_MAX in a region of their own */
        FNN_FN(gemm_set)(ops + FNN_GEMM_SET_MAX, nops - FNN_GEMM_SET_MAX, task, ctx, 0, 0, nt);
        nops = FNN_GEMM_SET_MAX;
    }
    size_t total = 0;
    for (int i = 0; i < nops; i++) {
        first[i] = total;
        total += FNN_FN(gemm_job_)(&jobs[i], &ops[i], NULL, FNN_ACT_LINEAR, 0, nt);
        if (first[i] < total) flops += 2.0 * (double)ops[i].m * (double)ops[i].n * (double)ops[i].k;
    }
    first[nops] = total;
    const long all = (long)(total + ntasks);
    /* about 10 microseconds of work per thread at least, and no more threads than pieces */
    if (flops < 1e6 * nt) nt = (int)(flops / 1e6);
    if (nt > all) nt = (int)all;
    if (nt <= 1) {
        for (long r = 0; r < all; r++) FNN_FN(gemm_set_run_)(jobs, first, total, task, ctx, (size_t)r);
    } else {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (long r = 0; r < all; r++) FNN_FN(gemm_set_run_)(jobs, first, total, task, ctx, (size_t)r);
        fnn_team_touch();
    }
}

#undef T
