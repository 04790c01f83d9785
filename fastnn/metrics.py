"""Evaluation metrics on NumPy arrays, and the name -> metric table `compile(metrics=...)` uses.

Every metric takes `(y_true, y_pred)` with one row per sample and returns a Python float (or, for
`confusion_matrix`, an int64 matrix). Everything is vectorised NumPy: counts come from `np.bincount`
on the flattened (true, predicted) pairs, never from a Python loop over samples.

What a classification metric accepts:

- `y_true`: integer class labels of shape (N,) or (N, 1) (whole-valued floats and bools are fine),
  or a one-hot / probability matrix of shape (N, C) with C >= 2 (its row argmax is the label).
- `y_pred`: class scores or probabilities (N, C) with C >= 2 (row argmax, ties to the lowest
  index as in `np.argmax`); or a vector (N,) / (N, 1) of binary probabilities in [0, 1]
  (class 1 when > 0.5); or integer class labels (N,) (whole-valued floats are taken as labels).

Precision, recall and F1 follow scikit-learn with `zero_division=0`: a ratio whose denominator is
zero counts as 0.0, and `average="macro"` averages over the classes that occur in `y_true` or in
the predictions (scikit-learn's default label set).

The probabilistic metrics `auc` and `log_loss` take scores or probabilities, not labels, in
`y_pred`: a vector (N,) / (N, 1) for a binary problem (the positive class's), or (N, C) for C
classes or labels.
"""
import math
import numbers
import re
import warnings

import numpy as np

__all__ = ["accuracy", "top_k_accuracy", "precision", "recall", "f1", "confusion_matrix", "auc", "log_loss",
           "mse", "mae", "r2", "get", "mode_for", "names"]

_AVERAGES = ("macro", "micro", "binary")


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------

def _array(x, name):
    if isinstance(x, np.ndarray):
        return x
    try:
        x = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be read as an array ({e})") from None
    return x


def _numeric(x, name):
    x = _array(x, name)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample, got shape {x.shape}")
    if x.ndim > 2:
        raise ValueError(f"{name}: expected a 1-D or 2-D array, got shape {x.shape}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return x


def _same_rows(y_true, y_pred, pred_name):
    if y_pred.shape[0] != y_true.shape[0]:
        raise ValueError(f"{pred_name}: has {y_pred.shape[0]} samples but y_true has {y_true.shape[0]}")


def _whole_labels(v, name):
    """A 1-D vector of class labels as int64; ValueError unless every value is a whole number >= 0."""
    if v.dtype.kind == "f":
        if not (v == np.floor(v)).all():
            raise ValueError(f"{name}: class labels must be whole numbers")
    elif v.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected numeric labels, got dtype {v.dtype}")
    v = v.astype(np.int64, copy=False)
    if v.size and v.min() < 0:
        raise ValueError(f"{name}: class labels must be >= 0, got {v.min()}")
    return v


def _true_labels(y_true, name="y_true"):
    """(labels int64 (N,), n_columns or None): one-hot/probability rows become their argmax."""
    y = _numeric(y_true, name)
    if y.ndim == 2 and y.shape[1] >= 2:
        return np.argmax(y, axis=1).astype(np.int64, copy=False), y.shape[1]
    return _whole_labels(y.reshape(-1), name), None


def _pred_labels(y_pred, name="y_pred"):
    """(labels int64 (N,), n_columns or None) from scores, binary probabilities or labels."""
    y = _numeric(y_pred, name)
    if y.ndim == 2 and y.shape[1] >= 2:
        return np.argmax(y, axis=1).astype(np.int64, copy=False), y.shape[1]
    v = y.reshape(-1)
    if v.dtype.kind == "f" and not (v == np.floor(v)).all():
        # not whole numbers: binary probabilities of class 1
        if v.min() < 0.0 or v.max() > 1.0:
            raise ValueError(f"{name}: a 1-D float prediction must hold binary probabilities in "
                             "[0, 1] or whole-number class labels")
        return (v > 0.5).astype(np.int64), None
    return _whole_labels(v, name), None


def _label_pair(y_true, y_pred, pred_name="y_pred"):
    t, ct = _true_labels(y_true)
    p, cp = _pred_labels(y_pred, pred_name)
    _same_rows(t, p, pred_name)
    if ct is not None and cp is not None and ct != cp:
        raise ValueError(f"{pred_name}: has {cp} columns but y_true has {ct}")
    c = ct if ct is not None else cp
    if c is not None:
        for name, labels in (("y_true", t), (pred_name, p)):
            if labels.max() >= c:
                raise ValueError(f"{name}: label {labels.max()} is out of range for {c} classes")
    return t, p, c


def _average(average):
    if average not in _AVERAGES:
        raise ValueError(f"average: expected one of {', '.join(map(repr, _AVERAGES))}, got {average!r}")
    return average


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------

def accuracy(y_true, y_pred):
    """Fraction of samples whose predicted class equals the true class."""
    t, p, _ = _label_pair(y_true, y_pred)
    return float(np.mean(t == p))


def top_k_accuracy(y_true, y_score, k=5):
    """Fraction of samples whose true class is among the `k` highest scores of its row.

    `y_score` is (N, C). Ties are broken as `np.argmax` breaks them (the lower class index ranks
    first), so `top_k_accuracy(y, s, k=1) == accuracy(y, s)` always; `k >= C` gives 1.0.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    t, ct = _true_labels(y_true)
    s = _numeric(y_score, "y_score")
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"y_score: expected scores of shape (N, C) with C >= 2, got shape {s.shape}")
    _same_rows(t, s, "y_score")
    n, c = s.shape
    if ct is not None and ct != c:
        raise ValueError(f"y_score: has {c} columns but y_true has {ct}")
    if t.max() >= c:
        raise ValueError(f"y_true: label {t.max()} is out of range for {c} score columns")
    st = s[np.arange(n), t][:, None]
    cols = np.arange(c)[None, :]
    # rank of the true class = classes scored higher + equal-scored classes with a lower index
    rank = np.count_nonzero((s > st) | ((s == st) & (cols < t[:, None])), axis=1)
    return float(np.mean(rank < k))


def confusion_matrix(y_true, y_pred, num_classes=None):
    """(C, C) int64 counts: row = true class, column = predicted class (scikit-learn's layout).

    C is `num_classes` when given (labels must then be < C), else the number of columns of a
    one-hot/score input, else the largest label + 1.
    """
    t, p, c = _label_pair(y_true, y_pred)
    top = int(max(t.max(), p.max())) + 1
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
            raise TypeError(f"num_classes: expected an int, got {type(num_classes).__name__}")
        if num_classes < 1:
            raise ValueError(f"num_classes: must be >= 1, got {num_classes}")
        if c is not None and c != num_classes:
            raise ValueError(f"num_classes: is {num_classes} but the inputs have {c} columns")
        if top > num_classes:
            which = "y_true" if t.max() >= num_classes else "y_pred"
            raise ValueError(f"{which}: label {top - 1} is out of range for num_classes={num_classes}")
        c = int(num_classes)
    else:
        c = max(c or 0, top)
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c)


def _counts(y_true, y_pred, average, pos_label):
    """Per-class (tp, fp, fn) for the classes the average runs over."""
    average = _average(average)
    t, p, c = _label_pair(y_true, y_pred)
    cm = confusion_matrix(t, p, num_classes=max(c or 0, int(max(t.max(), p.max())) + 1))
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    if average == "binary":
        if isinstance(pos_label, bool) or not isinstance(pos_label, numbers.Integral):
            raise TypeError(f"pos_label: expected an int, got {type(pos_label).__name__}")
        if t.max() > 1 or p.max() > 1:
            raise ValueError("average: 'binary' needs labels in {0, 1}; use 'macro' or 'micro' "
                             "for more classes")
        if pos_label not in (0, 1):
            raise ValueError(f"pos_label: must be 0 or 1, got {pos_label}")
        k = int(pos_label)
        if k >= tp.size:  # only class 0 ever occurs
            return np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64)
        return tp[k:k + 1], fp[k:k + 1], fn[k:k + 1]
    if average == "micro":
        return tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # macro: classes seen in y_true or y_pred
    return tp[present], fp[present], fn[present]


def _ratio(num, den):
    """num / den elementwise, 0.0 where den == 0 (zero_division=0), averaged."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(np.mean(out))


def precision(y_true, y_pred, average="macro", pos_label=1):
    """tp / (tp + fp): per class then averaged ("macro"), pooled ("micro"), or of `pos_label` ("binary")."""
    tp, fp, _ = _counts(y_true, y_pred, average, pos_label)
    return _ratio(tp, tp + fp)


def recall(y_true, y_pred, average="macro", pos_label=1):
    """tp / (tp + fn): per class then averaged ("macro"), pooled ("micro"), or of `pos_label` ("binary")."""
    tp, _, fn = _counts(y_true, y_pred, average, pos_label)
    return _ratio(tp, tp + fn)


def f1(y_true, y_pred, average="macro", pos_label=1):
    """2 tp / (2 tp + fp + fn), the harmonic mean of precision and recall; "macro" averages the
    per-class F1 (not the F1 of averaged precision and recall), as scikit-learn does."""
    tp, fp, fn = _counts(y_true, y_pred, average, pos_label)
    return _ratio(2 * tp, 2 * tp + fp + fn)


# ---------------------------------------------------------------------------------------------
# scores and probabilities
# ---------------------------------------------------------------------------------------------

def _indicator(y_true, c, pred_name):
    """y_true as a 0/1 float matrix (N, c): labels become one-hot rows; a 0/1 matrix (one-hot or
    multi-label) is taken as it is; other (N, c) rows (probabilities) become one-hot at their argmax."""
    y = _numeric(y_true, "y_true")
    if y.ndim == 2 and y.shape[1] >= 2:
        if y.shape[1] != c:
            raise ValueError(f"{pred_name}: has {c} columns but y_true has {y.shape[1]}")
        if ((y == 0) | (y == 1)).all():
            return y.astype(np.float64)
        labels = np.argmax(y, axis=1)
    else:
        labels = _whole_labels(y.reshape(-1), "y_true")
        if labels.size and labels.max() >= c:
            raise ValueError(f"y_true: label {labels.max()} is out of range for {c} columns of {pred_name}")
    out = np.zeros((labels.size, c))
    out[np.arange(labels.size), labels] = 1.0
    return out


def _scores(y_pred):
    p = _numeric(y_pred, "y_pred")
    if p.ndim == 2 and p.shape[1] == 0:
        raise ValueError(f"y_pred: expected at least one column, got shape {p.shape}")
    return p


def _binary_labels(y_true, y_pred, metric):
    """y_true of a binary problem (labels in {0, 1}, or one-hot rows) as 0/1 labels matching y_pred's rows."""
    y = _numeric(y_true, "y_true")
    t = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] == 2 else _whole_labels(y.reshape(-1), "y_true")
    _same_rows(t, y_pred, "y_pred")
    if t.size and t.max() > 1:
        raise ValueError(f"y_true: a binary {metric} needs labels in {{0, 1}}; give y_pred one column per class "
                         "for more classes")
    return t


def _binary_auc(positive, score):
    """Area under the ROC curve of one column: the Mann-Whitney statistic with tied scores counted
    one half (their mid-rank), which is the trapezoidal area scikit-learn's roc_curve gives; NaN
    when the column has a single class."""
    n = score.size
    n_pos = int(np.count_nonzero(positive))
    if n_pos == 0 or n_pos == n:
        return math.nan
    order = np.argsort(score, kind="stable")
    s = score[order]
    first = np.r_[True, s[1:] != s[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]  # 1-based mid-ranks of tie groups
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * (n - n_pos)))


def auc(y_true, y_pred):
    """Area under the ROC curve (scikit-learn's roc_auc_score).

    Binary: `y_pred` a vector of positive-class scores, `y_true` labels in {0, 1}.  Multi-class:
    `y_pred` (N, C) scores and `y_true` labels or one-hot rows: the macro average over classes of each
    class's AUC against the rest (roc_auc_score(multi_class="ovr")).  Multi-label: `y_true` a 0/1
    (N, C) matrix, the macro average over labels.  A class or label that is all-positive or
    all-negative in `y_true` has no AUC and is left out of the average (with a warning); NaN when none
    has one.
    """
    s = _scores(y_pred).astype(np.float64, copy=False)
    if s.ndim == 1 or s.shape[1] == 1:
        t = _binary_labels(y_true, s, "auc")
        scores, pos = s.reshape(-1, 1), (t == 1).reshape(-1, 1)
    else:
        pos = _indicator(y_true, s.shape[1], "y_pred") > 0.5
        _same_rows(pos, s, "y_pred")
        scores = s
    values = np.array([_binary_auc(pos[:, j], scores[:, j]) for j in range(scores.shape[1])])
    defined = ~np.isnan(values)
    if not defined.all():
        warnings.warn(f"auc: {np.count_nonzero(~defined)} of {values.size} classes have a single class in y_true "
                      "(no ROC curve); they are left out of the average", RuntimeWarning, stacklevel=2)
        if not defined.any():
            return math.nan
    return float(values[defined].mean())


def log_loss(y_true, y_pred):
    """Mean negative log-likelihood of `y_true` under the probabilities `y_pred`, which are clipped to
    [eps, 1 - eps] (eps of y_pred's float type), as scikit-learn's log_loss.

    Binary: `y_pred` a vector of positive-class probabilities, `y_true` labels in {0, 1}.  Classes:
    `y_pred` (N, C), `y_true` labels, one-hot or probability rows (each summing to 1): the mean over
    rows of -sum(y log p).  Multi-label: `y_true` a 0/1 (N, C) matrix whose rows do not all sum to 1:
    the binary log loss averaged over rows and labels (Keras' binary_crossentropy).
    """
    p = _scores(y_pred)
    eps = np.finfo(p.dtype if p.dtype in (np.float32, np.float64) else np.float64).eps
    p = p.astype(np.float64, copy=False)
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"y_pred: log_loss needs probabilities in [0, 1], got values from {p.min()} to {p.max()}")
    p = np.clip(p, eps, 1.0 - eps)
    if p.ndim == 1 or p.shape[1] == 1:
        t = _binary_labels(y_true, p, "log_loss")
        p = p.reshape(-1)
        return float(-np.mean(np.where(t == 1, np.log(p), np.log1p(-p))))
    y = _numeric(y_true, "y_true")
    if y.ndim == 2 and y.shape[1] >= 2:
        _same_rows(y, p, "y_pred")
        if y.shape[1] != p.shape[1]:
            raise ValueError(f"y_pred: has {p.shape[1]} columns but y_true has {y.shape[1]}")
        y = y.astype(np.float64, copy=False)
        if not np.allclose(y.sum(axis=1), 1.0):
            if not ((y == 0) | (y == 1)).all():
                raise ValueError("y_true: rows must be one-hot or probabilities summing to 1, or 0/1 labels "
                                 "(multi-label)")
            return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
        return float(-np.mean(np.sum(y * np.log(p), axis=1)))
    onehot = _indicator(y, p.shape[1], "y_pred")
    _same_rows(onehot, p, "y_pred")
    return float(-np.mean(np.log(p[onehot > 0.5])))


# ---------------------------------------------------------------------------------------------
# regression
# ---------------------------------------------------------------------------------------------

def _regression_pair(y_true, y_pred):
    t = _numeric(y_true, "y_true").astype(np.float64, copy=False)
    p = _numeric(y_pred, "y_pred").astype(np.float64, copy=False)
    _same_rows(t, p, "y_pred")
    # (N,) and (N, 1) are the same single output
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if t.shape != p.shape:
        raise ValueError(f"y_pred: has shape {p.shape} but y_true has shape {t.shape}")
    return t, p


def mse(y_true, y_pred):
    """Mean squared error over every sample and output."""
    t, p = _regression_pair(y_true, y_pred)
    d = t - p
    return float(np.mean(d * d))


def mae(y_true, y_pred):
    """Mean absolute error over every sample and output."""
    t, p = _regression_pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def r2(y_true, y_pred):
    """Coefficient of determination 1 - SS_res / SS_tot per output, averaged uniformly over outputs.

    As scikit-learn's `r2_score` (force_finite=True): an output whose `y_true` is constant scores 1.0
    when predicted exactly and 0.0 otherwise; fewer than two samples give NaN with a warning.
    """
    t, p = _regression_pair(y_true, y_pred)
    if t.shape[0] < 2:
        warnings.warn("r2: not well defined with fewer than two samples", stacklevel=2)
        return float("nan")
    ss_res = np.sum((t - p) ** 2, axis=0)
    ss_tot = np.sum((t - np.mean(t, axis=0)) ** 2, axis=0)
    safe = ss_tot > 0
    score = np.where(ss_res == 0, 1.0, 0.0)
    score = np.where(safe, 1.0 - ss_res / np.where(safe, ss_tot, 1.0), score)
    return float(np.mean(score))


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------

# name -> (function, "max" if larger is better else "min")
_METRICS = {
    "accuracy": (accuracy, "max"),
    "acc": (accuracy, "max"),
    "top_k_accuracy": (top_k_accuracy, "max"),
    "precision": (precision, "max"),
    "recall": (recall, "max"),
    "f1": (f1, "max"),
    "auc": (auc, "max"),
    "log_loss": (log_loss, "min"),
    "mse": (mse, "min"),
    "mae": (mae, "min"),
    "r2": (r2, "max"),
}

# words that mark a larger-is-better quantity in a name such as "val_f1_score" or "categorical_acc"
_MAX_WORDS = {"acc", "accuracy", "auc", "precision", "recall", "f1", "fbeta", "r2", "iou"}


def names():
    """The metric names `get` knows, sorted."""
    return sorted(_METRICS)


def get(name):
    """The metric function called `name` (a callable is returned unchanged)."""
    if callable(name) and not isinstance(name, str):
        return name
    if not isinstance(name, str):
        raise TypeError(f"metric: expected a name or a callable, got {type(name).__name__}")
    try:
        return _METRICS[name][0]
    except KeyError:
        raise ValueError(f"metric: unknown name {name!r}; known metrics: {', '.join(names())}") from None


def mode_for(name):
    """"max" if a larger value of the quantity `name` is better, else "min".

    A "val_" prefix is ignored. Known metrics use their own direction; any other name is "max"
    when one of its "_"-separated words is accuracy-like (acc, accuracy, auc, precision, recall,
    f1, fbeta, r2, iou) and "min" otherwise (losses, errors).
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    base = name[4:] if name.startswith("val_") else name
    if base in _METRICS:
        return _METRICS[base][1]
    words = set(re.split(r"[^0-9a-z]+", base.lower()))
    return "max" if words & _MAX_WORDS else "min"
