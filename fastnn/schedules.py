"""Learning-rate schedules: closed forms of an epoch or a step count, evaluated by the engine's own
formula (csrc/optim.c, `fnn_schedule_lr`).

Per epoch (`StepDecay`, `ExponentialDecay`, `CosineDecay`): the whole epoch trains at `schedule(epoch)`,
either through `fastnn.LearningRateScheduler(schedule)` or by giving the schedule as an optimizer's `lr`;
as an optimizer's `lr` the epoch counts every epoch the model has trained, across `fit` calls (and
across a save with include_optimizer=True and a load), as Keras's optimizer schedules count steps.

Per step (`WarmUp`, `StepDecayByStep`, `ExponentialDecayByStep`, `CosineDecayByStep`), given as an
optimizer's `lr`: the C engine evaluates the rate at every optimizer step inside its chunk of batches,
so Python still runs once per chunk; t counts the optimizer's steps (train_on_batch's included).

Every schedule may start with a linear warm-up of W epochs or steps: t < W trains at
initial_lr * (t + 1) / (W + 1), below the peak; the decay then runs on t - W.  They have no state, so
`schedule(t)` is the same whenever it is asked.
"""
import numbers

from . import _core
from ._validate import integer, real_number

__all__ = ["Schedule", "StepDecay", "ExponentialDecay", "CosineDecay", "WarmUp", "StepDecayByStep",
           "ExponentialDecayByStep", "CosineDecayByStep"]


def _count(t, name):
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(t).__name__}")
    if t < 0:
        raise ValueError(f"{name}: must be >= 0, got {t}")
    return int(t)


class Schedule:
    """Base class: subclasses list their arguments in `_fields` and describe themselves to the engine
    in `_engine()` (kind, initial, warmup, period, factor, staircase: csrc/net.h, fnn_schedule).
    `per_step` says whether the engine evaluates it at each step (True) or Python at each epoch."""

    _fields = ()
    per_step = False

    def __call__(self, t):
        """The learning rate at epoch (per_step: step) `t`, a 0-based int."""
        return float(_core.schedule_lr(self._engine(), _count(t, "step" if self.per_step else "epoch")))

    def _engine(self):
        raise NotImplementedError

    def get_config(self):
        return {name: getattr(self, name) for name in self._fields}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(self.get_config().items())))

    @staticmethod
    def _from_engine(sc, per_step):
        """The schedule a model file's training state describes (fastnn._core.ModelFile.training)."""
        cls = {(True, "constant"): WarmUp, (True, "step"): StepDecayByStep,
               (True, "exponential"): ExponentialDecayByStep, (True, "cosine"): CosineDecayByStep,
               (False, "step"): StepDecay, (False, "exponential"): ExponentialDecay,
               (False, "cosine"): CosineDecay}[(per_step, sc["kind"])]
        return cls._from_desc(sc)


def _whole(v):
    """An int when v is a whole number (the engine holds every count as a double)."""
    return int(v) if float(v).is_integer() else v


def _desc(kind, initial, warmup=0, period=1.0, factor=1.0, staircase=False):
    return {"kind": kind, "initial": float(initial), "warmup": float(warmup), "period": float(period),
            "factor": float(factor), "staircase": bool(staircase)}


class StepDecay(Schedule):
    """`initial_lr * drop ** (epoch // every)`: the rate is multiplied by `drop` every `every` epochs.

    StepDecay(0.1, drop=0.5, every=10) gives 0.1 for epochs 0-9, 0.05 for 10-19, 0.025 for 20-29, ...
    """

    _fields = ("initial_lr", "drop", "every")

    def __init__(self, initial_lr, drop=0.5, every=10):
        self.initial_lr = real_number(initial_lr, "initial_lr", low=0.0, low_open=True)
        self.drop = real_number(drop, "drop", low=0.0, high=1.0, low_open=True)
        self.every = integer(every, "every", low=1)

    def _engine(self):
        return _desc("step", self.initial_lr, period=self.every, factor=self.drop)

    @classmethod
    def _from_desc(cls, sc):
        return cls(sc["initial"], drop=sc["factor"], every=int(sc["period"]))


class ExponentialDecay(Schedule):
    """`initial_lr * decay_rate ** (epoch / decay_epochs)`, with `floor(epoch / decay_epochs)` as the
    exponent when `staircase` (Keras' ExponentialDecay, counted in epochs instead of steps)."""

    _fields = ("initial_lr", "decay_rate", "decay_epochs", "staircase")

    def __init__(self, initial_lr, decay_rate, decay_epochs=1, staircase=False):
        self.initial_lr = real_number(initial_lr, "initial_lr", low=0.0, low_open=True)
        self.decay_rate = real_number(decay_rate, "decay_rate", low=0.0, high=1.0, low_open=True)
        self.decay_epochs = real_number(decay_epochs, "decay_epochs", low=0.0, low_open=True)
        if isinstance(decay_epochs, numbers.Integral):
            self.decay_epochs = int(decay_epochs)
        self.staircase = bool(staircase)

    def _engine(self):
        return _desc("exponential", self.initial_lr, period=self.decay_epochs, factor=self.decay_rate,
                     staircase=self.staircase)

    @classmethod
    def _from_desc(cls, sc):
        return cls(sc["initial"], sc["factor"], _whole(sc["period"]), sc["staircase"])


class CosineDecay(Schedule):
    """Cosine annealing from `initial_lr` to `min_lr` over `total_epochs`, after an optional linear
    warm-up.

    With W = warmup_epochs and T = total_epochs:

    - epoch e < W:       initial_lr * (e + 1) / (W + 1)  (rising linearly, below the peak)
    - W <= e < T:        min_lr + (initial_lr - min_lr) * (1 + cos(pi * (e - W) / (T - W))) / 2
    - e >= T:            min_lr

    Without warm-up this is PyTorch's CosineAnnealingLR(T_max=total_epochs, eta_min=min_lr) stepped
    once per epoch: epoch 0 trains at initial_lr, and the last epoch (T - 1) just above min_lr.
    """

    _fields = ("initial_lr", "total_epochs", "min_lr", "warmup_epochs")

    def __init__(self, initial_lr, total_epochs, min_lr=0.0, warmup_epochs=0):
        self.initial_lr = real_number(initial_lr, "initial_lr", low=0.0, low_open=True)
        self.total_epochs = integer(total_epochs, "total_epochs", low=1)
        self.min_lr = real_number(min_lr, "min_lr", low=0.0, high=self.initial_lr)
        self.warmup_epochs = integer(warmup_epochs, "warmup_epochs", low=0)
        if self.warmup_epochs >= self.total_epochs:
            raise ValueError(f"warmup_epochs: must be < total_epochs ({self.total_epochs}), "
                             f"got {self.warmup_epochs}")

    def _engine(self):
        return _desc("cosine", self.initial_lr, self.warmup_epochs, self.total_epochs - self.warmup_epochs,
                     self.min_lr)

    @classmethod
    def _from_desc(cls, sc):
        return cls(sc["initial"], int(sc["period"] + sc["warmup"]), sc["factor"], int(sc["warmup"]))


# ---- per step ---------------------------------------------------------------------------------------

class _PerStep(Schedule):
    per_step = True

    def _warmup(self, warmup_steps):
        self.warmup_steps = integer(warmup_steps, "warmup_steps", low=0)


class WarmUp(_PerStep):
    """Linear warm-up over `warmup_steps` optimizer steps, then `initial_lr`:
    step t < W trains at initial_lr * (t + 1) / (W + 1)."""

    _fields = ("initial_lr", "warmup_steps")

    def __init__(self, initial_lr, warmup_steps):
        self.initial_lr = real_number(initial_lr, "initial_lr", low=0.0, low_open=True)
        self._warmup(warmup_steps)

    def _engine(self):
        return _desc("constant", self.initial_lr, self.warmup_steps)

    @classmethod
    def _from_desc(cls, sc):
        return cls(sc["initial"], int(sc["warmup"]))


class StepDecayByStep(_PerStep):
    """`initial_lr * drop ** (s // every)` at optimizer step s (after the warm-up, if any)."""

    _fields = ("initial_lr", "drop", "every", "warmup_steps")

    def __init__(self, initial_lr, drop=0.5, every=1000, warmup_steps=0):
        self.initial_lr = real_number(initial_lr, "initial_lr", low=0.0, low_open=True)
        self.drop = real_number(drop, "drop", low=0.0, high=1.0, low_open=True)
        self.every = integer(every, "every", low=1)
        self._warmup(warmup_steps)

    def _engine(self):
        return _desc("step", self.initial_lr, self.warmup_steps, self.every, self.drop)

    @classmethod
    def _from_desc(cls, sc):
        return cls(sc["initial"], sc["factor"], int(sc["period"]), int(sc["warmup"]))


class ExponentialDecayByStep(_PerStep):
    """`initial_lr * decay_rate ** (s / decay_steps)` at optimizer step s, `floor(s / decay_steps)` as
    the exponent when `staircase` (Keras' ExponentialDecay), after the warm-up, if any."""

    _fields = ("initial_lr", "decay_rate", "decay_steps", "staircase", "warmup_steps")

    def __init__(self, initial_lr, decay_rate, decay_steps, staircase=False, warmup_steps=0):
        self.initial_lr = real_number(initial_lr, "initial_lr", low=0.0, low_open=True)
        self.decay_rate = real_number(decay_rate, "decay_rate", low=0.0, high=1.0, low_open=True)
        self.decay_steps = integer(decay_steps, "decay_steps", low=1)
        self.staircase = bool(staircase)
        self._warmup(warmup_steps)

    def _engine(self):
        return _desc("exponential", self.initial_lr, self.warmup_steps, self.decay_steps, self.decay_rate,
                     self.staircase)

    @classmethod
    def _from_desc(cls, sc):
        return cls(sc["initial"], sc["factor"], int(sc["period"]), sc["staircase"], int(sc["warmup"]))


class CosineDecayByStep(_PerStep):
    """Cosine decay from `initial_lr` to `min_lr` over `decay_steps` optimizer steps after a linear
    warm-up of `warmup_steps` (Keras's CosineDecay with a warm-up to initial_lr):
    min_lr + (initial_lr - min_lr) * (1 + cos(pi * s / decay_steps)) / 2 at step s after the warm-up,
    min_lr from s = decay_steps on."""

    _fields = ("initial_lr", "decay_steps", "min_lr", "warmup_steps")

    def __init__(self, initial_lr, decay_steps, min_lr=0.0, warmup_steps=0):
        self.initial_lr = real_number(initial_lr, "initial_lr", low=0.0, low_open=True)
        self.decay_steps = integer(decay_steps, "decay_steps", low=1)
        self.min_lr = real_number(min_lr, "min_lr", low=0.0, high=self.initial_lr)
        self._warmup(warmup_steps)

    def _engine(self):
        return _desc("cosine", self.initial_lr, self.warmup_steps, self.decay_steps, self.min_lr)

    @classmethod
    def _from_desc(cls, sc):
        return cls(sc["initial"], int(sc["period"]), sc["factor"], int(sc["warmup"]))

