"""scipy.sparse input through Sequential (fit, evaluate, predict, train_on_batch, compute_gradients) and
the scikit-learn estimators: every format gives the bits of the same rows given dense, the engine
densifies a batch at a time, and malformed or non-finite matrices are refused by name."""
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn import models

sparse = pytest.importorskip("scipy.sparse")

FORMATS = ["csr", "csc", "coo", "lil", "dok", "bsr"]


def _data(dtype=np.float64, n=150, d=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[rng.random((n, d)) < 0.8] = 0
    X[5] = 0  # an empty row
    y = (X[:, :3].sum(1) > 0).astype(int) + (X[:, 3] > 0.5)
    return X.astype(dtype), y


def _model(dtype, dropout=0.2):
    m = fnn.Sequential([fnn.Dense(16, "relu"), fnn.Dropout(dropout), fnn.Dense(3)], input_dim=30, dtype=dtype, seed=4)
    m.compile("cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9), metrics=["accuracy"])
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_trains_and_predicts_as_dense(fmt, dtype):
    X, y = _data(dtype)
    Xs = sparse.csr_matrix(X).asformat(fmt)
    runs = []
    for rows, head in ((X, X[:40]), (Xs, sparse.csr_matrix(X[:40]).asformat(fmt))):
        m = _model(dtype)
        h = m.fit(rows, y, epochs=3, batch_size=16, validation_split=0.2, verbose=0)
        m.train_on_batch(head, y[:40])
        g = m.compute_gradients(rows, y)
        runs.append((m.get_weights(), h.history, m.predict(rows), m.evaluate(rows, y), g, m._grads.copy()))
    (w1, h1, p1, e1, g1, d1), (w2, h2, p2, e2, g2, d2) = runs
    for a, b in zip(w1, w2):
        assert np.array_equal(a, b)
    assert h1["loss"] == h2["loss"] and h1["val_loss"] == h2["val_loss"]
    assert np.array_equal(p1, p2) and e1 == e2 and g1 == g2 and np.array_equal(d1, d2)


def test_sparse_arrays_and_a_model_built_from_sparse_rows():
    X, y = _data()
    m = fnn.Sequential([fnn.Dense(8), fnn.Dense(3)], seed=0)  # built by the first fit
    m.compile("cross_entropy")
    m.fit(sparse.csr_array(X), y, epochs=1, verbose=0)
    assert m.input_dim == 30
    assert np.array_equal(m.predict(sparse.coo_array(X)), m.predict(X))


def test_compute_gradients_densifies_blocks_and_weighs_them(monkeypatch):
    """With a block smaller than the rows, compute_gradients sums the blocks' gradients weighted by their
    share of the rows: the whole batch's gradient (penalties counted once) to rounding."""
    X, y = _data(np.float64, n=103)
    w = np.random.default_rng(1).uniform(0.5, 2.0, 103)
    m = fnn.Sequential([fnn.Dense(16, "tanh", l2=0.01, l1=0.001), fnn.Dense(3, l2=0.02)], input_dim=30,
                       dtype="float64", seed=2)
    m.compile("cross_entropy")
    m.layers[0].trainable = False  # a frozen layer's penalty too
    full = m.compute_gradients(X, y, sample_weight=w), m._grads.copy()
    monkeypatch.setattr(models, "_SPARSE_BLOCK", 30 * 10)  # blocks of 10 rows
    blocks = m.compute_gradients(sparse.csr_matrix(X), y, sample_weight=w), m._grads.copy()
    assert blocks[0] == pytest.approx(full[0], rel=1e-13)
    np.testing.assert_allclose(blocks[1], full[1], rtol=1e-12, atol=1e-15)
    assert m._net.workspace[0] == 103  # the dense call sized the workspace; the blocks needed 10 rows
    m2 = fnn.Sequential([fnn.Dense(16, "tanh"), fnn.Dense(3)], input_dim=30, dtype="float64", seed=2)
    m2.compile("cross_entropy")
    m2.compute_gradients(sparse.csr_matrix(X), y)
    assert m2._net.workspace[0] == 10


def test_duplicates_are_summed_and_unsorted_indices_taken():
    X, y = _data()
    coo = sparse.coo_matrix(X)
    half = coo.data / 2
    dup = sparse.coo_matrix((np.r_[half, half], (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col])), shape=X.shape)
    m = _model(np.float64)
    np.testing.assert_allclose(m.predict(dup), m.predict(X), rtol=1e-14)
    csr = sparse.csr_matrix(X)
    rev = [np.arange(a, b)[::-1] for a, b in zip(csr.indptr[:-1], csr.indptr[1:])]
    order = np.concatenate(rev)
    unsorted = sparse.csr_matrix((csr.data[order], csr.indices[order], csr.indptr), shape=X.shape)
    assert not unsorted.has_sorted_indices
    assert np.array_equal(m.predict(unsorted), m.predict(X))


def test_bad_sparse_input_is_named():
    X, y = _data()
    m = _model(np.float64)
    bad = sparse.csr_matrix(X)
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN or Inf"):
        m.fit(bad, y, verbose=0)
    bad.data[3] = np.inf
    with pytest.raises(ValueError, match="validation_data X: contains NaN or Inf"):
        m.fit(X, y, validation_data=(bad, y), verbose=0)
    with pytest.raises(ValueError, match="X: expected 30 features"):
        m.predict(sparse.csr_matrix(X[:, :20]))
    with pytest.raises(ValueError, match="X: has no rows"):
        m.predict(sparse.csr_matrix((0, 30)))
    # indices and indptr that scipy's constructor does not check
    good = sparse.csr_matrix(X)
    for name, indptr, indices in (
            ("column indices must lie in \\[0, 30\\)", good.indptr, np.where(good.indices == 7, 30, good.indices)),
            ("column indices", good.indptr, np.where(good.indices == 7, -1, good.indices)),
            ("indptr must start at 0 and never decrease", np.r_[good.indptr[:3], good.indptr[1], good.indptr[4:]],
             good.indices),
            ("indptr counts", np.r_[good.indptr[:-1], good.indptr[-1] + 5], good.indices)):
        m_ = sparse.csr_matrix(X.shape)
        m_.data, m_.indices, m_.indptr = good.data, indices.astype(good.indices.dtype), indptr.astype(good.indptr.dtype)
        with pytest.raises(ValueError, match="X: " + name):
            m.predict(m_)
    with pytest.raises(TypeError, match="X: expected a numeric sparse matrix"):
        m.predict(sparse.csr_matrix(X.astype(np.complex128)))


# ---- the scikit-learn estimators ----------------------------------------------------------------------

def _estimators():
    """(scikit-learn's MLPClassifier, MLPRegressor, fastnn's), or skip without scikit-learn (the tests
    above need scipy alone)."""
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPClassifier as SkClassifier, MLPRegressor as SkRegressor
    from fastnn.sklearn import MLPClassifier, MLPRegressor
    return SkClassifier, SkRegressor, MLPClassifier, MLPRegressor


def _quiet(est, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(*a, **k)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_estimators_fit_sparse_as_scikit_learn_does(solver, fmt, monkeypatch):
    """The same steps as scikit-learn's on the same sparse X (full batches, no shuffle), and as fastnn's
    own on the dense X; L-BFGS's gradients come in blocks of rows (made small here)."""
    SkClassifier, SkRegressor, MLPClassifier, MLPRegressor = _estimators()
    X, y = _data(np.float64, n=120)
    Xs = sparse.csr_matrix(X).asformat(fmt)
    reg_y = X @ np.arange(1.0, 31.0) / 30
    params = dict(hidden_layer_sizes=(7,), solver=solver, max_iter=15, random_state=0, alpha=1e-3)
    if solver == "sgd":
        params.update(batch_size=120, shuffle=False, learning_rate_init=0.05)
    monkeypatch.setattr(models, "_SPARSE_BLOCK", 30 * 25)
    for sk_cls, fnn_cls, target in ((SkClassifier, MLPClassifier, y), (SkRegressor, MLPRegressor, reg_y)):
        sk, ours, dense = _quiet(sk_cls(**params), Xs, target), _quiet(fnn_cls(**params), Xs, target), \
            _quiet(fnn_cls(**params), X, target)
        for a, b, c in zip(list(ours.coefs_) + list(ours.intercepts_), list(sk.coefs_) + list(sk.intercepts_),
                           list(dense.coefs_) + list(dense.intercepts_)):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.predict(Xs), sk.predict(Xs), rtol=1e-6, atol=1e-8)
        assert ours.score(Xs, target) == pytest.approx(sk.score(Xs, target), abs=1e-6)


def test_estimators_with_sparse_early_stopping_partial_fit_and_float32():
    MLPClassifier = _estimators()[2]
    X, y = _data(np.float32, n=200)
    Xs = sparse.csr_matrix(X)
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=20, random_state=0), Xs, y)
    assert clf.coefs_[0].dtype == np.float32 and len(clf.validation_scores_) == clf.n_iter_
    dense = _quiet(MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=20, random_state=0), X, y)
    assert np.array_equal(clf.predict_proba(Xs), dense.predict_proba(X))
    inc = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    inc.partial_fit(Xs[:100], y[:100], classes=[0, 1, 2])
    inc.partial_fit(Xs[100:], y[100:])
    assert inc.predict(Xs).shape == (200,)
    bad = Xs.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(max_iter=2).fit(bad, y)
