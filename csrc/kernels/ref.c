/* ref.c - the generic GEMM micro-kernels and transposing pack: portable C with 16-byte vectors (SSE2
 * on x86-64, NEON on aarch64, scalar code elsewhere), and the vector math at 16 bytes.  Always
 * compiled and always registered first. */
#include "../fnn_impl.h"

#include <string.h>

#define UKR_VBYTES 16
#define UKR_ATTR

#define UKR_T float
#define UKR_MR 4
#define UKR_NV 2
#define UKR_NAME fnn_sgemm_ukr_ref_4x8
#include "ukr_t.h"
#undef UKR_T
#undef UKR_MR
#undef UKR_NV
#undef UKR_NAME

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
    .mr2 = 0, .ukr2 = NULL, .gemv = fnn_sgemv_ref, .packt = fnn_spackt_ref,
    .ukra = fnn_sgemm_ukr_ref_4x8_da};
const fnn_dgemm_kernel fnn_dgemm_kernel_ref = {
    .mr = 4, .nr = 4, .mc = 128, .kc = 256, .nc = 2048, .ukr = fnn_dgemm_ukr_ref_4x4,
    .mr2 = 0, .ukr2 = NULL, .gemv = fnn_dgemv_ref, .packt = fnn_dpackt_ref,
    .ukra = fnn_dgemm_ukr_ref_4x4_da};

/* exp and the finiteness scan (vmath_t.h) */
#define VM_VBYTES 16
#define VM_ATTR 
#define VM_EXP fnn_vexp_ref
#define VM_FINITE fnn_vall_finite_ref
#include "vmath_t.h"
const fnn_vmath_kernel fnn_vmath_kernel_ref = {.exp = fnn_vexp_ref, .all_finite = fnn_vall_finite_ref};
