"""fastnn.ops: the C kernels on NumPy arrays.

float32 and float64 (never mixed among the arrays a kernel computes on; loss targets are data and are
converted to the prediction's dtype); any strided input is accepted (C- and
F-contiguous arrays are used in place, others copied once); the GIL is released while C runs.
With `check_finite=True` (the default) a NaN or Inf in an input is a ValueError; pass False to
skip the scan and let NaN propagate as IEEE arithmetic does.
"""
import numpy as np

from . import _core
from ._validate import float_array, real_number, row_major

__all__ = ["gemm", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "log_softmax", "gelu", "silu",
           "activation_grad", "cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"]


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


# ---- activations ----------------------------------------------------------------------------------
# name -> default alpha (None: the activation takes no parameter)
_ALPHA_DEFAULT = {"leaky_relu": 0.01, "elu": 1.0}


def _act_alpha(name, alpha):
    if name in _ALPHA_DEFAULT:
        return _ALPHA_DEFAULT[name] if alpha is None else real_number(alpha, "alpha")
    if alpha is not None:
        raise ValueError(f"alpha: {name} takes no parameter, got alpha={alpha!r}")
    return 0.0


def _as_rows(x, name):
    """x as a C-contiguous 2-D array: (1, size) for elementwise activations, rows of the last axis
    for the row-wise ones (copied once if x is not C-contiguous)."""
    if name in _core.ROWWISE_ACTIVATIONS:
        if x.ndim == 0:
            raise ValueError(f"x: {name} works on rows (the last axis): expected at least 1-D, got a scalar")
        shape = (int(np.prod(x.shape[:-1])), x.shape[-1])
    else:
        shape = (1, x.size)
    return np.ascontiguousarray(x).reshape(shape)


def _activation(name, x, alpha, check_finite):
    alpha = _act_alpha(name, alpha)
    x = float_array(x, "x", check_finite=check_finite)
    xr = _as_rows(x, name)
    y = np.empty(xr.shape, dtype=x.dtype)
    _core.act_forward(_core.ACTIVATIONS[name], alpha, xr, y)
    return y.reshape(x.shape)


def relu(x, *, check_finite=True):
    """max(x, 0), elementwise."""
    return _activation("relu", x, None, check_finite)


def leaky_relu(x, alpha=0.01, *, check_finite=True):
    """x for x >= 0, alpha*x below, elementwise."""
    return _activation("leaky_relu", x, alpha, check_finite)


def elu(x, alpha=1.0, *, check_finite=True):
    """x for x > 0, alpha*(exp(x) - 1) otherwise, elementwise."""
    return _activation("elu", x, alpha, check_finite)


def sigmoid(x, *, check_finite=True):
    """1 / (1 + exp(-x)), elementwise, without overflow for any x."""
    return _activation("sigmoid", x, None, check_finite)


def tanh(x, *, check_finite=True):
    """tanh(x), elementwise."""
    return _activation("tanh", x, None, check_finite)


def gelu(x, *, check_finite=True):
    """The exact GELU x * Phi(x) = 0.5*x*(1 + erf(x/sqrt(2))) (PyTorch's default, not the tanh form)."""
    return _activation("gelu", x, None, check_finite)


def silu(x, *, check_finite=True):
    """x * sigmoid(x) (swish), elementwise."""
    return _activation("silu", x, None, check_finite)


def softmax(x, *, check_finite=True):
    """exp(x) / sum(exp(x)) over the last axis (each row of a 2-D array; a 1-D array is one row)."""
    return _activation("softmax", x, None, check_finite)


def log_softmax(x, *, check_finite=True):
    """log(softmax(x)) over the last axis, computed as x - max - log(sum(exp(x - max)))."""
    return _activation("log_softmax", x, None, check_finite)


def activation_grad(name, x, dy, *, alpha=None, check_finite=True):
    """dx = dy * act'(x) for the activation `name` at input x (for softmax/log_softmax, the row-wise
    vector-Jacobian product dy @ J(x)).  `alpha`: leaky_relu's slope / elu's alpha (their defaults
    when None).  Returns a new array shaped like x."""
    if name is None:
        name = "linear"
    if not isinstance(name, str) or name not in _core.ACTIVATIONS:
        raise ValueError(f"name: unknown activation {name!r}; expected one of {sorted(_core.ACTIVATIONS)}")
    alpha = _act_alpha(name, alpha)
    x = float_array(x, "x", check_finite=check_finite)
    dy = float_array(dy, "dy", check_finite=check_finite)
    if dy.dtype != x.dtype:
        raise TypeError(f"dy: dtype {dy.dtype} differs from x's {x.dtype}")
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected shape {x.shape} (that of x), got {dy.shape}")
    code = _core.ACTIVATIONS[name]
    xr, dyr = _as_rows(x, name), _as_rows(dy, name)
    y = np.empty(xr.shape, dtype=x.dtype)
    dx = np.empty(xr.shape, dtype=x.dtype)
    _core.act_forward(code, alpha, xr, y)
    _core.act_backward(code, alpha, xr, y, dyr, dx)
    return dx.reshape(x.shape)
