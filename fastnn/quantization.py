"""Low-precision copies of a model for inference: `fastnn.quantize` and `fastnn.dequantize`.

- `quantize(model, dtype="int8", *, calibration=None)` -> a new Sequential, inference only, whose
  Dense layers hold int8 weights (per output column symmetric, 7 bits) with a float32 scale per
  column, or bfloat16 weights (dtype="bfloat16").  An int8 layer quantizes each input row to 7-bit
  unsigned values by the row's own range at run time; with `calibration` rows, each layer's input range
  is measured once on them (through the float model) and fixed.  The engine then multiplies the inputs
  by the weights with exact int32 sums (the same bits on every instruction set and thread count; the
  7-bit ranges are what makes AVX2's 16-bit pair sums exact: csrc/lowp.h) and applies the rescale,
  bias and activation in one output pass; bfloat16 layers multiply bfloat16 inputs and weights with
  float32 sums.  Everything else (biases, activations, the loss's link) stays float32.
- `dequantize(model)` -> a float32 Sequential with the weights the quantized model multiplies by
  (int8 times its scale, or the bfloat16 values), trainable again.

Both keep the layers' names and settings, the loss and metrics, the seed and the metadata; neither
changes the model it is given.  The quantized model saves, loads and pickles like any other (a
schema-1.1 model file, docs/FORMAT.md) and the C API runs its file.
"""
import numpy as np

from . import _core
from ._errors import NotFittedError
from ._validate import all_finite, cast_finite
from .layers import Dense, Layer
from .models import Sequential

__all__ = ["quantize", "dequantize", "DTYPES"]

DTYPES = ("int8", "bfloat16")


def _copy_layers(model, precision, input_scales):
    """New layers with the model's settings (names, activations, ...), Dense ones of `precision`."""
    layers = []
    for layer in model.layers:
        new = Layer.from_spec(layer.spec())
        if isinstance(new, Dense):
            new._set_precision(precision, input_scales if precision == "int8" else None)
        new.trainable = precision is None  # quantized weights are fixed; dequantized ones train again
        layers.append(new)
    return layers


def _copy_parameters(params, new):
    """The parameters (float32, by name) of a layer that stays as it is (BatchNorm, LayerNorm)."""
    for name, b in new.parameters():
        np.copyto(b, params[name])


def _like(model, layers, dtype):
    """A Sequential of `layers`, built for the model's input width (zeros), its metadata copied."""
    new = Sequential(layers, dtype=dtype, seed=model.seed)
    new.build(model.input_dim, initialize=False)
    new.metadata = dict(model.metadata)
    return new


def _compile_like(new, model):
    if model.loss is not None:
        new.compile(model.loss, metrics=model._pickle_settings()["metrics"], huber_delta=model.huber_delta)


def _check_model(model, what):
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a fastnn.Sequential, got {type(model).__name__}")
    if not model.built:
        raise NotFittedError(f"{what}: the model is not built yet; give input_dim or fit it first")


def quantize(model, dtype="int8", *, calibration=None):
    """An inference-only copy of `model` with int8 or bfloat16 weights (see the module docstring).
    calibration: rows like the model's inputs (int8 only) whose per-layer input ranges fix the
    activation scales, instead of each row's own range at run time."""
    _check_model(model, "quantize")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected 'int8' or 'bfloat16', got {dtype!r}")
    if model.quantized:
        raise ValueError(f"model: already quantized ({model.precision}); quantize the float model, or "
                         "fastnn.dequantize(model) first")
    if calibration is not None and dtype != "int8":
        raise ValueError("calibration: fixes int8 activation scales; bfloat16 has none")
    params = []  # per layer, its parameters in float32 (the copy's dtype), each checked finite there
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense) and dtype == "int8" and layer.weight.shape[0] > _core.INT8_MAX_INPUTS:
            raise ValueError(f"model: layer {i} ({layer.name!r}) has {layer.weight.shape[0]:,} inputs; int8 layers "
                             f"take at most {_core.INT8_MAX_INPUTS:,} (their int32 sums must not overflow)")
        params.append({})
        for name, a in layer.parameters():
            what = f"model: layer {i} ({layer.name!r}) {name}"
            if not all_finite(a):
                raise ValueError(f"{what} contains NaN or Inf")
            params[i][name] = cast_finite(a, np.float32, what)
    ranges = None
    if calibration is not None:
        X = model._prepare_x(calibration, "calibration")
        ranges = np.zeros(2 * len(model.layers), dtype=np.float32)
        _core.net_input_ranges(model._net, X, model._inference_batch(None, X.shape[0]), ranges)
    new = _like(model, _copy_layers(model, dtype, "calibrated" if ranges is not None else "per_row"), np.float32)
    for i, (old, layer) in enumerate(zip(model.layers, new.layers)):
        if not isinstance(layer, Dense):  # a normalization layer's parameters, as they are
            _copy_parameters(params[i], layer)
            continue
        w = np.ascontiguousarray(params[i]["weight"])
        views = dict(layer.parameters())
        if dtype == "int8":
            q, scale = _core.quantize_weights(w)
            np.copyto(views["weight"], q)
            np.copyto(views["weight_scale"], scale)
            if ranges is not None:
                np.copyto(views["input_range"], ranges[2 * i:2 * i + 2])
        else:
            np.copyto(views["weight"], _core.bf16_round(w.reshape(-1)).reshape(w.shape))
        if old.bias is not None:
            np.copyto(views["bias"], params[i]["bias"])
    new._lowp_weights_set()
    _compile_like(new, model)
    return new


def dequantize(model):
    """A float32, trainable copy of a quantized model: the weights it multiplies by, as float32."""
    _check_model(model, "dequantize")
    if not model.quantized:
        raise ValueError(f"model: not quantized (precision {model.precision}); nothing to dequantize")
    new = _like(model, _copy_layers(model, None, None), np.float32)
    for old, layer in zip(model.layers, new.layers):
        if not isinstance(layer, Dense):
            _copy_parameters(dict(old.parameters()), layer)  # float32 already
            continue
        views = dict(old.parameters())
        if old.precision == "int8":
            w = _core.dequantize_weights(views["weight"], views["weight_scale"])
        else:
            w = views["weight"]
        np.copyto(layer.weight, w)
        if layer.bias is not None:
            np.copyto(layer.bias, views["bias"])
    _compile_like(new, model)
    return new
