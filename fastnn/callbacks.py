"""Training callbacks: small objects the fit loop calls at fixed points, in the style of Keras.

A callback only reads the epoch logs and the model, and acts through the model's small interface:
`model.stop_training` (set to end fit after the current epoch), `model.get_weights()` (a list of
array copies), `model.set_weights(list)`, `model.optimizer.lr` (a float, read and set) and
`model.save(path)`. The fit loop drives every callback through one `CallbackList`:

    cbs = CallbackList(callbacks, model=model, params={"epochs": epochs, ...})
    model.stop_training = False
    cbs.on_train_begin()
    try:
        for epoch in range(epochs):
            cbs.on_epoch_begin(epoch)
            logs = {...}                  # "loss", metrics, "val_*", "lr", "time", "samples_per_s"
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        cbs.on_train_end()                # always: last epoch, a stop, an exception, Ctrl-C
    return cbs.history

Epochs are 0-based in every hook, as in Keras; messages print them 1-based.
"""
import collections.abc
import csv
import inspect
import numbers
import os
import warnings

from . import metrics as _metrics
from ._validate import integer, real_number

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "ReduceLROnPlateau", "CSVLogger", "LambdaCallback"]

_MODES = ("auto", "min", "max")


class Callback:
    """Base class: every hook does nothing. Subclasses override the hooks they need.

    `model` is set by `set_model` before training starts; `params` (a dict of the fit arguments
    such as "epochs" and "batch_size") by `set_params`.
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_params(self, params):
        self.params = dict(params)

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        """Called once before the first epoch."""

    def on_train_end(self, logs=None):
        """Called once when fit ends, however it ends (also on an exception or KeyboardInterrupt)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of epoch `epoch` (0-based), before any batch."""

    def on_epoch_end(self, epoch, logs=None):
        """Called after epoch `epoch` with its logs (losses, metrics, "lr", "time", ...)."""


class History(Callback):
    """Records the logs of every epoch: `history[name]` is a list with one value per epoch, and
    `epoch` the list of epoch indices. The fit loop returns it."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"

    _NOT_CURVES = ("lr", "time", "samples_per_s")

    def plot(self, keys=None, *, ax=None, path=None):
        """Draw the per-epoch curves with matplotlib and return the figure.

        `keys`: the names to draw (default: every one except "lr", "time", "samples_per_s").  The
        losses go on the left panel and the other metrics on a right one, each `name` next to its
        `val_name` (dashed); `ax` draws everything into that one Axes instead.  `path` also saves the
        figure there.  Epochs are shown 1-based.  Needs matplotlib (an optional dependency)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib, which is not installed: pip install matplotlib") from None
        if keys is None:
            keys = [k for k in self.history if k not in self._NOT_CURVES]
        elif isinstance(keys, str):
            keys = [keys]
        missing = [k for k in keys if k not in self.history]
        if missing:
            raise KeyError(f"keys: not in the history: {', '.join(missing)}; "
                           f"available: {', '.join(self.history) or 'none (nothing recorded yet)'}")
        if not keys:
            raise ValueError("History.plot: nothing to draw (no epoch recorded yet)")
        losses = [k for k in keys if k.removeprefix("val_").endswith("loss")]
        others = [k for k in keys if k not in losses]
        if ax is not None:
            fig, panels = ax.figure, [(ax, keys)]
        else:
            groups = [g for g in (losses, others) if g]
            fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
            panels = list(zip(axes[0], groups))
        epochs = [e + 1 for e in self.epoch]
        for a, group in panels:
            colors = {}
            for k in group:
                base = k.removeprefix("val_")
                style = "--" if k.startswith("val_") else "-"
                line, = a.plot(epochs[:len(self.history[k])], self.history[k], style, label=k,
                               color=colors.get(base), marker="." if len(epochs) < 30 else None)
                colors.setdefault(base, line.get_color())
            a.set_xlabel("epoch")
            a.set_ylabel("loss" if all(k in losses for k in group) else "value")
            a.grid(alpha=0.3)
            a.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


class CallbackList:
    """Calls each hook on every callback, in order. A `History` is appended (last, so it records
    what the other callbacks saw) unless one is already in the list; it is `self.history`.

    `on_train_end` reaches every callback even when one of them raises; the first error is
    re-raised after all have run, so a failing callback never keeps EarlyStopping from restoring
    the best weights.
    """

    def __init__(self, callbacks=(), *, model=None, params=None, add_history=True):
        if callbacks is None:
            callbacks = ()
        if isinstance(callbacks, Callback):
            callbacks = (callbacks,)
        try:
            callbacks = list(callbacks)
        except TypeError:
            raise TypeError(f"callbacks: expected a list of fastnn Callbacks, got {type(callbacks).__name__}") from None
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}]: expected a fastnn Callback, got {type(cb).__name__}")
        self.history = next((cb for cb in callbacks if isinstance(cb, History)), None)
        if self.history is None and add_history:
            self.history = History()
            callbacks.append(self.history)
        self.callbacks = callbacks
        self.model = None
        if params is not None:
            self.set_params(params)
        if model is not None:
            self.set_model(model)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def set_params(self, params):
        for cb in self.callbacks:
            cb.set_params(params)

    def set_model(self, model):
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def on_train_begin(self, logs=None):
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        logs = {} if logs is None else logs
        error = None
        for cb in self.callbacks:
            try:
                cb.on_train_end(logs)
            except BaseException as e:  # finish the others first, then report the first failure
                if error is None:
                    error = e
        if error is not None:
            raise error


# ---------------------------------------------------------------------------------------------
# shared argument checks and the "is this an improvement" rule
# ---------------------------------------------------------------------------------------------

def _check_monitor(monitor):
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"monitor: expected a non-empty str, got {monitor!r}")
    return monitor


def _resolve_mode(mode, monitor):
    """"min" or "max": `mode` itself, or for "auto" the direction `metrics.mode_for` infers."""
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {', '.join(map(repr, _MODES))}, got {mode!r}")
    return _metrics.mode_for(monitor) if mode == "auto" else mode


def _improves(direction, min_delta, value, reference):
    """Keras' rule: `value` beats `reference` by more than `min_delta` (>= 0) in `direction`;
    anything beats a missing reference (None)."""
    if reference is None:
        return True
    if direction == "min":
        return value + min_delta < reference
    return value - min_delta > reference


def _get_lr(model, who):
    lr = model.optimizer.lr
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"{who}: needs a numeric model.optimizer.lr, got {type(lr).__name__} "
                        "(an optimizer driven by a schedule cannot be changed by this callback)")
    return float(lr)


def _verbose(verbose):
    return integer(verbose, "verbose", low=0)


class EarlyStopping(Callback):
    """Stop training when the monitored quantity has stopped improving (Keras 3 semantics).

    After each epoch from `start_from_epoch` on, the value of `monitor` in the logs is compared with
    the best so far: it improves when it is lower (mode "min") or higher ("max") by more than
    `min_delta` (its absolute value is used). Every monitored epoch adds one to `wait`; an
    improvement sets it back to 0, provided the value also beats `baseline` when one is given.
    An epoch that does not improve stops training (`model.stop_training = True`) once
    `wait >= patience`. mode "auto" takes the direction from the name (`metrics.mode_for`):
    "max" for accuracy-like names, else "min".

    With `restore_best_weights`, the weights of the best epoch (the first monitored epoch
    until something improves on it) are put back in `on_train_end`, whichever way fit ended.
    A `monitor` missing from the logs gives a warning and the epoch is ignored.

    Attributes after training: `stopped_epoch` (0-based epoch that stopped training, 0 if none),
    `best` (best monitored value, None if none was seen), `best_epoch`, `wait`, `best_weights`.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = _check_monitor(monitor)
        self.min_delta = abs(real_number(min_delta, "min_delta"))
        self.patience = integer(patience, "patience", low=0)
        self.verbose = _verbose(verbose)
        self.mode = mode
        self.direction = _resolve_mode(mode, monitor)
        self.baseline = None if baseline is None else real_number(baseline, "baseline")
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = integer(start_from_epoch, "start_from_epoch", low=0)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self._reset()  # the same instance may serve several fits

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # nothing better seen yet: the current weights are the best
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch

        self.wait += 1
        if _improves(self.direction, self.min_delta, current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # restart the count only when the value beats the baseline as well
            if self.baseline is None or _improves(self.direction, self.min_delta, current, self.baseline):
                self.wait = 0
            return

        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def _monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"EarlyStopping: monitor {self.monitor!r} is not in the logs; "
                          f"available: {', '.join(logs) or 'none'}", RuntimeWarning, stacklevel=3)
        return value


class ModelCheckpoint(Callback):
    """Save the model with `model.save(path)` after an epoch.

    `path` may hold format fields filled from the epoch, e.g. "ckpt-{epoch:02d}-{val_loss:.4f}.fnn":
    `epoch` is 1-based, every other field is a key of the epoch logs. With `save_best_only` the
    model is saved only when `monitor` improved on the best value seen so far (or on
    `initial_value_threshold`); a `monitor` missing from the logs gives a warning and the model
    is saved anyway, as Keras does. The best value is kept across fits, like the file itself.
    Missing parent directories are created.  `include_optimizer=True` saves the optimizer state, the
    step counts and the random streams' position too (`model.save(path, include_optimizer=True)`), so
    that training can resume from the file with the same bits.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto", verbose=0,
                 initial_value_threshold=None, include_optimizer=False):
        super().__init__()
        if not isinstance(include_optimizer, bool):
            raise TypeError(f"include_optimizer: expected a bool, got {type(include_optimizer).__name__}")
        self.include_optimizer = include_optimizer
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise TypeError(f"path: expected a non-empty str or path, got {path!r}")
        self.path = path
        self.monitor = _check_monitor(monitor)
        self.save_best_only = bool(save_best_only)
        self.mode = mode
        self.direction = _resolve_mode(mode, monitor)
        self.verbose = _verbose(verbose)
        self.best = (None if initial_value_threshold is None
                     else real_number(initial_value_threshold, "initial_value_threshold"))

    def _file_path(self, epoch, logs):
        try:
            return self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError) as e:
            raise KeyError(f"path: cannot fill {self.path!r} from the epoch logs "
                           f"(missing field {e}); available: epoch, {', '.join(logs)}") from None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self._file_path(epoch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: monitor {self.monitor!r} is not in the logs; "
                              "saving without comparing", RuntimeWarning, stacklevel=2)
            elif _improves(self.direction, 0.0, current, self.best):
                if self.verbose > 0:
                    before = "None" if self.best is None else f"{self.best:.5f}"
                    print(f"Epoch {epoch + 1}: {self.monitor} improved from {before} to "
                          f"{current:.5f}, saving model to {path}")
                self.best = current
            else:
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if self.include_optimizer:
            self.model.save(path, include_optimizer=True)
        else:
            self.model.save(path)


def _positional_arity(fn):
    """How many positional arguments `fn` accepts (2 means "any number >= 2")."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: assume schedule(epoch)
        return 1
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from `schedule`.

    `schedule(epoch)` or `schedule(epoch, lr)` (`epoch` 0-based, `lr` the current learning rate)
    returns the rate for that epoch; it is written to `model.optimizer.lr` in `on_epoch_begin`.
    The objects of `fastnn.schedules` are such callables.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a callable, got {type(schedule).__name__}")
        arity = _positional_arity(schedule)
        if arity < 1:
            raise TypeError("schedule: must accept the epoch as its first positional argument")
        self.schedule = schedule
        self._wants_lr = arity >= 2
        self.verbose = _verbose(verbose)

    def on_epoch_begin(self, epoch, logs=None):
        if self._wants_lr:
            lr = self.schedule(epoch, _get_lr(self.model, "LearningRateScheduler"))
        else:
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(f"schedule: must return a number, got {type(lr).__name__} at epoch {epoch}")
        lr = float(lr)
        if not (lr >= 0.0 and lr != float("inf")):
            raise ValueError(f"schedule: returned an invalid learning rate {lr} at epoch {epoch}")
        self.model.optimizer.lr = lr
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience` epochs
    (Keras 3 semantics).

    A value improves on the best when it is better by more than `min_delta` (mode "min": lower,
    "max": higher; "auto" as in `EarlyStopping`). Each epoch without improvement adds one to
    `wait`; when `wait >= patience` the rate becomes `max(lr * factor, min_lr)` (only while it is
    above `min_lr`), `wait` restarts and the next `cooldown` epochs are not counted: each
    cooldown epoch decrements `cooldown_counter` and sets `wait` to 0, and counting resumes in the
    epoch where the counter reaches 0. The new rate applies from the next epoch. A `monitor`
    missing from the logs gives a warning and the epoch is ignored.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, verbose=0):
        super().__init__()
        self.monitor = _check_monitor(monitor)
        self.factor = real_number(factor, "factor")
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"factor: must be in (0, 1) to reduce the learning rate, got {self.factor}")
        self.patience = integer(patience, "patience", low=0)
        self.mode = mode
        self.direction = _resolve_mode(mode, monitor)
        self.min_delta = abs(real_number(min_delta, "min_delta"))
        self.cooldown = integer(cooldown, "cooldown", low=0)
        self.min_lr = real_number(min_lr, "min_lr", low=0.0)
        self.verbose = _verbose(verbose)
        self._reset()

    def _reset(self):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: monitor {self.monitor!r} is not in the logs; "
                          f"available: {', '.join(logs) or 'none'}", RuntimeWarning, stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if _improves(self.direction, self.min_delta, current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = _get_lr(self.model, "ReduceLROnPlateau")
                if old_lr > self.min_lr:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.lr = new_lr
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Stream each epoch's logs to a CSV file (Keras semantics).

    The columns are `epoch` (0-based, as Keras writes it) and the log keys of the first epoch in
    sorted order ("loss", metrics, "val_*", "lr", "time", "samples_per_s"); a key missing from a
    later epoch is written "NA", a value that is a sequence as "[a, b]".  The file is opened at the
    start of training (`append=False`: overwritten; `append=True`: appended to, with no header row
    when it already has content), flushed after every row and closed when training ends, however it
    ends.  `separator` is the one-character column separator.
    """

    def __init__(self, path, separator=",", append=False):
        super().__init__()
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise TypeError(f"path: expected a non-empty str or path, got {path!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator: expected a one-character str, got {separator!r}")
        if not isinstance(append, bool):
            raise TypeError(f"append: expected a bool, got {type(append).__name__}")
        self.path, self.separator, self.append = path, separator, append
        self.keys = None
        self._file = self._writer = None

    def on_train_begin(self, logs=None):
        self._close()
        header = True
        if self.append and os.path.exists(self.path):
            with open(self.path, "r", newline="") as f:
                header = not f.readline()
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._header = header
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._file is None:  # used outside fit: open as fit would
            self.on_train_begin()
        if self._writer is None:
            self.keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator, lineterminator="\n")
            if self._header:
                self._writer.writerow(["epoch"] + self.keys)
        self._writer.writerow([epoch] + [_csv_value(logs.get(k, "NA")) for k in self.keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._file = self._writer = None


def _csv_value(v):
    if isinstance(v, str) or not isinstance(v, collections.abc.Iterable):
        return v
    return "[" + ", ".join(map(str, v)) + "]"


_LAMBDA_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end")
_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


class LambdaCallback(Callback):
    """A callback made of functions (Keras semantics): `on_epoch_begin(epoch, logs)`,
    `on_epoch_end(epoch, logs)`, `on_train_begin(logs)`, `on_train_end(logs)`, each called with
    positional arguments at that point of `fit`; the hooks not given do nothing.

    fastnn trains the batches of an epoch in C and calls no per-batch hook, so a batch hook
    (`on_train_batch_begin`/`_end`, `on_batch_begin`/`_end`) is refused rather than never called.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name in kwargs:
            if name not in _BATCH_HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; hooks are {', '.join(_LAMBDA_HOOKS)}")
        given.update(kwargs)
        for name, fn in given.items():
            if fn is None:
                continue
            if name in _BATCH_HOOKS:
                raise ValueError(f"{name}: fastnn runs the batches of an epoch in C and calls no per-batch hook; "
                                 "use on_epoch_begin/on_epoch_end")
            if not callable(fn):
                raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")
            setattr(self, name, fn)
