"""fastnn.sklearn's estimators: scikit-learn's meanings of the parameters, Pipeline and GridSearchCV,
partial_fit against fit, pickling, and accuracy next to scikit-learn's own MLP on the digits."""
import os
import pickle
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import fastnn as fnn  # noqa: F401
from fastnn.datasets import load_digits
from fastnn.sklearn import MLPClassifier, MLPRegressor, NotFittedError

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(dtype="float64")
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def blobs(n=120, n_features=5, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centers[y] + rng.normal(0, 1, (n, n_features)), y


def test_import_fastnn_imports_no_optional_package():
    code = ("import sys, fastnn; bad = [m for m in ('sklearn', 'matplotlib', 'torch', 'fastnn.sklearn', "
            "'fastnn.benchmark', 'fastnn.cli') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_works_without_scikit_learn():
    """With scikit-learn missing, the estimators fall back to their own small base classes."""
    code = """
import sys
sys.modules['sklearn'] = None  # makes `import sklearn` fail
import numpy as np
from fastnn.sklearn import MLPClassifier, MLPRegressor, HAVE_SKLEARN, NotFittedError
assert not HAVE_SKLEARN
rng = np.random.default_rng(0)
X = rng.normal(size=(200, 4)); y = np.where(X[:, 0] + X[:, 1] > 0, 'yes', 'no')
c = MLPClassifier(hidden_layer_sizes=8, max_iter=100, random_state=0, early_stopping=True, batch_size=32,
                  learning_rate_init=0.01).fit(X, y)
assert c.score(X, y) > 0.9 and list(c.classes_) == ['no', 'yes'] and c.get_params()['max_iter'] == 100
r = MLPRegressor(max_iter=100, random_state=0, learning_rate_init=0.01).fit(X, X[:, 0] * 2)
assert r.score(X, X[:, 0] * 2) > 0.9
import importlib.util
if importlib.util.find_spec('scipy') is not None:  # L-BFGS needs scipy only
    c = MLPClassifier(solver='lbfgs', hidden_layer_sizes=8, max_iter=50, random_state=0, class_weight='balanced').fit(X, y)
    assert c.score(X, y) > 0.9 and c.coefs_[0].shape == (4, 8)
s = MLPClassifier(solver='sgd', learning_rate='adaptive', hidden_layer_sizes=8, max_iter=30, random_state=0,
                  n_iter_no_change=np.inf, learning_rate_init=0.05).fit(X, y)
assert s.n_iter_ == 30 and s.score(X, y) > 0.9
try:
    MLPRegressor().predict(X)
except NotFittedError:
    pass
else:
    raise AssertionError('no NotFittedError')
try:
    c.predict(X[:, :3])
except ValueError as e:
    assert 'features' in str(e)
print('ok')
"""
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_pipeline_and_grid_search_in_two_processes():
    X, y = blobs(n=150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, random_state=0, n_threads=1, batch_size=32,
                                                       learning_rate_init=0.01))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(8,), (16, 8)],
                               "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3, n_jobs=2)
    grid.fit(X, y)
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_score_ > 0.9
    assert grid.score(X, y) > 0.9


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_partial_fit_equals_fit_over_the_same_batches(solver, dropout):
    X, y = blobs(n=96)
    kw = dict(hidden_layer_sizes=(16, 8), solver=solver, batch_size=16, shuffle=False, random_state=3,
              learning_rate_init=0.05, dropout=dropout, alpha=1e-3)
    fitted = MLPClassifier(max_iter=1, **kw).fit(X, y)
    stepped = MLPClassifier(**kw)
    for start in range(0, 96, 16):
        stepped.partial_fit(X[start:start + 16], y[start:start + 16], classes=np.arange(3))
    for a, b in zip(fitted._model.get_weights(), stepped._model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert stepped.t_ == fitted.t_ == 96


def test_sgd_step_is_scikit_learns_step():
    """One full-batch SGD step from scikit-learn's initial weights matches scikit-learn's step:
    the learning rate, momentum and alpha mean the same (float64)."""
    from sklearn.neural_network import MLPClassifier as SkMLP, MLPRegressor as SkReg

    X, y = blobs(n=40)
    for ours, theirs, target in ((MLPClassifier, SkMLP, y), (MLPRegressor, SkReg, np.c_[X[:, 0], X[:, 1] * 2])):
        kw = dict(hidden_layer_sizes=(7,), solver="sgd", learning_rate_init=0.01, momentum=0.9, alpha=0.5,
                  batch_size=40, shuffle=False, random_state=0, max_iter=2, nesterovs_momentum=True)
        sk = theirs(**kw).fit(X, target)
        mine = ours(dtype="float64", **kw)
        mine.partial_fit(X, target, **({"classes": np.arange(3)} if ours is MLPClassifier else {}))
        # start both from scikit-learn's initial weights: refit scikit-learn for 0 steps is not possible,
        # so copy its weights after its fit into ours and compare one further step on each side
        weights = [w for pair in zip(sk.coefs_, sk.intercepts_) for w in pair]
        mine._model.set_weights(weights)
        mine._optimizer = None  # fresh momentum, as scikit-learn's fit starts with
        sk.set_params(warm_start=True, max_iter=1)
        sk.fit(X, target)
        mine.partial_fit(X, target)
        got = mine._model.get_weights()
        want = [w for pair in zip(sk.coefs_, sk.intercepts_) for w in pair]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        # the data loss is the same; the L2 term is taken after the epoch's steps here, before them there
        np.testing.assert_allclose(mine.loss_curve_[-1], sk.loss_curve_[-1], rtol=1e-2)


def test_pickle_round_trip_and_continue(digits):
    Xtr, Xte, ytr, yte = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0).fit(Xtr, ytr)
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clf.predict_proba(Xte), clone.predict_proba(Xte))
    assert clone.n_iter_ == clf.n_iter_ and clone.loss_curve_ == clf.loss_curve_
    clone.partial_fit(Xtr, ytr)  # trainable again after unpickling (fresh optimizer state)
    assert clone.t_ == clf.t_ + len(Xtr)


def test_attributes_and_stopping_rules(digits):
    Xtr, Xte, ytr, yte = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, tol=1e-2, n_iter_no_change=2, random_state=0)
    clf.fit(Xtr, ytr)
    assert clf.n_iter_ < 300 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None
    assert clf.n_features_in_ == 64 and list(clf.classes_) == list(range(10))
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 10 and clf.n_layers_ == 3

    es = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, early_stopping=True, n_iter_no_change=3,
                       learning_rate_init=0.01, random_state=0).fit(Xtr, ytr)
    assert es.best_loss_ is None and len(es.validation_scores_) == es.n_iter_ < 200
    assert es.best_validation_score_ == max(es.validation_scores_)
    # the weights kept are those of the best validation score
    assert es.best_validation_score_ > 0.9

    with pytest.warns(ConvergenceWarning):
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(Xtr, ytr)


def test_warm_start_continues_and_freeze_keeps_layers(digits):
    Xtr, Xte, ytr, yte = digits
    clf = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=3, random_state=0, warm_start=True).fit(Xtr, ytr)
    first = [w.copy() for w in clf._model.get_weights()]
    clf.set_params(freeze=2)
    clf.fit(Xtr, ytr)
    after = clf._model.get_weights()
    for i in range(4):  # the two hidden layers (weight, bias) did not move
        np.testing.assert_array_equal(first[i], after[i])
    assert not np.array_equal(first[4], after[4])
    assert len(clf.loss_curve_) == 6


def test_binary_multilabel_strings_and_regression():
    X, y = blobs(n=200, n_classes=2)
    labels = np.array(["cat", "dog"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=100, random_state=0, learning_rate_init=0.01).fit(X, labels)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1
    assert set(clf.predict(X)) <= {"cat", "dog"} and clf.score(X, labels) > 0.95
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)

    Y = np.c_[X[:, 0] > 0, X[:, 1] > 0, X[:, 0] + X[:, 2] > 0].astype(int)
    ml = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0, learning_rate_init=0.01).fit(X, Y)
    assert ml.predict(X).shape == Y.shape and ml.score(X, Y) > 0.8

    T = np.c_[X @ np.arange(5.0), np.sin(X[:, 0])]
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0, learning_rate_init=0.01).fit(X, T)
    assert reg.predict(X).shape == T.shape and reg.score(X, T) > 0.85  # scikit-learn's: 0.90
    assert reg.out_activation_ == "identity"


def test_errors_name_the_problem():
    X, y = blobs()
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with pytest.raises(ValueError, match="solver"):
        MLPClassifier(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="freeze"):
        MLPClassifier(hidden_layer_sizes=(4,), freeze=3).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, X[:, 0])
    clf = MLPClassifier(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])


def test_accuracy_on_digits_next_to_scikit_learn(digits):
    """Same hyperparameters, three seeds each: the mean test accuracy within 1 point of
    scikit-learn's.  The times are reported (pytest -s shows them), not asserted."""
    from sklearn.neural_network import MLPClassifier as SkMLP
    from threadpoolctl import threadpool_limits

    Xtr, Xte, ytr, yte = digits
    kw = dict(hidden_layer_sizes=(100,), solver="adam", alpha=1e-4, batch_size=200, learning_rate_init=1e-3,
              max_iter=100)
    acc, secs = {}, {}
    with threadpool_limits(1):
        for name, cls, extra in (("fastnn", MLPClassifier, {"n_threads": 1}), ("sklearn", SkMLP, {})):
            scores, t = [], 0.0
            for seed in range(3):
                t0 = time.perf_counter()
                model = cls(random_state=seed, **kw, **extra).fit(Xtr, ytr)
                t += time.perf_counter() - t0
                scores.append(model.score(Xte, yte))
            acc[name], secs[name] = float(np.mean(scores)), t
    print(f"\ndigits, MLP 64-100-10 adam, 100 epochs x 3 seeds, 1 thread: accuracy fastnn {acc['fastnn']:.4f} "
          f"sklearn {acc['sklearn']:.4f}; fit time fastnn {secs['fastnn']:.2f}s sklearn {secs['sklearn']:.2f}s "
          f"(sklearn / fastnn = {secs['sklearn'] / secs['fastnn']:.1f}x)")
    assert acc["fastnn"] >= acc["sklearn"] - 0.01
    assert acc["fastnn"] > 0.95


def test_sample_weight_equivalence_with_the_settings_scikit_learn_checks():
    """scikit-learn runs check_sample_weight_equivalence on its MLPs with these settings (and, through
    tests/test_sklearn_checks.py, fastnn's pass it with the defaults too)."""
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data as check

    check("MLPClassifier", MLPClassifier(solver="lbfgs", max_iter=100, random_state=0))
    check("MLPRegressor", MLPRegressor(solver="sgd", tol=1e-2, random_state=42, max_iter=100))
