"""Helpers of the model-file tests: architectures, files written by fastnn's writer, and a NumPy
reference forward pass to check the C model against."""
import json
import math
import struct

import numpy as np

from fastnn import _format

ACTIVATIONS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "gelu", "silu"]
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def dense(units, activation="linear", alpha=None, use_bias=True, **kw):
    d = {"type": "dense", "units": units, "activation": activation, "alpha": alpha, "use_bias": use_bias,
         "l1": 0.0, "l2": 0.0, "trainable": True, "name": None}
    d.update(kw)
    return d


def dropout(p=0.5):
    return {"type": "dropout", "p": p}


def activation(name, alpha=None):
    return {"type": "activation", "activation": name, "alpha": alpha}


def batch_norm(momentum=0.99, epsilon=1e-3, **kw):
    return dict({"type": "batch_norm", "momentum": momentum, "epsilon": epsilon, "trainable": True, "name": None}, **kw)


def layer_norm(epsilon=1e-5, **kw):
    return dict({"type": "layer_norm", "epsilon": epsilon, "trainable": True, "name": None}, **kw)


def architecture(layers, input_dim=5, dtype="float32", loss=None):
    link = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "linear")
    return {"input_dim": input_dim, "dtype": dtype, "loss": loss, "link": link, "layers": layers}


def tensors_for(arch, rng):
    """Random parameters for every layer of `arch` that has some: [(name, array)] in layer order (a
    BatchNorm's running variance positive)."""
    dt = np.dtype(arch["dtype"])
    width, out = arch["input_dim"], []
    for i, layer in enumerate(arch["layers"]):
        if layer["type"] == "dense":
            out.append((f"layers.{i}.weight", rng.normal(0, 1 / math.sqrt(width), (width, layer["units"])).astype(dt)))
            if layer.get("use_bias", True):
                out.append((f"layers.{i}.bias", rng.normal(0, 0.5, layer["units"]).astype(dt)))
            width = layer["units"]
        elif layer["type"] in ("batch_norm", "layer_norm"):
            out.append((f"layers.{i}.gamma", rng.uniform(0.5, 1.5, width).astype(dt)))
            out.append((f"layers.{i}.beta", rng.normal(0, 0.5, width).astype(dt)))
            if layer["type"] == "batch_norm":
                out.append((f"layers.{i}.moving_mean", rng.normal(0, 0.5, width).astype(dt)))
                out.append((f"layers.{i}.moving_variance", rng.uniform(0.2, 2.0, width).astype(dt)))
    return out


def model_bytes(arch, rng):
    tensors = tensors_for(arch, rng)
    return _format.encode(arch, tensors), dict(tensors)


def raw_file(header, data=b"", hlen=None, pad=True):
    """A file from a header (dict or raw bytes/str) and a data section, with a chosen length field."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    if isinstance(header, str):
        header = header.encode("utf-8")
    if pad:
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header) if hlen is None else hlen) + header + data


def split(data):
    """(header dict, data section) of a file's bytes."""
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _act(name, x, alpha):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "leaky_relu":
        return np.where(x < 0, alpha * x, x)
    if name == "elu":
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if name == "gelu":
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    if name == "silu":
        return x / (1 + np.exp(-x))
    return x


def _link_merged(arch):
    """Whether the network's own last activation is the link (then predict applies it once)."""
    layers, link = arch["layers"], arch.get("link", "linear")
    eff, folded = [], []
    for i, layer in enumerate(layers):
        eff.append("linear" if layer["type"] not in ("dense", "activation") else (layer.get("activation") or "linear"))
        folded.append(False)
        if i and layer["type"] == "activation" and layers[i - 1]["type"] == "dense" and eff[i - 1] == "linear":
            eff[i - 1], folded[i] = eff[i], True
    last = len(layers) - 1
    while last > 0 and folded[last]:
        last -= 1
    return layers[last]["type"] != "dropout" and eff[last] == link


def reference_predict(arch, tensors, x):
    """Inference in float64 NumPy, with the link (applied once when the network ends in it)."""
    h = np.asarray(x, dtype=np.float64)
    for i, layer in enumerate(arch["layers"]):
        if layer["type"] == "dense":
            h = h @ tensors[f"layers.{i}.weight"].astype(np.float64)
            if layer.get("use_bias", True):
                h = h + tensors[f"layers.{i}.bias"].astype(np.float64)
        if layer["type"] == "batch_norm":
            t = {k: tensors[f"layers.{i}.{k}"].astype(np.float64) for k in ("gamma", "beta", "moving_mean",
                                                                          "moving_variance")}
            h = t["gamma"] * (h - t["moving_mean"]) / np.sqrt(t["moving_variance"] + layer["epsilon"]) + t["beta"]
        if layer["type"] == "layer_norm":
            g, b = tensors[f"layers.{i}.gamma"].astype(np.float64), tensors[f"layers.{i}.beta"].astype(np.float64)
            h = g * (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + layer["epsilon"]) + b
        if layer["type"] in ("dense", "activation"):
            name = layer.get("activation") or "linear"
            alpha = layer.get("alpha")
            h = _act(name, h, DEFAULT_ALPHA.get(name, 0.0) if alpha is None else alpha)
    link = arch.get("link", "linear")
    if link != "linear" and not _link_merged(arch):
        h = _act(link, h, 0.0)
    return h
