"""Hostile input to every public function: wrong dtypes (int, bool, object, complex, float16, str), shapes
(0 rows, 0 columns, 3-D, too few rows), NaN/Inf, labels out of range, non-contiguous and read-only
arrays, and absurd hyperparameters.

Two tables.  ARRAY_CASES calls each function with one argument replaced by a mutation of a good array:
each mutation either works (non-contiguous, Fortran-order and read-only arrays always must, with the
result of the contiguous array; data that converts losslessly may) or raises the exception its KIND
table (or the row's override) says, whose message names the argument.  PARAM_CASES gives one
constructor or method argument a bad value each.  Any other exception, or a crash, fails the test.
"""
import importlib.util
import inspect
import math
import os
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn import metrics as M
from fastnn import schedules as S

OK = "ok"
rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- mutations of a good array -------------------------------------------------------------------------

def _set_first(a, value):
    a = a.astype(np.float64) if a.dtype.kind != "f" else a.copy()
    a.reshape(-1)[0] = value
    return a


def _strided(a):
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    big[tuple(slice(None, None, 2) for _ in a.shape)] = a
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    assert not view.flags.c_contiguous or a.size <= 1
    return view


def _readonly(a):
    r = np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)
    assert not r.flags.writeable
    return r


MUTATIONS = {
    "int": lambda a: a.astype(np.int64),
    "bool": lambda a: a != 0,
    "object": lambda a: a.astype(object),
    "complex": lambda a: a.astype(np.complex64),
    "float16": lambda a: a.astype(np.float16),
    "str": lambda a: a.astype(str),
    "nan": lambda a: _set_first(a, np.nan),
    "inf": lambda a: _set_first(a, -np.inf),
    "rows0": lambda a: a[:0],
    "cols0": lambda a: a[:, :0] if a.ndim == 2 else a.reshape(a.shape[0], 0) if a.size == 0 else a[:, None][:, :0],
    "ndim3": lambda a: a.reshape(a.shape + (1,) * (3 - a.ndim)),
    "short": lambda a: a[:-1],
    "strided": _strided,
    "fortran": lambda a: np.asfortranarray(a) if a.ndim == 2 else _strided(a),
    "readonly": _readonly,
    "neg": lambda a: _set_first(a, -1).astype(a.dtype),
    "big": lambda a: _set_first(a, 1000).astype(a.dtype),
    "frac": lambda a: _set_first(a, 0.5),
}
LAYOUTS = ("strided", "fortran", "readonly")  # must work, with the same result as the contiguous array


def T(pattern="{arg}"):
    return (TypeError, pattern)


def V(pattern="{arg}"):
    return (ValueError, pattern)


# What each kind of argument does with each mutation (patterns are regular expressions; {arg} is the
# argument's name).  A row's `override` replaces entries for one argument.
NOT_FLOAT = T(r"{arg}: expected a float32 or float64 array")
NOT_FINITE = V(r"{arg}: contains NaN or Inf")
KINDS = {
    # fnn.ops inputs: float32/float64 only, any shape
    "ops": {"int": NOT_FLOAT, "bool": NOT_FLOAT, "object": NOT_FLOAT, "complex": NOT_FLOAT, "float16": NOT_FLOAT,
            "str": NOT_FLOAT, "nan": NOT_FINITE, "inf": NOT_FINITE, "rows0": OK, "cols0": OK, "ndim3": OK, "short": OK},
    # loss targets in fnn.ops: data, so any real dtype converts
    "ops_target": {"int": OK, "bool": OK, "float16": OK, "object": T(r"{arg}: expected real numbers"),
                   "complex": T(r"{arg}: expected real numbers"), "str": T(r"{arg}: expected real numbers"),
                   "nan": NOT_FINITE, "inf": NOT_FINITE, "rows0": V(r"{arg}: expected shape"),
                   "cols0": V(r"{arg}: expected shape"), "ndim3": V(r"{arg}: expected shape"),
                   "short": V(r"{arg}: expected shape")},
    # model inputs X: any real dtype converts to the model's
    "X": {"int": OK, "bool": OK, "float16": OK, "object": T(r"{arg}: expected a numeric array"),
          "complex": T(r"{arg}: expected a numeric array"), "str": T(r"{arg}: expected a numeric array"),
          "nan": NOT_FINITE, "inf": NOT_FINITE, "rows0": V(r"{arg}: has no rows|{arg}.* 0 rows|has 0 rows but {arg}"),
          "cols0": V(r"{arg}: (has no features|expected \d+ features)"), "ndim3": V(r"{arg}: expected a 2-D array"),
          "short": V(r"has \d+ rows but {arg} has 19")},
    # class labels for cross-entropy (model targets y)
    "labels": {"int": OK, "bool": OK, "float16": OK, "frac": V(r"{arg}: class labels must be whole numbers"),
               "object": T(r"{arg}: expected a numeric array"), "complex": T(r"{arg}: expected a numeric array"),
               "str": T(r"{arg}: expected a numeric array"), "nan": NOT_FINITE, "inf": NOT_FINITE,
               "neg": V(r"{arg}: class labels must be in \[0, 3\)"), "big": V(r"{arg}: class labels must be in \[0, 3\)"),
               "rows0": V(r"{arg}: has 0 rows but X has 20"), "ndim3": V(r"{arg}: expected a 1-D or 2-D array"),
               "short": V(r"{arg}: has 19 rows but X has 20")},
    # real-valued model targets (mse) and sample weights
    "target": {"int": OK, "bool": OK, "float16": OK, "object": T(r"{arg}: expected a numeric array"),
               "complex": T(r"{arg}: expected a numeric array"), "str": T(r"{arg}: expected a numeric array"),
               "nan": NOT_FINITE, "inf": NOT_FINITE, "rows0": V(r"{arg}: has 0 rows but X has 20"),
               "cols0": V(r"{arg}: expected 2 columns"), "ndim3": V(r"{arg}: expected a 1-D or 2-D array"),
               "short": V(r"{arg}: has 19 rows but X has 20")},
    "weights": {"int": OK, "bool": OK, "float16": OK, "object": T(r"{arg}: expected a numeric array"),
                "complex": T(r"{arg}: expected a numeric array"), "str": T(r"{arg}: expected a numeric array"),
                "nan": NOT_FINITE, "inf": NOT_FINITE, "neg": V(r"{arg}: must not be negative"),
                "rows0": V(r"{arg}: expected 20 values"), "ndim3": V(r"{arg}: expected a 1-D array"),
                "short": V(r"{arg}: expected 20 values")},
    # fastnn.metrics: y_true/y_pred of any real dtype
    "metric": {"int": OK, "bool": OK, "float16": OK, "object": T(r"{arg}: expected a numeric array"),
               "complex": T(r"{arg}: expected a numeric array"), "str": T(r"{arg}: expected a numeric array"),
               "nan": NOT_FINITE, "inf": NOT_FINITE, "rows0": V(r"{arg}: expected at least one sample"),
               "ndim3": V(r"{arg}: expected a 1-D or 2-D array"), "short": V(r"has 19 samples but y_true has 20|"
                                                                            r"{arg}: has 19 samples")},
    # weight arrays given to a model (set_weights, layer.weight =, load_weights)
    "param": {"int": OK, "float16": OK, "bool": T(r"{arg}"), "object": T(r"{arg}"), "complex": T(r"{arg}"),
              "str": T(r"{arg}"), "nan": V(r"{arg}.*NaN or Inf"), "inf": V(r"{arg}.*NaN or Inf"),
              "rows0": V(r"{arg}.*shape"), "cols0": V(r"{arg}.*shape"), "ndim3": V(r"{arg}.*shape"),
              "short": V(r"{arg}.*shape")},
    # scikit-learn estimators: scikit-learn's checks, with the argument named in front
    "skX": {"int": OK, "bool": OK, "float16": OK, "object": OK, "str": V(r"{arg}"), "complex": V(r"{arg}: Complex"),
            "nan": V(r"Input {arg} contains NaN"), "inf": V(r"Input {arg} contains infinity"),
            "rows0": V(r"{arg}: Found array with 0 sample"), "cols0": V(r"{arg}: Found array with 0 feature"),
            "ndim3": V(r"{arg}: Found array with dim 3"), "short": V(r"X, y: Found input variables with inconsistent")},
}


class Case:
    """fn(**args) for good `args`; `kinds` maps each argument to mutate to its kind."""

    def __init__(self, name, fn, args, kinds, override=None, skip=()):
        self.name, self.fn, self.args, self.kinds = name, fn, args, kinds
        self.override, self.skip = override or {}, set(skip)

    def expectations(self):
        for arg, kind in self.kinds.items():
            table = dict(KINDS[kind])
            table.update({m: OK for m in LAYOUTS})
            table.update(self.override.get(arg, {}))
            for mutation, expected in table.items():
                if (arg, mutation) in self.skip or mutation in self.skip:
                    continue
                yield arg, mutation, expected


def _model(loss="cross_entropy", out=3, dtype="float32", metrics=()):
    m = fnn.Sequential([fnn.Dense(8, "relu"), fnn.Dropout(0.25), fnn.Dense(out)], seed=0, dtype=dtype)
    m.compile(loss, fnn.SGD(lr=0.05, momentum=0.9), metrics=list(metrics))
    return m


def _fitted(loss="cross_entropy", out=3):
    m = _model(loss, out)
    m.fit(X20, Y20 if loss == "cross_entropy" else T20, epochs=1, verbose=0)
    return m


X20 = f32(20, 5)
Y20 = np.arange(20) % 3
T20 = f32(20, 2)
P20 = rng.dirichlet(np.ones(3), 20)  # class probabilities
W20 = np.linspace(0.5, 1.5, 20).astype(np.float32)
FITTED = _fitted()
FITTED_MSE = _fitted("mse", 2)

_SHAPE = {"ndim3": OK, "rows0": OK, "cols0": OK, "short": OK}
_LOSS_PRED = {"rows0": V(r"{arg}: empty array"), "cols0": V(r"{arg}: empty array"),
              "ndim3": V(r"{arg}: expected a \(1, 2\)-D array|{arg}: expected a 2-D array|shape"),
              "short": V(r"target: expected shape|target: expected \d+ class labels")}


def _act_cases():
    out = []
    for name in ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu", "softmax", "log_softmax"):
        out.append(Case(f"ops.{name}", lambda x, name=name: getattr(fnn.ops, name)(x), {"x": f32(6, 4)}, {"x": "ops"}))
    out.append(Case("ops.activation_grad", lambda x, dy: fnn.ops.activation_grad("elu", x, dy),
                    {"x": f32(6, 4), "dy": f32(6, 4)}, {"x": "ops", "dy": "ops"},
                    override={"x": {m: V(r"dy: expected shape") for m in ("rows0", "cols0", "ndim3", "short")},
                              "dy": {m: V(r"dy: expected shape") for m in ("rows0", "cols0", "ndim3", "short")}}))
    return out


ARRAY_CASES = _act_cases() + [
    Case("ops.gemm", lambda a, b: fnn.ops.gemm(a, b), {"a": f32(6, 4), "b": f32(4, 3)}, {"a": "ops", "b": "ops"},
         override={"a": {"cols0": V(r"b: inner dimensions differ"), "ndim3": V(r"a: expected a 2-D array"),
                         "short": OK},
                   "b": {"rows0": V(r"b: inner dimensions differ"), "short": V(r"b: inner dimensions differ"),
                         "ndim3": V(r"b: expected a 2-D array")}}),
    Case("ops.gemm out", lambda a, b, out: fnn.ops.gemm(a, b, out=out.copy() if out.flags.writeable else out,
                                                        beta=0.5),
         {"a": f32(6, 4), "b": f32(4, 3), "out": f32(6, 3)}, {"out": "ops"},
         override={"out": {"int": T(r"out: expected dtype float32"), "bool": T(r"out: expected dtype float32"),
                           "object": T(r"out: expected dtype float32"), "complex": T(r"out: expected dtype float32"),
                           "float16": T(r"out: expected dtype float32"), "str": T(r"out: expected dtype float32"),
                           "rows0": V(r"out: expected shape"), "cols0": V(r"out: expected shape"),
                           "ndim3": V(r"out: expected shape"), "short": V(r"out: expected shape"),
                           "readonly": V(r"out: array is read-only")}}),
    Case("ops.cross_entropy", lambda logits, target: fnn.ops.cross_entropy(logits, target),
         {"logits": f32(6, 4), "target": np.arange(6) % 4}, {"logits": "ops", "target": "ops_target"},
         override={"logits": dict(_LOSS_PRED, ndim3=V(r"logits: expected a 2-D array")),
                   "target": {"float16": V(r"target: expected int class labels"),
                              "bool": V(r"target: expected int class labels"),
                              "nan": V(r"target: expected int class labels"),
                              "inf": V(r"target: expected int class labels"),
                              "frac": V(r"target: expected int class labels"),
                              "object": T(r"target: expected int class labels or float probabilities"),
                              "complex": T(r"target: expected int class labels or float probabilities"),
                              "str": T(r"target: expected int class labels or float probabilities"),
                              "neg": V(r"target: class labels must lie in \[0, 4\)"),
                              "big": V(r"target: class labels must lie in \[0, 4\)"),
                              "rows0": V(r"target: expected 6 class labels"),
                              "ndim3": V(r"target: expected 6 class labels"),
                              "short": V(r"target: expected 6 class labels")}},
         skip=[("target", "cols0")]),
    Case("ops.cross_entropy probabilities", lambda logits, target: fnn.ops.cross_entropy(logits, target),
         {"logits": f32(6, 4), "target": np.full((6, 4), 0.25, np.float32)}, {"target": "ops_target"},
         override={"target": {"int": V(r"target: expected 6 class labels"),
                              "bool": V(r"target: expected int class labels"),
                              "object": T(r"target: expected int class labels or float probabilities"),
                              "complex": T(r"target: expected int class labels or float probabilities"),
                              "str": T(r"target: expected int class labels or float probabilities"),
                              "float16": OK, "rows0": V(r"target: probabilities must have the shape of logits"),
                              "cols0": V(r"target: probabilities must have the shape of logits"),
                              "short": V(r"target: probabilities must have the shape of logits"),
                              "ndim3": V(r"target: expected int class labels")}}),
    Case("ops.binary_cross_entropy", lambda logits, target: fnn.ops.binary_cross_entropy(logits, target),
         {"logits": f32(6, 4), "target": (f32(6, 4) > 0).astype(np.float32)}, {"logits": "ops", "target": "ops_target"},
         override={"logits": _LOSS_PRED, "target": {"neg": V(r"target: binary cross-entropy targets must lie in"),
                                                     "big": V(r"target: binary cross-entropy targets must lie in")}}),
] + [
    Case(f"ops.{name}", lambda pred, target, name=name: getattr(fnn.ops, name)(pred, target),
         {"pred": f32(6, 4), "target": f32(6, 4)}, {"pred": "ops", "target": "ops_target"}, override={"pred": _LOSS_PRED})
    for name in ("mse", "mae", "huber")
] + [
    # ---- Sequential -------------------------------------------------------------------------------------
    Case("Sequential.fit", lambda X, y: _model(metrics=["accuracy"]).fit(X, y, epochs=2, batch_size=8, verbose=0,
                                                                         validation_split=0.2),
         {"X": X20, "y": Y20}, {"X": "X", "y": "labels"},
         override={"X": {"rows0": V(r"X: has no rows"), "short": V(r"y: has 20 rows but X has 19")}}),
    Case("Sequential.fit one-hot", lambda X, y: _model().fit(X, y, epochs=1, verbose=0),
         {"X": X20, "y": np.eye(3, dtype=np.float32)[Y20]}, {"y": "target"},
         override={"y": {"cols0": V(r"y: expected 3 columns"),
                          "neg": V(r"y: cross-entropy targets must lie in \[0, 1\].*row 0, column 0"),
                          "big": V(r"y: cross-entropy targets must lie in \[0, 1\].*row 0, column 0")}}),
    Case("Sequential.fit mse", lambda X, y: _model("mse", 2).fit(X, y, epochs=1, verbose=0),
         {"X": X20, "y": T20}, {"X": "X", "y": "target"},
         override={"X": {"rows0": V(r"X: has no rows"), "short": V(r"y: has 20 rows but X has 19")}}),
    Case("Sequential.fit weights",
         lambda sample_weight: _model().fit(X20, Y20, sample_weight=sample_weight, epochs=1, verbose=0),
         {"sample_weight": W20}, {"sample_weight": "weights"}, skip=[("sample_weight", "cols0")]),
    Case("Sequential.fit validation_data",
         lambda Xv, yv: _model().fit(X20, Y20, validation_data=(Xv, yv), epochs=1, verbose=0),
         {"Xv": X20[:10], "yv": Y20[:10]}, {"Xv": "X", "yv": "labels"},
         override={"Xv": {"rows0": V(r"validation_data X: has no rows"), "cols0": V(r"validation_data X: expected 5"),
                          "short": V(r"validation_data y: has 10 rows but X has 9"),
                          **{m: (e[0], e[1].replace("{arg}", "validation_data X"))
                             for m, e in KINDS["X"].items() if e != OK and m not in ("rows0", "cols0", "short")}},
                   "yv": {**{m: (e[0], e[1].replace("{arg}", "validation_data y").replace("X has 20", "X has 10")
                                   .replace("has 19 rows", "has 9 rows"))
                             for m, e in KINDS["labels"].items() if e != OK}}}),
    Case("Sequential.predict", lambda X: FITTED.predict(X), {"X": X20}, {"X": "X"},
         override={"X": {"short": OK, "rows0": V(r"X: has no rows")}}),
    Case("Sequential.evaluate", lambda X, y: FITTED.evaluate(X, y)["loss"], {"X": X20, "y": Y20},
         {"X": "X", "y": "labels"}, override={"X": {"rows0": V(r"X: has no rows"), "short": V(r"y: has 20 rows but X has 19")}}),
    Case("Sequential.evaluate mse", lambda y: FITTED_MSE.evaluate(X20, y)["loss"], {"y": T20}, {"y": "target"}),
    Case("Sequential.train_on_batch", lambda X, y: _fitted().train_on_batch(X, y), {"X": X20, "y": Y20},
         {"X": "X", "y": "labels"}, override={"X": {"rows0": V(r"X: has no rows"), "short": V(r"y: has 20 rows but X has 19")}}),
    Case("Sequential.compute_gradients", lambda X, y: FITTED.compute_gradients(X, y), {"X": X20, "y": Y20},
         {"X": "X", "y": "labels"}, override={"X": {"rows0": V(r"X: has no rows"), "short": V(r"y: has 20 rows but X has 19")}}),
    Case("Sequential.set_weights", lambda w: _fitted().set_weights([w] + FITTED.get_weights()[1:]),
         {"w": FITTED.get_weights()[0]}, {"w": "param"},
         override={"w": {m: (e[0], e[1].replace("{arg}", r"weights\[0\]")) for m, e in KINDS["param"].items() if e != OK}}),
    Case("Dense.weight =", lambda w: setattr(_fitted().layers[0], "weight", w), {"w": FITTED.layers[0].weight.copy()},
         {"w": "param"},
         override={"w": {m: (e[0], e[1].replace("{arg}", "dense: weight")) for m, e in KINDS["param"].items() if e != OK}}),
    Case("Sequential.load_weights", lambda w: _fitted().load_weights(
        {"layers.0.weight": w, **{k: v for k, v in FITTED._named_parameters() if k != "layers.0.weight"}}),
         {"w": FITTED.layers[0].weight.copy()}, {"w": "param"},
         override={"w": {m: (fnn.ModelFormatError if e[0] is ValueError and "shape" in e[1] else e[0],
                             e[1].replace("{arg}", "load_weights: tensor 'layers.0.weight'"))
                         for m, e in KINDS["param"].items() if e != OK}}),
] + [
    # ---- metrics ----------------------------------------------------------------------------------------
    Case(f"metrics.{name}", lambda y_true, y_pred, name=name: getattr(M, name)(y_true, y_pred),
         {"y_true": Y20, "y_pred": f32(20, 3)}, {"y_true": "metric", "y_pred": "metric"},
         override={"y_true": {"neg": V(r"y_true: class labels must be >= 0"), "big": V(r"y_true: label 1000 is out of range"),
                              "frac": V(r"y_true: class labels must be whole numbers"),
                              "short": V(r"y_pred: has 20 samples but y_true has 19")},
                   "y_pred": {"short": V(r"y_pred: has 19 samples")}},
         skip=[("y_true", "cols0"), ("y_pred", "cols0")])
    for name in ("accuracy", "precision", "recall", "f1", "confusion_matrix")
] + [
    Case("metrics.top_k_accuracy", lambda y_true, y_score: M.top_k_accuracy(y_true, y_score, k=2),
         {"y_true": Y20, "y_score": f32(20, 3)}, {"y_true": "metric", "y_score": "metric"},
         override={"y_true": {"neg": V(r"y_true: class labels must be >= 0"), "big": V(r"y_true: label 1000 is out of range"),
                              "frac": V(r"y_true: class labels must be whole numbers"),
                              "short": V(r"y_score: has 20 samples but y_true has 19")},
                   "y_score": {"short": V(r"y_score: has 19 samples"), "ndim3": V(r"y_score: expected a 1-D or 2-D"),
                               "cols0": V(r"y_score: expected scores of shape")}},
         skip=[("y_true", "cols0")]),
] + [
    Case(f"metrics.{name}", lambda y_true, y_pred, name=name: getattr(M, name)(y_true, y_pred),
         {"y_true": Y20, "y_pred": P20}, {"y_true": "metric", "y_pred": "metric"},
         override={"y_true": {"neg": V(r"y_true: class labels must be >= 0"), "big": V(r"y_true: label 1000 is out of range"),
                              "frac": V(r"y_true: class labels must be whole numbers"),
                              "short": V(r"y_pred: has 20 samples but y_true has 19"),
                              "cols0": V(r"y_pred: has 20 samples but y_true has 0")},
                   "y_pred": {"short": V(r"y_pred: has 19 samples"),
                              "cols0": V(r"y_pred: expected at least one column")}
                   | ({"neg": V(r"y_pred: log_loss needs probabilities in \[0, 1\]"),
                       "big": V(r"y_pred: log_loss needs probabilities in \[0, 1\]")} if name == "log_loss" else {})})
    for name in ("auc", "log_loss")
] + [
    Case(f"metrics.{name}", lambda y_true, y_pred, name=name: getattr(M, name)(y_true, y_pred),
         {"y_true": f32(20), "y_pred": f32(20)}, {"y_true": "metric", "y_pred": "metric"},
         override={"y_pred": {"short": V(r"y_pred: has 19 samples")},
                   "y_true": {"short": V(r"y_pred: has 20 samples but y_true has 19")}}, skip=["cols0"])
    for name in ("mse", "mae", "r2")
]


def _sklearn_cases():
    """The estimators with scikit-learn installed (its validation and messages, named by fastnn)."""
    if importlib.util.find_spec("sklearn") is None:
        return []
    from fastnn.sklearn import MLPClassifier, MLPRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: two epochs on purpose
        clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(X20, Y20)
    return [
        Case("MLPClassifier.fit", lambda X, y: MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y).predict(X20),
             {"X": X20, "y": Y20}, {"X": "skX", "y": "skX"},
             override={"X": {"str": OK},
                       "y": {"str": OK, "object": OK, "float16": OK, "neg": OK, "big": OK, "frac": V(r"y: class labels"),
                             "rows0": V(r"y: |X, y: Found array with 0 sample"),
                             "short": V(r"X, y: Found input variables with inconsistent"),
                             "ndim3": V(r"y: expected a 1-D array of class labels|y"),
                             "nan": V(r"Input y contains NaN"), "inf": V(r"Input y contains infinity")}},
             skip=[("y", "cols0"), ("y", "bool"), ("y", "complex"), ("y", "int")]),
        Case("MLPClassifier.predict", lambda X: clf.predict(X), {"X": X20}, {"X": "skX"},
             override={"X": {"short": OK, "str": OK}}),
        Case("MLPRegressor.fit",
             lambda X, y: MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y).predict(X20),
             {"X": X20, "y": T20[:, 0].copy()}, {"X": "skX", "y": "skX"},
             override={"X": {"str": OK},
                       "y": {"str": OK, "object": OK, "rows0": V(r"y: |X, y: Found array with 0 sample"),
                             "ndim3": V(r"y"), "nan": V(r"Input y contains NaN"),
                             "inf": V(r"Input y contains infinity")}},
             skip=[("y", "cols0")]),
    ]


ARRAY_CASES += _sklearn_cases()


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, fnn.History):
        return a.history["loss"] == b.history["loss"]
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _array_params():
    for case in ARRAY_CASES:
        for arg, mutation, expected in case.expectations():
            yield pytest.param(case, arg, mutation, expected, id=f"{case.name}-{arg}-{mutation}")


@pytest.mark.parametrize("case, arg, mutation, expected", list(_array_params()))
def test_hostile_arrays(case, arg, mutation, expected):
    bad = MUTATIONS[mutation](case.args[arg])
    args = dict(case.args, **{arg: bad})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if expected == OK:
            got = case.fn(**args)
            if mutation in LAYOUTS:
                assert _same(got, case.fn(**case.args)), "a non-contiguous or read-only array changed the result"
            return
        exc, pattern = expected
        with pytest.raises(exc, match=pattern.replace("{arg}", arg)):
            case.fn(**args)


# ---- hyperparameters ---------------------------------------------------------------------------------------

def _fit(**kw):
    m = _model()
    return m.fit(X20, Y20, **dict(dict(epochs=1, verbose=0), **kw))


def _compiled(**kw):
    m = fnn.Sequential([fnn.Dense(3)], input_dim=5, seed=0)
    m.compile(**dict(dict(loss="cross_entropy"), **kw))
    return m


def _sk(cls, **params):
    from fastnn.sklearn import MLPClassifier, MLPRegressor
    est = {"clf": MLPClassifier, "reg": MLPRegressor}[cls](**dict(dict(hidden_layer_sizes=(4,), max_iter=2), **params))
    return est.fit(X20, Y20 if cls == "clf" else T20[:, 0])


def _sk_coefs(coefs):
    est = _sk("clf")
    est.coefs_ = coefs
    return est


def _sk_coefs_before_fit(coefs):
    from fastnn.sklearn import MLPClassifier
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, warm_start=True)
    est.coefs_ = coefs
    return est.fit(X20, Y20)


NAN, INF = math.nan, math.inf
PARAM_CASES = [  # (id, callable, exception, pattern)
    # layers
    ("Dense units 0", lambda: fnn.Dense(0), ValueError, r"units: must be >= 1"),
    ("Dense units -3", lambda: fnn.Dense(-3), ValueError, r"units: must be >= 1"),
    ("Dense units float", lambda: fnn.Dense(2.5), TypeError, r"units: expected an int"),
    ("Dense units str", lambda: fnn.Dense("8"), TypeError, r"units: expected an int"),
    ("Dense units None", lambda: fnn.Dense(None), TypeError, r"units: expected an int"),
    ("Dense units bool", lambda: fnn.Dense(True), TypeError, r"units: expected an int"),
    ("Dense l2 negative", lambda: fnn.Dense(3, l2=-1e-4), ValueError, r"l2: must be >= 0"),
    ("Dense l1 nan", lambda: fnn.Dense(3, l1=NAN), ValueError, r"l1: must be finite"),
    ("Dense l2 inf", lambda: fnn.Dense(3, l2=INF), ValueError, r"l2: must be finite"),
    ("Dense l2 str", lambda: fnn.Dense(3, l2="0.1"), TypeError, r"l2: expected a real number"),
    ("Dense activation unknown", lambda: fnn.Dense(3, "swish"), ValueError, r"activation: unknown activation"),
    ("Dense activation int", lambda: fnn.Dense(3, 1), TypeError, r"activation: expected a name"),
    ("Dense kernel_init unknown", lambda: fnn.Dense(3, kernel_init="zeros"), ValueError, r"kernel_init"),
    ("Dense kernel_init list", lambda: fnn.Dense(3, kernel_init=["he_normal"]), TypeError, r"kernel_init"),
    ("Dense name int", lambda: fnn.Dense(3, name=7), TypeError, r"name: expected a str"),
    ("Dropout p=1", lambda: fnn.Dropout(1), ValueError, r"p: must be < 1"),
    ("Dropout p>1", lambda: fnn.Dropout(1.5), ValueError, r"p: must be < 1"),
    ("Dropout p<0", lambda: fnn.Dropout(-0.1), ValueError, r"p: must be >= 0"),
    ("Dropout p nan", lambda: fnn.Dropout(NAN), ValueError, r"p: must be finite"),
    ("Dropout p str", lambda: fnn.Dropout("0.5"), TypeError, r"p: expected a real number"),
    ("Dropout keep_prob 0", lambda: fnn.Dropout(keep_prob=0), ValueError, r"keep_prob: must be > 0"),
    ("Dropout keep_prob>1", lambda: fnn.Dropout(keep_prob=1.5), ValueError, r"keep_prob: must be <= 1"),
    ("Dropout both", lambda: fnn.Dropout(0.5, keep_prob=0.5), ValueError, r"p .*keep_prob|either p"),
    ("Activation unknown", lambda: fnn.Activation("swish"), ValueError, r"activation: unknown activation"),
    ("Activation None type", lambda: fnn.Activation(3), TypeError, r"activation: expected a name"),
    ("Activation alpha on relu", lambda: fnn.Activation("relu", alpha=0.1), TypeError, r"takes no parameter 'alpha'"),
    ("Activation alpha nan", lambda: fnn.Activation("elu", alpha=NAN), ValueError, r"alpha: must be finite"),
    # optimizers
    ("SGD lr negative", lambda: fnn.SGD(lr=-0.1), ValueError, r"lr: must be >= 0"),
    ("SGD lr nan", lambda: fnn.SGD(lr=NAN), ValueError, r"lr: must be finite"),
    ("SGD lr inf", lambda: fnn.SGD(lr=INF), ValueError, r"lr: must be finite"),
    ("SGD lr str", lambda: fnn.SGD(lr="fast"), TypeError, r"lr: expected a real number"),
    ("SGD momentum negative", lambda: fnn.SGD(momentum=-0.9), ValueError, r"momentum: must be >= 0"),
    ("SGD nesterov without momentum", lambda: fnn.SGD(nesterov=True), ValueError, r"nesterov: needs a momentum"),
    ("SGD weight_decay negative", lambda: fnn.SGD(weight_decay=-1), ValueError, r"weight_decay: must be >= 0"),
    ("Adam beta1=1", lambda: fnn.Adam(beta1=1.0), ValueError, r"beta1: must be < 1"),
    ("Adam beta2 negative", lambda: fnn.Adam(beta2=-0.5), ValueError, r"beta2: must be >= 0"),
    ("Adam eps negative", lambda: fnn.Adam(eps=-1e-8), ValueError, r"eps: must be >= 0"),
    ("Adam lr negative", lambda: fnn.Adam(lr=-1e-3), ValueError, r"lr: must be >= 0"),
    ("AdamW weight_decay nan", lambda: fnn.AdamW(weight_decay=NAN), ValueError, r"weight_decay: must be finite"),
    ("RMSprop alpha>1", lambda: fnn.RMSprop(alpha=1.5), ValueError, r"alpha: must be <= 1"),
    ("RMSprop momentum negative", lambda: fnn.RMSprop(momentum=-1), ValueError, r"momentum: must be >= 0"),
    ("optimizer lr set negative", lambda: setattr(fnn.SGD(), "lr", -1), ValueError, r"lr: must be >= 0"),
    ("schedule lr negative at fit", lambda: _compiled(optimizer=fnn.SGD(lr=lambda e: -1.0)).fit(X20, Y20, verbose=0),
     ValueError, r"lr schedule at epoch 0"),
    # schedules
    ("StepDecay initial_lr 0", lambda: S.StepDecay(0), ValueError, r"initial_lr: must be > 0"),
    ("StepDecay drop>1", lambda: S.StepDecay(0.1, drop=2), ValueError, r"drop: must be <= 1"),
    ("StepDecay every 0", lambda: S.StepDecay(0.1, every=0), ValueError, r"every: must be >= 1"),
    ("ExponentialDecay rate 0", lambda: S.ExponentialDecay(0.1, 0), ValueError, r"decay_rate: must be > 0"),
    ("ExponentialDecay epochs 0", lambda: S.ExponentialDecay(0.1, 0.5, decay_epochs=0), ValueError, r"decay_epochs"),
    ("CosineDecay total 0", lambda: S.CosineDecay(0.1, 0), ValueError, r"total_epochs: must be >= 1"),
    ("CosineDecay warmup >= total", lambda: S.CosineDecay(0.1, 5, warmup_epochs=5), ValueError, r"warmup_epochs"),
    ("CosineDecay min_lr > initial", lambda: S.CosineDecay(0.1, 5, min_lr=1), ValueError, r"min_lr: must be <= 0.1"),
    ("schedule epoch negative", lambda: S.StepDecay(0.1)(-1), ValueError, r"epoch: must be >= 0"),
    ("schedule epoch float", lambda: S.StepDecay(0.1)(1.5), TypeError, r"epoch: expected an int"),
    # callbacks
    ("EarlyStopping patience<0", lambda: fnn.EarlyStopping(patience=-1), ValueError, r"patience: must be >= 0"),
    ("EarlyStopping patience float", lambda: fnn.EarlyStopping(patience=1.5), TypeError, r"patience: expected an int"),
    ("EarlyStopping monitor int", lambda: fnn.EarlyStopping(monitor=3), TypeError, r"monitor"),
    ("EarlyStopping monitor empty", lambda: fnn.EarlyStopping(monitor=""), TypeError, r"monitor"),
    ("EarlyStopping mode", lambda: fnn.EarlyStopping(mode="up"), ValueError, r"mode: expected one of"),
    ("EarlyStopping min_delta nan", lambda: fnn.EarlyStopping(min_delta=NAN), ValueError, r"min_delta: must be finite"),
    ("EarlyStopping start_from_epoch<0", lambda: fnn.EarlyStopping(start_from_epoch=-1), ValueError, r"start_from_epoch"),
    ("EarlyStopping baseline str", lambda: fnn.EarlyStopping(baseline="low"), TypeError, r"baseline"),
    ("EarlyStopping verbose<0", lambda: fnn.EarlyStopping(verbose=-1), ValueError, r"verbose: must be >= 0"),
    ("ModelCheckpoint path int", lambda: fnn.ModelCheckpoint(3), TypeError, r"path"),
    ("ModelCheckpoint path empty", lambda: fnn.ModelCheckpoint(""), TypeError, r"path"),
    ("ModelCheckpoint mode", lambda: fnn.ModelCheckpoint("m.st", mode="best"), ValueError, r"mode"),
    ("CSVLogger path int", lambda: fnn.CSVLogger(3), TypeError, r"path"),
    ("CSVLogger path empty", lambda: fnn.CSVLogger(""), TypeError, r"path"),
    ("CSVLogger separator long", lambda: fnn.CSVLogger("log.csv", separator="::"), ValueError, r"separator"),
    ("CSVLogger separator int", lambda: fnn.CSVLogger("log.csv", separator=0), ValueError, r"separator"),
    ("CSVLogger append str", lambda: fnn.CSVLogger("log.csv", append="no"), TypeError, r"append"),
    ("CSVLogger missing directory", lambda: _csv_logger_in_missing_dir(), FileNotFoundError, r"dir.csv"),
    ("LambdaCallback on_epoch_end int", lambda: fnn.LambdaCallback(on_epoch_end=1), TypeError, r"on_epoch_end"),
    ("LambdaCallback batch hook", lambda: fnn.LambdaCallback(on_train_batch_end=print), ValueError,
     r"on_train_batch_end: fastnn runs the batches"),
    ("LambdaCallback unknown hook", lambda: fnn.LambdaCallback(on_test_end=print), TypeError, r"unknown hook"),
    ("LearningRateScheduler not callable", lambda: fnn.LearningRateScheduler(0.1), TypeError, r"schedule"),
    ("LearningRateScheduler no epoch", lambda: fnn.LearningRateScheduler(lambda: 0.1), TypeError, r"schedule"),
    ("LearningRateScheduler returns str", lambda: _fit(callbacks=[fnn.LearningRateScheduler(lambda e: "x")]),
     TypeError, r"schedule: must return a number"),
    ("LearningRateScheduler returns negative", lambda: _fit(callbacks=[fnn.LearningRateScheduler(lambda e: -1)]),
     ValueError, r"schedule: returned an invalid learning rate"),
    ("ReduceLROnPlateau factor 1", lambda: fnn.ReduceLROnPlateau(factor=1.0), ValueError, r"factor: must be in \(0, 1\)"),
    ("ReduceLROnPlateau factor 0", lambda: fnn.ReduceLROnPlateau(factor=0), ValueError, r"factor"),
    ("ReduceLROnPlateau patience<0", lambda: fnn.ReduceLROnPlateau(patience=-2), ValueError, r"patience"),
    ("ReduceLROnPlateau cooldown<0", lambda: fnn.ReduceLROnPlateau(cooldown=-1), ValueError, r"cooldown"),
    ("ReduceLROnPlateau min_lr<0", lambda: fnn.ReduceLROnPlateau(min_lr=-1), ValueError, r"min_lr"),
    # Sequential and its methods
    ("Sequential layers int", lambda: fnn.Sequential(3), TypeError, r"layers: expected a list"),
    ("Sequential layers None", lambda: fnn.Sequential(None), TypeError, r"layers: expected a list"),
    ("Sequential layer not a layer", lambda: fnn.Sequential([fnn.Dense(2), "relu"]), TypeError, r"layers\[1\]"),
    ("Sequential layer reused", lambda: _reuse_layer(), ValueError, r"already belongs to another model"),
    ("Sequential no layers", lambda: fnn.Sequential([], input_dim=3), ValueError, r"layers: the model has no layer"),
    ("Sequential input_dim 0", lambda: fnn.Sequential([fnn.Dense(2)], input_dim=0), ValueError, r"input_dim: must be >= 1"),
    ("Sequential input_dim float", lambda: fnn.Sequential([fnn.Dense(2)], input_dim=2.0), TypeError, r"input_dim"),
    ("Sequential dtype float16", lambda: fnn.Sequential([fnn.Dense(2)], dtype="float16"), ValueError, r"dtype"),
    ("Sequential dtype int", lambda: fnn.Sequential([fnn.Dense(2)], dtype=int), ValueError, r"dtype"),
    ("Sequential dtype bogus", lambda: fnn.Sequential([fnn.Dense(2)], dtype="fp32"), TypeError, r"dtype"),
    ("Sequential seed negative", lambda: fnn.Sequential([fnn.Dense(2)], seed=-1), ValueError, r"seed: must be >= 0"),
    ("Sequential seed 2**64", lambda: fnn.Sequential([fnn.Dense(2)], seed=2**64), ValueError, r"seed: must be below"),
    ("Sequential seed str", lambda: fnn.Sequential([fnn.Dense(2)], seed="0"), TypeError, r"seed: expected an int"),
    ("build input_dim 0", lambda: fnn.Sequential([fnn.Dense(2)]).build(0), ValueError, r"input_dim: must be >= 1"),
    ("compile loss unknown", lambda: _compiled(loss="hinge"), ValueError, r"loss: expected one of"),
    ("compile loss None", lambda: _compiled(loss=None), ValueError, r"loss: expected one of"),
    ("compile optimizer unknown", lambda: _compiled(optimizer="lbfgs"), ValueError, r"optimizer: unknown name"),
    ("compile optimizer int", lambda: _compiled(optimizer=3), TypeError, r"optimizer: expected a name"),
    ("compile metrics int", lambda: _compiled(metrics=3), TypeError, r"metrics: expected a list"),
    ("compile metrics unknown", lambda: _compiled(metrics=["auroc"]), ValueError, r"metrics\[0\]: unknown name"),
    ("compile metrics wrong type", lambda: _compiled(metrics=[1]), TypeError, r"metrics\[0\]"),
    ("compile huber_delta 0", lambda: _compiled(loss="huber", huber_delta=0), ValueError, r"huber_delta: must be > 0"),
    ("fit epochs negative", lambda: _fit(epochs=-1), ValueError, r"epochs: must be >= 0"),
    ("fit epochs float", lambda: _fit(epochs=2.0), TypeError, r"epochs: expected an int"),
    ("fit batch_size 0", lambda: _fit(batch_size=0), ValueError, r"batch_size: must be >= 1"),
    ("fit batch_size negative", lambda: _fit(batch_size=-32), ValueError, r"batch_size: must be >= 1"),
    ("fit batch_size float", lambda: _fit(batch_size=32.0), TypeError, r"batch_size: expected an int"),
    ("fit validation_split 1", lambda: _fit(validation_split=1.0), ValueError, r"validation_split: must be < 1"),
    ("fit validation_split negative", lambda: _fit(validation_split=-0.1), ValueError, r"validation_split"),
    ("fit validation_split empty", lambda: _model().fit(X20[:1], Y20[:1], validation_split=0.5, verbose=0), ValueError,
     r"validation_split: .* leaves an empty"),
    ("fit validation_data short", lambda: _fit(validation_data=(X20,)), ValueError, r"validation_data: expected"),
    ("fit validation_data array", lambda: _fit(validation_data=X20), ValueError, r"validation_data: expected"),
    ("fit callbacks int", lambda: _fit(callbacks=3), TypeError, r"callbacks: expected a list"),
    ("fit callbacks not callbacks", lambda: _fit(callbacks=[print]), TypeError, r"callbacks\[0\]"),
    ("fit verbose negative", lambda: _fit(verbose=-1), ValueError, r"verbose: must be >= 0"),
    ("fit class_weight list", lambda: _fit(class_weight=[1, 2, 3]), TypeError, r"class_weight: expected a dict"),
    ("fit class_weight class out of range", lambda: _fit(class_weight={5: 1.0}), ValueError, r"class_weight: class 5"),
    ("fit class_weight negative", lambda: _fit(class_weight={0: -1.0}), ValueError, r"class_weight\[0\]: must be >= 0"),
    ("fit class_weight nan", lambda: _fit(class_weight={0: NAN}), ValueError, r"class_weight\[0\]: must be finite"),
    ("fit before compile", lambda: fnn.Sequential([fnn.Dense(3)]).fit(X20, Y20), fnn.NotCompiledError, r"fit: call compile"),
    ("evaluate before compile", lambda: fnn.Sequential([fnn.Dense(3)], input_dim=5).evaluate(X20, Y20),
     fnn.NotCompiledError, r"evaluate"),
    ("predict batch_size 0", lambda: FITTED.predict(X20, batch_size=0), ValueError, r"batch_size: must be >= 1"),
    ("predict batch_size str", lambda: FITTED.predict(X20, batch_size="8"), TypeError, r"batch_size"),
    ("evaluate batch_size negative", lambda: FITTED.evaluate(X20, Y20, batch_size=-1), ValueError, r"batch_size"),
    ("predict wrong width", lambda: FITTED.predict(f32(4, 6)), ValueError, r"X: expected 5 features"),
    ("freeze up_to float", lambda: _compiled().freeze(up_to=0.5), TypeError, r"up_to: expected an int"),
    ("count_params unbuilt", lambda: fnn.Sequential([fnn.Dense(2)]).count_params(), fnn.NotFittedError, r"count_params"),
    ("get_weights unbuilt", lambda: fnn.Sequential([fnn.Dense(2)]).get_weights(), fnn.NotFittedError, r"get_weights"),
    ("set_weights count", lambda: _compiled().set_weights([np.ones((5, 3))]), ValueError, r"weights: expected 2 arrays"),
    ("set_weights not a list", lambda: _compiled().set_weights(3), TypeError, r"weights"),
    ("add after build", lambda: _compiled().add(fnn.Dense(2)), ValueError, r"add: the model is already built"),
    ("save unbuilt", lambda: fnn.Sequential([fnn.Dense(2)]).save("x.st"), fnn.NotFittedError, r"save"),
    ("save path int", lambda: _compiled().save(3), TypeError, r"path: expected a str or path-like"),
    ("save path None", lambda: _compiled().save(None), TypeError, r"path: expected a str or path-like"),
    ("save path empty", lambda: _compiled().save(""), ValueError, r"path: is empty"),
    ("save extra_metadata list", lambda: _compiled().save("x.st", extra_metadata=[("a", "b")]), TypeError,
     r"extra_metadata: expected a dict of str -> str"),
    ("save extra_metadata key int", lambda: _compiled().save("x.st", extra_metadata={1: "b"}), TypeError,
     r"extra_metadata: keys must be str"),
    ("save extra_metadata value int", lambda: _compiled().save("x.st", extra_metadata={"a": 1}), TypeError,
     r"extra_metadata\['a'\]: values must be str"),
    ("save extra_metadata reserved", lambda: _compiled().save("x.st", extra_metadata={"architecture": "{}"}),
     ValueError, r"extra_metadata: key 'architecture' is reserved"),
    ("save extra_metadata NUL", lambda: _compiled().save("x.st", extra_metadata={"a": "b\0"}), ValueError,
     r"extra_metadata: key 'a': NUL"),
    ("save metadata attribute", lambda: _save_with_metadata({"format": "x"}), ValueError,
     r"metadata: key 'format' is reserved"),
    ("spec unbuilt", lambda: fnn.Sequential([fnn.Dense(2)]).spec(), fnn.NotFittedError, r"spec"),
    ("export_onnx unbuilt", lambda: fnn.Sequential([fnn.Dense(2)]).export_onnx("x.onnx"), fnn.NotFittedError,
     r"export_onnx"),
    ("export_onnx path int", lambda: _compiled().export_onnx(3), TypeError, r"path: expected a str or path-like"),
    ("export_onnx path empty", lambda: _compiled().export_onnx(""), ValueError, r"path: is empty"),
    ("export_onnx opset str", lambda: _compiled().export_onnx("x.onnx", opset="17"), TypeError, r"opset: expected an int"),
    ("export_onnx opset old", lambda: _compiled().export_onnx("x.onnx", opset=9), ValueError, r"opset: expected 13"),
    ("load path int", lambda: fnn.load(3), TypeError, r"path: expected a str or path-like"),
    ("load path empty", lambda: fnn.load(""), ValueError, r"path: is empty"),
    ("load missing file", lambda: fnn.load("/nonexistent/m.safetensors"), FileNotFoundError, r"/nonexistent/m"),
    ("load a directory", lambda: fnn.load(os.path.dirname(__file__)), OSError, r"tests|directory"),
    ("load not a model", lambda: fnn.load(__file__), fnn.ModelFormatError, r"test_hostile.py: "),
    ("loads not bytes", lambda: fnn.saving.loads(3), TypeError, r"data: expected the bytes"),
    ("loads garbage", lambda: fnn.saving.loads(b"\x00" * 16), fnn.ModelFormatError, r"<buffer>: "),
    ("load_weights layout", lambda: _compiled().load_weights({}, layout="keras"), ValueError, r"layout: expected"),
    ("load_weights source int", lambda: _compiled().load_weights(3), TypeError, r"source must be a path or a dict"),
    ("load_weights key int", lambda: _compiled().load_weights({0: np.ones(3)}), TypeError, r"tensor names must be strings"),
    ("load_weights value str", lambda: _compiled().load_weights({"layers.0.weight": "w", "layers.0.bias": np.ones(3)}),
     fnn.ModelFormatError, r"tensor 'layers.0.weight' has shape"),
    ("load_weights unexpected", lambda: _compiled().load_weights({"layers.0.weight": np.ones((5, 3)),
                                                                  "layers.0.bias": np.ones(3), "x": np.ones(1)}),
     fnn.ModelFormatError, r"unexpected tensor 'x'"),
    ("load_weights missing file", lambda: _compiled().load_weights("/nonexistent.safetensors"), FileNotFoundError,
     r"nonexistent"),
    ("set_num_threads 0", lambda: fnn.set_num_threads(0), ValueError, r"n: expected at least 1"),
    ("set_num_threads huge", lambda: fnn.set_num_threads(2**70), ValueError, r"n: expected at most"),
    ("set_num_threads float", lambda: fnn.set_num_threads(2.0), TypeError, r"n: expected an int"),
    # metrics' own parameters
    ("top_k k 0", lambda: M.top_k_accuracy(Y20, f32(20, 3), k=0), ValueError, r"k: must be >= 1"),
    ("top_k k float", lambda: M.top_k_accuracy(Y20, f32(20, 3), k=1.5), TypeError, r"k: expected an int"),
    ("precision average", lambda: M.precision(Y20, f32(20, 3), average="weighted"), ValueError, r"average: expected"),
    ("f1 binary on 3 classes", lambda: M.f1(Y20, f32(20, 3), average="binary"), ValueError, r"average: 'binary'"),
    ("confusion_matrix num_classes 0", lambda: M.confusion_matrix(Y20, Y20, num_classes=0), ValueError, r"num_classes"),
    ("confusion_matrix num_classes small", lambda: M.confusion_matrix(Y20, Y20, num_classes=2), ValueError,
     r"y_true: label 2 is out of range for num_classes=2"),
    ("metrics.get unknown", lambda: M.get("auroc"), ValueError, r"metric: unknown name"),
    # normalization, clipping, max_norm, per-step schedules, exact resume, sparse X
    ("BatchNorm momentum>1", lambda: fnn.BatchNorm(momentum=1.5), ValueError, r"momentum: must be <= 1"),
    ("BatchNorm momentum<0", lambda: fnn.BatchNorm(momentum=-0.1), ValueError, r"momentum: must be >= 0"),
    ("BatchNorm momentum nan", lambda: fnn.BatchNorm(momentum=NAN), ValueError, r"momentum: must be finite"),
    ("BatchNorm momentum str", lambda: fnn.BatchNorm(momentum="0.9"), TypeError, r"momentum: expected a real"),
    ("BatchNorm epsilon 0", lambda: fnn.BatchNorm(epsilon=0), ValueError, r"epsilon: must be > 0"),
    ("BatchNorm epsilon inf", lambda: fnn.BatchNorm(epsilon=INF), ValueError, r"epsilon: must be finite"),
    ("BatchNorm name int", lambda: fnn.BatchNorm(name=3), TypeError, r"name: expected a str"),
    ("BatchNorm fit last batch of 1 row", lambda: _bn_model().fit(X20[:17], Y20[:17], batch_size=8, verbose=0),
     ValueError, r"batch_size: BatchNorm in training needs at least 2 rows"),
    ("BatchNorm fit batch_size 1", lambda: _bn_model().fit(X20, Y20, batch_size=1, verbose=0), ValueError,
     r"batch_size: BatchNorm"),
    ("BatchNorm train_on_batch 1 row", lambda: _bn_model().train_on_batch(X20[:1], Y20[:1]), ValueError,
     r"X: BatchNorm in training needs at least 2 rows per batch .*, got 1"),
    ("BatchNorm compute_gradients 1 row", lambda: _bn_model().compute_gradients(X20[:1], Y20[:1]), ValueError,
     r"X: BatchNorm"),
    ("BatchNorm gamma shape", lambda: setattr(_bn_model().layers[1], "gamma", np.ones(2)), ValueError,
     r"gamma: expected shape \(4,\)"),
    ("BatchNorm gamma before build", lambda: setattr(fnn.BatchNorm(), "gamma", np.ones(2)), ValueError,
     r"gamma: the model is not built"),
    ("LayerNorm epsilon negative", lambda: fnn.LayerNorm(epsilon=-1e-5), ValueError, r"epsilon: must be > 0"),
    ("LayerNorm epsilon str", lambda: fnn.LayerNorm(epsilon="1e-5"), TypeError, r"epsilon: expected a real"),
    ("LayerNorm beta nan", lambda: setattr(_bn_model().layers[2], "beta", [NAN] * 4), ValueError,
     r"beta: contains NaN"),
    ("Dense max_norm 0", lambda: fnn.Dense(3, max_norm=0), ValueError, r"max_norm: must be > 0"),
    ("Dense max_norm negative", lambda: fnn.Dense(3, max_norm=-1.0), ValueError, r"max_norm: must be > 0"),
    ("Dense max_norm nan", lambda: fnn.Dense(3, max_norm=NAN), ValueError, r"max_norm: must be finite"),
    ("Dense max_norm str", lambda: fnn.Dense(3, max_norm="2"), TypeError, r"max_norm: expected a real"),
    ("SGD clipnorm 0", lambda: fnn.SGD(clipnorm=0), ValueError, r"clipnorm: must be > 0"),
    ("SGD clipnorm negative", lambda: fnn.SGD(clipnorm=-1.0), ValueError, r"clipnorm: must be > 0"),
    ("Adam clipvalue 0", lambda: fnn.Adam(clipvalue=0.0), ValueError, r"clipvalue: must be > 0"),
    ("AdamW global_clipnorm nan", lambda: fnn.AdamW(global_clipnorm=NAN), ValueError, r"global_clipnorm: must be finite"),
    ("RMSprop clipnorm str", lambda: fnn.RMSprop(clipnorm="1"), TypeError, r"clipnorm: expected a real"),
    ("RMSprop two clips", lambda: fnn.RMSprop(clipnorm=1.0, global_clipnorm=1.0), ValueError,
     r"Only one of clipnorm, clipvalue and global_clipnorm"),
    ("optimizer clipnorm set negative", lambda: _fit_with_optimizer_attr("clipnorm", -1.0), ValueError,
     r"optimizer: .* is not a setting the engine runs"),
    ("WarmUp warmup_steps negative", lambda: S.WarmUp(0.1, -1), ValueError, r"warmup_steps: must be >= 0"),
    ("WarmUp initial_lr 0", lambda: S.WarmUp(0.0, 5), ValueError, r"initial_lr: must be > 0"),
    ("StepDecayByStep every 0", lambda: S.StepDecayByStep(0.1, every=0), ValueError, r"every: must be >= 1"),
    ("StepDecayByStep drop 0", lambda: S.StepDecayByStep(0.1, drop=0), ValueError, r"drop: must be > 0"),
    ("ExponentialDecayByStep decay_steps float", lambda: S.ExponentialDecayByStep(0.1, 0.5, 2.5), TypeError,
     r"decay_steps: expected an int"),
    ("ExponentialDecayByStep rate>1", lambda: S.ExponentialDecayByStep(0.1, 1.5, 10), ValueError,
     r"decay_rate: must be <= 1"),
    ("CosineDecayByStep min_lr > initial", lambda: S.CosineDecayByStep(0.1, 10, min_lr=1), ValueError,
     r"min_lr: must be <= 0.1"),
    ("CosineDecayByStep decay_steps 0", lambda: S.CosineDecayByStep(0.1, 0), ValueError, r"decay_steps: must be >= 1"),
    ("CosineDecayByStep step negative", lambda: S.CosineDecayByStep(0.1, 5)(-1), ValueError, r"step: must be >= 0"),
    ("save include_optimizer uncompiled", lambda: fnn.Sequential([fnn.Dense(2)], input_dim=3).save(
        "x.st", include_optimizer=True), ValueError, r"include_optimizer: the model has no optimizer"),
    ("save include_optimizer function lr", lambda: _compiled(optimizer=fnn.SGD(lr=lambda e: 0.1)).save(
        "x.st", include_optimizer=True), ValueError, r"include_optimizer: the optimizer's lr is a function"),
    ("ModelCheckpoint include_optimizer str", lambda: fnn.ModelCheckpoint("m.st", include_optimizer="yes"), TypeError,
     r"include_optimizer: expected a bool"),
    ("fit sparse X nan", lambda: _fit_sparse(NAN), ValueError, r"X: contains NaN or Inf"),
    ("fit sparse X bad index", lambda: _fit_sparse(0.5, bad_index=True), ValueError,
     r"X: column indices must lie in \[0, 5\)"),
    ("predict sparse X wrong width", lambda: FITTED.predict(_sparse(f32(4, 6))), ValueError,
     r"X: expected 5 features"),
    ("evaluate sparse X complex", lambda: FITTED.evaluate(_sparse(f32(20, 5)).astype(np.complex64), Y20), TypeError,
     r"X: expected a numeric sparse matrix"),
    # fnn.ops' own parameters
    ("gemm alpha nan", lambda: fnn.ops.gemm(f32(2, 2), f32(2, 2), alpha=NAN), ValueError, r"alpha: must be finite"),
    ("gemm beta str", lambda: fnn.ops.gemm(f32(2, 2), f32(2, 2), beta="1"), TypeError, r"beta: expected a real"),
    ("gemm mixed dtypes", lambda: fnn.ops.gemm(f32(2, 2), np.ones((2, 2))), TypeError, r"b: dtype float64 differs"),
    ("gemm out list", lambda: fnn.ops.gemm(f32(2, 2), f32(2, 2), out=[[0, 0], [0, 0]]), TypeError, r"out: expected a numpy"),
    ("leaky_relu alpha str", lambda: fnn.ops.leaky_relu(f32(2, 2), alpha="0.1"), TypeError, r"alpha: expected a real"),
    ("relu alpha", lambda: fnn.ops.activation_grad("relu", f32(2), f32(2), alpha=0.1), ValueError,
     r"alpha: relu takes no parameter"),
    ("activation_grad unknown", lambda: fnn.ops.activation_grad("swish", f32(2), f32(2)), ValueError, r"name: unknown"),
    ("softmax scalar", lambda: fnn.ops.softmax(np.float32(1.0)), ValueError, r"x: softmax works on rows"),
    ("huber delta 0", lambda: fnn.ops.huber(f32(3), f32(3), delta=0), ValueError, r"delta: must be > 0"),
    ("mse scalar", lambda: fnn.ops.mse(np.float32(1), np.float32(1)), ValueError, r"pred: expected an array"),
    ("cross_entropy ragged", lambda: fnn.ops.cross_entropy(f32(2, 2), [[0], [0, 1]]), ValueError, r"target: cannot be read"),
]


def _bn_model():
    m = fnn.Sequential([fnn.Dense(4), fnn.BatchNorm(), fnn.LayerNorm(), fnn.Dense(3)], input_dim=5, seed=0)
    m.compile("cross_entropy")
    return m


def _fit_with_optimizer_attr(name, value):
    opt = fnn.SGD()
    setattr(opt, name, value)
    return _compiled(optimizer=opt).fit(X20, Y20, verbose=0)


def _sparse(a):
    pytest.importorskip("scipy")
    import scipy.sparse
    return scipy.sparse.csr_matrix(a)


def _fit_sparse(value, bad_index=False):
    pytest.importorskip("scipy")
    X = _sparse(X20)
    X.data[0] = value
    if bad_index:
        X.indices[0] = 5
    return _model().fit(X, Y20, verbose=0)


def _save_with_metadata(metadata):
    m = _compiled()
    m.metadata = metadata
    m.save("x.st")


def _csv_logger_in_missing_dir():
    m = _model()
    return m.fit(X20, Y20, epochs=1, verbose=0, callbacks=[fnn.CSVLogger(os.path.join(os.sep, "no", "such", "dir.csv"))])


def _reuse_layer():
    d = fnn.Dense(2)
    first = fnn.Sequential([d])
    return first, fnn.Sequential([d])  # a second model while the first still holds the layer


if importlib.util.find_spec("sklearn") is not None:
    PARAM_CASES += [
        ("MLP hidden_layer_sizes 0", lambda: _sk("clf", hidden_layer_sizes=(0,)), ValueError, r"hidden_layer_sizes"),
        ("MLP hidden_layer_sizes str", lambda: _sk("clf", hidden_layer_sizes="big"), ValueError, r"hidden_layer_sizes"),
        ("MLP activation unknown", lambda: _sk("clf", activation="swish"), ValueError, r"activation: expected one of"),
        ("MLP activation list", lambda: _sk("clf", activation=["relu"]), ValueError, r"activation: expected one of"),
        ("MLP solver unknown", lambda: _sk("clf", solver="newton"), ValueError, r"solver: expected one of 'lbfgs'"),
        ("MLP learning_rate unknown", lambda: _sk("clf", solver="sgd", learning_rate="cosine"), ValueError,
         r"learning_rate: expected one of 'constant', 'invscaling', 'adaptive'"),
        ("MLP power_t negative", lambda: _sk("clf", solver="sgd", power_t=-0.5), ValueError, r"power_t: must be >= 0"),
        ("MLP power_t nan", lambda: _sk("reg", power_t=NAN), ValueError, r"power_t: expected a finite real"),
        ("MLP max_fun 0", lambda: _sk("clf", solver="lbfgs", max_fun=0), ValueError, r"max_fun: expected an int >= 1"),
        ("MLP max_fun float", lambda: _sk("reg", solver="lbfgs", max_fun=1.5), ValueError, r"max_fun: expected an int"),
        ("MLP n_iter_no_change -inf", lambda: _sk("clf", n_iter_no_change=-INF), ValueError,
         r"n_iter_no_change: expected an int >= 1 or np.inf"),
        ("MLP loss poisson", lambda: _sk("reg", loss="poisson"), ValueError, r"loss: 'poisson' is not available"),
        ("MLP loss unknown", lambda: _sk("reg", loss="huber"), ValueError, r"loss: expected 'squared_error'"),
        ("MLP dropout with lbfgs", lambda: _sk("clf", solver="lbfgs", dropout=0.2), ValueError,
         r"dropout: not available with solver='lbfgs'"),
        ("MLP class_weight list", lambda: _sk("clf", class_weight=[1, 2]), ValueError, r"class_weight: expected None"),
        ("MLP class_weight str", lambda: _sk("clf", class_weight="even"), ValueError, r"class_weight: expected None"),
        ("MLP class_weight not a class", lambda: _sk("clf", class_weight={7: 2.0}), ValueError,
         r"class_weight: 7 is not a class"),
        ("MLP class_weight negative", lambda: _sk("clf", class_weight={0: -1.0}), ValueError,
         r"class_weight\[0\]: expected a finite weight >= 0"),
        ("MLP class_weight nan", lambda: _sk("clf", class_weight={1: NAN}), ValueError,
         r"class_weight\[1\]: expected a finite weight"),
        ("MLP class_weight all zero", lambda: _sk("clf", class_weight={0: 0, 1: 0, 2: 0}), ValueError,
         r"class_weight: gives every row of y a weight of zero"),
        ("MLP coefs_ wrong shapes", lambda: _sk_coefs([np.zeros((5, 4)), np.zeros((3, 3))]), ValueError,
         r"coefs_\[1\]: expected shape \(4, 3\)"),
        ("MLP coefs_ wrong count", lambda: _sk_coefs([np.zeros((5, 4))]), ValueError, r"coefs_: expected 2 arrays"),
        ("MLP coefs_ nan", lambda: _sk_coefs([np.full((5, 4), NAN), np.zeros((4, 3))]), ValueError,
         r"coefs_\[0\]: contains NaN"),
        ("MLP coefs_ not a list", lambda: _sk_coefs(np.zeros((5, 4))), TypeError, r"coefs_: expected a list of arrays"),
        ("MLP coefs_ before fit wrong shapes", lambda: _sk_coefs_before_fit([np.zeros((5, 4)), np.zeros((4, 2))]),
         ValueError, r"coefs_: set before fit with shapes"),
        ("MLP coefs_ before fit 1-D", lambda: _sk_coefs_before_fit([np.zeros(5), np.zeros((4, 3))]), ValueError,
         r"coefs_\[0\]: expected a 2-D array"),
        ("MLP intercepts_ wrong shape", lambda: setattr(_sk("clf"), "intercepts_", [np.zeros(4), np.zeros(2)]),
         ValueError, r"intercepts_\[1\]: expected shape \(3,\)"),
        ("MLP diverging fit", lambda: __import__("fastnn.sklearn").sklearn.MLPRegressor(
            hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=1e3, max_iter=20, random_state=0).fit(X20 * 1e30, T20[:, 0]),
         ValueError, r"Solver produced non-finite parameter weights"),
        ("MLP validation set too small", lambda: _sk("clf", early_stopping=True, validation_fraction=0.01),
         ValueError, r"The validation set is too small"),
        ("MLP partial_fit lbfgs", lambda: __import__("fastnn.sklearn").sklearn.MLPClassifier(solver="lbfgs").partial_fit,
         AttributeError, r"partial_fit is only available for stochastic optimizers"),
        ("MLP partial_fit class_weight balanced", lambda: __import__("fastnn.sklearn").sklearn.MLPClassifier(
            class_weight="balanced").partial_fit(X20, Y20, classes=[0, 1, 2]), ValueError,
         r"class_weight 'balanced' is not supported for partial_fit"),
        ("MLP alpha negative", lambda: _sk("clf", alpha=-1), ValueError, r"alpha: must be >= 0"),
        ("MLP alpha huge int", lambda: _sk("clf", alpha=2**70 * -1), ValueError, r"alpha: must be >= 0"),
        ("MLP learning_rate_init 0", lambda: _sk("clf", learning_rate_init=0), ValueError, r"learning_rate_init"),
        ("MLP max_iter 0", lambda: _sk("reg", max_iter=0), ValueError, r"max_iter: expected an int >= 1"),
        ("MLP batch_size 0", lambda: _sk("reg", batch_size=0), ValueError, r"batch_size: expected an int >= 1"),
        ("MLP momentum > 1", lambda: _sk("clf", solver="sgd", momentum=1.5), ValueError, r"momentum: must be <= 1"),
        ("MLP validation_fraction 1", lambda: _sk("clf", validation_fraction=1.0), ValueError, r"validation_fraction"),
        ("MLP beta_1 1", lambda: _sk("clf", beta_1=1.0), ValueError, r"beta_1: must be < 1"),
        ("MLP epsilon 0", lambda: _sk("clf", epsilon=0.0), ValueError, r"epsilon: must be > 0"),
        ("MLP n_iter_no_change 0", lambda: _sk("clf", n_iter_no_change=0), ValueError, r"n_iter_no_change"),
        ("MLP dropout 1", lambda: _sk("clf", dropout=1.0), ValueError, r"dropout: must be < 1"),
        ("MLP freeze negative", lambda: _sk("clf", freeze=-1), ValueError, r"freeze: expected an int >= 0"),
        ("MLP freeze too many", lambda: _sk("clf", freeze=5), ValueError, r"freeze: the network has 2 layers"),
        ("MLP dtype float16", lambda: _sk("clf", dtype="float16"), ValueError, r"dtype: expected"),
        ("MLP n_threads 0", lambda: _sk("clf", n_threads=0), ValueError, r"n_threads: expected an int >= 1"),
        ("MLP n_threads huge", lambda: _sk("clf", n_threads=2**70), ValueError, r"n_threads: expected at most"),
        ("MLP random_state negative", lambda: _sk("clf", random_state=-1), ValueError, r"random_state"),
        ("MLP random_state huge", lambda: _sk("clf", random_state=2**70), ValueError, r"random_state"),
        ("MLP random_state str", lambda: _sk("clf", random_state="0"), TypeError, r"random_state"),
        ("MLP predict before fit", lambda: __import__("fastnn.sklearn").sklearn.MLPClassifier().predict(X20),
         fnn.NotFittedError, r"not fitted"),
        ("MLP y continuous", lambda: __import__("fastnn.sklearn").sklearn.MLPClassifier(max_iter=1).fit(X20, T20[:, 0]),
         ValueError, r"continuous"),
        ("MLP one class", lambda: __import__("fastnn.sklearn").sklearn.MLPClassifier(max_iter=1).fit(X20, np.zeros(20)),
         ValueError, r"y: has 1 class"),
        ("MLP sample_weight negative", lambda: __import__("fastnn.sklearn").sklearn.MLPRegressor(max_iter=1).fit(
            X20, T20[:, 0], sample_weight=-np.ones(20)), ValueError, r"sample_weight: must not be negative"),
    ]


@pytest.mark.parametrize("fn, exc, pattern", [pytest.param(fn, exc, pat, id=name) for name, fn, exc, pat in PARAM_CASES])
def test_hostile_parameters(fn, exc, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc, match=pattern):
            fn()


def test_every_public_function_is_in_a_table():
    """Each function of fnn.ops, each public Sequential method, each public class and metric is the
    subject of some row of the tables above, so that a new function does not escape the sweep."""
    ids = [c.name for c in ARRAY_CASES] + [name for name, *_ in PARAM_CASES]
    subjects = {i.split(" ")[0].split("-")[0] for i in ids}
    wanted = {f"ops.{n}" for n in fnn.ops.__all__}
    wanted |= {f"Sequential.{n}" for n, _ in inspect.getmembers(fnn.Sequential, inspect.isfunction)
               if not n.startswith("_") and n not in ("summary", "unfreeze")}
    wanted |= {"Dense", "Dropout", "Activation", "SGD", "Adam", "AdamW", "RMSprop", "StepDecay", "ExponentialDecay",
               "CosineDecay", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "ReduceLROnPlateau",
               "set_num_threads", "load", "loads"}
    wanted |= {f"metrics.{n}" for n in ("accuracy", "top_k_accuracy", "precision", "recall", "f1", "confusion_matrix",
                                        "auc", "log_loss", "mse", "mae", "r2")}
    wanted |= {"CSVLogger", "LambdaCallback", "BatchNorm", "LayerNorm", "WarmUp", "StepDecayByStep",
               "ExponentialDecayByStep", "CosineDecayByStep"}
    # parameter rows name the method without the class: "fit epochs negative" is about Sequential.fit
    covered = subjects | {f"{prefix}.{s}" for s in subjects for prefix in ("Sequential", "ops", "metrics")}
    missing = sorted(wanted - covered)
    assert not missing, f"not in any table: {missing}"
