"""fastnn.metrics against scikit-learn on random data and edge cases, plus hand-worked cases."""
import warnings

import numpy as np
import pytest

from fastnn import metrics as M


def _onehot(y, c):
    out = np.zeros((y.size, c))
    out[np.arange(y.size), y] = 1.0
    return out


# ---------------------------------------------------------------------------------------------
# hand-worked cases (no scikit-learn needed)
# ---------------------------------------------------------------------------------------------

def test_accuracy_input_forms():
    y = np.array([0, 1, 2, 1])
    scores = np.array([[0.8, 0.1, 0.1],   # 0 ok
                       [0.2, 0.7, 0.1],   # 1 ok
                       [0.5, 0.4, 0.1],   # 0 wrong
                       [0.1, 0.1, 0.8]])  # 2 wrong
    assert M.accuracy(y, scores) == 0.5
    assert M.accuracy(_onehot(y, 3), scores) == 0.5
    assert M.accuracy(y.reshape(-1, 1), scores) == 0.5
    assert M.accuracy(y, np.array([0, 1, 0, 2])) == 0.5
    assert M.accuracy(y.astype(float), np.array([0.0, 1.0, 0.0, 2.0])) == 0.5


def test_accuracy_binary_probabilities():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.2, 0.9, 0.5, 0.51, 0.7])  # 0.5 is not > 0.5 -> class 0
    assert M.accuracy(y, p) == pytest.approx(3 / 5)
    assert M.accuracy(y, p.reshape(-1, 1)) == pytest.approx(3 / 5)
    assert M.accuracy(y.astype(bool), p) == pytest.approx(3 / 5)


def test_accuracy_argmax_ties_take_lowest_index():
    scores = np.array([[0.5, 0.5], [0.3, 0.3]])
    assert M.accuracy(np.array([0, 0]), scores) == 1.0


def test_confusion_matrix_by_hand():
    cm = M.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 1, 1])
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 1, 1]])
    assert cm.dtype == np.int64
    cm = M.confusion_matrix([0, 1], [0, 1], num_classes=4)
    assert cm.shape == (4, 4) and cm.sum() == 2


def test_precision_recall_f1_by_hand():
    y = np.array([0, 0, 1, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0, 0])
    # class 0: tp1 fp2 fn1 -> P 1/3 R 1/2 F 2/5; class 1: tp2 fp1 fn1 -> P 2/3 R 2/3 F 2/3;
    # class 2: tp0 fp0 fn1 -> P 0 (zero division) R 0 F 0
    assert M.precision(y, p) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert M.recall(y, p) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert M.f1(y, p) == pytest.approx((2 / 5 + 2 / 3 + 0) / 3)
    for fn in (M.precision, M.recall, M.f1):  # single-label micro average = accuracy
        assert fn(y, p, average="micro") == pytest.approx(M.accuracy(y, p))


def test_binary_average_zero_division():
    # never predicts class 1: precision 0/0 -> 0.0, recall 0/2 = 0
    y, p = np.array([0, 1, 1, 0]), np.array([0, 0, 0, 0])
    assert M.precision(y, p, average="binary") == 0.0
    assert M.recall(y, p, average="binary") == 0.0
    assert M.f1(y, p, average="binary") == 0.0
    # class 1 nowhere at all
    assert M.precision([0, 0], [0, 0], average="binary") == 0.0
    # pos_label=0
    assert M.recall(y, p, average="binary", pos_label=0) == 1.0
    assert M.precision(y, p, average="binary", pos_label=0) == 0.5


def test_regression_by_hand():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 4.0])
    assert M.mse(t, p) == pytest.approx((0.25 + 0 + 1 + 0) / 4)
    assert M.mae(t, p) == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert M.r2(t, p) == pytest.approx(1 - 1.25 / 5.0)
    assert M.r2(t, t) == 1.0
    # (N,) against (N, 1) is the same single output
    assert M.mse(t, p.reshape(-1, 1)) == M.mse(t, p)


def test_r2_constant_target_and_tiny_input():
    t = np.array([[2.0, 1.0], [2.0, 3.0], [2.0, 5.0]])
    exact = t.copy()
    assert M.r2(t, exact) == 1.0                       # constant column predicted exactly -> 1
    off = t + np.array([0.5, 0.0])
    assert M.r2(t, off) == pytest.approx((0.0 + 1.0) / 2)  # constant column missed -> 0
    with pytest.warns(UserWarning, match="two samples"):
        assert np.isnan(M.r2([1.0], [1.0]))


def test_top_k_by_hand_and_ties():
    s = np.array([[0.1, 0.5, 0.3, 0.1],
                  [0.4, 0.3, 0.2, 0.1],
                  [0.25, 0.25, 0.25, 0.25]])
    y = np.array([2, 3, 3])
    # ranks of the true class: row0 -> 1 (only 0.5 above), row1 -> 3, row2 -> 3 (three tied, lower index)
    assert M.top_k_accuracy(y, s, k=1) == 0.0
    assert M.top_k_accuracy(y, s, k=2) == pytest.approx(1 / 3)
    assert M.top_k_accuracy(y, s, k=3) == pytest.approx(1 / 3)
    assert M.top_k_accuracy(y, s, k=4) == 1.0
    assert M.top_k_accuracy(y, s, k=10) == 1.0
    # k=1 agrees with accuracy, ties included
    y2 = np.array([0, 0, 0])
    assert M.top_k_accuracy(y2, s, k=1) == M.accuracy(y2, s)


def test_auc_by_hand():
    # the classic four-point example: 3 of the 4 positive/negative pairs are ranked right
    assert M.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half
    assert M.auc([0, 1], [0.5, 0.5]) == 0.5
    assert M.auc([0, 1, 1], [0.2, 0.2, 0.9]) == pytest.approx(0.75)
    assert M.auc([1, 0], np.array([[0.9], [0.1]])) == 1.0
    # three classes, one-vs-rest, each class's column against the rest
    y = np.array([0, 1, 2, 2])
    s = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7]])
    # class 0: its positive (0.9) above all three negatives -> 1.  class 1: its positive (0.1) against the
    # negatives 0.05, 0.8, 0.1: above one, below one, tied with one -> 1.5 / 3.  class 2: positives 0.1 and
    # 0.7 against negatives 0.05 and 0.8: each above one and below one -> 2 / 4
    assert M.auc(y, s) == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert M.auc(_onehot(y, 3), s) == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_auc_undefined_classes_are_left_out_with_a_warning():
    with pytest.warns(RuntimeWarning, match="1 of 1 classes"):
        assert np.isnan(M.auc([1, 1, 1], [0.2, 0.4, 0.9]))
    y = np.array([0, 1, 0, 1])  # class 2 never occurs
    s = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.5, 0.2]])
    with pytest.warns(RuntimeWarning, match="1 of 3 classes"):
        assert M.auc(y, s) == 1.0
    with pytest.raises(ValueError, match="binary auc needs labels in"):
        M.auc([0, 2, 1], [0.1, 0.2, 0.3])


def test_log_loss_by_hand():
    assert M.log_loss([1, 0], [0.9, 0.2]) == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2)
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert M.log_loss([0, 2], p) == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2)
    # probability targets: the cross-entropy -sum(y log p) per row
    soft = np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    want = -(0.5 * np.log(0.7) + 0.5 * np.log(0.2) + 0.25 * np.log(0.1) + 0.75 * np.log(0.8)) / 2
    assert M.log_loss(soft, p) == pytest.approx(want)
    # multi-label (rows not summing to 1): the binary log loss averaged over rows and labels
    Y = np.array([[1, 0, 1], [0, 0, 0]])
    want = -(np.log(0.7) + np.log(0.8) + np.log(0.1) + np.log(0.9) + np.log(0.9) + np.log(0.2)) / 6
    assert M.log_loss(Y, p) == pytest.approx(want)
    # certain and wrong: clipped to eps of the prediction's float type, not infinite
    assert M.log_loss([1], np.array([0.0])) == pytest.approx(-np.log(np.finfo(np.float64).eps))
    assert M.log_loss([1], np.array([0.0], np.float32)) == pytest.approx(-np.log(np.finfo(np.float32).eps))
    with pytest.raises(ValueError, match=r"y_pred: log_loss needs probabilities in \[0, 1\]"):
        M.log_loss([0, 1], [-0.1, 0.5])
    with pytest.raises(ValueError, match="y_true: rows must be one-hot"):
        M.log_loss(np.array([[0.2, 0.3], [0.5, 0.1]]), np.array([[0.5, 0.5], [0.5, 0.5]]))


@pytest.mark.parametrize("fn", [M.accuracy, M.precision, M.recall, M.f1, M.confusion_matrix,
                                M.mse, M.mae, M.r2])
def test_length_mismatch_names_y_pred(fn):
    with pytest.raises(ValueError, match="y_pred"):
        fn(np.array([0, 1, 1]), np.array([0, 1]))


def test_input_validation():
    with pytest.raises(ValueError, match="y_score"):
        M.top_k_accuracy([0, 1, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="y_true"):
        M.top_k_accuracy([0, 5], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="k"):
        M.top_k_accuracy([0, 1], np.zeros((2, 3)), k=0)
    with pytest.raises(ValueError, match="y_true"):
        M.accuracy([0, -1], [0, 1])
    with pytest.raises(ValueError, match="y_true"):
        M.accuracy([0, 1.5], [0, 1])
    with pytest.raises(ValueError, match="y_pred"):
        M.accuracy([0, 1], [0.3, 1.7])           # neither probabilities nor labels
    with pytest.raises(ValueError, match="y_pred"):
        M.accuracy([0, 1], [np.nan, 1.0])
    with pytest.raises(ValueError, match="y_true"):
        M.accuracy([], [])
    with pytest.raises(ValueError, match="y_pred"):
        M.accuracy(_onehot(np.array([0, 1]), 3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="y_true"):
        M.accuracy([0, 3], np.zeros((2, 3)))      # label 3 with three score columns
    with pytest.raises(ValueError, match="y_pred"):
        M.accuracy(_onehot(np.array([0, 1]), 3), [0, 3])
    with pytest.raises(ValueError, match="average"):
        M.f1([0, 1], [0, 1], average="weighted")
    with pytest.raises(ValueError, match="binary"):
        M.f1([0, 1, 2], [0, 1, 2], average="binary")
    with pytest.raises(ValueError, match="num_classes"):
        M.confusion_matrix([0, 1], [0, 1], num_classes=0)
    with pytest.raises(ValueError, match="y_true"):
        M.confusion_matrix([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="y_pred"):
        M.mse(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(TypeError, match="y_true"):
        M.mse(np.array(["a", "b"]), [1.0, 2.0])


def test_registry_and_modes():
    assert M.get("accuracy") is M.accuracy and M.get("acc") is M.accuracy
    for name in ("top_k_accuracy", "precision", "recall", "f1", "mse", "mae", "r2"):
        assert M.get(name) is getattr(M, name)
    assert M.get(len) is len  # callables pass through
    with pytest.raises(ValueError, match="known metrics: acc, accuracy, auc, f1"):
        M.get("auroc")
    assert M.get("auc") is M.auc and M.get("log_loss") is M.log_loss
    assert M.mode_for("val_auc") == "max" and M.mode_for("log_loss") == "min" and M.mode_for("val_log_loss") == "min"
    with pytest.raises(TypeError):
        M.get(3)
    for name, mode in [("accuracy", "max"), ("val_acc", "max"), ("f1", "max"), ("val_r2", "max"),
                       ("precision", "max"), ("recall", "max"), ("top_k_accuracy", "max"),
                       ("mse", "min"), ("val_mae", "min"), ("loss", "min"), ("val_loss", "min"),
                       ("f1_score", "max"), ("val_auc", "max"), ("categorical_accuracy", "max"),
                       ("hinge", "min"), ("time", "min")]:
        assert M.mode_for(name) == mode, name


# ---------------------------------------------------------------------------------------------
# against scikit-learn
# ---------------------------------------------------------------------------------------------

def _cases(rng):
    """(y_true labels, y_pred scores (N, C), C) for several shapes, including a class that is never
    predicted and a class that never occurs in y_true."""
    out = []
    for n, c in [(1, 3), (7, 2), (50, 3), (200, 5), (1000, 10)]:
        y = rng.integers(0, c, n)
        s = rng.random((n, c))
        out.append((y, s, c))
    # class 2 never predicted
    y = rng.integers(0, 4, 300)
    s = rng.random((300, 4))
    s[:, 2] = -1.0
    out.append((y, s, 4))
    # class 3 never true
    y = rng.integers(0, 3, 300)
    out.append((y, rng.random((300, 4)), 4))
    return out


def test_classification_against_sklearn(rng):
    skm = pytest.importorskip("sklearn.metrics")
    for y, s, c in _cases(rng):
        yp = np.argmax(s, axis=1)
        for true in (y, _onehot(y, c)):
            assert M.accuracy(true, s) == pytest.approx(skm.accuracy_score(y, yp), abs=1e-15)
            np.testing.assert_array_equal(M.confusion_matrix(true, s),
                                          skm.confusion_matrix(y, yp, labels=np.arange(c)))
            for avg in ("macro", "micro"):
                kw = dict(average=avg, zero_division=0)
                assert M.precision(true, s, average=avg) == pytest.approx(skm.precision_score(y, yp, **kw))
                assert M.recall(true, s, average=avg) == pytest.approx(skm.recall_score(y, yp, **kw))
                assert M.f1(true, s, average=avg) == pytest.approx(skm.f1_score(y, yp, **kw))
        for k in (1, 2, 3):
            if k < c and c > 2:  # scikit-learn reads two columns as a binary problem
                assert M.top_k_accuracy(y, s, k=k) == pytest.approx(
                    skm.top_k_accuracy_score(y, s, k=k, labels=np.arange(c)))


def test_binary_against_sklearn(rng):
    skm = pytest.importorskip("sklearn.metrics")
    for n in (5, 40, 500):
        y = rng.integers(0, 2, n)
        prob = rng.random(n)
        yp = (prob > 0.5).astype(int)
        for pred in (prob, prob.reshape(-1, 1), yp):
            assert M.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, yp))
            for avg in ("binary", "macro", "micro"):
                kw = dict(average=avg, zero_division=0)
                assert M.precision(y, pred, average=avg) == pytest.approx(skm.precision_score(y, yp, **kw))
                assert M.recall(y, pred, average=avg) == pytest.approx(skm.recall_score(y, yp, **kw))
                assert M.f1(y, pred, average=avg) == pytest.approx(skm.f1_score(y, yp, **kw))
            assert M.f1(y, pred, average="binary", pos_label=0) == pytest.approx(
                skm.f1_score(y, yp, pos_label=0, zero_division=0))
    # nothing predicted positive; only one class present anywhere
    for y, yp in [([0, 1, 1, 0], [0, 0, 0, 0]), ([0, 0, 0], [0, 0, 0]), ([1, 1, 1], [1, 1, 0])]:
        for avg in ("binary", "macro", "micro"):
            kw = dict(average=avg, zero_division=0)
            assert M.precision(y, yp, average=avg) == pytest.approx(skm.precision_score(y, yp, **kw))
            assert M.recall(y, yp, average=avg) == pytest.approx(skm.recall_score(y, yp, **kw))
            assert M.f1(y, yp, average=avg) == pytest.approx(skm.f1_score(y, yp, **kw))


def test_regression_against_sklearn(rng):
    skm = pytest.importorskip("sklearn.metrics")
    for shape in [(2,), (10,), (100,), (100, 1), (50, 3)]:
        t = rng.standard_normal(shape)
        p = t + 0.5 * rng.standard_normal(shape)
        assert M.mse(t, p) == pytest.approx(skm.mean_squared_error(t, p), rel=1e-12)
        assert M.mae(t, p) == pytest.approx(skm.mean_absolute_error(t, p), rel=1e-12)
        assert M.r2(t, p) == pytest.approx(skm.r2_score(t, p), rel=1e-12)
    # a constant output column, predicted exactly and not
    t = np.column_stack([np.full(20, 3.0), rng.standard_normal(20)])
    for p in (t.copy(), t + 0.1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = skm.r2_score(t, p)
        assert M.r2(t, p) == pytest.approx(expected, rel=1e-12)
    # float32 inputs are accumulated in float64
    t32 = rng.standard_normal(1000).astype(np.float32)
    p32 = (t32 + 0.1).astype(np.float32)
    assert M.mse(t32, p32) == pytest.approx(skm.mean_squared_error(t32.astype(float), p32.astype(float)),
                                            rel=1e-12)


def test_auc_and_log_loss_against_sklearn(rng):
    skm = pytest.importorskip("sklearn.metrics")
    for n in (10, 200, 2000):
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        for p in (rng.random(n), np.round(rng.random(n), 1), rng.random(n).astype(np.float32)):  # ties, float32
            assert M.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), rel=1e-12)
            assert M.auc(y, p.reshape(-1, 1)) == pytest.approx(skm.roc_auc_score(y, p), rel=1e-12)
            assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-6)
        for c in (3, 5, 10):
            y = np.r_[np.arange(c), rng.integers(0, c, n)]
            P = rng.dirichlet(np.ones(c), y.size)
            want = skm.roc_auc_score(y, P, multi_class="ovr", average="macro")
            assert M.auc(y, P) == pytest.approx(want, rel=1e-12)
            assert M.auc(_onehot(y, c), P) == pytest.approx(want, rel=1e-12)
            assert M.log_loss(y, P) == pytest.approx(skm.log_loss(y, P), rel=1e-12)
            assert M.log_loss(_onehot(y, c), P) == pytest.approx(skm.log_loss(y, P), rel=1e-12)
            P32 = P.astype(np.float32)
            P32[0] = 0  # clipped at float32's eps, as scikit-learn clips
            P32[0, y[0]] = 1
            assert M.log_loss(y, P32) == pytest.approx(skm.log_loss(y, P32), rel=1e-6)
        Y = (rng.random((n, 4)) < 0.4).astype(int)
        Y[:2] = [[0, 0, 0, 0], [1, 1, 1, 1]]
        S = rng.random((n, 4))
        assert M.auc(Y, S) == pytest.approx(skm.roc_auc_score(Y, S, average="macro"), rel=1e-12)


def test_auc_and_log_loss_as_compile_metrics():
    """By name in compile: the validation log_loss is the cross-entropy the engine reports as val_loss,
    and both equal the metrics of predict's probabilities."""
    import fastnn as fnn

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 6))
    y = np.argmax(X[:, :3] + 0.5 * rng.normal(size=(300, 3)), axis=1)
    model = fnn.Sequential([fnn.Dense(16, activation="tanh"), fnn.Dense(3)], dtype="float64", seed=0)
    model.compile("cross_entropy", fnn.Adam(lr=0.01), metrics=["auc", "log_loss"])
    hist = model.fit(X[:200], y[:200], epochs=3, batch_size=32, validation_data=(X[200:], y[200:]), verbose=0)
    proba = model.predict(X[200:])
    assert hist.history["val_log_loss"][-1] == pytest.approx(hist.history["val_loss"][-1], rel=1e-12)
    assert hist.history["val_log_loss"][-1] == pytest.approx(M.log_loss(y[200:], proba), rel=1e-12)
    assert hist.history["val_auc"][-1] == pytest.approx(M.auc(y[200:], proba), rel=1e-12)
    assert 0.5 < hist.history["auc"][-1] <= 1.0
    binary = fnn.Sequential([fnn.Dense(1)], dtype="float64", seed=0)
    binary.compile("binary_cross_entropy", fnn.SGD(lr=0.1), metrics=["auc", "log_loss"])
    yb = (y == 0).astype(float)
    h = binary.fit(X, yb, epochs=2, validation_split=0.2, verbose=0)
    pb = binary.predict(X[240:])[:, 0]
    assert h.history["val_log_loss"][-1] == pytest.approx(h.history["val_loss"][-1], rel=1e-12)
    assert h.history["val_auc"][-1] == pytest.approx(M.auc(yb[240:], pb), rel=1e-12)
