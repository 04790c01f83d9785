"""ONNX export and import against independent oracles: ONNX Runtime runs every exported graph and
every imported file, PyTorch's two exporters and skl2onnx write the files read back, onnx.checker
checks what fastnn writes; hostile files (garbage, truncation, cycles, lying shapes, a 10 GB claim,
external data leading out of the model's folder) each give a ModelFormatError and read nothing
outside the folder.  Each group skips without its optional package."""
import contextlib
import io
import json
import os
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

import fastnn as fnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACTIVATIONS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "gelu", "silu"]
LOSSES = ["cross_entropy", "binary_cross_entropy", "mse", "huber", None]


def _env():
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def python(code, *args, cwd=None):
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=300)


# ---- without onnx --------------------------------------------------------------------------------

def test_import_fastnn_does_not_import_onnx():
    r = python("import sys, fastnn as fnn\n"
               "m = fnn.Sequential([fnn.Dense(3)], input_dim=2)\n"
               "assert callable(fnn.from_onnx) and callable(m.export_onnx)\n"
               "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('onnx', 'onnxruntime', 'google'))\n"
               "assert not bad, bad\n"
               "print('ok')")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_without_onnx_the_error_says_how_to_install_it(tmp_path):
    r = python("import sys\n"
               "sys.modules['onnx'] = None   # what Python does for a package that is not installed\n"
               "import fastnn as fnn\n"
               "m = fnn.Sequential([fnn.Dense(3)], input_dim=2)\n"
               "for call in (lambda: m.export_onnx(sys.argv[1]), lambda: fnn.from_onnx(b'x')):\n"
               "    try:\n"
               "        call()\n"
               "    except ImportError as e:\n"
               "        print(e)\n", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and all('pip install "fastnn[onnx]"' in line for line in lines), r.stdout
    assert not (tmp_path / "m.onnx").exists()


# ---- export, checked by onnx.checker and ONNX Runtime ------------------------------------------------

onnx = ort = None


@pytest.fixture(scope="module")
def rt():
    """onnx and onnxruntime, or skip."""
    global onnx, ort
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    return onnx, ort


def run_ort(path_or_proto, x, output=None):
    data = path_or_proto.SerializeToString() if hasattr(path_or_proto, "SerializeToString") else str(path_or_proto)
    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return s.run([output] if output else None, {name: x})


def model_for(act, loss, dtype):
    """Two Dense layers with `act` (alpha 0.3 where it takes one), a Dropout between them."""
    spec = lambda: fnn.Activation(act, alpha=0.3) if act in ("leaky_relu", "elu") else act
    m = fnn.Sequential([fnn.Dense(9, spec()), fnn.Dropout(0.3), fnn.Dense(4, spec())], input_dim=6, dtype=dtype,
                       seed=0)
    if loss:
        m.compile(loss, huber_delta=0.7)
    return m


def inputs(rng, rows, cols, dtype):
    """Rows reaching into both tails of every activation."""
    return (rng.normal(size=(rows, cols)) * 3).astype(dtype)


# float64 graphs compute gelu's Erf in float32 (ONNX Runtime has no double Erf); the rest is exact
# up to the order of the GEMM's sums
def tolerance(dtype, act):
    if dtype == "float32":
        return 1e-5
    return 1e-6 if act == "gelu" else 1e-12


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_export_runs_in_onnxruntime_like_predict_and_round_trips(rt, act, loss, dtype, tmp_path, rng):
    m = model_for(act, loss, dtype)
    path = tmp_path / "m.onnx"
    m.export_onnx(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    x = inputs(rng, 64, 6, dtype)
    want = m.predict(x)
    (got,) = run_ort(path, x)
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(dtype, act))
    if loss in ("cross_entropy", "binary_cross_entropy"):
        assert np.all((got >= 0) & (got <= 1))   # probabilities, as predict gives them

    back = fnn.from_onnx(path)
    assert back.dtype == m.dtype and back.input_dim == 6 and back.loss == loss
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), m.get_weights()))
    assert [w.dtype for w in back.get_weights()] == [w.dtype for w in m.get_weights()]
    assert np.array_equal(back.predict(x), want)
    if loss == "huber":
        assert back.huber_delta == 0.7


def test_exported_graph_shape(rt, tmp_path):
    m = fnn.Sequential([fnn.Dense(5, "relu"), fnn.Dropout(0.5), fnn.Dense(3, use_bias=False)], input_dim=4, seed=0)
    m.compile("cross_entropy")
    m.export_onnx(tmp_path / "m.onnx")
    p = onnx.load(str(tmp_path / "m.onnx"))
    assert [n.op_type for n in p.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]   # no Dropout
    for n in p.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Gemm":
            assert attrs.get("transB", 0) == 0 and attrs.get("transA", 0) == 0
        if n.op_type == "Softmax":
            assert attrs["axis"] == -1
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in p.graph.initializer}
    assert np.array_equal(inits["layers.0.weight"], m.layers[0].weight)   # (in, out), as fastnn holds it
    assert np.array_equal(inits["layers.0.bias"], m.layers[0].bias)
    assert "layers.2.bias" not in inits and len(p.graph.node[2].input) == 2
    (i,), (o,) = p.graph.input, p.graph.output
    assert (i.name, o.name) == ("input", "output")
    for v, width in ((i, 4), (o, 3)):
        dims = v.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and not dims[0].HasField("dim_value") and dims[1].dim_value == width
    assert p.opset_import[0].version == 17 and p.producer_name == "fastnn"
    x = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)   # any batch size
    np.testing.assert_allclose(run_ort(p, x)[0], m.predict(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("opset", [13, 17, 19, 20, 21])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_is_an_operator_only_where_the_opset_has_one(rt, opset, dtype, tmp_path, rng):
    m = fnn.Sequential([fnn.Dense(8, "gelu"), fnn.Dense(8, "silu"), fnn.Dense(3, "elu"), fnn.Dense(2, "leaky_relu")],
                       input_dim=5, dtype=dtype, seed=1)
    m.export_onnx(tmp_path / "m.onnx", opset=opset)
    p = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(p, full_check=True)
    ops = [n.op_type for n in p.graph.node]
    assert p.opset_import[0].version == opset
    assert ("Gelu" in ops) == (opset >= 20 and dtype == "float32")
    assert ("Erf" in ops) == (opset < 20 or dtype == "float64")
    assert ("LeakyRelu" in ops and "Elu" in ops) == (dtype == "float32")
    x = inputs(rng, 50, 5, dtype)
    np.testing.assert_allclose(run_ort(p, x)[0], m.predict(x), rtol=0, atol=tolerance(dtype, "gelu"))
    back = fnn.from_onnx(p)
    assert [(l.activation, l.alpha) for l in back.layers] == [(l.activation, l.alpha) for l in m.layers]
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), m.get_weights()))


@pytest.mark.parametrize("layers, loss", [
    # a final softmax/sigmoid fused into its cross-entropy is the link itself ...
    ([fnn.Dense(4), fnn.Activation("softmax")], "cross_entropy"),
    ([fnn.Dense(4, "relu"), fnn.Activation("softmax")], "cross_entropy"),
    ([fnn.Activation("tanh"), fnn.Dense(4, "sigmoid")], "binary_cross_entropy"),
    # ... but not when a Dropout or another activation comes after it: then predict applies it twice
    ([fnn.Dense(4, "softmax"), fnn.Dropout(0.3)], "cross_entropy"),
    ([fnn.Dense(4), fnn.Activation("softmax"), fnn.Activation("linear")], "cross_entropy"),
    ([fnn.Dense(4, "sigmoid"), fnn.Dropout(0.2)], "binary_cross_entropy"),
    ([fnn.Dense(4, "sigmoid")], "cross_entropy"),
    ([fnn.Dense(4, "softmax")], "binary_cross_entropy"),
    ([fnn.Dense(4, use_bias=False), fnn.Activation("leaky_relu", alpha=-0.5)], "mae"),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_link_exactly_as_predict_applies_it(rt, layers, loss, dtype, rng):
    from fastnn.onnx import to_proto
    m = fnn.Sequential(layers, input_dim=5, dtype=dtype, seed=3)
    m.compile(loss)
    p = to_proto(m)
    onnx.checker.check_model(p, full_check=True)
    x = inputs(rng, 40, 5, dtype)
    want = m.predict(x)
    np.testing.assert_allclose(run_ort(p, x)[0], want, rtol=0, atol=tolerance(dtype, "relu"))
    back = fnn.from_onnx(p.SerializeToString())
    assert back.loss == loss and np.array_equal(back.predict(x), want)


def test_metadata_travels_in_metadata_props(rt, tmp_path):
    m = model_for("relu", "cross_entropy", "float32")
    m.metadata = {"classes": '["cat","dog","eel","fox"]', "features": ["a", "b"]}
    m.export_onnx(tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert props["classes"] == '["cat","dog","eel","fox"]' and json.loads(props["features"]) == ["a", "b"]
    assert props["fastnn.loss"] == "cross_entropy" and props["fastnn.version"] == fnn.__version__
    back = fnn.from_onnx(tmp_path / "m.onnx")
    assert back.metadata == {"classes": '["cat","dog","eel","fox"]', "features": '["a","b"]'}


def test_export_argument_errors(rt, tmp_path):
    m = fnn.Sequential([fnn.Dense(3)])
    with pytest.raises(fnn.NotFittedError, match="export_onnx"):
        m.export_onnx(tmp_path / "m.onnx")
    m.build(4)
    for bad in (12, 10**6):
        with pytest.raises(ValueError, match="opset"):
            m.export_onnx(tmp_path / "m.onnx", opset=bad)
    with pytest.raises(TypeError, match="opset"):
        m.export_onnx(tmp_path / "m.onnx", opset="17")
    with pytest.raises(TypeError, match="path"):
        m.export_onnx(17)
    with pytest.raises(OSError):
        m.export_onnx(tmp_path / "no" / "such" / "dir.onnx")
    assert os.listdir(tmp_path) == []   # nothing half-written
    with pytest.raises(TypeError, match="source"):
        fnn.from_onnx(3.5)


# Every place a normalization layer can stand: above a linear Dense (the engine folds a BatchNorm and
# the Activation above it into the Dense's output pass), above an activated Dense, at the input, last
# (under the loss's link), and around a Dropout.
NORM_PLACEMENTS = {
    "dense_norm_act": lambda N: [fnn.Dense(7), N(), fnn.Activation("relu"), fnn.Dense(4)],
    "act_dense_norm": lambda N: [fnn.Dense(7, "tanh"), N(), fnn.Dense(4, "relu")],
    "input": lambda N: [N(), fnn.Dense(7, "elu"), fnn.Dense(4)],
    "last": lambda N: [fnn.Dense(7, "relu"), fnn.Dense(4), N()],
    "dropout": lambda N: [fnn.Dense(7), N(), fnn.Dropout(0.2), fnn.Dense(4, "silu"), N()],
}


def norm_model(placement, norm, dtype, loss, rng, eps=None):
    """A model with `norm` layers at `placement`, their parameters (running statistics included) far
    from their initial 1 and 0 so that each one shows in the output."""
    kw = {} if eps is None else {"epsilon": eps}
    m = fnn.Sequential(NORM_PLACEMENTS[placement](lambda: norm(**kw)), input_dim=6, dtype=dtype, seed=1)
    for layer in m.layers:
        for name, a in layer.parameters():
            if name in ("gamma", "moving_variance"):
                a[...] = rng.uniform(0.3, 3.0, size=a.shape)
            elif name in ("beta", "moving_mean"):
                a[...] = rng.normal(size=a.shape)
    if loss:
        m.compile(loss)
    return m


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("placement", sorted(NORM_PLACEMENTS))
@pytest.mark.parametrize("norm", [fnn.BatchNorm, fnn.LayerNorm])
def test_normalization_layers_run_in_onnxruntime_like_predict_and_round_trip(rt, norm, placement, loss, dtype,
                                                                            tmp_path, rng):
    # ONNX's epsilon is a float32 attribute: float64 models take one that float32 holds exactly (the
    # float32 models keep their default, which both sides round to the same float32)
    m = norm_model(placement, norm, dtype, loss, rng, eps=2.0**-10 if dtype == "float64" else None)
    path = tmp_path / "m.onnx"
    m.export_onnx(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    op = {fnn.BatchNorm: "BatchNormalization", fnn.LayerNorm: "LayerNormalization"}[norm]
    assert sum(n.op_type == op for n in proto.graph.node) == sum(isinstance(x, norm) for x in m.layers)
    x = inputs(rng, 50, 6, dtype)
    want = m.predict(x)
    (got,) = run_ort(path, x)
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    # a few roundings apart (the engine folds a BatchNorm into one scale and shift; ONNX Runtime sums
    # LayerNorm's moments its own way): float32 outputs of size ~10 within 1e-5, float64 within 1e-12
    if dtype == "float32":
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    back = fnn.from_onnx(path)
    assert [type(x).__name__ for x in back.layers] == [type(x).__name__ for x in m.layers if x.kind != "dropout"]
    assert [getattr(x, "activation", None) for x in back.layers] == \
        [getattr(x, "activation", None) for x in m.layers if x.kind != "dropout"]
    eps = lambda model: [x.epsilon for x in model.layers if isinstance(x, norm)]
    assert eps(back) == eps(m)
    assert back.dtype == m.dtype and back.loss == loss
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), m.get_weights()))
    assert np.array_equal(back.predict(x), want)


@pytest.mark.parametrize("opset", [13, 16, 17, 18])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_norm_before_opset_17_is_its_formula(rt, opset, dtype, tmp_path, rng):
    """LayerNormalization is an operator from opset 17; earlier opsets get ReduceMean/Sub/Mul/Sqrt/Div,
    which ONNX Runtime runs like predict."""
    m = norm_model("dense_norm_act", fnn.LayerNorm, dtype, "mse", rng, eps=2.0**-7)
    from fastnn.onnx import to_proto
    proto = onnx.load_from_string(to_proto(m, opset=opset).SerializeToString())
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert ("LayerNormalization" in ops) == (opset >= 17)
    assert ("ReduceMean" in ops) == (opset < 17)
    x = inputs(rng, 40, 6, dtype)
    np.testing.assert_allclose(run_ort(proto, x)[0], m.predict(x), rtol=0, atol=1e-5 if dtype == "float32" else 1e-12)
    if opset < 17:   # the formula is not read back: the import names the operator it stops at
        with pytest.raises(fnn.ModelFormatError, match="Div node|Add node|Mul node"):
            fnn.from_onnx(proto)


def norm_graph(op, params, n_in=3, attrs=None, dense=None):
    """x -> [Gemm(x, W) ->] op(., *params) -> y, as an ONNX model; params: name -> array."""
    h = onnx.helper
    nodes, inits, x = [], [], "x"
    if dense is not None:
        inits.append(onnx.numpy_helper.from_array(dense, "W"))
        nodes.append(h.make_node("Gemm", ["x", "W"], ["h"], name="fc"))
        x = "h"
    inits += [onnx.numpy_helper.from_array(a, k) for k, a in params.items()]
    nodes.append(h.make_node(op, [x, *params], ["y"], name="norm", **(attrs or {})))
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", n_in])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize("case, match", [
    ("bn_2d_gamma", r"BatchNormalization node 'norm': its gamma 'g' has shape \(1, 3\)"),
    ("bn_lengths", r"BatchNormalization node 'norm': its parameters have different lengths"),
    ("bn_inputs", r"BatchNormalization node 'norm' should have 5 inputs"),
    ("bn_width", r"BatchNormalization node 'norm': it normalizes 3 features but the layer before gives 4"),
    ("bn_nan", r"BatchNormalization node 'norm': its parameters contain NaN or Inf"),
    ("bn_double", r"the weights have element types \['float32', 'float64'\]"),
    ("bn_eps", r"BatchNormalization node 'norm': its epsilon 0.0 is not positive"),
    ("ln_axis", r"LayerNormalization node 'norm': fastnn reads LayerNormalization over the features"),
    ("ln_no_bias", r"LayerNormalization node 'norm' has no bias"),
])
def test_malformed_normalization_nodes_are_refused_by_name(rt, case, match):
    one = lambda n=3, dtype=np.float32: np.ones(n, dtype)
    bn = lambda **kw: {"g": kw.get("g", one()), "b": one(), "m": one(), "v": kw.get("v", one())}
    w = np.ones((3, 4), np.float32)
    model = {
        "bn_2d_gamma": lambda: norm_graph("BatchNormalization", bn(g=np.ones((1, 3), np.float32))),
        "bn_lengths": lambda: norm_graph("BatchNormalization", bn(v=one(4))),
        "bn_inputs": lambda: norm_graph("BatchNormalization", {"g": one(), "b": one()}),
        "bn_width": lambda: norm_graph("BatchNormalization", bn(), dense=w),
        "bn_nan": lambda: norm_graph("BatchNormalization", bn(v=np.array([1, np.nan, 1], np.float32))),
        "bn_double": lambda: norm_graph("BatchNormalization", bn(g=one(dtype=np.float64)), dense=w[:, :3]),
        "bn_eps": lambda: norm_graph("BatchNormalization", bn(), attrs={"epsilon": 0.0}),
        "ln_axis": lambda: norm_graph("LayerNormalization", {"g": one(), "b": one()}, attrs={"axis": 0}),
        "ln_no_bias": lambda: norm_graph("LayerNormalization", {"g": one()}),
    }[case]()
    with pytest.raises(fnn.ModelFormatError, match=match):
        fnn.from_onnx(model)


def test_a_hand_written_layer_norm_graph_comes_in(rt, rng):
    """A LayerNormalization that fastnn did not write (a first layer, a float32 epsilon of its own)."""
    g = rng.uniform(0.5, 2, 3).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    model = norm_graph("LayerNormalization", {"g": g, "b": b}, attrs={"epsilon": 0.01})
    m = fnn.from_onnx(model)
    assert isinstance(m.layers[0], fnn.LayerNorm) and m.layers[0].epsilon == 0.01 and m.input_dim == 3
    assert np.array_equal(m.layers[0].gamma, g) and np.array_equal(m.layers[0].beta, b)
    x = inputs(rng, 30, 3, "float32")
    np.testing.assert_allclose(m.predict(x), run_ort(model, x)[0], rtol=0, atol=1e-5)


def test_a_batch_norm_in_training_mode_is_refused_by_name(rt):
    h = onnx.helper
    p = lambda name: onnx.numpy_helper.from_array(np.ones(3, np.float32), name)
    node = h.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y", "rm", "rv"], name="bn",
                       training_mode=1)
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3])],
                     [p("g"), p("b"), p("m"), p("v")])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 15)])
    with pytest.raises(fnn.ModelFormatError, match="BatchNormalization node 'bn' is in training mode"):
        fnn.from_onnx(model)


# ---- quantized models: int8 and bfloat16 layers in standard operators --------------------------------

# (input width, widths of the Dense layers): a wide first layer, a one-unit layer, more than one panel,
# MNIST's width
QUANT_SHAPES = [(30, (20, 17, 3)), (5, (1, 4)), (70, (33, 16, 9)), (784, (64, 10))]


def quant_inputs(rng, rows, cols):
    """Rows of every kind the quantization treats apart: mixed signs, all positive (lo = 0), all
    negative (hi = 0), all zero (an empty range), one value far out (predict refuses NaN and Inf)."""
    x = inputs(rng, rows, cols, np.float32)
    x[1] = np.abs(x[1])
    x[2] = -np.abs(x[2])
    x[3] = 0
    x[4, 0] = 500
    return x


def quantized_pair(rng, n_in, widths, act, dtype, scales, loss):
    layers = [fnn.Dense(u, fnn.Activation(act, alpha=0.3) if act in ("leaky_relu", "elu") else act)
              for u in widths[:-1]] + [fnn.Dense(widths[-1])]
    m = fnn.Sequential(layers, input_dim=n_in, seed=3)
    if loss:
        m.compile(loss)
    x = quant_inputs(rng, 40, n_in)
    calibration = inputs(rng, 30, n_in, np.float32) if scales == "calibrated" else None
    return fnn.quantize(m, dtype, calibration=calibration), x


def export_and_run(q, x, tmp_path, opset=17):
    path = tmp_path / "q.onnx"
    q.export_onnx(path, opset=opset)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    (got,) = run_ort(path, x)
    return got, path


@pytest.mark.parametrize("opset", [13, 17, 18])   # ReduceMin/ReduceMax take their axes as an input from 18
@pytest.mark.parametrize("loss", [None, "cross_entropy"])
@pytest.mark.parametrize("act", ["linear", "relu", "leaky_relu"])
@pytest.mark.parametrize("scales", ["per_row", "calibrated"])
@pytest.mark.parametrize("shape", QUANT_SHAPES)
def test_int8_export_gives_predicts_bits_in_onnxruntime(rt, shape, scales, act, loss, opset, tmp_path, rng):
    """The graph quantizes each row (or by the calibrated range), multiplies with MatMulInteger's
    exact int32 sums and rescales with the engine's float operations in the engine's order, so with
    activations that are exact in both (linear, relu, leaky_relu) ONNX Runtime gives predict's bits;
    a softmax link adds only its own rounding."""
    q, x = quantized_pair(rng, *shape, act, "int8", scales, loss)
    got, path = export_and_run(q, x, tmp_path, opset)
    proto = onnx.load(str(path))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("MatMulInteger") == len(shape[1]) and "Gemm" not in ops
    assert ("ReduceMax" in ops) == (scales == "per_row")
    assert sum(t.data_type == onnx.TensorProto.INT8 for t in proto.graph.initializer) == len(shape[1])
    want = q.predict(x)
    if loss is None:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scales", ["per_row", "calibrated"])
def test_int8_export_gives_predicts_bits_at_every_simd_level_and_thread_count(rt, simd, threads, scales, tmp_path,
                                                                              rng):
    """The engine's int8 bits are the same on every path (csrc/lowp.h), so the one graph matches each."""
    q, x = quantized_pair(rng, 70, (33, 16, 9), "relu", "int8", scales, None)
    got, _ = export_and_run(q, x, tmp_path)
    np.testing.assert_array_equal(got, q.predict(x))


def test_int8_export_stores_the_int8_weights_and_scales(rt, tmp_path, rng):
    q, x = quantized_pair(rng, 30, (20, 3), "relu", "int8", "per_row", None)
    _, path = export_and_run(q, x, tmp_path)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    for i, layer in enumerate(q.layers):
        p = dict(layer.parameters())
        wq = inits[f"layers.{i}.weight_q"]
        assert wq.dtype == np.int8 and np.array_equal(wq, p["weight"])
        assert np.array_equal(inits[f"layers.{i}.weight_scale"], p["weight_scale"])


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "elu", "gelu", "silu", "softmax"])
@pytest.mark.parametrize("scales", ["per_row", "calibrated"])
def test_int8_export_with_a_smooth_final_activation(rt, act, scales, tmp_path, rng):
    """The int8 layers give the same bits; the last layer's smooth activation is ONNX Runtime's own
    function, as in the float export (1e-5)."""
    m = fnn.Sequential([fnn.Dense(12, "relu"), fnn.Dense(5, fnn.Activation(act, alpha=0.3) if act == "elu" else act)],
                       input_dim=8, seed=2)
    x = quant_inputs(rng, 40, 8)
    q = fnn.quantize(m, "int8", calibration=inputs(rng, 30, 8, np.float32) if scales == "calibrated" else None)
    got, _ = export_and_run(q, x, tmp_path)
    np.testing.assert_allclose(got, q.predict(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("act, width", [("sigmoid", 1.0), ("tanh", 2.0)])
def test_int8_export_with_smooth_hidden_activations(rt, act, width, tmp_path, rng):
    """Between int8 layers a smooth activation (ONNX Runtime's function, not the engine's) may move a
    value by an ulp: a row's range moves by an ulp (its outputs move by ulps), or a value crosses a
    rounding boundary of the next layer's quantization, which moves that input by one step: a few
    outputs differ by a few of the next layer's steps.  One step
    changes output j by at most s * wscale[j] * 63, s = (row range) / 127 <= width / 127, the
    activation's range bounding the row's; the test allows three such steps."""
    m = fnn.Sequential([fnn.Dense(24, act), fnn.Dense(6)], input_dim=10, seed=4)
    x = quant_inputs(rng, 200, 10)
    q = fnn.quantize(m, "int8")
    got, _ = export_and_run(q, x, tmp_path)
    want = q.predict(x)
    step = width / 127 * dict(q.layers[1].parameters())["weight_scale"] * 63
    assert np.mean(np.abs(got - want) <= 1e-5) > 0.9   # mostly a row scale an ulp apart, at most
    assert np.all(np.abs(got - want) <= 3 * step)


def bf16(a):
    """float32 `a` rounded to bfloat16, nearest even (NumPy's own, on the upper 16 bits)."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("n_in, units", [(30, 3), (5, 1), (70, 9), (784, 10)])
def test_bfloat16_layer_export_runs_like_predict(rt, n_in, units, act, tmp_path, rng):
    """One bfloat16 layer: the input is Cast to bfloat16 and back in the graph (round to nearest even,
    as the engine rounds it), the weights are their bfloat16 values as float32, so every product is
    exact in float32 and only the order of the float32 sums differs: |error| <= K * 2^-24 * sum_k
    |x_k w_k| (K = n_in, the classic bound of a float sum in any order), through an activation that
    stretches by at most 1.2 (elu's alpha 0.3, gelu's 1.13), plus ONNX Runtime's own activation
    function (1e-5, as in the float export)."""
    x = quant_inputs(rng, 40, n_in)
    q = fnn.quantize(fnn.Sequential([fnn.Dense(units, fnn.Activation(act, alpha=0.3) if act in ("leaky_relu", "elu")
                                               else act)], input_dim=n_in, seed=5), "bfloat16")
    x[5] = (np.arange(n_in, dtype=np.uint32) * 0x10000 + 0x3f808000).view(np.float32)  # exact ties, both parities
    got, path = export_and_run(q, x, tmp_path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Cast") == 2 and "Gemm" in ops
    w = q.layers[0].weight
    assert np.array_equal(w, bf16(w))   # the weights the graph holds are bfloat16 values
    bound = n_in * 2.0**-24 * (np.abs(bf16(x)).astype(np.float64) @ np.abs(w)) * 1.2 + 1e-5
    assert np.all(np.abs(got.astype(np.float64) - q.predict(x)) <= bound)


@pytest.mark.parametrize("loss", [None, "cross_entropy"])
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("shape", QUANT_SHAPES)
def test_bfloat16_model_export_runs_like_predict(rt, shape, act, loss, tmp_path, rng):
    """Several bfloat16 layers: each layer as above, but a hidden value one float32 ulp apart (the
    sums' order) may round to the neighbouring bfloat16 when the next layer takes it, a step of 2^-8
    of that value: outputs agree within 1e-5 nearly everywhere, and everywhere within 2^-7 of the
    largest output."""
    q, x = quantized_pair(rng, *shape, act, "bfloat16", None, loss)
    got, path = export_and_run(q, x, tmp_path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Cast") == 2 * len(shape[1])
    want = q.predict(x)
    diff = np.abs(got - want)
    assert np.mean(diff <= 1e-5 + 1e-5 * np.abs(want)) > 0.9
    assert diff.max() <= 2.0**-7 * np.abs(want).max()


def test_bfloat16_cast_in_onnxruntime_rounds_as_the_engine(rt, rng):
    """What the bfloat16 graphs rely on: ONNX Runtime's Cast to bfloat16 rounds to nearest, ties to
    even, as the engine does (checked on exact ties, both parities, and ordinary values)."""
    from fastnn import _core
    h = onnx.helper
    g = h.make_graph([h.make_node("Cast", ["x"], ["b"], to=onnx.TensorProto.BFLOAT16),
                      h.make_node("Cast", ["b"], ["y"], to=onnx.TensorProto.FLOAT)], "g",
                     [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n"])])
    proto = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    ties = (np.arange(2000, dtype=np.uint32) * 0x10000 + 0x3f808000).view(np.float32)
    x = np.concatenate([ties, -ties, rng.normal(size=5000).astype(np.float32) * 100])
    got = run_ort(proto, x)[0]
    assert np.array_equal(got.view(np.uint32), _core.bf16_round(x).view(np.uint32))
    assert np.array_equal(got.view(np.uint32), bf16(x).view(np.uint32))


@pytest.mark.parametrize("norm", [fnn.BatchNorm, fnn.LayerNorm])
@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_quantized_models_with_normalization_layers(rt, norm, dtype, tmp_path, rng):
    m = norm_model("dense_norm_act", norm, "float32", "mse", rng)
    x = quant_inputs(rng, 40, 6)
    q = fnn.quantize(m, dtype)
    got, _ = export_and_run(q, x, tmp_path)
    np.testing.assert_allclose(got, q.predict(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_importing_a_quantized_export_names_the_operator(rt, dtype, tmp_path, rng):
    """fastnn imports float graphs: its own int8 graph is refused at MatMulInteger, its bfloat16 graph
    at the Cast to bfloat16."""
    q, x = quantized_pair(rng, 6, (5, 3), "relu", dtype, "per_row", None)
    _, path = export_and_run(q, x, tmp_path)
    with pytest.raises(fnn.ModelFormatError, match="MatMulInteger node" if dtype == "int8" else "Cast node"):
        fnn.from_onnx(path)


def test_max_norm_is_a_training_constraint_that_exports_as_dense(rt, tmp_path, rng):
    """max_norm acts on updates only: the exported graph runs as predict does."""
    m = fnn.Sequential([fnn.Dense(6, "tanh", max_norm=0.5), fnn.Dense(3)], input_dim=4, seed=0)
    m.compile("mse", optimizer=fnn.SGD(lr=0.5))
    X = inputs(rng, 40, 4, "float32")
    m.fit(X, rng.normal(size=(40, 3)), epochs=3, batch_size=8, verbose=0)
    assert np.linalg.norm(m.layers[0].weight, axis=0).max() <= 0.5 * (1 + 1e-6)
    m.export_onnx(tmp_path / "m.onnx")
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", X)[0], m.predict(X), rtol=1e-5, atol=1e-6)


def test_export_replaces_a_file_atomically(rt, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model_for("relu", None, "float32").export_onnx(path)
    assert fnn.from_onnx(path).input_dim == 6 and os.listdir(tmp_path) == ["m.onnx"]


# ---- import from PyTorch's two exporters ----------------------------------------------------------------

torch = None


@pytest.fixture(scope="module")
def tnn(rt):
    global torch
    torch = pytest.importorskip("torch")
    return torch.nn


def all_activations_net(tnn, head):
    """Linear layers (one without a bias) with each activation PyTorch and fastnn share, a Flatten at
    the input, and an optional softmax/sigmoid head."""
    torch.manual_seed(0)
    mods = [tnn.Flatten(), tnn.Linear(12, 16), tnn.ReLU(), tnn.Linear(16, 16), tnn.LeakyReLU(0.2),
            tnn.Linear(16, 16, bias=False), tnn.ELU(0.7), tnn.Linear(16, 16), tnn.Sigmoid(), tnn.Linear(16, 16),
            tnn.Tanh(), tnn.Linear(16, 16), tnn.GELU(), tnn.Linear(16, 16), tnn.SiLU(), tnn.Linear(16, 16),
            tnn.Softmax(dim=-1), tnn.Linear(16, 5)]
    if head == "softmax":
        mods.append(tnn.Softmax(dim=1))
    elif head == "sigmoid":
        mods.append(tnn.Sigmoid())
    return tnn.Sequential(*mods).eval()


def torch_export(net, x, path, dynamo, opset):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            pytest.importorskip("onnxscript")
            torch.onnx.export(net, (x,), str(path), dynamo=True, opset_version=opset, input_names=["x"],
                              output_names=["y"], dynamic_shapes={"input": {0: torch.export.Dim("batch")}})
        else:
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=opset, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


@pytest.mark.parametrize("dynamo, opset, head", [
    (False, 17, "softmax"), (False, 17, None), (False, 20, "sigmoid"), (False, 13, None),
    (True, 18, "softmax"), (True, 20, "sigmoid"),
])
def test_import_from_torch_onnx_export(tnn, dynamo, opset, head, tmp_path, rng):
    net = all_activations_net(tnn, head)
    path = tmp_path / "t.onnx"
    torch_export(net, torch.randn(3, 12), path, dynamo, opset)
    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    assert ("Gelu" in ops) == (opset >= 20) and ("Erf" in ops) == (opset < 20)   # both GELU forms are read

    m = fnn.from_onnx(path)
    assert [l.activation for l in m.layers] == ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu",
                                                "softmax", "linear"]
    assert m.layers[1].alpha == 0.2 and m.layers[2].alpha == 0.7 and not m.layers[2].use_bias
    assert m.loss == {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", None: "mse"}[head]
    for layer, lin in zip(m.layers, [mod for mod in net if isinstance(mod, tnn.Linear)]):
        assert np.array_equal(layer.weight, lin.weight.detach().numpy().T)
    x = inputs(rng, 100, 12, "float32")
    (want,) = run_ort(path, x)
    np.testing.assert_allclose(m.predict(x), want, rtol=0, atol=1e-5)
    with torch.inference_mode():
        np.testing.assert_allclose(m.predict(x), net(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dynamo, opset", [(False, 17), (True, 18)])
def test_import_torch_batch_norm_and_layer_norm(tnn, dynamo, opset, tmp_path, rng):
    """PyTorch's BatchNorm1d (eval: BatchNormalization with the running statistics, or folded into the
    Gemm by the dynamo exporter) and LayerNorm come in as fastnn's layers and predict like PyTorch."""
    torch.manual_seed(0)
    bn = tnn.BatchNorm1d(16)
    with torch.no_grad():   # statistics and affine far from their initial values
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    net = tnn.Sequential(tnn.Linear(12, 16), bn, tnn.ReLU(), tnn.Linear(16, 8), tnn.LayerNorm(8),
                         tnn.Linear(8, 3)).eval()
    torch_export(net, torch.randn(3, 12), tmp_path / "t.onnx", dynamo, opset)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "t.onnx")).graph.node]
    m = fnn.from_onnx(tmp_path / "t.onnx")
    kinds = [type(x).__name__ for x in m.layers]
    assert kinds.count("LayerNorm") == 1 and kinds.count("BatchNorm") == ops.count("BatchNormalization")
    x = inputs(rng, 60, 12, "float32")
    with torch.inference_mode():
        np.testing.assert_allclose(m.predict(x), net(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(m.predict(x), run_ort(tmp_path / "t.onnx", x)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu"])
def test_import_each_torch_activation_in_float64(tnn, act, tmp_path, rng):
    mod = {"relu": tnn.ReLU(), "leaky_relu": tnn.LeakyReLU(0.1), "elu": tnn.ELU(), "sigmoid": tnn.Sigmoid(),
           "tanh": tnn.Tanh(), "gelu": tnn.GELU(), "silu": tnn.SiLU()}[act]
    torch.manual_seed(1)
    net = tnn.Sequential(tnn.Linear(5, 7), mod, tnn.Linear(7, 2)).double().eval()
    torch_export(net, torch.randn(3, 5, dtype=torch.float64), tmp_path / "t.onnx", False, 17)
    m = fnn.from_onnx(tmp_path / "t.onnx")
    assert m.dtype == np.float64 and m.layers[0].activation == act
    x = inputs(rng, 50, 5, "float64")
    with torch.inference_mode():
        np.testing.assert_allclose(m.predict(x), net(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-12)


def test_torch_gelu_tanh_approximation_is_refused(tnn, tmp_path):
    net = tnn.Sequential(tnn.Linear(5, 7), tnn.GELU(approximate="tanh"), tnn.Linear(7, 2)).eval()
    torch_export(net, torch.randn(3, 5), tmp_path / "t.onnx", False, 17)
    with pytest.raises(fnn.ModelFormatError, match=r"Mul node '/1/Mul.*' is neither"):
        fnn.from_onnx(tmp_path / "t.onnx")
    torch_export(net, torch.randn(3, 5), tmp_path / "t20.onnx", False, 20)
    with pytest.raises(fnn.ModelFormatError, match=r"Gelu node .* approximate='tanh'"):
        fnn.from_onnx(tmp_path / "t20.onnx")


# ---- import from skl2onnx ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def skl(rt):
    pytest.importorskip("sklearn")
    return pytest.importorskip("skl2onnx")


def sk_model(skl, est, X, options=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skl.to_onnx(est, X[:1], options={id(est): options} if options else None, target_opset=17)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression", "regression2"])
def test_import_from_skl2onnx(skl, task, activation, dtype, rng):
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    X = rng.normal(size=(150, 5)).astype(dtype)
    y = {"multiclass": lambda: np.array(["ant", "bee", "cow"])[rng.integers(0, 3, 150)],
         "binary": lambda: rng.integers(0, 2, 150), "multilabel": lambda: rng.integers(0, 2, (150, 3)),
         "regression": lambda: rng.normal(size=150), "regression2": lambda: rng.normal(size=(150, 2))}[task]()
    cls = MLPRegressor if task.startswith("regression") else MLPClassifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cls(hidden_layer_sizes=(8, 6), activation=activation, max_iter=20, random_state=0).fit(X, y)
    zipmap = {} if cls is MLPRegressor else {"zipmap": task != "binary"} if dtype == "float32" else {"zipmap": False}
    proto = sk_model(skl, est, X, zipmap)
    m = fnn.from_onnx(proto.SerializeToString())
    assert m.dtype == np.dtype(dtype) and m.input_dim == 5
    act = {"logistic": "sigmoid", "identity": "linear"}.get(activation, activation)
    assert [l.activation for l in m.layers] == [act, act, "linear"]
    assert m.loss == {"multiclass": "cross_entropy", "binary": "binary_cross_entropy",
                      "multilabel": "binary_cross_entropy"}.get(task, "mse")
    ours = m.predict(X)
    tol = 1e-5 if dtype == "float32" else 1e-12
    if task == "multilabel" and dtype == "float64":   # ONNX Runtime has no double Binarizer
        np.testing.assert_allclose(est.predict_proba(X), ours, rtol=0, atol=tol)
        return
    outs = {o.name: v for o, v in zip(ort.InferenceSession(proto.SerializeToString(),
                                                           providers=["CPUExecutionProvider"]).get_outputs(),
                                        run_ort(proto, X))}
    if cls is MLPRegressor:
        # skl2onnx's Reshape(-1, 1) lays out two outputs as one column; the values are ours, row-major
        np.testing.assert_allclose(outs["variable"].reshape(-1), ours.reshape(-1), rtol=0, atol=tol)
        np.testing.assert_allclose(ours.reshape(est.predict(X).shape), est.predict(X), rtol=0, atol=tol)
        return
    proba = outs.get("probabilities")
    if proba is None:   # ZipMap: one {class: probability} dict per row
        proba = np.array([[row[c] for c in est.classes_] for row in outs["output_probability"]])
    if task == "binary":   # [1 - p, p] comes in as the one sigmoid output p
        assert ours.shape == (150, 1)
        np.testing.assert_allclose(proba[:, 1], ours[:, 0], rtol=0, atol=tol)
    else:
        np.testing.assert_allclose(proba, ours, rtol=0, atol=tol)
    np.testing.assert_allclose(est.predict_proba(X)[:, -ours.shape[1]:] if task == "binary" else est.predict_proba(X),
                               ours, rtol=0, atol=tol)


# ---- transfer learning: freeze, fine-tune, save, run from C -----------------------------------------------

def fine_tune_and_embed(m, embed, tmp_path, rng, n_classes):
    """New task: the imported model's own classes renamed (learnable by the last layer alone)."""
    x = inputs(rng, 300, m.input_dim, "float32")
    y = (np.argmax(m.predict(x), axis=1) + 1) % n_classes
    before = [a.copy() for a in m.get_weights()]
    m.freeze(-1)   # all but the last layer
    m.compile("cross_entropy", optimizer=fnn.Adam(lr=0.05), metrics=["accuracy"])
    start = m.evaluate(x, y)
    m.fit(x, y, epochs=60, batch_size=32, verbose=0)
    end = m.evaluate(x, y)
    assert end["loss"] < 0.7 * start["loss"] and end["accuracy"] > start["accuracy"] + 0.3, (start, end)
    after = m.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(after[:-2], before[:-2]))   # frozen, bit for bit
    assert not np.array_equal(after[-2], before[-2])
    path = tmp_path / "tuned.safetensors"
    m.save(path)
    x.astype("<f4").tofile(tmp_path / "x.f32")
    r = subprocess.run([embed, "--binary", str(path), str(tmp_path / "x.f32")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = np.array([line.split(",") for line in r.stdout.splitlines()], dtype=np.float64)
    np.testing.assert_allclose(out, m.predict(x), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1, atol=1e-5)


def test_torch_model_fine_tuned_saved_and_run_from_c(tnn, embed, tmp_path, rng):
    net = all_activations_net(tnn, "softmax")
    torch_export(net, torch.randn(3, 12), tmp_path / "t.onnx", False, 17)
    fine_tune_and_embed(fnn.from_onnx(tmp_path / "t.onnx"), embed, tmp_path, rng, 5)


def test_sklearn_model_fine_tuned_saved_and_run_from_c(skl, embed, tmp_path, rng):
    from sklearn.neural_network import MLPClassifier
    X = rng.normal(size=(200, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=50, random_state=0).fit(X, rng.integers(0, 4, 200))
    fine_tune_and_embed(fnn.from_onnx(sk_model(skl, est, X, {"zipmap": False})), embed, tmp_path, rng, 4)


# ---- hostile files ------------------------------------------------------------------------------------

def small_proto(dtype="float32"):
    from fastnn.onnx import to_proto
    m = fnn.Sequential([fnn.Dense(6, "relu"), fnn.Dense(3)], input_dim=4, dtype=dtype, seed=0)
    m.compile("cross_entropy")
    return to_proto(m), m


def graph(nodes, inits, n_in=4, n_out=3, opset=17):
    h = onnx.helper
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", n_in])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", n_out])], initializer=inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def weight(name, *shape, seed=0):
    return onnx.numpy_helper.from_array(np.random.default_rng(seed).normal(size=shape).astype(np.float32), name)


def refused(source, *patterns):
    with pytest.raises(fnn.ModelFormatError) as e:
        fnn.from_onnx(source)
    for p in patterns:
        assert p in str(e.value), str(e.value)
    return str(e.value)


def test_garbage_and_truncated_files(rt, tmp_path):
    rng = np.random.default_rng(7)
    for n in (0, 1, 7, 100, 5000):
        path = tmp_path / f"g{n}.onnx"
        path.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        refused(path, str(path), "not an ONNX model")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    refused(path, "not an ONNX model")
    data = small_proto()[0].SerializeToString()
    for cut in sorted({1, 2, 10, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1}):
        path.write_bytes(data[:cut])
        refused(path)
    refused(data[:len(data) // 2])


def test_mutated_files_never_raise_anything_but_model_format_error(rt):
    """Random byte flips, insertions and deletions of a valid file: each either reads (a change the
    graph survives) or is a ModelFormatError."""
    data = bytearray(small_proto()[0].SerializeToString())
    rng = np.random.default_rng(0)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(400):
        d = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(0, len(d)))
            how = rng.integers(0, 3)
            if how == 0:
                d[i] = int(rng.integers(0, 256))
            elif how == 1:
                d[i:i] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
            else:
                del d[i:i + int(rng.integers(1, 9))]
        try:
            fnn.from_onnx(bytes(d))
            outcomes["read"] += 1
        except fnn.ModelFormatError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and outcomes["read"] > 10, outcomes


def test_every_mutated_graph_that_is_read_computes_what_onnxruntime_computes(rt):
    """Graph-level mutations (a node removed, inputs swapped, another operator, attributes dropped or
    changed, an input rewired): whatever from_onnx accepts and ONNX Runtime runs, both compute alike."""
    from fastnn.onnx import to_proto
    rng = np.random.default_rng(9)
    seeds = []
    for act in ("leaky_relu", "elu", "gelu", "silu", "softmax", "tanh"):
        for dtype in ("float32", "float64"):
            m = fnn.Sequential([fnn.Dense(4, act), fnn.Dense(3, act)], input_dim=3, dtype=dtype, seed=0)
            m.compile(("cross_entropy", "binary_cross_entropy", "mse")[len(seeds) % 3])
            seeds.append(to_proto(m, opset=(13, 17, 20)[len(seeds) % 3]))
    ops = ["Relu", "Mul", "Add", "Sigmoid", "Tanh", "Softmax", "Identity", "Elu", "LeakyRelu", "Gelu", "Erf", "Cast"]
    agree = 0
    for it in range(360):
        p = onnx.ModelProto()
        p.CopyFrom(seeds[it % len(seeds)])
        n = p.graph.node[int(rng.integers(0, len(p.graph.node)))]
        k = it % 6
        if k == 0:
            p.graph.node.remove(n)
        elif k == 1:
            n.input[:] = list(n.input)[::-1]
        elif k == 2:
            n.op_type = str(rng.choice(ops))
        elif k == 3:
            del n.attribute[:]
        elif k == 4 and n.attribute:
            a = n.attribute[0]
            if a.type == onnx.AttributeProto.FLOAT:
                a.f = float(rng.normal())
            else:
                a.i = int(rng.choice([-1, 0, 1, 2, 3, 7, 10, 11]))
        elif k == 5 and n.input:
            n.input[0] = str(rng.choice([o for m in p.graph.node for o in m.output] + ["input"]))
        try:
            m = fnn.from_onnx(p)
        except fnn.ModelFormatError:
            continue
        x = inputs(rng, 20, m.input_dim, m.dtype)
        try:
            (ref,) = run_ort(p, x)
        except Exception:   # ONNX Runtime refuses it (a leftover attribute, a kernel it lacks): no oracle
            continue
        np.testing.assert_allclose(m.predict(x), ref, rtol=0, atol=1e-5 if m.dtype == np.float32 else 1e-6)
        agree += 1
    assert agree > 60, agree


def test_graph_with_a_cycle(rt):
    h = onnx.helper
    nodes = [h.make_node("Gemm", ["x", "W", "b"], ["h"], name="dense"),
             h.make_node("Add", ["h", "r"], ["s"], name="loop_add"),
             h.make_node("Relu", ["s"], ["r"], name="loop_relu"),
             h.make_node("Gemm", ["r", "W2"], ["y"], name="out")]
    refused(graph(nodes, [weight("W", 4, 5), weight("b", 5), weight("W2", 5, 3)]), "cycle", "loop_")
    # a node reading its own output
    nodes = [h.make_node("Relu", ["y"], ["y"], name="self")]
    refused(graph(nodes, []), "'self'")


def test_initializer_whose_shape_disagrees_with_its_data(rt):
    p, _ = small_proto()
    t = next(t for t in p.graph.initializer if t.name == "layers.0.weight")
    t.dims[:] = [4, 7]
    refused(p, "initializer 'layers.0.weight'", "[4, 7]", "28 values", "96 bytes")
    p, _ = small_proto()
    t = next(t for t in p.graph.initializer if t.name == "layers.1.bias")
    t.ClearField("raw_data")
    t.float_data.extend([1.0, 2.0])
    refused(p, "initializer 'layers.1.bias'", "3 values but it holds 2")
    p, _ = small_proto()
    p.graph.initializer[0].dims[:] = [-4, -6]
    refused(p, "negative dimension")


def test_claimed_10_gb_tensor_is_refused_before_allocating(rt, tmp_path):
    h = onnx.helper
    nodes = [h.make_node("Gemm", ["x", "W"], ["y"], name="huge")]
    raw = onnx.TensorProto(name="W", data_type=onnx.TensorProto.FLOAT, dims=[4, 625_000_000], raw_data=bytes(16))
    typed = onnx.TensorProto(name="W", data_type=onnx.TensorProto.FLOAT, dims=[4, 625_000_000], float_data=[0.0] * 4)
    for t, says in ((raw, "(9.3 GiB (10,000,000,000 bytes)) but it holds 16 bytes"), (typed, "but it holds 4")):
        model = graph(nodes, [t], n_out=625_000_000)
        tracemalloc.start()
        try:
            refused(model.SerializeToString(), "initializer 'W'", "2,500,000,000 values", says)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 20 * 2**20, peak
    # the same claim over an external file of 16 bytes
    (tmp_path / "w.bin").write_bytes(b"\0" * 16)
    t = onnx.TensorProto(name="W", data_type=onnx.TensorProto.FLOAT, dims=[4, 625_000_000],
                         data_location=onnx.TensorProto.EXTERNAL)
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", str(10 * 10**9))):
        t.external_data.add(key=k, value=v)
    (tmp_path / "m.onnx").write_bytes(graph(nodes, [t], n_out=625_000_000).SerializeToString())
    refused(tmp_path / "m.onnx", "'w.bin'", "holds only 16 bytes")


# External data: a model whose tensors live in weights.bin beside it; each hostile variant points
# one tensor at a copy of the same bytes outside the folder, so a reader that followed it would
# succeed: only the refusal passes.  Opens are recorded by an audit hook in a fresh process.
AUDIT = r"""
import json, os, sys
opened, on = [], [False]
def hook(event, args):
    if on[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.append(os.path.realpath(os.fsdecode(args[0])))
sys.addaudithook(hook)
import fastnn as fnn
import onnx   # imported before recording starts
on[0] = True
try:
    m = fnn.from_onnx(sys.argv[1])
    result = "read %d weights" % len(m.get_weights())
except fnn.ModelFormatError as e:
    result = "refused: " + str(e)
on[0] = False
print(json.dumps({"result": result, "opened": opened}))
"""


def external_model(tmp_path):
    from onnx import external_data_helper
    folder = tmp_path / "model"
    folder.mkdir()
    p, m = small_proto()
    external_data_helper.convert_model_to_external_data(p, all_tensors_to_one_file=True, location="weights.bin",
                                                        size_threshold=0)
    onnx.save_model(p, str(folder / "m.onnx"))
    p = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in p.graph.initializer)
    secret = tmp_path / "secret.bin"
    secret.write_bytes((folder / "weights.bin").read_bytes())
    return folder, p, m, secret


def audited(path):
    r = python(AUDIT, path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_external_data_inside_the_folder_is_read(rt, tmp_path):
    folder, p, m, secret = external_model(tmp_path)
    out = audited(folder / "m.onnx")
    assert out["result"] == "read 4 weights"
    assert os.path.realpath(folder / "weights.bin") in out["opened"]   # the hook sees the reads
    back = fnn.from_onnx(folder / "m.onnx")
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), m.get_weights()))
    refused((folder / "m.onnx").read_bytes(), "external file", "needs the model's path")


@pytest.mark.parametrize("how", ["dotdot", "deep_dotdot", "absolute", "symlink", "symlinked_dir", "fifo",
                                 "directory", "missing", "beyond_end"])
def test_external_data_leading_outside_is_refused_and_not_read(rt, how, tmp_path):
    folder, p, _, secret = external_model(tmp_path)
    t = p.graph.initializer[0]
    entry = next(e for e in t.external_data if e.key == "location")
    if how == "dotdot":
        entry.value = "../secret.bin"
    elif how == "deep_dotdot":
        entry.value = "sub/../../secret.bin"
    elif how == "absolute":
        entry.value = str(secret)
    elif how == "symlink":
        os.symlink(secret, folder / "link.bin")
        entry.value = "link.bin"
    elif how == "symlinked_dir":
        os.symlink(tmp_path, folder / "up")
        entry.value = "up/secret.bin"
    elif how == "fifo":
        os.mkfifo(folder / "pipe")
        entry.value = "pipe"
    elif how == "directory":
        (folder / "sub").mkdir()
        entry.value = "sub"
    elif how == "missing":
        entry.value = "nope.bin"
    else:
        for e in t.external_data:
            if e.key == "offset":
                e.value = str((folder / "weights.bin").stat().st_size - 8)
    (folder / "evil.onnx").write_bytes(p.SerializeToString())
    out = audited(folder / "evil.onnx")
    assert out["result"].startswith("refused: ") and "initializer 'layers.0.weight'" in out["result"], out
    expect = {"dotdot": "outside the model's folder", "deep_dotdot": "outside the model's folder",
              "absolute": "absolute path", "symlink": "through a symlink", "symlinked_dir": "through a symlink",
              "fifo": "not a regular file", "directory": "not a regular file", "missing": "cannot be read",
              "beyond_end": "which holds only"}[how]
    assert expect in out["result"], out
    outside = [f for f in out["opened"] if not f.startswith(os.path.realpath(folder) + os.sep)
               and str(tmp_path) in f]
    assert outside == [] and os.path.realpath(secret) not in out["opened"], out["opened"]


def test_unsupported_operators_are_named(rt):
    h = onnx.helper
    cases = [
        ([h.make_node("Gemm", ["x", "W"], ["h"], name="fc"), h.make_node("Abs", ["h"], ["y"], name="my_abs")],
         "Abs node 'my_abs' is not one fastnn reads"),
        ([h.make_node("Gemm", ["x", "W"], ["y"], name="fc", transA=1)], "Gemm node 'fc' has transA=1"),
        ([h.make_node("MatMul", ["x", "x"], ["y"], name="mm")], "MatMul node 'mm'"),
        ([h.make_node("Gemm", ["x", "W"], ["h"], name="fc"), h.make_node("Softmax", ["h"], ["y"], name="sm", axis=0)],
         "Softmax node 'sm' has axis=0"),
        ([h.make_node("Gemm", ["x", "W"], ["h"], name="fc"), h.make_node("Relu", ["h"], ["r"], name="relu"),
          h.make_node("Add", ["r", "h"], ["y"], name="residual")], "Add node 'residual'"),
        ([h.make_node("Gemm", ["x", "W"], ["h"], name="fc"), h.make_node("Flatten", ["h"], ["y"], name="late")],
         "Flatten node 'late' sits between layers"),
        ([h.make_node("Gemm", ["x", "W"], ["h"], name="fc"), h.make_node("Relu", ["h"], ["y"], name="relu"),
          h.make_node("Tanh", ["h"], ["z"], name="branch")], "Tanh node 'branch' is not part of the chain"),
        ([h.make_node("Gemm", ["x", "W"], ["h"], name="fc"), h.make_node("Relu", ["h"], ["y"], name="relu"),
          h.make_node("Tanh", ["h"], ["z"], name="output_branch")], "graph outputs 'y' and 'z'"),
        ([h.make_node("Gemm", ["x", "W", "W"], ["y"], name="fc")], "the bias 'W' has shape (4, 3)"),
        ([h.make_node("Gemm", ["x", "W"], ["h"], name="fc"), h.make_node("Identity", [], ["y"], name="empty")],
         "Identity node 'empty' has no data input"),
    ]
    for nodes, message in cases:
        model = graph(nodes, [weight("W", 4, 3)])
        if any(n.name == "output_branch" for n in nodes):
            model.graph.output.append(h.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["n", 3]))
        refused(model, message)
    # the double GELU's Erf between Casts that do not keep the values, or from another domain
    from fastnn.onnx import to_proto
    gelu = to_proto(fnn.Sequential([fnn.Dense(3, "gelu")], input_dim=4, dtype="float64", seed=0))
    for change in ("int_cast", "domain"):
        p = onnx.ModelProto()
        p.CopyFrom(gelu)
        if change == "int_cast":
            cast = next(n for n in p.graph.node if n.op_type == "Cast")
            cast.attribute[0].i = onnx.TensorProto.UINT8
        else:
            next(n for n in p.graph.node if n.op_type == "Erf").domain = "com.example"
        refused(p, "Mul node 'dense/Mul_3' is neither")
    # 5000 Muls in a row, a graph without outputs
    deep = [h.make_node("Gemm", ["x", "W"], ["m0"], name="fc")]
    deep += [h.make_node("Mul", [f"m{k}", "W"], [f"m{k + 1}"], name=f"mul{k}") for k in range(5000)]
    deep[-1].output[0] = "y"
    refused(graph(deep, [weight("W", 4, 3)]), "Mul node 'mul4999' is neither")
    empty = graph([h.make_node("Gemm", ["x", "W"], ["y"], name="fc")], [weight("W", 4, 3)])
    del empty.graph.output[:]
    refused(empty, "no output")
    # a NaN weight, two inputs, a 3-D input without Flatten, the wrong number of features
    w = weight("W", 4, 3)
    w.raw_data = np.full((4, 3), np.nan, np.float32).tobytes()
    refused(graph([h.make_node("Gemm", ["x", "W"], ["y"], name="fc")], [w]), "'fc'", "NaN")
    two = graph([h.make_node("Gemm", ["x", "W"], ["y"], name="fc")], [weight("W", 4, 3)])
    two.graph.input.append(h.make_tensor_value_info("x2", onnx.TensorProto.FLOAT, ["n", 4]))
    refused(two, "2 inputs")
    bad = graph([h.make_node("MatMul", ["x", "W"], ["y"], name="fc")], [weight("W", 4, 3)])
    bad.graph.input[0].type.tensor_type.shape.dim.add().dim_value = 2
    refused(bad, "3 dimensions")
    refused(graph([h.make_node("Gemm", ["x", "W"], ["y"], name="fc")], [weight("W", 4, 3)], n_in=5),
            "the first layer takes 4 features")


def test_input_no_ops_and_inference_dropout_are_read(rt, rng):
    h = onnx.helper
    shape = onnx.numpy_helper.from_array(np.array([-1, 12], np.int64), "shape")
    nodes = [h.make_node("Cast", ["x"], ["c"], to=onnx.TensorProto.FLOAT),
             h.make_node("Reshape", ["c", "shape"], ["r"]), h.make_node("Identity", ["r"], ["i"]),
             h.make_node("MatMul", ["i", "W"], ["m"]), h.make_node("Add", ["b", "m"], ["a"]),
             h.make_node("Dropout", ["a"], ["d"]), h.make_node("Relu", ["d"], ["e"]),
             h.make_node("Gemm", ["e", "W2", "b2"], ["y"], transB=1, alpha=0.5, beta=2.0)]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, 4])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 2])],
                     initializer=[shape, weight("W", 12, 5), weight("b", 1, 5, seed=1), weight("W2", 2, 5, seed=2),
                                  weight("b2", 2, seed=3)])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    m = fnn.from_onnx(model)
    x = rng.normal(size=(20, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(m.predict(x.reshape(20, 12)), run_ort(model, x)[0], rtol=0, atol=1e-5)



# ---- command line --------------------------------------------------------------------------------------

def cli(*args, cwd):
    e = _env()
    e.pop("FASTNN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "fastnn", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=e, timeout=300)


def csv_rows(text):
    lines = text.strip().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_cli_exports_a_quantized_model_file(rt, dtype, tmp_path, rng):
    """A quantized model file with a BatchNorm, loaded by the command line and exported: ONNX Runtime
    runs it like predict on the loaded file."""
    m = norm_model("dense_norm_act", fnn.BatchNorm, "float32", "cross_entropy", rng)
    fnn.quantize(m, dtype).save(tmp_path / "q.safetensors")
    r = cli("export", "q.safetensors", "q.onnx", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "wrote q.onnx", r.stderr
    onnx.checker.check_model(onnx.load(str(tmp_path / "q.onnx")), full_check=True)
    x = quant_inputs(rng, 40, 6)
    np.testing.assert_allclose(run_ort(tmp_path / "q.onnx", x)[0], fnn.load(tmp_path / "q.safetensors").predict(x),
                               rtol=1e-5, atol=1e-5)


def test_cli_export_then_import_keeps_predictions_and_class_names(rt, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) * [1, 10, 100] + [0, 5, 50]
    label = np.where(X[:, 0] + (X[:, 1] - 5) / 10 > 0.3, "high", np.where(X[:, 0] > -0.5, "mid", "low"))
    with open(tmp_path / "d.csv", "w") as f:
        f.write("a,b,kind,c\n" + "".join(f"{x[0]:.6f},{x[1]:.6f},{k},{x[2]:.6f}\n" for x, k in zip(X, label)))
    r = cli("train", "d.csv", "--target", "kind", "--layers", "16", "--epochs", "15", "-q", "--out", "m.safetensors",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("export", "m.safetensors", "m.onnx", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "wrote m.onnx", r.stderr
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    extra = json.loads({p.key: p.value for p in proto.metadata_props}["fastnn_cli"])
    assert extra["classes"] == ["high", "low", "mid"] and extra["features"] == ["a", "b", "c"]

    r = cli("predict", "m.safetensors", "d.csv", "--proba", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    header, rows = csv_rows(r.stdout)
    assert header == ["p_high", "p_low", "p_mid"]
    proba = np.array(rows, dtype=np.float64)
    (got,) = run_ort(tmp_path / "m.onnx", X.astype(np.float32))   # raw features: the scaling is in the graph
    np.testing.assert_allclose(got, proba, rtol=0, atol=1e-5)

    r = cli("import", "m.onnx", "back.safetensors", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "wrote back.safetensors", r.stderr
    before = cli("predict", "m.safetensors", "d.csv", cwd=tmp_path)
    after = cli("predict", "back.safetensors", "d.csv", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout and csv_rows(after.stdout)[0] == ["kind"]   # the names came back
    assert set(r[0] for r in csv_rows(after.stdout)[1]) <= {"high", "low", "mid"}


def test_cli_import_of_a_torch_file_runs_in_predict(tnn, tmp_path, rng):
    net = all_activations_net(tnn, "softmax")
    torch_export(net, torch.randn(3, 12), tmp_path / "t.onnx", False, 17)
    r = cli("import", "t.onnx", "t.safetensors", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    x = inputs(rng, 20, 12, "float32")
    np.save(tmp_path / "x.npy", x)
    r = cli("predict", "t.safetensors", "x.npy", "--proba", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(csv_rows(r.stdout)[1], dtype=np.float64), want, rtol=0, atol=1e-5)


def test_cli_errors(rt, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage" * 10)
    r = cli("import", "junk.onnx", "out.safetensors", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("fastnn: error: junk.onnx: not an ONNX model"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.safetensors").exists()
    r = cli("export", "nope.safetensors", "x.onnx", cwd=tmp_path)
    assert r.returncode == 1 and "nope.safetensors: no such file" in r.stderr
    model_for("relu", "mse", "float32").save(tmp_path / "m.safetensors")
    r = cli("export", "m.safetensors", "x.onnx", "--opset", "9", cwd=tmp_path)
    assert r.returncode == 2 and "--opset" in r.stderr and "an opset >= 13" in r.stderr
    r = cli("import", "m.safetensors", "out.safetensors", cwd=tmp_path)   # a model file is not ONNX
    assert r.returncode == 1 and "not an ONNX model" in r.stderr, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["junk.onnx", "m.safetensors"]
