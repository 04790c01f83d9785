/* avx512.c - GEMM micro-kernels and the transposing pack for AVX-512 F/BW/DQ/VL (512-bit, 32
 * registers).  Compiled with a target attribute only; chosen at run time when the CPU has AVX-512.
 * Empty on other architectures.
 * float: 14x32 (28 accumulators) for large M, 8x32 when M is a multiple of 8 that 14 would pad;
 * 14x16 and 8x16 for products of at most 16 columns.
 * Also the vector math (vmath_t.h) at 512 bits. */
#include "../fnn_impl.h"
#include "../net.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#define UKR_VBYTES 64
#define UKR_ATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))

#define UKR_T float
#define UKR_NV 2
#define UKR_MR 14
#define UKR_NAME fnn_sgemm_ukr_avx512_14x32
#include "ukr_t.h"
#define UKR_MR 8
#define UKR_NAME fnn_sgemm_ukr_avx512_8x32
#include "ukr_t.h"
#undef UKR_NV
#define UKR_NV 1 /* the thin tiles: one vector of columns */
#define UKR_MR 14
#define UKR_NAME fnn_sgemm_ukr_avx512_14x16
#include "ukr_t.h"
#define UKR_MR 8
#define UKR_NAME fnn_sgemm_ukr_avx512_8x16
#include "ukr_t.h"
#undef UKR_T
#undef UKR_NV

#define UKR_T double
#define UKR_NV 2
#define UKR_MR 14
#define UKR_NAME fnn_dgemm_ukr_avx512_14x16
#include "ukr_t.h"
#define UKR_MR 8
#define UKR_NAME fnn_dgemm_ukr_avx512_8x16
#include "ukr_t.h"
#undef UKR_NV
#define UKR_NV 1 /* the thin tiles: one vector of columns */
#define UKR_MR 14
#define UKR_NAME fnn_dgemm_ukr_avx512_14x8
#include "ukr_t.h"
#define UKR_MR 8
#define UKR_NAME fnn_dgemm_ukr_avx512_8x8
#include "ukr_t.h"
#undef UKR_T
#undef UKR_NV

#define GEMV_VBYTES 64
#define GEMV_ATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define GEMV_T float
#define GEMV_NAME fnn_sgemv_avx512
#include "gemv_t.h"
#undef GEMV_T
#undef GEMV_NAME
#define GEMV_T double
#define GEMV_NAME fnn_dgemv_avx512
#include "gemv_t.h"
#undef GEMV_T
#undef GEMV_NAME

#define PACKT_ATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define PACKT_T float
#define PACKT_W 8
#define PACKT_NAME fnn_spackt_avx512
#include "packt_t.h"
#undef PACKT_T
#undef PACKT_W
#undef PACKT_NAME
#define PACKT_T double
#define PACKT_W 4
#define PACKT_NAME fnn_dpackt_avx512
#include "packt_t.h"
#undef PACKT_T
#undef PACKT_W
#undef PACKT_NAME

/* Block sizes beside the kernels they are tuned for. */
const fnn_sgemm_kernel fnn_sgemm_kernel_avx512 = {
    .mr = 14, .nr = 32, .mc = 252, .kc = 384, .nc = 4096, .ukr = fnn_sgemm_ukr_avx512_14x32,
    .mr2 = 8, .ukr2 = fnn_sgemm_ukr_avx512_8x32, .nrn = 16, .ukrn = fnn_sgemm_ukr_avx512_14x16,
    .ukrn2 = fnn_sgemm_ukr_avx512_8x16, .gemv = fnn_sgemv_avx512, .packt = fnn_spackt_avx512};
const fnn_dgemm_kernel fnn_dgemm_kernel_avx512 = {
    .mr = 14, .nr = 16, .mc = 126, .kc = 384, .nc = 2048, .ukr = fnn_dgemm_ukr_avx512_14x16,
    .mr2 = 8, .ukr2 = fnn_dgemm_ukr_avx512_8x16, .nrn = 8, .ukrn = fnn_dgemm_ukr_avx512_14x8,
    .ukrn2 = fnn_dgemm_ukr_avx512_8x8, .gemv = fnn_dgemv_avx512, .packt = fnn_dpackt_avx512};

/* exp and the finiteness scan (vmath_t.h) */
#define VM_VBYTES 64
#define VM_ATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define VM_EXP fnn_vexp_avx512
#define VM_FINITE fnn_vall_finite_avx512
#include "vmath_t.h"

/* the optimizer's update (update_t.h) */
#define UPD_ATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define UPD_T float
#define UPD_SQRT sqrtf
#define UPD_NAME fnn_supdate_avx512
#include "update_t.h"
#undef UPD_T
#undef UPD_SQRT
#undef UPD_NAME
#define UPD_T double
#define UPD_SQRT sqrt
#define UPD_NAME fnn_dupdate_avx512
#include "update_t.h"
#undef UPD_T
#undef UPD_SQRT
#undef UPD_NAME
#undef UPD_ATTR
const fnn_vmath_kernel fnn_vmath_kernel_avx512 = {.exp = fnn_vexp_avx512, .all_finite = fnn_vall_finite_avx512,
                                              .supdate = fnn_supdate_avx512, .dupdate = fnn_dupdate_avx512};
#endif
