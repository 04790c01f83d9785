"""Saving and loading models: model files (docs/FORMAT.md), pickling, and weights from fastnn or PyTorch.

- `save(model, path)`: the model file, written atomically (fastnn/_format.py).
- `load(path)` / `loads(data)`: read by the C reader (csrc/io.c), then rebuilt as a Sequential whose
  parameters are the file's bits, so its predictions are bitwise those of the saved model.  A model
  saved with a loss comes back compiled with that loss (and a fresh default optimizer).
- Pickling (`Sequential.__reduce__`) goes through the same bytes, plus the seed and the compile
  settings (loss, optimizer object, metrics); optimizer state such as momentum is not kept.
- `load_weights(model, source, layout=..., strict=...)`: copy weights from a dict of arrays or a
  safetensors file into an existing model.  layout="fastnn" takes `layers.<i>.weight` (in, out) and
  `layers.<i>.bias`; layout="torch" takes a PyTorch state dict (`<module>.weight` (out, in) and
  `<module>.bias` of each nn.Linear, in module order) onto the Dense layers in order.  Nothing is
  copied unless every check passes.
"""
import collections
import os
import re

import numpy as np

from . import _core, _format
from ._errors import ModelFormatError
from .layers import Activation, Dense, Dropout

__all__ = ["save", "load", "loads", "dumps", "load_weights", "architecture", "LoadResult"]

_LINKS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
_ALPHA_ACTIVATIONS = ("leaky_relu", "elu")
_PARAM = re.compile(r"layers\.(0|[1-9][0-9]*)\.(weight|bias)\Z")

LoadResult = collections.namedtuple("LoadResult", "loaded skipped unexpected")
LoadResult.__doc__ = """What load_weights did: `loaded` the names of the layers it filled, `skipped`
(layer name, reason) pairs left as they were (strict=False), `unexpected` the source tensors it did not use."""


# ---- model -> file ------------------------------------------------------------------------------

def _layer_spec(layer):
    if isinstance(layer, Dense):
        return {"type": "dense", "units": layer.units, "activation": layer.activation,
                "alpha": layer.alpha if layer.activation in _ALPHA_ACTIVATIONS else None,
                "use_bias": layer.use_bias, "l1": layer.l1, "l2": layer.l2, "trainable": layer.trainable,
                "name": layer.name}
    if isinstance(layer, Dropout):
        return {"type": "dropout", "p": layer.p, "name": layer.name}
    if isinstance(layer, Activation):
        return {"type": "activation", "activation": layer.activation,
                "alpha": layer.alpha if layer.activation in _ALPHA_ACTIVATIONS else None, "name": layer.name}
    raise TypeError(f"save: layer {getattr(layer, 'name', None)!r} of type {type(layer).__name__} has no file form")


def architecture(model):
    """The architecture of a built model, as the file's metadata holds it."""
    model._require_built("save")
    arch = {"input_dim": model.input_dim, "dtype": str(model.dtype), "loss": model.loss,
            "link": _LINKS.get(model.loss, "linear"), "layers": [_layer_spec(l) for l in model.layers]}
    if model.loss == "huber":
        arch["huber_delta"] = model.huber_delta
    return arch


def _tensors(model):
    out = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            out.append((f"layers.{i}.weight", layer.weight))
            if layer.use_bias:
                out.append((f"layers.{i}.bias", layer.bias))
    return out


def dumps(model):
    """The bytes of the model file of `model` (built)."""
    return _format.encode(architecture(model), _tensors(model))


def _path(path):
    """`path` as a str or bytes path; TypeError naming it otherwise."""
    if isinstance(path, bool) or not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path: expected a str or path-like object, got {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise ValueError("path: is empty")
    return path


def save(model, path):
    """Write the model file atomically: `path` holds the old file or the new one, never a torn one."""
    path = _path(path)
    _format.write_atomic(path, dumps(model))


# ---- file -> model --------------------------------------------------------------------------------

def _make_layer(d):
    if d["type"] == "dense":
        act = d["activation"]
        if act in _ALPHA_ACTIVATIONS:
            act = Activation(act, alpha=d["alpha"])
        layer = Dense(d["units"], act, l1=d["l1"], l2=d["l2"], use_bias=d["use_bias"], trainable=d["trainable"],
                      name=d["name"])
        if d.get("kernel_init", "auto") != "auto":
            layer.kernel_init = d["kernel_init"]
        return layer
    if d["type"] == "dropout":
        layer = Dropout(d["p"], name=d["name"])
    else:
        params = {"alpha": d["alpha"]} if d["activation"] in _ALPHA_ACTIVATIONS else {}
        layer = Activation(d["activation"], name=d["name"], **params)
    if not d.get("trainable", True):
        layer.trainable = False
    return layer


def _compile(model, loss, huber_delta, settings):
    if loss is None:
        return
    if settings:
        model.compile(loss, optimizer=settings["optimizer"], metrics=settings["metrics"], huber_delta=huber_delta)
    else:
        model.compile(loss, huber_delta=huber_delta)


def _from_model_file(mf, settings=None):
    from .models import Sequential

    model = Sequential([_make_layer(d) for d in mf.layers], input_dim=mf.n_inputs, dtype=mf.dtype,
                       seed=settings["seed"] if settings else None)
    for name, a in mf.tensors().items():
        i, what = _PARAM.match(name).groups()
        np.copyto(getattr(model.layers[int(i)], what), a)
    loss, param = mf.loss
    _compile(model, loss, param, settings)
    return model


def load(path):
    """The model saved in `path`; OSError if it cannot be read, ModelFormatError if it is not a valid
    model file (the message says what is wrong and where)."""
    return _from_model_file(_core.ModelFile.from_path(_path(path)))


def loads(data):
    """The model whose file bytes are `data`."""
    try:
        memoryview(data)
    except TypeError:
        raise TypeError(f"data: expected the bytes of a model file, got {type(data).__name__}") from None
    return _from_model_file(_core.ModelFile.from_buffer(data))


# ---- pickling ---------------------------------------------------------------------------------------

def _settings(model):
    specs = []
    for name, fn in model.metrics:
        from . import metrics as _metrics
        try:
            same = isinstance(name, str) and _metrics.get(name) is fn
        except (ValueError, TypeError, KeyError):
            same = False
        specs.append(name if same else fn)
    return {"seed": model.seed, "optimizer": model.optimizer, "metrics": specs}


def reduce_model(model):
    """(callable, args) for Sequential.__reduce__: the model file's bytes when the model is built."""
    settings = _settings(model)
    if model.built:
        return _unpickle, (dumps(model), settings)
    config = {"dtype": str(model.dtype), "loss": model.loss, "huber_delta": model.huber_delta,
              "layers": [dict(_layer_spec(l), kernel_init=getattr(l, "kernel_init", "auto")) for l in model.layers]}
    return _unpickle_unbuilt, (config, settings)


def _unpickle(data, settings):
    return _from_model_file(_core.ModelFile.from_buffer(data, "<pickle>"), settings)


def _unpickle_unbuilt(config, settings):
    from .models import Sequential

    model = Sequential([_make_layer(d) for d in config["layers"]], dtype=config["dtype"], seed=settings["seed"])
    _compile(model, config["loss"], config["huber_delta"], settings)
    return model


# ---- load_weights ------------------------------------------------------------------------------------

def _bf16_to_f32(raw):
    return (raw.astype(np.uint32) << 16).view(np.float32)


_ST_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "U8": "u1", "I16": "<i2", "U16": "<u2",
              "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8", "BOOL": "?"}


def read_safetensors(path):
    """{name: array} of a safetensors file, in header order, checked by the C reader."""
    path = _path(path)
    with open(path, "rb") as f:
        data = f.read()
    entries, _ = _core.read_safetensors(data, path)
    out = {}
    for name, dtype, shape, begin, end in entries:
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if dtype == "BF16":
            a = _bf16_to_f32(np.frombuffer(data, "<u2", count, begin))
        elif dtype in _ST_DTYPES:
            a = np.frombuffer(data, _ST_DTYPES[dtype], count, begin).copy()
        else:
            raise ModelFormatError(f"{path}: tensor {name!r} has dtype {dtype}, which fastnn does not read")
        out[name] = a.reshape(shape)
    return out


def _as_array(name, v):
    """A NumPy array from an array-like or a torch tensor (bfloat16 widened to float32)."""
    if not isinstance(v, np.ndarray) and hasattr(v, "detach") and hasattr(v, "numpy"):
        v = v.detach().cpu()
        if str(getattr(v, "dtype", "")) == "torch.bfloat16":
            v = v.float()
        v = v.numpy()
    try:
        return np.asarray(v)
    except Exception as e:
        raise TypeError(f"load_weights: tensor {name!r} cannot be read as an array ({e})") from None


def _source(source):
    if isinstance(source, (str, bytes, os.PathLike)):
        return read_safetensors(source)
    if isinstance(source, collections.abc.Mapping):
        out = {}
        for k, v in source.items():
            if not isinstance(k, str):
                raise TypeError(f"load_weights: tensor names must be strings, got {k!r}")
            out[k] = _as_array(k, v)
        return out
    raise TypeError(f"load_weights: source must be a path or a dict of arrays, got {type(source).__name__}")


def _natural_key(name):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def _plan_fastnn(model, tensors, strict):
    plan, loaded, skipped, used = [], [], [], set()
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, Dense):
            continue
        want = [(f"layers.{i}.weight", layer.weight)] + ([(f"layers.{i}.bias", layer.bias)] if layer.use_bias else [])
        problem = None
        for name, dst in want:
            if name not in tensors:
                problem = f"missing tensor {name!r} for layer {i} ({layer.name!r})"
            elif tensors[name].shape != dst.shape:
                problem = (f"tensor {name!r} has shape {tensors[name].shape} but layer {i} ({layer.name!r}) "
                           f"expects {dst.shape}")
            if problem:
                break
        if problem:
            if strict:
                raise ModelFormatError(f"load_weights: {problem}")
            skipped.append((layer.name, problem))
            continue
        for name, dst in want:
            plan.append((dst, tensors[name], name))
            used.add(name)
        loaded.append(layer.name)
    unexpected = [k for k in tensors if k not in used]
    if strict and unexpected:
        bad = unexpected[0]
        why = "no such parameter" if not _PARAM.match(bad) else "not a parameter of this model"
        raise ModelFormatError(f"load_weights: unexpected tensor {bad!r} ({why}; the model's Dense layers take "
                               f"layers.<i>.weight and layers.<i>.bias with i their index in model.layers)")
    return plan, loaded, skipped, unexpected


def _plan_torch(model, tensors, strict, ordered):
    names = list(tensors) if ordered else sorted(tensors, key=_natural_key)
    modules = collections.OrderedDict()
    for name in names:
        prefix, _, leaf = name.rpartition(".")
        modules.setdefault(prefix, {})[leaf] = name
    linear, unexpected = [], []
    for prefix, leaves in modules.items():
        w = leaves.get("weight")
        if w is not None and tensors[w].ndim == 2:
            linear.append((prefix, leaves))
            unexpected += [n for leaf, n in leaves.items() if leaf not in ("weight", "bias")]
        else:
            unexpected += list(leaves.values())
    if strict and unexpected:
        raise ModelFormatError(f"load_weights: tensor {unexpected[0]!r} is not the weight or bias of an nn.Linear; "
                               f"layout='torch' maps only Linear layers onto Dense layers (strict=False ignores it)")
    dense = [(i, l) for i, l in enumerate(model.layers) if isinstance(l, Dense)]
    if strict and len(linear) != len(dense):
        found = ", ".join(p or "<root>" for p, _ in linear) or "none"
        raise ModelFormatError(f"load_weights: the state dict has {len(linear)} Linear layers ({found}) but the "
                               f"model has {len(dense)} Dense layers")
    plan, loaded, skipped = [], [], []
    for k, (i, layer) in enumerate(dense):
        if k >= len(linear):
            skipped.append((layer.name, "no Linear layer left in the state dict"))
            continue
        prefix, leaves = linear[k]
        w = tensors[leaves["weight"]]
        want = (layer.units, layer.weight.shape[0])
        problem = None
        if w.shape != want:
            problem = (f"tensor {leaves['weight']!r} has shape {tuple(w.shape)} but Dense layer {i} "
                       f"({layer.name!r}) needs {want} (out_features, in_features)")
        elif layer.use_bias and "bias" not in leaves:
            problem = f"missing tensor {prefix + '.bias'!r}: Dense layer {i} ({layer.name!r}) has a bias"
        elif not layer.use_bias and "bias" in leaves:
            problem = f"tensor {leaves['bias']!r}: Dense layer {i} ({layer.name!r}) has no bias (use_bias=False)"
        elif layer.use_bias and tensors[leaves["bias"]].shape != (layer.units,):
            problem = (f"tensor {leaves['bias']!r} has shape {tuple(tensors[leaves['bias']].shape)} but Dense "
                       f"layer {i} ({layer.name!r}) needs ({layer.units},)")
        if problem:
            if strict:
                raise ModelFormatError(f"load_weights: {problem}")
            skipped.append((layer.name, problem))
            unexpected += list(leaves.values())
            continue
        plan.append((layer.weight, w.T, leaves["weight"]))
        if layer.use_bias:
            plan.append((layer.bias, tensors[leaves["bias"]], leaves["bias"]))
        loaded.append(layer.name)
    for prefix, leaves in linear[len(dense):]:
        unexpected += list(leaves.values())
    return plan, loaded, skipped, unexpected


def load_weights(model, source, *, layout="fastnn", strict=True):
    """Copy weights from `source` (a safetensors path or a dict of arrays/tensors) into `model`."""
    model._require_built("load_weights")
    if layout not in ("fastnn", "torch"):
        raise ValueError(f"layout: expected 'fastnn' or 'torch', got {layout!r}")
    ordered = isinstance(source, collections.abc.Mapping)
    tensors = _source(source)
    if layout == "fastnn":
        plan, loaded, skipped, unexpected = _plan_fastnn(model, tensors, strict)
    else:
        plan, loaded, skipped, unexpected = _plan_torch(model, tensors, strict, ordered)
    for dst, a, name in plan:  # every check before the first copy: a failure changes nothing
        if a.dtype.kind not in "fiu":
            raise TypeError(f"load_weights: tensor {name!r} has dtype {a.dtype}; expected real numbers")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ValueError(f"load_weights: tensor {name!r} contains NaN or Inf")
    for dst, a, _ in plan:
        np.copyto(dst, a, casting="unsafe")
    return LoadResult(loaded, skipped, unexpected)
