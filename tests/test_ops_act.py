"""Activations (fnn.ops, csrc/act.c): values against NumPy references written from the math,
gradients against analytic formulas and central finite differences, thread-count independence,
extreme inputs, argument errors; bias_add and colsum through the private binding."""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from fastnn import ops

from conftest import TOL, with_threads

DTYPES = [np.float32, np.float64]
ATOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-14}
# (1, 1), odd and prime sizes, and one above 2 x 32768 elements so that two threads really split it
SHAPES = [(1, 1), (7, 13), (31, 97), (128, 10), (301, 257)]
BIG = (301, 257)

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))  # 1/(1+exp(-x)) without overflow


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# name -> (forward reference, derivative reference (elementwise) or None); alpha passed explicitly
def _ref_forward(name, x, alpha):
    x = x.astype(np.float64)
    return {
        "linear": lambda: x.copy(),
        "relu": lambda: np.maximum(x, 0.0),
        "leaky_relu": lambda: np.where(x < 0, alpha * x, x),
        "elu": lambda: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))),
        "sigmoid": lambda: _sigmoid(x),
        "tanh": lambda: np.tanh(x),
        # exact GELU: x * Phi(x) = 0.5 x (1 + erf(x/sqrt2)) = 0.5 x erfc(-x/sqrt2)
        "gelu": lambda: 0.5 * x * _erfc(-x / math.sqrt(2.0)),
        "silu": lambda: x * _sigmoid(x),
        "softmax": lambda: _softmax(x),
        "log_softmax": lambda: _log_softmax(x),
    }[name]()


def _ref_grad(name, x, dy, alpha):
    """dy * act'(x) from the derivative formulas (VJP for the row-wise ones), in float64."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    if name == "linear":
        d = np.ones_like(x)
    elif name == "relu":
        d = (x > 0).astype(np.float64)
    elif name == "leaky_relu":
        d = np.where(x > 0, 1.0, alpha)
    elif name == "elu":
        d = np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))
    elif name == "sigmoid":
        s = _sigmoid(x)
        d = s * (1 - s)
    elif name == "tanh":
        d = 1 - np.tanh(x) ** 2
    elif name == "gelu":
        d = 0.5 * _erfc(-x / math.sqrt(2.0)) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    elif name == "silu":
        s = _sigmoid(x)
        d = s + x * s * (1 - s)
    elif name == "softmax":
        y = _softmax(x)
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    elif name == "log_softmax":
        return dy - _softmax(x) * dy.sum(axis=-1, keepdims=True)
    return dy * d


# (public function, name in activation_grad, alpha given to the function or None for its default)
ACTS = [
    (ops.relu, "relu", None),
    (ops.leaky_relu, "leaky_relu", None),
    (ops.leaky_relu, "leaky_relu", 0.2),
    (ops.elu, "elu", None),
    (ops.elu, "elu", 0.5),
    (ops.sigmoid, "sigmoid", None),
    (ops.tanh, "tanh", None),
    (ops.gelu, "gelu", None),
    (ops.silu, "silu", None),
    (ops.softmax, "softmax", None),
    (ops.log_softmax, "log_softmax", None),
]
ACT_IDS = [f"{n}-{a}" if a is not None else n for _, n, a in ACTS]
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def _call(fn, name, x, alpha):
    return fn(x) if alpha is None else fn(x, alpha)


def _alpha(name, alpha):
    return DEFAULT_ALPHA.get(name) if alpha is None else alpha


def _data(rng, shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---- forward values -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fn,name,alpha", ACTS, ids=ACT_IDS)
def test_forward_matches_reference(fn, name, alpha, shape, dtype, threads, rng):
    x = _data(rng, shape, dtype)
    y = _call(fn, name, x, alpha)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape and y is not x
    ref = _ref_forward(name, x, _alpha(name, alpha))
    np.testing.assert_allclose(y, ref, rtol=TOL[np.dtype(dtype)], atol=ATOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fn,name,alpha", ACTS, ids=ACT_IDS)
def test_backward_matches_reference(fn, name, alpha, shape, dtype, threads, rng):
    x = _data(rng, shape, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    dx = ops.activation_grad(name, x, dy, alpha=alpha)
    assert dx.dtype == np.dtype(dtype) and dx.shape == x.shape
    ref = _ref_grad(name, x, dy, _alpha(name, alpha))
    # the VJP of a row sums products: scale the absolute tolerance by the row's |dy|
    atol = ATOL[np.dtype(dtype)] * (1 + np.abs(dy).sum(axis=-1, keepdims=True))
    np.testing.assert_array_less(np.abs(dx - ref), TOL[np.dtype(dtype)] * np.abs(ref) + atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn,name,alpha", ACTS, ids=ACT_IDS)
def test_threads_give_identical_bits(fn, name, alpha, dtype, rng):
    x = _data(rng, BIG, dtype)
    dy = rng.standard_normal(BIG).astype(dtype)
    y1 = with_threads(1, _call, fn, name, x, alpha)
    y2 = with_threads(2, _call, fn, name, x, alpha)
    assert _same_bits(y1, y2)
    g1 = with_threads(1, ops.activation_grad, name, x, dy, alpha=alpha)
    g2 = with_threads(2, ops.activation_grad, name, x, dy, alpha=alpha)
    assert _same_bits(g1, g2)


def _bits_equal(a, b):
    """Same values bit for bit, signed zeros included; any NaN matches any NaN."""
    same = a.view(f"u{a.itemsize}") == b.view(f"u{b.itemsize}")
    return bool((same | (np.isnan(a) & np.isnan(b))).all())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,alpha", [("relu", 0.0), ("leaky_relu", 0.01), ("leaky_relu", 0.2), ("elu", 1.0),
                                        ("elu", 0.5)])
@pytest.mark.parametrize("in_place", [False, True], ids=["apart", "in_place"])
def test_relu_family_selects_exactly(name, alpha, in_place, dtype, rng):
    """The ReLU family's forward and backward are selects between NumPy's own values, bit for bit:
    signed zeros, infinities and NaNs included, over lengths that end inside the kernels' 256-value
    side buffer, in place (as the engine runs them) and apart."""
    n = 3 * 256 + 37
    x = _data(rng, (1, n), dtype)
    x[0, :8] = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-40, -1e-40]
    dy = rng.standard_normal((1, n)).astype(dtype)
    dy[0, 8:16] = [0.0, -0.0, np.inf, -np.inf, np.nan, 5.0, -5.0, -0.0]
    x[0, 8:16] = [1.0, -1.0, -2.0, 3.0, -4.0, 0.0, -0.0, 2.0]
    a = dtype(alpha)
    code = _core.ACTIVATIONS[name]
    with np.errstate(all="ignore"):
        if name == "elu":  # the kernel's expm1 is libm's: compare the select around it, not its digits
            y = np.empty_like(x)
            _core.act_forward(code, alpha, x, y)
            neg = ~(x > 0)
            assert _bits_equal(y[~neg], x[~neg])
            np.testing.assert_allclose(y[neg], a * np.expm1(x[neg]), rtol=TOL[np.dtype(dtype)])
        else:
            ref_y = np.where(x < 0, a * x, x) if name == "leaky_relu" else np.where(x < 0, dtype(0), x)
            y = x.copy() if in_place else np.empty_like(x)
            _core.act_forward(code, alpha, y if in_place else x, y)
            assert _bits_equal(y, ref_y), name
        ref_dx = {"relu": np.where(y > 0, dy, dtype(0)),
                  "leaky_relu": np.where(x > 0, dy, a * dy),
                  "elu": np.where(x > 0, dy, dy * (y + a))}[name]
    dx = dy.copy() if in_place else np.empty_like(dy)
    _core.act_backward(code, alpha, x, y, dx if in_place else dy, dx)
    assert _bits_equal(dx, ref_dx), name


def test_linear_grad_is_dy(rng):
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    assert np.array_equal(ops.activation_grad("linear", x, dy), dy)
    assert np.array_equal(ops.activation_grad(None, x, dy), dy)


# ---- finite differences ---------------------------------------------------------------------------
def _rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("fn,name,alpha", ACTS, ids=ACT_IDS)
def test_backward_finite_differences(fn, name, alpha, rng):
    shape = (5, 7)
    x = rng.standard_normal(shape) * 2
    if name in ("relu", "leaky_relu", "elu"):  # keep clear of the kink at 0
        x = np.where(np.abs(x) < 0.05, x + np.sign(x + 1e-12) * 0.1, x)
    dy = rng.standard_normal(shape)
    dx = ops.activation_grad(name, x, dy, alpha=alpha)
    h = 1e-5
    num = np.empty_like(x)
    for idx in np.ndindex(shape):  # d/dx[idx] of sum(dy * act(x)), one coordinate at a time
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        num[idx] = (np.sum(dy * _call(fn, name, xp, alpha)) - np.sum(dy * _call(fn, name, xm, alpha))) / (2 * h)
    assert _rel_err(num, dx) < 1e-6


# ---- shapes, layouts ----------------------------------------------------------------------------
@pytest.mark.parametrize("fn,name,alpha", [a for a in ACTS if a[1] not in ("softmax", "log_softmax")],
                         ids=[i for i in ACT_IDS if i not in ("softmax", "log_softmax")])
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4), (0, 4)])
def test_elementwise_any_shape(fn, name, alpha, shape, rng):
    x = _data(rng, shape, np.float64)
    y = _call(fn, name, x, alpha)
    assert y.shape == shape
    np.testing.assert_allclose(y, _ref_forward(name, x, _alpha(name, alpha)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fn,name", [(ops.softmax, "softmax"), (ops.log_softmax, "log_softmax")])
def test_rowwise_1d_is_one_row(fn, name, rng):
    x = rng.standard_normal(11)
    np.testing.assert_array_equal(fn(x), fn(x[None, :])[0])
    np.testing.assert_allclose(fn(x), _ref_forward(name, x, None), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match=r"^x:"):
        fn(np.float64(1.0))


@pytest.mark.parametrize("fn,name,alpha", ACTS, ids=ACT_IDS)
def test_strided_and_readonly_inputs(fn, name, alpha, rng):
    base = _data(rng, (9, 22), np.float32)
    ref = _call(fn, name, np.ascontiguousarray(base[:, ::2]), alpha)
    np.testing.assert_array_equal(_call(fn, name, base[:, ::2], alpha), ref)
    np.testing.assert_array_equal(_call(fn, name, np.asfortranarray(base[:, ::2]), alpha), ref)
    ro = base.copy()
    ro.setflags(write=False)
    before = ro.copy()
    _call(fn, name, ro, alpha)
    np.testing.assert_array_equal(ro, before)  # the input is never written
    assert ops.activation_grad(name, ro, ro, alpha=alpha).shape == ro.shape


def test_list_input_becomes_float64():
    y = ops.relu([[-1, 2], [3, -4]])
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [[0, 2], [3, 0]])


# ---- extreme values -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_stay_finite(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    sm, lsm = ops.softmax(x), ops.log_softmax(x)
    assert np.isfinite(sm).all() and np.isfinite(lsm).all()
    np.testing.assert_allclose(sm, [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]], rtol=1e-6, atol=0)
    np.testing.assert_allclose(lsm, [[0, -2e4, -1e4], [-math.log(3)] * 3, [-math.log(2), -math.log(2), -2e4 - math.log(2)]],
                               rtol=1e-6, atol=0)
    for name in ("softmax", "log_softmax"):
        g = ops.activation_grad(name, x, np.ones_like(x))
        assert np.isfinite(g).all()
        np.testing.assert_allclose(g, _ref_grad(name, x, np.ones_like(x), None), rtol=1e-6, atol=1e-6)

    v = np.array([-1e4, -30.0, 30.0, 1e4], dtype=dtype)
    np.testing.assert_array_equal(ops.sigmoid(v)[[0, 3]], [0, 1])
    np.testing.assert_allclose(ops.sigmoid(v), _sigmoid(v.astype(np.float64)), rtol=1e-5, atol=0)
    np.testing.assert_array_equal(ops.elu(v)[:2], np.array([-1, math.expm1(-30)], dtype=dtype))
    np.testing.assert_array_equal(ops.elu(v, alpha=0.5)[0], -0.5)
    np.testing.assert_array_equal(ops.tanh(v)[[0, 3]], [-1, 1])
    for fn in (ops.silu, ops.gelu):
        y = fn(v)
        assert np.isfinite(y).all()
        np.testing.assert_array_equal(y[[0, 3]], [0, 1e4])
    for name in ("sigmoid", "elu", "tanh", "silu", "gelu"):
        g = ops.activation_grad(name, v, np.ones_like(v))
        assert np.isfinite(g).all(), name
        # sigmoid'/tanh' come from y: 1 - y loses what lies below eps when y is near 1
        np.testing.assert_allclose(g, _ref_grad(name, v, np.ones_like(v), DEFAULT_ALPHA.get(name)), rtol=1e-5,
                                   atol=np.finfo(dtype).eps)


def test_nan_propagates_when_not_checked():
    x = np.array([[1.0, np.nan, -2.0]])
    for fn in (ops.relu, ops.leaky_relu, ops.elu, ops.sigmoid, ops.tanh, ops.gelu, ops.silu):
        y = fn(x, check_finite=False)
        assert np.isnan(y[0, 1]) and np.isfinite(y[0, [0, 2]]).all(), fn.__name__
    assert np.isnan(ops.softmax(x, check_finite=False)).all()


# ---- argument errors --------------------------------------------------------------------------------
BAD_DTYPES = [np.int32, np.int64, np.bool_, np.complex128, np.float16, object]


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fn,name,alpha", ACTS, ids=ACT_IDS)
def test_bad_dtype_is_type_error(fn, name, alpha, bad):
    x = np.ones((3, 4), dtype=bad)
    with pytest.raises(TypeError, match=r"^x:"):
        _call(fn, name, x, alpha)
    with pytest.raises(TypeError, match=r"^x:"):
        ops.activation_grad(name, x, np.ones((3, 4)))
    with pytest.raises(TypeError, match=r"^dy:"):
        ops.activation_grad(name, np.ones((3, 4)), x)


@pytest.mark.parametrize("fn,name,alpha", ACTS, ids=ACT_IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_value_error(fn, name, alpha, bad):
    x = np.ones((3, 4))
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"^x:.*NaN"):
        _call(fn, name, x, alpha)
    with pytest.raises(ValueError, match=r"^dy:.*NaN"):
        ops.activation_grad(name, np.ones((3, 4)), x)


def test_activation_grad_argument_errors():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"^dy:"):
        ops.activation_grad("relu", x, np.ones((4, 3)))
    with pytest.raises(TypeError, match=r"^dy:"):
        ops.activation_grad("relu", x, np.ones((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^name:"):
        ops.activation_grad("swish", x, x)
    with pytest.raises(ValueError, match=r"^name:"):
        ops.activation_grad(3, x, x)
    with pytest.raises(ValueError, match=r"^alpha:"):
        ops.activation_grad("relu", x, x, alpha=0.1)
    with pytest.raises(TypeError, match=r"^alpha:"):
        ops.leaky_relu(x, "0.1")
    with pytest.raises(ValueError, match=r"^alpha:"):
        ops.elu(x, alpha=float("nan"))


# ---- bias_add and colsum (the engine's kernels, through the private binding) ------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(3, 700), (300, 700)])
def test_bias_add(shape, dtype, threads, rng):
    y = _data(rng, shape, dtype)
    b = _data(rng, shape[1], dtype)
    ref = y + b  # one rounding per element, like the kernel
    _core.bias_add(y, b)
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(0, 5), (3, 700), (300, 700)])
def test_colsum(shape, dtype, threads, rng):
    x = _data(rng, shape, dtype)
    acc = np.zeros(shape[1], dtype=dtype)
    for row in x:  # the contract: each column summed in row order
        acc += row
    out = np.full(shape[1], np.nan, dtype=dtype)  # not read when beta == 0
    _core.colsum(x, 0.0, out)
    np.testing.assert_array_equal(out, acc)
    prev = _data(rng, shape[1], dtype)
    out = prev.copy()
    _core.colsum(x, 0.5, out)
    np.testing.assert_allclose(out, 0.5 * prev.astype(np.float64) + acc, rtol=TOL[np.dtype(dtype)],
                               atol=ATOL[np.dtype(dtype)] * 100)


@pytest.mark.parametrize("dtype", DTYPES)
def test_colsum_and_bias_add_threads_identical(dtype, rng):
    x = _data(rng, (300, 700), dtype)
    outs = []
    for nt in (1, 2):
        o = np.ones(700, dtype=dtype)
        with_threads(nt, _core.colsum, x, 1.0, o)
        y = x.copy()
        with_threads(nt, _core.bias_add, y, x[0])
        outs.append((o, y))
    assert _same_bits(outs[0][0], outs[1][0]) and _same_bits(outs[0][1], outs[1][1])
