"""Per-epoch learning-rate schedules: callables mapping a 0-based epoch to a learning rate.

A schedule is applied at the start of each epoch (the whole epoch trains at `schedule(epoch)`),
either through `fastnn.LearningRateScheduler(schedule)` or by giving it as an optimizer's `lr`.
They are plain closed forms with no state, so `schedule(e)` is the same whenever it is asked.
"""
import math
import numbers

from ._validate import integer, real_number

__all__ = ["Schedule", "StepDecay", "ExponentialDecay", "CosineDecay"]


def _epoch(epoch):
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
        raise TypeError(f"epoch: expected an int, got {type(epoch).__name__}")
    if epoch < 0:
        raise ValueError(f"epoch: must be >= 0, got {epoch}")
    return int(epoch)


class Schedule:
    """Base class: subclasses implement `_lr(epoch)` and list their arguments in `_fields`."""

    _fields = ()

    def __call__(self, epoch):
        """The learning rate of epoch `epoch` (0-based int)."""
        return float(self._lr(_epoch(epoch)))

    def _lr(self, epoch):
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


class StepDecay(Schedule):
    """`initial_lr * drop ** (epoch // every)`: the rate is multiplied by `drop` every `every` epochs.

    StepDecay(0.1, drop=0.5, every=10) gives 0.1 for epochs 0-9, 0.05 for 10-19, 0.025 for 20-29, ...
    """

    _fields = ("initial_lr", "drop", "every")

    def __init__(self, initial_lr, drop=0.5, every=10):
        self.initial_lr = real_number(initial_lr, "initial_lr", low=0.0, low_open=True)
        self.drop = real_number(drop, "drop", low=0.0, high=1.0, low_open=True)
        self.every = integer(every, "every", low=1)

    def _lr(self, epoch):
        return self.initial_lr * self.drop ** (epoch // self.every)


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

    def _lr(self, epoch):
        p = epoch / self.decay_epochs
        if self.staircase:
            p = math.floor(p)
        return self.initial_lr * self.decay_rate ** p


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

    def _lr(self, epoch):
        w, t = self.warmup_epochs, self.total_epochs
        if epoch < w:
            return self.initial_lr * (epoch + 1) / (w + 1)
        if epoch >= t:
            return self.min_lr
        cos = 0.5 * (1.0 + math.cos(math.pi * (epoch - w) / (t - w)))
        return self.min_lr + (self.initial_lr - self.min_lr) * cos
