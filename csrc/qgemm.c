/* qgemm.c - the int8 Dense layer (lowp.h has the arithmetic): weights quantized and packed once,
 * input rows quantized at run time, the integer product through the micro-kernels of kernels/, and
 * the output pass (rescale, bias, activation) on each finished tile.
 *
 * Everything here is portable C, compiled once: only the micro-kernel changes with the instruction
 * set, and it sums integers exactly, so results are the same bits on every path.  Threads split the
 * rows (or, for few rows, the column panels); each output is computed whole by one thread, so
 * results do not depend on the thread count either.  Nothing is allocated: the caller's scratch holds
 * the quantized rows (fnn_qscratch_bytes).
 */
#include "lowp.h"

#include <stdlib.h>
#include <string.h>

#define FNN_Q_GRAIN 32768          /* values quantized per thread, at least */
#define FNN_Q_MACS_PER_THREAD 4e6  /* multiply-adds of a product per thread, at least */
#define FNN_Q_A_BLOCK 98304       /* bytes of quantized rows a cache block aims at (L2) */

static inline size_t kq_of(size_t in) { return (in + 7) / 8 * 2; } /* groups of four inputs, even */
static inline size_t panels_of(size_t out) { return (out + FNN_Q_NR - 1) / FNN_Q_NR; }

/* ---- kernels --------------------------------------------------------------------------------------- */

const fnn_qgemm_kernel *fnn_qgemm_kernel_active(void) {
    switch (fnn_simd_level()) {
#if defined(__x86_64__)
    case FNN_SIMD_AVX512: return fnn_cpu_has_avx512_vnni() ? &fnn_qgemm_kernel_vnni : &fnn_qgemm_kernel_avx2;
    case FNN_SIMD_AVX2: return &fnn_qgemm_kernel_avx2;
#endif
    default: return &fnn_qgemm_kernel_ref;
    }
}

/* ---- weights ---------------------------------------------------------------------------------------- */

size_t fnn_qpack_bytes(size_t in, size_t out) {
    const size_t np = panels_of(out);
    return np * kq_of(in) * 64 + np * FNN_Q_NR * sizeof(int32_t);
}

void fnn_qpack(const int8_t *w, size_t in, size_t out, void *dst) {
    const size_t kq = kq_of(in), np = panels_of(out);
    int8_t *d = dst;
    int32_t *csum = (int32_t *)(void *)(d + np * kq * 64);
    for (size_t p = 0; p < np; p++)
        for (size_t g = 0; g < kq; g++)
            for (size_t jj = 0; jj < FNN_Q_NR; jj++)
                for (size_t t = 0; t < 4; t++) {
                    size_t k = 4 * g + t, j = p * FNN_Q_NR + jj;
                    d[(p * kq + g) * 64 + 4 * jj + t] = k < in && j < out ? w[k * out + j] : 0;
                }
    for (size_t j = 0; j < np * FNN_Q_NR; j++) csum[j] = 0;
    for (size_t k = 0; k < in; k++)
        for (size_t j = 0; j < out; j++) csum[j] += w[k * out + j];
}

static inline float round_(float v) { return (v + FNN_Q_ROUNDER) - FNN_Q_ROUNDER; } /* lowp.h */

void fnn_quantize_weights(const float *w, size_t in, size_t out, int8_t *q, float *scale) {
    for (size_t j = 0; j < out; j++) scale[j] = 0;
    for (size_t k = 0; k < in; k++)
        for (size_t j = 0; j < out; j++) {
            float a = w[k * out + j] < 0 ? -w[k * out + j] : w[k * out + j];
            scale[j] = a > scale[j] ? a : scale[j];
        }
    for (size_t j = 0; j < out; j++) scale[j] /= (float)FNN_Q_WMAX; /* the column's max |w| maps to 63 */
    for (size_t k = 0; k < in; k++)
        for (size_t j = 0; j < out; j++) {
            float v = scale[j] > 0 ? round_(w[k * out + j] / scale[j]) : 0;
            v = v >= -FNN_Q_WMAX ? v : -FNN_Q_WMAX;
            v = v <= FNN_Q_WMAX ? v : FNN_Q_WMAX;
            q[k * out + j] = (int8_t)(int)v;
        }
}

void fnn_dequantize_weights(const int8_t *q, const float *scale, size_t in, size_t out, float *w) {
    for (size_t k = 0; k < in; k++)
        for (size_t j = 0; j < out; j++) w[k * out + j] = (float)q[k * out + j] * scale[j];
}

/* ---- the passes around the product (lowp.h defines them; these are the portable forms) -------- */

typedef float v4f_ __attribute__((vector_size(16)));
typedef int32_t v4i_ __attribute__((vector_size(16)));

static void range_ref_(const float *x, size_t n, float *plo, float *phi) {
    v4f_ lo = {0, 0, 0, 0}, hi = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f_ v;
        memcpy(&v, x + i, sizeof v);
        v4i_ lt = v < lo, gt = v > hi;
        lo = (v4f_)(((v4i_)v & lt) | ((v4i_)lo & ~lt));
        hi = (v4f_)(((v4i_)v & gt) | ((v4i_)hi & ~gt));
    }
    float l[4], h[4];
    memcpy(l, &lo, sizeof l);
    memcpy(h, &hi, sizeof h);
    *plo = *phi = 0;
    fnn_qrange_fold(l, 4, plo, phi);
    fnn_qrange_fold(h, 4, plo, phi);
    fnn_qrange_fold(x + i, n - i, plo, phi);
}

FNN_EXACT void fnn_qrows_ref(const float *x, size_t rows, size_t n, size_t kp, const float *range, uint8_t *q,
                             float *s, int32_t *zp) {
    FNN_EXACT_BEGIN
    for (size_t r = 0; r < rows; r++, x += n, q += kp) {
        float lo, hi, inv, z;
        if (range) lo = range[0], hi = range[1];
        else range_ref_(x, n, &lo, &hi);
        fnn_qparams(lo, hi, &inv, &z, s + r);
        zp[r] = (int32_t)z;
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            const float d = x[i] - x[i]; /* NaN for NaN and Inf */
            bad |= d != d;
            q[i] = fnn_q1(x[i], inv, z);
        }
        if (bad) s[r] = __builtin_nanf("");
        for (size_t i = n; i < kp; i++) q[i] = 0;
    }
}

FNN_EXACT void fnn_qout_ref(const fnn_qout *o, const int32_t *t, size_t rows, size_t cols, float *y, size_t ldy) {
    FNN_EXACT_BEGIN
    for (size_t i = 0; i < rows; i++) {
        const float s = o->rs[i];
        const int32_t z = o->rz[i];
        float v[FNN_Q_NR];
        for (int j = 0; j < FNN_Q_NR; j++) v[j] = (float)(t[i * FNN_Q_NR + j] - z * o->cs[j]) * (s * o->ws[j]);
        if (o->b)
            for (int j = 0; j < FNN_Q_NR; j++) v[j] += o->b[j];
        if (o->relu)
            for (int j = 0; j < FNN_Q_NR; j++) v[j] = v[j] < 0 ? 0.0f : v[j];
        memcpy(y + i * ldy, v, cols * sizeof *y);
    }
}

void fnn_quantize_rows(const float *x, size_t rows, size_t cols, const float *range, uint8_t *q, float *scale,
                       int32_t *zp) {
    fnn_qgemm_kernel_active()->rows(x, rows, cols, cols, range, q, scale, zp);
}

/* ---- the product and the output pass ---------------------------------------------------------------- */

size_t fnn_qscratch_bytes(size_t rows, size_t in) {
    return rows * 4 * kq_of(in) + rows * (sizeof(float) + sizeof(int32_t));
}

typedef struct {
    const fnn_qdense *L;      /* NULL: raw int32 output (the test hook) */
    size_t rows, kq, np;
    const uint8_t *q;         /* rows x 4kq */
    const float *rs;          /* per-row scale and zero point */
    const int32_t *rz;
    const int8_t *pack;
    const int32_t *csum;      /* np * 16 column sums */
    int relu;                 /* the activation the output pass applies (others run after the product) */
    float *y;                 /* rows x out */
    int32_t *raw;             /* rows x out, when L is NULL */
    size_t out;
    const float *ws_last, *b_last; /* the last panel's scales and biases padded to 16 (out % 16 != 0) */
} qrun;

/* The output pass of one tile: rows r0.. (n of them) by the columns of panel p, from t[i*16 + j]. */
static void out_tile_(const qrun *R, const fnn_qgemm_kernel *kr, const int32_t *t, size_t r0, size_t n, size_t p) {
    const size_t j0 = p * FNN_Q_NR, cols = R->out - j0 < FNN_Q_NR ? R->out - j0 : FNN_Q_NR;
    if (!R->L) {
        for (size_t i = 0; i < n; i++) memcpy(R->raw + (r0 + i) * R->out + j0, t + i * FNN_Q_NR, cols * sizeof(int32_t));
        return;
    }
    const int last = cols < FNN_Q_NR;
    const fnn_qout o = {.cs = R->csum + j0, .ws = last ? R->ws_last : R->L->wscale + j0,
                        .b = !R->L->bias ? NULL : last ? R->b_last : R->L->bias + j0, .rs = R->rs + r0,
                        .rz = R->rz + r0, .relu = R->relu};
    kr->out(&o, t, n, cols, R->y + r0 * R->out + j0, R->out);
}

/* Rows [r0, r1) by panels [p0, p1): cache blocks of rows, then each panel (in L1) against every tile of
 * the block, each tile through the widest kernel that fits the rows left. */
static void run_block_(const qrun *R, const fnn_qgemm_kernel *kr, size_t r0, size_t r1, size_t p0, size_t p1) {
    const size_t lda = 4 * R->kq;
    size_t mc = FNN_Q_A_BLOCK / (lda ? lda : 1);
    if (mc > (size_t)kr->mc) mc = (size_t)kr->mc;
    if (mc < 16) mc = 16;
    int32_t tile[FNN_Q_MAX_MR * FNN_Q_NR];
    for (size_t ic = r0; ic < r1; ic += mc) {
        size_t ie = r1 - ic < mc ? r1 : ic + mc;
        for (size_t p = p0; p < p1; p++) {
            const int8_t *bp = R->pack + p * R->kq * 64;
            for (size_t i = ic; i < ie;) {
                size_t mr = ie - i < FNN_Q_MAX_MR ? ie - i : FNN_Q_MAX_MR;
                while (!kr->ukr[mr]) mr--;
                kr->ukr[mr](R->kq, R->q + i * lda, lda, bp, tile);
                out_tile_(R, kr, tile, i, mr, p);
                i += mr;
            }
        }
    }
}

/* The product of R's quantized rows and packed weights, split over threads. */
static void run_(const qrun *R, const fnn_qgemm_kernel *kr, int nt) {
    double macs = (double)R->rows * (double)(4 * R->kq) * (double)(R->np * FNN_Q_NR);
    nt = fnn_threads_for(macs > 1e15 ? (size_t)1e15 : (size_t)macs, (size_t)FNN_Q_MACS_PER_THREAD, nt);
    /* rows in tiles of 16 per thread at least; with fewer rows, the panels too */
    size_t rparts = (size_t)nt, pparts = 1;
    if (R->rows < 16 * (size_t)nt) {
        rparts = (R->rows + 15) / 16;
        if (rparts < 1) rparts = 1;
        pparts = ((size_t)nt + rparts - 1) / rparts;
        if (pparts > R->np) pparts = R->np;
    }
    const long items = (long)(rparts * pparts);
    if (items <= 1) nt = 1;
    FNN_PARALLEL_FOR(it, items, {
        size_t rp = (size_t)it / pparts, pp = (size_t)it % pparts;
        size_t r0 = R->rows * rp / rparts, r1 = R->rows * (rp + 1) / rparts;
        size_t p0 = R->np * pp / pparts, p1 = R->np * (pp + 1) / pparts;
        if (r0 < r1 && p0 < p1) run_block_(R, kr, r0, r1, p0, p1);
    });
}

void fnn_qdense_forward(const fnn_qdense *L, const float *x, size_t rows, float *y, void *scratch, int nt) {
    if (rows == 0) return;
    const fnn_qgemm_kernel *kr = fnn_qgemm_kernel_active();
    const size_t kq = kq_of(L->in), kp = 4 * kq;
    uint8_t *q = scratch;
    float *rs = (float *)(void *)(q + rows * kp);
    int32_t *rz = (int32_t *)(void *)(rs + rows);
    int ntq = fnn_threads_for(rows * L->in, FNN_Q_GRAIN, nt);
    {
        int nt = ntq;
        FNN_PARALLEL_RANGES(lo, hi, rows, {
            kr->rows(x + lo * L->in, hi - lo, L->in, kp, L->range, q + lo * kp, rs + lo, rz + lo);
        });
    }
    const size_t np = panels_of(L->out);
    float ws_last[FNN_Q_NR] = {0}, b_last[FNN_Q_NR] = {0}; /* the last panel's, padded once per call */
    const size_t j0 = (np - 1) * FNN_Q_NR;
    memcpy(ws_last, L->wscale + j0, (L->out - j0) * sizeof *ws_last);
    if (L->bias) memcpy(b_last, L->bias + j0, (L->out - j0) * sizeof *b_last);
    qrun R = {.L = L, .rows = rows, .kq = kq, .np = np, .q = q, .rs = rs, .rz = rz, .pack = L->pack,
              .ws_last = ws_last, .b_last = b_last,
              .csum = (const int32_t *)(const void *)((const int8_t *)L->pack + np * kq * 64),
              .relu = L->act == FNN_ACT_RELU, .y = y, .raw = NULL, .out = L->out};
    run_(&R, kr, nt);
    /* other activations over the finished rows (row-wise ones need them whole) */
    if (L->act != FNN_ACT_LINEAR && L->act != FNN_ACT_RELU) fnn_sact_forward(L->act, L->alpha, y, y, rows, L->out, nt);
}

int fnn_qgemm_s32(size_t m, size_t n, size_t k, const uint8_t *a, const int8_t *w, int32_t *c, int nt) {
    if (m == 0 || n == 0) return FNN_OK;
    const size_t kq = kq_of(k), kp = 4 * kq, np = panels_of(n);
    void *pack = fnn_aligned_alloc(fnn_qpack_bytes(k, n));
    uint8_t *q = fnn_aligned_alloc(m * kp);
    if (!pack || !q) {
        fnn_aligned_free(pack);
        fnn_aligned_free(q);
        return FNN_ERR_NOMEM;
    }
    fnn_qpack(w, k, n, pack);
    for (size_t r = 0; r < m; r++) {
        memcpy(q + r * kp, a + r * k, k);
        memset(q + r * kp + k, 0, kp - k);
    }
    qrun R = {.L = NULL, .rows = m, .kq = kq, .np = np, .q = q, .pack = pack, .raw = c, .out = n};
    run_(&R, fnn_qgemm_kernel_active(), nt);
    fnn_aligned_free(pack);
    fnn_aligned_free(q);
    return FNN_OK;
}
