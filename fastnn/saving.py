"""Model files (docs/FORMAT.md) from the user's side: `save`, `load`, `loads`, `dumps`.

- `save(model, path, *, extra_metadata=None, include_optimizer=False)`: the model file, written
  atomically (fastnn/_format.py); the same as `model.save(path, ...)`.  With include_optimizer it also
  holds the training state (optimizer, its state, step counts, seed, epochs seen).
- `load(path, seed=None)` / `loads(data, seed=None)`: read by the C reader (csrc/io.c), then rebuilt
  as a Sequential whose parameters are the file's bits, so its predictions are bitwise those of the
  saved model.  A model saved with a loss comes back compiled with that loss (and a fresh default
  optimizer); the file's metadata other than the format's own keys is the model's `metadata`; `seed`
  keys the shuffles and dropout masks of its further training, as the C API's fnn_model_fit's does.
  A file with a training state comes back compiled with its optimizer and seeded with its seed (unless
  `seed` says otherwise), and its `fit` continues with the bits of an uninterrupted one.
- Pickling (`Sequential.__reduce__`) goes through the same bytes, plus the seed and the compile
  settings (loss, optimizer object, metrics); optimizer state such as momentum is not kept.
- `load_weights`, `read_safetensors`, `LoadResult`: weights from other sources (fastnn/weights.py).
- `from_onnx(source)`: a model from an ONNX MLP graph (fastnn/onnx.py reads the graph; needs the
  optional onnx package).
"""
import numpy as np

from . import _core
from ._format import path_arg
from .models import Sequential
from .models import _unpickle, _unpickle_unbuilt  # noqa: F401  (named by pickles of fastnn 0.1.0)
from .weights import LoadResult, load_weights, read_safetensors

__all__ = ["save", "load", "loads", "dumps", "load_weights", "read_safetensors", "architecture", "LoadResult",
           "from_onnx"]


def architecture(model):
    """The architecture of a built model, as the file's metadata holds it."""
    return model.spec()


def dumps(model, *, extra_metadata=None, include_optimizer=False):
    """The bytes of the model file of `model` (built)."""
    return model._file_bytes(extra_metadata, include_optimizer)


def save(model, path, *, extra_metadata=None, include_optimizer=False):
    """Write the model file atomically: `path` holds the old file or the new one, never a torn one."""
    model.save(path, extra_metadata=extra_metadata, include_optimizer=include_optimizer)


def load(path, *, seed=None):
    """The model saved in `path`; OSError if it cannot be read, ModelFormatError if it is not a valid
    model file (the message says what is wrong and where).  `seed` keys its shuffles and dropout
    masks (None: a random seed), so that training it again is reproducible (model.seed sets it later)."""
    return Sequential._from_model_file(_core.ModelFile.from_path(path_arg(path)), seed=seed)


def loads(data, *, seed=None):
    """The model whose file bytes are `data`; `seed` as for load."""
    try:
        memoryview(data)
    except TypeError:
        raise TypeError(f"data: expected the bytes of a model file, got {type(data).__name__}") from None
    return Sequential._from_model_file(_core.ModelFile.from_buffer(data), seed=seed)


def from_onnx(source):
    """A Sequential from an ONNX MLP graph (a path, the file's bytes, or an onnx.ModelProto): its
    weights bit for bit, its final softmax/sigmoid as the loss's link, its metadata_props (other than
    fastnn's own) as the model's metadata.  ModelFormatError names anything else."""
    from . import onnx as onnx_io

    specs, width, dtype, loss, delta, extra = onnx_io.read(source)
    model = Sequential([layer for layer, _ in specs], dtype=dtype)
    model.build(width, initialize=False)
    for layer, spec in specs:
        if spec["kind"] == "dense":
            np.copyto(layer.weight, spec["w"])
            if spec["b"] is not None:
                np.copyto(layer.bias, spec["b"])
        elif "params" in spec:   # a normalization layer
            views = dict(layer.parameters())
            for name, a in spec["params"].items():
                np.copyto(views[name], a)
    if loss is not None:
        model.compile(loss, huber_delta=delta)
    model.metadata = extra
    return model
