"""The training steps' thread-count governor (csrc/runtime.c, fnn_gov_*): which count it runs when the
machine makes one count faster than another, driven through `_core._gov_sim` with step times the test
chooses (so no test here depends on this machine's speed), and the public switch."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core


@pytest.fixture
def adaptive():
    before = fnn.get_adaptive_threads()
    fnn.set_adaptive_threads(True)
    yield
    fnn.set_adaptive_threads(before)


def counts_of(max_threads):
    c, out = max_threads, [max_threads]
    while c > 1:
        c = (c + 1) // 2
        out.append(c)
    return out


def run(max_threads, seconds_by_count, steps):
    """Simulate `steps` steps whose time on c threads is seconds_by_count(step, c); return the counts the
    governor chose and the total time against the best fixed count's and the per-step oracle's."""
    levels = counts_of(max_threads)
    table = np.array([[seconds_by_count(s, c) for c in levels] for s in range(steps)])
    chosen = _core._gov_sim(max_threads, table)
    idx = np.array([levels.index(c) for c in chosen])
    total = table[np.arange(steps), idx].sum()
    return chosen, total, table.sum(axis=0).min(), table.min(axis=1).sum()


def test_levels_are_the_count_halved_rounded_up(adaptive):
    assert counts_of(16) == [16, 8, 4, 2, 1] and counts_of(3) == [3, 2, 1]
    t = np.full((50, 5), 1e-3)
    assert set(_core._gov_sim(16, t)) <= {16, 8, 4, 2, 1}
    with pytest.raises(ValueError, match="3 columns"):  # 3 halves to 2, then 1
        _core._gov_sim(3, np.full((200, 2), 1e-3))
    # a count that only the ladder's last rung reaches: 3 -> 2 -> 1
    chosen, *_ = run(3, lambda s, c: {3: 3e-3, 2: 2e-3, 1: 1e-3}[c], 2000)
    assert chosen[-1] == 1


def test_quiet_machine_keeps_every_thread(adaptive):
    chosen, total, best, _ = run(2, lambda s, c: 0.6e-3 if c == 2 else 1e-3, 5000)
    assert chosen[-1] == 2
    assert np.mean(chosen == 1) < 0.02  # probes only
    assert total <= 1.01 * best


def test_a_busy_core_moves_training_to_one_thread(adaptive):
    # another process on one core: the second thread waits for it at every step
    chosen, total, best, _ = run(2, lambda s, c: 2.5e-3 if c == 2 else 1e-3, 5000)
    assert chosen[-1] == 1
    assert np.mean(chosen[20:] == 2) < 0.02
    assert total <= 1.035 * best  # a probe up runs 20 ms before it is measured (waking threads)


def test_the_governor_follows_the_machine_when_it_changes(adaptive):
    # quiet, then a neighbour for a while, then quiet again: the run stays near the per-step best
    def t(s, c):
        busy = 3000 <= s < 6000
        return (2.5e-3 if busy else 0.6e-3) if c == 2 else 1e-3

    chosen, total, best, oracle = run(2, t, 9000)
    assert np.mean(chosen[3500:6000] == 1) > 0.95
    assert np.mean(chosen[7000:] == 2) > 0.95
    assert total <= 1.05 * oracle < best


def test_many_threads_settle_on_the_fastest_count(adaptive):
    # 16 threads of which some wait on busy cores: 4 is fastest, 8 close, 16 and 1 slow
    speed = {16: 2.0e-3, 8: 0.9e-3, 4: 0.7e-3, 2: 1.1e-3, 1: 2.0e-3}
    chosen, total, best, _ = run(16, lambda s, c: speed[c], 5000)
    assert np.bincount(chosen[-1000:]).argmax() == 4  # the last steps may be a probe's
    assert np.mean(chosen[500:] == 4) > 0.97
    assert total <= 1.035 * best


def test_noise_does_not_move_it_off_a_clear_winner(adaptive):
    rng = np.random.default_rng(0)
    noise = rng.lognormal(0, 0.25, size=(6000, 2))  # +-25% per step, more than this host's quarter hours
    chosen, total, best, _ = run(2, lambda s, c: (0.6e-3 if c == 2 else 1e-3) * noise[s, c - 1], 6000)
    assert np.mean(chosen == 2) > 0.95
    assert total <= 1.03 * best


def wake_sim(max_threads, seconds_by_count, steps, **wake):
    levels = counts_of(max_threads)
    table = np.array([[seconds_by_count(s, c) for c in levels] for s in range(steps)])
    return _core._gov_sim(max_threads, table, **wake)


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_threads_waking_up_do_not_drive_it_to_one_thread(adaptive, noise):
    # Threads that slept while one ran come back slowly.  Seen on a 2-vCPU VM at batch 128: 2-thread
    # steps of 4 ms, 1-thread steps of 6 ms, and the first 20 ms or so of 2-thread steps after a
    # stretch on one thread (or after any pause) 2-3 times as long.  Judged by those steps, a return
    # from a probe on one thread looked like a slower machine and a probe back up like a loss, and a
    # quiet machine trained on one thread from then on.
    rng = np.random.default_rng(0)
    jitter = rng.lognormal(0, noise, size=(3000, 2)) if noise else np.ones((3000, 2))
    quiet = lambda s, c: (4e-3 if c == 2 else 6e-3) * jitter[s, 2 - c]  # noqa: E731
    chosen = wake_sim(2, quiet, 3000, wake=0.015, wake_factor=2.5)
    assert np.mean(chosen[100:] == 2) > 0.95
    # the same with pauses between fits (the second thread sleeps through each)
    chosen = wake_sim(2, quiet, 3000, wake=0.015, wake_factor=2.5, pause_every=150, pause=0.9)
    assert np.mean(chosen[100:] == 2) > 0.95


def wake_time(chosen, seconds_by_count, wake, wake_factor):
    """The run's time with the wake-up the simulation charged (steps on a count larger than the last)."""
    now, prev, woke = 0.0, 0, -1e9
    for s, c in enumerate(chosen):
        woke = now if c > prev else woke
        prev = c
        now += seconds_by_count(s, c) * (wake_factor if now - woke < wake else 1.0)
    return now


def test_probes_on_fewer_threads_are_rare_on_a_quiet_machine(adaptive):
    # Each probe on one thread costs its own steps and the second thread's wake-up after it, while a
    # neighbour's arrival brings the next probe forward anyway: they back off further than probes up.
    quiet = lambda s, c: 4e-3 if c == 2 else 6e-3  # noqa: E731
    chosen = wake_sim(2, quiet, 5000, wake=0.015, wake_factor=2.5)
    fixed = wake_time(np.full(5000, 2), quiet, 0.015, 2.5)
    assert wake_time(chosen, quiet, 0.015, 2.5) <= 1.015 * fixed


def test_waking_threads_still_leave_a_busy_core(adaptive):
    busy = lambda s, c: 10e-3 if c == 2 else 6e-3  # noqa: E731
    chosen = wake_sim(2, busy, 3000, wake=0.015, wake_factor=2.5, pause_every=150, pause=0.9)
    assert chosen[-1] == 1 and np.mean(chosen[100:] == 1) > 0.95
    total = sum(10e-3 if c == 2 else 6e-3 for c in chosen)
    assert total <= 1.03 * 3000 * 6e-3


def test_switched_off_it_runs_the_count_asked(adaptive):
    fnn.set_adaptive_threads(False)
    assert not fnn.get_adaptive_threads() and not fnn.build_info()["adaptive_threads"]
    chosen, *_ = run(2, lambda s, c: 2.5e-3 if c == 2 else 1e-3, 2000)
    assert (chosen == 2).all()
    fnn.set_adaptive_threads(True)
    assert fnn.get_adaptive_threads() and fnn.build_info()["adaptive_threads"]


def test_one_thread_is_never_governed(adaptive):
    assert (_core._gov_sim(1, np.full((100, 1), 1e-3)) == 1).all()


def test_the_switch_checks_its_argument(adaptive):
    with pytest.raises(TypeError):
        fnn.set_adaptive_threads("yes")
    with pytest.raises(TypeError):
        fnn.set_adaptive_threads(None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_governed_fits_give_the_bits_of_fixed_ones(adaptive, dtype):
    """Whatever counts the governor picks step by step, the weights, predictions and losses are those of
    a fixed count."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((1500, 300)).astype(dtype)
    y = rng.integers(0, 5, 1500)

    def fit(threads, on):
        before = fnn.get_num_threads()
        fnn.set_num_threads(threads)
        fnn.set_adaptive_threads(on)
        try:
            m = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Dropout(0.2), fnn.Dense(5)], input_dim=300,
                               dtype=dtype, seed=7)
            m.compile("cross_entropy", fnn.SGD(lr=0.05, momentum=0.9))
            m.fit(X, y, epochs=2, batch_size=64, verbose=0)
            for i in range(3):
                m.train_on_batch(X[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64])
            # inference has a governor of its own: predict and evaluate in many batches
            pred = m.predict(X, batch_size=50)
            loss = m.evaluate(X, y, batch_size=50)["loss"]
            return [w.tobytes() for w in m.get_weights()] + [pred.tobytes(), loss]
        finally:
            fnn.set_num_threads(before)

    ref = fit(1, False)
    assert fit(3, True) == ref
    assert fit(2, True) == ref
    assert fit(2, False) == ref



def test_governed_sparse_gradients_give_the_bits_of_fixed_ones(adaptive):
    """compute_gradients on sparse rows runs in blocks of rows (4 Mi values each), each block a governed step."""
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.random(1000, 20000, density=0.01, format="csr", dtype=np.float32, random_state=4)  # blocks of 209 rows
    y = np.random.default_rng(4).integers(0, 3, 1000)

    def grads(threads, on):
        before = fnn.get_num_threads()
        fnn.set_num_threads(threads)
        fnn.set_adaptive_threads(on)
        try:
            m = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(3)], input_dim=20000, seed=5)
            m.compile("cross_entropy")
            loss = m.compute_gradients(X, y)
            return [loss] + [layer.weight_grad.tobytes() for layer in m.layers]
        finally:
            fnn.set_num_threads(before)

    ref = grads(1, False)
    assert grads(2, True) == ref
    assert grads(3, True) == ref


C_FIT = r"""
#include <stdio.h>
#include <stdlib.h>
#include "fastnn.h"
/* fit MODEL on ROWS x 300 rows from X with labels from Y, 2 threads, adaptive (1) or not (0); save OUT */
int main(int argc, char **argv) {
    if (argc != 7) return 2;
    size_t rows = strtoull(argv[4], NULL, 10);
    float *x = malloc(rows * 300 * sizeof *x);
    int32_t *y = malloc(rows * sizeof *y);
    FILE *fx = fopen(argv[2], "rb"), *fy = fopen(argv[3], "rb");
    if (!x || !y || !fx || !fy || fread(x, sizeof *x, rows * 300, fx) != rows * 300 ||
        fread(y, sizeof *y, rows, fy) != rows)
        return 3;
    fclose(fx);
    fclose(fy);
    fnn_set_num_threads(2);
    fnn_set_adaptive_threads(atoi(argv[5]));
    if (fnn_get_adaptive_threads() != (atoi(argv[5]) != 0)) return 4;
    fnn_model *m = NULL;
    if (fnn_model_load(argv[1], &m)) return 5;
    fnn_train_options o;
    fnn_train_options_init(&o);
    o.batch_size = 64;
    o.seed = 11;
    o.momentum = 0.9;
    double loss;
    if (fnn_model_fit(m, x, y, NULL, rows, 2, &o, &loss) || fnn_model_save(m, argv[6])) return 6;
    fnn_model_free(m);
    free(x);
    free(y);
    return 0;
}
"""


def test_c_api_switch_and_governed_fit(embed, tmp_path):
    """fnn_set_adaptive_threads from C: a governed and a fixed 2-thread fnn_model_fit save the same bytes."""
    import os
    import subprocess

    from conftest import build_c

    src = tmp_path / "fit.c"
    src.write_text(C_FIT)
    exe = build_c(src, tmp_path / "fit", os.path.dirname(embed))
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1000, 300)).astype("<f4")
    y = rng.integers(0, 4, 1000).astype("<i4")
    X.tofile(tmp_path / "x.f32")
    y.tofile(tmp_path / "y.i32")
    m = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Dropout(0.1), fnn.Dense(4)], input_dim=300, seed=2)
    m.compile("cross_entropy")
    m.save(tmp_path / "m.safetensors")
    outs = []
    for on in ("1", "0"):
        out = tmp_path / f"out{on}.safetensors"
        r = subprocess.run([exe, str(tmp_path / "m.safetensors"), str(tmp_path / "x.f32"), str(tmp_path / "y.i32"),
                            "1000", on, str(out)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert fnn.load(tmp_path / "out1.safetensors").get_weights()[0].tobytes() != m.get_weights()[0].tobytes()
