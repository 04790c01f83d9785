"""scikit-learn estimators on the fastnn engine: `MLPClassifier` and `MLPRegressor`.

They take scikit-learn's MLP parameters with scikit-learn's meaning, so that code written for
`sklearn.neural_network.MLPClassifier` runs unchanged (solvers "lbfgs", "sgd" and "adam", the
learning-rate schedules, warm starts, partial_fit, `coefs_`/`intercepts_`), plus fastnn's own:
`class_weight` (classifier), `dropout`, `freeze`, `dtype` and `n_threads`.  README lists the few
deliberate differences.

scikit-learn is optional: this module imports it lazily and, when it is missing, falls back to small
stand-ins for BaseEstimator and the score mixins.  `import fastnn` does not import this module;
solver="lbfgs" needs scipy.

How scikit-learn's definitions map onto the engine (so that `learning_rate_init` and `alpha` mean
what they mean in scikit-learn):

- scikit-learn minimises  data_loss + alpha / (2 * sw_sum) * sum ||W||^2  per mini-batch (sw_sum: the
  batch's rows, or the sum of its sample weights), with data_loss the mean cross-entropy (softmax
  outputs), the summed binary log-loss of each label (logistic outputs) or half the mean squared error
  (identity outputs), and takes the gradient (output - target) / sw_sum at the output.  The engine's
  losses are means over rows and outputs; the ratio g of scikit-learn's gradient to the engine's is 1
  (cross-entropy), L (L labels of binary cross-entropy) or n_outputs / 2 (squared error).
- Stochastic solvers: the L2 term goes in as the optimizer's weight decay alpha / (g * batch_size *
  mean sample weight) (biases are not penalised, as in scikit-learn), and SGD's learning rate is
  multiplied by g; Adam is invariant to the gradient's scale.  Steps then equal scikit-learn's, except
  for the last, smaller batch of an epoch, whose decay uses batch_size.  learning_rate="invscaling"
  and "adaptive" change the rate between epochs as scikit-learn does; scikit-learn's momentum buffer
  holds velocities (rate times gradients) where the engine's holds gradients, so the buffer is
  rescaled by old rate / new rate at each change and the steps stay equal.
- solver="lbfgs": scipy.optimize.minimize(method="L-BFGS-B", jac=True) on the full batch, as
  scikit-learn does, over the model's flat parameter buffer; each evaluation is one
  `compute_gradients` in C, with the L2 term as the Dense layers' `l2` = alpha / (2 * g * sw_sum) and
  the loss and gradient multiplied by g.  With several regression outputs scikit-learn hands L-BFGS a
  gradient n_outputs times that of the loss it reports; fastnn minimises the objective of which it is
  the gradient (half the summed squared error of the outputs) and reports `loss_` in scikit-learn's
  units.
- `loss_curve_` is in scikit-learn's units: the engine's epoch loss times scikit-learn's loss
  scale, plus the L2 term of the weights at the end of the epoch.
- Weights and biases start as scikit-learn's do, drawn from the same random stream: uniform in
  +-sqrt(6 / (fan_in + fan_out)) (2 instead of 6 for "logistic") from RandomState(random_state) (NumPy's
  global RandomState for None), so the same random_state gives the same initial weights.
- `sample_weight` (times the class weights) is rescaled to average 1 over the rows, so that the
  weighted loss is scikit-learn's weighted mean (exact when a batch holds the whole data set).
- The parameters are float32 for float32 X and float64 otherwise, as scikit-learn's are, unless
  `dtype` says which; a warm start or partial_fit keeps the dtype of the first fit.
- Sparse X (scipy.sparse CSR and CSC, other formats converted to CSR, as scikit-learn takes them) is
  converted to CSR once and densified by the engine a batch of rows at a time, never as a whole: the
  stochastic solvers' batches, and for L-BFGS blocks of rows whose gradients are summed, each weighted
  by its share of the rows.
"""
import contextlib
import functools
import math
import numbers
import types
import warnings

import numpy as np

import fastnn as _fnn
from ._errors import NotFittedError as _FastNNNotFitted
from ._validate import all_finite, cast_finite, replacement

__all__ = ["MLPClassifier", "MLPRegressor", "NotFittedError"]

try:  # scikit-learn is optional
    from sklearn.base import BaseEstimator as _Base, ClassifierMixin as _ClassifierMixin, RegressorMixin as _RegressorMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
    from sklearn.exceptions import NotFittedError as _SkNotFitted
    from sklearn.utils.multiclass import type_of_target as _type_of_target
    try:
        from sklearn.utils.validation import validate_data as _sk_validate_data  # scikit-learn >= 1.6
    except ImportError:
        _sk_validate_data = None
    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False


if HAVE_SKLEARN:
    class NotFittedError(_FastNNNotFitted, _SkNotFitted):
        """Used before `fit`: both fastnn's and scikit-learn's NotFittedError."""
else:
    class ConvergenceWarning(UserWarning):
        """Training stopped at max_iter before the stopping rule was met."""

    class DataConversionWarning(UserWarning):
        """The data were converted (a column vector y to a 1-D array)."""

    class NotFittedError(_FastNNNotFitted, ValueError):
        """Used before `fit`."""

    class _Base:
        """The part of scikit-learn's BaseEstimator these estimators need: get_params/set_params."""

        @classmethod
        def _get_param_names(cls):
            import inspect
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"Invalid parameter {key!r} for estimator {type(self).__name__}; "
                                     f"valid parameters: {', '.join(valid)}")
                setattr(self, key, value)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class _ClassifierMixin:
        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            """Mean accuracy of predict(X) against y."""
            y = np.asarray(y)
            hit = np.all((self.predict(X) == y).reshape(len(y), -1), axis=1).astype(np.float64)
            return float(np.average(hit, weights=sample_weight))

    class _RegressorMixin:
        _estimator_type = "regressor"

        def score(self, X, y, sample_weight=None):
            """R^2 of predict(X) against y (averaged uniformly over outputs)."""
            return _r2(np.asarray(y, dtype=np.float64), self.predict(X), sample_weight)


_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "linear"}
_SOLVERS = ("lbfgs", "sgd", "adam")
_STOCHASTIC = ("sgd", "adam")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")


def _r2(y, pred, sample_weight=None):
    y = y.reshape(len(y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(y), -1)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[:, None]
    mean = np.average(y, axis=0, weights=None if w is None else w[:, 0])
    ss_res = ((y - pred) ** 2 * (1 if w is None else w)).sum(axis=0)
    ss_tot = ((y - mean) ** 2 * (1 if w is None else w)).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res > 0, 0.0, 1.0))
    return float(r2.mean())


@contextlib.contextmanager
def _threads(n):
    """Run the block with `n` engine threads (None: leave the setting alone)."""
    if n is None:
        yield
        return
    before = _fnn.get_num_threads()
    _fnn.set_num_threads(n)
    try:
        yield
    finally:
        _fnn.set_num_threads(before)


@contextlib.contextmanager
def _serial_blas():
    """Run the block with BLAS on one thread (threadpoolctl, where installed).  L-BFGS-B's own algebra
    is on (10 x n_params) blocks: measured on 2 cores, OpenBLAS's threads made each of its iterations
    25 times slower than one thread does, and they would compete with the engine's."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def _random_source(random_state):
    """What draws the initial weights, as scikit-learn's check_random_state picks it: a RandomState
    seeded with the int, the RandomState (or Generator) given, or NumPy's global RandomState for None;
    so the same random_state gives scikit-learn's initial weights."""
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if not 0 <= random_state < 2**32:
            raise ValueError(f"random_state: expected an int in [0, 2**32), got {random_state}")
        return np.random.RandomState(int(random_state))
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    raise TypeError(f"random_state: expected None, an int or a numpy RandomState/Generator, "
                    f"got {type(random_state).__name__}")


def _engine_seed(random_state, source):
    """The engine's 63-bit seed (shuffles, dropout masks): the int itself, else a draw from `source`
    (fresh entropy for None)."""
    if random_state is None:
        return int(np.random.default_rng().integers(0, 2**63))
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    if isinstance(source, np.random.Generator):
        return int(source.integers(0, 2**63))
    return int(source.randint(0, 2**31 - 1)) * 2**31 + int(source.randint(0, 2**31 - 1))


def _is_sparse(X):
    return type(X).__module__.startswith("scipy.sparse") and hasattr(X, "tocsr")


def _as_rows(X, dtype):
    """Validated X in `dtype`: a C-contiguous array, or CSR for sparse X (the engine densifies a batch
    of its rows at a time, never the whole matrix)."""
    if _is_sparse(X):
        return X.tocsr().astype(dtype, copy=False)
    return np.asarray(X, dtype=dtype)


def _check_sparse_numpy(X):
    """A sparse X without scikit-learn: CSR of floats with finite values."""
    X = X.tocsr()
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X: found a sparse matrix with shape {X.shape}; at least 1 sample and 1 feature are required")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if not np.all(np.isfinite(X.data)):
        raise ValueError("X: contains NaN or infinity")
    return X


def _check_X_numpy(est, X, reset):
    """Validation of X without scikit-learn: a finite 2-D numeric array (or sparse matrix) with the
    fitted width."""
    if _is_sparse(X):
        X = _check_sparse_numpy(X)
        _check_width(est, X, reset)
        return X
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"X: expected numbers, got dtype {X.dtype}") from None
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D array (samples x features), got shape {X.shape}; "
                         "reshape a single feature with X.reshape(-1, 1)")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X: found an array with shape {X.shape}; at least 1 sample and 1 feature are required")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError("X: contains NaN or infinity")
    _check_width(est, X, reset)
    return X


def _check_width(est, X, reset):
    if reset:
        est.n_features_in_ = X.shape[1]
    elif X.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(est).__name__} is expecting "
                         f"{est.n_features_in_} features as input.")


# scikit-learn's MLPs take CSR and CSC; check_array converts the other formats to CSR.
_SPARSE = ["csr", "csc"]


def _validate(est, X, y=None, *, reset, multi_output=True):
    """scikit-learn's validate_data where scikit-learn is there (feature names, messages the check
    suite expects), else a NumPy version."""
    dtype = (np.float64, np.float32)
    if HAVE_SKLEARN:
        kwargs = dict(reset=reset, dtype=dtype, accept_sparse=_SPARSE)
        if y is not None:
            kwargs.update(multi_output=multi_output, y_numeric=False)
        fn = _sk_validate_data if _sk_validate_data is not None else \
            (lambda e, *a, **k: type(e)._validate_data(e, *a, **k))
        try:
            return fn(est, X, y, **kwargs) if y is not None else fn(est, X, **kwargs)
        except (TypeError, ValueError) as e:
            _name_the_argument(e, X, y, dtype)
            raise
    X = _check_X_numpy(est, X, reset)
    if y is None:
        return X
    y = np.asarray(y)
    if y.ndim == 0 or y.ndim > 2 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y: expected {X.shape[0]} rows (one per sample of X), got shape {y.shape}")
    return X, y


def _name_the_argument(error, X, y, dtype):
    """Prefix scikit-learn's validation message (\"Found array with dim 3 ...\") with the argument it
    is about, found by checking X alone, then the lengths; the exception keeps its type."""
    msg = str(error)
    if not error.args or msg.startswith(("X", "y", "Input X", "Input y")):
        return
    from sklearn.utils import check_array, check_consistent_length
    name = "y"
    try:
        check_array(X, dtype=dtype, accept_sparse=_SPARSE)
    except (TypeError, ValueError):
        name = "X"
    else:
        if y is not None:
            try:
                check_consistent_length(X, y)
            except (TypeError, ValueError):
                name = "X, y"
    error.args = (f"{name}: {msg}",) + tuple(error.args[1:])


def _check_sample_weight(sample_weight, n):
    """The sample weights as given (float64, validated), or None."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real):
        sample_weight = np.full(n, float(sample_weight))
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("sample_weight: expected real numbers") from None
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"sample_weight: expected shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight: contains NaN or infinity")
    if np.any(w < 0):
        raise ValueError("sample_weight: must not be negative")
    if w.sum() <= 0:
        raise ValueError("sample_weight: all weights are zero")
    return w


def _normalised(w, dtype):
    """(w / mean(w) in `dtype`, mean(w)): the engine's weighted mean is then scikit-learn's
    sum(w * loss) / sum(w); (None, 1.0) without weights."""
    if w is None:
        return None, 1.0
    mean = float(w.mean())
    if not mean > 0:
        raise ValueError("sample_weight: the weights of the training rows are all zero")
    return (w / mean).astype(dtype), mean


_NONFINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and "
              "need to be preprocessed.")


class _stochastic_only:
    """A method that exists only for the stochastic solvers: for solver="lbfgs", reading it raises
    AttributeError (so hasattr(est, "partial_fit") is False), as scikit-learn's `available_if` does."""

    def __init__(self, fn):
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        if obj.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{obj.solver} is not stochastic.")
        return types.MethodType(self.fn, obj)


class _LayerArrays(list):
    """`coefs_`/`intercepts_` of a fitted estimator: the network's own arrays (writable views), so that
    in-place changes reach the network; assigning an item copies the new array into the network."""

    def __init__(self, arrays, name):
        super().__init__(arrays)
        self._name = name

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            raise TypeError(f"{self._name}: assign the whole list or one layer at a time")
        dst = list.__getitem__(self, i)
        np.copyto(dst, replacement(value, dst.shape, f"{self._name}[{i}]", dtype=dst.dtype))


class _Monitor(_fnn.Callback):
    """Per epoch: scikit-learn's bookkeeping (loss_curve_, n_iter_, t_), its stopping rule on the
    training loss or the validation score, its learning-rate schedule, and the best weights under early
    stopping."""

    def __init__(self, est, n_rows, batch, mean_w, val):
        super().__init__()
        self.est, self.n_rows, self.val = est, n_rows, val
        self.penalty_scale = est.alpha / (2.0 * batch * mean_w)
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        est = self.est
        model = est._model
        penalty = 0.0
        if est.alpha:
            # elementwise, not a BLAS dot: BLAS threads would wake and compete with the engine's
            penalty = sum(float(np.square(w, dtype=np.float64).sum()) for w in est._dense_weights(trainable_only=True))
            penalty *= self.penalty_scale
        loss = est._loss_scale * logs["loss"] + penalty
        est.n_iter_ += 1
        est.t_ += self.n_rows
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if self.val is not None:
            Xv, yv, wv = self.val
            score = est._score_raw(Xv, yv, wv)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_weights = model.get_weights()
        else:
            if loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, loss)
        schedule = est.learning_rate if est.solver == "sgd" else "constant"
        if schedule == "invscaling":
            est._set_learning_rate(float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t)
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.val is not None else "Training loss"
            msg = f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
            if schedule == "adaptive" and est._learning_rate > 1e-6:
                est._set_learning_rate(est._learning_rate / 5.0)
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{msg} Setting learning rate to {est._learning_rate:f}")
                return
            if est.verbose:
                print(msg + (" Learning rate too small." if schedule == "adaptive" else "") + " Stopping.")
            self.stopped = True
            model.stop_training = True


class _BaseMLP(_Base):
    """What the classifier and the regressor share: parameters, the fit loops, pickling.

    scikit-learn's parameters keep their meaning (see the module docstring).  fastnn's own:

    - dropout: drop probability of the Dropout layer after each hidden layer (0: none; not with
      solver="lbfgs", whose full-batch objective must not change between evaluations).
    - freeze: the number of leading layers (hidden layers first, the output layer last) whose weights
      are kept fixed, applied at every fit/partial_fit: with warm_start or partial_fit, fine-tune
      only the last layers.
    - dtype: None (default: float32 for float32 X, else float64, as scikit-learn), "float32" (fast)
      or "float64".
    - n_threads: engine threads during this estimator's fit/predict (None: fastnn's current setting);
      it sets fastnn's global thread count for the duration of each call.

    `coefs_` and `intercepts_` are lists of the network's arrays (writable views); assigning them (the
    whole list or one item) copies into the network, checked against its shapes, so a warm_start fit
    continues from them.  On an estimator not fitted yet they are kept and used by the first fit when
    warm_start=True (checked then against the shapes X and y give).

    Pickling goes through the model file (Sequential's own pickling): it keeps the weights and every
    fitted attribute, not the optimizer state, so a partial_fit after unpickling starts with fresh
    momentum/Adam moments.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0,
                 freeze=0, dtype=None, n_threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.freeze = freeze
        self.dtype = dtype
        self.n_threads = n_threads

    # ---- parameters ------------------------------------------------------------------------------

    def _hidden(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise TypeError(f"hidden_layer_sizes: expected an int or a sequence of ints, got {sizes!r}") from None
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0:
                raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _check_params(self):
        def real(name, low=None, high=None, low_open=False, high_open=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite real number, got {v!r}")
            if low is not None and (v < low or (low_open and v == low)):
                raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low}, got {v}")
            if high is not None and (v > high or (high_open and v == high)):
                raise ValueError(f"{name}: must be {'<' if high_open else '<='} {high}, got {v}")

        def integer(name, low, also=""):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"{name}: expected an int >= {low}{also}, got {v!r}")

        def choice(name, options):
            v = getattr(self, name)
            if not isinstance(v, str) or v not in options:
                raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}, got {v!r}")

        self._hidden()
        choice("activation", tuple(_ACTIVATIONS))
        choice("solver", _SOLVERS)
        choice("learning_rate", _LEARNING_RATES)
        real("alpha", low=0.0)
        if self.batch_size != "auto":
            integer("batch_size", 1)
        real("learning_rate_init", low=0.0, low_open=True)
        real("power_t", low=0.0)
        integer("max_iter", 1)
        integer("max_fun", 1)
        real("tol", low=0.0)
        real("momentum", low=0.0, high=1.0)
        real("validation_fraction", low=0.0, high=1.0, low_open=True, high_open=True)
        real("beta_1", low=0.0, high=1.0, high_open=True)
        real("beta_2", low=0.0, high=1.0, high_open=True)
        real("epsilon", low=0.0, low_open=True)
        if not (isinstance(self.n_iter_no_change, numbers.Real) and self.n_iter_no_change == math.inf):
            integer("n_iter_no_change", 1, " or np.inf")
        real("dropout", low=0.0, high=1.0, high_open=True)
        if self.dropout and self.solver == "lbfgs":
            raise ValueError("dropout: not available with solver='lbfgs', whose full-batch objective must be the "
                             "same at every evaluation; use solver='adam' or 'sgd', or dropout=0")
        if self.freeze is not None:
            integer("freeze", 0)
            if self.freeze > len(self._hidden()) + 1:
                raise ValueError(f"freeze: the network has {len(self._hidden()) + 1} layers, got freeze={self.freeze}")
        if self.dtype is not None and (not isinstance(self.dtype, (str, type)) or
                                       self.dtype not in ("float32", "float64", np.float32, np.float64)):
            raise ValueError(f"dtype: expected None, 'float32' or 'float64', got {self.dtype!r}")
        if self.n_threads is not None:
            integer("n_threads", 1)
            if self.n_threads > 65536:
                raise ValueError(f"n_threads: expected at most 65536, got {self.n_threads}")

    # ---- coefs_ and intercepts_ ------------------------------------------------------------------

    def _layer_arrays(self, name):
        if hasattr(self, "_model"):
            dense = [l for l in self._model.layers if isinstance(l, _fnn.Dense)]
            return _LayerArrays([l.weight if name == "coefs_" else l.bias for l in dense], name)
        pending = self.__dict__.get("_init_" + name)
        if pending is None:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        return pending

    def _set_layer_arrays(self, name, arrays):
        ndim = 2 if name == "coefs_" else 1
        if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)):
            raise TypeError(f"{name}: expected a list of arrays (one per layer), got {type(arrays).__name__}")
        if hasattr(self, "_model"):
            current = self._layer_arrays(name)
            if len(arrays) != len(current):
                raise ValueError(f"{name}: expected {len(current)} arrays (one per layer), got {len(arrays)}")
            checked = [replacement(a, dst.shape, f"{name}[{i}]", dtype=dst.dtype)
                       for i, (a, dst) in enumerate(zip(arrays, current))]
            for dst, a in zip(current, checked):
                np.copyto(dst, a)
            return
        kept = []
        for i, a in enumerate(arrays):
            try:
                a = np.array(a, copy=True)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name}[{i}]: cannot be read as an array ({e})") from None
            if a.ndim != ndim:
                raise ValueError(f"{name}[{i}]: expected a {ndim}-D array, got shape {a.shape}")
            kept.append(replacement(a, a.shape, f"{name}[{i}]"))
        self.__dict__["_init_" + name] = kept

    coefs_ = property(lambda self: self._layer_arrays("coefs_"),
                      lambda self, value: self._set_layer_arrays("coefs_", value),
                      doc="Weight matrices, one (fan_in, fan_out) array per layer (views of the network's).")
    intercepts_ = property(lambda self: self._layer_arrays("intercepts_"),
                           lambda self, value: self._set_layer_arrays("intercepts_", value),
                           doc="Bias vectors, one (fan_out,) array per layer (views of the network's).")

    # ---- the network -----------------------------------------------------------------------------

    def _network(self, n_features, n_outputs, seed, dtype, l2):
        act = _ACTIVATIONS[self.activation]
        layers = []
        for units in self._hidden():
            layers.append(_fnn.Dense(units, activation=act, l2=l2))
            if self.dropout:
                layers.append(_fnn.Dropout(float(self.dropout)))
        layers.append(_fnn.Dense(n_outputs, l2=l2))
        return _fnn.Sequential(layers, input_dim=n_features, dtype=str(np.dtype(dtype)), seed=seed)

    def _build(self, n_features, n_outputs, dtype):
        """A fresh network and its weights, drawn as scikit-learn draws them (for each layer, the weight
        then the bias, uniform in +-sqrt(factor / (fan_in + fan_out))), or from coefs_ and intercepts_
        set before this first fit (warm_start)."""
        source = _random_source(self.random_state)
        units = [n_features] + self._hidden() + [n_outputs]
        factor = 2.0 if self.activation == "logistic" else 6.0
        init = []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            init.append((source.uniform(-bound, bound, (fan_in, fan_out)), source.uniform(-bound, bound, fan_out)))
        seed = _engine_seed(self.random_state, source)
        model = self._network(n_features, n_outputs, seed, dtype, 0.0)
        for layer, (w, b) in zip((l for l in model.layers if isinstance(l, _fnn.Dense)), init):
            layer.weight[...] = w
            layer.bias[...] = b
        pending = {name: self.__dict__.pop("_init_" + name, None) for name in ("coefs_", "intercepts_")}
        if self.warm_start:
            dense = [l for l in model.layers if isinstance(l, _fnn.Dense)]
            for name, arrays in pending.items():
                if arrays is None:
                    continue
                want = [l.weight.shape if name == "coefs_" else l.bias.shape for l in dense]
                got = [a.shape for a in arrays]
                if got != want:
                    raise ValueError(f"{name}: set before fit with shapes {got}, but this X and y give a network "
                                     f"with shapes {want}")
                for i, (l, a) in enumerate(zip(dense, arrays)):
                    dst = l.weight if name == "coefs_" else l.bias
                    np.copyto(dst, cast_finite(a, dst.dtype, f"{name}[{i}]"))
        self._model = model
        self._seed = seed
        self._n_outputs = n_outputs
        self._l2 = 0.0

    def _set_l2(self, l2):
        """Give every Dense layer the L2 coefficient `l2` (rebuilding the network when it changes; the
        weights are kept, the optimizer state is not)."""
        if l2 == self._l2:
            return
        old = self._model
        model = self._network(old.input_dim, self._n_outputs, self._seed, old.dtype, l2)
        model.set_weights(old.get_weights())
        self._model, self._l2, self._optimizer = model, l2, None
        self._apply_freeze()

    def _dense_weights(self, trainable_only=False):
        return [l.weight for l in self._model.layers
                if isinstance(l, _fnn.Dense) and (l.trainable or not trainable_only)]

    def _apply_freeze(self):
        k = self.freeze or 0
        for i, layer in enumerate(l for l in self._model.layers if isinstance(l, _fnn.Dense)):
            layer.trainable = i >= k

    def _new_optimizer(self):
        if self.solver == "sgd":
            nesterov = bool(self.nesterovs_momentum) and self.momentum > 0
            return _fnn.SGD(lr=self.learning_rate_init, momentum=float(self.momentum), nesterov=nesterov)
        return _fnn.Adam(lr=self.learning_rate_init, beta1=float(self.beta_1), beta2=float(self.beta_2),
                         eps=float(self.epsilon))

    def _set_learning_rate(self, lr):
        """scikit-learn's SGD learning rate from the next step on.  Its momentum buffer holds velocities
        (rate x gradient), the engine's gradients: rescale the engine's buffer so that the next steps
        equal scikit-learn's."""
        engine_lr = lr * self._grad_scale()
        state = getattr(self._model, "_state", None)
        if state is not None and state.size and self._optimizer.lr > 0:
            state *= self._optimizer.lr / engine_lr
        self._optimizer.lr = engine_lr
        self._learning_rate = lr

    def _batch(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          UserWarning, stacklevel=5)
        return int(min(max(self.batch_size, 1), n))

    def _split(self, n, y_strat):
        """Indices (train, validation) for early stopping: a random split of validation_fraction of the
        rows (rounded up), stratified by class for single-label classification."""
        rng = np.random.default_rng([self._seed, 2, self.t_])
        n_val = int(np.ceil(self.validation_fraction * n))
        perm = rng.permutation(n)
        if y_strat is not None:
            # class-sorted random order, then every (n / n_val)-th row: each class in proportion
            perm = perm[np.argsort(y_strat[perm], kind="stable")]
            pos = np.floor(np.arange(n_val) * n / n_val + rng.uniform(0, n / n_val)).astype(np.int64)
            take = np.zeros(n, dtype=bool)
            take[perm[np.minimum(pos, n - 1)]] = True
        else:
            take = np.zeros(n, dtype=bool)
            take[perm[:n_val]] = True
        return np.flatnonzero(~take), np.flatnonzero(take)

    # ---- fit -------------------------------------------------------------------------------------

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        self._check_params()
        first = not hasattr(self, "_model") or (not self.warm_start and not incremental)
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X, y = _validate(self, X, y, reset=first)
        if first:
            dtype = np.dtype(self.dtype) if self.dtype is not None else \
                (X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64))
        else:
            dtype = self._model.dtype
        X = _as_rows(X, dtype)
        target, y_orig = self._encode_targets(y, first, incremental, classes, dtype)
        sw = _check_sample_weight(sample_weight, X.shape[0])
        w = self._with_class_weights(sw, target, incremental)
        if first:
            self._build(X.shape[1], self._output_width(target), dtype)
            self.n_iter_ = 0
            self.t_ = 0
            self._optimizer = None
            self._best_weights = None
            for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
                self.__dict__.pop(name, None)
        elif self._output_width(target) != self._n_outputs:
            raise ValueError(f"y: has {self._output_width(target)} outputs but the fitted network has "
                             f"{self._n_outputs}; fit it anew (warm_start=False)")
        self.n_outputs_ = self._n_outputs_public(target)
        self.n_layers_ = len(self._hidden()) + 2
        self.out_activation_ = self._out_activation()
        try:
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, target, w)
            else:
                self._fit_stochastic(X, target, y_orig, sw, w, incremental)
        except _fnn.NonFiniteLossError as e:
            raise ValueError(_NONFINITE) from e
        if not all_finite(self._model._params):
            raise ValueError(_NONFINITE)
        return self

    def _with_class_weights(self, sw, target, incremental):
        return sw

    def _fit_stochastic(self, X, target, y_orig, sw, w, incremental):
        self._set_l2(0.0)  # the L2 term is the optimizer's weight decay here
        if not hasattr(self, "loss_curve_"):  # first stochastic fit (also after an lbfgs fit)
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.best_loss_ = np.inf
            self.validation_scores_ = self.best_validation_score_ = None
        if self.early_stopping and self.best_validation_score_ is None:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        elif not self.early_stopping and self.best_loss_ is None:  # warm start after a fit with early stopping
            self.best_loss_ = np.inf
        if not incremental or self._optimizer is None:
            self._optimizer = self._new_optimizer()
            self._learning_rate = float(self.learning_rate_init)
            self._model.compile(loss=self._loss_name(), optimizer=self._optimizer)
        self._apply_freeze()

        n = X.shape[0]
        val = None
        if self.early_stopping:
            strat = target if (target.ndim == 1 and self._is_classifier()) else None
            tr, va = self._split(n, strat)
            if va.size < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
            val = (X[va], y_orig[va], None if sw is None else sw[va])
            X, target = X[tr], target[tr]
            w = None if w is None else w[tr]
        w, mean_w = _normalised(w, X.dtype)
        batch = self._batch(X.shape[0])
        g = self._grad_scale()
        self._optimizer.lr = self._learning_rate * (g if self.solver == "sgd" else 1.0)
        self._optimizer.weight_decay = float(self.alpha) / (g * batch * mean_w)

        monitor = _Monitor(self, X.shape[0], batch, mean_w, val)
        self.n_iter_ = 0
        with _threads(self.n_threads), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a missing monitor key cannot happen here
            try:
                self._model.fit(X, target, epochs=1 if incremental else int(self.max_iter), batch_size=batch,
                                shuffle=bool(self.shuffle), callbacks=[monitor], verbose=0, sample_weight=w)
            except KeyboardInterrupt:
                warnings.warn("Training interrupted by user.")
        if self.early_stopping and self._best_weights is not None:
            self._model.set_weights(self._best_weights)
        if not incremental and not monitor.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)

    def _fit_lbfgs(self, X, target, w):
        """Full-batch L-BFGS-B through scipy on the trainable part of the flat parameter buffer, each
        loss and gradient one compute_gradients in C."""
        try:
            import scipy.optimize
        except ImportError:
            raise ImportError("solver='lbfgs' needs scipy, which is not installed: pip install scipy") from None
        w, mean_w = _normalised(w, X.dtype)
        g = self._grad_scale()
        sw_sum = X.shape[0] * mean_w
        self._set_l2(float(self.alpha) / (2.0 * g * sw_sum))
        model = self._model
        model.compile(loss=self._loss_name(), optimizer="sgd")  # compute_gradients needs the loss only
        self._optimizer = None
        self._apply_freeze()
        # frozen layers lead, so the trainable parameters are one tail of the flat buffer
        start = sum(l.weight.size + l.bias.size for l in model.layers
                    if isinstance(l, _fnn.Dense) and not l.trainable)
        params, grads = model._params[start:], model._grads[start:]
        X = model._prepare_x(X)  # checked and converted once (CSR once), not at every evaluation

        def loss_and_grad(x):
            np.copyto(params, x, casting="unsafe")
            try:
                loss = model.compute_gradients(X, target, sample_weight=w)
            except _fnn.NonFiniteLossError:
                return math.inf, np.zeros_like(x)  # the line search backs off
            return loss * g, np.multiply(grads, g, dtype=np.float64)

        def progress(intermediate_result):
            print(f"Iteration {progress.it}, loss = {intermediate_result.fun:.8f}")
            progress.it += 1
        progress.it = 1

        with _threads(self.n_threads), _serial_blas():
            if params.size:
                res = scipy.optimize.minimize(
                    loss_and_grad, params.astype(np.float64), method="L-BFGS-B", jac=True,
                    callback=progress if self.verbose else None,
                    options={"maxfun": int(self.max_fun), "maxiter": int(self.max_iter), "gtol": float(self.tol)})
                np.copyto(params, res.x, casting="unsafe")
                fun, nit, status, message = float(res.fun), int(res.nit), int(res.status), res.message
            else:  # every layer frozen: nothing to optimise
                fun, nit, status, message = g * model.compute_gradients(X, target, sample_weight=w), 0, 0, ""
        if not math.isfinite(fun):
            raise ValueError(_NONFINITE)
        self.n_iter_ = min(nit, int(self.max_iter))
        # fun = g * (data + l2 * sum W^2): report scikit-learn's loss, loss_scale * data + its L2 term
        squares = sum(float(np.square(wt, dtype=np.float64).sum()) for wt in self._dense_weights())
        penalty = float(self.alpha) / (2.0 * sw_sum) * squares
        self.loss_ = self._loss_scale * (fun - penalty) / g + penalty
        if status != 0:
            msg = f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={status}):\n{message}\n"
            if self.n_iter_ == self.max_iter:
                msg += (f"\nIncrease the number of iterations to improve the convergence (max_iter={self.max_iter}).\n"
                        "You might also want to scale the data as shown in:\n"
                        "    https://scikit-learn.org/stable/modules/preprocessing.html")
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y): up to max_iter epochs of the stochastic solver, or max_iter L-BFGS iterations
        (from the current weights when warm_start)."""
        return self._fit(X, y, sample_weight, incremental=False)

    # ---- prediction ------------------------------------------------------------------------------

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_model")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _check_fitted(self):
        if not hasattr(self, "_model"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")

    def _forward(self, X):
        """The network's output for X (probabilities for classifiers) as float64."""
        self._check_fitted()
        X = _as_rows(_validate(self, X, reset=False), self._model.dtype)
        with _threads(self.n_threads):
            return self._model.predict(X).astype(np.float64)


class MLPClassifier(_ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier (scikit-learn's parameters; see the module docstring).

    Softmax output and cross-entropy for more than two classes; one logistic output and binary
    cross-entropy for two classes, and one per label for multilabel indicator targets.

    class_weight (fastnn's own; scikit-learn's MLP has none): None, "balanced" (n_samples / (n_classes *
    count of the class), not with partial_fit) or a dict {class label: weight}; the weight of a row's
    class multiplies its sample weight.  Single-label targets only.

    Attributes after fit: classes_, n_features_in_ (feature_names_in_ for named columns), n_outputs_,
    n_layers_, out_activation_, coefs_, intercepts_, loss_, n_iter_, t_; with the stochastic solvers
    also loss_curve_, best_loss_ (None with early stopping), validation_scores_ and
    best_validation_score_ (None without).
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, class_weight=None,
                 dropout=0.0, freeze=0, dtype=None, n_threads=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
            max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
            beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dropout=dropout, freeze=freeze, dtype=dtype, n_threads=n_threads)
        self.class_weight = class_weight

    def _check_params(self):
        super()._check_params()
        cw = self.class_weight
        if not (cw is None or isinstance(cw, dict) or (isinstance(cw, str) and cw == "balanced")):
            raise ValueError(f"class_weight: expected None, 'balanced' or a dict {{class: weight}}, got {cw!r}")

    def _is_classifier(self):
        return True

    def _with_class_weights(self, sw, target, incremental):
        """The sample weights times the weight of each row's class (float64), or `sw` itself."""
        cw = self.class_weight
        if cw is None:
            return sw
        if self._multilabel:
            raise ValueError("class_weight: not available for multilabel targets (a row has one weight, "
                             "not one per label); use sample_weight")
        k = len(self.classes_)
        if isinstance(cw, str):
            if incremental:
                raise ValueError("class_weight 'balanced' is not supported for partial_fit. In order to use "
                                 "'balanced' weights, use compute_class_weight('balanced', classes=classes, y=y). "
                                 "In place of y you can use a large enough sample of the full training set target "
                                 "to properly estimate the class frequency distributions. Pass the resulting "
                                 "weights as the class_weight parameter.")
            counts = np.bincount(target.astype(np.int64), minlength=k).astype(np.float64)
            table = np.where(counts > 0, target.shape[0] / (k * np.maximum(counts, 1)), 0.0)
        else:
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            table = np.ones(k)
            for key, value in cw.items():
                i = index.get(key.item() if isinstance(key, np.generic) else key)
                if i is None:
                    raise ValueError(f"class_weight: {key!r} is not a class; classes_ is {self.classes_!r}")
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 <= value < math.inf):
                    raise ValueError(f"class_weight[{key!r}]: expected a finite weight >= 0, got {value!r}")
                table[i] = float(value)
        w = table[target.astype(np.int64)]
        w = w if sw is None else w * sw
        if not w.sum() > 0:
            raise ValueError("class_weight: gives every row of y a weight of zero")
        return w

    def _encode_targets(self, y, first, incremental, classes, dtype):
        """(engine targets, labels as given) and, on a first fit, classes_."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape "
                          "of y to (n_samples, ), for example using ravel().", DataConversionWarning, stacklevel=5)
            y = y.ravel()
        kind = _target_kind(y)
        if kind == "continuous":
            raise ValueError("Unknown label type: continuous. y: class labels are needed (use MLPRegressor "
                             "for real-valued targets)")
        if first and incremental and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if kind == "multilabel-indicator":
            if first:
                self.classes_ = np.arange(y.shape[1])
                self._multilabel = True
            elif not getattr(self, "_multilabel", False) or y.shape[1] != len(self.classes_):
                raise ValueError(f"y: expected {len(self.classes_)} labels as in the first fit, got shape {y.shape}")
            return y.astype(dtype), y
        if y.ndim != 1:
            raise ValueError(f"y: expected a 1-D array of class labels or a 0/1 indicator matrix, got shape {y.shape}")
        if first:
            cls = np.unique(np.asarray(classes)) if incremental else np.unique(y)
            if len(cls) < 2:
                raise ValueError(f"y: has 1 class ({cls[0]!r}); a classifier needs at least 2 classes")
            self.classes_ = cls
            self._multilabel = False
        elif getattr(self, "_multilabel", False):
            raise ValueError("y: the classifier was fitted on multilabel targets; got a 1-D array")
        elif incremental and classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                             f"was: {self.classes_!r}")
        elif self.warm_start and not np.array_equal(np.unique(y), self.classes_):
            # scikit-learn's rule, partial_fit included: with warm_start, y has every class of the first fit
            raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                             f"call to fit. Previously got {self.classes_}, `y` has {np.unique(y)}")
        idx = np.searchsorted(self.classes_, y)
        idx = np.minimum(idx, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                             f"'y' has {np.unique(y)}.")
        if len(self.classes_) == 2:
            return idx.astype(dtype), y
        return idx.astype(np.int64), y

    def _output_width(self, target):
        if target.ndim == 2:
            return target.shape[1]
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _n_outputs_public(self, target):
        return self._output_width(target)

    def _out_activation(self):
        return "softmax" if self._loss_name() == "cross_entropy" else "logistic"

    def _loss_name(self):
        return "cross_entropy" if (not self._multilabel and len(self.classes_) > 2) else "binary_cross_entropy"

    def _grad_scale(self):
        return float(self._n_outputs) if self._loss_name() == "binary_cross_entropy" else 1.0

    @property
    def _loss_scale(self):
        return self._grad_scale()

    @_stochastic_only
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y) (one step when it fits in a batch), keeping the optimizer state.
        `classes` (every label that will ever occur) is required on the first call."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes) (for multilabel: per label)."""
        p = self._forward(X)
        if self._multilabel:
            return p
        if p.shape[1] == 1:
            return np.hstack([1.0 - p, p])
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Class labels (for multilabel: a 0/1 indicator matrix)."""
        p = self._forward(X)
        if self._multilabel:
            return (p > 0.5).astype(np.int64)
        if p.shape[1] == 1:
            return self.classes_[(p[:, 0] > 0.5).astype(np.int64)]
        return self.classes_[np.argmax(p, axis=1)]

    def _score_raw(self, X, y, sample_weight):
        """Accuracy on already validated X (for early stopping)."""
        with _threads(self.n_threads):
            p = self._model.predict(X)
        if self._multilabel:
            hit = np.all((p > 0.5) == (y > 0.5), axis=1)
        elif p.shape[1] == 1:
            hit = self.classes_[(p[:, 0] > 0.5).astype(np.int64)] == y
        else:
            hit = self.classes_[np.argmax(p, axis=1)] == y
        return float(np.average(hit, weights=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multilabel": True}


class MLPRegressor(_RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (scikit-learn's parameters; see the module docstring): identity
    outputs, squared error (`loss="squared_error"`; scikit-learn's "poisson" is not offered).
    Attributes after fit as MLPClassifier's, without classes_."""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0,
                 freeze=0, dtype=None, n_threads=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
            max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
            beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dropout=dropout, freeze=freeze, dtype=dtype, n_threads=n_threads)
        self.loss = loss

    def _check_params(self):
        super()._check_params()
        if isinstance(self.loss, str) and self.loss == "poisson":
            raise ValueError("loss: 'poisson' is not available (the engine has no Poisson loss); "
                             "use 'squared_error'")
        if not isinstance(self.loss, str) or self.loss != "squared_error":
            raise ValueError(f"loss: expected 'squared_error', got {self.loss!r}")

    def _is_classifier(self):
        return False

    def _encode_targets(self, y, first, incremental, classes, dtype):
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"y: expected real-valued targets, got dtype {y.dtype}") from None
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape "
                          "of y to (n_samples, ), for example using ravel().", DataConversionWarning, stacklevel=5)
            y = y.ravel()
        if not np.all(np.isfinite(y)):
            raise ValueError("y: contains NaN or infinity")
        return y.astype(dtype), y.astype(np.float64)

    def _output_width(self, target):
        return 1 if target.ndim == 1 else target.shape[1]

    def _n_outputs_public(self, target):
        return self._output_width(target)

    def _out_activation(self):
        return "identity"

    def _loss_name(self):
        return "mse"

    def _grad_scale(self):
        return self._n_outputs / 2.0

    _loss_scale = 0.5

    @_stochastic_only
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y) (one step when it fits in a batch), keeping the optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets: (n_samples,) for one output, else (n_samples, n_outputs)."""
        p = self._forward(X)
        return p[:, 0] if p.shape[1] == 1 else p

    def _score_raw(self, X, y, sample_weight):
        with _threads(self.n_threads):
            p = self._model.predict(X).astype(np.float64)
        return _r2(y, p, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}


def _target_kind(y):
    """scikit-learn's type_of_target where available, else a NumPy version of the cases used here."""
    if HAVE_SKLEARN:
        return _type_of_target(y, input_name="y")
    if y.ndim == 2 and y.shape[1] > 1:
        if y.dtype.kind in "biuf" and np.all((y == 0) | (y == 1)):
            return "multilabel-indicator"
        return "multiclass-multioutput"
    if y.dtype.kind == "f" and np.any(y != np.floor(y)):
        return "continuous"
    return "binary" if len(np.unique(y)) <= 2 else "multiclass"
