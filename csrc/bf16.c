/* bf16.c - products with bfloat16 inputs and float32 sums (lowp.h): the bfloat16 Dense layers and
 * mixed-precision training run every GEMM through fnn_sgemm_bf16_ex.
 *
 * Two paths.  Where the CPU has AVX512_BF16 (at the avx512 level), the inputs are packed as pairs of
 * bfloat16 (the rounding is the packing) and vdpbf16ps multiplies them: the loops below, the BLIS
 * nest of gemm_t.h with pair panels.  Elsewhere the inputs are rounded to bfloat16 into this
 * thread's buffer and the float32 GEMM multiplies them: exact products, float32 sums, the float32
 * kernels' speed.  The two sum in different orders, so their last bits differ; each is the same for
 * any thread count (K is never split).  fnn_bf16_force_pairs runs the pair loops with the portable
 * pair kernel on any CPU, which is how they are tested where no AVX512_BF16 is.
 */
#include "lowp.h"

#include <stdatomic.h>
#include <string.h>

#define FNN_BF16_GRAIN 32768  /* values rounded per thread, at least */
#define FNN_BF16_MAX_TILE (16 * 32)

static atomic_int g_force_pairs;

void fnn_bf16_force_pairs(int on) { atomic_store(&g_force_pairs, on != 0); }

const fnn_bgemm_kernel *fnn_bgemm_kernel_active(void) {
#if defined(__x86_64__)
    if (fnn_simd_level() == FNN_SIMD_AVX512 && fnn_cpu_has_avx512_bf16()) return &fnn_bgemm_kernel_avx512bf16;
#endif
    return &fnn_bgemm_kernel_ref;
}

void fnn_bf16_round(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u = fnn_bf16_bits(u);
        memcpy(y + i, &u, sizeof u);
    }
}

static inline uint32_t bits_(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* Two inputs as one pair word: the even one in the lower half. */
static inline uint32_t pair_(float even, float odd) {
    return bits_(fnn_bf16_round1(even)) >> 16 | (bits_(fnn_bf16_round1(odd)) & 0xffff0000u);
}

/* ---- the pair loops ----------------------------------------------------------------------------- */

typedef struct { int ta, tb; const float *a, *b; size_t lda, ldb, m, n, k; } bsrc;

static inline float op_a_(const bsrc *s, size_t i, size_t p) {
    return i < s->m && p < s->k ? (s->ta ? s->a[p * s->lda + i] : s->a[i * s->lda + p]) : 0.0f;
}
static inline float op_b_(const bsrc *s, size_t p, size_t j) {
    return j < s->n && p < s->k ? (s->tb ? s->b[j * s->ldb + p] : s->b[p * s->ldb + j]) : 0.0f;
}

static void epilogue_(float *c, size_t ldc, size_t rows, size_t cols, const float *bias, int act, float act_alpha) {
    for (size_t i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        if (bias)
            for (size_t j = 0; j < cols; j++) ci[j] += bias[j];
        if (act != FNN_ACT_LINEAR) fnn_sact_forward(act, act_alpha, ci, ci, 1, cols, 1);
    }
}

/* Rows [r0, r1) of C through the pair kernel, with this thread's packing buffers; -1 without them. */
static int pairs_rows_(const fnn_bgemm_kernel *kr, const bsrc *s, size_t r0, size_t r1, float alpha, float beta,
                       float *c, size_t ldc, const float *bias, int act, float act_alpha) {
    const size_t mr = (size_t)kr->mr, nr = (size_t)kr->nr, steps = (s->k + 1) / 2;
    /* K in equal blocks of at most kc/2 steps: every element is summed in the same order for any m */
    const size_t kmax = (size_t)kr->kc / 2, nkb = (steps + kmax - 1) / kmax, kc = (steps + nkb - 1) / nkb;
    const size_t m = r1 - r0;
    size_t mc = (size_t)kr->mc < m ? (size_t)kr->mc : (m + mr - 1) / mr * mr;
    size_t nc = (size_t)kr->nc < s->n ? (size_t)kr->nc : (s->n + nr - 1) / nr * nr;
    uint32_t *pa = fnn_thread_buffer(FNN_TBUF_GEMM, (mc * kc + kc * nc) * sizeof(uint32_t));
    if (!pa) return -1;
    uint32_t *pb = pa + mc * kc;
    for (size_t jc = 0; jc < s->n; jc += nc) {
        size_t ncur = s->n - jc < nc ? s->n - jc : nc;
        for (size_t pc = 0; pc < steps; pc += kc) {
            size_t kcur = steps - pc < kc ? steps - pc : kc;
            float beta_cur = pc == 0 ? beta : 1.0f;
            int last = pc + kcur == steps;
            for (size_t j0 = 0; j0 < ncur; j0 += nr)
                for (size_t p = 0; p < kcur; p++)
                    for (size_t j = 0; j < nr; j++) {
                        size_t col = jc + j0 + j, in = 2 * (pc + p);
                        pb[j0 * kcur + p * nr + j] = j0 + j < ncur ? pair_(op_b_(s, in, col), op_b_(s, in + 1, col)) : 0;
                    }
            for (size_t ic = r0; ic < r1; ic += mc) {
                size_t mcur = r1 - ic < mc ? r1 - ic : mc;
                for (size_t i0 = 0; i0 < mcur; i0 += mr)
                    for (size_t p = 0; p < kcur; p++)
                        for (size_t i = 0; i < mr; i++) {
                            size_t row = ic + i0 + i, in = 2 * (pc + p);
                            pa[i0 * kcur + p * mr + i] = i0 + i < mcur ? pair_(op_a_(s, row, in), op_a_(s, row, in + 1)) : 0;
                        }
                for (size_t j0 = 0; j0 < ncur; j0 += nr) {
                    size_t cols = ncur - j0 < nr ? ncur - j0 : nr;
                    for (size_t i0 = 0; i0 < mcur; i0 += mr) {
                        size_t rows = mcur - i0 < mr ? mcur - i0 : mr;
                        float *ct = c + (ic + i0) * ldc + jc + j0;
                        if (rows == mr && cols == nr) {
                            kr->ukr(kcur, pa + i0 * kcur, pb + j0 * kcur, ct, ldc, alpha, beta_cur);
                        } else {
                            float tmp[FNN_BF16_MAX_TILE] __attribute__((aligned(FNN_ALIGN)));
                            kr->ukr(kcur, pa + i0 * kcur, pb + j0 * kcur, tmp, nr, alpha, 0);
                            for (size_t i = 0; i < rows; i++)
                                for (size_t j = 0; j < cols; j++) {
                                    float *cij = ct + i * ldc + j;
                                    *cij = beta_cur == 0 ? tmp[i * nr + j] : tmp[i * nr + j] + beta_cur * *cij;
                                }
                        }
                        if (last && (bias || act != FNN_ACT_LINEAR))
                            epilogue_(ct, ldc, rows, cols, bias ? bias + jc + j0 : NULL, act, act_alpha);
                    }
                }
            }
        }
    }
    return 0;
}

/* The unblocked product, which needs no memory: each sum in input order, each product exact. */
static void naive_rows_(const bsrc *s, size_t r0, size_t r1, float alpha, float beta, float *c, size_t ldc,
                        const float *bias, int act, float act_alpha) {
    for (size_t i = r0; i < r1; i++) {
        for (size_t j = 0; j < s->n; j++) {
            float sum = 0;
            for (size_t p = 0; p < s->k; p++)
                sum += fnn_bf16_round1(op_a_(s, i, p)) * fnn_bf16_round1(op_b_(s, p, j));
            float *cij = c + i * ldc + j;
            *cij = beta == 0 ? alpha * sum : alpha * sum + beta * *cij;
        }
        if (bias || act != FNN_ACT_LINEAR) epilogue_(c + i * ldc, ldc, 1, s->n, bias, act, act_alpha);
    }
}

/* Threads over whole tiles of rows, each running the loops on its own rows: no thread count changes
 * any element's arithmetic. */
static void pairs_gemm_(const fnn_bgemm_kernel *kr, const bsrc *s, float alpha, float beta, float *c, size_t ldc,
                        const float *bias, int act, float act_alpha, int nt) {
    const size_t mr = (size_t)kr->mr, tiles = (s->m + mr - 1) / mr;
    double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    if (flops < 4e6 * nt) nt = (int)(flops / 4e6);
    if ((size_t)nt > tiles) nt = (int)tiles;
    if (nt < 1) nt = 1;
    const long parts = nt;
    FNN_PARALLEL_FOR(t, parts, {
        size_t r0 = tiles * (size_t)t / (size_t)parts * mr, r1 = tiles * (size_t)(t + 1) / (size_t)parts * mr;
        if (r1 > s->m) r1 = s->m;
        if (r0 < r1 && pairs_rows_(kr, s, r0, r1, alpha, beta, c, ldc, bias, act, act_alpha) != 0)
            naive_rows_(s, r0, r1, alpha, beta, c, ldc, bias, act, act_alpha);
    });
}

/* ---- the entry point ---------------------------------------------------------------------------- */

/* rows x cols of x (row stride ld) rounded into y (row stride cols), split over threads. */
static void round_matrix_(const float *x, size_t ld, size_t rows, size_t cols, float *y, int nt) {
    nt = fnn_threads_for(rows * cols, FNN_BF16_GRAIN, nt);
    FNN_PARALLEL_RANGES(lo, hi, rows, {
        for (size_t i = lo; i < hi; i++) fnn_bf16_round(x + i * ld, y + i * cols, cols);
    });
}

void fnn_sgemm_bf16_ex(int round, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                       size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc, const float *bias,
                       int act, float act_alpha, int nt) {
    if (m == 0 || n == 0) return;
    const bsrc s = {ta, tb, a, b, lda, ldb, m, n, k};
    const fnn_bgemm_kernel *kr = fnn_bgemm_kernel_active();
    if (k > 0 && (kr != &fnn_bgemm_kernel_ref || atomic_load(&g_force_pairs))) {
        pairs_gemm_(kr, &s, alpha, beta, c, ldc, bias, act, act_alpha, nt);
        return;
    }
    /* software: the inputs not yet in bfloat16 rounded into this thread's buffer, as stored */
    const size_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    const size_t na = round & FNN_BF16_A ? ar * ac : 0, nb = round & FNN_BF16_B ? br * bc : 0;
    float *buf = NULL;
    if (na + nb) {
        size_t bytes = (na + nb + FNN_ALIGN / sizeof(float)) * sizeof(float);
        buf = na + nb < SIZE_MAX / 8 ? fnn_thread_buffer(FNN_TBUF_BF16, bytes) : NULL;
        if (!buf) {
            naive_rows_(&s, 0, m, alpha, beta, c, ldc, bias, act, act_alpha);
            return;
        }
    }
    if (na) {
        round_matrix_(a, lda, ar, ac, buf, nt);
        a = buf;
        lda = ac;
    }
    if (nb) {
        float *rb = buf + (na + FNN_ALIGN / sizeof(float) - 1) / (FNN_ALIGN / sizeof(float)) * (FNN_ALIGN / sizeof(float));
        round_matrix_(b, ldb, br, bc, rb, nt);
        b = rb;
        ldb = bc;
    }
    fnn_sgemm_ex(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act, act_alpha, nt);
}
