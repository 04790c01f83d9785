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


def all_finite(const floating[::1] x):
    """True when the contiguous 1-D buffer holds no NaN or Inf."""
    cdef int ok
    if x.shape[0] == 0:
        return True
    with nogil:
        if floating is float:
            ok = fnn_sall_finite(&x[0], x.shape[0])
        else:
            ok = fnn_dall_finite(&x[0], x.shape[0])
    return bool(ok)
