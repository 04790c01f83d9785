"""Gradient clipping (clipnorm, global_clipnorm, clipvalue: Keras's definitions) and Dense(max_norm=)
(Keras's MaxNorm), run in C: each update against NumPy applying the same formulas to the gradients
compute_gradients returns, for every optimizer; the same bits with any thread count; bad values named."""
import numpy as np
import pytest

import fastnn as fnn
from conftest import with_threads
from test_optimizers import adam, rmsprop, sgd


def _model(opt, *, max_norm=None, bn=False, frozen=()):
    layers = [fnn.Dense(7, "tanh", l2=0.01, max_norm=max_norm)]
    if bn:
        layers.append(fnn.BatchNorm())
    layers += [fnn.Dense(5, "relu"), fnn.Dense(3, max_norm=max_norm)]
    m = fnn.Sequential(layers, input_dim=4, dtype="float64", seed=1)
    m.compile("cross_entropy", optimizer=opt)
    rng = np.random.default_rng(3)
    for layer in m.layers:
        for name, a in layer.parameters():
            if name == "bias":
                a[...] = rng.normal(0, 0.5, a.shape)
    for k in frozen:
        m.layers[k].trainable = False
    return m


def _tensors(m):
    """[(param view, grad view, decay)] of the trainable tensors, in the engine's order."""
    out = []
    for layer in m.layers:
        if layer.trainable:
            for name, (p, g) in layer._views.items():
                if not name.startswith("moving"):
                    out.append((p, g, 1.0 if name == "weight" else 0.0))
    return out


def keras_clip(grads, clipnorm=None, global_clipnorm=None, clipvalue=None):
    """Keras 3's BaseOptimizer._clip_gradients, in NumPy float64."""
    if clipnorm:
        return [g * clipnorm / max(np.sqrt((g * g).sum()), clipnorm) for g in grads]
    if global_clipnorm:
        norm = np.sqrt(sum((g * g).sum() for g in grads))
        return [g * global_clipnorm * min(1 / norm, 1 / global_clipnorm) for g in grads]
    if clipvalue:
        return [np.clip(g, -clipvalue, clipvalue) for g in grads]
    return grads


def keras_max_norm(w, max_value):
    norms = np.sqrt((w * w).sum(axis=0, keepdims=True))
    return w * np.clip(norms, 0, max_value) / (1e-7 + norms)


CLIPS = [{"clipnorm": 0.05}, {"clipnorm": 100.0}, {"global_clipnorm": 0.1}, {"global_clipnorm": 1e3},
         {"clipvalue": 0.01}, {"clipvalue": 10.0}]
OPTIMIZERS = {
    "sgd": (lambda **c: fnn.SGD(lr=0.1, **c), lambda: sgd(0.1)),
    "sgd-momentum-wd": (lambda **c: fnn.SGD(lr=0.05, momentum=0.9, weight_decay=0.1, **c),
                        lambda: sgd(0.05, 0.9, False, 0.1)),
    "adam": (lambda **c: fnn.Adam(lr=0.01, **c), lambda: adam(0.01)),
    "adamw": (lambda **c: fnn.AdamW(lr=0.01, weight_decay=0.1, **c), lambda: adam(0.01, weight_decay=0.1, decoupled=True)),
    "rmsprop": (lambda **c: fnn.RMSprop(lr=0.01, momentum=0.5, **c), lambda: rmsprop(0.01, momentum=0.5)),
}


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_each_update_clips_as_keras_then_steps(opt, clip):
    make, ref = OPTIMIZERS[opt]
    m = _model(make(**clip), bn=True, frozen=(2,))
    step = ref()
    rng = np.random.default_rng(0)
    tensors = _tensors(m)
    states = [{} for _ in tensors]
    for t in range(1, 4):
        X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)
        m.compute_gradients(X, y)  # unclipped: clipping is the optimizer's
        grads = keras_clip([g.copy() for _, g, _ in tensors], **clip)
        expected = [step(p.copy(), g, s, t, d) for (p, _, d), g, s in zip(tensors, grads, states)]
        m.train_on_batch(X, y)
        for (p, _, _), e in zip(tensors, expected):
            np.testing.assert_allclose(p, e, rtol=1e-12, atol=1e-14)


def test_compute_gradients_does_not_clip():
    m = _model(fnn.SGD(lr=0.1, clipvalue=1e-6))
    X, y = np.random.default_rng(1).normal(size=(6, 4)), np.arange(6) % 3
    m.compute_gradients(X, y)
    assert np.abs(m.layers[0].weight_grad).max() > 1e-3


@pytest.mark.parametrize("max_norm", [0.5, 50.0])
def test_max_norm_after_every_update(max_norm):
    m = _model(fnn.SGD(lr=0.5), max_norm=max_norm)
    rng = np.random.default_rng(2)
    for _ in range(3):
        X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)
        m.compute_gradients(X, y)
        want = [keras_max_norm(l.weight - 0.5 * (l.weight_grad), max_norm) if l.max_norm else
                l.weight - 0.5 * l.weight_grad for l in m.layers]
        m.train_on_batch(X, y)
        for layer, w in zip(m.layers, want):
            np.testing.assert_allclose(layer.weight, w, rtol=1e-12, atol=1e-15)
    norms = np.sqrt((m.layers[0].weight ** 2).sum(axis=0))
    assert norms.max() <= max_norm
    if max_norm < 1:
        assert norms.max() > 0.99 * max_norm  # the constraint binds


def test_max_norm_leaves_frozen_layers_alone():
    m = _model(fnn.SGD(lr=0.5), max_norm=0.01, frozen=(0,))
    w0 = m.layers[0].weight.copy()
    m.train_on_batch(np.ones((4, 4)), np.arange(4) % 3)
    assert np.array_equal(m.layers[0].weight, w0)
    assert np.sqrt((m.layers[2].weight ** 2).sum(axis=0)).max() <= 0.01


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("clip", [{"global_clipnorm": 0.5}, {"clipnorm": 0.2}, {"clipvalue": 0.001}])
def test_same_bits_with_any_thread_count(clip, dtype):
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(600, 200)).astype(dtype), rng.integers(0, 10, 600)

    def train():
        m = fnn.Sequential([fnn.Dense(300, "relu", max_norm=1.5), fnn.Dense(10, max_norm=2.0)], input_dim=200,
                           dtype=dtype, seed=0)
        m.compile("cross_entropy", optimizer=fnn.Adam(lr=0.01, **clip))
        m.fit(X, y, epochs=2, batch_size=300, verbose=0)
        return m.get_weights()

    one = with_threads(1, train)
    for nt in (2, 3, 8):  # parts of the norms fixed, whatever the count (and more threads than cores)
        for a, b in zip(one, with_threads(nt, train)):
            assert np.array_equal(a, b), nt


def test_clipping_keeps_a_diverging_run_finite():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 10)) * 100
    y = X @ rng.normal(size=(10, 1))
    runs = {}
    for name, opt in (("plain", fnn.SGD(lr=0.01)), ("clipped", fnn.SGD(lr=0.01, global_clipnorm=1.0))):
        m = fnn.Sequential([fnn.Dense(16, "relu"), fnn.Dense(1)], input_dim=10, dtype="float64", seed=0)
        m.compile("mse", optimizer=opt)
        try:
            runs[name] = m.fit(X, y, epochs=5, verbose=0).history["loss"][-1]
        except fnn.NonFiniteLossError:
            runs[name] = float("nan")
    assert not np.isfinite(runs["plain"]) or runs["plain"] > 1e6
    assert np.isfinite(runs["clipped"])


@pytest.mark.parametrize("kw, match", [
    ({"clipnorm": 0}, "clipnorm: must be > 0"), ({"clipnorm": -1.0}, "clipnorm: must be > 0"),
    ({"clipvalue": 0.0}, "clipvalue: must be > 0"), ({"global_clipnorm": -2}, "global_clipnorm: must be > 0"),
    ({"clipnorm": float("nan")}, "clipnorm: must be finite"), ({"clipvalue": float("inf")}, "clipvalue: must be finite"),
    ({"clipnorm": 1.0, "clipvalue": 1.0}, "Only one of clipnorm, clipvalue and global_clipnorm"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, "Only one of"),
])
@pytest.mark.parametrize("cls", [fnn.SGD, fnn.Adam, fnn.AdamW, fnn.RMSprop])
def test_bad_clipping_is_named(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw)


def test_bad_max_norm_is_named():
    for bad, exc in ((0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), ("2", TypeError)):
        with pytest.raises(exc, match="max_norm"):
            fnn.Dense(3, max_norm=bad)


def test_settings_survive_save_and_config(tmp_path):
    opt = fnn.Adam(lr=0.01, clipnorm=0.5)
    assert opt.get_config()["clipnorm"] == 0.5 and "clipvalue" not in opt.get_config()
    assert "clipnorm=0.5" in repr(opt)
    m = _model(opt, max_norm=3.0)
    m.save(tmp_path / "m.safetensors")
    assert [l.max_norm for l in fnn.load(tmp_path / "m.safetensors").layers] == [3.0, None, 3.0]
    assert fnn.Dense(2, max_norm=1).get_config()["max_norm"] == 1.0
