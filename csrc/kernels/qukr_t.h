/* qukr_t.h - body of an int8 micro-kernel (lowp.h: fnn_qgemm_ukr_fn), included once per (ISA, tile
 * rows) by the files beside it.  One source for AVX2 and AVX-512 VNNI: only the dot products of two
 * groups of four bytes, summed into a 32-bit lane, differ.
 *
 * c[i*16 + j] = sum over groups g < kq (an even count) of the dot product of the four u8 a[i*lda + 4g
 * ..] and the four s8 of column j in the panel's group g (b + 64g + 4j): MR rows by 16 columns, int32,
 * written whole.  Each group of B is 64 bytes, 16 columns of four weights: QUKR_NV vectors whose 32-bit
 * lanes are the columns; the four bytes of a row are broadcast to every lane.  Groups go two at a
 * time: AVX2 adds the two groups' pair sums in 16 bits before widening them once (lowp.h: exact).
 *
 * Define before including:
 *   QUKR_NAME   the function's name, e.g. fnn_qgemm_ukr_avx2_4x16
 *   QUKR_ATTR   the target attribute
 *   QUKR_MR     rows of the tile
 *   QUKR_V      the vector type; QUKR_NV vectors per 16 columns (64 / bytes per vector)
 *   QUKR_ZERO() QUKR_LOAD(p) QUKR_STORE(p, v) QUKR_BCAST(i32)   the vector operations
 *   QUKR_SETUP  declarations the dot product needs (constants), may be empty
 *   QUKR_DOT2(acc, a0, b0, a1, b1)   acc plus, in each 32-bit lane, the eight products of u8 a0, a1
 *               and s8 b0, b1
 */
QUKR_ATTR void QUKR_NAME(size_t kq, const uint8_t *FNN_RESTRICT a, size_t lda, const int8_t *FNN_RESTRICT b,
                         int32_t *FNN_RESTRICT c) {
    QUKR_SETUP
    QUKR_V acc[QUKR_MR][QUKR_NV];
#pragma GCC unroll 16
    for (int i = 0; i < QUKR_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < QUKR_NV; j++) acc[i][j] = QUKR_ZERO();
    for (size_t g = 0; g < kq; g += 2) {
        QUKR_V b0[QUKR_NV], b1[QUKR_NV];
#pragma GCC unroll 4
        for (int j = 0; j < QUKR_NV; j++) {
            b0[j] = QUKR_LOAD(b + g * 64 + j * (64 / QUKR_NV));
            b1[j] = QUKR_LOAD(b + g * 64 + 64 + j * (64 / QUKR_NV));
        }
#pragma GCC unroll 16
        for (int i = 0; i < QUKR_MR; i++) {
            int32_t four0, four1;
            memcpy(&four0, a + i * lda + 4 * g, sizeof four0);
            memcpy(&four1, a + i * lda + 4 * g + 4, sizeof four1);
            const QUKR_V a0 = QUKR_BCAST(four0), a1 = QUKR_BCAST(four1);
#pragma GCC unroll 4
            for (int j = 0; j < QUKR_NV; j++) acc[i][j] = QUKR_DOT2(acc[i][j], a0, b0[j], a1, b1[j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < QUKR_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < QUKR_NV; j++) QUKR_STORE(c + i * 16 + j * (16 / QUKR_NV), acc[i][j]);
}
