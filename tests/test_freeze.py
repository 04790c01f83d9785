"""Freezing for transfer learning: frozen parameters never change, get no gradient, no decay and no
optimizer-state change; the three classic recipes are one line each."""
import numpy as np
import pytest

import fastnn as fnn

OPTIMIZERS = {
    "sgd": lambda: fnn.SGD(lr=0.05),
    "sgd-momentum-wd": lambda: fnn.SGD(lr=0.05, momentum=0.9, weight_decay=0.1),
    "sgd-nesterov": lambda: fnn.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam-wd": lambda: fnn.Adam(lr=0.01, weight_decay=0.1),
    "adamw": lambda: fnn.AdamW(lr=0.01, weight_decay=0.1),
    "rmsprop": lambda: fnn.RMSprop(lr=0.01, momentum=0.5, weight_decay=0.1),
}


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)


def model(seed=0):
    return fnn.Sequential([fnn.Dense(16, "relu", l2=1e-3), fnn.Dropout(0.2), fnn.Dense(12, "tanh", l1=1e-3),
                           fnn.Dense(3)], input_dim=10, seed=seed)


def layer_params(m, k):
    layer = m.layers[k]
    return [layer.weight.copy(), layer.bias.copy()]


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_frozen_weights_bitwise_unchanged_after_fit(opt):
    X, y = data()
    m = model()
    m.compile("cross_entropy", OPTIMIZERS[opt]())
    m.fit(X, y, epochs=2, batch_size=32, verbose=0)  # momentum / moments now nonzero everywhere
    m.layers[0].trainable = False
    frozen = layer_params(m, 0)
    state_before = m._state.copy()
    trained = layer_params(m, 3)
    m.fit(X, y, epochs=3, batch_size=32, verbose=0)
    for a, b in zip(frozen, layer_params(m, 0)):
        assert np.array_equal(a, b)  # no update, no decay, no momentum drift
    assert not np.array_equal(trained[0], m.layers[3].weight)
    assert not m.layers[0].weight_grad.any() and not m.layers[0].bias_grad.any()
    # the frozen layer's optimizer state did not move either
    w0 = m.layers[0].weight.size + m.layers[0].bias.size
    n = m._params.size
    for s in range(m._state.size // n):
        assert np.array_equal(state_before[s * n: s * n + w0], m._state[s * n: s * n + w0])


def test_three_transfer_recipes_are_one_line_each():
    X, y = data()
    base = model(seed=1)
    base.compile("cross_entropy", fnn.Adam(lr=0.01))
    base.fit(X, y, epochs=1, verbose=0)
    pretrained = base.get_weights()

    def run(recipe):
        m = model(seed=1)
        m.set_weights(pretrained)
        m.compile("cross_entropy", fnn.Adam(lr=0.01))
        recipe(m)
        before = m.get_weights()
        m.fit(X, y, epochs=1, verbose=0)
        after = m.get_weights()
        return [not np.array_equal(a, b) for a, b in zip(before[::2], after[::2])]  # weights moved?

    assert run(lambda m: m.freeze(-1)) == [False, False, True]   # small data: the last layer only
    assert run(lambda m: m.freeze(-2)) == [False, True, True]    # medium: the last few
    assert run(lambda m: m.unfreeze()) == [True, True, True]     # large: everything
    m = model()
    m.freeze()
    assert not any(l.trainable for l in m.layers)
    m.freeze(up_to=2)
    m.unfreeze()
    assert all(l.trainable for l in m.layers)


def test_all_frozen_still_reports_loss_and_changes_nothing():
    X, y = data()
    m = model()
    m.compile("cross_entropy", fnn.SGD(lr=0.1, momentum=0.9))
    m.freeze()
    before = m.get_weights()
    h = m.fit(X, y, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    assert np.isfinite(h.history["loss"]).all()


def test_frozen_layer_below_trainable_ones_still_passes_gradient():
    # freezing the middle layer: the first layer still learns through it
    X, y = data()
    m = model()
    m.compile("cross_entropy", fnn.SGD(lr=0.05))
    m.layers[2].trainable = False
    w0, w2 = m.layers[0].weight.copy(), m.layers[2].weight.copy()
    m.fit(X, y, epochs=1, verbose=0)
    assert not np.array_equal(w0, m.layers[0].weight)
    assert np.array_equal(w2, m.layers[2].weight)


def test_summary_and_count_params_show_frozen():
    m = model()
    m.freeze(-1)
    s = m.summary()
    assert "frozen: " in s and "dense_2" in s
    assert m.count_params() == 10 * 16 + 16 + 16 * 12 + 12 + 12 * 3 + 3
