"""Products after an idle stretch (csrc/runtime.c, fnn_team_*): when the calling thread's OpenMP team
has been idle long enough for its threads to sleep, a product that one thread finishes sooner than
the team was measured to take to start runs on one thread, with the same bits; training steps keep
the count they are given.  The measured start-up cost is set through `_core._team_state` so that no
test here depends on how fast this machine wakes a thread."""
import time

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core

pytestmark = pytest.mark.skipif(not fnn.build_info()["openmp"], reason="a serial build has no team to wake")


@pytest.fixture
def two_threads():
    threads = fnn.get_num_threads()
    wake, _ = _core._team_state()
    fnn.set_num_threads(2)
    yield
    fnn.set_num_threads(threads)
    _core._team_state(set_wake=wake)


def operands(m=64, n=256, k=512, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def idle():
    time.sleep(0.003)  # well past libgomp's spin (about 0.1 ms with fastnn's GOMP_SPINCOUNT)


def test_an_idle_team_runs_a_small_product_on_one_thread_with_the_same_bits(two_threads):
    a, b = operands()
    fnn.set_num_threads(1)
    serial = fnn.ops.gemm(a, b)
    fnn.set_num_threads(2)
    fnn.ops.gemm(a, b)  # the team has started
    _core._team_state(set_wake=1.0)  # starting the team "costs" a second: any product is cheaper alone
    _, before = _core._team_state()
    idle()
    out = fnn.ops.gemm(a, b)
    assert _core._team_state()[1] == before + 1
    assert out.tobytes() == serial.tobytes()
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_an_unmeasured_wake_up_keeps_the_team_and_is_measured(two_threads):
    a, b = operands()
    _core._team_state(set_wake=0.0)  # nothing measured yet (or waking was measured free)
    _, before = _core._team_state()
    idle()
    fnn.ops.gemm(a, b)
    wake, after = _core._team_state()
    assert after == before  # ran on the team ...
    assert 0 < wake <= 1e-3  # ... whose start was timed (at most 1 ms counts)


def test_products_on_one_thread_leave_the_team_asleep(two_threads):
    """A product run on one thread does not wake the team, so the next small one finds it as idle
    (whatever time passed in between), until a region runs on it."""
    a, b = operands()
    _core._team_state(set_wake=1.0)
    _, before = _core._team_state()
    idle()
    for _ in range(4):
        fnn.ops.gemm(a, b, check_finite=False)
    assert _core._team_state()[1] == before + 4


def test_the_cost_is_measured_again_now_and_then(two_threads):
    a, b = operands()
    fnn.ops.gemm(a, b)
    _core._team_state(set_wake=1.0)
    _, before = _core._team_state()
    for _ in range(16):
        idle()
        fnn.ops.gemm(a, b)
    wake, after = _core._team_state()
    # 15 on one thread, then one on the team, whose start is measured (at most 1 ms counts) and
    # averaged in: the estimate falls to about half a second
    assert after == before + 15
    assert 0.49 < wake <= 0.5 + 1e-3


def test_large_products_still_use_the_team(two_threads):
    a, b = operands(m=512, n=512, k=784)  # 0.4 GFLOP: far longer on one thread than any wake-up
    fnn.ops.gemm(a, b)
    _core._team_state(set_wake=1e-3)
    _, before = _core._team_state()
    idle()
    fnn.ops.gemm(a, b)
    assert _core._team_state()[1] == before


def test_training_steps_keep_their_threads_after_a_pause(two_threads):
    """Between train_on_batch calls the team idles; the steps still run every product on the count
    they were given (the governor judges the counts; see test_adaptive_threads.py)."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((64, 784)).astype(np.float32), rng.integers(0, 10, 64)
    model = fnn.Sequential([fnn.Dense(512, "relu"), fnn.Dense(10)], input_dim=784, seed=0)
    model.compile("cross_entropy", optimizer=fnn.SGD(lr=0.01))
    model.train_on_batch(X, y)
    _core._team_state(set_wake=1.0)
    _, before = _core._team_state()
    for _ in range(3):
        idle()
        model.train_on_batch(X, y)
    assert _core._team_state()[1] == before
    idle()
    model.predict(X)  # inference after a pause may run its products on one thread
    assert _core._team_state()[1] > before


def test_the_state_is_the_calling_threads_own(two_threads):
    import threading

    _core._team_state(set_wake=0.25)
    seen = []
    t = threading.Thread(target=lambda: seen.append(_core._team_state()))
    t.start()
    t.join()
    assert seen == [(0.0, 0)] and _core._team_state()[0] == 0.25


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_a_product_on_one_thread_scales_c_once(two_threads, beta):
    """The product run on one thread is planned again for it: beta (C scaled before the product)
    applies once, as on any count."""
    a, b = operands(seed=2)
    c0 = np.random.default_rng(3).standard_normal((a.shape[0], b.shape[1])).astype(np.float32)
    fnn.set_num_threads(1)
    want = c0.copy()
    fnn.ops.gemm(a, b, beta=beta, out=want)
    fnn.set_num_threads(2)
    fnn.ops.gemm(a, b)
    _core._team_state(set_wake=1.0)
    _, before = _core._team_state()
    idle()
    got = c0.copy()
    fnn.ops.gemm(a, b, beta=beta, out=got)
    assert _core._team_state()[1] == before + 1
    assert got.tobytes() == want.tobytes()


def test_predict_on_one_thread_after_a_pause_gives_the_same_bits(two_threads):
    """Bias and activation epilogues included: predict after a pause, its products on one thread,
    gives the bits of predict on one thread and of predict on a busy team."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((48, 784)).astype(np.float32)
    model = fnn.Sequential([fnn.Dense(512, "relu"), fnn.Dense(256, "tanh"), fnn.Dense(10)], input_dim=784, seed=0)
    model.compile("cross_entropy")
    fnn.set_num_threads(1)
    want = model.predict(X)
    fnn.set_num_threads(2)
    busy = model.predict(X)
    _core._team_state(set_wake=1.0)
    _, before = _core._team_state()
    idle()
    got = model.predict(X)
    assert _core._team_state()[1] > before
    assert got.tobytes() == want.tobytes() == busy.tobytes()
