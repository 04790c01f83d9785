# Runtime queries and settings (csrc/runtime.c).

from libc.string cimport memset

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


def set_adaptive_threads(bint on):
    fnn_set_adaptive_threads(on)


def get_adaptive_threads():
    return bool(fnn_get_adaptive_threads())


cdef extern from "fnn_impl.h" nogil:
    ctypedef struct fnn_governor:
        int cur
    int fnn_gov_begin_at(fnn_governor *g, int max, double now)
    void fnn_gov_end_at(fnn_governor *g, double work, double now)
    int fnn_gov_levels(int max)


def _gov_sim(int max, step_seconds, double work=1.0, double wake=0.0, double wake_factor=1.0,
             int pause_every=0, double pause=0.0):
    """The governor's choices over a simulated run (a test hook): step s, run on c threads, takes
    step_seconds[s, i] seconds, where c is max halved (rounded up) i times.  Threads that slept take
    a while to come back: the steps of the first `wake` seconds on a count larger than the one before
    (or, on more than one thread, after a pause) take wake_factor times as long.  Every pause_every
    steps (0: never) the clock moves on by `pause` seconds between two steps.  Returns the counts."""
    cdef fnn_governor g
    memset(&g, 0, sizeof(g))
    cdef double now = 0, woke = -1e300, dt
    cdef int s, c, prev = 0
    t = _np.ascontiguousarray(step_seconds, dtype=_np.float64)
    levels = fnn_gov_levels(max)
    if t.ndim != 2 or t.shape[1] != levels:
        raise ValueError(f"step_seconds: expected {levels} columns (max={max} halved to 1), got shape {t.shape}")
    out = _np.empty(t.shape[0], dtype=_np.int32)
    for s in range(t.shape[0]):
        if pause_every > 0 and s > 0 and s % pause_every == 0:
            now += pause
            prev = 1  # every thread but the caller's slept
        c = fnn_gov_begin_at(&g, max, now)
        out[s] = c
        if c > prev:
            woke = now
        prev = c
        dt = t[s, g.cur]  # the level the step runs on (0 while the governor is off)
        if now - woke < wake:
            dt *= wake_factor
        now += dt
        fnn_gov_end_at(&g, work, now)
    return out


cdef extern from "fnn_impl.h" nogil:
    void fnn_team_state(double *wake, unsigned long *serial, double set_wake)


def _team_state(double set_wake=-1.0):
    """The calling thread's idle-team state (a test hook): (the measured cost of starting its team
    after idling, in seconds; the products it has run on one thread for that).  set_wake >= 0 replaces
    the measured cost first."""
    cdef double wake = 0
    cdef unsigned long serial = 0
    fnn_team_state(&wake, &serial, set_wake)
    return wake, serial


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
