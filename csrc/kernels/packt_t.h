/* packt_t.h - the transposing copy that packing needs (A as stored row-major, B transposed), included
 * once per (ISA, dtype) by the files beside it.
 *
 * Before including, define:
 *   PACKT_T      element type (float or double)
 *   PACKT_W      values per vector: the copy moves W x W blocks through W vectors (2, 4 or 8)
 *   PACKT_NAME   the function's name, e.g. fnn_spackt_avx2
 *   PACKT_ATTR   function attributes (the target ISA), may be empty
 *
 * dst[p*dstride + r] = src[r*ld + p] for r < rows, p < k.  Each W x W block is W vector loads, an
 * in-register transpose (GCC vector shuffles; the target attribute picks the instructions) and W
 * vector stores.  When rows or k is not a multiple of W the last block overlaps the one before it
 * (the overlap is written twice with the same values).  With W = 8, 4 to 7 rows (a narrow tile's panel
 * of A) go through 4 x 8 blocks the same way; otherwise only rows or k below W go value by value.
 */
#define PACKT_V FNN_CAT(PACKT_NAME, _vec)
#define PACKT_VU FNN_CAT(PACKT_NAME, _uvec)

typedef PACKT_T PACKT_V __attribute__((vector_size(PACKT_W * sizeof(PACKT_T))));
typedef PACKT_T PACKT_VU __attribute__((vector_size(PACKT_W * sizeof(PACKT_T)), aligned(sizeof(PACKT_T)),
                                        may_alias));

PACKT_ATTR void PACKT_NAME(size_t rows, size_t k, const PACKT_T *FNN_RESTRICT src, size_t ld,
                           PACKT_T *FNN_RESTRICT dst, size_t dstride) {
#if defined(__clang__) || !defined(__GNUC__) || __GNUC__ >= 12 /* __builtin_shufflevector */
#if PACKT_W == 8
    /* 4 to 7 rows (a narrow register tile's panel): 4 x 8 blocks, the last overlapping as below */
    if (rows >= 4 && rows < 8 && k >= 8) {
        for (size_t r0 = 0; r0 < rows; r0 += 4) {
            if (r0 + 4 > rows) r0 = rows - 4;
            for (size_t p0 = 0; p0 < k; p0 += 8) {
                if (p0 + 8 > k) p0 = k - 8;
                const PACKT_T *s = src + r0 * ld + p0;
                PACKT_T *d = dst + p0 * dstride + r0;
                PACKT_V r[4], t[4], u[4];
                /* the next four rows, the same columns: their lines arrive while these are copied */
                if (r0 + 8 <= rows)
                    for (int i = 4; i < 8; i++) __builtin_prefetch(s + i * ld);
                for (int i = 0; i < 4; i++) r[i] = *(const PACKT_VU *)(s + i * ld);
                /* t[0] = r0p0 r1p0 r0p1 r1p1 r0p4 r1p4 r0p5 r1p5, t[1] the same for p2 p3 p6 p7; t[2], t[3]
                 * likewise for rows 2, 3 */
                for (int i = 0; i < 4; i += 2) {
                    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
                    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
                }
                /* u[j]: the four rows at two values of p, (p0 p1), (p2 p3), (p4 p5), (p6 p7) */
                u[0] = __builtin_shufflevector(t[0], t[2], 0, 1, 8, 9, 2, 3, 10, 11);
                u[1] = __builtin_shufflevector(t[1], t[3], 0, 1, 8, 9, 2, 3, 10, 11);
                u[2] = __builtin_shufflevector(t[0], t[2], 4, 5, 12, 13, 6, 7, 14, 15);
                u[3] = __builtin_shufflevector(t[1], t[3], 4, 5, 12, 13, 6, 7, 14, 15);
                for (int j = 0; j < 4; j++) {
                    memcpy(d + (2 * j) * dstride, &u[j], 4 * sizeof(PACKT_T));
                    memcpy(d + (2 * j + 1) * dstride, (const PACKT_T *)&u[j] + 4, 4 * sizeof(PACKT_T));
                }
            }
        }
        return;
    }
#endif
    if (rows < PACKT_W || k < PACKT_W)
#endif
    {
        for (size_t p = 0; p < k; p++)
            for (size_t r = 0; r < rows; r++) dst[p * dstride + r] = src[r * ld + p];
        return;
    }
#if defined(__clang__) || !defined(__GNUC__) || __GNUC__ >= 12
    for (size_t r0 = 0; r0 < rows; r0 += PACKT_W) {
        if (r0 + PACKT_W > rows) r0 = rows - PACKT_W;
        for (size_t p0 = 0; p0 < k; p0 += PACKT_W) {
            if (p0 + PACKT_W > k) p0 = k - PACKT_W;
            const PACKT_T *s = src + r0 * ld + p0;
            PACKT_T *d = dst + p0 * dstride + r0;
#if PACKT_W == 8
            PACKT_V r[8], t[8], u[8];
            if (r0 + 2 * PACKT_W <= rows)
                for (int i = 8; i < 16; i++) __builtin_prefetch(s + i * ld);
            for (int i = 0; i < 8; i++) r[i] = *(const PACKT_VU *)(s + i * ld);
            for (int i = 0; i < 8; i += 2) {
                t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
                t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
            }
            for (int i = 0; i < 8; i += 4)
                for (int h = 0; h < 2; h++) {
                    u[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
                    u[i + 2 * h + 1] =
                        __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
                }
            for (int j = 0; j < 4; j++) {
                *(PACKT_VU *)(d + j * dstride) =
                    __builtin_shufflevector(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
                *(PACKT_VU *)(d + (j + 4) * dstride) =
                    __builtin_shufflevector(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
            }
#elif PACKT_W == 4
            PACKT_V r[4], t[4];
            for (int i = 0; i < 4; i++) r[i] = *(const PACKT_VU *)(s + i * ld);
            for (int i = 0; i < 4; i += 2) {
                t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 4, 2, 6);
                t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 1, 5, 3, 7);
            }
            /* t[0] = r00 r10 r02 r12, t[1] = r01 r11 r03 r13, t[2], t[3] likewise for rows 2, 3 */
            for (int j = 0; j < 2; j++) {
                *(PACKT_VU *)(d + j * dstride) = __builtin_shufflevector(t[j], t[j + 2], 0, 1, 4, 5);
                *(PACKT_VU *)(d + (j + 2) * dstride) = __builtin_shufflevector(t[j], t[j + 2], 2, 3, 6, 7);
            }
#elif PACKT_W == 2
            PACKT_V r0v = *(const PACKT_VU *)s, r1v = *(const PACKT_VU *)(s + ld);
            *(PACKT_VU *)d = __builtin_shufflevector(r0v, r1v, 0, 2);
            *(PACKT_VU *)(d + dstride) = __builtin_shufflevector(r0v, r1v, 1, 3);
#else
#error "PACKT_W must be 2, 4 or 8"
#endif
        }
    }
#endif
}

#undef PACKT_V
#undef PACKT_VU
