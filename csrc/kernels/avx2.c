/* avx2.c - GEMM micro-kernels and the transposing pack for AVX2 + FMA (256-bit, 16 registers), and
 * the vector math at 256 bits.  Compiled with a target attribute only; chosen at run time when the
 * CPU has AVX2 and FMA.  Empty on other architectures.
 * float: 6 rows x 2 vectors (12 accumulators), or 4 rows when M is a multiple of 4 that 6 would pad. */
#include "../fnn_impl.h"

#if defined(__x86_64__)
#include <string.h>
#define UKR_VBYTES 32
#define UKR_ATTR __attribute__((target("avx2,fma")))
#define UKR_NV 2

#define UKR_T float
#define UKR_MR 6
#define UKR_NAME fnn_sgemm_ukr_avx2_6x16
#include "ukr_t.h"
#undef UKR_MR
#undef UKR_NAME

#define UKR_MR 4
#define UKR_NAME fnn_sgemm_ukr_avx2_4x16
#include "ukr_t.h"
#undef UKR_T
#undef UKR_MR
#undef UKR_NAME

#define UKR_T double
#define UKR_MR 6
#define UKR_NAME fnn_dgemm_ukr_avx2_6x8
#include "ukr_t.h"
#undef UKR_MR
#undef UKR_NAME

#define UKR_MR 4
#define UKR_NAME fnn_dgemm_ukr_avx2_4x8
#include "ukr_t.h"


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

/* Block sizes beside the kernels they are tuned for. */
const fnn_sgemm_kernel fnn_sgemm_kernel_avx2 = {
    .mr = 6, .nr = 16, .mc = 144, .kc = 256, .nc = 2048, .ukr = fnn_sgemm_ukr_avx2_6x16,
    .mr2 = 4, .ukr2 = fnn_sgemm_ukr_avx2_4x16, .gemv = fnn_sgemv_avx2, .packt = fnn_spackt_avx2,
    .ukra = fnn_sgemm_ukr_avx2_6x16_da, .ukra2 = fnn_sgemm_ukr_avx2_4x16_da};
const fnn_dgemm_kernel fnn_dgemm_kernel_avx2 = {
    .mr = 6, .nr = 8, .mc = 96, .kc = 256, .nc = 2048, .ukr = fnn_dgemm_ukr_avx2_6x8,
    .mr2 = 4, .ukr2 = fnn_dgemm_ukr_avx2_4x8, .gemv = fnn_dgemv_avx2, .packt = fnn_dpackt_avx2,
    .ukra = fnn_dgemm_ukr_avx2_6x8_da, .ukra2 = fnn_dgemm_ukr_avx2_4x8_da};
/* exp and the finiteness scan (vmath_t.h) */
#define VM_VBYTES 32
#define VM_ATTR __attribute__((target("avx2,fma")))
#define VM_EXP fnn_vexp_avx2
#define VM_FINITE fnn_vall_finite_avx2
#include "vmath_t.h"
const fnn_vmath_kernel fnn_vmath_kernel_avx2 = {.exp = fnn_vexp_avx2, .all_finite = fnn_vall_finite_avx2};
#endif
