"""End-to-end training: the model learns real data sets (scikit-learn is a test extra)."""
import numpy as np
import pytest

import fastnn as fnn

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def split(loader):
    X, y = loader(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=42, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    return scaler.transform(Xtr), scaler.transform(Xte), ytr, yte


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_digits_accuracy(dtype):
    Xtr, Xte, ytr, yte = split(load_digits)
    model = fnn.Sequential([fnn.Dense(128, "gelu", l2=1e-4), fnn.Dropout(0.1), fnn.Dense(10)], dtype=dtype, seed=0)
    model.compile("cross_entropy", fnn.Adam(lr=0.001), metrics=["accuracy"])
    history = model.fit(Xtr, ytr, epochs=50, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 10
    assert model.evaluate(Xte, yte)["accuracy"] >= 0.97
    proba = model.predict(Xte)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert np.mean(proba.argmax(axis=1) == yte) >= 0.97


def test_breast_cancer_accuracy():
    Xtr, Xte, ytr, yte = split(load_breast_cancer)
    model = fnn.Sequential([fnn.Dense(16, "relu", l2=1e-3), fnn.Dense(1, "sigmoid")], seed=0)
    model.compile("binary_cross_entropy", fnn.Adam(lr=0.01), metrics=["accuracy"])
    model.fit(Xtr, ytr, epochs=20, batch_size=32, verbose=0)
    assert model.evaluate(Xte, yte)["accuracy"] >= 0.95
    p = model.predict(Xte)
    assert p.shape == (len(yte), 1) and p.min() >= 0 and p.max() <= 1


def test_smooth_regression_r2():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (3000, 3))
    y = np.sin(X[:, 0]) * np.cos(X[:, 1]) + 0.3 * X[:, 2] ** 2
    model = fnn.Sequential([fnn.Dense(64, "tanh"), fnn.Dense(64, "tanh"), fnn.Dense(1)], seed=0)
    model.compile("mse", fnn.Adam(lr=0.003), metrics=["r2"])
    model.fit(X[:2400], y[:2400], epochs=40, batch_size=32, verbose=0)
    assert model.evaluate(X[2400:], y[2400:])["r2"] >= 0.9
    pred = model.predict(X[2400:])[:, 0]
    r2 = 1 - np.sum((pred - y[2400:]) ** 2) / np.sum((y[2400:] - y[2400:].mean()) ** 2)
    assert r2 >= 0.9
