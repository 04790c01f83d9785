# Runtime queries and settings (csrc/runtime.c).

SIMD_LEVELS = ("generic", "avx2", "avx512")
VERSION = FNN_VERSION_STRING.decode()


def simd_level():
    return fnn_simd_name(fnn_simd_level()).decode()


def simd_available():
    return [fnn_simd_name(l).decode() for l in range(fnn_simd_max() + 1)]


def set_simd(str name):
    """Force a SIMD level the CPU has ("generic", "avx2", "avx512"); raise ValueError otherwise."""
    if name not in SIMD_LEVELS:
        raise ValueError(f"simd: unknown level {name!r}; expected one of {SIMD_LEVELS}")
    if fnn_set_simd_level(SIMD_LEVELS.index(name)) != 0:
        raise ValueError(f"simd: this CPU cannot run {name!r}; available: {simd_available()}")


def has_openmp():
    return bool(fnn_has_openmp())


def set_num_threads(int n):
    fnn_set_num_threads(n)


def get_num_threads():
    return fnn_get_num_threads()


def max_threads():
    return fnn_max_threads()


def strerror(int code):
    return fnn_strerror(code).decode()


cdef extern from *:
    """
    #if defined(__clang__)
    #  define FNN_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #  define FNN_COMPILER "gcc " __VERSION__
    #else
    #  define FNN_COMPILER "unknown"
    #endif
    """
    const char *FNN_COMPILER


def compiler():
    return FNN_COMPILER.decode()


cdef extern from "fnn_impl.h" nogil:
    int fnn_sall_finite(const float *x, size_t n)
    int fnn_dall_finite(const double *x, size_t n)


def all_finite(x):
    """True when the contiguous 1-D float32 or float64 array holds no NaN or Inf.  Not a fused-type
    function: its dispatch would cost more than the scan of a small array (one-row predicts)."""
    cdef const float[::1] f
    cdef const double[::1] d
    cdef int ok
    cdef size_t n = x.shape[0]
    if n == 0:
        return True
    if x.dtype.itemsize == 4:
        f = x
        with nogil:
            ok = fnn_sall_finite(&f[0], n)
    else:
        d = x
        with nogil:
            ok = fnn_dall_finite(&d[0], n)
    return bool(ok)
