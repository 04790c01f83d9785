/* ukr_t.h - body of a GEMM micro-kernel, included once per (ISA, dtype) by the files beside it.
 *
 * Before including, define:
 *   UKR_T      element type (float or double)
 *   UKR_MR     rows of the tile
 *   UKR_NV     vectors per row of the tile (NR = UKR_NV * lanes)
 *   UKR_VBYTES bytes in one vector register (16, 32 or 64)
 *   UKR_NAME   the function's name, e.g. fnn_sgemm_ukr_avx512_8x32
 *   UKR_ATTR   function attributes (the target ISA), may be empty
 * UKR_MR and UKR_NAME are undefined at the end: the next inclusion defines its own.
 *
 * C[MR x NR] = A * B (+ C when beta == 1; beta is 0 or 1), where A is packed k-major (MR values per
 * k, alpha already applied by the packing) and row p of B starts at b + p*ldb (a packed panel has
 * ldb = NR; B may also be read in place from a row-major matrix).  C (leading dimension ldc) is not
 * read when beta == 0.  Each element is a chain of multiply-adds from zero in the order of k, then
 * stored or added to C: no other operation, so no choice of the compiler's (which products to fuse)
 * can make it differ from the small-M kernel (gemv_t.h), which sums in the same order.
 * Written with GCC vector extensions: one source for every ISA and dtype; the target attribute
 * decides the instructions (FMA comes from contraction, -ffp-contract=fast).
 */
#define UKR_L ((int)(UKR_VBYTES / sizeof(UKR_T)))
#define UKR_NR (UKR_NV * UKR_L)
#define UKR_V FNN_CAT(UKR_NAME, _vec)
#define UKR_VU FNN_CAT(UKR_NAME, _uvec)

typedef UKR_T UKR_V __attribute__((vector_size(UKR_VBYTES)));
typedef UKR_T UKR_VU __attribute__((vector_size(UKR_VBYTES), aligned(sizeof(UKR_T)), may_alias));

UKR_ATTR void UKR_NAME(size_t k, const UKR_T *FNN_RESTRICT a, const UKR_T *FNN_RESTRICT b, size_t ldb,
                       UKR_T *FNN_RESTRICT c, size_t ldc, UKR_T beta) {
    UKR_V acc[UKR_MR][UKR_NV];
    /* The C rows are ldc apart: fetch them while the k loop runs (read only when beta != 0). */
#pragma GCC unroll 16
    for (int i = 0; i < UKR_MR; i++) {
        __builtin_prefetch(c + i * ldc, 1, 3);
        __builtin_prefetch(c + i * ldc + UKR_NR - 1, 1, 3);
    }
#pragma GCC unroll 16
    for (int i = 0; i < UKR_MR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < UKR_NV; j++) acc[i][j] = (UKR_V){0};

#pragma GCC unroll 4
    for (size_t p = 0; p < k; p++) {
        const UKR_VU *bp = (const UKR_VU *)(b + p * ldb);
        UKR_V bv[UKR_NV];
#pragma GCC unroll 8
        for (int j = 0; j < UKR_NV; j++) bv[j] = bp[j];
        const UKR_T *ap = a + p * UKR_MR;
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++) {
            UKR_T ai = ap[i];
#pragma GCC unroll 8
            for (int j = 0; j < UKR_NV; j++) acc[i][j] += ai * bv[j];
        }
    }

    if (beta == (UKR_T)0) {
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++)
#pragma GCC unroll 8
            for (int j = 0; j < UKR_NV; j++) *(UKR_VU *)(c + i * ldc + j * UKR_L) = acc[i][j];
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++)
#pragma GCC unroll 8
            for (int j = 0; j < UKR_NV; j++) {
                UKR_VU *cp = (UKR_VU *)(c + i * ldc + j * UKR_L);
                *cp = acc[i][j] + *cp;
            }
    }
}

#undef UKR_L
#undef UKR_NR
#undef UKR_V
#undef UKR_VU
#undef UKR_MR   /* each inclusion names its own tile */
#undef UKR_NAME
