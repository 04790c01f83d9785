/* avx512vnni.c - the int8 micro-kernels for AVX-512 VNNI: the body of qukr_t.h with each four-byte
 * dot product one vpdpbusd (u8 x s8, summed into the int32 lane, never saturating).  Compiled with a
 * target attribute only; chosen at run time at the avx512 level when the CPU has AVX512_VNNI (else
 * that level runs the AVX2 kernels).  Empty on other architectures.
 * rows x 16 columns: one 512-bit vector per row; up to 12 rows (12 accumulators of 32 registers).
 * The passes around the product are AVX2's (avx2.c). */
#include "../lowp.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define QUKR_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define QUKR_V __m512i
#define QUKR_NV 1
#define QUKR_ZERO() _mm512_setzero_si512()
#define QUKR_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define QUKR_STORE(p, v) _mm512_storeu_si512((void *)(p), v)
#define QUKR_BCAST(x) _mm512_set1_epi32(x)
#define QUKR_SETUP
#define QUKR_DOT2(acc, a0, b0, a1, b1) _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc, a0, b0), a1, b1)

#define QUKR_MR 1
#define QUKR_NAME fnn_qgemm_ukr_vnni_1x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME
#define QUKR_MR 2
#define QUKR_NAME fnn_qgemm_ukr_vnni_2x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME
#define QUKR_MR 4
#define QUKR_NAME fnn_qgemm_ukr_vnni_4x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME
#define QUKR_MR 8
#define QUKR_NAME fnn_qgemm_ukr_vnni_8x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME
#define QUKR_MR 12
#define QUKR_NAME fnn_qgemm_ukr_vnni_12x16
#include "qukr_t.h"
#undef QUKR_MR
#undef QUKR_NAME

/* Block sizes beside the kernels they are tuned for. */
const fnn_qgemm_kernel fnn_qgemm_kernel_vnni = {
    .name = "avx512_vnni", .mc = 240,
    .ukr = {[1] = fnn_qgemm_ukr_vnni_1x16, [2] = fnn_qgemm_ukr_vnni_2x16, [4] = fnn_qgemm_ukr_vnni_4x16,
            [8] = fnn_qgemm_ukr_vnni_8x16, [12] = fnn_qgemm_ukr_vnni_12x16},
    .rows = fnn_qrows_avx2, .out = fnn_qout_avx2};
#endif
