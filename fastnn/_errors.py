"""fastnn's exception classes."""


class FastNNError(Exception):
    """Base class of fastnn's own errors."""


class ModelFormatError(FastNNError, ValueError):
    """A model file or weight source is malformed or does not match the model."""


class NotFittedError(FastNNError, AttributeError):
    """The model was used before it was fitted."""


class NotCompiledError(FastNNError, RuntimeError):
    """The model was trained or evaluated before `compile`."""


class NonFiniteLossError(FastNNError, FloatingPointError):
    """The training loss became NaN or Inf.  `epoch` and `batch` (0-based; None outside `fit`) say
    where; the weights are those of the last step whose loss was finite."""

    def __init__(self, message, epoch=None, batch=None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
