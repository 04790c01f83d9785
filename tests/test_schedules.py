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
