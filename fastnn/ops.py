"""fastnn.ops: the C kernels on NumPy arrays.

float32 and float64 (never mixed within one call); any strided input is accepted (C- and
F-contiguous arrays are used in place, others copied once); the GIL is released while C runs.
With `check_finite=True` (the default) a NaN or Inf in an input is a ValueError; pass False to
skip the scan and let NaN propagate as IEEE arithmetic does.
"""
import numpy as np

from . import _core
from ._validate import float_array, real_number, row_major

__all__ = ["gemm", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "log_softmax", "gelu", "silu",
           "cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"]


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, check_finite=True):
    """alpha * op(a) @ op(b) + beta * out, where op(x) is x or x.T.

    `out` (optional) receives the result and, when beta != 0, supplies C; without `out`, beta is ignored
    and a new array is returned.  Deterministic: the same bits for any thread count.
    """
    a = float_array(a, "a", ndim=2, check_finite=check_finite)
    b = float_array(b, "b", ndim=2, check_finite=check_finite)
    if a.dtype != b.dtype:
        raise TypeError(f"b: dtype {b.dtype} differs from a's {a.dtype}; convert one of them")
    alpha = real_number(alpha, "alpha")
    beta = real_number(beta, "beta")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != kb:
        raise ValueError(f"b: inner dimensions differ: op(a) is {m}x{k}, op(b) is {kb}x{n}")
    if out is None:
        target = c = np.empty((m, n), dtype=a.dtype)
        beta = 0.0
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
        if out.dtype != a.dtype:
            raise TypeError(f"out: expected dtype {a.dtype}, got {out.dtype}")
        if out.shape != (m, n):
            raise ValueError(f"out: expected shape {(m, n)}, got {out.shape}")
        if not out.flags.writeable:
            raise ValueError("out: array is read-only")
        if beta != 0.0 and check_finite:
            float_array(out, "out")
        target = out
        c = out if out.flags.c_contiguous else np.ascontiguousarray(out)
    if m and n:
        if k == 0:
            c[...] = 0 if beta == 0.0 else beta * c
        else:
            ab, ta, lda = row_major(a)
            bb, tb, ldb = row_major(b)
            _core.gemm(ta != bool(trans_a), tb != bool(trans_b), m, n, k, alpha, ab, lda, bb, ldb, beta,
                       c, n)
    if c is not target:
        target[...] = c
    return target
