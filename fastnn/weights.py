"""Weights from elsewhere into a built model: `load_weights(model, source, layout=..., strict=...)` copies
from a dict of arrays (or torch tensors) or a safetensors file.

- layout="fastnn": `layers.<i>.<parameter>` as a model file names them (`layers.<i>.weight` (in, out)
  and `layers.<i>.bias` for a Dense layer, i its index in model.layers).
- layout="torch": a PyTorch state dict: the `<module>.weight` (out, in) and `<module>.bias` of each
  nn.Linear, in module order, onto the model's Dense layers, in order (BatchNorm and LayerNorm layers
  keep their parameters).

Nothing is copied unless every check passes.  `read_safetensors(path)` reads any safetensors file's
tensors (bfloat16 widened to float32), checked by the C reader's container checks.
"""
import collections
import collections.abc
import errno
import math
import os
import re
import stat

import numpy as np

from . import _core
from ._errors import ModelFormatError
from ._format import path_arg
from ._validate import cast_finite

__all__ = ["load_weights", "read_safetensors", "LoadResult"]

_PARAM = re.compile(r"layers\.(0|[1-9][0-9]*)\.(weight|bias)\Z")

LoadResult = collections.namedtuple("LoadResult", "loaded skipped unexpected")
LoadResult.__doc__ = """What load_weights did: `loaded` the names of the layers it filled, `skipped`
(layer name, reason) pairs left as they were (strict=False), `unexpected` the source tensors it did not use."""


def _bf16_to_f32(raw):
    return (raw.astype(np.uint32) << 16).view(np.float32)


_ST_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "U8": "u1", "I16": "<i2", "U16": "<u2",
              "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8", "BOOL": "?"}


def _read_regular_file(path):
    """The bytes of `path`; OSError for a directory, a FIFO or a device, said before anything is read
    (opened without blocking: a FIFO with no writer would block open itself)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, "cannot read: a directory", path)
            what = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            raise OSError(errno.EINVAL, f"cannot read: {what}, not a regular file", path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        return f.read()


def read_safetensors(path):
    """{name: array} of a safetensors file, in header order, checked by the C reader."""
    path = path_arg(path)
    data = _read_regular_file(path)
    entries, _ = _core.read_safetensors(data, path)
    out = {}
    for name, dtype, shape, begin, end in entries:
        count = math.prod(shape)
        if dtype == "BF16":
            a = _bf16_to_f32(np.frombuffer(data, "<u2", count, begin))
        elif dtype in _ST_DTYPES:
            a = np.frombuffer(data, _ST_DTYPES[dtype], count, begin).copy()
        else:
            raise ModelFormatError(f"{path}: tensor {name!r} has dtype {dtype}, which fastnn does not read")
        try:
            out[name] = a.reshape(shape)
        except (ValueError, OverflowError) as e:  # an empty tensor's other dimensions can be anything
            raise ModelFormatError(f"{path}: tensor {name!r} has shape {list(shape)}, which NumPy cannot "
                                   f"hold ({e})") from None
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
        want = [(f"layers.{i}.{name}", dst) for name, dst in layer.parameters()]
        if not want:
            continue
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


def _torch_problem(i, layer, prefix, leaves, tensors):
    """Why the nn.Linear `prefix` (its tensors `leaves`) cannot fill `layer`, else None.  PyTorch
    stores a weight as (out, in), the transpose of fastnn's; a bias is the same either way."""
    what = f"{type(layer).__name__} layer {i} ({layer.name!r})"
    own = dict(layer.parameters())
    for name, dst in own.items():
        want = dst.shape[::-1]
        if name not in leaves:
            return f"missing tensor {prefix + '.' + name!r}: {what} has a {name}"
        got = tuple(tensors[leaves[name]].shape)
        if got != want:
            return (f"tensor {leaves[name]!r} has shape {got} but {what} needs {want}"
                    + (" (out_features, in_features)" if len(want) == 2 else ""))
    for leaf, tname in leaves.items():
        if leaf not in own:
            return f"tensor {tname!r}: {what} has no {leaf}"
    return None


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
    dense = [(i, l) for i, l in enumerate(model.layers) if l.kind == "dense"]  # normalization layers keep theirs
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
        problem = _torch_problem(i, layer, prefix, leaves, tensors)
        if problem:
            if strict:
                raise ModelFormatError(f"load_weights: {problem}")
            skipped.append((layer.name, problem))
            unexpected += list(leaves.values())
            continue
        for name, dst in layer.parameters():
            plan.append((dst, tensors[leaves[name]].T, leaves[name]))
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
    cast = []
    for dst, a, name in plan:  # every check before the first copy: a failure changes nothing
        if a.dtype.kind not in "fiu":
            raise TypeError(f"load_weights: tensor {name!r} has dtype {a.dtype}; expected real numbers")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ValueError(f"load_weights: tensor {name!r} contains NaN or Inf")
        cast.append(cast_finite(a, dst.dtype, f"load_weights: tensor {name!r}"))
    for (dst, _, _), a in zip(plan, cast):
        np.copyto(dst, a)
    return LoadResult(loaded, skipped, unexpected)
