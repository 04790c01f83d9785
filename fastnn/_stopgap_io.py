"""STOPGAP model files for the command line, to be replaced by `model.save` / `fastnn.load` (the
model-file work, docs/FORMAT.md) once they exist in this tree.

It writes and reads the same format as that work specifies (schema 1.0): a safetensors file whose
`__metadata__` holds "format": "fastnn", "fastnn_schema", "fastnn_version" and the "architecture" JSON,
with tensors `layers.<i>.weight` (in, out) and `layers.<i>.bias`.  The command line adds one more
metadata key, "fastnn_cli" (JSON text: task, class labels, column names), which readers of schema 1.0
ignore.  So files written now stay readable by `fastnn.load` later, and `load` here already prefers
`fastnn.load` when it is implemented.

Reading checks what it relies on (sizes, offsets, dtypes, shapes) and raises ModelFormatError with a
message naming the problem; it is not the full validating reader of csrc/io.c.
"""
import json
import os
import struct

import numpy as np

from ._errors import ModelFormatError

SCHEMA = "1.0"
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
_CODES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}
_MAX_HEADER = 100_000_000


def _architecture(model):
    from .layers import Activation, Dense, Dropout

    layers = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            layers.append({"type": "dense", "units": layer.units, "activation": layer.activation,
                           "alpha": layer.alpha if layer.activation in ("leaky_relu", "elu") else None,
                           "use_bias": layer.use_bias, "l1": layer.l1, "l2": layer.l2,
                           "trainable": layer.trainable, "name": layer.name})
        elif isinstance(layer, Dropout):
            layers.append({"type": "dropout", "p": layer.p, "name": layer.name})
        elif isinstance(layer, Activation):
            layers.append({"type": "activation", "activation": layer.activation,
                           "alpha": layer.alpha if layer.activation in ("leaky_relu", "elu") else None,
                           "name": layer.name})
        else:
            raise TypeError(f"save: layer {layer.name!r} of type {type(layer).__name__} has no file form")
    link = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(model.loss, "linear")
    return {"input_dim": model.input_dim, "dtype": str(model.dtype), "loss": model.loss, "link": link,
            "layers": layers}


def save(model, path, extra=None):
    """Write `model` to `path` (atomically: a temporary file renamed over it); `extra` (a JSON-able
    dict) goes into the metadata key "fastnn_cli"."""
    from . import __version__

    meta = {"format": "fastnn", "fastnn_schema": SCHEMA, "fastnn_version": __version__,
            "architecture": json.dumps(_architecture(model), separators=(",", ":"))}
    if extra is not None:
        meta["fastnn_cli"] = json.dumps(extra, separators=(",", ":"))
    header, chunks, offset = {"__metadata__": meta}, [], 0
    dense_i = [i for i, l in enumerate(model.layers) if type(l).__name__ == "Dense"]
    params = iter(model.get_weights())
    for i in dense_i:
        names = [f"layers.{i}.weight"] + ([f"layers.{i}.bias"] if model.layers[i].use_bias else [])
        for name in names:
            a = next(params)
            raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
            header[name] = {"dtype": _CODES[a.dtype], "shape": list(a.shape),
                            "data_offsets": [offset, offset + len(raw)]}
            chunks.append(raw)
            offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for c in chunks:
                f.write(c)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read(path):
    """(metadata dict, {name: array}) of a safetensors file, with the checks this reader relies on."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ModelFormatError(f"{path}: too short to be a model file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise ModelFormatError(f"{path}: not a model file (header length {n} does not fit the file)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFormatError(f"{path}: not a model file (header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path}: not a model file (header is not a JSON object)")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or meta.get("format") != "fastnn":
        raise ModelFormatError(f"{path}: a safetensors file but not a fastnn model (no fastnn metadata)")
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, t in header.items():
        try:
            dt = _DTYPES[t["dtype"]]
            shape = tuple(int(s) for s in t["shape"])
            begin, end = (int(v) for v in t["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelFormatError(f"{path}: tensor {name!r}: bad entry {t!r}") from None
        if not 0 <= begin <= end <= len(body) or end - begin != int(np.prod(shape)) * dt.itemsize:
            raise ModelFormatError(f"{path}: tensor {name!r}: offsets {begin}..{end} do not match shape {shape}")
        tensors[name] = np.frombuffer(body[begin:end], dtype=dt).reshape(shape)
    return meta, tensors


def read_metadata(path):
    """The file's `__metadata__` (strings) without building the model."""
    return _read(path)[0]


def load(path):
    """(model, extra) from a file written by `save` (or by `model.save`); `extra` is the "fastnn_cli"
    metadata as a dict ({} when absent)."""
    import fastnn as fnn

    meta, tensors = _read(path)
    extra = json.loads(meta["fastnn_cli"]) if "fastnn_cli" in meta else {}
    try:
        return fnn.load(path), extra
    except NotImplementedError:
        pass
    try:
        arch = json.loads(meta["architecture"])
        layers = []
        for spec in arch["layers"]:
            kind = spec["type"]
            if kind == "dense":
                kw = {"alpha": spec["alpha"]} if spec.get("alpha") is not None else {}
                act = fnn.Activation(spec["activation"] or "linear", **kw)
                layers.append(fnn.Dense(spec["units"], activation=act, use_bias=spec.get("use_bias", True),
                                        l1=spec.get("l1", 0.0), l2=spec.get("l2", 0.0),
                                        trainable=spec.get("trainable", True), name=spec.get("name")))
            elif kind == "dropout":
                layers.append(fnn.Dropout(spec["p"], name=spec.get("name")))
            elif kind == "activation":
                kw = {"alpha": spec["alpha"]} if spec.get("alpha") is not None else {}
                layers.append(fnn.Activation(spec["activation"], name=spec.get("name"), **kw))
            else:
                raise ModelFormatError(f"{path}: unknown layer type {kind!r}")
        model = fnn.Sequential(layers, input_dim=arch["input_dim"], dtype=arch["dtype"], seed=0)
        weights = []
        for i, layer in enumerate(model.layers):
            if isinstance(layer, fnn.Dense):
                weights.append(tensors[f"layers.{i}.weight"])
                if layer.use_bias:
                    weights.append(tensors[f"layers.{i}.bias"])
        model.set_weights(weights)
        if arch.get("loss"):
            model.compile(loss=arch["loss"])
    except ModelFormatError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(f"{path}: the architecture does not describe a model ({type(e).__name__}: {e})") from None
    return model, extra
