# fastnn._core - the one Cython binding module: typed memoryviews in, C calls under `nogil`.
# No arithmetic here; validation lives in the pure-Python modules (fastnn/ops.py, fastnn/_validate.py).
# The bindings are grouped by C file in the .pxi files included below; every name <-> code table
# (activations, losses, optimizers, layer kinds, error codes) is read from C in _names.pxi.
from libc.stdint cimport int64_t
from cython cimport floating
from cpython.mem cimport PyMem_Malloc, PyMem_Free

cdef extern from "fnn_impl.h" nogil:
    const char *FNN_VERSION_STRING
    int fnn_cpu_has_avx2()
    int fnn_cpu_has_avx512()
    int fnn_simd_level()
    int fnn_simd_max()
    int fnn_set_simd_level(int level)
    const char *fnn_simd_name(int level)
    int fnn_has_openmp()
    void fnn_set_num_threads(int n)
    int fnn_get_num_threads()
    int fnn_max_threads()
    void fnn_set_adaptive_threads(int on)
    int fnn_get_adaptive_threads()
    const char *fnn_strerror(int code)

include "_names.pxi"
include "_runtime.pxi"
include "_gemm.pxi"
include "_act.pxi"
include "_loss.pxi"
include "_net.pxi"
include "_io.pxi"
include "_lowp.pxi"
