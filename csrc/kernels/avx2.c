/* avx2.c - GEMM micro-kernels and the transposing pack for AVX2 + FMA (256-bit, 16 registers), and
 * the int8 micro-kernels.  Compiled with a target attribute only; chosen at run time when the CPU has
 * AVX2 and FMA.  Empty on other architectures.
 * float: 6 rows x 2 vectors (12 accumulators), or 4 rows when M is a multiple of 4 that 6 would pad;
 * 6 or 4 rows x 1 vector for products of at most 8 columns.
 * int8: rows x 16 columns (two vectors); two groups of four products as two vpmaddubsw (u8 x s8 pairs
 * into int16), their sum in int16 and one vpmaddwd by ones (pairs of those into int32): exact for
 * 7-bit inputs and weights (lowp.h). */
#include "../lowp.h"
#include "../net.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>
#define UKR_VBYTES 32
#define UKR_ATTR __attribute__((target("avx2,fma")))

#define UKR_T float
#define UKR_NV 2
#define UKR_MR 6
#define UKR_NAME fnn_sgemm_ukr_avx2_6x16
#include "ukr_t.h"
#define UKR_MR 4
#define UKR_NAME fnn_sgemm_ukr_avx2_4x16
#include "ukr_t.h"
#undef UKR_NV
#define UKR_NV 1 /* the thin tiles: one vector of columns */
#define UKR_MR 6
#define UKR_NAME fnn_sgemm_ukr_avx2_6x8
#include "ukr_t.h"
#define UKR_MR 4
#define UKR_NAME fnn_sgemm_ukr_avx2_4x8
#include "ukr_t.h"
#undef UKR_T
#undef UKR_NV

#define UKR_T double
#define UKR_NV 2
#define UKR_MR 6
#define UKR_NAME fnn_dgemm_ukr_avx2_6x8
#include "ukr_t.h"
#define UKR_MR 4
#define UKR_NAME fnn_dgemm_ukr_avx2_4x8
#include "ukr_t.h"
#undef UKR_NV
#define UKR_NV 1 /* the thin tiles: one vector of columns */
#define UKR_MR 6
#define UKR_NAME fnn_dgemm_ukr_avx2_6x4
#include "ukr_t.h"
#define UKR_MR 4
#define UKR_NAME fnn_dgemm_ukr_avx2_4x4
#include "ukr_t.h"
#undef UKR_T
#undef UKR_NV

#define GEMV_VBYTES 32
#define GEMV_ATTR __attribute__((target("avx2,fma")))
#define GEMV_T float
#define GEMV_NAME fnn_sgemv_avx2
#include "gemv_t.h"
#undef GEMV_T
#undef GEMV_NAME
#define GEMV_T double
#define GEMV_NAME fnn_dgemv_avx2
#include "gemv_t.h"
#undef GEMV_T
#undef GEMV_NAME

#define PACKT_ATTR __attribute__((target("avx2,fma")))
#define PACKT_T float
#define PACKT_W 8
#define PACKT_NAME fnn_spackt_avx2
#include "packt_t.h"
#undef PACKT_T
#undef PACKT_W
#undef PACKT_NAME
#define PACKT_T double
#define PACKT_W 4
#define PACKT_NAME fnn_dpackt_avx2
#include "packt_t.h"
#undef PACKT_T
#undef PACKT_W
#undef PACKT_NAME

#define QUKR_ATTR __attribute__((target("avx2,fma")))
#define QUKR_V __m256i
#define QUKR_NV 2
#define QUKR_ZERO() _mm256_setzero_si256()
#define QUKR_LOAD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define QUKR_STORE(p, v) _mm256_storeu_si256((__m256i *)(void *)(p), v)
#define QUKR_BCAST(x) _mm256_set1_epi32(x)
#define QUKR_SETUP const __m256i ones_ = _mm256_set1_epi16(1);
#define QUKR_DOT2(acc, a0, b0, a1, b1)                                                            \
    _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(a0, b0),               \
                                                             _mm256_maddubs_epi16(a1, b1)), ones_))
#define QUKR_MR 1
#define QUKR_NAME fnn_qgemm_ukr_avx2_1x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME
#define QUKR_MR 2
#define QUKR_NAME fnn_qgemm_ukr_avx2_2x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME
#define QUKR_MR 3
#define QUKR_NAME fnn_qgemm_ukr_avx2_3x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME
#define QUKR_MR 4
#define QUKR_NAME fnn_qgemm_ukr_avx2_4x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME

/* The passes around the int8 product (lowp.h), eight lanes at a time, the same bits as the portable
 * ones: the same IEEE operations in the same order, max/min taking NaN the way the C comparisons do,
 * and no multiply fused into the add after it (FNN_EXACT). */

__attribute__((target("avx2,fma"))) static void qrange_avx2_(const float *x, size_t n, float *plo, float *phi) {
    /* two chains each way; no lane ever holds a NaN (a NaN in v gives the second operand: it is passed
     * over), so the lanes fold in any order to the portable form's values (up to the sign of a zero,
     * which neither the scale nor the zero point sees) */
    const __m256 zero = _mm256_setzero_ps();
    __m256 lo0 = zero, hi0 = zero, lo1 = zero, hi1 = zero;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        lo0 = _mm256_min_ps(v0, lo0);
        hi0 = _mm256_max_ps(v0, hi0);
        lo1 = _mm256_min_ps(v1, lo1);
        hi1 = _mm256_max_ps(v1, hi1);
    }
    if (i + 8 <= n) {
        const __m256 v0 = _mm256_loadu_ps(x + i);
        lo0 = _mm256_min_ps(v0, lo0);
        hi0 = _mm256_max_ps(v0, hi0);
        i += 8;
    }
    lo0 = _mm256_min_ps(lo0, lo1);
    hi0 = _mm256_max_ps(hi0, hi1);
    __m128 l = _mm_min_ps(_mm256_castps256_ps128(lo0), _mm256_extractf128_ps(lo0, 1));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(hi0), _mm256_extractf128_ps(hi0, 1));
    l = _mm_min_ps(l, _mm_movehl_ps(l, l));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    l = _mm_min_ss(l, _mm_shuffle_ps(l, l, 1));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    *plo = _mm_cvtss_f32(l);
    *phi = _mm_cvtss_f32(h);
    fnn_qrange_fold(x + i, n - i, plo, phi);
}

__attribute__((target("avx2,fma"))) FNN_EXACT void fnn_qrows_avx2(const float *x, size_t rows, size_t n, size_t kp,
                                                                  const float *range, uint8_t *q, float *s,
                                                                  int32_t *zp) {
    FNN_EXACT_BEGIN
    const __m256 lo256 = _mm256_set1_ps(-256.0f), hi256 = _mm256_set1_ps(256.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t r = 0; r < rows; r++, x += n, q += kp) {
        float lo, hi, inv, z;
        if (range) lo = range[0], hi = range[1];
        else qrange_avx2_(x, n, &lo, &hi);
        fnn_qparams(lo, hi, &inv, &z, s + r);
        zp[r] = (int32_t)z;
        const __m256 vi = _mm256_set1_ps(inv);
        const __m256i vz = _mm256_set1_epi32(zp[r]);
        size_t i = 0;
        __m256 bad = _mm256_setzero_ps(); /* x - x: NaN for NaN and Inf */
        for (; i + 32 <= n; i += 32) {
            __m256i k[4];
            for (int u = 0; u < 4; u++) {
                const __m256 xv = _mm256_loadu_ps(x + i + 8 * u);
                bad = _mm256_or_ps(bad, _mm256_sub_ps(xv, xv));
                __m256 v = _mm256_mul_ps(xv, vi);
                v = _mm256_min_ps(_mm256_max_ps(v, lo256), hi256); /* NaN becomes -256, as in the portable form */
                k[u] = _mm256_add_epi32(_mm256_cvtps_epi32(v), vz);
            }
            /* saturating packs clamp to [0, 255], min to the top; the packs interleave the 128-bit lanes,
             * which order undoes */
            __m256i w = _mm256_packus_epi16(_mm256_packs_epi32(k[0], k[1]), _mm256_packs_epi32(k[2], k[3]));
            w = _mm256_min_epu8(w, _mm256_set1_epi8(FNN_Q_AMAX));
            _mm256_storeu_si256((__m256i *)(void *)(q + i), _mm256_permutevar8x32_epi32(w, order));
        }
        int nonfinite = _mm256_movemask_ps(_mm256_cmp_ps(bad, bad, _CMP_UNORD_Q)) != 0;
        for (; i < n; i++) { /* the portable form */
            const float d = x[i] - x[i];
            nonfinite |= d != d;
            q[i] = fnn_q1(x[i], inv, z);
        }
        if (nonfinite) s[r] = __builtin_nanf("");
        for (i = n; i < kp; i++) q[i] = 0;
    }
}

__attribute__((target("avx2,fma"))) FNN_EXACT void fnn_qout_avx2(const fnn_qout *o, const int32_t *t, size_t rows,
                                                                size_t cols, float *y, size_t ldy) {
    FNN_EXACT_BEGIN
    const __m256i cs0 = _mm256_loadu_si256((const __m256i *)(const void *)o->cs);
    const __m256i cs1 = _mm256_loadu_si256((const __m256i *)(const void *)(o->cs + 8));
    const __m256 ws0 = _mm256_loadu_ps(o->ws), ws1 = _mm256_loadu_ps(o->ws + 8), zero = _mm256_setzero_ps();
    const __m256 b0 = o->b ? _mm256_loadu_ps(o->b) : zero, b1 = o->b ? _mm256_loadu_ps(o->b + 8) : zero;
    for (size_t i = 0; i < rows; i++) {
        const __m256i z = _mm256_set1_epi32(o->rz[i]);
        const __m256 s = _mm256_set1_ps(o->rs[i]);
        const int32_t *ti = t + i * 16;
        __m256 v0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(const void *)ti),
                                                        _mm256_mullo_epi32(z, cs0)));
        __m256 v1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(ti + 8)),
                                                        _mm256_mullo_epi32(z, cs1)));
        v0 = _mm256_mul_ps(v0, _mm256_mul_ps(s, ws0));
        v1 = _mm256_mul_ps(v1, _mm256_mul_ps(s, ws1));
        if (o->b) {
            v0 = _mm256_add_ps(v0, b0);
            v1 = _mm256_add_ps(v1, b1);
        }
        if (o->relu) { /* max(0, v) keeps a NaN v, as v < 0 ? 0 : v does */
            v0 = _mm256_max_ps(zero, v0);
            v1 = _mm256_max_ps(zero, v1);
        }
        float *yi = y + i * ldy;
        if (cols == 16) {
            _mm256_storeu_ps(yi, v0);
            _mm256_storeu_ps(yi + 8, v1);
        } else { /* the last panel's columns only */
            const __m256i j = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), c = _mm256_set1_epi32((int)cols);
            _mm256_maskstore_ps(yi, _mm256_cmpgt_epi32(c, j), v0);
            _mm256_maskstore_ps(yi + 8, _mm256_cmpgt_epi32(c, _mm256_add_epi32(j, _mm256_set1_epi32(8))), v1);
        }
    }
}

/* Block sizes beside the kernels they are tuned for. */
const fnn_sgemm_kernel fnn_sgemm_kernel_avx2 = {
    .mr = 6, .nr = 16, .mc = 144, .kc = 256, .nc = 2048, .ukr = fnn_sgemm_ukr_avx2_6x16,
    .mr2 = 4, .ukr2 = fnn_sgemm_ukr_avx2_4x16, .nrn = 8, .ukrn = fnn_sgemm_ukr_avx2_6x8,
    .ukrn2 = fnn_sgemm_ukr_avx2_4x8, .gemv = fnn_sgemv_avx2, .packt = fnn_spackt_avx2};
const fnn_dgemm_kernel fnn_dgemm_kernel_avx2 = {
    .mr = 6, .nr = 8, .mc = 96, .kc = 256, .nc = 2048, .ukr = fnn_dgemm_ukr_avx2_6x8,
    .mr2 = 4, .ukr2 = fnn_dgemm_ukr_avx2_4x8, .nrn = 4, .ukrn = fnn_dgemm_ukr_avx2_6x4,
    .ukrn2 = fnn_dgemm_ukr_avx2_4x4, .gemv = fnn_dgemv_avx2, .packt = fnn_dpackt_avx2};
const fnn_qgemm_kernel fnn_qgemm_kernel_avx2 = {
    .name = "avx2", .mc = 256, .ukr = {[1] = fnn_qgemm_ukr_avx2_1x16, [2] = fnn_qgemm_ukr_avx2_2x16,
                                       [3] = fnn_qgemm_ukr_avx2_3x16, [4] = fnn_qgemm_ukr_avx2_4x16},
    .rows = fnn_qrows_avx2, .out = fnn_qout_avx2};

/* exp and the finiteness scan (vmath_t.h) */
#define VM_VBYTES 32
#define VM_ATTR __attribute__((target("avx2,fma")))
#define VM_EXP fnn_vexp_avx2
#define VM_FINITE fnn_vall_finite_avx2
#include "vmath_t.h"

/* the optimizer's update (update_t.h) */
#define UPD_ATTR __attribute__((target("avx2,fma")))
#define UPD_T float
#define UPD_SQRT sqrtf
#define UPD_NAME fnn_supdate_avx2
#include "update_t.h"
#undef UPD_T
#undef UPD_SQRT
#undef UPD_NAME
#define UPD_T double
#define UPD_SQRT sqrt
#define UPD_NAME fnn_dupdate_avx2
#include "update_t.h"
#undef UPD_T
#undef UPD_SQRT
#undef UPD_NAME
#undef UPD_ATTR
const fnn_vmath_kernel fnn_vmath_kernel_avx2 = {.exp = fnn_vexp_avx2, .all_finite = fnn_vall_finite_avx2,
                                              .supdate = fnn_supdate_avx2, .dupdate = fnn_dupdate_avx2};
#endif
