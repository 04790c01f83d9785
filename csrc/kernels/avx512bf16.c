/* avx512bf16.c - the bfloat16 pair micro-kernel for AVX512_BF16: the body of bukr_t.h with each step
 * one vdpbf16ps (two bfloat16 products per float32 lane).  Compiled with a target attribute only;
 * chosen at run time at the avx512 level when the CPU has AVX512_BF16 (else bfloat16 products are
 * rounded in software and multiplied in float32).  Empty on other architectures.
 * 14 rows x 2 vectors (32 columns; 28 accumulators of 32 registers), as the float AVX-512 kernel. */
#include "../lowp.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define BUKR_VBYTES 64
#define BUKR_ATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")))
#define BUKR_MR 14
#define BUKR_NV 2
#define BUKR_NAME fnn_bgemm_ukr_avx512bf16_14x32
#define BUKR_DOT(acc, a, b) ((BUKR_F)_mm512_dpbf16_ps((__m512)(acc), (__m512bh)(a), (__m512bh)(b)))
#include "bukr_t.h"

/* Block sizes beside the kernel they are tuned for (K in pairs: kc inputs are kc / 2 steps). */
const fnn_bgemm_kernel fnn_bgemm_kernel_avx512bf16 = {
    .name = "avx512_bf16", .mr = 14, .nr = 32, .mc = 252, .kc = 768, .nc = 4096,
    .ukr = fnn_bgemm_ukr_avx512bf16_14x32};
#endif
