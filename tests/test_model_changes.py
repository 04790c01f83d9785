"""Changing a built model: new weights are checked in the model's dtype (a finite float64 value that is
Inf in float32 is refused, naming the tensor, and nothing changes), and a built layer's structural
attributes are read-only, so that what `save` writes is always the network that predicts."""
import re

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _format


def model(dtype="float32"):
    m = fnn.Sequential([fnn.Dense(3, "relu"), fnn.Dropout(0.2), fnn.Activation("leaky_relu", alpha=0.1),
                        fnn.Dense(2)], input_dim=4, dtype=dtype, seed=0)
    m.compile("mse")
    return m


def _setters(m, big):
    """(name, call, where) of every way weights come in, each with one huge value in the first tensor."""
    w = m.get_weights()
    w0 = w[0].astype(np.result_type(big, np.float64))
    w0[1, 2] = big
    src = dict(zip(("layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias"), w))
    src["layers.0.weight"] = w0
    torch_src = {"0.weight": w0.T, "0.bias": w[1], "3.weight": w[2].T, "3.bias": w[3]}
    return [
        ("set_weights", lambda: m.set_weights([w0] + w[1:]), "weights[0]"),
        ("layer.weight", lambda: setattr(m.layers[0], "weight", w0), "weight"),
        ("layer.bias", lambda: setattr(m.layers[0], "bias", np.array([0.0, big, 0.0], dtype=w0.dtype)), "bias"),
        ("load_weights dict", lambda: m.load_weights(src), "layers.0.weight"),
        ("load_weights torch", lambda: m.load_weights(torch_src, layout="torch"), "0.weight"),
    ]


@pytest.mark.parametrize("big", [1e300, -1e39, 3.5e38, np.longdouble(10) ** 400])
def test_a_value_that_overflows_the_dtype_is_refused_and_changes_nothing(big):
    m = model("float32")
    X = np.ones((2, 4), np.float32)
    before, pred = m.get_weights(), m.predict(X)
    for name, call, where in _setters(m, big):
        with pytest.raises(ValueError, match=re.escape(where) + ".*overflows float32") as e:
            call()
        assert ("(1, 2)" if name != "layer.bias" else "(1,)") in str(e.value), str(e.value)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(m.get_weights(), before)), name
        assert m.predict(X).tobytes() == pred.tobytes()


def test_the_largest_finite_float32_goes_through():
    m = model("float32")
    w = m.get_weights()
    w[0] = w[0].astype(np.float64)
    w[0][0, 0] = float(np.finfo(np.float32).max)
    m.set_weights(w)
    assert m.layers[0].weight[0, 0] == np.finfo(np.float32).max


def test_float64_models_take_what_float64_holds():
    m = model("float64")
    w = m.get_weights()
    w[0][1, 2] = 1e300
    m.set_weights(w)
    assert m.layers[0].weight[1, 2] == 1e300


def test_a_float64_file_into_a_float32_model(tmp_path):
    """load_weights from a safetensors file whose F64 tensor holds 1e300: refused, naming the tensor."""
    m = model("float32")
    w = m.get_weights()
    tensors = [("layers.0.weight", np.full((4, 3), 1e300)), ("layers.0.bias", w[1].astype(np.float64)),
               ("layers.3.weight", w[2].astype(np.float64)), ("layers.3.bias", w[3].astype(np.float64))]
    path = tmp_path / "w.safetensors"
    path.write_bytes(_format.encode({"note": "weights only"}, tensors))
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"layers\.0\.weight.*1e\+300.*overflows float32"):
        m.load_weights(path)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(m.get_weights(), before))


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_sklearn_coefs_overflow_is_refused():
    pytest.importorskip("sklearn")
    from fastnn.sklearn import MLPRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, X[:, 0])
    coefs = [c.astype(np.float64) for c in reg.coefs_]
    coefs[0][0, 0] = 1e300
    with pytest.raises(ValueError, match=r"coefs_\[0\].*overflows float32"):
        reg.coefs_ = coefs
    with pytest.raises(ValueError, match=r"coefs_\[0\].*overflows float32"):
        reg.coefs_[0] = coefs[0]
    assert np.isfinite(reg.coefs_[0]).all()


# ---- structural attributes of a built layer ----------------------------------------------------------

STRUCTURE = [(0, "units", 10 ** 6), (0, "activation", "tanh"), (0, "alpha", 0.5), (0, "use_bias", False),
             (0, "l1", 0.1), (0, "l2", 0.1), (1, "p", 0.9), (2, "activation", "relu"), (2, "alpha", 0.3)]


@pytest.mark.parametrize("i,attr,value", STRUCTURE)
def test_structural_attributes_of_a_built_layer_are_read_only(tmp_path, i, attr, value):
    """The reported case: `.activation = "tanh"` on a built relu model left predict unchanged but
    made save write "tanh"; `.units = 10**6` made save write a file that load refuses."""
    m = model()
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    layer = m.layers[i]
    old = getattr(layer, attr)
    with pytest.raises(AttributeError, match=rf"{attr} cannot change once the model is built"):
        setattr(layer, attr, value)
    assert getattr(layer, attr) == old
    m.save(tmp_path / "m.safetensors")
    assert fnn.load(tmp_path / "m.safetensors").predict(X).tobytes() == m.predict(X).tobytes()


@pytest.mark.parametrize("i,attr,value", STRUCTURE)
def test_structural_attributes_may_change_before_the_model_is_built(i, attr, value):
    layers = [fnn.Dense(3, "relu"), fnn.Dropout(0.2), fnn.Activation("leaky_relu", alpha=0.1), fnn.Dense(2)]
    if attr == "units":
        value = 5
    setattr(layers[i], attr, value)
    m = fnn.Sequential(layers, input_dim=4, seed=0)
    assert getattr(m.layers[i], attr) == value


def test_name_and_trainable_stay_free(tmp_path):
    m = model()
    m.layers[0].name = "first"
    m.layers[0].trainable = False
    m.save(tmp_path / "m.safetensors")
    back = fnn.load(tmp_path / "m.safetensors")
    assert back.layers[0].name == "first" and back.layers[0].trainable is False


MODEL_STRUCTURE = {
    "layers.append": lambda m: m.layers.append(fnn.Dense(5)),
    "layers.extend": lambda m: m.layers.extend([fnn.Dense(5)]),
    "layers.insert": lambda m: m.layers.insert(0, fnn.Dense(4)),
    "layers[i] =": lambda m: m.layers.__setitem__(0, fnn.Dense(3, "tanh")),
    "layers[a:b] =": lambda m: m.layers.__setitem__(slice(0, 1), []),
    "del layers[i]": lambda m: m.layers.__delitem__(1),
    "layers.pop": lambda m: m.layers.pop(),
    "layers.remove": lambda m: m.layers.remove(m.layers[1]),
    "layers.clear": lambda m: m.layers.clear(),
    "layers.reverse": lambda m: m.layers.reverse(),
    "layers.sort": lambda m: m.layers.sort(key=lambda layer: layer.kind),
    "layers +=": lambda m: m.layers.__iadd__([fnn.Dense(5)]),
    "layers *=": lambda m: m.layers.__imul__(2),
    "model.layers =": lambda m: setattr(m, "layers", m.layers[:2]),
    "model.input_dim =": lambda m: setattr(m, "input_dim", 7),
    "model.dtype =": lambda m: setattr(m, "dtype", np.dtype(np.float64)),
    "del layer.units": lambda m: delattr(m.layers[0], "units"),
    "del layer.activation": lambda m: delattr(m.layers[2], "activation"),
}


@pytest.mark.parametrize("change", MODEL_STRUCTURE)
def test_a_built_models_layers_input_dim_and_dtype_are_read_only(tmp_path, change):
    """The model-level variants of the layer case: appending a layer to a built model made save write a
    file that load refuses; setting input_dim made it write one whose shapes disagree."""
    m = model()
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    before = (list(m.layers), m.input_dim, m.dtype, m.predict(X).tobytes())
    with pytest.raises(AttributeError, match="once the model is built"):
        MODEL_STRUCTURE[change](m)
    assert (list(m.layers), m.input_dim, m.dtype, m.predict(X).tobytes()) == before
    m.save(tmp_path / "m.safetensors")
    assert fnn.load(tmp_path / "m.safetensors").predict(X).tobytes() == before[3]


def test_layers_may_change_before_the_model_is_built():
    m = fnn.Sequential([fnn.Dense(3, "relu")], seed=0)
    m.layers.append(fnn.Dense(2, name="out"))
    m.input_dim = None
    m.dtype = np.dtype(np.float64)
    m.build(4)
    assert [layer.units for layer in m.layers] == [3, 2] and m.predict(np.ones((1, 4))).dtype == np.float64
    assert isinstance(m.layers, list) and m.layers[1:] == [m.layers[1]]  # still a list to read


def test_a_plain_list_assigned_before_the_build_is_frozen_by_it():
    m = fnn.Sequential([fnn.Dense(3, "relu")], seed=0)
    m.layers = [fnn.Dense(4, "relu"), fnn.Dense(2)]
    m.build(5)
    for change in (lambda: m.layers.append(fnn.Dense(2)), lambda: m.layers.pop(),
                   lambda: m.layers.__setitem__(0, fnn.Dense(7))):
        with pytest.raises(AttributeError, match="layers cannot change once the model is built"):
            change()
    assert [layer.units for layer in m.layers] == [4, 2] and m.predict(np.ones((1, 5))).shape == (1, 2)


# ---- soft targets ---------------------------------------------------------------------------------

SOFT = {"negative": (-0.5, 1.5), "above one": (1.25, -0.25), "tiny negative": (-1e-30, 1.0)}


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
@pytest.mark.parametrize("case", SOFT)
def test_soft_targets_outside_zero_one_are_refused_naming_the_row(loss, case):
    """A target of -0.5 and 1.5 (the row still sums to 1) gave cross-entropy a negative loss."""
    m = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0)
    m.compile(loss, optimizer=fnn.SGD(lr=0.1))
    X = np.ones((4, 3), np.float32)
    y = np.tile(np.float32([0.5, 0.5]), (4, 1))
    y[2] = SOFT[case]
    before = m.get_weights()
    for call in (lambda: m.fit(X, y, epochs=1, verbose=0), lambda: m.train_on_batch(X, y), lambda: m.evaluate(X, y)):
        with pytest.raises(ValueError, match=r"y: .*targets must lie in \[0, 1\].*row 2, column 0"):
            call()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(m.get_weights(), before))
    op = getattr(fnn.ops, loss)
    with pytest.raises(ValueError, match=r"target: .*must lie in \[0, 1\].*row 2, column 0"):
        op(np.zeros((4, 2)), y.astype(np.float64))
    y[2] = (0.0, 1.0)
    loss_value = op(np.array([[3.0, -1.0]] * 4), y.astype(np.float64))[0]
    assert loss_value >= 0  # the edges are allowed


def norm_model():
    m = fnn.Sequential([fnn.Dense(3, max_norm=2.0), fnn.BatchNorm(), fnn.LayerNorm(), fnn.Dense(2)], input_dim=4,
                       seed=0)
    m.compile("mse")
    return m


@pytest.mark.parametrize("i,attr,value", [(0, "max_norm", 0.5), (1, "momentum", 0.5), (1, "epsilon", 0.1),
                                          (2, "epsilon", 0.1)])
def test_normalization_and_max_norm_settings_of_a_built_model_are_read_only(tmp_path, i, attr, value):
    m = norm_model()
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    old = getattr(m.layers[i], attr)
    with pytest.raises(AttributeError, match=rf"{attr} cannot change once the model is built"):
        setattr(m.layers[i], attr, value)
    assert getattr(m.layers[i], attr) == old
    m.save(tmp_path / "m.safetensors")
    assert fnn.load(tmp_path / "m.safetensors").predict(X).tobytes() == m.predict(X).tobytes()


@pytest.mark.parametrize("attr", ["gamma", "beta", "moving_mean", "moving_variance"])
def test_normalization_parameters_are_checked_in_the_models_dtype(attr):
    m = norm_model()
    before = m.get_weights()
    with pytest.raises(ValueError, match=rf"{attr}.*overflows float32"):
        setattr(m.layers[1], attr, np.array([1.0, 1e300, 1.0]))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(m.get_weights(), before))
