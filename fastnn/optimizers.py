"""Optimizers: configuration objects; the updates run in C (csrc/optim_t.h) over the model's flat
parameter buffer, with the state (momentum, Adam moments) held by the model.

The formulas are PyTorch's (torch.optim.SGD with dampening 0, Adam, AdamW, RMSprop), with one
deliberate difference: `weight_decay` applies to weights only, never to biases or normalization
parameters (PyTorch decays every parameter it is given).  `lr` is a float, settable at any time (used
from the next epoch in `fit`, the next call in `train_on_batch`), a per-epoch schedule (a callable
epoch -> lr such as `fastnn.schedules.StepDecay`; the epoch counts every epoch the model has trained),
or a per-step schedule of fastnn.schedules (`CosineDecayByStep`, ...), which the engine evaluates at
every step.

Every optimizer takes Keras's gradient clipping, applied in C before each update (never by
compute_gradients), at most one of them:
- `clipnorm`: each parameter tensor's gradient (a weight, a bias, a gamma) scaled to norm <= clipnorm;
- `global_clipnorm`: all trainable gradients scaled together to global norm <= global_clipnorm;
- `clipvalue`: each gradient element clamped to [-clipvalue, clipvalue].
The gradients clipped are those of the loss with its L1/L2 penalties; SGD/Adam/RMSprop's
`weight_decay` is added after clipping, as in PyTorch.  Norms are sums in double in a fixed order, so
training gives the same bits with any thread count.
"""
import numbers

from . import _core
from ._validate import real_number
from .schedules import Schedule

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "get", "from_engine"]

_CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")


class Optimizer:
    kind = None
    _fields = ()

    def __init__(self, lr, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self.lr = lr
        given = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        for name, v in given.items():
            setattr(self, name, None if v is None else real_number(v, name, low=0.0, low_open=True))
        if sum(v is not None for v in given.values()) > 1:
            raise ValueError(f"Only one of clipnorm, clipvalue and global_clipnorm can be set, got clipnorm={clipnorm}, "
                             f"clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")

    @property
    def lr(self):
        """The learning rate as given: a float, or the schedule callable."""
        return self._lr

    @lr.setter
    def lr(self, value):
        if callable(value) and not isinstance(value, numbers.Real):
            self._lr = value
        else:
            self._lr = real_number(value, "lr", low=0.0)

    @property
    def per_step(self):
        """Whether the rate is a per-step schedule, which the engine evaluates at each step."""
        return isinstance(self._lr, Schedule) and self._lr.per_step

    def lr_at(self, epoch):
        """The learning rate of epoch `epoch` (0-based; for a per-step schedule, its initial rate)."""
        if self.per_step:
            return self._lr.initial_lr
        if callable(self._lr):
            return real_number(self._lr(epoch), f"lr schedule at epoch {epoch}", low=0.0)
        return self._lr

    def describe(self, epoch):
        """The C engine's description of this optimizer at `epoch`: its settings, the rate, the clipping
        and, for a per-step schedule, the schedule."""
        d = {name: getattr(self, name) for name in self._fields}
        d["kind"] = self.kind
        d["lr"] = self.lr_at(epoch)
        d.update({name: getattr(self, name) for name in _CLIPS})
        if self.per_step:
            d["schedule"] = self._lr._engine()
        if not _core.optim_check(d):
            raise ValueError(f"optimizer: {self!r} is not a setting the engine runs (clipping and rates must be "
                             "finite and >= 0, at most one clipping)")
        return d

    def get_config(self):
        cfg = {"lr": self._lr}
        cfg.update({name: getattr(self, name) for name in self._fields})
        cfg.update({name: getattr(self, name) for name in _CLIPS if getattr(self, name) is not None})
        return cfg

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class SGD(Optimizer):
    """torch.optim.SGD (dampening 0): g = grad + wd*w; buf = momentum*buf + g (buf = g on the first
    step); w -= lr * (g + momentum*buf if nesterov else buf)."""

    kind = "sgd"
    _fields = ("momentum", "nesterov", "weight_decay")

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, *, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        super().__init__(lr, clipnorm, clipvalue, global_clipnorm)
        self.momentum = real_number(momentum, "momentum", low=0.0)
        self.nesterov = bool(nesterov)
        self.weight_decay = real_number(weight_decay, "weight_decay", low=0.0)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: needs a momentum > 0")


class Adam(Optimizer):
    """torch.optim.Adam: g = grad + wd*w; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), t counting the model's optimizer steps."""

    kind = "adam"
    _fields = ("beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, *, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        super().__init__(lr, clipnorm, clipvalue, global_clipnorm)
        self.beta1 = real_number(beta1, "beta1", low=0.0, high=1.0, high_open=True)
        self.beta2 = real_number(beta2, "beta2", low=0.0, high=1.0, high_open=True)
        self.eps = real_number(eps, "eps", low=0.0)
        self.weight_decay = real_number(weight_decay, "weight_decay", low=0.0)


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled decay, w *= 1 - lr*wd before the Adam step."""

    kind = "adamw"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, *, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        super().__init__(lr, beta1, beta2, eps, weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: g = grad + wd*w; v = alpha*v + (1-alpha)*g^2; avg = sqrt(v) + eps
    (centered: sqrt(v - mean(g)^2) + eps); w -= lr * g/avg, or through a momentum buffer."""

    kind = "rmsprop"
    _fields = ("alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(lr, clipnorm, clipvalue, global_clipnorm)
        self.alpha = real_number(alpha, "alpha", low=0.0, high=1.0)
        self.eps = real_number(eps, "eps", low=0.0)
        self.weight_decay = real_number(weight_decay, "weight_decay", low=0.0)
        self.momentum = real_number(momentum, "momentum", low=0.0)
        self.centered = bool(centered)


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(optimizer):
    """An Optimizer instance from an instance (returned as is) or a name ("sgd", "adam", ...)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        try:
            return _BY_NAME[optimizer.lower()]()
        except KeyError:
            raise ValueError(f"optimizer: unknown name {optimizer!r}; expected one of {', '.join(_BY_NAME)}") from None
    raise TypeError(f"optimizer: expected a name or a fastnn optimizer, got {type(optimizer).__name__}")


def from_engine(desc, epoch_schedule=None):
    """The optimizer a model file's training state describes (fastnn._core.ModelFile.training): the
    engine's descriptor `desc` (its per-step schedule under "schedule") and a per-epoch schedule."""
    cls = _BY_NAME[desc["kind"]]
    if desc.get("schedule"):
        lr = Schedule._from_engine(desc["schedule"], True)
    elif epoch_schedule:
        lr = Schedule._from_engine(epoch_schedule, False)
    else:
        lr = desc["lr"]
    kwargs = {name: desc[name] for name in cls._fields}
    kwargs.update({name: desc[name] for name in _CLIPS})
    return cls(lr=lr, **kwargs)
