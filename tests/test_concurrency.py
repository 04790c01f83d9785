"""Calls from several Python threads at once: the GIL is released in C, so the engine must not share
mutable state between concurrent calls on one model, and ops and set_num_threads must be safe from any
thread."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

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


# ---- a model that is training refuses changes from other threads ------------------------------------

def _mutations(model, X, y, path):
    """(name, call) of every call that changes a built, compiled model."""
    dense = model.layers[0]
    w = model.get_weights()
    return [
        ("compile Adam", lambda: model.compile("cross_entropy", fnn.Adam())),
        ("compile SGD", lambda: model.compile("cross_entropy", fnn.SGD(momentum=0.9))),
        ("fit", lambda: model.fit(X[:64], y[:64], epochs=1, verbose=0)),
        ("train_on_batch", lambda: model.train_on_batch(X[:16], y[:16])),
        ("compute_gradients", lambda: model.compute_gradients(X[:16], y[:16])),
        ("set_weights", lambda: model.set_weights(w)),
        ("load_weights dict", lambda: model.load_weights(dict(model._named_parameters()))),
        ("load_weights path", lambda: model.load_weights(path)),
        ("freeze", lambda: model.freeze(1)),
        ("unfreeze", lambda: model.unfreeze()),
        ("trainable", lambda: setattr(dense, "trainable", False)),
        ("weight", lambda: setattr(dense, "weight", w[0])),
        ("bias", lambda: setattr(dense, "bias", w[1])),
        ("build", lambda: model.build(20)),
        ("seed", lambda: setattr(model, "seed", model.seed)),
    ]


def test_a_training_model_refuses_every_change_from_another_thread(tmp_path):
    """While fit runs (paused in a callback, so that it surely runs), each mutating call from another
    thread raises FastNNError and changes nothing; predict, evaluate, get_weights and save work and see
    the weights fit has; afterwards the same calls work again."""
    rng = np.random.default_rng(4)
    model = make_model(4)
    X = rng.standard_normal((512, 20)).astype(np.float32)
    y = rng.integers(0, 5, 512)
    model.fit(X, y, epochs=1, verbose=0)
    path = tmp_path / "w.safetensors"
    model.save(path)
    before = model.get_weights()
    started, done = threading.Event(), threading.Event()
    outcome = {}

    class Pause(fnn.Callback):
        def on_train_begin(self, logs=None):
            started.set()
            assert done.wait(60)

    def other():
        assert started.wait(60)
        try:
            for name, call in _mutations(model, X, y, path):
                try:
                    call()
                    outcome[name] = "allowed"
                except fnn.FastNNError as e:
                    outcome[name] = str(e)
            outcome["predict"] = model.predict(X[:5]).tobytes()
            outcome["evaluate"] = model.evaluate(X[:50], y[:50])["loss"]
            outcome["weights"] = model.get_weights()
            model.save(tmp_path / "during.safetensors")
        finally:
            done.set()

    t = threading.Thread(target=other)
    t.start()
    model.fit(X, y, epochs=2, verbose=0, callbacks=[Pause()])
    t.join()
    for name, _ in _mutations(model, X, y, path):
        assert "busy in another thread (fit)" in outcome[name], (name, outcome[name])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(outcome["weights"], before))
    assert fnn.load(tmp_path / "during.safetensors").predict(X[:5]).tobytes() == outcome["predict"]
    assert model.layers[0].trainable and isinstance(model.optimizer, fnn.SGD)
    for name, call in _mutations(model, X, y, path):  # from this thread, after fit: all work
        call()


def test_fit_from_two_threads_one_refused():
    rng = np.random.default_rng(5)
    model = make_model(5)
    X = rng.standard_normal((4000, 20)).astype(np.float32)
    y = rng.integers(0, 5, 4000)
    model.fit(X[:64], y[:64], epochs=1, verbose=0)
    started, done = threading.Event(), threading.Event()

    class Pause(fnn.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.set()
            assert done.wait(60)

    errors = []

    def second():
        assert started.wait(60)
        try:
            for call in (lambda: model.fit(X, y, epochs=1, verbose=0), lambda: model.train_on_batch(X[:8], y[:8])):
                with pytest.raises(fnn.FastNNError, match="busy in another thread"):
                    call()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=second)
    t.start()
    hist = model.fit(X, y, epochs=1, verbose=0, callbacks=[Pause()])
    t.join()
    assert not errors, errors
    assert len(hist.epoch) == 1


def test_callbacks_in_the_training_thread_may_change_the_model():
    """The claim is the training thread's: its own callbacks (restore_best_weights, an LR scheduler,
    a compile) go through."""
    rng = np.random.default_rng(6)
    model = make_model(6)
    X = rng.standard_normal((300, 20)).astype(np.float32)
    y = rng.integers(0, 5, 300)

    class Recompile(fnn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.compile("cross_entropy", fnn.Adam(lr=1e-3))
                self.model.set_weights(self.model.get_weights())
                self.model.layers[0].trainable = True

    hist = model.fit(X, y, epochs=3, verbose=0, validation_split=0.2,
                     callbacks=[Recompile(), fnn.EarlyStopping(patience=0, restore_best_weights=True)])
    assert isinstance(model.optimizer, fnn.Adam) and len(hist.epoch) >= 1


STRESS = r'''
import sys, threading, numpy as np, fastnn as fnn
rng = np.random.default_rng(0)
X = rng.standard_normal((20000, 64)).astype(np.float32)
y = rng.integers(0, 10, 20000)
m = fnn.Sequential([fnn.Dense(128, "relu"), fnn.Dense(10)], input_dim=64, seed=0)
m.compile("cross_entropy", fnn.SGD(lr=0.01, momentum=0.9))
stop = threading.Event()
counts = {"refused": 0, "other": 0}
def meddle():
    k = 0
    while not stop.is_set():
        try:
            m.compile("cross_entropy", fnn.Adam() if k % 2 else fnn.SGD(lr=0.01, momentum=0.9))
        except fnn.FastNNError:
            counts["refused"] += 1
        except Exception:
            counts["other"] += 1
        k += 1
t = threading.Thread(target=meddle)
t.start()
try:
    done = 0
    while done < 3:
        try:
            m.fit(X, y, epochs=1, batch_size=32, verbose=0)
            done += 1
        except fnn.FastNNError:  # the other thread was compiling: a change refuses fit too
            pass
finally:
    stop.set()
    t.join()
print(counts["refused"], counts["other"], int(np.isfinite(m.predict(X[:10])).all()))
'''


def test_compile_during_fit_in_a_loop_is_refused_not_a_crash(tmp_path):
    """The reported case: another thread alternating compile(Adam()) and compile(SGD(momentum=0.9))
    while fit runs corrupted the heap.  In a subprocess, so that a crash fails this test only."""
    import os
    import subprocess
    import sys
    script = tmp_path / "stress.py"
    script.write_text(STRESS)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fnn.__file__)))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=root))
    assert r.returncode == 0, r.stderr[-3000:]
    refused, other, finite = map(int, r.stdout.split())
    assert refused > 0 and other == 0 and finite == 1


def test_net_keeps_the_old_optimizer_state_until_c_lets_it_go():
    """The engine level: Net.set_optim takes the new state only when C accepted it (a refused state
    leaves the old one in use and referenced), and while a chunk of fit runs in another thread it
    waits for the chunk instead of freeing the array the chunk updates."""
    from fastnn import _core
    rng = np.random.default_rng(7)
    model = make_model(7)
    model.compile("cross_entropy", fnn.SGD(lr=0.01, momentum=0.9))
    X = rng.standard_normal((3000, 20)).astype(np.float32)
    y = rng.integers(0, 5, 3000)
    model.fit(X[:64], y[:64], epochs=1, verbose=0)
    net, old = model._net, model._net.state
    desc = model.optimizer.describe(0)
    with pytest.raises(ValueError):
        net.set_optim(desc, np.zeros(3, dtype=np.float32))  # too small: refused by C
    assert net.state is old
    stop = threading.Event()

    def swap():
        while not stop.is_set():  # each fresh array's only reference is the one Net keeps
            net.set_optim(desc, np.zeros(old.size, dtype=np.float32))

    t = threading.Thread(target=swap)
    t.start()
    try:
        perm = np.arange(3000, dtype=np.int64)
        losses = np.zeros(94)
        for _ in range(3):
            rc, _ = _core.net_fit_chunk(net, X, y.astype(np.int64), None, None, perm, 32, 0, losses, None)
            assert rc == 0
    finally:
        stop.set()
        t.join()
    assert np.isfinite(losses).all()
