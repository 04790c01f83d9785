"""scikit-learn code run against both sklearn.neural_network and fastnn.sklearn, comparing what each does:
parameters, L-BFGS and SGD steps from the same random_state, learning-rate schedules, fitted
attributes, warnings, errors, warm starts, partial_fit, multi-label and multi-output targets, sparse
input, pipelines and grid search.  Where fastnn differs on purpose, the test says so and README's list
of differences has the entry."""
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")
from sklearn.datasets import load_digits, make_friedman1  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier, MLPRegressor as SkRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.class_weight import compute_sample_weight  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

PAIRS = [(SkClassifier, MLPClassifier), (SkRegressor, MLPRegressor)]


@pytest.fixture(autouse=True)
def serial_blas():
    """scikit-learn's MLPs on one BLAS thread: OpenBLAS's threads only slow these small products down."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield
rng = np.random.default_rng(0)
X = rng.normal(size=(90, 5))
TARGETS = {  # name -> (scikit-learn class, fastnn class, y)
    "multiclass": (SkClassifier, MLPClassifier, np.argmax(X[:, :3] + 0.3 * rng.normal(size=(90, 3)), axis=1)),
    "binary": (SkClassifier, MLPClassifier, np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")),
    "multilabel": (SkClassifier, MLPClassifier, np.c_[X[:, 0] > 0, X[:, 1] > 0, X[:, 2] + X[:, 3] > 0].astype(int)),
    "regression": (SkRegressor, MLPRegressor, X @ np.arange(1.0, 6.0) + np.sin(X[:, 0])),
    "multi-output": (SkRegressor, MLPRegressor, np.c_[X @ np.arange(1.0, 6.0), np.cos(X[:, 1])]),
}


def both(name, **params):
    """(scikit-learn's estimator, fastnn's) for a target of TARGETS, and y."""
    sk_cls, fnn_cls, y = TARGETS[name]
    return sk_cls(**params), fnn_cls(**params), y


def quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def weights(est):
    return list(est.coefs_) + list(est.intercepts_)


def assert_same_weights(a, b, atol):
    assert [w.shape for w in weights(a)] == [w.shape for w in weights(b)]
    for x, y in zip(weights(a), weights(b)):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# ---- parameters -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sk_cls, fnn_cls", PAIRS)
def test_every_scikit_learn_parameter_with_its_default(sk_cls, fnn_cls):
    ours, theirs = fnn_cls().get_params(), sk_cls().get_params()
    assert set(theirs) <= set(ours)
    assert {k: ours[k] for k in theirs} == theirs
    extra = {"dropout", "freeze", "dtype", "n_threads"} | ({"class_weight"} if fnn_cls is MLPClassifier else set())
    assert set(ours) - set(theirs) == extra


# ---- the solvers, step for step ---------------------------------------------------------------------

@pytest.mark.parametrize("target", ["multiclass", "binary", "multilabel", "regression"])
def test_lbfgs_equals_scikit_learn(target):
    """Same random_state -> same initial weights; each L-BFGS iteration is scipy's on the same loss and
    gradient (fastnn's computed in C), so the iterates agree to rounding."""
    sk, ours, y = both(target, solver="lbfgs", hidden_layer_sizes=(8,), alpha=1e-3, max_iter=15, random_state=3)
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 15 iteration\(s\)") as w_sk:
        sk.fit(X, y)
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 15 iteration\(s\)") as w_ours:
        ours.fit(X, y)
    assert str(w_ours[0].message) == str(w_sk[0].message)
    assert_same_weights(ours, sk, atol=1e-9)
    assert ours.n_iter_ == sk.n_iter_ == 15
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-10)
    assert ours.t_ == sk.t_ == 0
    for attr in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
        assert hasattr(ours, attr) == hasattr(sk, attr) == False  # noqa: E712  (stochastic solvers only)


def test_lbfgs_max_fun_stops_both_alike(capsys):
    sk, ours, y = both("multiclass", solver="lbfgs", hidden_layer_sizes=(8,), max_iter=200, max_fun=12,
                       random_state=0)
    for est in (sk, ours):
        with pytest.warns(ConvergenceWarning, match="F,G EVALUATIONS EXCEEDS LIMIT"):
            est.fit(X, y)
    assert ours.n_iter_ == sk.n_iter_ < 12
    assert_same_weights(ours, sk, atol=1e-9)
    # verbose: the loss after each iteration (scikit-learn prints nothing with scipy >= 1.15)
    capsys.readouterr()
    quiet_fit(ours.set_params(verbose=True, max_fun=15000, max_iter=3), X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == ["Iteration 1", "Iteration 2", "Iteration 3"]
    assert lines[-1] == f"Iteration 3, loss = {ours.loss_:.8f}"


def test_lbfgs_multi_output_regression_minimises_the_loss_it_reports():
    """Deliberate difference: with k outputs scikit-learn hands L-BFGS a gradient k times that of the loss
    it reports; fastnn minimises the objective whose gradient that is (half the summed squared errors),
    so the weights differ, but loss_ is scikit-learn's loss of fastnn's weights and the fit is as good."""
    sk, ours, y = both("multi-output", solver="lbfgs", hidden_layer_sizes=(8,), alpha=1e-2, max_iter=200,
                       random_state=0)
    quiet_fit(sk, X, y)
    quiet_fit(ours, X, y)
    pred = ours.predict(X)
    penalty = 1e-2 / (2 * len(X)) * sum(float((w ** 2).sum()) for w in ours.coefs_)
    assert ours.loss_ == pytest.approx(0.5 * np.mean((pred - y) ** 2) + penalty, rel=1e-9)
    assert ours.score(X, y) >= sk.score(X, y) - 0.01


SCHEDULES = [
    dict(learning_rate="constant", momentum=0.9, nesterovs_momentum=True),
    dict(learning_rate="invscaling", power_t=0.5, momentum=0.9, nesterovs_momentum=False),
    dict(learning_rate="invscaling", power_t=0.25, momentum=0.5, nesterovs_momentum=True, batch_size=30),
    # tol this large: every epoch fails to improve, so the rate is divided by 5 every other epoch until
    # it falls below 1e-6 and training stops
    dict(learning_rate="adaptive", tol=100.0, n_iter_no_change=1, momentum=0.9, nesterovs_momentum=True),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s['learning_rate']}-{s.get('batch_size', 90)}")
@pytest.mark.parametrize("target", ["multiclass", "multilabel", "regression"])
def test_sgd_and_its_learning_rate_schedules_equal_scikit_learn(target, schedule):
    params = dict(dict(solver="sgd", hidden_layer_sizes=(6,), alpha=1e-2, learning_rate_init=0.05, batch_size=90,
                       shuffle=False, max_iter=40, random_state=1), **schedule)
    sk, ours, y = both(target, **params)
    quiet_fit(sk, X, y)
    quiet_fit(ours, X, y)
    assert ours.n_iter_ == sk.n_iter_ and ours.t_ == sk.t_
    if schedule["learning_rate"] == "adaptive":
        assert sk.n_iter_ < 40  # stopped by the schedule
    assert_same_weights(ours, sk, atol=1e-9)
    assert ours._learning_rate == pytest.approx(sk._optimizer.learning_rate, rel=1e-12)
    # the loss curve: the data term is the same; the L2 term is taken after each epoch here, per batch there
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=0.05)


def test_partial_fit_with_invscaling_continues_the_schedule():
    sk, ours, y = both("multiclass", solver="sgd", learning_rate="invscaling", power_t=0.5, hidden_layer_sizes=(5,),
                       learning_rate_init=0.1, batch_size=45, shuffle=False, random_state=2)
    for est in (sk, ours):
        for start in (0, 45, 0, 45):
            est.partial_fit(X[start:start + 45], y[start:start + 45], classes=np.arange(3))
    assert ours.t_ == sk.t_ == 180
    assert_same_weights(ours, sk, atol=1e-10)


def test_n_iter_no_change_inf_trains_for_max_iter():
    for sk_cls, fnn_cls, target in ((SkClassifier, MLPClassifier, "multiclass"), (SkRegressor, MLPRegressor, "regression")):
        y = TARGETS[target][2]
        for cls in (sk_cls, fnn_cls):
            est = cls(hidden_layer_sizes=(4,), tol=1e9, n_iter_no_change=np.inf, max_iter=7, random_state=0)
            with pytest.warns(ConvergenceWarning, match=re.escape("Stochastic Optimizer: Maximum iterations (7)")):
                est.fit(X, y)
            assert est.n_iter_ == 7
            # a finite one stops as soon as the epochs after the first (which sets the best loss) fail to
            # improve more than n_iter_no_change times in a row
            stopped = quiet_fit(cls(hidden_layer_sizes=(4,), tol=1e9, n_iter_no_change=2, max_iter=7, random_state=0),
                                X, y)
            assert stopped.n_iter_ == 4


# ---- fitted attributes -----------------------------------------------------------------------------

ATTRS = ("coefs_", "intercepts_", "n_layers_", "n_outputs_", "out_activation_", "t_", "n_iter_", "loss_",
         "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_", "classes_", "n_features_in_")


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("target", list(TARGETS))
def test_fitted_attributes_match(target, solver, early_stopping):
    """(L-BFGS ignores early_stopping in both.)"""
    sk, ours, y = both(target, solver=solver, hidden_layer_sizes=(7, 4), max_iter=5, early_stopping=early_stopping,
                       random_state=0)
    Xs = X.astype(np.float32)
    quiet_fit(sk, Xs, y)
    quiet_fit(ours, Xs, y)
    for attr in ATTRS:
        assert hasattr(ours, attr) == hasattr(sk, attr), attr
    for attr in ("n_layers_", "n_outputs_", "out_activation_", "t_", "n_features_in_"):
        assert getattr(ours, attr) == getattr(sk, attr), attr
    if hasattr(sk, "classes_"):
        np.testing.assert_array_equal(ours.classes_, sk.classes_)
    for mine, theirs in zip(weights(ours), weights(sk)):
        assert mine.shape == theirs.shape and mine.dtype == np.float32
        # scikit-learn's L-BFGS leaves scipy's float64 in coefs_ after a float32 fit; fastnn keeps X's
        # dtype with every solver (README, differences)
        assert theirs.dtype == (np.float64 if solver == "lbfgs" else np.float32)
    for attr in ("loss_curve_", "validation_scores_"):
        if getattr(sk, attr, None) is not None:
            assert len(getattr(ours, attr)) == len(getattr(sk, attr)) == sk.n_iter_
    if early_stopping and solver != "lbfgs":
        assert ours.best_loss_ is sk.best_loss_ is None
        assert ours.best_validation_score_ == max(ours.validation_scores_)
    assert ours.predict(X).shape == sk.predict(X).shape
    if hasattr(sk, "predict_proba"):
        assert ours.predict_proba(X).shape == sk.predict_proba(X).shape
    assert hasattr(ours, "partial_fit") == (solver != "lbfgs")
    if sk_has_partial_fit_rule(sk):
        assert hasattr(sk, "partial_fit") == (solver != "lbfgs")


def sk_has_partial_fit_rule(sk):
    """scikit-learn hides partial_fit for lbfgs on its classifier; its regressor's availability check is
    never called (`available_if(lambda est: est._check_solver)`), so it keeps partial_fit, which then
    runs L-BFGS (README, differences: fastnn hides it on both)."""
    return isinstance(sk, SkClassifier)


@pytest.mark.parametrize("dtype, want", [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float64)])
def test_parameter_dtype_follows_X(dtype, want):
    y = TARGETS["multiclass"][2]
    Xd = (X * 10).astype(dtype)
    for cls in (SkClassifier, MLPClassifier):
        est = quiet_fit(cls(hidden_layer_sizes=(3,), max_iter=2, random_state=0), Xd, y)
        assert all(w.dtype == want for w in weights(est))
    # fastnn's dtype overrides it, and a warm start keeps the first fit's
    est = quiet_fit(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, dtype="float32",
                                  warm_start=True), X, y)
    assert est.coefs_[0].dtype == np.float32
    quiet_fit(est.set_params(dtype=None), X.astype(np.float64), y)
    assert est.coefs_[0].dtype == np.float32


# ---- coefs_ / intercepts_, warm starts, partial_fit --------------------------------------------------

def test_coefs_set_before_a_warm_start_fit_are_trained_from():
    y = TARGETS["multiclass"][2]
    kw = dict(solver="sgd", hidden_layer_sizes=(6,), batch_size=90, shuffle=False, max_iter=3, random_state=0,
              warm_start=True, learning_rate_init=0.1)
    sk, ours = quiet_fit(SkClassifier(**kw), X, y), quiet_fit(MLPClassifier(**kw), X, y)
    start_c = [0.5 * c for c in sk.coefs_]
    start_i = [np.zeros_like(i) for i in sk.intercepts_]
    for est in (sk, ours):
        est.coefs_ = [c.copy() for c in start_c]       # the whole list
        est.intercepts_ = [i.copy() for i in start_i]
        est.coefs_[1] = start_c[1] + 0.25                # one item, as a list element assignment
    start_c[1] = start_c[1] + 0.25
    for a, b in zip(weights(ours), start_c + start_i):
        np.testing.assert_array_equal(a, b)
    ours.coefs_[0][0, 0] += 1.0  # in place: the network's own array
    sk.coefs_[0][0, 0] += 1.0
    quiet_fit(sk, X, y)
    quiet_fit(ours, X, y)
    assert_same_weights(ours, sk, atol=1e-10)
    # and on an estimator not fitted yet: the first warm_start fit starts from them
    fresh = MLPClassifier(**kw)
    fresh.coefs_, fresh.intercepts_ = start_c, start_i
    assert [c.shape for c in fresh.coefs_] == [c.shape for c in start_c]
    quiet_fit(fresh.set_params(max_iter=1), X, y)
    ref = quiet_fit(SkClassifier(**dict(kw, max_iter=1)), X, y)  # scikit-learn needs a fit before coefs_ can be set
    ref.coefs_, ref.intercepts_ = [c.copy() for c in start_c], [i.copy() for i in start_i]
    ref._optimizer = None
    del ref._optimizer  # a fresh optimizer, as a first fit has
    quiet_fit(ref, X, y)
    assert_same_weights(fresh, ref, atol=1e-10)


def test_warm_start_and_partial_fit_bookkeeping_and_messages():
    y = TARGETS["multiclass"][2]
    runs = {}
    for cls in (SkClassifier, MLPClassifier):
        est = quiet_fit(cls(hidden_layer_sizes=(4,), max_iter=3, warm_start=True, random_state=0), X, y)
        quiet_fit(est, X, y)
        runs[cls] = (est.n_iter_, est.t_, len(est.loss_curve_))
        with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same classes"):
            est.fit(X[y != 2], y[y != 2])
        inc = cls(hidden_layer_sizes=(4,), random_state=0)
        with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
            inc.partial_fit(X, y)
        inc.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2])
        inc.partial_fit(X[y == 2], y[y == 2])
        assert inc.n_iter_ == 1 and inc.t_ == len(X) and list(inc.classes_) == [0, 1, 2]
        with pytest.raises(ValueError, match=re.escape("`y` has classes not in `self.classes_`")):
            inc.partial_fit(X, np.where(y == 2, 5, y))
        with pytest.raises(ValueError, match=re.escape("`classes=[0, 1]` is not the same as on last call")):
            inc.partial_fit(X, y, classes=[0, 1])
    assert runs[MLPClassifier] == runs[SkClassifier] == (3, 2 * 3 * len(X), 6)


def test_multilabel_and_multi_output_with_every_solver():
    for solver in ("lbfgs", "sgd", "adam"):
        for target in ("multilabel", "multi-output"):
            sk, ours, y = both(target, solver=solver, hidden_layer_sizes=(16,), max_iter=300, random_state=0,
                               learning_rate_init=0.01)
            quiet_fit(sk, X, y)
            quiet_fit(ours, X, y)
            assert ours.predict(X).shape == sk.predict(X).shape == y.shape
            assert ours.score(X, y) >= sk.score(X, y) - 0.05, (solver, target)
            if target == "multilabel":
                assert ours.predict_proba(X).shape == sk.predict_proba(X).shape
                assert set(np.unique(ours.predict(X))) <= {0, 1}


# ---- errors and warnings -----------------------------------------------------------------------------

def test_same_errors_for_diverging_fits_and_tiny_validation_sets():
    y = TARGETS["regression"][2]
    for cls in (SkRegressor, MLPRegressor):
        with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"), np.errstate(all="ignore"):
            quiet_fit(cls(solver="sgd", learning_rate_init=10.0, momentum=0.0, max_iter=50, random_state=0),
                      X * 1e100, y * 1e100)
        with pytest.raises(ValueError, match="The validation set is too small"):
            cls(early_stopping=True, validation_fraction=0.01, max_iter=2).fit(X[:20], y[:20])
        with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
            cls(early_stopping=True).partial_fit(X, y)
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
        SkClassifier(solver="lbfgs").partial_fit(X, TARGETS["multiclass"][2])
    with pytest.raises(AttributeError, match="partial_fit is only available for stochastic optimizers"):
        MLPClassifier(solver="lbfgs").partial_fit(X, TARGETS["multiclass"][2])


def test_poisson_loss_is_refused_by_name():
    """Deliberate difference: MLPRegressor(loss="poisson") needs a Poisson loss the engine lacks."""
    y = np.abs(TARGETS["regression"][2])
    quiet_fit(SkRegressor(loss="poisson", max_iter=3), X, y)
    with pytest.raises(ValueError, match="loss: 'poisson' is not available"):
        MLPRegressor(loss="poisson", max_iter=3).fit(X, y)
    quiet_fit(MLPRegressor(loss="squared_error", max_iter=3), X, y)


@pytest.mark.parametrize("params", [dict(solver="newton"), dict(learning_rate="cosine"), dict(power_t=-1.0),
                                    dict(max_fun=0), dict(n_iter_no_change=0), dict(n_iter_no_change=-np.inf),
                                    dict(momentum=1.5), dict(alpha=-1.0)])
def test_bad_parameters_are_value_errors_in_both(params):
    y = TARGETS["multiclass"][2]
    for cls in (SkClassifier, MLPClassifier):
        with pytest.raises(ValueError, match=next(iter(params))):
            cls(**params).fit(X, y)


# ---- fastnn's class_weight ------------------------------------------------------------------------

def test_class_weight_is_scikit_learns_sample_weight_by_class():
    y = TARGETS["multiclass"][2]
    kw = dict(solver="lbfgs", hidden_layer_sizes=(6,), max_iter=20, random_state=0)
    for class_weight in ("balanced", {0: 3.0, 2: 0.5}):
        sw = compute_sample_weight(class_weight, y)
        ours = quiet_fit(MLPClassifier(class_weight=class_weight, **kw), X, y)
        sk = quiet_fit(SkClassifier(**kw), X, y, sample_weight=sw)
        assert_same_weights(ours, sk, atol=1e-9)
    # it multiplies the sample weights; with labels that are strings the keys are those labels
    yb = TARGETS["binary"][2]
    sw = rng.uniform(0.5, 2.0, len(yb))
    ours = quiet_fit(MLPClassifier(class_weight={"yes": 2.0}, **kw), X, yb, sample_weight=sw)
    sk = quiet_fit(SkClassifier(**kw), X, yb, sample_weight=sw * np.where(yb == "yes", 2.0, 1.0))
    assert_same_weights(ours, sk, atol=1e-9)
    with pytest.raises(ValueError, match="class_weight: 'maybe' is not a class"):
        MLPClassifier(class_weight={"maybe": 2.0}, **kw).fit(X, yb)
    with pytest.raises(ValueError, match="class_weight: not available for multilabel targets"):
        MLPClassifier(class_weight={0: 2.0}, **kw).fit(X, TARGETS["multilabel"][2])


def test_stratified_validation_split():
    """Early stopping holds out validation_fraction of the rows (rounded up, as train_test_split), in each
    class's proportion.  scikit-learn stratifies binary targets only (it tests n_outputs_ == 1, which
    excludes the one-hot multi-class case); fastnn stratifies every single-label target (README)."""
    y = np.repeat([0, 1, 2], [120, 60, 20])
    est = MLPClassifier(random_state=0)
    est._seed, est.t_ = 0, 0
    for fraction in (0.1, 0.2, 0.35):
        est.validation_fraction = fraction
        train, val = est._split(len(y), y)
        assert len(val) == int(np.ceil(fraction * len(y))) and len(train) + len(val) == len(y)
        assert len(np.intersect1d(train, val)) == 0
        _, y_val = train_test_split(y, test_size=fraction, stratify=y, random_state=0)
        np.testing.assert_allclose(np.bincount(y[val], minlength=3), np.bincount(y_val, minlength=3), atol=1)


# ---- real usage ------------------------------------------------------------------------------------

def test_lbfgs_scores_on_digits_and_a_regression_set_match_scikit_learn():
    """The bar: L-BFGS on scikit-learn's digits and on a small regression set reaches scikit-learn's test
    score within 1 point (three seeds each).  Timings are for bench/bench_lbfgs.py, not for tests."""
    Xd, yd = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(Xd / 16.0, yd, test_size=0.25, random_state=0, stratify=yd)
    Xf, yf = make_friedman1(n_samples=400, noise=0.5, random_state=0)
    Ftr, Fte, ftr, fte = train_test_split(Xf, yf, test_size=0.25, random_state=0)
    for (sk_cls, fnn_cls), data, hidden in (((SkClassifier, MLPClassifier), (Xtr, Xte, ytr, yte), (40,)),
                                            ((SkRegressor, MLPRegressor), (Ftr, Fte, ftr, fte), (24,))):
        a, b, c, d = data
        scores = {cls: np.mean([quiet_fit(cls(solver="lbfgs", hidden_layer_sizes=hidden, max_iter=150,
                                              random_state=seed), a, c).score(b, d) for seed in range(3)])
                  for cls in (sk_cls, fnn_cls)}
        assert scores[fnn_cls] >= scores[sk_cls] - 0.01, scores
        assert scores[fnn_cls] > (0.95 if fnn_cls is MLPClassifier else 0.8)


def test_pipeline_and_grid_search_with_lbfgs():
    y = TARGETS["multiclass"][2]
    results = {}
    for cls in (SkClassifier, MLPClassifier):
        pipe = make_pipeline(StandardScaler(), cls(solver="lbfgs", max_iter=100, random_state=0))
        grid = GridSearchCV(pipe, {f"{cls.__name__.lower()}__hidden_layer_sizes": [(4,), (12,)],
                                   f"{cls.__name__.lower()}__alpha": [1e-4, 1.0]}, cv=3)
        quiet_fit(grid, X, y)
        results[cls] = grid.cv_results_["mean_test_score"]
    # the same initial weights and the same L-BFGS: the same cross-validation scores
    np.testing.assert_allclose(results[MLPClassifier], results[SkClassifier], atol=0.02)


def test_lbfgs_fit_pickles_continues_and_switches_solver():
    import pickle

    y = TARGETS["binary"][2]
    est = quiet_fit(MLPClassifier(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=10, random_state=0,
                                  warm_start=True), X, y)
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.predict_proba(X), est.predict_proba(X))
    quiet_fit(est, X, y)
    quiet_fit(clone, X, y)
    np.testing.assert_array_equal(clone.predict_proba(X), est.predict_proba(X))
    # the same two warm-started L-BFGS runs in scikit-learn (each starts a fresh curvature history)
    sk = SkClassifier(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=10, random_state=0, warm_start=True)
    quiet_fit(sk, X, y)
    quiet_fit(sk, X, y)
    assert_same_weights(est, sk, atol=1e-9)
    # a warm start with another solver continues from the L-BFGS weights, as in scikit-learn
    for e in (est, sk):
        e.set_params(solver="sgd", batch_size=len(X), shuffle=False, max_iter=3, learning_rate_init=0.1)
        e.loss_curve_, e.best_loss_, e._no_improvement_count = [], np.inf, 0  # what scikit-learn lacks after lbfgs
        quiet_fit(e, X, y)
    assert_same_weights(est, sk, atol=1e-9)


def test_sparse_X_fits_as_in_scikit_learn():
    """CSR, CSC and COO X: the same L-BFGS iterates as scikit-learn's on the same sparse matrix, and
    predict takes sparse rows (tests/test_sparse.py covers every path)."""
    sparse = pytest.importorskip("scipy.sparse")
    y = TARGETS["multiclass"][2]
    Xs = sparse.csr_matrix(np.where(np.abs(X) > 1, X, 0.0))
    sk = quiet_fit(SkClassifier(solver="lbfgs", hidden_layer_sizes=(4,), max_iter=20, random_state=0), Xs, y)
    for fmt in ("csr", "csc", "coo"):
        ours = quiet_fit(MLPClassifier(solver="lbfgs", hidden_layer_sizes=(4,), max_iter=20, random_state=0),
                         Xs.asformat(fmt), y)
        assert_same_weights(ours, sk, atol=1e-9)
        np.testing.assert_allclose(ours.predict_proba(Xs.asformat(fmt)), sk.predict_proba(Xs), atol=1e-9)