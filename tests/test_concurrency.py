"""Calls from several Python threads at once: the GIL is released in C, so the engine must not share
mutable state between concurrent calls on one model, and ops and set_num_threads must be safe from any
thread."""
import threading
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


# ---- ops --------------------------------------------------------------------------------------------

def _op_calls(rng):
    """(name, thunk) pairs over both dtypes, transposes and sizes big enough to run threaded kernels."""
    calls = []
    for dt in (np.float32, np.float64):
        a = rng.standard_normal((150, 90)).astype(dt)
        b = rng.standard_normal((90, 70)).astype(dt)
        big = rng.standard_normal((300, 257)).astype(dt)
        y = rng.integers(0, 257, 300)
        calls += [
            (f"gemm {dt.__name__}", lambda a=a, b=b: fnn.ops.gemm(a, b)),
            (f"gemm_tt {dt.__name__}", lambda a=a, b=b: fnn.ops.gemm(b, a, trans_a=True, trans_b=True, alpha=0.5)),
            (f"gemm big {dt.__name__}", lambda big=big: fnn.ops.gemm(big, big, trans_b=True)),
            (f"softmax {dt.__name__}", lambda big=big: fnn.ops.softmax(big)),
            (f"gelu {dt.__name__}", lambda big=big: fnn.ops.gelu(big)),
            (f"elu grad {dt.__name__}", lambda big=big: fnn.ops.activation_grad("elu", big, big)),
            (f"cross_entropy {dt.__name__}", lambda big=big, y=y: fnn.ops.cross_entropy(big, y)),
            (f"huber {dt.__name__}", lambda a=a: fnn.ops.huber(a, a[::-1], delta=0.5)),
        ]
    return calls


def _bits(result):
    if isinstance(result, tuple):
        return tuple(_bits(r) for r in result)
    return np.asarray(result).tobytes()


def test_ops_from_several_threads_equal_serial():
    rng = np.random.default_rng(2)
    calls = _op_calls(rng)
    serial = {name: _bits(fn()) for name, fn in calls}
    jobs = [calls[i % len(calls)] for i in range(8 * len(calls))]
    rng.shuffle(jobs)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: (job[0], _bits(job[1]())), jobs))
    for name, got in results:
        assert got == serial[name], name


def test_set_num_threads_between_and_during_calls():
    """Results are bitwise the same for any thread count, so changing the count while other threads
    are idle between calls, or even in the middle of their calls, must change no bit and crash nothing."""
    rng = np.random.default_rng(3)
    calls = _op_calls(rng)
    model = make_model(3)
    X = rng.standard_normal((700, 20)).astype(np.float32)
    model.fit(X, rng.integers(0, 5, 700), epochs=1, verbose=0)
    calls.append(("predict", lambda: model.predict(X)))
    calls.append(("evaluate", lambda: model.evaluate(X, np.zeros(700, dtype=np.int64))["loss"]))
    before = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        serial = {name: _bits(fn()) for name, fn in calls}
        # while idle: every worker waits at a barrier while the main thread changes the count
        barrier = threading.Barrier(5)
        results = []

        def worker(k):
            for rep in range(6):
                barrier.wait()
                name, fn = calls[(k + rep) % len(calls)]
                results.append((name, _bits(fn())))
                barrier.wait()

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for rep in range(6):
            fnn.set_num_threads(1 + rep % 2)  # all four workers are idle at the barrier
            barrier.wait()
            barrier.wait()
        for t in threads:
            t.join()
        assert len(results) == 24
        # during calls: one thread flips the count as fast as it can while the others compute
        stop = threading.Event()

        def flipper():
            n = 0
            while not stop.is_set():
                fnn.set_num_threads(1 + n % 2)
                n += 1

        f = threading.Thread(target=flipper)
        f.start()
        try:
            with ThreadPoolExecutor(3) as pool:
                results += list(pool.map(lambda job: (job[0], _bits(job[1]())), calls * 3))
        finally:
            stop.set()
            f.join()
    finally:
        fnn.set_num_threads(before)
    for name, got in results:
        assert got == serial[name], name
