"""ONNX export and import: a Sequential as a standard ONNX graph, and MLP graphs back as a Sequential.

Needs the optional `onnx` package (`pip install "fastnn[onnx]"`); `import fastnn` does not import it,
and this module imports it only when a function here runs.  Protobuf goes through `onnx` alone.

Export (`export(model, path, opset=17)`, also `Sequential.export_onnx`): one input "input" and one
output "output", both (batch, width) with a symbolic batch.  Each layer kind has one writer in
`_LAYER_WRITERS` and each activation one in `_ACT_WRITERS`, so a new kind adds one function:
  Dense        Gemm(x, W, b) with W as fastnn holds it, (in, out), so transB = 0
  Dropout      nothing (it is the identity outside training)
  BatchNorm    BatchNormalization(x, gamma, beta, moving_mean, moving_variance, epsilon): inference,
               the running statistics, as predict runs it
  LayerNorm    LayerNormalization(x, gamma, beta, axis=-1, epsilon) from opset 17; before it, its
               formula: d = x - ReduceMean(x), d / Sqrt(ReduceMean(d*d) + epsilon) * gamma + beta
  int8 Dense   the engine's arithmetic (csrc/lowp.h) step for step in standard operators: the row's
               range (ReduceMin/ReduceMax with 0, or the calibrated one), its quantization to uint8
               (Mul, Clip, Round, Add, Clip, Cast), MatMulInteger with the int8 weights, less the zero
               point times their column sums, then Cast * (row scale * column scale) + bias and the
               activation (see _write_int8_dense)
  bf16 Dense   the input Cast to bfloat16 and back, the weights as the float32s of their bfloat16
               values, Gemm
  activations  Relu, LeakyRelu(alpha), Elu(alpha), Sigmoid, Tanh, Softmax(axis=-1), Gelu (opset 20
               and later), else 0.5*x*(1 + Erf(x/sqrt 2)), silu as x*Sigmoid(x)
  the link     the loss's softmax/sigmoid as `predict` applies it (once: a final softmax/sigmoid
               layer that the engine fuses with the matching cross-entropy is not repeated)
float64 models give double graphs.  ONNX Runtime has no double kernel for LeakyRelu, Elu, Erf or
Gelu, so in double graphs leaky_relu and elu are written with Where/Less/Greater/Exp (leaky_relu
exactly as the engine computes it), and gelu evaluates its Erf in float32 between two Casts
(about 1e-7 from the engine's double erfc).  The model's `metadata` dict (class and column names
from the command line) goes into `metadata_props` beside fastnn's own "fastnn.*" keys.

Import (`read(source)`, from which `fastnn.from_onnx` builds the model): the graph is read backwards
from its output as a chain of layers, each one of these patterns (anything else is a ModelFormatError naming the operator and its node):
  Dense        Gemm(x, W, C) with transA = 0, transB 0 or 1, alpha and beta; MatMul(x, W) + Add(C);
               MatMul(x, W) alone (no bias).  W and C are constants (initializers or Constant nodes)
  quantized    MatMulInteger, QuantizeLinear and the like are refused by name: fastnn imports float
               graphs (fastnn's own int8 graph among them; its bf16 graph stops at the Cast)
  norms        BatchNormalization (inference form, one output) and LayerNormalization (last axis, with
               a bias), their parameters constants; epsilon read back as the shortest decimal of its
               float32 (the opset-16 formula is not read back: the import names its first operator)
  activations  the operators above; Gelu(approximate="none"); 0.5*x*(1 + Erf(x/sqrt 2)) in any
               association and with Div or Mul (as both of PyTorch's exporters write it); x*Sigmoid(x);
               the Where forms of the double graphs above
  no-ops       Identity and inference Dropout anywhere; Flatten(axis=1), Reshape to (-1|0, width) and
               Cast to the model's dtype before the first layer
  the link     a final Softmax becomes loss="cross_entropy", a final Sigmoid "binary_cross_entropy";
               otherwise the loss named in fastnn's metadata, else "mse"
  outputs      what follows the chain's output only to present it: Identity, Reshape and float Casts;
               scikit-learn's label outputs (ArgMax, Binarizer, ArrayFeatureExtractor, integer Casts)
               and ZipMap; and a binary classifier's two columns [1 - p, p] (Sub + Concat), which
               come in as the one sigmoid output p, as fastnn's own binary classifiers have it.
ONNX attributes are float32: an alpha is read back as the shortest decimal that rounds to that
float32 (0.2 stays 0.2), which float32 models compute with exactly.

An ONNX file is untrusted input.  It is parsed from bytes (at most 2 GiB, protobuf's own limit), so
`onnx` resolves no external-data path itself.  Before any tensor is used, every initializer and
Constant is checked: a shape that disagrees with the data present (a 10 GB claim over a few bytes) is
refused by its declared size, before anything is allocated; external data must be a regular file
inside the model's folder (no absolute path, no "..", no symlink leading out; opened without
following a final symlink and without blocking on a FIFO) whose size covers the declared range.
The graph must be a DAG (a cycle is named) in which each value has one producer.
"""
import json
import math
import os
import stat

import numpy as np

from . import _core
from ._errors import ModelFormatError

__all__ = ["export", "to_proto", "read", "MIN_OPSET"]

MIN_OPSET = 13              # Softmax's per-axis semantics; Gemm's optional C
_GELU_OPSET = 20            # the first opset with a Gelu operator
_LAYERNORM_OPSET = 17       # the first opset with a LayerNormalization operator
_Q_AMAX = _core.INT8_ACT_MAX  # int8 layers quantize their inputs to 0..127 (csrc/lowp.h)
_MAX_PROTO = 2**31 - 1      # protobuf cannot hold a message beyond 2 GiB
_FASTNN_KEYS = ("fastnn.version", "fastnn.loss", "fastnn.huber_delta")
_FILE_KEYS = ("format", "fastnn_schema", "fastnn_version", "architecture")  # a model file's own bookkeeping


def _onnx():
    """The onnx package, or an ImportError that says how to install it."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError('ONNX export and import need the optional "onnx" package: '
                          'pip install "fastnn[onnx]" (or pip install onnx)') from e
    return onnx


# =========================================================================================== export

class _Writer:
    """The nodes and initializers of the graph being written; values are named after the layer and
    operator that compute them."""

    def __init__(self, onnx, dtype, opset, graph):
        self.helper, self.onnx = onnx.helper, onnx
        self.dtype = np.dtype(dtype)
        self.elem = onnx.TensorProto.DOUBLE if self.dtype == np.float64 else onnx.TensorProto.FLOAT
        self.FLOAT, self.DOUBLE = onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE
        self.opset = opset
        self.graph = graph   # written in place: each tensor's bytes are copied once
        self.nodes, self._names, self._consts = [], set(), {}

    def _unique(self, name):
        out, k = name, 1
        while out in self._names:
            k += 1
            out = f"{name}_{k}"
        self._names.add(out)
        return out

    def node(self, op, inputs, scope, **attrs):
        """Append one node; returns the name of its output."""
        name = self._unique(f"{scope}/{op}")
        self.nodes.append(self.helper.make_node(op, list(inputs), [name], name=name, **attrs))
        return name

    def tensor(self, name, array):
        """An initializer holding `array` (little-endian raw data, the one copy of its bytes)."""
        t = self.graph.initializer.add()
        t.name = self._unique(name)
        t.data_type = self.elem
        t.dims.extend(array.shape)
        t.raw_data = np.ascontiguousarray(array, dtype=self.dtype.newbyteorder("<")).tobytes()
        return t.name

    def typed(self, name, array):
        """An initializer holding `array` in its own element type (int8 weights, int32 sums, int64 axes)."""
        t = self.graph.initializer.add()
        t.name = self._unique(name)
        t.data_type = self.helper.np_dtype_to_tensor_dtype(array.dtype)
        t.dims.extend(array.shape)
        t.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        return t.name

    def reduce(self, op, x, scope):
        """ReduceMin/ReduceMax over the last axis, keeping it: an attribute before opset 18, an input after."""
        if self.opset >= 18:
            return self.node(op, [x, self.typed("axes_last", np.array([-1], np.int64))], scope, keepdims=1)
        return self.node(op, [x], scope, axes=[-1], keepdims=1)

    def const(self, value):
        """A scalar initializer in the model's dtype, shared by every node that uses the same value."""
        key = float(value)
        if key not in self._consts:
            self._consts[key] = self.tensor(f"const_{len(self._consts)}", np.array(value, dtype=self.dtype))
        return self._consts[key]


def _write_leaky_relu(w, x, alpha, scope):
    if w.dtype == np.float32:
        return w.node("LeakyRelu", [x], scope, alpha=alpha)
    # double: x < 0 ? alpha*x : x, the engine's expression
    neg = w.node("Less", [x, w.const(0.0)], scope)
    return w.node("Where", [neg, w.node("Mul", [x, w.const(alpha)], scope), x], scope)


def _write_elu(w, x, alpha, scope):
    if w.dtype == np.float32:
        return w.node("Elu", [x], scope, alpha=alpha)
    pos = w.node("Greater", [x, w.const(0.0)], scope)
    em1 = w.node("Sub", [w.node("Exp", [x], scope), w.const(1.0)], scope)
    return w.node("Where", [pos, x, w.node("Mul", [em1, w.const(alpha)], scope)], scope)


def _write_gelu(w, x, alpha, scope):
    if w.dtype == np.float32 and w.opset >= _GELU_OPSET:
        return w.node("Gelu", [x], scope)
    t = w.node("Mul", [x, w.const(1.0 / math.sqrt(2.0))], scope)
    if w.dtype == np.float32:
        e = w.node("Erf", [t], scope)
    else:
        e = w.node("Cast", [w.node("Erf", [w.node("Cast", [t], scope, to=w.FLOAT)], scope)], scope, to=w.DOUBLE)
    return w.node("Mul", [w.node("Mul", [x, w.const(0.5)], scope), w.node("Add", [e, w.const(1.0)], scope)], scope)


def _write_silu(w, x, alpha, scope):
    return w.node("Mul", [x, w.node("Sigmoid", [x], scope)], scope)


def _write_op(op, **attrs):
    return lambda w, x, alpha, scope: w.node(op, [x], scope, **attrs)


# activation name -> writer(w, x, alpha, scope) -> output value
_ACT_WRITERS = {
    "linear": lambda w, x, alpha, scope: x,
    "relu": _write_op("Relu"),
    "leaky_relu": _write_leaky_relu,
    "elu": _write_elu,
    "sigmoid": _write_op("Sigmoid"),
    "tanh": _write_op("Tanh"),
    "softmax": _write_op("Softmax", axis=-1),
    "gelu": _write_gelu,
    "silu": _write_silu,
}


def _write_int8_dense(w, i, layer, x):
    """An int8 layer as the engine computes it (csrc/lowp.h), in standard operators, step for step:
    the input row's range [lo, hi] (min(0, min x), max(0, max x), or the calibrated one), inv = 127 /
    (hi - lo) (0 for an empty range), zp = Round(-lo * inv), q = Clip(Round(Clip(x * inv, -256, 256))
    + zp, 0, 127) as uint8 (ONNX's Round is fastnn's round-half-to-even); the exact int32 product
    MatMulInteger(q, Wq) less zp * (the column sums of Wq); then Cast(t) * (s * wscale) + bias with
    s = (hi - lo) / 127, and the activation.  The same IEEE operations in the same order, so ONNX
    Runtime gets the engine's bits up to the activation's own function."""
    p, s = dict(layer.parameters()), layer.name
    F = w.FLOAT
    qw = p["weight"]
    if layer.input_scales == "calibrated":
        lo = w.tensor(f"layers.{i}.input_lo", p["input_range"][:1].reshape(1, 1))
        hi = w.tensor(f"layers.{i}.input_hi", p["input_range"][1:].reshape(1, 1))
    else:
        lo = w.node("Min", [w.reduce("ReduceMin", x, s), w.const(0.0)], s)
        hi = w.node("Max", [w.reduce("ReduceMax", x, s), w.const(0.0)], s)
    width = w.node("Sub", [hi, lo], s)
    inv = w.node("Where", [w.node("Greater", [width, w.const(0.0)], s),
                           w.node("Div", [w.const(float(_Q_AMAX)), width], s), w.const(0.0)], s)
    zp = w.node("Round", [w.node("Mul", [w.node("Neg", [lo], s), inv], s)], s)
    v = w.node("Clip", [w.node("Mul", [x, inv], s), w.const(-256.0), w.const(256.0)], s)
    v = w.node("Clip", [w.node("Add", [w.node("Round", [v], s), zp], s), w.const(0.0), w.const(float(_Q_AMAX))], s)
    q = w.node("Cast", [v], s, to=w.onnx.TensorProto.UINT8)
    acc = w.node("MatMulInteger", [q, w.typed(f"layers.{i}.weight_q", qw)], s)
    colsum = w.typed(f"layers.{i}.weight_colsum", qw.sum(axis=0, dtype=np.int32))
    t = w.node("Sub", [acc, w.node("Mul", [w.node("Cast", [zp], s, to=w.onnx.TensorProto.INT32), colsum], s)], s)
    scale = w.node("Mul", [w.node("Div", [width, w.const(float(_Q_AMAX))], s),
                           w.tensor(f"layers.{i}.weight_scale", p["weight_scale"])], s)
    y = w.node("Mul", [w.node("Cast", [t], s, to=F), scale], s)
    if layer.use_bias:
        y = w.node("Add", [y, w.tensor(f"layers.{i}.bias", p["bias"])], s)
    return _ACT_WRITERS[layer.activation](w, y, layer.alpha, s)


def _write_bf16_dense(w, i, layer, x):
    """A bfloat16 layer: the input rounded to bfloat16 (Cast there and back; the weights already hold
    bfloat16 values, stored as the float32s they are), multiplied and summed in float32."""
    xb = w.node("Cast", [w.node("Cast", [x], layer.name, to=w.onnx.TensorProto.BFLOAT16)], layer.name, to=w.FLOAT)
    return _write_float_dense(w, i, layer, xb)


def _write_dense(w, i, layer, x):
    if layer.precision == "int8":
        return _write_int8_dense(w, i, layer, x)
    if layer.precision == "bfloat16":
        return _write_bf16_dense(w, i, layer, x)
    return _write_float_dense(w, i, layer, x)


def _write_float_dense(w, i, layer, x):
    inputs = [x, w.tensor(f"layers.{i}.weight", layer.weight)]
    if layer.use_bias:
        inputs.append(w.tensor(f"layers.{i}.bias", layer.bias))
    y = w.node("Gemm", inputs, layer.name)   # transB = 0: the weight is (in, out)
    return _ACT_WRITERS[layer.activation](w, y, layer.alpha, layer.name)


def _write_activation(w, i, layer, x):
    return _ACT_WRITERS[layer.activation](w, x, layer.alpha, layer.name)


def _write_batch_norm(w, i, layer, x):
    """Inference: the running statistics (a frozen or predicting BatchNorm, as the engine runs it)."""
    p = dict(layer.parameters())
    names = [w.tensor(f"layers.{i}.{k}", p[k]) for k in ("gamma", "beta", "moving_mean", "moving_variance")]
    return w.node("BatchNormalization", [x] + names, layer.name, epsilon=float(layer.epsilon))


def _write_layer_norm(w, i, layer, x):
    gamma, beta = w.tensor(f"layers.{i}.gamma", layer.gamma), w.tensor(f"layers.{i}.beta", layer.beta)
    s = layer.name
    if w.opset >= _LAYERNORM_OPSET:
        return w.node("LayerNormalization", [x, gamma, beta], s, axis=-1, epsilon=float(layer.epsilon))
    # before opset 17: the formula, with the engine's biased variance of the centred row
    d = w.node("Sub", [x, w.node("ReduceMean", [x], s, axes=[-1], keepdims=1)], s)
    var = w.node("ReduceMean", [w.node("Mul", [d, d], s)], s, axes=[-1], keepdims=1)
    std = w.node("Sqrt", [w.node("Add", [var, w.const(layer.epsilon)], s)], s)
    return w.node("Add", [w.node("Mul", [w.node("Div", [d, std], s), gamma], s), beta], s)


# layer kind -> writer(w, index, layer, x) -> output value
_LAYER_WRITERS = {
    "dense": _write_dense,
    "dropout": lambda w, i, layer, x: x,
    "activation": _write_activation,
    "batch_norm": _write_batch_norm,
    "layer_norm": _write_layer_norm,
}


def _metadata_props(model, metadata):
    """{key: str} for metadata_props: the model's metadata, then fastnn's own keys."""
    props = {}
    for k, v in (metadata if metadata is not None else getattr(model, "metadata", None) or {}).items():
        if str(k) not in _FILE_KEYS:
            props[str(k)] = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    props["fastnn.version"] = _core.VERSION
    props["fastnn.loss"] = model.loss or ""
    if model.loss == "huber":
        props["fastnn.huber_delta"] = repr(float(model.huber_delta))
    return props


def to_proto(model, *, opset=17, metadata=None):
    """The ModelProto of a built model (see the module docstring)."""
    from ._validate import integer
    opset = integer(opset, "opset")
    if opset < MIN_OPSET:
        raise ValueError(f"opset: expected {MIN_OPSET} or later, got {opset}")
    model._require_built("export_onnx")
    onnx = _onnx()
    if opset > onnx.defs.onnx_opset_version():
        raise ValueError(f"opset: the onnx package installed knows opsets up to {onnx.defs.onnx_opset_version()}, "
                         f"got {opset}")
    nbytes = model._params.nbytes
    if nbytes > _MAX_PROTO - (1 << 20):
        raise ValueError(f"export_onnx: the model's {nbytes:,} bytes of parameters do not fit in one ONNX "
                         f"file (protobuf's limit is 2 GiB)")
    opset_id = onnx.helper.make_opsetid("", opset)
    proto = onnx.ModelProto(ir_version=onnx.helper.find_min_ir_version_for([opset_id]), producer_name="fastnn",
                            producer_version=_core.VERSION)
    proto.opset_import.append(opset_id)
    w = _Writer(onnx, model.dtype, opset, proto.graph)
    x = "input"
    for i, layer in enumerate(model.layers):
        if layer.kind not in _LAYER_WRITERS:
            raise ValueError(f"export_onnx: layer {layer.name!r} ({type(layer).__name__}) has no ONNX form yet")
        x = _LAYER_WRITERS[layer.kind](w, i, layer, x)
    # The loss's link as predict applies it: the engine (net_plan_ in csrc/net_t.h) fuses a final
    # softmax/sigmoid layer into the matching cross-entropy, so such a layer is the link itself,
    # unless a Dropout comes after it.
    link = model._net.link
    last = model.layers[-1]
    if link != "linear" and (last.kind == "dropout" or getattr(last, "activation", None) != link):
        x = _ACT_WRITERS[link](w, x, 0.0, "link")
    if x == "input":
        x = w.node("Identity", [x], "output")
    for node in w.nodes:   # the last value computed is the graph's output
        node.output[:] = ["output" if o == x else o for o in node.output]
    h = onnx.helper
    graph = proto.graph
    graph.name = "fastnn.Sequential"
    graph.node.extend(w.nodes)
    graph.input.append(h.make_tensor_value_info("input", w.elem, ["batch", model.input_dim]))
    graph.output.append(h.make_tensor_value_info("output", w.elem, ["batch", model.n_outputs]))
    h.set_model_props(proto, _metadata_props(model, metadata))
    return proto


def export(model, path, *, opset=17, metadata=None):
    """Write `model` to `path` as an ONNX file, atomically (see the module docstring)."""
    from . import _format
    path = _format.path_arg(path)
    data = to_proto(model, opset=opset, metadata=metadata).SerializeToString()
    _format.write_atomic(path, data)


# =========================================================================================== import

_NP_TYPES = {1: np.float32, 11: np.float64, 7: np.int64, 6: np.int32, 9: np.bool_, 10: np.float16,
             2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 12: np.uint32, 13: np.uint64}
_TYPED_FIELD = {1: "float_data", 11: "double_data", 7: "int64_data", 6: "int32_data", 9: "int32_data",
                10: "int32_data", 2: "int32_data", 3: "int32_data", 4: "int32_data", 5: "int32_data",
                12: "uint64_data", 13: "uint64_data"}
_FLOAT_TYPES = {1: np.dtype(np.float32), 11: np.dtype(np.float64)}


def _bytes(n):
    from ._validate import format_bytes
    return f"{n:,} bytes" if n < 1024 else f"{format_bytes(n)} ({n:,} bytes)"


class _Graph:
    """A parsed graph checked for what the import relies on: each value has one producer, every
    input is defined, no cycle, every tensor's data agrees with its shape.  Knows each value's
    producer and consumers, reads constants, and names nodes in messages."""

    def __init__(self, onnx, proto, base_dir, where):
        self.onnx, self.where, self.base_dir = onnx, where, base_dir
        g = proto.graph
        self.g = g
        self.nodes = list(g.node)   # one Python object per node: identities below rely on it
        self.opset = None
        for o in proto.opset_import:
            if o.domain in ("", "ai.onnx"):
                self.opset = int(o.version)
        if self.opset is None:
            raise self.error("the model imports no opset of the default ONNX domain")
        self.inits = {}
        for t in g.initializer:
            if t.name in self.inits:
                raise self.error(f"two initializers are named {t.name!r}")
            self.inits[t.name] = t
        self.inputs = [v for v in g.input if v.name not in self.inits]
        self.producer, self.consumers = {}, {}
        defined = set(self.inits) | {v.name for v in g.input}
        for n in self.nodes:
            for o in n.output:
                if not o:
                    continue
                if o in self.producer or o in defined:
                    raise self.error(f"value {o!r} is computed by {self.label(n)} but is already defined")
                self.producer[o] = n
        for n in self.nodes:
            for i in n.input:
                if not i:
                    continue
                if i not in self.producer and i not in defined:
                    raise self.error(f"{self.label(n)} reads {i!r}, which nothing defines")
                self.consumers.setdefault(i, []).append(n)
        for v in g.output:
            if v.name not in self.producer and v.name not in defined:
                raise self.error(f"graph output {v.name!r} is not computed by any node")
        self._check_acyclic()
        for t in g.initializer:
            self._check_tensor(t, f"initializer {t.name!r}")
        for n in self.nodes:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    self._check_tensor(a.t, f"attribute {a.name!r} of {self.label(n)}")
        self._arrays = {}

    def error(self, message):
        return ModelFormatError(f"{self.where}: {message}")

    def label(self, n):
        name = n.name or "(unnamed, output " + (repr(n.output[0]) if n.output else "none") + ")"
        dom = f"{n.domain}." if n.domain not in ("", "ai.onnx") else ""
        return f"{dom}{n.op_type} node {name!r}" if n.name else f"{dom}{n.op_type} node {name}"

    def _check_acyclic(self):
        """Kahn's algorithm over the nodes; the nodes left over lie on or behind a cycle."""
        waiting = {}
        ready = []
        for n in self.nodes:
            deps = {id(self.producer[i]) for i in n.input if i in self.producer}
            waiting[id(n)] = len(deps)
            if not deps:
                ready.append(n)
        users = {}
        for n in self.nodes:
            for d in {id(self.producer[i]) for i in n.input if i in self.producer}:
                users.setdefault(d, []).append(n)
        done = 0
        while ready:
            n = ready.pop()
            done += 1
            for u in users.get(id(n), ()):
                waiting[id(u)] -= 1
                if waiting[id(u)] == 0:
                    ready.append(u)
        if done != len(self.nodes):
            stuck = next(n for n in self.nodes if waiting[id(n)] > 0)
            raise self.error(f"the graph has a cycle: {self.label(stuck)} depends on its own output")

    # ---- tensors ------------------------------------------------------------------------------

    def _check_tensor(self, t, what):
        """Refuse a tensor whose declared shape disagrees with the data it has, before reading it."""
        count = 1
        for d in t.dims:
            if d < 0:
                raise self.error(f"{what} has a negative dimension in its shape {list(t.dims)}")
            count *= d
        np_type = _NP_TYPES.get(t.data_type)
        nbytes = count * np.dtype(np_type).itemsize if np_type is not None else None
        if t.data_location == self.onnx.TensorProto.EXTERNAL:
            self._external_range(t, what, nbytes)
            return
        if t.HasField("raw_data"):
            have = len(t.raw_data)
            if nbytes is not None and have != nbytes:
                raise self.error(f"{what}: its shape {list(t.dims)} declares {count:,} values "
                                 f"({_bytes(nbytes)}) but it holds {_bytes(have)}")
            return
        if t.data_type == self.onnx.TensorProto.STRING:
            have = len(t.string_data)
        elif t.data_type in _TYPED_FIELD:
            have = len(getattr(t, _TYPED_FIELD[t.data_type]))
        else:
            return  # a type fastnn never reads; refused if the chain uses it
        if have != count:
            raise self.error(f"{what}: its shape {list(t.dims)} declares {count:,} values but it holds {have:,}")

    def _external_range(self, t, what, nbytes):
        """(path, offset, length) of an external tensor, checked to lie in a regular file inside the
        model's folder; nothing is read here."""
        if self.base_dir is None:
            raise self.error(f"{what} is stored in an external file, which needs the model's path "
                             f"(from_onnx(path), not bytes)")
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if not location or "\0" in location:
            raise self.error(f"{what}: its external data has no location")
        parts = location.replace("\\", "/").split("/")
        if os.path.isabs(location) or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
            raise self.error(f"{what}: its external data location {location!r} is an absolute path; "
                             f"it must name a file inside the model's folder")
        if ".." in parts:
            raise self.error(f"{what}: its external data location {location!r} points outside the model's folder")
        base = os.path.realpath(self.base_dir)
        real = os.path.realpath(os.path.join(base, *[p for p in parts if p not in ("", ".")]))
        if os.path.commonpath([base, real]) != base:
            raise self.error(f"{what}: its external data location {location!r} leads outside the model's "
                             f"folder (through a symlink)")
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else nbytes
        except ValueError:
            raise self.error(f"{what}: its external data offset/length are not whole numbers") from None
        if length is None:
            raise self.error(f"{what}: external data of type {t.data_type} needs a length")
        if offset < 0 or length < 0:
            raise self.error(f"{what}: its external data offset/length are negative")
        if nbytes is not None and length != nbytes:
            raise self.error(f"{what}: its shape {list(t.dims)} declares {_bytes(nbytes)} but its external data "
                             f"length is {_bytes(length)}")
        try:
            st = os.lstat(real)
        except OSError as e:
            raise self.error(f"{what}: its external data file {location!r} cannot be read ({e.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise self.error(f"{what}: its external data location {location!r} is not a regular file")
        if offset + length > st.st_size:
            raise self.error(f"{what}: its external data needs bytes {offset:,} to {offset + length:,} of "
                             f"{location!r}, which holds only {_bytes(st.st_size)}")
        return real, offset, length

    def _read_external(self, t, what, nbytes):
        real, offset, length = self._external_range(t, what, nbytes)
        from ._validate import check_memory
        check_memory(length, what)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except OSError as e:
            raise self.error(f"{what}: its external data file cannot be opened ({e.strerror})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or offset + length > st.st_size:
                raise self.error(f"{what}: its external data file changed while it was read")
            chunks, got = [], 0
            while got < length:
                chunk = os.pread(fd, min(length - got, 1 << 30), offset + got)
                if not chunk:
                    raise self.error(f"{what}: its external data file ended early")
                chunks.append(chunk)
                got += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def type_name(self, code):
        try:
            return self.onnx.TensorProto.DataType.Name(code)
        except ValueError:
            return f"code {code}"

    def array(self, t, what):
        """The NumPy array of a checked TensorProto."""
        np_type = _NP_TYPES.get(t.data_type)
        if np_type is None:
            raise self.error(f"{what} has element type {self.type_name(t.data_type)}, which fastnn does not read")
        shape = tuple(int(d) for d in t.dims)
        dtype = np.dtype(np_type).newbyteorder("<")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if t.data_location == self.onnx.TensorProto.EXTERNAL:
            a = np.frombuffer(self._read_external(t, what, count * dtype.itemsize), dtype)
        elif t.raw_data:
            a = np.frombuffer(t.raw_data, dtype)
        elif t.data_type == 10:   # float16 bits in int32_data
            a = np.asarray(t.int32_data, dtype=np.uint16).view(np.float16)
        else:
            a = np.asarray(getattr(t, _TYPED_FIELD[t.data_type]), dtype=np_type)
        return a.astype(np_type, copy=False).reshape(shape)

    def is_const(self, v):
        return v in self.inits or self.made_by(v, "Constant") is not None

    def const(self, v, user):
        """The value of constant `v` read by node `user` (an initializer or a Constant node)."""
        if v in self._arrays:
            return self._arrays[v]
        if v in self.inits:
            a = self.array(self.inits[v], f"initializer {v!r}")
        elif self.made_by(v, "Constant") is not None:
            a = self._constant_node(self.producer[v])
        else:
            raise self.error(f"{self.label(user)} needs {v!r} to be a constant (an initializer), but it is computed")
        self._arrays[v] = a
        return a

    def _constant_node(self, n):
        if len(n.attribute) != 1:
            raise self.error(f"{self.label(n)} must have exactly one value attribute")
        a = n.attribute[0]
        h = self.onnx.helper
        if a.name == "value":
            return self.array(a.t, f"the value of {self.label(n)}")
        if a.name in ("value_float", "value_floats"):
            return np.asarray(h.get_attribute_value(a), dtype=np.float32)
        if a.name in ("value_int", "value_ints"):
            return np.asarray(h.get_attribute_value(a), dtype=np.int64)
        raise self.error(f"{self.label(n)} holds a {a.name}, which fastnn does not read")

    def scalar(self, v, user):
        """The float value of a one-element constant, or None when `v` is not one."""
        if not self.is_const(v):
            return None
        a = self.const(v, user)
        return float(a.reshape(-1)[0]) if a.size == 1 and a.dtype.kind == "f" else None

    def attr(self, n, name, default, kind):
        """Attribute `name` of node `n` as `kind` (int, float or str), `default` when absent."""
        for a in n.attribute:
            if a.name == name:
                v = self.onnx.helper.get_attribute_value(a)
                if kind is str and isinstance(v, bytes):
                    v = v.decode("utf-8", "replace")
                if kind is float and isinstance(v, (int, float)) or kind is int and isinstance(v, int) \
                        or kind is str and isinstance(v, str):
                    return kind(v)
                raise self.error(f"{self.label(n)}: attribute {name} has the wrong type")
        return default

    def made_by(self, v, *ops):
        """The node computing `v` when it is one of the default domain's `ops`, else None."""
        n = self.producer.get(v)
        return n if n is not None and n.op_type in ops and n.domain in ("", "ai.onnx") else None

    def only_consumer(self, v, n):
        return [id(c) for c in self.consumers.get(v, [])] == [id(n)]


def _near(value, target, rel=1e-6):
    return value is not None and abs(value - target) <= rel * abs(target)


def _alpha(a):
    """An alpha attribute (a float32) as the shortest decimal that rounds to it."""
    return float(str(np.float32(a)))


# A matched stretch of the chain: kind "dense" (W (in, out), b or None), "act" (name, alpha), or
# "noop" (input-side reshaping when `reshape` is set); `x` the value it reads, `nodes` the nodes it
# spans (the first computes its output).
class _Piece:
    def __init__(self, kind, x, nodes, **info):
        self.kind, self.x, self.nodes, self.info = kind, x, nodes, info


def _match_gemm(g, n):
    if len(n.input) < 2:
        raise g.error(f"{g.label(n)} has fewer than two inputs")
    if g.attr(n, "transA", 0, int):
        raise g.error(f"{g.label(n)} has transA=1; fastnn reads Gemm with the data as the first operand")
    w = g.const(n.input[1], n)
    if w.ndim != 2:
        raise g.error(f"{g.label(n)}: the weight {n.input[1]!r} has shape {w.shape}, not 2-D")
    if g.attr(n, "transB", 0, int):
        w = w.T
    alpha, beta = g.attr(n, "alpha", 1.0, float), g.attr(n, "beta", 1.0, float)
    if alpha != 1.0:
        w = w * w.dtype.type(alpha)
    b = None
    if len(n.input) > 2 and n.input[2]:
        b = _bias(g, n, n.input[2], w.shape[1])
        if beta != 1.0:
            b = b * b.dtype.type(beta)
    return _Piece("dense", n.input[0], [n], w=w, b=b, node=n)


def _bias(g, n, v, units):
    c = g.const(v, n)
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or c.size not in (1, units):
        raise g.error(f"{g.label(n)}: the bias {v!r} has shape {c.shape}; expected ({units},) or (1, {units})")
    return np.broadcast_to(c.reshape(-1), (units,))


def _match_matmul(g, n):
    w = g.const(n.input[1], n) if len(n.input) == 2 else None
    if w is None or w.ndim != 2:
        raise g.error(f"{g.label(n)}: fastnn reads MatMul(x, W) with a 2-D constant weight")
    return _Piece("dense", n.input[0], [n], w=w, b=None, node=n)


def _match_add(g, n):
    """Add(MatMul(x, W), C) in either order: a Dense layer with a bias."""
    for mm_out, c in ((n.input[0], n.input[1]), (n.input[1], n.input[0])) if len(n.input) == 2 else ():
        m = g.made_by(mm_out, "MatMul")
        if m is not None and g.is_const(c):
            piece = _match_matmul(g, m)
            piece.info["b"] = _bias(g, n, c, piece.info["w"].shape[1])
            piece.nodes = [n, m]
            return piece
    raise g.error(f"{g.label(n)} is not the bias of a MatMul (Add(MatMul(x, W), C)); fastnn reads no other Add")


def _match_simple(act):
    def match(g, n):
        if len(n.input) != 1:
            raise g.error(f"{g.label(n)} should have one input")
        alpha = 0.0
        if n.op_type == "LeakyRelu":
            alpha = _alpha(g.attr(n, "alpha", 0.01, float))
        elif n.op_type == "Elu":
            alpha = _alpha(g.attr(n, "alpha", 1.0, float))
        elif n.op_type == "Softmax":
            axis = g.attr(n, "axis", -1 if g.opset >= 13 else 1, int)
            if axis not in (1, -1):
                raise g.error(f"{g.label(n)} has axis={axis}; fastnn's softmax runs over the features (axis -1)")
        elif n.op_type == "Gelu":
            how = g.attr(n, "approximate", "none", str)
            if how != "none":
                raise g.error(f"{g.label(n)} has approximate={how!r}; fastnn's gelu is the exact (erf) GELU")
        return _Piece("act", n.input[0], [n], act=act, alpha=alpha)
    return match


def _product_leaves(g, root):
    """(factors, Mul nodes) of the tree of Mul nodes whose root node is `root`; an inner product read
    by anything but its parent Mul is a factor (so the layer's input, read twice, is never expanded)."""
    leaves, nodes, todo = [], [root], [(v, root) for v in root.input]
    while todo:
        v, parent = todo.pop()
        n = g.made_by(v, "Mul")
        if n is None or len(n.input) != 2 or not g.only_consumer(v, parent) or len(nodes) > 8:
            leaves.append(v)
        else:
            nodes.append(n)
            todo += [(u, n) for u in n.input]
    return leaves, nodes


def _float_cast(g, v, chain):
    """What `v` casts when it is a Cast to float or double (appended to `chain`), else `v`."""
    cast = g.made_by(v, "Cast")
    if cast is None or len(cast.input) != 1 or g.attr(cast, "to", None, int) not in _FLOAT_TYPES:
        return v
    chain.append(cast)
    return cast.input[0]


def _match_gelu(g, n):
    """0.5 * x * (1 + Erf(x / sqrt 2)), the three factors in any order and association; the Erf
    optionally between Casts (double graphs)."""
    leaves, nodes = _product_leaves(g, n)
    consts = [v for v in leaves if g.is_const(v)]
    others = [v for v in leaves if not g.is_const(v)]
    if len(consts) != 1 or len(others) != 2 or not _near(g.scalar(consts[0], n), 0.5):
        return None
    for x, e in (others, others[::-1]):
        add = g.made_by(e, "Add")
        if add is None or len(add.input) != 2:
            continue
        one = [v for v in add.input if _near(g.scalar(v, add), 1.0)]
        if len(one) != 1:
            continue
        chain = [add]
        t = add.input[1] if add.input[0] == one[0] else add.input[0]
        t = _float_cast(g, t, chain)     # Cast(Erf(Cast(u))) in double graphs
        erf = g.made_by(t, "Erf")
        if erf is None or len(erf.input) != 1:
            continue
        chain.append(erf)
        u = _float_cast(g, erf.input[0], chain)
        scale = g.made_by(u, "Div", "Mul")
        if scale is None or len(scale.input) != 2:
            continue
        if scale.op_type == "Div" and scale.input[0] == x and _near(g.scalar(scale.input[1], scale), math.sqrt(2)):
            pass
        elif scale.op_type == "Mul" and x in scale.input and \
                _near(g.scalar(scale.input[1] if scale.input[0] == x else scale.input[0], scale), math.sqrt(0.5)):
            pass
        else:
            continue
        return _Piece("act", x, nodes + chain + [scale], act="gelu", alpha=0.0)
    return None


def _match_mul(g, n):
    """x * Sigmoid(x) (silu) or the GELU formula."""
    if len(n.input) == 2:
        for x, s in (n.input, n.input[::-1]):
            sig = g.made_by(s, "Sigmoid")
            if sig is not None and list(sig.input) == [x]:
                return _Piece("act", x, [n, sig], act="silu", alpha=0.0)
    piece = _match_gelu(g, n)
    if piece is None:
        raise g.error(f"{g.label(n)} is neither x*Sigmoid(x) (silu) nor 0.5*x*(1 + Erf(x/sqrt(2))) (gelu); "
                      f"fastnn reads no other Mul")
    return piece


def _match_where(g, n):
    """Where(x < 0, alpha*x, x) (leaky_relu) or Where(x > 0, x, alpha*(Exp(x) - 1)) (elu), either
    comparison."""
    bad = g.error(f"{g.label(n)} is not the leaky_relu or elu pattern fastnn writes for double graphs")
    cond = g.made_by(n.input[0], "Less", "Greater") if len(n.input) == 3 else None
    if cond is None or len(cond.input) != 2 or g.scalar(cond.input[1], cond) != 0.0:
        raise bad
    x = cond.input[0]
    pos, neg = (n.input[2], n.input[1]) if cond.op_type == "Less" else (n.input[1], n.input[2])
    mul = g.made_by(neg, "Mul")
    if pos != x or mul is None or len(mul.input) != 2:
        raise bad
    for v, c in (mul.input, mul.input[::-1]):
        alpha = g.scalar(c, mul)
        if alpha is None:
            continue
        if v == x:
            return _Piece("act", x, [n, cond, mul], act="leaky_relu", alpha=alpha)
        sub = g.made_by(v, "Sub")
        exp = g.made_by(sub.input[0], "Exp") if sub is not None and len(sub.input) == 2 else None
        if exp is not None and list(exp.input) == [x] and g.scalar(sub.input[1], sub) == 1.0:
            return _Piece("act", x, [n, cond, mul, sub, exp], act="elu", alpha=alpha)
    raise bad


def _match_dropout(g, n):
    if len(n.output) > 1 and n.output[1] and g.consumers.get(n.output[1]):
        raise g.error(f"{g.label(n)}: its mask is used; fastnn reads Dropout only as the identity of inference")
    if len(n.input) > 2 and n.input[2]:
        mode = g.const(n.input[2], n)
        if mode.size != 1 or bool(mode.reshape(-1)[0]):
            raise g.error(f"{g.label(n)} is in training mode; fastnn reads Dropout only as the identity of inference")
    return _Piece("noop", n.input[0], [n])


def _match_flatten(g, n):
    if g.attr(n, "axis", 1, int) != 1:
        raise g.error(f"{g.label(n)} flattens at axis {g.attr(n, 'axis', 1, int)}; fastnn reads Flatten(axis=1) "
                      f"at the input (rows stay rows)")
    return _Piece("noop", n.input[0], [n], reshape=None)


def _match_reshape(g, n):
    shape = g.const(n.input[1], n) if len(n.input) == 2 else None
    if shape is None or shape.dtype.kind != "i" or shape.shape != (2,) or shape[0] not in (-1, 0) or \
            (shape[0] == 0 and g.attr(n, "allowzero", 0, int)):
        raise g.error(f"{g.label(n)}: fastnn reads Reshape at the input only to (-1, features) or (0, features)")
    return _Piece("noop", n.input[0], [n], reshape=int(shape[1]))


def _match_cast(g, n):
    to = g.attr(n, "to", None, int)
    if to not in _FLOAT_TYPES:
        raise g.error(f"{g.label(n)} casts to element type {to}; fastnn reads Cast to float or double at the input")
    return _Piece("noop", n.input[0], [n], cast=_FLOAT_TYPES[to])


def _norm_params(g, n, names):
    """The 1-D constant parameters of a normalization node, all of one length."""
    if len(n.input) != 1 + len(names) or not all(n.input):
        raise g.error(f"{g.label(n)} should have {1 + len(names)} inputs (x, {', '.join(names)})")
    out = {}
    for name, v in zip(names, n.input[1:]):
        a = g.const(v, n)
        if a.ndim != 1:
            raise g.error(f"{g.label(n)}: its {name} {v!r} has shape {a.shape}; fastnn reads one value per feature")
        out[name] = a
    if len({a.shape for a in out.values()}) != 1:
        raise g.error(f"{g.label(n)}: its parameters have different lengths")
    return out


def _match_batch_norm(g, n):
    """BatchNormalization in inference form (one output): a BatchNorm with these running statistics."""
    if len([o for o in n.output if o]) != 1 or g.attr(n, "training_mode", 0, int):
        raise g.error(f"{g.label(n)} is in training mode; fastnn reads an inference BatchNormalization")
    p = _norm_params(g, n, ("gamma", "beta", "moving_mean", "moving_variance"))
    return _Piece("norm", n.input[0], [n], layer="batch_norm", params=p, node=n,
                  eps=_alpha(g.attr(n, "epsilon", 1e-5, float)))


def _match_layer_norm(g, n):
    """LayerNormalization over the last axis, with scale and bias: a LayerNorm."""
    if g.attr(n, "axis", -1, int) not in (-1, 1) or len([o for o in n.output if o]) != 1:
        raise g.error(f"{g.label(n)}: fastnn reads LayerNormalization over the features (axis -1) with one output")
    if len(n.input) == 2:
        raise g.error(f"{g.label(n)} has no bias; fastnn reads LayerNormalization(x, scale, bias)")
    p = _norm_params(g, n, ("gamma", "beta"))
    return _Piece("norm", n.input[0], [n], layer="layer_norm", params=p, node=n,
                  eps=_alpha(g.attr(n, "epsilon", 1e-5, float)))


_QUANTIZED_OPS = ("MatMulInteger", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")

# operator -> matcher(graph, node computing the chain's current value) -> _Piece
_MATCHERS = {
    "Gemm": _match_gemm, "MatMul": _match_matmul, "Add": _match_add,
    "Relu": _match_simple("relu"), "LeakyRelu": _match_simple("leaky_relu"), "Elu": _match_simple("elu"),
    "Sigmoid": _match_simple("sigmoid"), "Tanh": _match_simple("tanh"), "Softmax": _match_simple("softmax"),
    "Gelu": _match_simple("gelu"), "Mul": _match_mul, "Where": _match_where,
    "Identity": lambda g, n: _Piece("noop", n.input[0], [n]), "Dropout": _match_dropout,
    "Flatten": _match_flatten, "Reshape": _match_reshape, "Cast": _match_cast,
    "BatchNormalization": _match_batch_norm, "LayerNormalization": _match_layer_norm,
}
_INPUT_ONLY = ("Flatten", "Reshape", "Cast")


def _trace_output(g, v):
    """Walk back from graph output `v` over the nodes that only present the prediction (layout,
    float casts, scikit-learn's label outputs and ZipMap); returns (the chain's output value, those
    nodes).  An integer Cast is allowed only on a label output."""
    nodes, label, int_cast, out = [], False, None, v
    while v in g.producer:
        n = g.producer[v]
        if not n.input or not n.input[0]:
            break   # the chain's own check names it
        op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        if op == "Identity" or op == "Reshape" and len(n.input) == 2 and g.is_const(n.input[1]):
            nxt = n.input[0]
        elif op == "Cast" and len(n.input) == 1:
            if g.attr(n, "to", None, int) not in _FLOAT_TYPES:
                int_cast = int_cast or n
            nxt = n.input[0]
        elif op in ("ai.onnx.ml.ZipMap", "ArgMax", "ai.onnx.ml.Binarizer") and len(n.input) == 1:
            label, nxt = True, n.input[0]
        elif op == "ai.onnx.ml.ArrayFeatureExtractor" and len(n.input) == 2 and g.is_const(n.input[0]):
            label, nxt = True, n.input[1]
        elif op == "Concat" and len(n.input) == 2 and g.attr(n, "axis", None, int) in (1, -1):
            sub = g.made_by(n.input[0], "Sub")   # scikit-learn's binary [1 - p, p]
            if sub is None or len(sub.input) != 2 or sub.input[1] != n.input[1] or g.scalar(sub.input[0], sub) != 1.0:
                break
            nodes.append(sub)
            nxt = n.input[1]
        else:
            break
        nodes.append(n)
        v = nxt
    if int_cast is not None and not label:
        raise g.error(f"graph output {out!r} is the prediction cast to integers by {g.label(int_cast)}; fastnn "
                      f"reads real-valued outputs")
    return v, nodes


def _read(onnx, source):
    """(ModelProto, folder of external data or None, name for messages)."""
    if isinstance(source, onnx.ModelProto):
        return source, None, "<ModelProto>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, base, where = bytes(source), None, "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not path:
            raise ValueError("source: is empty")
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{path}: is a directory, not an ONNX file")
        if not stat.S_ISREG(st.st_mode):
            raise ModelFormatError(f"{path}: not a regular file")
        if st.st_size > _MAX_PROTO:
            raise ModelFormatError(f"{path}: {_bytes(st.st_size)} is more than an ONNX protobuf holds (2 GiB); "
                                   f"larger models keep their tensors in external data files")
        with open(path, "rb") as f:
            data = f.read(_MAX_PROTO + 1)
        base, where = os.path.dirname(os.path.abspath(path)), path
    else:
        raise TypeError(f"source: expected a path, the bytes of an ONNX file or an onnx.ModelProto, "
                        f"got {type(source).__name__}")
    if len(data) > _MAX_PROTO:
        raise ModelFormatError(f"{where}: more than an ONNX protobuf holds (2 GiB)")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError (its class depends on the protobuf backend)
        raise ModelFormatError(f"{where}: not an ONNX model (the protobuf does not parse: {e})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise ModelFormatError(f"{where}: not an ONNX model (no graph, or a graph without nodes)")
    return proto, base, where


def _chain(g):
    """The pieces of the layer chain from the graph input to the output, and the nodes after it."""
    if len(g.inputs) != 1:
        raise g.error(f"the graph has {len(g.inputs)} inputs ({', '.join(v.name for v in g.inputs) or 'none'}); "
                      f"fastnn reads a graph with one input")
    x = g.inputs[0].name
    if not g.g.output:
        raise g.error("the graph has no output")
    ends, post = {}, []
    for out in g.g.output:
        end, nodes = _trace_output(g, out.name)
        ends.setdefault(end, out.name)
        post += nodes
    if len(ends) != 1:
        a, b = list(ends.values())[:2]
        raise g.error(f"graph outputs {a!r} and {b!r} come from different values; fastnn reads one chain of "
                      f"layers with one output")
    (end,) = ends
    pieces, v = [], end
    while v != x:
        n = g.producer.get(v)
        if n is None:
            raise g.error(f"value {v!r} on the way to the output is not computed from the graph input {x!r}")
        if n.domain not in ("", "ai.onnx") or n.op_type not in _MATCHERS:
            raise g.error(f"operator {g.label(n)} is not one fastnn reads (it reads Gemm, MatMul(+Add), Relu, "
                          f"LeakyRelu, Elu, Sigmoid, Tanh, Softmax, Gelu and its Erf formula, x*Sigmoid(x), "
                          f"BatchNormalization, LayerNormalization, Identity, Dropout, and Flatten/Reshape/Cast "
                          f"at the input)")
        if not n.input or not n.input[0]:
            raise g.error(f"{g.label(n)} has no data input")
        piece = _MATCHERS[n.op_type](g, n)
        pieces.append(piece)
        v = piece.x
    pieces.reverse()
    _check_closed(g, pieces, post, x)
    return pieces


def _check_closed(g, pieces, post, x):
    """Every node belongs to exactly one piece or to the output's presentation, and each piece's
    values feed only the piece itself and the next one."""
    owner = {}
    for k, piece in enumerate(pieces):
        for n in piece.nodes:
            if owner.setdefault(id(n), k) != k:
                raise g.error(f"{g.label(n)} is shared by two layers")
    for n in post:
        owner.setdefault(id(n), len(pieces))
    for n in g.nodes:
        if id(n) not in owner and not (n.op_type == "Constant" and n.domain in ("", "ai.onnx")):
            raise g.error(f"operator {g.label(n)} is not part of the chain of layers fastnn reads")
    for k, piece in enumerate(pieces):
        outs = [o for n in piece.nodes for o in n.output if o]
        allowed = {id(n) for n in piece.nodes}
        for v in [piece.x] + outs[1:]:   # outs[0] is the piece's output, read by the next piece
            for c in g.consumers.get(v, []):
                if id(c) not in allowed:
                    raise g.error(f"value {v!r} inside the chain is also read by {g.label(c)}; fastnn reads "
                                  f"a plain chain of layers")
        nxt = {id(n) for n in pieces[k + 1].nodes} if k + 1 < len(pieces) else {id(n) for n in post}
        for c in g.consumers.get(outs[0], []):
            if id(c) not in nxt:
                raise g.error(f"value {outs[0]!r} inside the chain is also read by {g.label(c)}; fastnn reads "
                              f"a plain chain of layers")


def _layers(g, pieces):
    """(layer specs, input width, dtype) from the chain's pieces: dicts of kind "dense" (w, b) or
    "activation", each with act and alpha; an activation right after a Dense is that Dense's."""
    first = next((k for k, p in enumerate(pieces) if p.kind != "noop"), len(pieces))
    for p in pieces[first:]:
        if p.kind == "noop" and p.nodes[0].op_type in _INPUT_ONLY:
            raise g.error(f"{g.label(p.nodes[0])} sits between layers; fastnn reads Flatten, Reshape and Cast "
                          f"only at the input")
    dense = [p for p in pieces if p.kind == "dense"]
    norms = [p for p in pieces if p.kind == "norm"]
    if not dense and not norms:
        raise g.error("the graph has no Gemm, MatMul or normalization layer")
    dtypes = {p.info["w"].dtype for p in dense} | {p.info["b"].dtype for p in dense if p.info["b"] is not None}
    dtypes |= {a.dtype for p in norms for a in p.info["params"].values()}
    bad = [d for d in dtypes if d not in (np.float32, np.float64)]
    if bad or len(dtypes) != 1:
        raise g.error(f"the weights have element types {sorted(str(d) for d in dtypes)}; fastnn reads float32 or "
                      f"float64 weights, all of one type")
    (dtype,) = dtypes
    for p in norms:
        if not all(np.all(np.isfinite(a)) for a in p.info["params"].values()):
            raise g.error(f"{g.label(p.info['node'])}: its parameters contain NaN or Inf")
        if not p.info["eps"] > 0:
            raise g.error(f"{g.label(p.info['node'])}: its epsilon {p.info['eps']} is not positive")
    for p in dense:
        if not (np.all(np.isfinite(p.info["w"])) and (p.info["b"] is None or np.all(np.isfinite(p.info["b"])))):
            raise g.error(f"{g.label(p.info['node'])}: its weight or bias contains NaN or Inf")
    for p in pieces[:first]:
        if p.info.get("cast") is not None and p.info["cast"] != dtype:
            raise g.error(f"{g.label(p.nodes[0])} casts the input to {p.info['cast']}, but the weights are {dtype}")
    head = pieces[first]   # the first layer fixes the input width: a Dense's weight rows, a norm's features
    width = head.info["params"]["gamma"].shape[0] if head.kind == "norm" else dense[0].info["w"].shape[0]
    _check_input(g, pieces[:first], width, dtype)
    layers, units = [], width
    for p in pieces[first:]:
        if p.kind == "dense":
            w = p.info["w"]
            if w.shape[0] != units:
                raise g.error(f"{g.label(p.info['node'])}: its weight takes {w.shape[0]} inputs but the layer "
                              f"before gives {units}")
            units = w.shape[1]
            layers.append({"kind": "dense", "w": w, "b": p.info["b"], "act": "linear", "alpha": 0.0})
        elif p.kind == "norm":
            n = p.info["params"]["gamma"].shape[0]
            if n != units:
                raise g.error(f"{g.label(p.info['node'])}: it normalizes {n} features but the layer before gives "
                              f"{units}")
            layers.append({"kind": p.info["layer"], "params": p.info["params"], "eps": p.info["eps"],
                           "act": "linear", "alpha": 0.0})
        elif p.kind == "act":
            if layers and layers[-1]["kind"] == "dense" and layers[-1]["act"] == "linear":
                layers[-1].update(act=p.info["act"], alpha=p.info["alpha"])
            else:
                layers.append({"kind": "activation", "act": p.info["act"], "alpha": p.info["alpha"]})
    return layers, width, dtype


# loss -> the function predict applies to its output (the link), from C
_LINKS = {loss: link for loss, link in _core.LOSS_LINKS.items() if link != "linear"}


def _loss(g, layers, props):
    """Take the loss's link off the end of `layers`; returns (loss, huber delta).  fastnn's own
    metadata ("fastnn.loss") is followed when the graph agrees with it; otherwise a final softmax
    is cross_entropy's link, a final sigmoid binary_cross_entropy's, and anything else means mse."""
    meta = props.get("fastnn.loss")
    final = layers[-1]["act"]
    if meta in _LINKS and _LINKS[meta] != final or meta not in (None, "", "mse", "mae", "huber", *_LINKS):
        meta = None   # not written by fastnn, or not this graph's
    delta = 1.0
    if meta == "huber":
        try:
            delta = float(props.get("fastnn.huber_delta", "1.0"))
        except ValueError:
            delta = float("nan")
        if not 0 < delta < float("inf"):
            raise g.error(f"metadata fastnn.huber_delta={props.get('fastnn.huber_delta')!r} is not a positive number")
    if meta is None:
        meta = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(final, "mse")
    if meta in _LINKS:
        if layers[-1]["kind"] == "dense":
            layers[-1].update(act="linear", alpha=0.0)
        else:
            layers.pop()
        # what is left ends with the link's own function: that one would fuse into the loss and the
        # link would run once instead of twice, so a linear Activation keeps them apart
        if layers[-1]["act"] == _LINKS[meta]:
            layers.append({"kind": "activation", "act": "linear", "alpha": 0.0})
    return meta or None, delta


def _make_layers(layers):
    """(fastnn layer, spec) for each spec of _layers."""
    from .layers import Activation, BatchNorm, Dense, LayerNorm

    out = []
    for spec in layers:
        if spec["kind"] in ("batch_norm", "layer_norm"):
            out.append(((BatchNorm if spec["kind"] == "batch_norm" else LayerNorm)(epsilon=spec["eps"]), spec))
            continue
        act = spec["act"]
        if act in ("leaky_relu", "elu"):
            act = Activation(act, alpha=spec["alpha"])
        if spec["kind"] == "dense":
            out.append((Dense(spec["w"].shape[1], act, use_bias=spec["b"] is not None), spec))
        else:
            out.append((act if isinstance(act, Activation) else Activation(act), spec))
    return out


def _check_input(g, noops, width, dtype):
    """The graph input's declared type and shape fit rows of `width` features."""
    vi = g.inputs[0]
    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None:
        raise g.error(f"graph input {vi.name!r} is not a tensor")
    if tt.elem_type not in _FLOAT_TYPES:
        name = g.type_name(tt.elem_type) if tt.elem_type else "undefined"
        raise g.error(f"graph input {vi.name!r} has element type {name}; fastnn reads float or double inputs")
    cast = any(p.info.get("cast") is not None for p in noops)
    if _FLOAT_TYPES[tt.elem_type] != dtype and not cast:
        raise g.error(f"graph input {vi.name!r} is {_FLOAT_TYPES[tt.elem_type]} but the weights are {dtype}")
    if not tt.HasField("shape"):
        return
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    flat = any(p.nodes[0].op_type in ("Flatten", "Reshape") for p in noops)
    if len(dims) != 2 and not flat:
        raise g.error(f"graph input {vi.name!r} has {len(dims)} dimensions; fastnn reads rows of features "
                      f"(2-D, or any shape with a Flatten at the input)")
    feats = dims[1:]
    if len(dims) >= 1 and all(d is not None for d in feats) and int(np.prod(feats, dtype=np.int64)) != width:
        raise g.error(f"graph input {vi.name!r} has shape {dims}, but the first layer takes {width} features")
    for p in noops:
        if p.info.get("reshape") is not None and p.info["reshape"] != width:
            raise g.error(f"{g.label(p.nodes[0])} reshapes to {p.info['reshape']} features but the first layer "
                          f"takes {width}")


def read(source):
    """What an ONNX MLP graph holds, checked: (layers, input width, dtype, loss, huber delta, metadata).
    `source` is a path, the file's bytes, or an onnx.ModelProto (see the module docstring for what is
    read); `layers` are fastnn layers with their weights, as (layer, {"w": weight, "b": bias or None})
    for Dense layers and (layer, {}) for the others.  fastnn.from_onnx builds the model from them.
    Raises ModelFormatError naming what is wrong."""
    onnx = _onnx()
    proto, base, where = _read(onnx, source)
    g = _Graph(onnx, proto, base, where)
    for n in g.nodes:   # fastnn's own int8 export among them: its layers come in as float or not at all
        if n.op_type in _QUANTIZED_OPS and n.domain in ("", "ai.onnx"):
            raise g.error(f"operator {g.label(n)} belongs to a quantized graph; fastnn imports float graphs "
                          f"(import the float model, then fastnn.quantize it)")
    layers, width, dtype = _layers(g, _chain(g))
    props = {p.key: p.value for p in proto.metadata_props}
    loss, delta = _loss(g, layers, props)
    extra = {k: v for k, v in props.items() if k not in _FASTNN_KEYS and k not in _FILE_KEYS}
    return _make_layers(layers), width, dtype, loss, delta, extra
