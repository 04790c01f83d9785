"""Training a loaded model reproducibly: its seed can be given to fnn.load and set later."""
import numpy as np
import pytest

import fastnn as fnn


def test_a_loaded_models_seed_can_be_given_and_set(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    m = fnn.Sequential([fnn.Dense(8, "relu"), fnn.Dropout(0.5), fnn.Dense(2)], input_dim=5, seed=4)
    m.compile("cross_entropy")
    m.save(tmp_path / "m.safetensors")

    def trained(model):
        model.compile("cross_entropy", optimizer=fnn.SGD(lr=0.1))
        model.fit(X, y, epochs=2, batch_size=8, verbose=0)
        return model.get_weights()

    a = trained(fnn.load(tmp_path / "m.safetensors", seed=123))
    b = fnn.load(tmp_path / "m.safetensors")
    b.seed = 123
    assert b.seed == 123
    b = trained(b)
    c = trained(fnn.load(tmp_path / "m.safetensors", seed=124))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))  # other shuffles, other masks
    d = fnn.saving.loads((tmp_path / "m.safetensors").read_bytes(), seed=123)
    assert all(np.array_equal(u, v) for u, v in zip(a, trained(d)))
    for bad, err in ((-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("1", TypeError)):
        with pytest.raises(err, match="seed"):
            fnn.load(tmp_path / "m.safetensors", seed=bad)
        with pytest.raises(err, match="seed"):
            m.seed = bad
    assert m.seed == 4
