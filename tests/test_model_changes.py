"""Changing a built model: a built layer's structural attributes are read-only, so that what `save`
writes is always the network that predicts."""
import numpy as np
import pytest

import fastnn as fnn


def model(dtype="float32"):
    m = fnn.Sequential([fnn.Dense(3, "relu"), fnn.Dropout(0.2), fnn.Activation("leaky_relu", alpha=0.1),
                        fnn.Dense(2)], input_dim=4, dtype=dtype, seed=0)
    m.compile("mse")
    return m


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
