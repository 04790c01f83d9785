"""Each optimizer's train_on_batch against a NumPy transcription of PyTorch's documented update
(torch.optim.SGD / Adam / AdamW / RMSprop), float64, to 1e-12; weight decay on weights only."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from conftest import SIMD_LEVELS


def sgd(lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    def step(p, g, s, t, decay):
        g = g + weight_decay * p * decay
        if momentum:
            s["buf"] = g if t == 1 else momentum * s["buf"] + g  # dampening 0
            g = g + momentum * s["buf"] if nesterov else s["buf"]
        return p - lr * g
    return step


def adam(lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    def step(p, g, s, t, decay):
        if decoupled:
            p = p * (1 - lr * weight_decay * decay)
        else:
            g = g + weight_decay * p * decay
        s["m"] = beta1 * s.get("m", 0) + (1 - beta1) * g
        s["v"] = beta2 * s.get("v", 0) + (1 - beta2) * g * g
        m_hat_step = lr / (1 - beta1 ** t)
        denom = np.sqrt(s["v"]) / np.sqrt(1 - beta2 ** t) + eps
        return p - m_hat_step * s["m"] / denom
    return step


def rmsprop(lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    def step(p, g, s, t, decay):
        g = g + weight_decay * p * decay
        s["sq"] = alpha * s.get("sq", 0) + (1 - alpha) * g * g
        if centered:
            s["ga"] = alpha * s.get("ga", 0) + (1 - alpha) * g
            avg = np.sqrt(s["sq"] - s["ga"] ** 2) + eps
        else:
            avg = np.sqrt(s["sq"]) + eps
        if momentum:
            s["buf"] = momentum * s.get("buf", 0) + g / avg
            return p - lr * s["buf"]
        return p - lr * g / avg
    return step


CASES = {
    "sgd": (fnn.SGD(lr=0.1), sgd(0.1)),
    "sgd-momentum": (fnn.SGD(lr=0.05, momentum=0.9), sgd(0.05, 0.9)),
    "sgd-nesterov": (fnn.SGD(lr=0.05, momentum=0.8, nesterov=True), sgd(0.05, 0.8, True)),
    "sgd-weight_decay": (fnn.SGD(lr=0.05, momentum=0.9, weight_decay=0.1), sgd(0.05, 0.9, False, 0.1)),
    "sgd-nesterov-weight_decay": (fnn.SGD(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.05),
                                  sgd(0.05, 0.7, True, 0.05)),
    "adam": (fnn.Adam(lr=0.01), adam(0.01)),
    "adam-weight_decay": (fnn.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
                          adam(0.01, 0.8, 0.99, 1e-6, 0.1)),
    "adamw": (fnn.AdamW(lr=0.01, weight_decay=0.1), adam(0.01, weight_decay=0.1, decoupled=True)),
    "rmsprop": (fnn.RMSprop(lr=0.01), rmsprop(0.01)),
    "rmsprop-weight_decay-momentum-centered": (
        fnn.RMSprop(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.5, centered=True),
        rmsprop(0.01, 0.9, 1e-8, 0.1, 0.5, True)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_train_on_batch_matches_pytorch_formula(simd, name):
    opt, ref = CASES[name]
    rng = np.random.default_rng(0)
    model = fnn.Sequential([fnn.Dense(6, "tanh", l2=0.01), fnn.Dense(5, "relu"), fnn.Dense(3)],
                           input_dim=4, dtype="float64", seed=1)
    model.compile("cross_entropy", optimizer=opt)
    for layer in model.layers:
        layer.bias[...] = rng.normal(0, 0.5, layer.bias.shape)
    # reference state per parameter array; decay only on weights
    arrays = [(l.weight, l.weight_grad, 1.0) for l in model.layers] + [(l.bias, l.bias_grad, 0.0) for l in model.layers]
    states = [{} for _ in arrays]
    for t in range(1, 5):
        X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)
        model.compute_gradients(X, y)
        expected = [ref(p.copy(), g.copy(), s, t, decay) for (p, g, decay), s in zip(arrays, states)]
        model.train_on_batch(X, y)
        for (p, _, _), e in zip(arrays, expected):
            np.testing.assert_allclose(p, e, rtol=1e-12, atol=1e-14)


def test_optimizer_defaults_and_lr():
    assert fnn.SGD().lr == 0.01 and fnn.Adam().lr == 0.001 and fnn.RMSprop().alpha == 0.99
    assert fnn.AdamW().weight_decay == 0.01
    opt = fnn.Adam()
    opt.lr = 0.5
    assert opt.lr == 0.5
    with pytest.raises(ValueError):
        opt.lr = -1.0
    with pytest.raises(ValueError):
        fnn.SGD(nesterov=True)
    with pytest.raises(ValueError, match="optimizer"):
        fnn.Sequential([fnn.Dense(2)], input_dim=2).compile("mse", optimizer="nope")


def test_lr_change_applies_to_the_next_step():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    model = fnn.Sequential([fnn.Dense(2)], input_dim=3, dtype="float64", seed=0)
    model.compile("mse", optimizer=fnn.SGD(lr=0.0))
    w0 = model.layers[0].weight.copy()
    model.train_on_batch(X, y)
    assert np.array_equal(model.layers[0].weight, w0)
    model.optimizer.lr = 0.1
    model.compute_gradients(X, y)
    g = model.layers[0].weight_grad.copy()
    model.train_on_batch(X, y)
    np.testing.assert_allclose(model.layers[0].weight, w0 - 0.1 * g, rtol=1e-14)


class _FixedGradient:
    """A gradient hook (the one distributed training uses) that points every update at one fixed buffer,
    so that what reaches the update does not depend on the forward and backward products."""
    update, error = 0, None

    def grad_event(self, event, layer, status, rows):
        return 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_simd_level_updates_to_the_same_bits(name, dtype):
    """The update runs at the widest vectors the CPU has (kernels/update_t.h): each SIMD level gives the
    generic level's bits, over tensors whose lengths (37*29, 29, 29*3, 3) end mid-vector."""
    opt = CASES[name][0]
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(64, 37)), rng.integers(0, 3, 64)
    results = {}
    before = _core.simd_level()
    try:
        for level in SIMD_LEVELS:
            _core.set_simd(level)
            model = fnn.Sequential([fnn.Dense(29, "relu"), fnn.Dense(3)], input_dim=37, dtype=dtype, seed=4)
            model.compile("cross_entropy", optimizer=type(opt)(**opt.get_config()))
            grad = np.random.default_rng(5).normal(0, 0.1, model._net.params.shape).astype(dtype)
            model._net.set_grad_hook(_FixedGradient(), update_buffers=(grad,))
            model.fit(X, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
            model._net.set_grad_hook(None)
            results[level] = b"".join(a.tobytes() for a in model.get_weights())
    finally:
        _core.set_simd(before)
    same = {level: r == results["generic"] for level, r in results.items()}
    assert all(same.values()), same
