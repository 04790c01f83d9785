"""Dropout: Philox masks keyed by (seed, step, layer, element) with inverted scaling."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from conftest import with_threads


def test_philox_known_answers():
    # Random123's kat_vectors for Philox4x32-10
    assert _core.philox((0, 0, 0, 0), (0, 0)) == (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)
    assert _core.philox((0xffffffff,) * 4, (0xffffffff,) * 2) == (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)
    assert _core.philox((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0)) == \
        (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)


def test_epoch_permutation():
    a, b, c = (np.empty(1000, dtype=np.int64) for _ in range(3))
    _core.permutation(5, 0, a)
    _core.permutation(5, 0, b)
    _core.permutation(5, 1, c)
    assert np.array_equal(np.sort(a), np.arange(1000))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # roughly uniform: each position's expected value is 499.5
    many = np.stack([_core.permutation(s, 0, p) or p.copy() for s in range(200) for p in [np.empty(10, np.int64)]])
    assert np.abs(many.mean(axis=0) - 4.5).max() < 0.7


def dropout_model(p, n=1000, **kw):
    model = fnn.Sequential([fnn.Dropout(p, **kw)], input_dim=n, dtype="float64", seed=11)
    model.compile("mse", "sgd")
    return model


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_drop_rate_and_expectation(p):
    model = dropout_model(p)
    X = np.ones((200, 1000))
    out = model._forward_train(X)
    n = X.size
    dropped = np.mean(out == 0)
    assert abs(dropped - p) < 3 * np.sqrt(p * (1 - p) / n)
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1 / (1 - p), rtol=1e-15)  # inverted scaling
    # E[out] = x: the sample mean of 1 + noise with variance p/(1-p)
    assert abs(out.mean() - 1) < 3 * np.sqrt(p / (1 - p) / n)


def test_keep_prob_is_one_minus_p():
    assert fnn.Dropout(keep_prob=0.75).p == pytest.approx(0.25)
    assert fnn.Dropout().p == 0.5
    with pytest.raises(ValueError, match="both"):
        fnn.Dropout(0.5, keep_prob=0.5)
    with pytest.raises(ValueError, match="p"):
        fnn.Dropout(1.0)
    X = np.ones((10, 1000))
    assert np.array_equal(dropout_model(0.25)._forward_train(X), dropout_model(None, keep_prob=0.75)._forward_train(X))


def test_no_dropout_in_predict_and_evaluate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 1000))
    model = dropout_model(0.5)
    assert np.array_equal(model.predict(X), X)
    assert model.evaluate(X, X)["loss"] == 0.0
    with_drop = fnn.Sequential([fnn.Dense(8, "relu"), fnn.Dropout(0.5), fnn.Dense(3)], input_dim=5, seed=1)
    without = fnn.Sequential([fnn.Dense(8, "relu"), fnn.Dense(3)], input_dim=5, seed=1)
    without.set_weights(with_drop.get_weights())
    assert np.array_equal(with_drop.predict(X[:, :5]), without.predict(X[:, :5]))


def test_masks_differ_across_steps_and_layers():
    model = fnn.Sequential([fnn.Dropout(0.5), fnn.Dropout(0.5)], input_dim=1000, dtype="float64", seed=3)
    model.compile("mse", "sgd")
    one = fnn.Sequential([fnn.Dropout(0.5)], input_dim=1000, dtype="float64", seed=3)
    X = np.ones((4, 1000))
    a = model._forward_train(X)
    assert np.array_equal(a, model._forward_train(X))  # same step, same masks
    model.train_on_batch(X, X)  # one step on
    b = model._forward_train(X)
    assert not np.array_equal(a == 0, b == 0)
    # the second layer draws its own mask: two layers drop about 1 - 0.25, not 0.5
    assert abs(np.mean(a == 0) - 0.75) < 0.03
    assert not np.array_equal(one._forward_train(X) == 0, a == 0)


def test_masks_identical_across_thread_counts():
    # big enough that the step runs on 2 threads (the Dense layer) and the mask loop splits too
    rng = np.random.default_rng(0)
    model = fnn.Sequential([fnn.Dense(1024, "relu"), fnn.Dropout(0.4), fnn.Dense(8)], input_dim=512, seed=5)
    model.compile("mse", fnn.SGD(lr=0.01))
    X, y = rng.normal(size=(512, 512)).astype(np.float32), rng.normal(size=(512, 8)).astype(np.float32)
    if fnn.build_info()["openmp"]:
        assert with_threads(2, model._step_threads, 512) == 2
    outs, grads = [], []
    for nt in (1, 2):
        outs.append(with_threads(nt, model._forward_train, X))
        with_threads(nt, model.compute_gradients, X, y)
        grads.append(model._grads.copy())
    assert np.array_equal(outs[0], outs[1])
    assert np.array_equal(grads[0], grads[1])
