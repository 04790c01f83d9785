"""compute_gradients against central finite differences of the loss (float64), for every activation,
loss and penalty, with and without bias, 1 to 3 hidden layers; plus Dropout, Activation layers and
frozen layers."""
import itertools

import numpy as np
import pytest

import fastnn as fnn

ACTIVATIONS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "gelu", "silu"]
LOSSES = ["cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"]
PENALTIES = [(0.0, 0.0), (0.01, 0.0), (0.0, 0.02), (0.01, 0.02)]  # (l1, l2)
HIDDEN = [5, 4, 6]
N_IN, N_OUT, ROWS = 4, 3, 6


def targets(loss, rng, rows, cols, as_labels):
    if loss == "cross_entropy":
        if as_labels:
            return rng.integers(0, cols, rows)
        t = rng.random((rows, cols))
        return t / t.sum(axis=1, keepdims=True)
    if loss == "binary_cross_entropy":
        return rng.random((rows, cols)) if as_labels else rng.integers(0, 2, (rows, cols)).astype(float)
    return rng.normal(0.0, 1.5, (rows, cols))  # huber: both sides of delta = 1


def fd_check(model, X, y, params=None, h=1e-6, **kw):
    """Relative error of compute_gradients against central differences over the parameters `params`
    (indices into the flat buffer; all by default)."""
    model.compute_gradients(X, y, **kw)
    g = model._grads.copy()
    p = model._params
    idx = range(p.size) if params is None else params
    fd = np.zeros(p.size)
    for i in idx:
        v = p[i]
        p[i] = v + h
        lp = model.compute_gradients(X, y, **kw)
        p[i] = v - h
        lm = model.compute_gradients(X, y, **kw)
        p[i] = v
        fd[i] = (lp - lm) / (2 * h)
    sel = np.asarray(list(idx))
    num = np.linalg.norm(g[sel] - fd[sel])
    den = max(np.linalg.norm(g[sel]), np.linalg.norm(fd[sel]), 1e-12)
    return num / den, g


CASES = list(itertools.product(ACTIVATIONS, LOSSES, PENALTIES, [True, False], [1, 2, 3]))


@pytest.mark.parametrize("act,loss,pen,bias,depth", CASES,
                         ids=[f"{a}-{l}-l1={p[0]}-l2={p[1]}-{'bias' if b else 'nobias'}-{d}h"
                              for a, l, p, b, d in CASES])
def test_gradients_match_finite_differences(act, loss, pen, bias, depth):
    base = CASES.index((act, loss, pen, bias, depth))
    for seed in range(base, base + 50 * len(CASES), len(CASES)):  # skip draws where every ReLU is dead
        rng = np.random.default_rng(seed)
        l1, l2 = pen
        layers = [fnn.Dense(w, act, l1=l1, l2=l2, use_bias=bias) for w in HIDDEN[:depth]]
        layers.append(fnn.Dense(N_OUT, act, l1=l1, l2=l2, use_bias=bias))  # the output activation too
        model = fnn.Sequential(layers, input_dim=N_IN, dtype="float64", seed=seed)
        model.compile(loss)
        if bias:  # nonzero biases, so that they matter
            for layer in model.layers:
                layer.bias[...] = rng.normal(0.1, 0.3, layer.bias.shape)
        X = rng.normal(size=(ROWS, N_IN))
        y = targets(loss, rng, ROWS, N_OUT, seed % 2 == 0)
        model.compute_gradients(X, y)
        if np.count_nonzero(model._grads) > model._grads.size // 3:
            break
    err, g = fd_check(model, X, y)
    assert err < 1e-6, f"relative error {err:.3g}"


@pytest.mark.parametrize("loss", LOSSES)
def test_gradients_with_dropout_activation_layers_and_sample_weights(loss):
    rng = np.random.default_rng(7)
    model = fnn.Sequential([
        fnn.Dense(6), fnn.Activation("gelu"),                  # folded into the Dense
        fnn.Dropout(0.3),
        fnn.Dense(5, "relu"), fnn.Activation("tanh"),          # a layer of its own
        fnn.Dense(4, "elu"), fnn.Activation("leaky_relu", alpha=0.2),
        fnn.Dense(3, l2=0.01), fnn.Activation("softmax" if loss == "cross_entropy" else "sigmoid"),
    ], input_dim=N_IN, dtype="float64", seed=3)
    model.compile(loss)
    X = rng.normal(size=(8, N_IN))
    y = targets(loss, rng, 8, 3, True)
    w = rng.random(8) * 2
    err, _ = fd_check(model, X, y, sample_weight=w)  # dropout masks are those of the current step
    assert err < 1e-6


def test_gradients_of_trainable_layers_with_frozen_ones():
    rng = np.random.default_rng(8)
    model = fnn.Sequential([fnn.Dense(5, "tanh", l2=0.1), fnn.Dense(4, "silu"), fnn.Dense(3, l1=0.01),
                            fnn.Dense(2)], input_dim=N_IN, dtype="float64", seed=4)
    model.compile("mse")
    model.layers[0].trainable = False
    model.layers[2].trainable = False
    X, y = rng.normal(size=(7, N_IN)), rng.normal(size=(7, 2))
    trainable = [i for k in (1, 3) for i in range(*span(model, k))]
    err, g = fd_check(model, X, y, params=trainable)
    assert err < 1e-6
    for k in (0, 2):  # frozen: no gradient computed
        assert not g[slice(*span(model, k))].any()


def span(model, k):
    """[start, stop) of layer k's parameters in the flat buffer."""
    layer = model.layers[k]
    base = model._params.__array_interface__["data"][0]
    lo = (layer.weight.__array_interface__["data"][0] - base) // model._params.itemsize
    hi = lo + layer.weight.size + (layer.bias.size if layer.bias is not None else 0)
    return lo, hi


def test_penalty_is_in_the_loss():
    rng = np.random.default_rng(9)
    model = fnn.Sequential([fnn.Dense(3, l1=0.5, l2=0.25)], input_dim=2, dtype="float64", seed=0)
    model.compile("mse")
    X, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
    w, b = model.layers[0].weight, model.layers[0].bias
    data = np.mean((X @ w + b - y) ** 2)
    pen = 0.5 * np.abs(w).sum() + 0.25 * (w ** 2).sum()
    assert model.compute_gradients(X, y) == pytest.approx(data + pen, rel=1e-13)
    assert model.evaluate(X, y)["loss"] == pytest.approx(data + pen, rel=1e-13)
    np.testing.assert_allclose(model.layers[0].bias_grad, 2 * (X @ w + b - y).mean(0) / 3, rtol=1e-12)
