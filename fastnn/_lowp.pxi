# Low precision (csrc/lowp.h: qgemm.c, bf16.c): the weights' quantization for fastnn/quantization.py, the
# paths build_info reports, and the kernels on their own for the tests.  Arrays arrive validated,
# C-contiguous and of matching shapes; these wrappers only hand pointers to C.
from libc.stdint cimport int8_t, uint8_t, int32_t

cdef extern from "lowp.h" nogil:
    ctypedef struct fnn_qgemm_kernel:
        const char *name
    ctypedef struct fnn_bgemm_kernel:
        const char *name
    const fnn_qgemm_kernel *fnn_qgemm_kernel_active()
    const fnn_bgemm_kernel *fnn_bgemm_kernel_active()
    int FNN_Q_WMAX, FNN_Q_AMAX, FNN_Q_MAX_K, FNN_BF16_A, FNN_BF16_B
    int fnn_qgemm_s32(size_t m, size_t n, size_t k, const uint8_t *a, const int8_t *w, int32_t *c, int nt)
    void fnn_quantize_rows(const float *x, size_t rows, size_t cols, const float *range, uint8_t *q, float *scale,
                           int32_t *zp)
    void fnn_quantize_weights(const float *w, size_t n_in, size_t n_out, int8_t *q, float *scale)
    void fnn_dequantize_weights(const int8_t *q, const float *scale, size_t n_in, size_t n_out, float *w)
    void fnn_bf16_round(const float *x, float *y, size_t n)
    void fnn_sgemm_bf16_ex(int round, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                           size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                           const float *bias, int act, float act_alpha, int nt)
    void fnn_bf16_force_pairs(int on)

INT8_WEIGHT_MAX = FNN_Q_WMAX
INT8_MAX_INPUTS = FNN_Q_MAX_K
INT8_ACT_MAX = FNN_Q_AMAX  # quantized inputs lie in [0, INT8_ACT_MAX]


def int8_path():
    """The instruction path of int8 products at the SIMD level in use ("avx512_vnni", "avx2", "generic")."""
    return fnn_qgemm_kernel_active().name.decode()


def bf16_path():
    """The path of bfloat16 products: "avx512_bf16", or "software" (rounded, then multiplied in float32)."""
    return fnn_bgemm_kernel_active().name.decode()


def quantize_weights(const float[:, ::1] w):
    """(q int8 (in, out), scale float32 (out,)): per-column symmetric, |q| <= INT8_WEIGHT_MAX."""
    q = _np.empty((w.shape[0], w.shape[1]), dtype=_np.int8)
    scale = _np.empty(w.shape[1], dtype=_np.float32)
    cdef int8_t[:, ::1] qv = q
    cdef float[::1] sv = scale
    if w.shape[0] and w.shape[1]:
        with nogil:
            fnn_quantize_weights(&w[0, 0], w.shape[0], w.shape[1], &qv[0, 0], &sv[0])
    return q, scale


def dequantize_weights(const int8_t[:, ::1] q, const float[::1] scale):
    """float32 (in, out) = q * scale per column."""
    w = _np.empty((q.shape[0], q.shape[1]), dtype=_np.float32)
    cdef float[:, ::1] wv = w
    if q.shape[0] and q.shape[1]:
        with nogil:
            fnn_dequantize_weights(&q[0, 0], &scale[0], q.shape[0], q.shape[1], &wv[0, 0])
    return w


def bf16_round(const float[::1] x):
    """The float32 values nearest to x that bfloat16 holds (ties to even)."""
    y = _np.empty(x.shape[0], dtype=_np.float32)
    cdef float[::1] yv = y
    if x.shape[0]:
        with nogil:
            fnn_bf16_round(&x[0], &yv[0], x.shape[0])
    return y


def _qgemm_s32(const uint8_t[:, ::1] a, const int8_t[:, ::1] w):
    """The int8 product alone: int32 (m, n) = a (m, k) @ w (k, n), through the packing and the active
    kernel (a test hook)."""
    c = _np.empty((a.shape[0], w.shape[1]), dtype=_np.int32)
    cdef int32_t[:, ::1] cv = c
    cdef int nt = fnn_get_num_threads(), rc = 0
    if a.shape[0] and w.shape[1]:
        with nogil:
            rc = fnn_qgemm_s32(a.shape[0], w.shape[1], w.shape[0], &a[0, 0], &w[0, 0], &cv[0, 0], nt)
    check(rc, "qgemm")
    return c


def _quantize_rows(const float[:, ::1] x, rng=None):
    """(q uint8, scale float32, zero point int32) of each row as the int8 layers quantize their inputs;
    rng: a fixed (lo, hi), else each row's own (a test hook)."""
    q = _np.empty((x.shape[0], x.shape[1]), dtype=_np.uint8)
    s = _np.empty(x.shape[0], dtype=_np.float32)
    z = _np.empty(x.shape[0], dtype=_np.int32)
    cdef uint8_t[:, ::1] qv = q
    cdef float[::1] sv = s
    cdef int32_t[::1] zv = z
    cdef float r[2]
    cdef const float *rp = NULL
    if rng is not None:
        r[0], r[1] = rng
        rp = r
    if x.shape[0] and x.shape[1]:
        with nogil:
            fnn_quantize_rows(&x[0, 0], x.shape[0], x.shape[1], rp, &qv[0, 0], &sv[0], &zv[0])
    return q, s, z


def _gemm_bf16(const float[:, ::1] a, const float[:, ::1] b, bint ta=False, bint tb=False, int round=3):
    """op(a) @ op(b) with bfloat16 inputs and float32 sums (a test hook); round: 1 a, 2 b, 3 both."""
    m, k = (a.shape[1], a.shape[0]) if ta else (a.shape[0], a.shape[1])
    n = b.shape[0] if tb else b.shape[1]
    c = _np.zeros((m, n), dtype=_np.float32)
    cdef float[:, ::1] cv = c
    cdef int nt = fnn_get_num_threads()
    cdef size_t mm = m, nn = n, kk = k
    if mm and nn and kk:
        with nogil:
            fnn_sgemm_bf16_ex(round, ta, tb, mm, nn, kk, 1.0, &a[0, 0], a.shape[1], &b[0, 0], b.shape[1], 0.0,
                              &cv[0, 0], nn, NULL, 0, 0, nt)
    return c


def _bf16_force_pairs(bint on):
    """Run every bfloat16 product through the pair kernels (the AVX512_BF16 path's loops, with the
    portable pair kernel where the CPU lacks the instruction): a test hook."""
    fnn_bf16_force_pairs(on)
