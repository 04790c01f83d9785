/* ref.c - the generic GEMM micro-kernels and transposing pack: portable C with 16-byte vectors (SSE2
 * on x86-64, NEON on aarch64, scalar code elsewhere); the generic int8 kernels, plain C; the bfloat16
 * pair kernel and the vector math at 16 bytes.  Always compiled and always registered first. */
#include "../lowp.h"
#include "../net.h"

#include <math.h>
#include <string.h>

#define UKR_VBYTES 16
#define UKR_ATTR

#define UKR_T float
#define UKR_MR 4
#define UKR_NV 2
#define UKR_NAME fnn_sgemm_ukr_ref_4x8
#include "ukr_t.h"
#undef UKR_T
#undef UKR_NV

#define UKR_T double
#define UKR_MR 4
#define UKR_NV 2
#define UKR_NAME fnn_dgemm_ukr_ref_4x4
#include "ukr_t.h"


#define GEMV_VBYTES 16
#define GEMV_ATTR 
#define GEMV_T float
#define GEMV_NAME fnn_sgemv_ref
#include "gemv_t.h"
#undef GEMV_T
#undef GEMV_NAME
#define GEMV_T double
#define GEMV_NAME fnn_dgemv_ref
#include "gemv_t.h"
#undef GEMV_T
#undef GEMV_NAME

#define PACKT_ATTR 
#define PACKT_T float
#define PACKT_W 4
#define PACKT_NAME fnn_spackt_ref
#include "packt_t.h"
#undef PACKT_T
#undef PACKT_W
#undef PACKT_NAME
#define PACKT_T double
#define PACKT_W 2
#define PACKT_NAME fnn_dpackt_ref
#include "packt_t.h"
#undef PACKT_T
#undef PACKT_W
#undef PACKT_NAME

/* Block sizes beside the kernels they are tuned for. */
const fnn_sgemm_kernel fnn_sgemm_kernel_ref = {
    .mr = 4, .nr = 8, .mc = 128, .kc = 256, .nc = 2048, .ukr = fnn_sgemm_ukr_ref_4x8,
    .mr2 = 0, .ukr2 = NULL, .gemv = fnn_sgemv_ref, .packt = fnn_spackt_ref};
const fnn_dgemm_kernel fnn_dgemm_kernel_ref = {
    .mr = 4, .nr = 4, .mc = 128, .kc = 256, .nc = 2048, .ukr = fnn_dgemm_ukr_ref_4x4,
    .mr2 = 0, .ukr2 = NULL, .gemv = fnn_dgemv_ref, .packt = fnn_dpackt_ref};

/* int8: plain C over one tile, instantiated per row count so that the loops unroll. */
static inline __attribute__((always_inline)) void qref_(int mr, size_t kq, const uint8_t *a, size_t lda,
                                                        const int8_t *b, int32_t *c) {
    int32_t acc[FNN_Q_MAX_MR][FNN_Q_NR];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < FNN_Q_NR; j++) acc[i][j] = 0;
    for (size_t g = 0; g < kq; g++) {
        /* the group's weights by input, widened once, so that the loop over columns is contiguous
         * (and vectorizes); int16 products: 127 * 63 fits, and so do sums of two */
        int16_t w[4][FNN_Q_NR];
        for (int j = 0; j < FNN_Q_NR; j++)
            for (int t = 0; t < 4; t++) w[t][j] = b[g * 64 + 4 * j + t];
        for (int i = 0; i < mr; i++) {
            const uint8_t *ai = a + (size_t)i * lda + 4 * g;
            const int16_t a0 = ai[0], a1 = ai[1], a2 = ai[2], a3 = ai[3];
            for (int j = 0; j < FNN_Q_NR; j++)
                acc[i][j] += (int32_t)(int16_t)(a0 * w[0][j] + a1 * w[1][j]) + (int32_t)(int16_t)(a2 * w[2][j] + a3 * w[3][j]);
        }
    }
    for (int i = 0; i < mr; i++) memcpy(c + i * FNN_Q_NR, acc[i], sizeof acc[i]);
}

static void fnn_qgemm_ukr_ref_1x16(size_t kq, const uint8_t *a, size_t lda, const int8_t *b, int32_t *c) {
    qref_(1, kq, a, lda, b, c);
}
static void fnn_qgemm_ukr_ref_2x16(size_t kq, const uint8_t *a, size_t lda, const int8_t *b, int32_t *c) {
    qref_(2, kq, a, lda, b, c);
}
static void fnn_qgemm_ukr_ref_4x16(size_t kq, const uint8_t *a, size_t lda, const int8_t *b, int32_t *c) {
    qref_(4, kq, a, lda, b, c);
}

const fnn_qgemm_kernel fnn_qgemm_kernel_ref = {
    .name = "generic", .mc = 256,
    .ukr = {[1] = fnn_qgemm_ukr_ref_1x16, [2] = fnn_qgemm_ukr_ref_2x16, [4] = fnn_qgemm_ukr_ref_4x16},
    .rows = fnn_qrows_ref, .out = fnn_qout_ref};

/* bfloat16 pairs: the portable form of vdpbf16ps (bukr_t.h), 4 x 8; the test oracle of the AVX512_BF16
 * path's loops on any CPU (fnn_bf16_force_pairs), while the software path multiplies in float32. */
#define BUKR_VBYTES 16
#define BUKR_ATTR
#define BUKR_MR 4
#define BUKR_NV 2
#define BUKR_NAME fnn_bgemm_ukr_ref_4x8
#define BUKR_DOT(acc, a, b)                                                                        \
    (((acc) + (BUKR_F)((a) & 0xffff0000u) * (BUKR_F)((b) & 0xffff0000u)) + (BUKR_F)((a) << 16) * (BUKR_F)((b) << 16))
#include "bukr_t.h"

const fnn_bgemm_kernel fnn_bgemm_kernel_ref = {
    .name = "software", .mr = 4, .nr = 8, .mc = 128, .kc = 256, .nc = 2048, .ukr = fnn_bgemm_ukr_ref_4x8};

/* exp and the finiteness scan (vmath_t.h) */
#define VM_VBYTES 16
#define VM_ATTR 
#define VM_EXP fnn_vexp_ref
#define VM_FINITE fnn_vall_finite_ref
#include "vmath_t.h"

/* the optimizer's update (update_t.h) */
#define UPD_ATTR 
#define UPD_T float
#define UPD_SQRT sqrtf
#define UPD_NAME fnn_supdate_ref
#include "update_t.h"
#undef UPD_T
#undef UPD_SQRT
#undef UPD_NAME
#define UPD_T double
#define UPD_SQRT sqrt
#define UPD_NAME fnn_dupdate_ref
#include "update_t.h"
#undef UPD_T
#undef UPD_SQRT
#undef UPD_NAME
#undef UPD_ATTR
const fnn_vmath_kernel fnn_vmath_kernel_ref = {.exp = fnn_vexp_ref, .all_finite = fnn_vall_finite_ref,
                                              .supdate = fnn_supdate_ref, .dupdate = fnn_dupdate_ref};
