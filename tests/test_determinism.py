"""Same seed, same data: bitwise-identical parameters after fit whatever the thread count; small
steps run single-threaded."""
import numpy as np
import pytest

import fastnn as fnn
from conftest import with_threads


def train(dtype, opt):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 256))
    y = rng.integers(0, 10, 1000)
    m = fnn.Sequential([fnn.Dense(512, "relu", l2=1e-4), fnn.Dropout(0.3), fnn.Dense(256, "gelu"),
                        fnn.Dense(10)], input_dim=256, dtype=dtype, seed=42)
    m.compile("cross_entropy", opt)
    m.fit(X, y, epochs=2, batch_size=128, validation_split=0.1, verbose=0)
    return m


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", [lambda: fnn.SGD(lr=0.01, momentum=0.9), lambda: fnn.AdamW(lr=1e-3)],
                         ids=["sgd", "adamw"])
def test_same_seed_identical_bytes_with_1_and_2_threads(dtype, opt):
    a = with_threads(1, train, dtype, opt())
    b = with_threads(2, train, dtype, opt())
    if fnn.build_info()["openmp"]:
        assert with_threads(2, b._step_threads, 128) == 2  # the 2-thread run really used 2
    assert a._params.tobytes() == b._params.tobytes()
    assert a._state.tobytes() == b._state.tobytes()
    c = with_threads(1, train, dtype, opt())
    assert a._params.tobytes() == c._params.tobytes()


def test_different_seeds_differ():
    m1 = fnn.Sequential([fnn.Dense(4)], input_dim=3, seed=1)
    m2 = fnn.Sequential([fnn.Dense(4)], input_dim=3, seed=2)
    assert not np.array_equal(m1.layers[0].weight, m2.layers[0].weight)
    assert np.array_equal(m1.layers[0].weight, fnn.Sequential([fnn.Dense(4)], input_dim=3, seed=1).layers[0].weight)


def test_small_net_runs_single_threaded():
    # 64-32-10 at batch 32 is ~0.45 MFLOP per step: waking a second thread costs more than it saves,
    # so every kernel of the step is handed one thread even when two are available
    m = fnn.Sequential([fnn.Dense(32, "relu"), fnn.Dense(10)], input_dim=64, seed=0)
    assert with_threads(2, m._step_threads, 32) == 1
    assert with_threads(8, m._step_threads, 32) == 1
    big = fnn.Sequential([fnn.Dense(512, "relu"), fnn.Dense(256, "relu"), fnn.Dense(10)], input_dim=784, seed=0)
    assert with_threads(1, big._step_threads, 128) == 1
    if fnn.build_info()["openmp"]:
        assert with_threads(2, big._step_threads, 32) == 2
        assert with_threads(2, big._step_threads, 128) == 2


@pytest.mark.parametrize("threads", [3, 4])
@pytest.mark.parametrize("batch", [8, 96])
def test_backward_region_same_bits_for_any_thread_count(threads, batch):
    # A Dense layer's weight-gradient and input-gradient products and its bias gradient are handed out
    # from one counter in one parallel region: products too small to split run side by side, a frozen
    # layer has the input-gradient product alone, a layer without bias has no bias tasks.  Which thread
    # takes which piece must not change a bit.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 96)).astype(np.float32)
    y = rng.integers(0, 5, 400)

    def run():
        m = fnn.Sequential([fnn.Dense(300, "relu"), fnn.Dense(260, "tanh", trainable=False),
                            fnn.Dense(600, "relu", l2=1e-4, use_bias=False), fnn.Dense(5)], input_dim=96, seed=3)
        m.compile("cross_entropy", fnn.SGD(lr=0.05, momentum=0.9))
        m.fit(X, y, epochs=2, batch_size=batch, verbose=0)
        loss = m.compute_gradients(X[:batch], y[:batch])
        grads = [np.asarray(g).tobytes() for layer in m.layers if layer.trainable
                 for g in (layer.weight_grad, layer.bias_grad) if g is not None]
        return m._params.tobytes(), loss, grads

    serial = with_threads(1, run)
    parallel = with_threads(threads, run)
    assert len(serial[2]) == 5  # two trainable layers with bias, one without
    assert serial == parallel
