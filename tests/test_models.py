"""Sequential: fit loop, callbacks, validation, weights, errors, fusion of the final activation."""
import numpy as np
import pytest

import fastnn as fnn


def blobs(n=300, d=6, c=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    centers = rng.normal(0, 3, (c, d))
    return (centers[y] + rng.normal(size=(n, d))).astype(dtype), y


def classifier(seed=0, **kw):
    m = fnn.Sequential([fnn.Dense(16, "relu"), fnn.Dense(3)], seed=seed, **kw)
    m.compile("cross_entropy", fnn.SGD(lr=0.05, momentum=0.9), metrics=["accuracy"])
    return m


# ---- fit, history, validation --------------------------------------------------------------------

def test_history_keys_and_values():
    X, y = blobs()
    h = classifier().fit(X, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)
    assert h.epoch == [0, 1, 2]
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "samples_per_s"}
    assert all(len(v) == 3 for v in h.history.values())
    assert h.history["lr"] == [0.05] * 3
    assert all(t > 0 for t in h.history["time"]) and all(s > 0 for s in h.history["samples_per_s"])
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_validation_split_takes_the_last_rows_before_shuffling():
    X, y = blobs(n=100)
    m = classifier()
    h = m.fit(X, y, epochs=1, batch_size=16, validation_split=0.25, verbose=0)
    ev = m.evaluate(X[75:], y[75:])
    assert h.history["val_loss"][0] == pytest.approx(ev["loss"], rel=1e-12)
    assert h.history["val_accuracy"][0] == ev["accuracy"]
    m2 = classifier()
    h2 = m2.fit(X[:75], y[:75], epochs=1, batch_size=16, validation_data=(X[75:], y[75:]), verbose=0)
    assert m2._params.tobytes() == m._params.tobytes()
    assert h2.history["val_loss"] == h.history["val_loss"]


def test_epoch_loss_is_the_mean_of_batch_losses():
    X, y = blobs(n=70)
    m = classifier()
    m.optimizer.lr = 0.0  # nothing changes: every batch loss is the loss of the same model
    h = m.fit(X, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert h.history["loss"][0] == pytest.approx(m.evaluate(X, y)["loss"], rel=1e-12)


def test_shuffle_false_is_a_fixed_order_and_shuffle_true_reproducible():
    X, y = blobs()
    b = classifier()
    for i in range(0, len(X), 32):
        b.train_on_batch(X[i:i + 32], y[i:i + 32])
    # one epoch of fit without shuffling is train_on_batch over the consecutive batches
    c = classifier()
    c.fit(X, y, epochs=1, shuffle=False, verbose=0)
    assert c._params.tobytes() == b._params.tobytes()
    d, e = classifier(seed=3), classifier(seed=3)
    d.fit(X, y, epochs=2, verbose=0)
    e.fit(X, y, epochs=2, verbose=0)
    assert d._params.tobytes() == e._params.tobytes()


def test_sample_weight_and_class_weight():
    X, y = blobs(n=60)
    m = classifier()
    l1 = m.compute_gradients(X, y)
    g1 = m._grads.copy()
    l2 = m.compute_gradients(X, y, sample_weight=np.full(60, 2.0))
    np.testing.assert_allclose(m._grads, 2 * g1, rtol=1e-12)
    assert l2 == pytest.approx(2 * l1, rel=1e-12)
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    a, b = classifier(), classifier()
    a.fit(X, y, epochs=2, class_weight=cw, verbose=0)
    b.fit(X, y, epochs=2, sample_weight=np.array([cw[k] for k in y]), verbose=0)
    assert a._params.tobytes() == b._params.tobytes()
    with pytest.raises(ValueError, match="sample_weight"):
        m.fit(X, y, sample_weight=np.ones(5), verbose=0)


def test_one_hot_targets_equal_labels():
    X, y = blobs(n=64)
    a, b = classifier(), classifier()
    a.fit(X, y, epochs=2, verbose=0)
    b.fit(X, np.eye(3)[y], epochs=2, verbose=0)
    np.testing.assert_allclose(a._params, b._params, rtol=1e-12, atol=1e-14)


def test_keras_style_softmax_equals_pytorch_style_logits():
    X, y = blobs(n=90)
    styles = [
        [fnn.Dense(16, "relu"), fnn.Dense(3, "softmax")],
        [fnn.Dense(16, "relu"), fnn.Dense(3)],
        [fnn.Dense(16, "relu"), fnn.Dense(3), fnn.Activation("softmax")],
    ]
    models = []
    for layers in styles:
        m = fnn.Sequential(layers, seed=0)
        m.compile("cross_entropy", "adam")
        m.fit(X, y, epochs=2, verbose=0)
        models.append(m)
    for m in models[1:]:
        assert m._params.tobytes() == models[0]._params.tobytes()
        assert np.array_equal(m.predict(X), models[0].predict(X))
    proba = models[0].predict(X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    # sigmoid + binary cross-entropy likewise
    yb = (y == 1).astype(float)
    outs = []
    for act in ("sigmoid", None):
        m = fnn.Sequential([fnn.Dense(8, "tanh"), fnn.Dense(1, act)], seed=0)
        m.compile("binary_cross_entropy", "adam")
        m.fit(X, yb, epochs=2, verbose=0)
        outs.append(m.predict(X))
    assert np.array_equal(outs[0], outs[1]) and outs[0].min() >= 0 and outs[0].max() <= 1


def test_predict_is_batched_and_raw_for_regression():
    X, y = blobs(n=50)
    m = fnn.Sequential([fnn.Dense(8, "elu"), fnn.Dense(2)], dtype="float64", seed=0)
    m.compile("mse")
    a, b = m.predict(X, batch_size=7), m.predict(X)
    assert np.array_equal(a, b)
    w0, b0, w1, b1 = m.get_weights()
    h = X @ w0 + b0
    h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
    np.testing.assert_allclose(b, h @ w1 + b1, rtol=1e-12)


def test_predict_before_compile_gives_the_declared_output():
    X, _ = blobs(n=10)
    m = fnn.Sequential([fnn.Dense(3, "softmax")], seed=0)
    p = m.predict(X)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    m.compile("cross_entropy")
    np.testing.assert_allclose(m.predict(X), p, rtol=1e-6)


def test_float_inputs_of_another_dtype_are_converted():
    X, y = blobs(n=40)
    m32 = classifier()
    m32.fit(X.astype(np.float64), y, epochs=1, verbose=0)
    m16 = classifier()
    m16.fit(X.astype(np.float32).astype(np.float16).astype(np.float32), y, epochs=1, verbose=0)
    assert m32.predict(X).dtype == np.float32
    m64 = classifier(dtype="float64")
    m64.fit(X.astype(np.float32), y, epochs=1, verbose=0)
    assert m64._params.dtype == np.float64 and m64.predict(X).dtype == np.float64


def test_lr_schedule_and_lr_callbacks():
    X, y = blobs(n=64)
    m = fnn.Sequential([fnn.Dense(3)], seed=0)
    m.compile("cross_entropy", fnn.SGD(lr=fnn.schedules.StepDecay(0.1, drop=0.5, every=1)))
    h = m.fit(X, y, epochs=3, verbose=0)
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    m2 = classifier()
    h2 = m2.fit(X, y, epochs=3, verbose=0, callbacks=[fnn.LearningRateScheduler(lambda e: 0.01 * (e + 1))])
    assert h2.history["lr"] == pytest.approx([0.01, 0.02, 0.03])


# ---- callbacks and ways out of fit ---------------------------------------------------------------

class Recorder(fnn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events, self.weights = [], []

    def on_train_begin(self, logs=None):
        self.events.append("begin")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(epoch)
        self.weights.append(self.model.get_weights())

    def on_train_end(self, logs=None):
        self.events.append("end")


class Script(fnn.callbacks.Callback):
    """Replaces val_loss by a scripted sequence (placed before EarlyStopping)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


def test_early_stopping_on_a_scripted_sequence_restores_the_best_weights():
    X, y = blobs()
    m = classifier()
    rec = Recorder()
    es = fnn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = m.fit(X, y, epochs=20, verbose=0, callbacks=[Script([1.0, 0.8, 0.5, 0.6, 0.55, 0.4, 0.3]), rec, es])
    assert h.epoch == [0, 1, 2, 3, 4]  # best at epoch 2, two epochs without improvement
    assert h.history["val_loss"] == [1.0, 0.8, 0.5, 0.6, 0.55]
    for a, b in zip(m.get_weights(), rec.weights[2]):
        assert np.array_equal(a, b)


def test_stop_training_ends_after_the_current_epoch():
    class Stop(fnn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    X, y = blobs()
    rec = Recorder()
    h = classifier().fit(X, y, epochs=10, verbose=0, callbacks=[Stop(), rec])
    assert h.epoch == [0, 1] and rec.events == ["begin", 0, 1, "end"]


def test_keyboard_interrupt_runs_on_train_end_restores_and_propagates():
    class Interrupt(fnn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt

    X, y = blobs()
    m = classifier()
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=10, verbose=0, callbacks=[Script([0.9, 0.2, 0.5, 0.6] + [1.0] * 6), rec,
                                                      fnn.EarlyStopping(monitor="val_loss", patience=100,
                                                                        restore_best_weights=True),
                                                      Interrupt()])
    assert rec.events[-1] == "end"
    for a, b in zip(m.get_weights(), rec.weights[1]):  # best scripted val_loss at epoch 1
        assert np.array_equal(a, b)


def test_nonfinite_loss_names_epoch_and_batch_and_keeps_the_last_good_weights():
    X, y = blobs(n=100, dtype=np.float32)
    X[45] = 3e38  # finite input whose forward pass overflows (float32) in batch 5 of epoch 1
    m = classifier()
    ref = classifier()
    with pytest.raises(fnn.NonFiniteLossError, match=r"epoch 1, batch 5 of 10") as e:
        m.fit(X, y, epochs=3, batch_size=10, shuffle=False, verbose=0)
    assert (e.value.epoch, e.value.batch) == (0, 4)
    for i in range(4):
        ref.train_on_batch(X[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10])
    assert m._params.tobytes() == ref._params.tobytes()
    assert np.isfinite(m._params).all()
    with pytest.raises(fnn.NonFiniteLossError, match="train_on_batch"):
        m.train_on_batch(X[40:50], y[40:50])
    assert m._params.tobytes() == ref._params.tobytes()


def test_progress_output(capsys):
    X, y = blobs(n=64)
    classifier().fit(X, y, epochs=2, verbose=1, validation_split=0.25)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "samples/s" in err and "val_accuracy" in err
    assert "[" in err and "loss:" in err
    classifier().fit(X, y, epochs=2, verbose=2)
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "[" not in err
    classifier().fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().err == ""


# ---- weights and structure -----------------------------------------------------------------------

def test_layer_views_share_memory_with_the_model():
    m = fnn.Sequential([fnn.Dense(4, "relu"), fnn.Dense(2, use_bias=False)], input_dim=3, dtype="float64", seed=0)
    m.compile("mse")
    d0, d1 = m.layers
    assert d0.weight.shape == (3, 4) and d0.bias.shape == (4,) and d1.bias is None
    d0.weight[...] = 0.5
    d0.bias[...] = 0.1
    d1.weight[...] = 1.0
    X = np.ones((2, 3))
    np.testing.assert_allclose(m.predict(X), np.full((2, 2), 4 * 1.6))
    ws = m.get_weights()
    assert len(ws) == 3 and ws[0] is not d0.weight
    ws[0][...] = 0
    assert d0.weight[0, 0] == 0.5
    m.set_weights(ws)
    assert d0.weight[0, 0] == 0.0
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        m.set_weights([ws[0], np.zeros(5), ws[2]])


def test_kernel_init_variants():
    for init in ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform"):
        m = fnn.Sequential([fnn.Dense(400, kernel_init=init)], input_dim=300, dtype="float64", seed=0)
        w = m.layers[0].weight
        fan = 300 if init.startswith("he") else 700
        assert w.std() == pytest.approx(np.sqrt(2 / fan), rel=0.02)
        assert not m.layers[0].bias.any()
    assert fnn.Dense(3, "relu").initializer() == "he_normal"
    assert fnn.Dense(3, "tanh").initializer() == "glorot_uniform"
    with pytest.raises(ValueError, match="kernel_init"):
        fnn.Dense(3, kernel_init="zeros")


def test_build_without_initializing_leaves_zeros_for_weights_copied_in():
    m = fnn.Sequential([fnn.Dense(5, "relu"), fnn.Dense(2)], seed=0)
    m.build(3, initialize=False)
    assert all(not w.any() for w in m.get_weights())
    drawn = fnn.Sequential([fnn.Dense(5, "relu"), fnn.Dense(2)], input_dim=3, seed=0)
    m.set_weights(drawn.get_weights())   # then the model is the initialized one, bit for bit
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    assert np.array_equal(m.predict(x), drawn.predict(x))


# ---- errors --------------------------------------------------------------------------------------

def test_not_compiled():
    m = fnn.Sequential([fnn.Dense(2)], input_dim=3)
    X = np.ones((4, 3))
    for call in (lambda: m.fit(X, X[:, :2], verbose=0), lambda: m.evaluate(X, X[:, :2]),
                 lambda: m.train_on_batch(X, X[:, :2]), lambda: m.compute_gradients(X, X[:, :2])):
        with pytest.raises(fnn.NotCompiledError):
            call()


def test_bad_data_raises_naming_the_argument():
    X, y = blobs(n=20)
    m = classifier()
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN"):
        m.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="y: class labels must be in"):
        m.fit(X, np.where(y == 0, 3, y), verbose=0)
    with pytest.raises(ValueError, match="y: class labels must be in"):
        m.fit(X, y - 1, verbose=0)
    with pytest.raises(ValueError, match="y: has 19 rows"):
        m.fit(X, y[:19], verbose=0)
    with pytest.raises(ValueError, match="X: expected 6 features"):
        m.fit(X[:, :5], y, verbose=0)
    with pytest.raises(ValueError, match="X: expected a 2-D"):
        m.predict(X[0])
    with pytest.raises(TypeError, match="X"):
        m.predict(np.array([["a"] * 6]))
    with pytest.raises(ValueError, match="y: contains NaN"):
        m.fit(X, np.full(20, np.nan), verbose=0)
    with pytest.raises(ValueError, match="whole"):
        m.fit(X, y + 0.5, verbose=0)
    r = fnn.Sequential([fnn.Dense(2)], seed=0)
    r.compile("binary_cross_entropy")
    with pytest.raises(ValueError, match=r"y: binary cross-entropy targets must lie in \[0, 1\].*row 0"):
        r.fit(X, np.full((20, 2), 2.0), verbose=0)
    with pytest.raises(ValueError, match="y: expected 2 columns"):
        r.fit(X, np.zeros((20, 3)), verbose=0)
    with pytest.raises(ValueError, match="loss"):
        r.compile("hinge")
    with pytest.raises(ValueError, match="activation"):
        fnn.Dense(3, "swish")
    with pytest.raises(ValueError, match="dtype"):
        fnn.Sequential([fnn.Dense(2)], dtype="float16")
    with pytest.raises(ValueError, match="units"):
        fnn.Dense(0)


def test_assigning_weight_copies_into_the_model():
    m = fnn.Sequential([fnn.Dense(2, use_bias=False)], input_dim=3, dtype="float64", seed=0)
    view = m.layers[0].weight
    m.layers[0].weight = np.ones((3, 2))
    assert m.layers[0].weight is view and view.sum() == 6
    np.testing.assert_allclose(m.predict(np.ones((1, 3))), [[3.0, 3.0]])
    with pytest.raises(ValueError, match="shape"):
        m.layers[0].weight = np.ones((2, 3))
    with pytest.raises(ValueError, match="no bias"):
        m.layers[0].bias = np.ones(2)
    with pytest.raises(ValueError, match="not built"):
        fnn.Dense(3).weight = np.ones((2, 3))


def test_workspace_is_sized_once_per_batch_size():
    X, y = blobs(n=500)
    m = classifier()
    m.fit(X, y, epochs=3, batch_size=64, verbose=0)
    assert m._net.workspace == (64, 1)  # one allocation for every batch of every epoch
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)  # smaller batches reuse it
    assert m._net.workspace == (64, 1)
    m.fit(X, y, epochs=1, batch_size=64, validation_split=0.2, verbose=0)  # validation: bigger blocks
    rows, n = m._net.workspace
    assert n == 2 and rows >= 100
    m.fit(X, y, epochs=2, batch_size=64, validation_split=0.2, verbose=0)
    assert m._net.workspace == (rows, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_data_is_used_in_place(dtype):
    """Data that cannot be written (np.frombuffer of bytes, a read-only memmap) trains and predicts
    exactly as a writable copy does: the binding takes const views of the inputs."""
    X, y = blobs(n=90, dtype=dtype)
    w = np.linspace(0.5, 1.5, 90).astype(dtype)

    def frozen(a):
        r = np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)
        assert not r.flags.writeable
        return r

    results = []
    for data in ((X, y, w), tuple(frozen(a) for a in (X, y, w))):
        m = classifier(dtype=np.dtype(dtype).name)
        h = m.fit(data[0], data[1], sample_weight=data[2], epochs=2, batch_size=16, validation_split=0.2,
                  verbose=0)
        m.train_on_batch(data[0][:10], data[1][:10])
        m.compute_gradients(data[0], data[1])
        results.append((m.predict(data[0]).tobytes(), m.evaluate(data[0], data[1])["loss"], h.history["loss"],
                        m._params.tobytes()))
    assert results[0] == results[1]
