"""Calls from several Python threads at once: the GIL is released in C, so the engine must not share
mutable state between concurrent calls on one model."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import fastnn as fnn


def make_model(seed=0):
    model = fnn.Sequential([fnn.Dense(64, activation="relu"), fnn.Dropout(0.2), fnn.Dense(32, activation="tanh"),
                            fnn.Dense(5)], input_dim=20, seed=seed)
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9))
    return model


def test_concurrent_predict_on_one_model_equals_serial():
    rng = np.random.default_rng(0)
    model = make_model()
    X = rng.standard_normal((600, 20)).astype(np.float32)
    model.fit(X, rng.integers(0, 5, 600), epochs=1, batch_size=32, verbose=0)
    # batches of different sizes, so that concurrent calls would need different workspaces
    chunks = [X[i:i + n] for i, n in zip(range(0, 600, 37), [1, 5, 17, 64, 128, 3] * 20)]
    serial = [model.predict(c) for c in chunks]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            results = list(pool.map(model.predict, chunks))
            for got, want in zip(results, serial):
                assert got.tobytes() == want.tobytes()


def test_fit_while_another_thread_predicts_on_a_different_model():
    rng = np.random.default_rng(1)
    a, b = make_model(1), make_model(2)
    X = rng.standard_normal((2000, 20)).astype(np.float32)
    y = rng.integers(0, 5, 2000)
    b.fit(X[:100], y[:100], epochs=1, verbose=0)
    want = b.predict(X)
    with ThreadPoolExecutor(2) as pool:
        fut = pool.submit(a.fit, X, y, epochs=3, batch_size=16, verbose=0)
        for _ in range(20):
            assert b.predict(X).tobytes() == want.tobytes()
        hist = fut.result()
    assert len(hist.history["loss"]) == 3
