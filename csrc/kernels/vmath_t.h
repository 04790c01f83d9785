/* vmath_t.h - body of the vector math kernels, included once per ISA by the files beside it: exp
 * over an array (the softmax's) and the finiteness scan of inputs.  Written with GCC vector
 * extensions and compiled without fused multiply-adds (FNN_EXACT), so that every vector width runs
 * the same IEEE operations on each value: the same bits at every SIMD level, as the int8 path's
 * guarantee needs (its outputs go through the softmax too).
 *
 * exp: Cephes' polynomial on [-ln2/2, ln2/2], within 2 ulp of expf; the power of two is applied in two
 * halves so that results fall gradually into the denormals and to 0 below about -104; NaN stays NaN.
 *
 * Define before including: VM_VBYTES (16, 32, 64), VM_ATTR (target attribute, may be empty),
 * VM_EXP and VM_FINITE (the functions' names).
 */
#define VM_L ((int)(VM_VBYTES / 4))
#define VM_F FNN_CAT(VM_EXP, _f)
#define VM_I FNN_CAT(VM_EXP, _i)
#define VM_U FNN_CAT(VM_EXP, _u)
#define VM_ONE FNN_CAT(VM_EXP, _one)
typedef float VM_F __attribute__((vector_size(VM_VBYTES)));
typedef int32_t VM_I __attribute__((vector_size(VM_VBYTES)));
typedef uint32_t VM_U __attribute__((vector_size(VM_VBYTES)));

VM_ATTR FNN_EXACT static inline __attribute__((always_inline)) VM_F VM_ONE(VM_F x) {
    FNN_EXACT_BEGIN
    const VM_F zero = {0}, hi = zero + 88.8f, lo = zero - 110.0f, rounder = zero + 12582912.0f;
    VM_I above = x > hi, below = x < lo;
    x = (VM_F)(((VM_I)hi & above) | ((VM_I)x & ~above));
    x = (VM_F)(((VM_I)lo & below) | ((VM_I)x & ~below));
    VM_F n = (x * 1.44269504088896341f + rounder) - rounder; /* the integer nearest x / ln2 */
    VM_F r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    VM_F p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    VM_I k = __builtin_convertvector(n, VM_I), k1 = k >> 1, k2 = k - k1; /* 2^k = 2^k1 * 2^k2 */
    return p * (VM_F)(((k1 + 127) & 0xff) << 23) * (VM_F)(((k2 + 127) & 0xff) << 23);
}

VM_ATTR FNN_EXACT void VM_EXP(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + VM_L <= n; i += VM_L) {
        VM_F v;
        memcpy(&v, x + i, sizeof v);
        v = VM_ONE(v);
        memcpy(y + i, &v, sizeof v);
    }
    if (i < n) { /* the last values in a vector of their own: a value's result never depends on its place */
        VM_F v = {0};
        memcpy(&v, x + i, (n - i) * sizeof *x);
        v = VM_ONE(v);
        memcpy(y + i, &v, (n - i) * sizeof *y);
    }
}

/* 1 when no value has the all-ones exponent of Inf and NaN: integer tests, no float arithmetic. */
VM_ATTR int VM_FINITE(const float *x, size_t n) {
    const VM_U zero = {0}, ex = zero + 0x7f800000u;
    VM_U bad = zero;
    size_t i = 0;
    for (; i + VM_L <= n; i += VM_L) {
        VM_U u;
        memcpy(&u, x + i, sizeof u);
        bad |= (VM_U)((u & ex) == ex);
    }
    uint32_t any = 0;
    for (int t = 0; t < VM_L; t++) any |= bad[t];
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        any |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !any;
}

#undef VM_L
#undef VM_F
#undef VM_I
#undef VM_U
#undef VM_ONE
