/* avx2.c - GEMM micro-kernels for AVX2 + FMA (256-bit).  Compiled with a target attribute only;
 * chosen at run time when the CPU has AVX2 and FMA.  Empty on other architectures. */
#include "../fnn_impl.h"

#if defined(__x86_64__)
#define UKR_VBYTES 32
#define UKR_ATTR __attribute__((target("avx2,fma")))

#define UKR_T float
#define UKR_MR 6
#define UKR_NV 2
#define UKR_NAME fnn_sgemm_ukr_avx2_6x16
#include "ukr_t.h"
#undef UKR_T
#undef UKR_MR
#undef UKR_NV
#undef UKR_NAME

#define UKR_T double
#define UKR_MR 6
#define UKR_NV 2
#define UKR_NAME fnn_dgemm_ukr_avx2_6x8
#include "ukr_t.h"

/*                                         mr  nr   mc   kc    nc */
const fnn_sgemm_kernel fnn_sgemm_kernel_avx2 = {6, 16, 144, 256, 4096, fnn_sgemm_ukr_avx2_6x16};
const fnn_dgemm_kernel fnn_dgemm_kernel_avx2 = {6, 8, 96, 256, 2048, fnn_dgemm_ukr_avx2_6x8};
#endif
