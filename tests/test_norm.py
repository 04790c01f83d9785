"""BatchNorm and LayerNorm: forward passes against NumPy and PyTorch, gradients against float64 finite
differences, the running statistics, freezing, batches of one row, model files (saved, loaded, run by the
C API bit for bit as predict runs them), threads, and the digits trained to 97%."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from conftest import with_threads
from test_gradients import fd_check


def numpy_bn(x, gamma, beta, mean, var, eps):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def numpy_ln(x, gamma, beta, eps):
    return gamma * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + eps) + beta


def _randomize(model, rng):
    """Non-trivial gamma, beta and running statistics (and biases), so that each one matters."""
    for layer in model.layers:
        for name, a in layer.parameters():
            if name in ("gamma", "moving_variance"):
                a[...] = rng.uniform(0.5, 1.5, a.shape)
            elif name in ("beta", "moving_mean", "bias"):
                a[...] = rng.normal(0, 0.5, a.shape)


def _trainable_indices(model):
    """Indices into the flat buffer of every parameter with a gradient (not the running statistics)."""
    out = []
    for layer in model.layers:
        if not layer.trainable:
            continue
        for name, a in layer.parameters():
            if name not in ("moving_mean", "moving_variance"):
                out += range(layer._offsets[name], layer._offsets[name] + a.size)
    return out


# ---- forward ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batchnorm_training_and_inference_forward(dtype, rng):
    tol = 1e-5 if dtype == "float32" else 1e-12
    m = fnn.Sequential([fnn.BatchNorm(momentum=0.9, epsilon=1e-3)], input_dim=7, dtype=dtype, seed=0)
    _randomize(m, rng)
    bn = m.layers[0]
    x = rng.normal(2.0, 3.0, (33, 7)).astype(dtype)
    want = numpy_bn(x.astype(np.float64), bn.gamma, bn.beta, x.mean(0, dtype=np.float64), x.astype(np.float64).var(0), 1e-3)
    np.testing.assert_allclose(m._forward_train(x), want, rtol=tol, atol=tol)
    want = numpy_bn(x.astype(np.float64), bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance, 1e-3)
    np.testing.assert_allclose(m.predict(x), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layernorm_forward_is_the_same_in_training(dtype, rng):
    tol = 1e-5 if dtype == "float32" else 1e-12
    m = fnn.Sequential([fnn.LayerNorm(epsilon=1e-4)], input_dim=9, dtype=dtype, seed=0)
    _randomize(m, rng)
    x = rng.normal(-1.0, 2.0, (10, 9)).astype(dtype)
    want = numpy_ln(x.astype(np.float64), m.layers[0].gamma, m.layers[0].beta, 1e-4)
    np.testing.assert_allclose(m.predict(x), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(m._forward_train(x), want, rtol=tol, atol=tol)
    assert m.layers[0].epsilon == 1e-4 and fnn.LayerNorm().epsilon == 1e-5


def test_forward_and_gradients_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    m = fnn.Sequential([fnn.Dense(6), fnn.BatchNorm(momentum=0.8, epsilon=1e-3), fnn.Activation("relu"),
                        fnn.Dense(5, "tanh"), fnn.LayerNorm(epsilon=1e-5), fnn.Dense(3)],
                       input_dim=4, dtype="float64", seed=1)
    _randomize(m, rng)
    m.compile("mse")
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 3))
    loss = m.compute_gradients(x, y)
    t = {f"{i}.{n}": torch.tensor(a.copy(), requires_grad=n not in ("moving_mean", "moving_variance"))
         for i, layer in enumerate(m.layers) for n, a in layer.parameters()}
    h = torch.tensor(x) @ t["0.weight"] + t["0.bias"]
    rm, rv = t["1.moving_mean"].detach().clone(), t["1.moving_variance"].detach().clone()
    # torch's momentum is the weight of the batch: 1 - Keras's
    h = F.batch_norm(h, rm, rv, t["1.gamma"], t["1.beta"], training=True, momentum=0.2, eps=1e-3)
    h = torch.tanh(torch.relu(h) @ t["3.weight"] + t["3.bias"])
    h = F.layer_norm(h, (5,), t["4.gamma"], t["4.beta"], eps=1e-5)
    out = h @ t["5.weight"] + t["5.bias"]
    ref = ((out - torch.tensor(y)) ** 2).mean()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    for i, layer in enumerate(m.layers):
        for n, _ in layer.parameters():
            if t[f"{i}.{n}"].requires_grad:
                np.testing.assert_allclose(layer._views[n][1], t[f"{i}.{n}"].grad.numpy(), rtol=1e-10, atol=1e-12)
    # compute_gradients updates nothing, the running statistics included; a training step does (torch's
    # running mean moves the same way; its variance is the unbiased one, Keras's the biased one)
    assert np.array_equal(m.layers[1].moving_mean, t["1.moving_mean"].detach().numpy())
    m.compile("mse", optimizer=fnn.SGD(lr=0.0))
    m.train_on_batch(x, y)
    np.testing.assert_allclose(m.layers[1].moving_mean, rm.numpy(), rtol=1e-12)
    z = x @ m.layers[0].weight + m.layers[0].bias
    np.testing.assert_allclose(m.layers[1].moving_variance,
                               0.8 * t["1.moving_variance"].detach().numpy() + 0.2 * z.var(0), rtol=1e-12)


# ---- gradients ----------------------------------------------------------------------------------------

NETS = {
    "dense-bn-act": lambda: [fnn.Dense(6), fnn.BatchNorm(), fnn.Activation("tanh"), fnn.Dense(3)],
    "dense(act)-bn": lambda: [fnn.Dense(6, "elu"), fnn.BatchNorm(momentum=0.5), fnn.Dense(3)],
    "bn-first": lambda: [fnn.BatchNorm(epsilon=0.1), fnn.Dense(5, "gelu"), fnn.Dense(3)],
    "bn-last": lambda: [fnn.Dense(5, "silu"), fnn.Dense(3), fnn.BatchNorm()],
    "ln": lambda: [fnn.Dense(6, "relu"), fnn.LayerNorm(), fnn.Dense(3)],
    "ln-first-and-last": lambda: [fnn.LayerNorm(epsilon=1e-3), fnn.Dense(5, "sigmoid"), fnn.Dense(3), fnn.LayerNorm()],
    "bn-ln-dropout": lambda: [fnn.Dense(7), fnn.BatchNorm(), fnn.Dropout(0.3), fnn.Activation("relu"),
                              fnn.Dense(6), fnn.LayerNorm(), fnn.Activation("tanh"), fnn.Dense(3, l2=0.01)],
}


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("net", sorted(NETS))
def test_gradients_match_finite_differences(net, loss, rng):
    model = fnn.Sequential(NETS[net](), input_dim=4, dtype="float64", seed=5)
    _randomize(model, rng)
    model.compile(loss)
    X = rng.normal(1.0, 2.0, (9, 4))
    y = rng.integers(0, 3, 9) if loss == "cross_entropy" else rng.normal(size=(9, 3))
    err, g = fd_check(model, X, y, params=_trainable_indices(model), sample_weight=rng.uniform(0.5, 2, 9))
    assert err < 1e-6, err
    # the running statistics have no gradient
    for layer in model.layers:
        for name, a in layer.parameters():
            if name.startswith("moving"):
                assert not layer._views[name][1].any()


@pytest.mark.parametrize("frozen", ["bn", "ln", "bn-and-dense"])
def test_gradients_through_frozen_normalization(frozen, rng):
    """A frozen BatchNorm runs in inference mode (its running statistics) and passes gradients down;
    a frozen LayerNorm passes them down; neither gets gradients of its own."""
    model = fnn.Sequential([fnn.Dense(6, "tanh"), fnn.BatchNorm(), fnn.Dense(5), fnn.LayerNorm(),
                            fnn.Activation("relu"), fnn.Dense(3)], input_dim=4, dtype="float64", seed=2)
    _randomize(model, rng)
    model.compile("mse")
    if frozen in ("bn", "bn-and-dense"):
        model.layers[1].trainable = False
    if frozen == "ln":
        model.layers[3].trainable = False
    if frozen == "bn-and-dense":
        model.layers[5].trainable = False
    X, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 3))
    err, g = fd_check(model, X, y, params=_trainable_indices(model))
    assert err < 1e-6
    for layer in model.layers:
        if not layer.trainable:
            assert all(not layer._views[n][1].any() for n, _ in layer.parameters())
    if frozen != "ln":  # inference mode in training: the running statistics, not the batch's
        bn = model.layers[1]
        h = np.tanh(X @ model.layers[0].weight + model.layers[0].bias)
        m1 = fnn.Sequential([fnn.Dense(6, "tanh"), fnn.BatchNorm(trainable=False)], input_dim=4, dtype="float64")
        m1.set_weights(model.get_weights()[:6])
        np.testing.assert_allclose(m1._forward_train(X), numpy_bn(h, bn.gamma, bn.beta, bn.moving_mean,
                                                                   bn.moving_variance, bn.epsilon), rtol=1e-12)


# ---- running statistics, freezing, batches of one row -----------------------------------------------------

def test_fit_updates_the_running_statistics_and_freezing_freezes_them(rng):
    X, y = rng.normal(3.0, 2.0, (64, 5)), rng.integers(0, 3, 64)
    model = fnn.Sequential([fnn.BatchNorm(momentum=0.9), fnn.Dense(3)], input_dim=5, dtype="float64", seed=0)
    model.compile("cross_entropy", optimizer=fnn.SGD(lr=0.1))
    model.fit(X, y, epochs=1, batch_size=64, shuffle=False, verbose=0)  # one step: one update of the statistics
    bn = model.layers[0]
    np.testing.assert_allclose(bn.moving_mean, 0.1 * X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(bn.moving_variance, 0.9 + 0.1 * X.var(0), rtol=1e-12)
    model.fit(X, y, epochs=30, batch_size=16, verbose=0)
    np.testing.assert_allclose(bn.moving_mean, X.mean(0), atol=0.3)  # they converge to the data's
    bn.trainable = False
    before = [a.copy() for _, a in bn.parameters()]
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert all(np.array_equal(a, b) for (_, a), b in zip(bn.parameters(), before))
    assert model.layers[1].weight_grad.any()  # the layer above still trains


def test_batch_of_one_row_is_a_clear_error(rng):
    X, y = rng.normal(size=(33, 4)), rng.normal(size=(33, 2))
    model = fnn.Sequential([fnn.Dense(5), fnn.BatchNorm(), fnn.Dense(2)], input_dim=4, seed=0)
    model.compile("mse")
    with pytest.raises(ValueError, match="batch_size: BatchNorm in training needs at least 2 rows"):
        model.fit(X, y, batch_size=32, verbose=0)  # 33 rows: the last batch would hold one
    with pytest.raises(ValueError, match="batch_size: BatchNorm"):
        model.fit(X, y, batch_size=1, verbose=0)
    with pytest.raises(ValueError, match="X: BatchNorm in training needs at least 2 rows"):
        model.train_on_batch(X[:1], y[:1])
    with pytest.raises(ValueError, match="X: BatchNorm"):
        model.compute_gradients(X[:1], y[:1])
    model.fit(X, y, batch_size=11, verbose=0)
    assert model.predict(X[:1]).shape == (1, 2)  # inference takes any number of rows
    model.layers[1].trainable = False  # a frozen BatchNorm uses its running statistics: one row is fine
    model.fit(X, y, batch_size=32, verbose=0)
    model.train_on_batch(X[:1], y[:1])
    ln = fnn.Sequential([fnn.Dense(5), fnn.LayerNorm(), fnn.Dense(2)], input_dim=4, seed=0)
    ln.compile("mse")
    ln.fit(X, y, batch_size=1, epochs=1, verbose=0)


# ---- model files and the C API ------------------------------------------------------------------------

FILES = {
    "dense-bn-act (folded)": lambda: [fnn.Dense(24), fnn.BatchNorm(), fnn.Activation("gelu"), fnn.Dense(4)],
    "dense-bn (folded, no bias)": lambda: [fnn.Dense(24, use_bias=False), fnn.BatchNorm(), fnn.Dense(4)],
    "dense(act)-bn": lambda: [fnn.Dense(24, "relu"), fnn.BatchNorm(), fnn.Dense(4, "softmax")],
    "bn-first, ln": lambda: [fnn.BatchNorm(), fnn.Dense(20, "tanh"), fnn.LayerNorm(), fnn.Dense(4)],
    "dropout-bn-softmax": lambda: [fnn.Dense(24), fnn.Dropout(0.2), fnn.BatchNorm(), fnn.Dense(4),
                                   fnn.BatchNorm(), fnn.Activation("softmax")],
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", sorted(FILES))
def test_files_predict_bit_for_bit_in_python_and_the_c_api(net, dtype, rng, tmp_path):
    X, y = rng.normal(size=(300, 6)), rng.integers(0, 4, 300)
    model = fnn.Sequential(FILES[net](), input_dim=6, dtype=dtype, seed=3)
    model.compile("cross_entropy", optimizer=fnn.Adam(0.01))
    model.fit(X, y, epochs=3, batch_size=50, verbose=0)
    path = tmp_path / "bn.safetensors"
    model.save(path)
    loaded = fnn.load(path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
    p = model.predict(X)
    assert np.array_equal(loaded.predict(X), p)
    mf = _core.ModelFile.from_path(path)
    assert np.array_equal(mf.predict_native(X), p)  # the C API's predict in the model's dtype
    if dtype == "float32":
        assert np.array_equal(mf.predict(X), p)     # fnn_model_predict itself
    # and the formula, unfolded, in float64
    h = X
    for i, layer in enumerate(model.layers):
        if isinstance(layer, fnn.Dense):
            h = h @ layer.weight.astype(np.float64) + (layer.bias if layer.use_bias else 0)
            h = {"linear": h, "relu": np.maximum(h, 0), "tanh": np.tanh(h)}.get(layer.activation, h)
        elif isinstance(layer, fnn.BatchNorm):
            h = numpy_bn(h, layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance, layer.epsilon)
        elif isinstance(layer, fnn.LayerNorm):
            h = numpy_ln(h, layer.gamma, layer.beta, layer.epsilon)
        elif isinstance(layer, fnn.Activation) and layer.activation == "gelu":
            h = _core_gelu(h)
    e = np.exp(h - h.max(1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), rtol=2e-4 if dtype == "float32" else 1e-9,
                               atol=1e-5 if dtype == "float32" else 1e-12)


def _core_gelu(h):
    import math
    return 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))


def test_the_embedding_example_runs_a_batchnorm_file_bit_for_bit(embed, rng, tmp_path):
    import subprocess
    X, y = rng.normal(size=(200, 6)).astype(np.float32), rng.integers(0, 3, 200)
    model = fnn.Sequential([fnn.Dense(16), fnn.BatchNorm(), fnn.Activation("relu"), fnn.LayerNorm(),
                            fnn.Dense(3)], input_dim=6, seed=0)
    model.compile("cross_entropy", optimizer=fnn.Adam(0.01))
    model.fit(X, y, epochs=2, batch_size=40, verbose=0)
    path = tmp_path / "bn.safetensors"
    model.save(path)
    binary = tmp_path / "x.f32"
    X.astype("<f4").tofile(binary)
    r = subprocess.run([embed, "--binary", str(path), str(binary)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = np.array([line.split(",") for line in r.stdout.splitlines()], dtype=np.float64).astype(np.float32)
    assert np.array_equal(out, model.predict(X))


def test_spec_summary_and_parameters():
    m = fnn.Sequential([fnn.Dense(4), fnn.BatchNorm(momentum=0.5, epsilon=0.01, name="bn"), fnn.LayerNorm()],
                       input_dim=3, seed=0)
    bn, ln = m.layers[1], m.layers[2]
    assert [n for n, _ in bn.parameters()] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [n for n, _ in ln.parameters()] == ["gamma", "beta"]
    assert np.array_equal(bn.gamma, np.ones(4)) and not bn.beta.any() and not bn.moving_mean.any()
    assert np.array_equal(bn.moving_variance, np.ones(4))
    assert m.count_params() == 3 * 4 + 4 + 16 + 8
    assert bn.spec() == {"type": "batch_norm", "momentum": 0.5, "epsilon": 0.01, "trainable": True, "name": "bn"}
    assert ln.spec()["type"] == "layer_norm" and "BatchNorm" in m.summary()
    bn.gamma = [2, 2, 2, 2]
    assert np.array_equal(m.get_weights()[2], [2, 2, 2, 2])
    with pytest.raises(ValueError, match="gamma"):
        bn.gamma = np.ones(3)


# ---- threads and training ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_bits_with_any_thread_count(dtype, rng):
    X = rng.normal(size=(512, 96)).astype(dtype)
    y = rng.integers(0, 10, 512)

    def train():
        m = fnn.Sequential([fnn.Dense(256), fnn.BatchNorm(), fnn.Activation("relu"), fnn.Dense(256, "relu"),
                            fnn.LayerNorm(), fnn.Dense(10)], input_dim=96, dtype=dtype, seed=7)
        m.compile("cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9))
        m.fit(X, y, epochs=2, batch_size=256, verbose=0)
        return m.get_weights(), m.predict(X)

    w1, p1 = with_threads(1, train)
    for nt in (2, 3, 8):  # the batch statistics' sums do not depend on the count
        w2, p2 = with_threads(nt, train)
        for a, b in zip(w1, w2):
            assert np.array_equal(a, b), nt
        assert np.array_equal(p1, p2), nt


def test_digits_with_batchnorm_reach_97_percent():
    from fastnn.datasets import load_digits
    X, y = load_digits()
    perm = np.random.default_rng(0).permutation(len(y))
    X, y = X[perm], y[perm]
    Xtr, Xte, ytr, yte = X[:1400], X[1400:], y[:1400], y[1400:]
    model = fnn.Sequential([fnn.Dense(256), fnn.BatchNorm(), fnn.Activation("relu"), fnn.Dropout(0.2), fnn.Dense(10)],
                           seed=0)
    steps = 40 * 28  # epochs x batches
    model.compile("cross_entropy", optimizer=fnn.Adam(fnn.schedules.CosineDecayByStep(0.01, steps)), metrics=["accuracy"])
    model.fit(Xtr, ytr, epochs=40, batch_size=50, verbose=0)
    assert model.evaluate(Xte, yte)["accuracy"] >= 0.97
    mf = _core.ModelFile.from_buffer(fnn.saving.dumps(model))
    assert np.array_equal(mf.predict(Xte), model.predict(Xte))
