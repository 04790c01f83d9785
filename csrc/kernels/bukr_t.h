/* bukr_t.h - body of a bfloat16 pair micro-kernel (lowp.h: fnn_bgemm_ukr_fn), included once per ISA
 * by the files beside it: AVX512_BF16, where one vdpbf16ps is the step, and the portable one, which
 * takes the same step in float32 arithmetic (a product of two bfloat16 is exact in float32, so
 * "add the odd product, then the even one" rounds as the instruction does, denormals aside: the
 * instruction flushes them to zero).
 *
 * C[MR x NR] = alpha * A.B + beta * C, C not read when beta == 0.  a: kp steps of MR words, b: kp
 * steps of NR words; a word is two bfloat16 (the lower half the even input).  Written with GCC vector
 * extensions where the ISA allows.
 *
 * Define before including:
 *   BUKR_NAME, BUKR_ATTR, BUKR_MR, BUKR_NV (vectors per row of the tile), BUKR_VBYTES (16, 64)
 *   BUKR_DOT(acc, a, b)   acc (float lanes) plus the odd then the even product of the word lanes a, b
 */
#define BUKR_L ((int)(BUKR_VBYTES / 4))
#define BUKR_NR (BUKR_NV * BUKR_L)
#define BUKR_F FNN_CAT(BUKR_NAME, _f)
#define BUKR_U FNN_CAT(BUKR_NAME, _u)
#define BUKR_FU FNN_CAT(BUKR_NAME, _fu)
typedef float BUKR_F __attribute__((vector_size(BUKR_VBYTES)));
typedef uint32_t BUKR_U __attribute__((vector_size(BUKR_VBYTES), aligned(4), may_alias));
typedef float BUKR_FU __attribute__((vector_size(BUKR_VBYTES), aligned(4), may_alias));

BUKR_ATTR void BUKR_NAME(size_t kp, const uint32_t *FNN_RESTRICT a, const uint32_t *FNN_RESTRICT b,
                         float *FNN_RESTRICT c, size_t ldc, float alpha, float beta) {
    BUKR_F acc[BUKR_MR][BUKR_NV];
#pragma GCC unroll 16
    for (int i = 0; i < BUKR_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BUKR_NV; j++) acc[i][j] = (BUKR_F){0};
#pragma GCC unroll 2
    for (size_t p = 0; p < kp; p++) {
        BUKR_U bv[BUKR_NV];
#pragma GCC unroll 4
        for (int j = 0; j < BUKR_NV; j++) bv[j] = *(const BUKR_U *)(b + p * BUKR_NR + j * BUKR_L);
#pragma GCC unroll 16
        for (int i = 0; i < BUKR_MR; i++) {
            const BUKR_U av = (BUKR_U){0} + a[p * BUKR_MR + i];
#pragma GCC unroll 4
            for (int j = 0; j < BUKR_NV; j++) acc[i][j] = BUKR_DOT(acc[i][j], av, bv[j]);
        }
    }
    if (beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < BUKR_MR; i++)
#pragma GCC unroll 4
            for (int j = 0; j < BUKR_NV; j++) *(BUKR_FU *)(c + i * ldc + j * BUKR_L) = alpha * acc[i][j];
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < BUKR_MR; i++)
#pragma GCC unroll 4
            for (int j = 0; j < BUKR_NV; j++) {
                BUKR_FU *cp = (BUKR_FU *)(c + i * ldc + j * BUKR_L);
                *cp = alpha * acc[i][j] + beta * *cp;
            }
    }
}

#undef BUKR_L
#undef BUKR_NR
#undef BUKR_F
#undef BUKR_U
#undef BUKR_FU
