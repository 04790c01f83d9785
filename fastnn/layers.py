"""Layers of a Sequential model: small objects that hold their configuration and, once the model is
built, NumPy views of its parameters.  The arithmetic runs in the C engine (csrc/net.c).

A layer knows every form it takes: `spec()` is the dict a model file stores for it (docs/FORMAT.md)
and `Layer.from_spec(d)` builds a layer back from one (dispatching on d["type"] through the registry
that each subclass joins by setting `kind`); `descriptor(in_features, offset)` is the C engine's
description of it, its tensors laid out by C from `offset`; `param_shapes(in_features)` the parameter
arrays it owns (their names and order are the engine's, csrc/plan.c), and `parameters()` their
(name, view) pairs once built.  The model, saving, pickling and the summary go through these, never
through the layer's type.

- `Dense(units, activation=None, *, l2=0.0, l1=0.0, use_bias=True, kernel_init="auto", max_norm=None,
  trainable=True, name=None)`: y = act(x @ weight + bias), weight of shape (in_features, units).
- `Dropout(p=0.5, *, keep_prob=None)`: inverted dropout, p = probability of dropping a unit.
- `Activation(name, **params)`: an activation as a layer of its own (folded into the Dense below it
  when that one is linear).
- `BatchNorm(momentum=0.99, epsilon=1e-3)`, `LayerNorm(epsilon=1e-5)`: normalization (Keras's
  BatchNormalization and LayerNormalization over the features).

Once its model is built, a layer's structural attributes (Dense's units, activation, alpha, use_bias,
l1, l2, max_norm; Dropout's p; Activation's activation and alpha; BatchNorm's momentum and epsilon;
LayerNorm's epsilon) are read-only: the engine's plan and the weights were laid out for them, and a
model file written after a change would describe another network.  `trainable`, `weight` and `bias` change the model at once (and claim it against other
threads, as Sequential's own changes do); `name` is free.

A Dense layer of a quantized model (fastnn/quantization.py) has a `precision`: "int8" (parameters `weight`
int8, `bias`, `weight_scale` per column, and `input_range` when calibrated; `input_scales` says
"per_row" or "calibrated") or "bfloat16" (`weight` float32 holding bfloat16 values).  Its parameters
are read-only: such a layer only predicts.  An int8 weight takes a quarter of the float slots of the
model's buffer (`param_slots`), viewed as int8; the engine lays them out (fnn_layer_place).
"""
import contextlib
import math
import weakref

import numpy as np

from . import _core
from ._errors import FastNNError
from ._validate import integer, real_number, replacement

__all__ = ["Layer", "Dense", "Dropout", "Activation", "BatchNorm", "LayerNorm", "ACTIVATIONS", "INITIALIZERS"]

# Activation name -> its parameters' defaults, for every activation of the C engine but log_softmax,
# which only fastnn.ops offers (a layer's softmax fused with the cross-entropy serves that use).
# leaky_relu's alpha is the negative slope, elu's the saturation.
_PARAM_DEFAULTS = {"leaky_relu": {"alpha": 0.01}, "elu": {"alpha": 1.0}}
ACTIVATIONS = {name: dict(_PARAM_DEFAULTS.get(name, {})) for name in _core.ACTIVATIONS if name != "log_softmax"}
_ALPHA_ACTIVATIONS = frozenset(name for name, params in ACTIVATIONS.items() if "alpha" in params)
_RELU_FAMILY = {"relu", "leaky_relu", "elu", "gelu", "silu"}


def _he_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), (fan_in, fan_out))


def _he_uniform(rng, fan_in, fan_out):
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, (fan_in, fan_out))


def _glorot_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out))


def _glorot_uniform(rng, fan_in, fan_out):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out))


# Plain (not truncated) normals, as PyTorch's kaiming_normal_/xavier_normal_ draw them.
INITIALIZERS = {"he_normal": _he_normal, "he_uniform": _he_uniform, "glorot_normal": _glorot_normal,
                "glorot_uniform": _glorot_uniform}


def activation_spec(activation, params=None, where="activation"):
    """(name, alpha) of an activation given as None, a name, or an Activation layer."""
    if isinstance(activation, Activation):
        return activation.activation, activation.alpha
    if activation is None:
        activation = "linear"
    if not isinstance(activation, str):
        raise TypeError(f"{where}: expected a name or None, got {type(activation).__name__}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{where}: unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
    defaults = ACTIVATIONS[activation]
    params = dict(params or {})
    for key in params:
        if key not in defaults:
            raise TypeError(f"{where}: {activation!r} takes no parameter {key!r}"
                            + (f"; it takes {', '.join(defaults)}" if defaults else ""))
    alpha = real_number(params.get("alpha", defaults.get("alpha", 0.0)), f"{where} alpha")
    return activation, alpha


def _alpha_or_none(activation, alpha):
    """The `alpha` a spec stores: the value for the activations that take one, else None."""
    return alpha if activation in _ALPHA_ACTIVATIONS else None


class Layer:
    """Base class.  `trainable` may be changed at any time; the model applies it at once.

    A subclass sets `kind` (its "type" in model files, which also registers it for `from_spec`) and
    overrides what it has: `spec`/`_from_spec`, `output_dim`, `_describe` (its settings for the engine,
    which names and lays out its tensors), `init_weights`, `summary_label`."""

    kind = "layer"
    _registry = {}  # kind -> class, filled by __init_subclass__
    _STRUCTURE = ()  # attributes fixed once the model is built (what the plan and the weights follow)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Layer._registry.setdefault(cls.kind, cls)

    def __init__(self, *, trainable=True, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        self.name = name
        self._trainable = bool(trainable)
        self._model = None  # weakref to the model that built the layer
        self._views = {}    # parameter name -> (view of the parameters, view of the gradients)
        self._offsets = {}  # parameter name -> its offset in the model's flat buffer

    def __setattr__(self, name, value):
        if name in self._STRUCTURE and self.__dict__.get("_built"):
            raise AttributeError(f"layer {self.name!r}: {name} cannot change once the model is built (the engine "
                                 f"and the weights were laid out for {name}={getattr(self, name)!r}); build a new "
                                 f"model to change it")
        super().__setattr__(name, value)

    def __delattr__(self, name):
        if name in self._STRUCTURE and self.__dict__.get("_built"):
            raise AttributeError(f"layer {self.name!r}: {name} cannot be deleted once the model is built")
        super().__delattr__(name)

    @contextlib.contextmanager
    def _changing(self, what):
        """Claim the layer's model (if any) for this thread while `what` changes it."""
        model = self._model() if self._model is not None else None
        if model is None:
            yield None
            return
        model._claim(f"{self.name}: {what}")
        try:
            yield model
        finally:
            model._release()

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        with self._changing("trainable") as model:
            self._trainable = bool(value)
            if model is not None:
                model._apply_trainable(self)

    def _attach(self, model):
        if self._model is not None and self._model() is not None and self._model() is not model:
            raise ValueError(f"layer {self.name!r} already belongs to another model")
        self._model = weakref.ref(model)

    # ---- the file form ---------------------------------------------------------------------------

    def spec(self):
        """The dict a model file stores for this layer (docs/FORMAT.md)."""
        raise TypeError(f"save: layer {self.name!r} of type {type(self).__name__} has no file form")

    @classmethod
    def from_spec(cls, d):
        """The layer a spec describes: `spec()`'s output, or a layer dict of a loaded model file."""
        kind = d.get("type")
        layer_cls = Layer._registry.get(kind)
        if layer_cls is None:
            raise ValueError(f"layer type {kind!r} is unknown; expected one of {', '.join(Layer._registry)}")
        layer = layer_cls._from_spec(d)
        layer.trainable = d.get("trainable", True)
        return layer

    @classmethod
    def _from_spec(cls, d):
        raise NotImplementedError

    def _pickle_extra(self):
        """Settings a pickle of an unbuilt model keeps beside the spec (the file needs none of them)."""
        return {}

    # ---- building ----------------------------------------------------------------------------------

    def output_dim(self, in_features):
        return in_features

    def param_shapes(self, in_features):
        """[(name, shape)] of the parameter arrays, in their order in the model's flat buffer: the
        engine's list for the layer's kind (a matrix is in x out, a vector one value per output), the
        sizes in Python integers, so that absurd widths are measured before any reaches C."""
        out = self.output_dim(in_features)
        tensors = _core.layer_tensors(dict(self._describe(in_features), **{"in": 1, "out": 1}))
        return [(name, (in_features, out) if len(shape) == 2 else (out,) if shape[0] == 1 else tuple(shape))
                for name, shape, _, _ in tensors]  # a vector of its own length (int8's input_range) keeps it

    def n_params(self, in_features):
        return sum(math.prod(shape) for _, shape in self.param_shapes(in_features))

    def param_slots(self, name, shape):
        """Values of the model's dtype that parameter `name` takes in the flat buffer."""
        return math.prod(shape)

    def param_view_dtype(self, name):
        """The dtype a parameter is viewed as when it is not the model's own (int8 weights), else None."""
        return None

    def param_file_dtypes(self):
        """{name: safetensors dtype} of the parameters a model file stores in a dtype of their own."""
        return {}

    def n_slots(self, in_features):
        """Values of the model's dtype the layer's parameters take in the flat buffer."""
        return sum(self.param_slots(name, shape) for name, shape in self.param_shapes(in_features))

    def descriptor(self, in_features, offset):
        """The C engine's description of the layer (see fastnn._core.Net), its parameters laid out by the
        engine from `offset` in the flat buffer."""
        return _core.layer_place(self._describe(in_features), offset)

    def _describe(self, in_features):
        """The layer's settings for the engine (descriptor without the offsets)."""
        return {"kind": self.kind, "in": in_features, "out": self.output_dim(in_features),
                "trainable": self._trainable}

    def _bind(self, params, grads, offset, in_features):
        """Point the layer at its slices of the model's parameter and gradient buffers (a parameter of
        another dtype, an int8 weight, has its own view and no gradient)."""
        self._built = True
        self._views = {}
        self._offsets = {}
        for name, shape, at, _ in _core.layer_tensors(self.descriptor(in_features, offset)):
            other = self.param_view_dtype(name)
            if other is None:
                part = slice(at, at + math.prod(shape))
                self._views[name] = (params[part].reshape(shape), grads[part].reshape(shape))
            else:
                part = slice(at, at + self.param_slots(name, shape))
                self._views[name] = (params[part].view(other)[:math.prod(shape)].reshape(shape), None)
            self._offsets[name] = at

    def parameters(self):
        """[(name, writable view)] of the parameters once the model is built, in buffer order."""
        return [(name, p) for name, (p, _) in self._views.items()]

    def init_weights(self, rng):
        """Fill the parameters from `rng` (a numpy Generator)."""

    def memory_culprit(self, in_features):
        """(argument, words) that a MemoryError about this layer's parameters names."""
        return "layers", f"{type(self).__name__} layer {self.name!r}"

    # ---- display -----------------------------------------------------------------------------------

    def summary_label(self):
        """The layer's type as `summary` shows it."""
        return type(self).__name__

    def get_config(self):
        return {"name": self.name, "trainable": self._trainable}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer: y = act(x @ weight + bias).

    After the model is built, `weight` (in_features, units) and `bias` (units,) are writable views of
    the model's parameter buffer, and `weight_grad`/`bias_grad` of its gradient buffer (filled by
    `compute_gradients` and every training step).  `l2`/`l1` add `l2*sum(weight**2)` and
    `l1*sum(|weight|)` to the loss (never the bias).  `max_norm` (Keras's MaxNorm constraint on the
    kernel): after every update each unit's incoming weights, a column of `weight`, are scaled by
    min(norm, max_norm) / (1e-7 + norm), in C.
    """

    kind = "dense"
    _STRUCTURE = ("units", "activation", "alpha", "use_bias", "l1", "l2", "max_norm")

    def __init__(self, units, activation=None, *, l2=0.0, l1=0.0, use_bias=True, kernel_init="auto",
                 max_norm=None, trainable=True, name=None):
        super().__init__(trainable=trainable, name=name)
        self.units = integer(units, "units", low=1)
        self.max_norm = None if max_norm is None else real_number(max_norm, "max_norm", low=0.0, low_open=True)
        self.activation, self.alpha = activation_spec(activation)
        self.l2 = real_number(l2, "l2", low=0.0)
        self.l1 = real_number(l1, "l1", low=0.0)
        self.use_bias = bool(use_bias)
        if not isinstance(kernel_init, str):
            raise TypeError(f"kernel_init: expected a name, got {type(kernel_init).__name__}")
        if kernel_init != "auto" and kernel_init not in INITIALIZERS:
            raise ValueError(f"kernel_init: expected 'auto' or one of {', '.join(INITIALIZERS)}, got {kernel_init!r}")
        self.kernel_init = kernel_init
        self._precision = None     # "int8" or "bfloat16" in a quantized model (fastnn/quantization.py)
        self._input_scales = None  # int8: "per_row" or "calibrated"

    @property
    def precision(self):
        """None (the model's dtype), or "int8"/"bfloat16" in a quantized model."""
        return self._precision

    @property
    def input_scales(self):
        """int8: "per_row" (each input row quantized by its own range) or "calibrated"; else None."""
        return self._input_scales

    def _set_precision(self, precision, input_scales=None):
        """Make this (unbuilt) layer a low-precision one; fastnn/quantization.py and model files do."""
        if precision not in (None, "int8", "bfloat16"):
            raise ValueError(f"precision: expected 'int8' or 'bfloat16', got {precision!r}")
        if precision == "int8" and input_scales not in ("per_row", "calibrated"):
            raise ValueError(f"input_scales: expected 'per_row' or 'calibrated', got {input_scales!r}")
        self._precision = precision
        self._input_scales = input_scales if precision == "int8" else None

    # weight and bias are views of the model's parameter buffer; assigning copies into it
    @property
    def weight(self):
        return self._views.get("weight", (None, None))[0]

    @weight.setter
    def weight(self, value):
        self._assign(self.weight, value, "weight")

    @property
    def bias(self):
        return self._views.get("bias", (None, None))[0]

    @bias.setter
    def bias(self, value):
        if self.bias is None and self.use_bias is False:
            raise ValueError(f"{self.name}: bias: the layer has no bias (use_bias=False)")
        self._assign(self.bias, value, "bias")

    @property
    def weight_grad(self):
        return self._views.get("weight", (None, None))[1]

    @property
    def bias_grad(self):
        return self._views.get("bias", (None, None))[1]

    def _assign(self, dst, value, what):
        if dst is None:
            raise ValueError(f"{self.name}: {what}: the model is not built yet (give input_dim or call fit)")
        if self._precision:
            raise FastNNError(f"{self.name}: {what}: the layer is quantized ({self._precision}): its weights are "
                              "fixed; fastnn.dequantize(model) gives a float32 model to change")
        with self._changing(what):
            np.copyto(dst, replacement(value, dst.shape, f"{self.name}: {what}", dtype=dst.dtype))

    def spec(self):
        d = {"type": self.kind, "units": self.units, "activation": self.activation,
             "alpha": _alpha_or_none(self.activation, self.alpha), "use_bias": self.use_bias, "l1": self.l1,
             "l2": self.l2, "trainable": self.trainable, "name": self.name}
        if self.max_norm is not None:  # schema 1.1: written only when set, so that other files stay 1.0
            d["max_norm"] = self.max_norm
        if self._precision:
            d["precision"] = self._precision
        if self._input_scales:
            d["input_scales"] = self._input_scales
        return d

    @classmethod
    def _from_spec(cls, d):
        act = d["activation"]
        if act in _ALPHA_ACTIVATIONS:
            act = Activation(act, alpha=d["alpha"])
        layer = cls(d["units"], act, l1=d["l1"], l2=d["l2"], use_bias=d["use_bias"], max_norm=d.get("max_norm"),
                    name=d["name"])
        if d.get("kernel_init", "auto") != "auto":
            layer.kernel_init = d["kernel_init"]
        if d.get("precision"):
            layer._set_precision(d["precision"], d.get("input_scales") or "per_row")
        return layer

    def _pickle_extra(self):
        return {"kernel_init": self.kernel_init}

    def output_dim(self, in_features):
        return self.units

    def param_slots(self, name, shape):
        if name == "weight" and self._precision == "int8":
            return -(-math.prod(shape) // 4)  # int8 values, four to a float32
        return math.prod(shape)

    def param_view_dtype(self, name):
        return np.int8 if name == "weight" and self._precision == "int8" else None

    def param_file_dtypes(self):
        return {"weight": "BF16"} if self._precision == "bfloat16" else {}

    def _describe(self, in_features):
        d = dict(super()._describe(in_features), act=self.activation, act_alpha=self.alpha, use_bias=self.use_bias,
                 l1=self.l1, l2=self.l2, max_norm=self.max_norm)
        if self._precision:  # low precision: fixed weights (csrc/lowp.h); r_off 0 asks the engine for a range
            d.update(wkind=self._precision, trainable=False,
                     r_off=0 if self._input_scales == "calibrated" else None)
        return d

    def memory_culprit(self, in_features):
        return "units", f"Dense layer {self.name!r} with {self.units:,} units on {in_features:,} inputs"

    def initializer(self):
        """The name of the initializer "auto" resolves to: He for the ReLU family, Glorot otherwise."""
        if self.kernel_init != "auto":
            return self.kernel_init
        return "he_normal" if self.activation in _RELU_FAMILY else "glorot_uniform"

    def init_weights(self, rng):
        """Fill `weight` from `rng` (a numpy Generator) and zero `bias`.  A quantized layer's weights
        come from the model it quantizes (or its file): they stay zero here."""
        if self._precision:
            return
        fan_in, fan_out = self.weight.shape
        self.weight[...] = INITIALIZERS[self.initializer()](rng, fan_in, fan_out)
        if self.bias is not None:
            self.bias[...] = 0

    def summary_label(self):
        tags = [self.activation] if self.activation != "linear" else []
        tags += [self._precision] if self._precision else []
        return super().summary_label() + (f"({', '.join(tags)})" if tags else "")

    def get_config(self):
        cfg = {"units": self.units, "activation": self.activation}
        if self.activation in _ALPHA_ACTIVATIONS:
            cfg["alpha"] = self.alpha
        cfg.update(l2=self.l2, l1=self.l1, use_bias=self.use_bias, kernel_init=self.kernel_init)
        if self.max_norm is not None:
            cfg["max_norm"] = self.max_norm
        cfg.update(super().get_config())
        return cfg


_UNSET = object()


class Dropout(Layer):
    """Inverted dropout: in training, each unit is zeroed with probability `p` and the kept ones are
    scaled by 1/(1-p); identity in `predict`/`evaluate`.  `Dropout(keep_prob=k)` is `Dropout(p=1-k)`.
    The masks come from Philox keyed by (model seed, training step, layer index, element), so they
    are the same under any thread count and differ from step to step."""

    kind = "dropout"
    _STRUCTURE = ("p",)

    def __init__(self, p=_UNSET, *, keep_prob=None, name=None):
        super().__init__(name=name)
        if p is None:
            p = _UNSET
        if keep_prob is not None:
            if p is not _UNSET:
                raise ValueError("Dropout: give either p (drop probability) or keep_prob, not both")
            keep_prob = real_number(keep_prob, "keep_prob", low=0.0, high=1.0, low_open=True)
            p = 1.0 - keep_prob
        elif p is _UNSET:
            p = 0.5
        self.p = real_number(p, "p", low=0.0, high=1.0, high_open=True)

    @property
    def keep_prob(self):
        return 1.0 - self.p

    def spec(self):
        return {"type": self.kind, "p": self.p, "name": self.name}

    @classmethod
    def _from_spec(cls, d):
        return cls(d["p"], name=d["name"])

    def _describe(self, in_features):
        return dict(super()._describe(in_features), p=self.p)

    def summary_label(self):
        return super().summary_label() + f"(p={self.p:g})"

    def get_config(self):
        return {"p": self.p, "name": self.name}


class Activation(Layer):
    """An activation as a layer: `Activation("leaky_relu", alpha=0.2)`."""

    kind = "activation"
    _STRUCTURE = ("activation", "alpha")

    def __init__(self, activation, *, name=None, **params):
        super().__init__(name=name)
        self.activation, self.alpha = activation_spec(activation, params)

    def spec(self):
        return {"type": self.kind, "activation": self.activation,
                "alpha": _alpha_or_none(self.activation, self.alpha), "name": self.name}

    @classmethod
    def _from_spec(cls, d):
        params = {"alpha": d["alpha"]} if d["activation"] in _ALPHA_ACTIVATIONS else {}
        return cls(d["activation"], name=d["name"], **params)

    def _describe(self, in_features):
        return dict(super()._describe(in_features), act=self.activation, act_alpha=self.alpha)

    def summary_label(self):
        return super().summary_label() + (f"({self.activation})" if self.activation != "linear" else "")

    def get_config(self):
        cfg = {"activation": self.activation}
        if self.activation in _ALPHA_ACTIVATIONS:
            cfg["alpha"] = self.alpha
        cfg["name"] = self.name
        return cfg


class _Norm(Layer):
    """What BatchNorm and LayerNorm share: `gamma` and `beta` (one per feature, trainable) as views of
    the model's parameters, `gamma_grad`/`beta_grad` of its gradients, and `epsilon`."""

    def __init__(self, epsilon, *, trainable=True, name=None):
        super().__init__(trainable=trainable, name=name)
        self.epsilon = real_number(epsilon, "epsilon", low=0.0, low_open=True)

    def _view(self, name, grad=False):
        return self._views.get(name, (None, None))[grad]

    gamma = property(lambda self: self._view("gamma"), lambda self, v: self._assign("gamma", v))
    beta = property(lambda self: self._view("beta"), lambda self, v: self._assign("beta", v))
    gamma_grad = property(lambda self: self._view("gamma", True))
    beta_grad = property(lambda self: self._view("beta", True))

    def _assign(self, what, value):
        dst = self._view(what)
        if dst is None:
            raise ValueError(f"{self.name}: {what}: the model is not built yet (give input_dim or call fit)")
        with self._changing(what):  # claimed and checked in the dtype, as Dense's weight and bias
            np.copyto(dst, replacement(value, dst.shape, f"{self.name}: {what}", dtype=dst.dtype))

    def _describe(self, in_features):
        return dict(super()._describe(in_features), eps=self.epsilon)

    def init_weights(self, rng):
        """gamma = 1, beta = 0 (and a BatchNorm's running mean 0, variance 1), as Keras starts them."""
        for name, a in self.parameters():
            a[...] = 1.0 if name in ("gamma", "moving_variance") else 0.0

    def memory_culprit(self, in_features):
        return "input_dim", f"{type(self).__name__} layer {self.name!r} on {in_features:,} features"


class BatchNorm(_Norm):
    """Batch normalization over the features (Keras's BatchNormalization on 2-D input):
    y = gamma * (x - mean) / sqrt(var + epsilon) + beta.

    In training the mean and (biased) variance are the batch's, and after each update
    `moving_mean`/`moving_variance` move towards them: moving = momentum * moving + (1 - momentum) *
    batch.  `predict`, `evaluate` and the C API use the moving statistics (a BatchNorm directly after a
    linear Dense runs in that Dense's output pass).  Training needs at least 2 rows per batch.

    Freezing (`trainable = False`) freezes the statistics too, as in Keras: a frozen BatchNorm runs in
    inference mode in training as well (moving statistics, no update of them or of gamma and beta).
    `moving_mean` and `moving_variance` are parameters of the model (saved, in `get_weights`, counted
    by `count_params`) that no optimizer updates; they are kept in the model's dtype.
    """

    kind = "batch_norm"
    _STRUCTURE = ("momentum", "epsilon")

    def __init__(self, momentum=0.99, epsilon=1e-3, *, trainable=True, name=None):
        super().__init__(epsilon, trainable=trainable, name=name)
        self.momentum = real_number(momentum, "momentum", low=0.0, high=1.0)

    moving_mean = property(lambda self: self._view("moving_mean"), lambda self, v: self._assign("moving_mean", v))
    moving_variance = property(lambda self: self._view("moving_variance"),
                               lambda self, v: self._assign("moving_variance", v))

    def spec(self):
        return {"type": self.kind, "momentum": self.momentum, "epsilon": self.epsilon, "trainable": self.trainable,
                "name": self.name}

    @classmethod
    def _from_spec(cls, d):
        return cls(d.get("momentum", 0.99), d.get("epsilon", 1e-3), name=d["name"])

    def _describe(self, in_features):
        return dict(super()._describe(in_features), momentum=self.momentum)

    def get_config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon, "trainable": self.trainable, "name": self.name}


class LayerNorm(_Norm):
    """Layer normalization over the features of each row (Keras's LayerNormalization(axis=-1)):
    y = gamma * (x - mean_row) / sqrt(var_row + epsilon) + beta, the same in training and inference."""

    kind = "layer_norm"
    _STRUCTURE = ("epsilon",)

    def __init__(self, epsilon=1e-5, *, trainable=True, name=None):
        super().__init__(epsilon, trainable=trainable, name=name)

    def spec(self):
        return {"type": self.kind, "epsilon": self.epsilon, "trainable": self.trainable, "name": self.name}

    @classmethod
    def _from_spec(cls, d):
        return cls(d.get("epsilon", 1e-5), name=d["name"])

    def get_config(self):
        return {"epsilon": self.epsilon, "trainable": self.trainable, "name": self.name}
