"""fastnn.ops: the C kernels on NumPy arrays.

float32 and float64 (never mixed among the arrays a kernel computes on; loss targets are data and are
converted to the prediction's dtype); any strided input is accepted (C- and
F-contiguous arrays are used in place, others copied once); the GIL is released while C runs.
With `check_finite=True` (the default) a NaN or Inf in an input is a ValueError; pass False to
skip the scan and let NaN propagate as IEEE arithmetic does.
"""
import numpy as np

from . import _core
from ._validate import (check_memory, class_labels, float_array, probabilities, real_number, row_major,
                        target_array)

__all__ = ["gemm", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "log_softmax", "gelu", "silu",
           "activation_grad", "cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"]


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, check_finite=True):
    """alpha * op(a) @ op(b) + beta * out, where op(x) is x or x.T.

    `out` (optional) receives the result and, when beta != 0, supplies C; without `out`, beta is ignored
    and a new array is returned.  `out` may be `a` or `b` or share memory with them (the product then
    goes through a temporary).  Deterministic: the same bits for any thread count, and a row's bits
    do not depend on the other rows of the call.
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
        check_memory(m * n * a.dtype.itemsize, f"out: the {m:,} x {n:,} result of gemm")
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
        if np.may_share_memory(out, a) or np.may_share_memory(out, b):
            # out overlaps an input (out=a, out=b, a view of either): the kernel would read values it
            # has already overwritten, so compute into a temporary and copy, as numpy.matmul does
            c = np.array(out, order="C") if beta != 0.0 else np.empty((m, n), dtype=a.dtype)
        else:
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


# ---- losses ---------------------------------------------------------------------------------------
def _prediction(p, name, check_finite, ndim=None):
    p = float_array(p, name, ndim=ndim, check_finite=check_finite)
    if p.ndim == 0:
        raise ValueError(f"{name}: expected an array of shape (N,) or (N, C), got a scalar")
    if p.size == 0:
        raise ValueError(f"{name}: empty array of shape {p.shape}: the mean over no values is undefined")
    return p


def _matching_target(t, pred, name, check_finite):
    """Targets of pred's dtype and shape; (N,) and (N, 1) are taken for one another."""
    t = target_array(t, name, pred, check_finite=check_finite)
    if t.shape != pred.shape:
        vector = {(pred.shape[0],), (pred.shape[0], 1)}
        if not (pred.shape in vector and t.shape in vector):
            raise ValueError(f"{name}: expected shape {pred.shape} (that of the prediction), got {t.shape}")
        t = t.reshape(pred.shape)
    return t


def _run_loss(name, pred, labels, target, param):
    """(mean over rows of the row losses, gradient of that mean) for pred viewed as rows x cols."""
    rows = pred.shape[0]
    p2 = np.ascontiguousarray(pred).reshape(rows, -1)
    t2 = None if target is None else np.ascontiguousarray(target).reshape(p2.shape)
    grad = np.empty(p2.shape, dtype=pred.dtype)
    total = _core.loss(_core.LOSSES[name], p2, labels, t2, None, param, 1.0 / rows, grad)
    return float(total / rows), grad.reshape(pred.shape)


def cross_entropy(logits, target, *, check_finite=True):
    """Softmax cross-entropy of logits (N, C), fused and stable for any logits.

    target: int class labels of shape (N,) in [0, C), or probabilities of shape (N, C).
    Returns (mean over rows of -sum_c target_c * log_softmax(logits)_c, its gradient w.r.t. logits).
    """
    logits = _prediction(logits, "logits", check_finite, ndim=2)
    n, c = logits.shape
    if not isinstance(target, np.ndarray):
        try:
            target = np.asarray(target)
        except Exception as e:  # ragged lists and the like
            raise ValueError(f"target: cannot be read as an array ({e})") from None
    if target.dtype.kind in "iu":
        return _run_loss("cross_entropy", logits, class_labels(target, "target", n, c), None, 0.0)
    if target.dtype.kind == "f" and target.ndim == 2:
        target = target_array(target, "target", logits, check_finite=check_finite)
        if target.shape != logits.shape:
            raise ValueError(f"target: probabilities must have the shape of logits {logits.shape}, "
                             f"got {target.shape}")
        probabilities(target, "target")
        return _run_loss("cross_entropy", logits, None, target, 0.0)
    if target.dtype.kind in "bf":
        raise ValueError(f"target: expected int class labels of shape ({n},) or float probabilities of "
                         f"shape {logits.shape}, got dtype {target.dtype} and shape {target.shape}")
    raise TypeError(f"target: expected int class labels or float probabilities, got dtype {target.dtype}")


def binary_cross_entropy(logits, target, *, check_finite=True):
    """Sigmoid binary cross-entropy, fused and stable for any logits: mean over every element.

    logits (N, C) with a 0/1 (or soft, in [0, 1]) target (N, C) for multi-label problems, or logits
    (N,) / (N, 1) with a target (N,) for a binary one.  Returns (loss, gradient w.r.t. logits).
    """
    logits = _prediction(logits, "logits", check_finite, ndim=(1, 2))
    target = _matching_target(target, logits, "target", check_finite)
    probabilities(target.reshape(target.shape[0], -1), "target", "binary cross-entropy targets")
    return _run_loss("binary_cross_entropy", logits, None, target, 0.0)


def mse(pred, target, *, check_finite=True):
    """Mean squared error over every element; returns (loss, gradient w.r.t. pred)."""
    pred = _prediction(pred, "pred", check_finite)
    return _run_loss("mse", pred, None, _matching_target(target, pred, "target", check_finite), 0.0)


def mae(pred, target, *, check_finite=True):
    """Mean absolute error over every element; returns (loss, gradient w.r.t. pred), 0 where pred == target."""
    pred = _prediction(pred, "pred", check_finite)
    return _run_loss("mae", pred, None, _matching_target(target, pred, "target", check_finite), 0.0)


def huber(pred, target, delta=1.0, *, check_finite=True):
    """Huber loss (PyTorch's HuberLoss) over every element: d^2/2 where |d| < delta, else
    delta*(|d| - delta/2), with d = pred - target.  Returns (loss, gradient w.r.t. pred)."""
    delta = real_number(delta, "delta", low=0.0, low_open=True)
    pred = _prediction(pred, "pred", check_finite)
    return _run_loss("huber", pred, None, _matching_target(target, pred, "target", check_finite), delta)
