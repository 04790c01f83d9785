/* lowp.h - private: the engine's low-precision arithmetic, int8 (qgemm.c) and bfloat16 (bf16.c), and
 * the micro-kernel tables of kernels/ that serve them.
 *
 * int8.  A Dense layer with int8 weights computes y = act(dequant(q(x) . Wq) + b) where
 *   Wq   the weights, per output column j symmetric: W[k][j] ~ Wq[k][j] * wscale[j], |Wq| <= 63;
 *   q(x) each input row quantized to unsigned 7-bit values: x[k] ~ (q[k] - zp) * s, 0 <= q <= 127,
 *        with s and zp from the row's own range [min(0, min x), max(0, max x)] ("per row", at run
 *        time) or from a range fixed by calibration rows;
 *   the product summed exactly in int32 (sum_k (q[k] - zp) Wq[k][j]: at most 65536 * 127 * 63 in
 *   size), then rescaled, biased and activated in the output pass of each tile:
 *        y[j] = act((float)(acc[j] - zp * colsum(Wq)[j]) * (s * wscale[j]) + b[j]).
 * The 7-bit ranges are what keeps AVX2 exact and fast: its vpmaddubsw adds two u8 x s8 products into
 * a saturating int16, and two of those sums, 2 * 2 * 127 * 63 = 32004, still fit, so eight products
 * reach int32 through one widening (8-bit values would saturate a single pair: 2 * 255 * 127).
 * Every instruction set sums the same integers, so every path, and every thread count, gives the
 * same bits: the quantization and the output pass compute the same IEEE operations on every path.
 *
 * Weights are packed once (fnn_qpack) into panels of FNN_Q_NR columns: panel p holds, for each group
 * g of four inputs (an even number of groups, zero-padded), the 16 columns' four weights, 64 bytes
 * ([kq][16][4]), which is what one AVX-512 VNNI vpdpbusd multiplies against four broadcast input
 * bytes, and two AVX2 vectors; the columns' weight sums follow the panels.  The layout is the same
 * for every instruction set.
 *
 * bfloat16.  A product "in bf16" rounds both inputs to bfloat16 (round to nearest even) and sums in
 * float32: fnn_sgemm_bf16_ex.  On a CPU with AVX512_BF16 it runs vdpbf16ps on pairs of inputs packed as
 * bfloat16; elsewhere the inputs are rounded in software and the float32 GEMM multiplies them (a
 * product of two bfloat16 values is exact in float32).
 */
#ifndef FNN_LOWP_H
#define FNN_LOWP_H

#include "fnn_impl.h"

/* ---- int8 (qgemm.c) ------------------------------------------------------------------------------ */
#define FNN_Q_NR 16            /* columns per packed panel and per micro-kernel tile */
#define FNN_Q_WMAX 63          /* |weight| <= 63 (7 bits): see above */
#define FNN_Q_AMAX 127         /* quantized inputs in [0, 127] (7 bits): see above */
#define FNN_Q_MAX_K 65536      /* inputs of an int8 layer, at most: 65536 * 127 * 63 < 2^31 */
#define FNN_Q_MAX_MR 16        /* rows of a micro-kernel tile, at most */

/* c[i*16 + j] = sum over kq groups g and t < 4 of a[i*lda + 4g + t] * b[g*64 + 4j + t], for i < MR:
 * one tile of MR rows (u8 <= 127, row stride lda bytes) by one 16-column panel (s8, |b| <= 63); kq
 * even.  c is written, never read. */
typedef void (*fnn_qgemm_ukr_fn)(size_t kq, const uint8_t *a, size_t lda, const int8_t *b, int32_t *c);

/* The passes around the product, written per ISA for speed but computing the same bits on every one
 * (the portable forms in qgemm.c define them):
 *   rows   each of `rows` rows of n values x (row stride n) quantized into q (row stride kp, zeros
 *          after n), with its scale s and zero point zp, from its range [lo, hi]: the given one, or
 *          lo = min(0, min x), hi = max(0, max x) (NaN ignored); fnn_qparams gives inv, zp and s, then
 *          q[i] = clamp(rne(clamp(x[i] * inv, -256, 256)) + zp, 0, 127), NaN as -256; a row holding a
 *          NaN or an Inf gets s = NaN, so that its outputs are NaN as the float product's would be;
 *   out    a tile's output pass: for rows i < rows and all 16 columns j,
 *          v = (float)(t[16i + j] - rz[i] * cs[j]) * (rs[i] * ws[j]); v += b[j]; relu: v = v < 0 ? 0 : v
 *          into y[i*ldy + j] for j < cols (cs, ws, b hold 16 values each; b may be NULL). */
typedef struct {
    const int32_t *cs;
    const float *ws, *b;
    const float *rs;
    const int32_t *rz;
    int relu;
} fnn_qout;
typedef void (*fnn_qrows_fn)(const float *x, size_t rows, size_t n, size_t kp, const float *range, uint8_t *q,
                             float *s, int32_t *zp);
typedef void (*fnn_qout_fn)(const fnn_qout *o, const int32_t *t, size_t rows, size_t cols, float *y, size_t ldy);

/* 1.5 * 2^23: adding and subtracting it rounds a float below 2^22 in size to an integer, ties to even,
 * in two plain float operations (the same on every CPU, as nearbyint is, but in any vector unit) */
#define FNN_Q_ROUNDER 12582912.0f

/* The quantization of the range [lo, hi] (lo <= 0 <= hi): x ~ (q - zp) * s where q = rne(x * inv) + zp;
 * an empty range (a row of zeros) gives inv = s = zp = 0, one that is not finite (an Inf in the row)
 * inv = zp = 0 and s = NaN.  zp is a whole number in [0, 127]. */
static inline FNN_EXACT void fnn_qparams(float lo, float hi, float *inv, float *zp, float *s) {
    FNN_EXACT_BEGIN
    const float width = hi - lo, rounder = FNN_Q_ROUNDER;
    if (!(width > 0 && width <= 3.40282347e38f)) {
        *inv = *zp = 0;
        *s = width == 0 ? 0.0f : __builtin_nanf("");
        return;
    }
    *inv = (float)FNN_Q_AMAX / width;
    const float p = -lo * *inv;
    *zp = (p + rounder) - rounder;
    *s = width / (float)FNN_Q_AMAX;
}

/* The passes' scalar steps, shared by every path: fold n values into the range [*lo, *hi] (NaN
 * passed over, as the vector min/max do), and quantize one value. */
static inline void fnn_qrange_fold(const float *x, size_t n, float *lo, float *hi) {
    float l = *lo, h = *hi;
    for (size_t i = 0; i < n; i++) {
        l = x[i] < l ? x[i] : l;
        h = x[i] > h ? x[i] : h;
    }
    *lo = l;
    *hi = h;
}
static inline FNN_EXACT uint8_t fnn_q1(float x, float inv, float z) {
    FNN_EXACT_BEGIN
    const float rounder = FNN_Q_ROUNDER;
    float v = x * inv;
    v = v > -256.0f ? v : -256.0f; /* NaN too */
    v = v < 256.0f ? v : 256.0f;
    v = ((v + rounder) - rounder) + z;
    v = v > 0 ? v : 0;
    v = v < FNN_Q_AMAX ? v : FNN_Q_AMAX;
    return (uint8_t)(int32_t)v;
}

typedef struct {
    const char *name;                        /* build_info()["int8"] */
    int mc;                                  /* rows of A per cache block (a multiple of the widest tile) */
    fnn_qgemm_ukr_fn ukr[FNN_Q_MAX_MR + 1];  /* the kernel for tiles of that many rows; NULL: none */
    fnn_qrows_fn rows;
    fnn_qout_fn out;
} fnn_qgemm_kernel;
/* The portable passes (the generic kernel's, and the definition the others match). */
void fnn_qrows_ref(const float *x, size_t rows, size_t n, size_t kp, const float *range, uint8_t *q, float *s,
                   int32_t *zp);
void fnn_qout_ref(const fnn_qout *o, const int32_t *t, size_t rows, size_t cols, float *y, size_t ldy);
#if defined(__x86_64__) /* kernels/avx2.c; the VNNI kernels use them too */
void fnn_qrows_avx2(const float *x, size_t rows, size_t n, size_t kp, const float *range, uint8_t *q, float *s,
                    int32_t *zp);
void fnn_qout_avx2(const fnn_qout *o, const int32_t *t, size_t rows, size_t cols, float *y, size_t ldy);
#endif
extern const fnn_qgemm_kernel fnn_qgemm_kernel_ref, fnn_qgemm_kernel_avx2, fnn_qgemm_kernel_vnni;
const fnn_qgemm_kernel *fnn_qgemm_kernel_active(void); /* of the SIMD level in use */

/* Packed int8 weights of an in x out layer: bytes, and the packing of row-major w (in x out). */
size_t fnn_qpack_bytes(size_t in, size_t out);
void fnn_qpack(const int8_t *w, size_t in, size_t out, void *dst);

/* One int8 Dense layer as the forward pass sees it. */
typedef struct {
    const void *pack;       /* fnn_qpack of the weights */
    size_t in, out;
    const float *wscale;    /* out per-column scales */
    const float *bias;      /* out values, or NULL */
    const float *range;     /* calibrated input range [lo, hi], or NULL: each row's own */
    int act;                /* elementwise or row-wise (then applied after the product) */
    float alpha;
} fnn_qdense;
/* Scratch bytes for `rows` input rows of width `in` (the quantized rows and their scales). */
size_t fnn_qscratch_bytes(size_t rows, size_t in);
/* y (rows x out) for x (rows x in); scratch: fnn_qscratch_bytes(rows, in) bytes, 4-byte aligned. */
void fnn_qdense_forward(const fnn_qdense *L, const float *x, size_t rows, float *y, void *scratch, int nt);

/* The integer product alone (the kernels' test hook): c (m x n int32) = a (m x k u8 <= 127) . w
 * (k x n, |w| <= 63), through the packing and the active kernel. */
int fnn_qgemm_s32(size_t m, size_t n, size_t k, const uint8_t *a, const int8_t *w, int32_t *c, int nt);
/* Quantize rows x cols floats as the int8 layers do: q (rows x cols), per-row scale and zero point;
 * range: a fixed [lo, hi] or NULL for each row's own. */
void fnn_quantize_rows(const float *x, size_t rows, size_t cols, const float *range, uint8_t *q, float *scale,
                       int32_t *zp);

/* Weights: per-column symmetric quantization of w (in x out) into q and scale (out), and back. */
void fnn_quantize_weights(const float *w, size_t in, size_t out, int8_t *q, float *scale);
void fnn_dequantize_weights(const int8_t *q, const float *scale, size_t in, size_t out, float *w);

/* ---- bfloat16 (bf16.c) ----------------------------------------------------------------------------- */
/* The float nearest to x that bfloat16 holds (ties to even; NaN stays NaN, infinities stay). */
static inline uint32_t fnn_bf16_bits(uint32_t u) { /* branch-free, so that loops of it vectorize */
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u; /* Inf stays Inf */
    const uint32_t quiet = (u | 0x00400000u) & 0xffff0000u;                   /* NaN stays a NaN */
    return (u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded;
}
static inline float fnn_bf16_round1(float x) {
    union { float f; uint32_t u; } v = {x};
    v.u = fnn_bf16_bits(v.u);
    return v.f;
}
void fnn_bf16_round(const float *x, float *y, size_t n); /* y may equal x */

/* Which inputs of fnn_sgemm_bf16_ex need rounding (an input already in bfloat16 needs none). */
enum { FNN_BF16_A = 1, FNN_BF16_B = 2 };
/* fnn_sgemm_ex with both inputs in bfloat16: C = act(alpha*op(bf16(A))*op(bf16(B)) + beta*C + bias),
 * summed in float32.  round: FNN_BF16_A | FNN_BF16_B, the inputs not yet in bfloat16. */
void fnn_sgemm_bf16_ex(int round, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                       size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc, const float *bias,
                       int act, float act_alpha, int nt);

/* The bfloat16 pair kernels: C[MR x NR] = alpha * A.B + beta * C where A (MR x 2kp) and B (2kp x NR)
 * are packed as pairs, a[p*MR + i] = (A[i][2p], A[i][2p+1]) and b[p*NR + j] likewise, each pair one
 * 32-bit word of two bfloat16 (the lower half the even input).  Each step adds the odd product, then
 * the even one, as vdpbf16ps does.  C is not read when beta == 0. */
typedef void (*fnn_bgemm_ukr_fn)(size_t kp, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
                                 float alpha, float beta);
typedef struct {
    const char *name;      /* build_info()["bf16"] */
    int mr, nr, mc, kc, nc;
    fnn_bgemm_ukr_fn ukr;  /* NULL: no pair kernel (the software path) */
} fnn_bgemm_kernel;
extern const fnn_bgemm_kernel fnn_bgemm_kernel_ref, fnn_bgemm_kernel_avx512bf16;
const fnn_bgemm_kernel *fnn_bgemm_kernel_active(void);
/* Test hook: 1 runs every bf16 product through the pair kernels, with the portable one where the CPU
 * has no bf16 instructions (what the AVX512_BF16 path runs, checked on any CPU); 0 restores. */
void fnn_bf16_force_pairs(int on);

#endif /* FNN_LOWP_H */
