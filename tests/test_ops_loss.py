"""Losses (fnn.ops, csrc/loss.c): values and gradients against NumPy references written from the math,
central finite differences, thread-count independence, extreme logits, argument errors, and the
kernel's sample weights and in-place gradient through the private binding."""
import math

import numpy as np
import pytest

from fastnn import _core
from fastnn import ops

from conftest import TOL, with_threads

DTYPES = [np.float32, np.float64]
SHAPES = [(1, 1), (7, 13), (31, 97), (128, 10), (301, 257)]


def _log_softmax(x):
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


# Each reference: (loss, grad) in float64 for the mean over rows of the per-row loss.
def ref_ce_labels(x, y):
    x = x.astype(np.float64)
    n = x.shape[0]
    lsm = _log_softmax(x)
    onehot = np.zeros_like(x)
    onehot[np.arange(n), y] = 1
    return -lsm[np.arange(n), y].mean(), (np.exp(lsm) - onehot) / n


def ref_ce_probs(x, t):
    x, t = x.astype(np.float64), t.astype(np.float64)
    n = x.shape[0]
    lsm = _log_softmax(x)
    return -(t * lsm).sum(axis=1).mean(), (np.exp(lsm) * t.sum(axis=1, keepdims=True) - t) / n


def ref_bce(x, t):
    x, t = x.astype(np.float64), t.astype(np.float64)
    # -(t log sigmoid(x) + (1-t) log(1 - sigmoid(x))), with log sigmoid(x) = -log(1 + exp(-x))
    loss = t * np.logaddexp(0.0, -x) + (1 - t) * np.logaddexp(0.0, x)
    return loss.mean(), (_sigmoid(x) - t) / x.size


def ref_mse(p, t):
    d = p.astype(np.float64) - t.astype(np.float64)
    return (d * d).mean(), 2 * d / d.size


def ref_mae(p, t):
    d = p.astype(np.float64) - t.astype(np.float64)
    return np.abs(d).mean(), np.sign(d) / d.size


def ref_huber(p, t, delta):
    d = p.astype(np.float64) - t.astype(np.float64)
    a = np.abs(d)
    loss = np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return loss.mean(), np.clip(d, -delta, delta) / d.size


def _check(got, ref, dtype, loss_rtol=None):
    loss, grad = got
    rloss, rgrad = ref
    tol = TOL[np.dtype(dtype)]
    assert isinstance(loss, float)
    assert grad.dtype == np.dtype(dtype) and grad.shape == rgrad.shape
    assert loss == pytest.approx(rloss, rel=loss_rtol or tol, abs=1e-300)
    np.testing.assert_allclose(grad, rgrad, rtol=tol, atol=tol * 0.1 * np.abs(rgrad).max() + 1e-300)


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _cases(rng, shape, dtype):
    """name -> (call, reference) on random data of `shape`."""
    n, c = shape
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    labels = rng.integers(0, c, size=n)
    probs = rng.random(shape)
    probs /= probs.sum(axis=1, keepdims=True)
    probs = probs.astype(dtype)
    multi = (rng.random(shape) < 0.3).astype(dtype)
    soft = rng.random(shape).astype(dtype)
    t = (rng.standard_normal(shape) * 2).astype(dtype)
    return {
        "ce_labels": (lambda: ops.cross_entropy(x, labels), lambda: ref_ce_labels(x, labels)),
        "ce_probs": (lambda: ops.cross_entropy(x, probs), lambda: ref_ce_probs(x, probs)),
        "bce_multilabel": (lambda: ops.binary_cross_entropy(x, multi), lambda: ref_bce(x, multi)),
        "bce_soft": (lambda: ops.binary_cross_entropy(x, soft), lambda: ref_bce(x, soft)),
        "bce_binary": (lambda: ops.binary_cross_entropy(x[:, 0], multi[:, 0]),
                       lambda: ref_bce(x[:, 0], multi[:, 0])),
        "mse": (lambda: ops.mse(x, t), lambda: ref_mse(x, t)),
        "mae": (lambda: ops.mae(x, t), lambda: ref_mae(x, t)),
        "huber": (lambda: ops.huber(x, t), lambda: ref_huber(x, t, 1.0)),
        "huber_0.3": (lambda: ops.huber(x, t, delta=0.3), lambda: ref_huber(x, t, 0.3)),
    }


CASES = ["ce_labels", "ce_probs", "bce_multilabel", "bce_soft", "bce_binary", "mse", "mae", "huber", "huber_0.3"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", CASES)
def test_loss_matches_reference(case, shape, dtype, threads, rng):
    call, ref = _cases(rng, shape, dtype)[case]
    _check(call(), ref(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_threads_give_identical_bits(case, dtype, rng):
    call, _ = _cases(rng, (301, 257), dtype)[case]
    l1, g1 = with_threads(1, call)
    l2, g2 = with_threads(2, call)
    assert l1 == l2 and _same_bits(g1, g2)


# ---- finite differences (float64) ------------------------------------------------------------------
def _numeric_grad(f, x, h=1e-5):
    g = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp)[0] - f(xm)[0]) / (2 * h)
    return g


def _rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


def _fd_cases(rng):
    shape = (4, 5)
    x = rng.standard_normal(shape) * 2
    labels = np.array([0, 4, 2, 2])
    probs = rng.random(shape)
    probs /= probs.sum(axis=1, keepdims=True)
    unnormalised = rng.random(shape)  # rows summing to about 2.5: the gradient must hold for any target mass
    multi = (rng.random(shape) < 0.5).astype(np.float64)
    t = rng.standard_normal(shape)
    d = rng.choice([-1, 1], size=shape) * rng.uniform(0.05, 2.0, size=shape)
    d[np.abs(np.abs(d) - 0.7) < 0.05] = 0.3  # huber: clear of |d| = delta on both sides
    assert (np.abs(d) < 0.7).any() and (np.abs(d) > 0.7).any()
    return {
        "ce_labels": (lambda p: ops.cross_entropy(p, labels), x),
        "ce_probs": (lambda p: ops.cross_entropy(p, probs), x),
        "ce_unnormalised": (lambda p: ops.cross_entropy(p, unnormalised), x),
        "bce_multilabel": (lambda p: ops.binary_cross_entropy(p, multi), x),
        "bce_binary": (lambda p: ops.binary_cross_entropy(p, multi[:, 0]), x[:, 0].copy()),
        "bce_binary_column": (lambda p: ops.binary_cross_entropy(p, multi[:, 0]), x[:, :1].copy()),
        "mse": (lambda p: ops.mse(p, t), x),
        "mae": (lambda p: ops.mae(p, t), t + d),  # |pred - target| >= 0.05: away from the kink
        "huber": (lambda p: ops.huber(p, t, delta=0.7), t + d),
    }


@pytest.mark.parametrize("case", ["ce_labels", "ce_probs", "ce_unnormalised", "bce_multilabel", "bce_binary",
                                  "bce_binary_column", "mse", "mae", "huber"])
def test_gradient_finite_differences(case, rng):
    f, x = _fd_cases(rng)[case]
    loss, grad = f(x)
    assert grad.shape == x.shape
    assert _rel_err(_numeric_grad(f, x), grad) < 1e-6


# ---- extreme values ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_extreme_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    loss, grad = ops.cross_entropy(x, np.array([1, 0]))
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx((2e4 + (2e4 + math.log(2))) / 2, rel=1e-6)
    np.testing.assert_allclose(grad, [[0.5, -0.5, 0], [-0.5, 0.25, 0.25]], atol=1e-6)
    probs = np.array([[0.0, 0.5, 0.5], [0.2, 0.8, 0.0]], dtype=dtype)
    loss, grad = ops.cross_entropy(x, probs)
    rl, rg = ref_ce_probs(x, probs)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx(rl, rel=1e-6)
    np.testing.assert_allclose(grad, rg, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_extreme_logits(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype)
    t = np.array([0, 1, 1, 0, 1], dtype=dtype)
    loss, grad = ops.binary_cross_entropy(x, t)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx((1e4 + 1e4 + 0 + 0 + math.log(2)) / 5, rel=1e-6)
    np.testing.assert_allclose(grad, np.array([1, -1, 0, 0, -0.5]) / 5, atol=1e-7)


# ---- shapes and dtypes accepted ---------------------------------------------------------------------
def test_vector_and_column_targets(rng):
    p = rng.standard_normal(6)
    t = rng.standard_normal(6)
    for fn in (ops.mse, ops.mae, ops.huber):
        l1, g1 = fn(p, t)
        l2, g2 = fn(p[:, None], t)
        l3, g3 = fn(p, t[:, None])
        assert l1 == l2 == l3
        assert g1.shape == (6,) and g2.shape == (6, 1) and g3.shape == (6,)
        np.testing.assert_array_equal(g2[:, 0], g1)
    b = (t > 0).astype(np.float64)
    l1, g1 = ops.binary_cross_entropy(p, b)
    l2, g2 = ops.binary_cross_entropy(p[:, None], b)
    assert l1 == l2 and g2.shape == (6, 1)


def test_higher_rank_regression_is_elementwise_mean(rng):
    p, t = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))
    loss, grad = ops.mse(p, t)
    rl, rg = ref_mse(p, t)
    assert loss == pytest.approx(rl, rel=1e-12) and grad.shape == p.shape
    np.testing.assert_allclose(grad, rg, rtol=1e-12)


def test_targets_take_the_prediction_dtype(rng):
    p = rng.standard_normal((5, 3)).astype(np.float32)
    t64 = rng.standard_normal((5, 3))
    loss, grad = ops.mse(p, t64)
    ref = ops.mse(p, t64.astype(np.float32))
    assert grad.dtype == np.float32 and loss == ref[0] and _same_bits(grad, ref[1])
    ti = rng.integers(-2, 3, size=(5, 3))
    assert ops.mae(p, ti)[0] == ops.mae(p, ti.astype(np.float32))[0]
    tb = rng.random((5, 3)) < 0.5
    assert ops.binary_cross_entropy(p, tb)[0] == ops.binary_cross_entropy(p, tb.astype(np.float32))[0]
    labels32 = np.array([0, 1, 2, 0, 1], dtype=np.uint8)
    assert ops.cross_entropy(p, labels32)[0] == ops.cross_entropy(p, labels32.astype(np.int64))[0]
    probs = np.full((5, 3), 1 / 3)  # float64 probabilities for float32 logits
    l, g = ops.cross_entropy(p, probs)
    assert g.dtype == np.float32 and l == pytest.approx(ref_ce_probs(p, probs)[0], rel=1e-5)


def test_strided_inputs(rng):
    base = rng.standard_normal((6, 10))
    t = rng.standard_normal((6, 10))
    ref = ops.mse(np.ascontiguousarray(base[:, ::2]), np.ascontiguousarray(t[:, ::2]))
    got = ops.mse(base[:, ::2], t[:, ::2])
    assert got[0] == ref[0] and _same_bits(got[1], ref[1])
    ref = ops.cross_entropy(base, np.arange(6))
    got = ops.cross_entropy(np.asfortranarray(base), np.arange(6)[::-1][::-1])
    assert got[0] == ref[0] and _same_bits(got[1], ref[1])


def test_mae_gradient_is_zero_at_equality():
    p = np.array([[1.0, 2.0, 3.0]])
    loss, grad = ops.mae(p, np.array([[1.0, 1.0, 4.0]]))
    assert loss == pytest.approx(2 / 3)
    np.testing.assert_array_equal(grad, [[0, 1 / 3, -1 / 3]])


# ---- argument errors ---------------------------------------------------------------------------------
BAD_DTYPES = [np.int32, np.int64, np.bool_, np.complex128, np.float16, object]


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_prediction_dtype(bad):
    x = np.ones((3, 4), dtype=bad)
    t = np.zeros((3, 4))
    with pytest.raises(TypeError, match=r"^logits:"):
        ops.cross_entropy(x, np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match=r"^logits:"):
        ops.binary_cross_entropy(x, t)
    for fn in (ops.mse, ops.mae, ops.huber):
        with pytest.raises(TypeError, match=r"^pred:"):
            fn(x, t)


def test_bad_target_dtype():
    x = np.zeros((3, 4))
    for bad in (np.complex128, object):
        t = np.zeros((3, 4), dtype=bad)
        with pytest.raises(TypeError, match=r"^target:"):
            ops.mse(x, t)
        with pytest.raises(TypeError, match=r"^target:"):
            ops.binary_cross_entropy(x, t)
        with pytest.raises(TypeError, match=r"^target:"):
            ops.cross_entropy(x, t)


@pytest.mark.parametrize("labels", [
    np.array([0, 1, 4]),                 # out of range (== C)
    np.array([0, -1, 2]),                # negative
    np.array([0.0, 1.0, 2.0]),           # float labels
    np.array([True, False, True]),       # bool labels
    np.array([0, 1]),                    # too few
    np.array([[0], [1], [2]]),           # not 1-D
    np.array([0, 1, 2, 3]),              # too many
    np.array([0, 1, 2**40], dtype=np.uint64),
], ids=["c", "negative", "float", "bool", "short", "2d", "long", "huge-uint"])
def test_bad_labels(labels):
    with pytest.raises(ValueError, match=r"^target:"):
        ops.cross_entropy(np.zeros((3, 4)), labels)


def test_loss_shape_and_value_errors():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"^logits:"):
        ops.cross_entropy(np.zeros(4), np.array([1]))
    with pytest.raises(ValueError, match=r"^logits:"):
        ops.cross_entropy(np.zeros((2, 3, 4)), np.array([1, 2]))
    with pytest.raises(ValueError, match=r"^logits:"):
        ops.cross_entropy(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^target:"):
        ops.cross_entropy(x, np.full((3, 5), 0.2))
    with pytest.raises(ValueError, match=r"^target:"):
        ops.binary_cross_entropy(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"^target:"):
        ops.binary_cross_entropy(x, np.full((3, 4), 1.5))
    with pytest.raises(ValueError, match=r"^target:"):
        ops.binary_cross_entropy(x, np.full((3, 4), -0.1))
    for fn in (ops.mse, ops.mae, ops.huber):
        with pytest.raises(ValueError, match=r"^target:"):
            fn(x, np.zeros((3, 5)))
        with pytest.raises(ValueError, match=r"^target:"):
            fn(np.zeros(3), np.zeros((3, 3)))  # (N,) against (N, N) is not the (N, 1) case
        with pytest.raises(ValueError, match=r"^pred:"):
            fn(np.float64(1.0), np.float64(1.0))
        with pytest.raises(ValueError, match=r"^pred:"):
            fn(np.zeros((0, 3)), np.zeros((0, 3)))
    for delta in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match=r"^delta:"):
            ops.huber(x, x, delta=delta)
    with pytest.raises(TypeError, match=r"^delta:"):
        ops.huber(x, x, delta="1")


def test_non_finite_inputs():
    bad = np.zeros((3, 4))
    bad[1, 1] = np.nan
    good = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"^logits:.*NaN"):
        ops.cross_entropy(bad, np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^target:.*NaN"):
        ops.cross_entropy(good, bad)
    with pytest.raises(ValueError, match=r"^logits:.*NaN"):
        ops.binary_cross_entropy(bad, good)
    with pytest.raises(ValueError, match=r"^target:.*NaN"):
        ops.binary_cross_entropy(good, bad)
    for fn in (ops.mse, ops.mae, ops.huber):
        with pytest.raises(ValueError, match=r"^pred:.*NaN"):
            fn(bad, good)
        with pytest.raises(ValueError, match=r"^target:.*NaN"):
            fn(good, np.where(bad == bad, 0.0, np.inf))
    loss, grad = ops.mse(bad, good, check_finite=False)
    assert math.isnan(loss) and np.isnan(grad[1, 1]) and np.isfinite(np.delete(grad.ravel(), 5)).all()
    loss, _ = ops.cross_entropy(bad, np.zeros(3, dtype=np.int64), check_finite=False)
    assert math.isnan(loss)


# ---- the kernel's extras used by the network engine: sample weights, in-place gradient ------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"])
def test_kernel_sample_weights_and_in_place_grad(name, dtype, rng):
    n, c = 9, 6
    x = (rng.standard_normal((n, c)) * 2).astype(dtype)
    labels = rng.integers(0, c, size=n).astype(np.int64)
    t = (rng.random((n, c)) < 0.5).astype(dtype)
    w = rng.random(n).astype(dtype)
    kind = _core.LOSSES[name]
    lab = labels if name == "cross_entropy" else None
    tgt = None if name == "cross_entropy" else t
    param, scale = 0.5, 0.25
    rows = []
    for i in range(n):  # each row alone through the kernel, unweighted
        g = np.empty((1, c), dtype=dtype)
        li = _core.loss(kind, x[i:i + 1], None if lab is None else lab[i:i + 1],
                        None if tgt is None else tgt[i:i + 1], None, param, 1.0, g)
        rows.append((li, g[0]))
    grad = np.empty_like(x)
    total = _core.loss(kind, x, lab, tgt, w, param, scale, grad)
    assert total == pytest.approx(sum(float(w[i]) * rows[i][0] for i in range(n)), rel=TOL[np.dtype(dtype)])
    expect = np.stack([scale * w[i] * rows[i][1] for i in range(n)])
    np.testing.assert_allclose(grad, expect, rtol=TOL[np.dtype(dtype)], atol=1e-7)
    inplace = x.copy()  # grad written over the predictions it is computed from
    total2 = _core.loss(kind, inplace, lab, tgt, w, param, scale, inplace)
    assert total2 == total and _same_bits(inplace, grad)
    assert _core.loss(kind, x, lab, tgt, w, param, scale, None) == total  # loss only
