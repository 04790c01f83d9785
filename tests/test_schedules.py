"""Per-epoch learning-rate schedules against their closed forms."""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn.schedules import CosineDecay, ExponentialDecay, StepDecay


def test_step_decay_values():
    s = StepDecay(0.1, drop=0.5, every=10)
    assert [s(e) for e in (0, 9, 10, 19, 20, 35)] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.1 * 0.5 ** 3]
    s = StepDecay(1.0, drop=0.1, every=1)
    for e in range(6):
        assert s(e) == pytest.approx(0.1 ** e, rel=1e-15)
    assert isinstance(s(np.int64(3)), float)


def test_exponential_decay_values():
    s = ExponentialDecay(0.2, decay_rate=0.9)
    for e in range(20):
        assert s(e) == pytest.approx(0.2 * 0.9 ** e, rel=1e-15)
    s = ExponentialDecay(0.2, decay_rate=0.5, decay_epochs=4)
    for e in range(20):
        assert s(e) == pytest.approx(0.2 * 0.5 ** (e / 4), rel=1e-15)
    s = ExponentialDecay(0.2, decay_rate=0.5, decay_epochs=4, staircase=True)
    assert [s(e) for e in (0, 3, 4, 7, 8)] == [0.2, 0.2, 0.1, 0.1, 0.05]


def test_cosine_decay_matches_cosine_annealing():
    # without warm-up: PyTorch's CosineAnnealingLR(T_max=T, eta_min) closed form, one step per epoch
    lr0, lo, T = 0.1, 0.001, 10
    s = CosineDecay(lr0, total_epochs=T, min_lr=lo)
    for e in range(T):
        assert s(e) == pytest.approx(lo + (lr0 - lo) * (1 + math.cos(math.pi * e / T)) / 2, rel=1e-14)
    assert s(0) == lr0
    assert s(T) == lo and s(T + 7) == lo
    assert s(T // 2) == pytest.approx((lr0 + lo) / 2)
    values = [s(e) for e in range(T + 1)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_cosine_decay_warmup():
    lr0, T, W = 0.4, 12, 3
    s = CosineDecay(lr0, total_epochs=T, warmup_epochs=W)
    # linear ramp below the peak: 0.1, 0.2, 0.3, then the cosine starts at the peak
    assert [s(e) for e in range(W)] == pytest.approx([0.1, 0.2, 0.3], rel=1e-15)
    assert s(W) == lr0
    for e in range(W, T):
        assert s(e) == pytest.approx(lr0 * (1 + math.cos(math.pi * (e - W) / (T - W))) / 2, rel=1e-14)
    assert s(T) == 0.0


def test_repr_eq_and_config():
    s = CosineDecay(0.1, 10, min_lr=0.01, warmup_epochs=2)
    assert repr(s) == "CosineDecay(initial_lr=0.1, total_epochs=10, min_lr=0.01, warmup_epochs=2)"
    assert eval(repr(s), {"CosineDecay": CosineDecay}) == s
    assert repr(StepDecay(0.1)) == "StepDecay(initial_lr=0.1, drop=0.5, every=10)"
    assert repr(ExponentialDecay(0.1, 0.9)) == \
        "ExponentialDecay(initial_lr=0.1, decay_rate=0.9, decay_epochs=1, staircase=False)"
    assert StepDecay(0.1) != StepDecay(0.2)
    assert fnn.schedules.StepDecay is StepDecay


@pytest.mark.parametrize("make, arg", [
    (lambda: StepDecay(0.0), "initial_lr"),
    (lambda: StepDecay(-0.1), "initial_lr"),
    (lambda: StepDecay(0.1, drop=0.0), "drop"),
    (lambda: StepDecay(0.1, drop=1.5), "drop"),
    (lambda: StepDecay(0.1, every=0), "every"),
    (lambda: ExponentialDecay(0.1, decay_rate=0.0), "decay_rate"),
    (lambda: ExponentialDecay(0.1, decay_rate=1.1), "decay_rate"),
    (lambda: ExponentialDecay(0.1, 0.9, decay_epochs=0), "decay_epochs"),
    (lambda: CosineDecay(0.1, total_epochs=0), "total_epochs"),
    (lambda: CosineDecay(0.1, 10, min_lr=0.2), "min_lr"),
    (lambda: CosineDecay(0.1, 10, min_lr=-0.1), "min_lr"),
    (lambda: CosineDecay(0.1, 10, warmup_epochs=10), "warmup_epochs"),
    (lambda: CosineDecay(0.1, 10, warmup_epochs=-1), "warmup_epochs"),
    (lambda: StepDecay(float("nan")), "initial_lr"),
])
def test_bad_arguments(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_bad_types_and_epochs():
    with pytest.raises(TypeError, match="every"):
        StepDecay(0.1, every=2.5)
    with pytest.raises(TypeError, match="total_epochs"):
        CosineDecay(0.1, total_epochs="10")
    s = StepDecay(0.1)
    with pytest.raises(ValueError, match="epoch"):
        s(-1)
    with pytest.raises(TypeError, match="epoch"):
        s(1.0)
    with pytest.raises(TypeError, match="epoch"):
        s(True)


# ---- per-step schedules, evaluated by the engine inside its chunks -------------------------------------

from fastnn.schedules import CosineDecayByStep, ExponentialDecayByStep, StepDecayByStep, WarmUp  # noqa: E402


def _warm(t, peak, w):
    return peak * (t + 1) / (w + 1)


def test_per_step_values_against_closed_forms():
    s = WarmUp(0.2, warmup_steps=4)
    assert [s(t) for t in range(6)] == pytest.approx([_warm(t, 0.2, 4) for t in range(4)] + [0.2, 0.2], rel=1e-15)
    s = StepDecayByStep(0.1, drop=0.5, every=3, warmup_steps=2)
    assert [s(t) for t in range(2, 11)] == pytest.approx([0.1 * 0.5 ** ((t - 2) // 3) for t in range(2, 11)], rel=1e-15)
    s = ExponentialDecayByStep(0.3, decay_rate=0.9, decay_steps=7)
    for t in range(30):
        assert s(t) == pytest.approx(0.3 * 0.9 ** (t / 7), rel=1e-14)
    s = ExponentialDecayByStep(0.3, decay_rate=0.9, decay_steps=7, staircase=True)
    assert [s(t) for t in (0, 6, 7, 13, 14)] == pytest.approx([0.3, 0.3, 0.27, 0.27, 0.243], rel=1e-14)
    lr0, lo, T, W = 0.05, 0.001, 100, 10
    s = CosineDecayByStep(lr0, decay_steps=T, min_lr=lo, warmup_steps=W)
    for t in range(W):
        assert s(t) == pytest.approx(_warm(t, lr0, W), rel=1e-15)
    for t in range(W, W + T):
        assert s(t) == pytest.approx(lo + (lr0 - lo) * (1 + math.cos(math.pi * (t - W) / T)) / 2, rel=1e-13)
    assert s(W) == lr0 and s(W + T) == lo and s(10**9) == lo
    assert repr(s) == "CosineDecayByStep(initial_lr=0.05, decay_steps=100, min_lr=0.001, warmup_steps=10)"
    assert s.per_step and not CosineDecay(0.1, 10).per_step
    with pytest.raises(ValueError, match="step: must be >= 0"):
        s(-1)


def _chunk_calls(monkeypatch):
    from fastnn import _core
    calls = []
    real = _core.net_fit_chunk
    monkeypatch.setattr(_core, "net_fit_chunk", lambda *a: calls.append(len(a[8])) or real(*a))
    return calls


@pytest.mark.parametrize("schedule", [WarmUp(0.2, 13), StepDecayByStep(0.2, 0.7, every=9, warmup_steps=3),
                                      ExponentialDecayByStep(0.2, 0.5, 20), CosineDecayByStep(0.2, 50, 0.01, 5)],
                         ids=lambda s: type(s).__name__)
def test_fit_steps_at_the_scheduled_rate_in_c(schedule, monkeypatch):
    """fit with a per-step schedule gives the bits of train_on_batch with the rate set before each step,
    while Python calls the engine once per chunk of many batches."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(400, 6)), rng.normal(size=(400, 2))
    a = fnn.Sequential([fnn.Dense(8, "tanh"), fnn.Dense(2)], input_dim=6, dtype="float64", seed=0)
    a.compile("mse", optimizer=fnn.SGD(lr=schedule, momentum=0.5))
    calls = _chunk_calls(monkeypatch)
    h = a.fit(X, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    assert sum(calls) == 160 and len(calls) < 40
    b = fnn.Sequential([fnn.Dense(8, "tanh"), fnn.Dense(2)], input_dim=6, dtype="float64", seed=0)
    b.compile("mse", optimizer=fnn.SGD(lr=0.0, momentum=0.5))
    for t in range(160):
        b.optimizer.lr = schedule(t)
        rows = slice(5 * (t % 80), 5 * (t % 80) + 5)
        b.train_on_batch(X[rows], y[rows])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)
    assert h.history["lr"] == [schedule(79), schedule(159)]  # the rate of each epoch's last step


def test_per_epoch_schedule_counts_the_model_epochs_across_fits():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    m = fnn.Sequential([fnn.Dense(1)], input_dim=3, seed=0)
    m.compile("mse", optimizer=fnn.SGD(lr=StepDecay(0.1, drop=0.5, every=2)))
    h1 = m.fit(X, y, epochs=3, verbose=0)
    h2 = m.fit(X, y, epochs=2, verbose=0)
    assert h1.history["lr"] + h2.history["lr"] == [0.1, 0.1, 0.05, 0.05, 0.025]


def test_bad_per_step_arguments():
    for make, arg in ((lambda: WarmUp(0.1, -1), "warmup_steps"), (lambda: WarmUp(0, 5), "initial_lr"),
                      (lambda: StepDecayByStep(0.1, every=0), "every"),
                      (lambda: ExponentialDecayByStep(0.1, 0.9, 0), "decay_steps"),
                      (lambda: CosineDecayByStep(0.1, 10, min_lr=0.2), "min_lr"),
                      (lambda: CosineDecayByStep(0.1, 10, warmup_steps=-2), "warmup_steps")):
        with pytest.raises(ValueError, match=arg):
            make()
    with pytest.raises(TypeError, match="decay_steps"):
        CosineDecayByStep(0.1, 10.5)
