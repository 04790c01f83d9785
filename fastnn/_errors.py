"""fastnn's exception classes."""


class FastNNError(Exception):
    """Base class of fastnn's own errors."""


class ModelFormatError(FastNNError, ValueError):
    """A model file or weight source is malformed or does not match the model."""


class NotFittedError(FastNNError, AttributeError):
    """The model was used before it was fitted."""


class NotCompiledError(FastNNError, RuntimeError):
    """The model was trained or evaluated before `compile`."""
