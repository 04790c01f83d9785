"""Callbacks on scripted epoch logs, driven by a stand-in for the fit loop and a small fake model.

Expected stopping epochs are worked out by hand in the comments, step by step, from the Keras 3
rules: every monitored epoch does `wait += 1`; an improvement (best is None, or beaten by more
than min_delta) records the best and resets `wait` to 0 only if it also beats the baseline, and
never stops; a non-improvement stops when `wait >= patience` (and epoch > 0).
"""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn import callbacks as C
from fastnn.schedules import StepDecay


class FakeOptimizer:
    def __init__(self, lr=0.1):
        self.lr = lr


class FakeModel:
    """The interface the callbacks rely on; `train_epoch` changes the weights in place."""

    def __init__(self, seed=0, lr=0.1):
        self._rng = np.random.default_rng(seed)
        self._w = [self._rng.standard_normal((4, 3)).astype(np.float32),
                   self._rng.standard_normal(3)]  # float64 bias: both dtypes round-trip
        self.stop_training = False
        self.optimizer = FakeOptimizer(lr)
        self.snapshots = []   # weights after each epoch's training
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self._w]

    def set_weights(self, weights):
        assert len(weights) == len(self._w)
        for w, new in zip(self._w, weights):
            assert new.shape == w.shape and new.dtype == w.dtype
            w[...] = new

    def train_epoch(self):
        for w in self._w:
            w += self._rng.standard_normal(w.shape).astype(w.dtype)
        self.snapshots.append(self.get_weights())

    def save(self, path):
        with open(path, "w") as f:
            f.write("model")
        self.saved.append(path)


def fit(model, callbacks, series, fail_at=None, exc=RuntimeError):
    """The fit loop's contract: series[e] is the log dict of epoch e (without "lr"); the loop
    raises `exc` in epoch `fail_at`, before that epoch's on_epoch_end."""
    cbs = C.CallbackList(callbacks, model=model, params={"epochs": len(series)})
    model.stop_training = False
    cbs.on_train_begin()
    try:
        for epoch, logs in enumerate(series):
            cbs.on_epoch_begin(epoch)
            model.train_epoch()
            if epoch == fail_at:
                raise exc("interrupted")
            cbs.on_epoch_end(epoch, dict(logs, lr=model.optimizer.lr))
            if model.stop_training:
                break
    finally:
        cbs.on_train_end()
    return cbs.history


def seq(values, key="val_loss"):
    return [{key: v} for v in values]


def same_bits(a, b):
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
               for x, y in zip(a, b)) and len(a) == len(b)


def run(es, values, key="val_loss"):
    model = FakeModel()
    hist = fit(model, [es], seq(values, key))
    return model, hist


# ---------------------------------------------------------------------------------------------
# EarlyStopping: stopping epochs
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_patience_keras_sequence(patience):
    # Keras' own test: best is 8.0 at epoch 2; epoch 3 (9.0) makes wait 1, each later epoch +1.
    # Stop once wait >= patience: epoch 3 for patience 0 and 1, 4 for 2, 5 for 3.
    es = C.EarlyStopping(monitor="loss", patience=patience)
    _, hist = run(es, [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5], key="loss")
    assert es.stopped_epoch == max(patience, 1) + 2
    assert len(hist.epoch) == es.stopped_epoch + 1
    assert es.best == 8.0 and es.best_epoch == 2


def test_min_delta():
    values = [1.0, 0.97, 0.90, 0.88, 0.87, 0.80]
    # min_delta 0.05: e0 best 1.0; e1 0.97+0.05 !< 1.0 -> wait 1; e2 0.95 < 1.0 -> best 0.90, wait 0;
    # e3 0.93 !< 0.90 -> wait 1; e4 0.92 !< 0.90 -> wait 2 >= 2 -> stop at 4.
    for delta in (0.05, -0.05):  # the sign is ignored, as in Keras
        es = C.EarlyStopping(patience=2, min_delta=delta)
        _, hist = run(es, values)
        assert (es.stopped_epoch, es.best, es.best_epoch, len(hist.epoch)) == (4, 0.90, 2, 5)
    # min_delta 0: every value after e1 improves -> runs to the end
    es = C.EarlyStopping(patience=2)
    _, hist = run(es, values)
    assert (es.stopped_epoch, es.best, es.best_epoch, len(hist.epoch)) == (0, 0.80, 5, 6)


def test_min_delta_in_max_mode():
    values = [0.50, 0.51, 0.53, 0.54, 0.60]
    # accuracy must rise by more than 0.02. patience 1: e0 best 0.50; e1 0.51 is not enough,
    # wait 1 >= 1 -> stop at 1
    es = C.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.02)
    run(es, values, key="val_accuracy")
    assert (es.stopped_epoch, es.best, es.best_epoch) == (1, 0.50, 0)
    # patience 2: e1 wait 1; e2 0.53 beats 0.50 by 0.03 -> best, wait 0; e3 0.54 is only 0.01 above
    # 0.53 -> wait 1; e4 0.60 -> best; no stop
    es = C.EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.02)
    _, hist = run(es, values, key="val_accuracy")
    assert (es.stopped_epoch, es.best, es.best_epoch, len(hist.epoch)) == (0, 0.60, 4, 5)


def test_mode_auto_max_for_accuracy_and_explicit_min():
    values = [0.5, 0.6, 0.6, 0.59, 0.7, 0.65, 0.64]
    # auto -> max: e1 0.6 best; e2 0.6 !> 0.6 wait 1; e3 wait 2 >= 2 -> stop at 3
    es = C.EarlyStopping(monitor="val_accuracy", patience=2)
    assert es.direction == "max"
    run(es, values, key="val_accuracy")
    assert (es.stopped_epoch, es.best, es.best_epoch) == (3, 0.6, 1)
    # forced min on the same numbers: e0 best 0.5; e1, e2 wait 1, 2 -> stop at 2
    es = C.EarlyStopping(monitor="val_accuracy", patience=2, mode="min")
    run(es, values, key="val_accuracy")
    assert (es.stopped_epoch, es.best, es.best_epoch) == (2, 0.5, 0)
    # names decide "auto"
    for name, direction in [("val_loss", "min"), ("loss", "min"), ("acc", "max"), ("f1_score", "max"),
                            ("val_auc", "max"), ("val_mse", "min"), ("hinge", "min")]:
        assert C.EarlyStopping(monitor=name).direction == direction
    assert C.EarlyStopping(monitor="val_loss", mode="max").direction == "max"


def test_start_from_epoch():
    values = [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8]
    # e0-e2 are not monitored; e3 is the first value (best 3.5, although e2 had 3.0);
    # e4 3.6 -> wait 1 >= 1 -> stop at 4
    es = C.EarlyStopping(patience=1, start_from_epoch=3)
    run(es, values)
    assert (es.stopped_epoch, es.best, es.best_epoch) == (4, 3.5, 3)
    # monitored from the start: e3 3.5 !< 3.0 -> wait 1 -> stop at 3
    es = C.EarlyStopping(patience=1)
    run(es, values)
    assert (es.stopped_epoch, es.best, es.best_epoch) == (3, 3.0, 2)
    # patience 0 on a rising loss: e2 first monitored (best), e3 worse -> stop at 3
    es = C.EarlyStopping(patience=0, start_from_epoch=2)
    run(es, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert (es.stopped_epoch, es.best) == (3, 3.0)


def test_baseline_never_beaten_stops_after_patience():
    # Keras' test: baseline 0.5 is never beaten, so improvements keep wait counting:
    # e0 w1, e1 w2, e2 w3 (best 0.7), e3 w4, e4 w5 >= 5 and not an improvement -> stop at 4
    es = C.EarlyStopping(patience=5, baseline=0.5)
    _, hist = run(es, [0.9, 0.8, 0.7, 0.71, 0.72, 0.73])
    assert (es.stopped_epoch, es.best, es.best_epoch, len(hist.epoch)) == (4, 0.7, 2, 5)


def test_baseline_improvements_do_not_stop():
    # every epoch improves without reaching the baseline: wait grows past patience, but an
    # improving epoch never stops training
    es = C.EarlyStopping(patience=1, baseline=0.5)
    _, hist = run(es, [0.9, 0.8, 0.7, 0.6, 0.55])
    assert (es.stopped_epoch, es.wait, len(hist.epoch)) == (0, 5, 5)


def test_baseline_beaten_resets_wait():
    # e0 w1 (0.9 does not beat 0.5); e1 0.45 beats best and baseline -> w0; e2 w1; e3 w2 -> stop at 3
    es = C.EarlyStopping(patience=2, baseline=0.5)
    run(es, [0.9, 0.45, 0.46, 0.47, 0.1])
    assert (es.stopped_epoch, es.best, es.best_epoch) == (3, 0.45, 1)
    # max mode: baseline 0.8 never reached; e0 w1, e1 w2, e2 0.65 no improvement, w3 >= 1 -> stop at 2
    es = C.EarlyStopping(monitor="val_accuracy", patience=1, baseline=0.8)
    run(es, [0.6, 0.7, 0.65, 0.9], key="val_accuracy")
    assert (es.stopped_epoch, es.best) == (2, 0.7)


def test_flat_and_nan():
    es = C.EarlyStopping(patience=0)
    run(es, [1.0, 1.0, 1.0])            # equal is not better: stop at 1
    assert es.stopped_epoch == 1
    es = C.EarlyStopping(patience=1)
    run(es, [1.0, math.nan, 0.5])       # NaN never improves: stop at 1
    assert es.stopped_epoch == 1 and es.best == 1.0


def test_missing_monitor_warns_and_does_nothing():
    es = C.EarlyStopping(monitor="val_loss", patience=0, restore_best_weights=True)
    model = FakeModel()
    with pytest.warns(RuntimeWarning, match="val_loss"):
        hist = fit(model, [es], seq([1.0, 2.0, 3.0], key="loss"))
    assert len(hist.epoch) == 3 and es.stopped_epoch == 0 and es.best is None
    assert same_bits(model.get_weights(), model.snapshots[-1])


def test_reuse_resets_state():
    es = C.EarlyStopping(patience=1)
    run(es, [1.0, 2.0, 3.0])
    assert es.stopped_epoch == 1 and es.best == 1.0
    # a second fit starts from scratch: its worse values must not be compared with 1.0
    _, hist = run(es, [5.0, 4.0, 3.0])
    assert es.stopped_epoch == 0 and es.best == 3.0 and len(hist.epoch) == 3


# ---------------------------------------------------------------------------------------------
# EarlyStopping: restore_best_weights
# ---------------------------------------------------------------------------------------------

def test_restore_on_normal_end():
    es = C.EarlyStopping(patience=10, restore_best_weights=True)
    model = FakeModel()
    fit(model, [es], seq([3.0, 1.0, 2.0, 2.5]))
    assert es.stopped_epoch == 0 and es.best_epoch == 1
    assert same_bits(model.get_weights(), model.snapshots[1])
    assert not same_bits(model.get_weights(), model.snapshots[-1])


def test_restore_on_stop():
    es = C.EarlyStopping(patience=2, restore_best_weights=True)
    model = FakeModel()
    hist = fit(model, [es], seq([3.0, 1.0, 2.0, 2.5, 2.6, 0.1]))
    assert es.stopped_epoch == 3 and len(hist.epoch) == 4
    assert same_bits(model.get_weights(), model.snapshots[1])


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_restore_on_exception(exc):
    es = C.EarlyStopping(patience=10, restore_best_weights=True)
    model = FakeModel()
    with pytest.raises(exc):
        fit(model, [es], seq([3.0, 1.0, 2.0, 2.5]), fail_at=3, exc=exc)
    assert same_bits(model.get_weights(), model.snapshots[1])


def test_no_restore_before_first_monitored_epoch():
    es = C.EarlyStopping(patience=10, restore_best_weights=True)
    model = FakeModel()
    with pytest.raises(RuntimeError):
        fit(model, [es], seq([3.0, 1.0]), fail_at=0)
    assert es.best_weights is None
    assert same_bits(model.get_weights(), model.snapshots[0])


def test_restore_respects_start_from_epoch():
    # epoch 1 has the lowest loss but is not monitored; the best monitored epoch is 3
    es = C.EarlyStopping(patience=1, restore_best_weights=True, start_from_epoch=2)
    model = FakeModel()
    fit(model, [es], seq([3.0, 0.5, 2.0, 1.0, 1.5]))
    assert (es.stopped_epoch, es.best_epoch) == (4, 3)
    assert same_bits(model.get_weights(), model.snapshots[3])


def test_restore_when_baseline_never_beaten_and_when_another_callback_stops():
    es = C.EarlyStopping(patience=5, baseline=0.5, restore_best_weights=True)
    model = FakeModel()
    fit(model, [es], seq([0.9, 0.8, 0.7, 0.71, 0.72, 0.73]))
    assert same_bits(model.get_weights(), model.snapshots[2])

    class StopAt3(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:
                self.model.stop_training = True

    es = C.EarlyStopping(patience=5, baseline=0.5, restore_best_weights=True)
    model = FakeModel()
    hist = fit(model, [es, StopAt3()], seq([0.9, 0.8, 0.7, 0.71, 0.72, 0.73]))
    assert len(hist.epoch) == 4 and es.stopped_epoch == 0
    assert same_bits(model.get_weights(), model.snapshots[2])


def test_restore_even_if_another_callback_fails_at_train_end():
    class Broken(C.Callback):
        def on_train_end(self, logs=None):
            raise OSError("disk full")

    es = C.EarlyStopping(patience=10, restore_best_weights=True)
    model = FakeModel()
    with pytest.raises(OSError, match="disk full"):
        fit(model, [Broken(), es], seq([3.0, 1.0, 2.0]))
    assert same_bits(model.get_weights(), model.snapshots[1])


def test_early_stopping_argument_checks():
    with pytest.raises(ValueError, match="patience"):
        C.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        C.EarlyStopping(mode="maximum")
    with pytest.raises(ValueError, match="start_from_epoch"):
        C.EarlyStopping(start_from_epoch=-1)
    with pytest.raises(ValueError, match="min_delta"):
        C.EarlyStopping(min_delta=math.nan)
    with pytest.raises(TypeError, match="patience"):
        C.EarlyStopping(patience=1.5)
    with pytest.raises(TypeError, match="monitor"):
        C.EarlyStopping(monitor=None)
    with pytest.raises(TypeError, match="baseline"):
        C.EarlyStopping(baseline="0.5")


# ---------------------------------------------------------------------------------------------
# ReduceLROnPlateau
# ---------------------------------------------------------------------------------------------

def lrs(hist):
    return hist.history["lr"]


def test_reduce_lr_basic_cooldown_and_min_lr():
    # min_delta 100 makes every epoch after the first a non-improvement
    model = FakeModel(lr=0.1)
    fit(model, [C.ReduceLROnPlateau(patience=1, factor=0.1, min_delta=100)], seq([1.0, 1.0]))
    assert model.optimizer.lr == pytest.approx(0.01)
    # cooldown 2: reduce at e1; e2 cooldown (counter 1, not counted); e3 counter 0, counted -> reduce
    model = FakeModel(lr=0.1)
    hist = fit(model, [C.ReduceLROnPlateau(patience=1, factor=0.1, min_delta=100, cooldown=2)],
               seq([1.0] * 4))
    assert lrs(hist) == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert model.optimizer.lr == pytest.approx(0.001)
    # min_lr bounds the rate: 0.1 -> 0.01 -> max(0.001, 0.005)
    model = FakeModel(lr=0.1)
    hist = fit(model, [C.ReduceLROnPlateau(patience=1, factor=0.1, min_delta=10, min_lr=0.005)],
               seq([1.0] * 4))
    assert lrs(hist) == pytest.approx([0.1, 0.1, 0.01, 0.005])
    assert model.optimizer.lr == 0.005


def test_reduce_lr_scripted_plateaus():
    # e0 best 1.0; e1 0.9 best; e2 w1; e3 w2 -> 0.05, cooldown 1; e4 cooldown ends (w0), 0.85 best;
    # e5 w1; e6 w2 -> 0.025, cooldown 1; e7 cooldown ends, not an improvement -> w1
    rlr = C.ReduceLROnPlateau(patience=2, factor=0.5, cooldown=1)
    model = FakeModel(lr=0.1)
    hist = fit(model, [rlr], seq([1.0, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.85]))
    assert lrs(hist) == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    assert model.optimizer.lr == pytest.approx(0.025)
    assert (rlr.best, rlr.wait, rlr.cooldown_counter) == (0.85, 1, 0)
    # the default min_delta 1e-4: a drop of 5e-5 is not an improvement
    rlr = C.ReduceLROnPlateau(patience=1, factor=0.5)
    model = FakeModel(lr=0.1)
    fit(model, [rlr], seq([1.0, 1.0 - 5e-5]))
    assert model.optimizer.lr == pytest.approx(0.05)


def test_reduce_lr_max_mode_and_reset():
    # val_accuracy -> max: e1 and e2 do not rise -> two reductions with patience 1
    rlr = C.ReduceLROnPlateau(monitor="val_accuracy", patience=1, factor=0.5)
    model = FakeModel(lr=0.1)
    fit(model, [rlr], seq([0.5, 0.5, 0.4], key="val_accuracy"))
    assert model.optimizer.lr == pytest.approx(0.025)
    # rising accuracy never reduces
    model = FakeModel(lr=0.1)
    fit(model, [rlr], seq([0.5, 0.6, 0.7], key="val_accuracy"))
    assert model.optimizer.lr == 0.1
    rlr.best, rlr.wait, rlr.cooldown_counter = 0.3, 3, 2
    rlr.on_train_begin()
    assert (rlr.best, rlr.wait, rlr.cooldown_counter) == (None, 0, 0)


def test_reduce_lr_missing_monitor_and_schedule_lr():
    model = FakeModel(lr=0.1)
    with pytest.warns(RuntimeWarning, match="val_loss"):
        fit(model, [C.ReduceLROnPlateau(patience=0)], seq([1.0, 2.0], key="loss"))
    assert model.optimizer.lr == 0.1
    model = FakeModel()
    model.optimizer.lr = StepDecay(0.1)
    with pytest.raises(TypeError, match="optimizer.lr"):
        fit(model, [C.ReduceLROnPlateau(patience=0)], seq([1.0, 2.0]))


def test_reduce_lr_argument_checks():
    for factor in (1.0, 1.5, 0.0, -0.5):
        with pytest.raises(ValueError, match="factor"):
            C.ReduceLROnPlateau(factor=factor)
    with pytest.raises(ValueError, match="patience"):
        C.ReduceLROnPlateau(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        C.ReduceLROnPlateau(mode="down")
    with pytest.raises(ValueError, match="cooldown"):
        C.ReduceLROnPlateau(cooldown=-1)
    with pytest.raises(ValueError, match="min_lr"):
        C.ReduceLROnPlateau(min_lr=-1e-3)


# ---------------------------------------------------------------------------------------------
# LearningRateScheduler
# ---------------------------------------------------------------------------------------------

def test_scheduler_epoch_only_and_epoch_lr_forms():
    model = FakeModel(lr=1.0)
    hist = fit(model, [C.LearningRateScheduler(lambda e: 0.1 / (e + 1))], seq([1.0] * 4))
    assert lrs(hist) == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])

    model = FakeModel(lr=0.1)
    hist = fit(model, [C.LearningRateScheduler(lambda e, lr: lr if e == 0 else lr * 0.5)], seq([1.0] * 3))
    assert lrs(hist) == pytest.approx([0.1, 0.05, 0.025])

    def with_default(epoch, lr=None):
        return 0.3 if lr is None else lr + 1.0

    model = FakeModel(lr=0.0)
    hist = fit(model, [C.LearningRateScheduler(with_default)], seq([1.0] * 2))
    assert lrs(hist) == [1.0, 2.0]


def test_scheduler_with_schedule_objects():
    model = FakeModel(lr=1.0)
    hist = fit(model, [C.LearningRateScheduler(StepDecay(0.2, drop=0.5, every=2))], seq([1.0] * 5))
    assert lrs(hist) == [0.2, 0.2, 0.1, 0.1, 0.05]


def test_scheduler_errors():
    with pytest.raises(TypeError, match="schedule"):
        C.LearningRateScheduler(0.1)
    with pytest.raises(TypeError, match="schedule"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e: "fast")], seq([1.0]))
    with pytest.raises(ValueError, match="schedule"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e: -0.1)], seq([1.0]))

    def broken(epoch, lr):  # its own TypeError is not taken for a signature mismatch
        raise TypeError("inside the schedule")

    with pytest.raises(TypeError, match="inside the schedule"):
        fit(FakeModel(), [C.LearningRateScheduler(broken)], seq([1.0]))


# ---------------------------------------------------------------------------------------------
# ModelCheckpoint
# ---------------------------------------------------------------------------------------------

def test_checkpoint_best_only_with_formatted_path(tmp_path):
    model = FakeModel()
    cp = C.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.fnn"))
    fit(model, [cp], seq([1.0, 0.5, 0.7, 0.4]))
    names = [p.rsplit("/", 1)[-1] for p in model.saved]
    assert names == ["ckpt-01-1.00.fnn", "ckpt-02-0.50.fnn", "ckpt-04-0.40.fnn"]
    assert cp.best == 0.4


def test_checkpoint_every_epoch_max_mode_threshold_and_dirs(tmp_path):
    model = FakeModel()
    fit(model, [C.ModelCheckpoint(tmp_path / "e{epoch}.fnn", save_best_only=False)], seq([1.0, 2.0, 3.0]))
    assert [p.rsplit("/", 1)[-1] for p in model.saved] == ["e1.fnn", "e2.fnn", "e3.fnn"]

    model = FakeModel()
    cp = C.ModelCheckpoint(str(tmp_path / "sub" / "dir" / "best.fnn"), monitor="val_accuracy",
                           initial_value_threshold=0.55)
    fit(model, [cp], seq([0.5, 0.6, 0.58, 0.7], key="val_accuracy"))
    assert len(model.saved) == 2 and cp.best == 0.7  # 0.5 does not beat the threshold 0.55
    assert (tmp_path / "sub" / "dir" / "best.fnn").exists()


def test_checkpoint_missing_monitor_and_bad_path(tmp_path):
    model = FakeModel()
    with pytest.warns(RuntimeWarning, match="val_loss"):
        fit(model, [C.ModelCheckpoint(str(tmp_path / "m.fnn"))], seq([1.0, 2.0], key="loss"))
    assert len(model.saved) == 2
    with pytest.raises(KeyError, match="val_acc"):
        fit(FakeModel(), [C.ModelCheckpoint(str(tmp_path / "{val_acc}.fnn"))], seq([1.0]))
    with pytest.raises(TypeError, match="path"):
        C.ModelCheckpoint(None)
    with pytest.raises(ValueError, match="mode"):
        C.ModelCheckpoint("x.fnn", mode="best")


# ---------------------------------------------------------------------------------------------
# History, CallbackList, the base class
# ---------------------------------------------------------------------------------------------

class Recorder(C.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def set_model(self, model):
        super().set_model(model)
        self.calls.append("set_model")

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"begin{epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"end{epoch}")
        logs["seen_by_recorder"] = epoch

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


@pytest.mark.parametrize("fail_at, exc", [(None, None), (1, RuntimeError), (1, KeyboardInterrupt)])
def test_hook_order_and_train_end_always(fail_at, exc):
    rec = Recorder()
    model = FakeModel()
    if exc is None:
        fit(model, [rec], seq([1.0, 2.0]))
        assert rec.calls == ["set_model", "train_begin", "begin0", "end0", "begin1", "end1", "train_end"]
    else:
        with pytest.raises(exc):
            fit(model, [rec], seq([1.0, 2.0]), fail_at=fail_at, exc=exc)
        assert rec.calls == ["set_model", "train_begin", "begin0", "end0", "begin1", "train_end"]
    assert rec.model is model and rec.params == {"epochs": 2}


def test_history_records_what_callbacks_saw():
    model = FakeModel()
    series = [{"loss": 1.0, "val_loss": 1.5}, {"loss": 0.5, "val_loss": 1.2}]
    hist = fit(model, [Recorder()], series)
    assert isinstance(hist, fnn.History)
    assert hist.epoch == [0, 1]
    assert hist.history == {"loss": [1.0, 0.5], "val_loss": [1.5, 1.2], "lr": [0.1, 0.1],
                            "seen_by_recorder": [0, 1]}
    assert hist.params == {"epochs": 2}


def test_callback_list_reuses_a_given_history_and_checks_types():
    h = C.History()
    cbs = C.CallbackList([h, Recorder()])
    assert cbs.history is h and len(cbs) == 2
    assert C.CallbackList(None).history is not None
    assert C.CallbackList([], add_history=False).history is None
    with pytest.raises(TypeError, match=r"callbacks\[1\]"):
        C.CallbackList([Recorder(), lambda: None])
    # a History used for two fits holds the second one only
    model = FakeModel()
    fit(model, [h], seq([1.0, 2.0, 3.0]))
    fit(model, [h], seq([4.0]))
    assert h.epoch == [0] and h.history["val_loss"] == [4.0]


def test_base_callback_hooks_do_nothing():
    cb = C.Callback()
    cb.set_model(object())
    cb.on_train_begin({})
    cb.on_epoch_begin(0, {})
    cb.on_epoch_end(0, {})
    cb.on_train_end({})


def test_top_level_exports():
    for name in ("EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "ReduceLROnPlateau",
                 "History", "Callback", "CSVLogger", "LambdaCallback"):
        assert getattr(fnn, name) is getattr(C, name)
    assert fnn.callbacks is C and fnn.metrics.accuracy and fnn.schedules.CosineDecay


# ---------------------------------------------------------------------------------------------
# CSVLogger: Keras' file layout (epoch 0-based, sorted keys, "NA" for a missing key)
# ---------------------------------------------------------------------------------------------

def test_csv_logger_rows_as_keras_writes_them(tmp_path):
    path = tmp_path / "log.csv"
    series = [{"val_loss": 0.5, "loss": 0.75, "acc": 0.25},
              {"val_loss": 0.25, "loss": 0.5},                  # acc missing -> NA
              {"val_loss": 0.125, "loss": 0.25, "acc": np.array([1, 2])}]
    fit(FakeModel(lr=0.5), [C.CSVLogger(path)], series)
    # keys sorted, "lr" added by the loop like fastnn's fit; a sequence is written "[a, b]"
    assert path.read_text().splitlines() == [
        "epoch,acc,loss,lr,val_loss",
        "0,0.25,0.75,0.5,0.5",
        "1,NA,0.5,0.5,0.25",
        "2,\"[1, 2]\",0.25,0.5,0.125",
    ]


def test_csv_logger_overwrites_or_appends_and_separator(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old\n")
    fit(FakeModel(), [C.CSVLogger(str(path))], seq([1.0]))
    assert path.read_text() == "epoch,lr,val_loss\n0,0.1,1.0\n"       # append=False: overwritten
    logger = C.CSVLogger(path, append=True)
    fit(FakeModel(), [logger], seq([2.0, 3.0]))
    assert path.read_text() == "epoch,lr,val_loss\n0,0.1,1.0\n0,0.1,2.0\n1,0.1,3.0\n"  # no second header
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    fit(FakeModel(), [C.CSVLogger(empty, separator=";", append=True)], seq([4.0]))
    assert empty.read_text() == "epoch;lr;val_loss\n0;0.1;4.0\n"          # empty file: header written
    fresh = tmp_path / "fresh.csv"
    fit(FakeModel(), [C.CSVLogger(fresh, append=True)], seq([5.0]))
    assert fresh.read_text() == "epoch,lr,val_loss\n0,0.1,5.0\n"


def test_csv_logger_closes_on_exception_and_rows_are_flushed(tmp_path):
    path = tmp_path / "log.csv"
    logger = C.CSVLogger(path)
    seen = []

    class Peek(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(path.read_text())  # rows reach the file as each epoch ends

    with pytest.raises(RuntimeError):
        fit(FakeModel(), [logger, Peek()], seq([1.0, 2.0, 3.0]), fail_at=2)
    assert seen == ["epoch,lr,val_loss\n0,0.1,1.0\n", "epoch,lr,val_loss\n0,0.1,1.0\n1,0.1,2.0\n"]
    assert logger._file is None


def test_csv_logger_in_a_real_fit_matches_the_history(tmp_path):
    import csv

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(2)], seed=0)
    model.compile("cross_entropy", fnn.SGD(lr=0.1), metrics=["accuracy", "auc", "log_loss"])
    path = tmp_path / "run.csv"
    hist = model.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[fnn.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert list(rows[0]) == ["epoch"] + sorted(hist.history)
    for key, values in hist.history.items():
        assert [float(r[key]) for r in rows] == pytest.approx(values, rel=1e-12)


def test_csv_logger_argument_checks(tmp_path):
    with pytest.raises(TypeError, match="path"):
        C.CSVLogger("")
    with pytest.raises(TypeError, match="path"):
        C.CSVLogger(3)
    with pytest.raises(ValueError, match="separator"):
        C.CSVLogger(tmp_path / "a.csv", separator=", ")
    with pytest.raises(TypeError, match="append"):
        C.CSVLogger(tmp_path / "a.csv", append="yes")
    with pytest.raises(FileNotFoundError):
        fit(FakeModel(), [C.CSVLogger(tmp_path / "no" / "dir.csv")], seq([1.0]))


# ---------------------------------------------------------------------------------------------
# LambdaCallback
# ---------------------------------------------------------------------------------------------

def test_lambda_callback_calls_hooks_with_keras_arguments():
    calls = []
    cb = C.LambdaCallback(on_epoch_begin=lambda epoch, logs: calls.append(("begin", epoch, dict(logs))),
                          on_epoch_end=lambda epoch, logs: calls.append(("end", epoch, logs["val_loss"])),
                          on_train_begin=lambda logs: calls.append(("train_begin",)),
                          on_train_end=lambda logs: calls.append(("train_end",)))
    fit(FakeModel(), [cb], seq([3.0, 2.0]))
    assert calls == [("train_begin",), ("begin", 0, {}), ("end", 0, 3.0), ("begin", 1, {}), ("end", 1, 2.0),
                     ("train_end",)]
    only_end = C.LambdaCallback(on_epoch_end=lambda epoch, logs: calls.append(epoch))
    calls.clear()
    fit(FakeModel(), [only_end], seq([1.0, 1.0, 1.0]))
    assert calls == [0, 1, 2]


def test_lambda_callback_can_stop_a_real_fit():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(32, 3)).astype(np.float32)
    model = fnn.Sequential([fnn.Dense(1)], seed=0)
    model.compile("mse", "sgd")
    stopper = C.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch == 1))
    hist = model.fit(X, X[:, 0], epochs=10, verbose=0, callbacks=[stopper])
    assert hist.epoch == [0, 1]


def test_lambda_callback_refuses_batch_hooks_and_non_callables():
    for name in ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"):
        with pytest.raises(ValueError, match=f"{name}: fastnn runs the batches of an epoch in C"):
            C.LambdaCallback(**{name: lambda batch, logs: None})
    with pytest.raises(TypeError, match="on_epoch_end: expected a callable"):
        C.LambdaCallback(on_epoch_end=3)
    with pytest.raises(TypeError, match="unknown hook 'on_predict_end'"):
        C.LambdaCallback(on_predict_end=print)
