"""The one engine (csrc/plan.c, layer.c, net.c) through the private binding: every name <-> code table
comes from C and means, on every path (ops, training, model files), what its name says; the forward
pass of training, Sequential.predict and the C model API is the same code; and input rows given as
CSR train and predict exactly as the same rows given dense."""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


# Written from the math, by name: if a C enum is reordered and a Python table keeps the old codes,
# a name reaches the kernel of another activation and these disagree.
REFERENCE = {
    "linear": lambda x, a: x,
    "relu": lambda x, a: np.maximum(x, 0.0),
    "leaky_relu": lambda x, a: np.where(x < 0, a * x, x),
    "elu": lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0))),
    "sigmoid": lambda x, a: _sigmoid(x),
    "tanh": lambda x, a: np.tanh(x),
    "gelu": lambda x, a: 0.5 * x * _erfc(-x / math.sqrt(2.0)),
    "silu": lambda x, a: x * _sigmoid(x),
    "softmax": lambda x, a: np.exp(x - x.max(1, keepdims=True)) / np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True),
}
ALPHA = {"leaky_relu": 0.2, "elu": 0.7}


def test_the_tables_are_read_from_c():
    assert set(_core.ACTIVATIONS) == set(REFERENCE) | {"log_softmax"}
    assert set(_core.LAYER_ACTIVATIONS) == set(REFERENCE)  # log_softmax is a kernel, not a layer activation
    assert _core.LAYER_ACTIVATIONS["leaky_relu"] == 0.01 and _core.LAYER_ACTIVATIONS["elu"] == 1.0
    assert _core.ROWWISE_ACTIVATIONS == {"softmax", "log_softmax"}
    assert set(_core.LOSSES) == {"cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"}
    assert _core.LOSS_LINKS == {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "linear",
                                "mae": "linear", "huber": "linear"}
    assert set(_core.OPTIMIZERS) == {"sgd", "adam", "adamw", "rmsprop"}
    assert set(_core.LAYER_KINDS) == {"dense", "dropout", "activation", "batch_norm", "layer_norm"}
    assert set(_core.SCHEDULES) == {"none", "constant", "step", "exponential", "cosine"}
    # every code is distinct: a table is a bijection onto the C enum
    for table in (_core.ACTIVATIONS, _core.LOSSES, _core.OPTIMIZERS, _core.LAYER_KINDS, _core.SCHEDULES):
        assert sorted(table.values()) == list(range(len(table)))
    assert _core.strerror(_core.ERR_NONFINITE) == "non-finite value"
    assert _core.strerror(_core.ERR_NOMEM) == "out of memory"


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_each_activation_name_trains_and_predicts_its_function(name, rng):
    """The training engine's layer descriptors take names: a Dense layer with identity weights computes
    the named activation of its input, in predict, in a training forward, through a saved file and the
    C API, and as an Activation layer of its own."""
    x = rng.standard_normal((5, 4))
    want = REFERENCE[name](x, ALPHA.get(name, 0.0))
    act = fnn.Activation(name, alpha=ALPHA[name]) if name in ALPHA else name
    for layers in ([fnn.Dense(4, act)], [fnn.Dense(4), fnn.Dropout(0.0), fnn.Activation(name, **(
            {"alpha": ALPHA[name]} if name in ALPHA else {}))]):
        m = fnn.Sequential(layers, input_dim=4, dtype="float64", seed=0)
        m.layers[0].weight[...] = np.eye(4)
        m.layers[0].bias[...] = 0
        np.testing.assert_allclose(m.predict(x), want, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(m._forward_train(x), want, rtol=1e-12, atol=1e-14)
        f = _core.ModelFile.from_buffer(fnn.saving.dumps(m))
        np.testing.assert_array_equal(f.predict_native(x), m.predict(x))


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"])
def test_each_loss_name_reaches_its_loss_and_link(loss, rng):
    x = rng.standard_normal((6, 3))
    m = fnn.Sequential([fnn.Dense(3)], input_dim=3, dtype="float64", seed=0)
    m.layers[0].weight[...] = np.eye(3)
    m.layers[0].bias[...] = 0
    m.compile(loss)
    assert m._net.link == {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "linear")
    t = rng.uniform(0.1, 0.9, (6, 3))
    d = x - t
    want = {
        "cross_entropy": lambda: np.mean(-(t * (x - np.log(np.exp(x).sum(1, keepdims=True)))).sum(1)),
        "binary_cross_entropy": lambda: np.mean(np.logaddexp(0, x) - x * t),
        "mse": lambda: np.mean(d * d),
        "mae": lambda: np.mean(np.abs(d)),
        "huber": lambda: np.mean(np.where(np.abs(d) < 1, 0.5 * d * d, np.abs(d) - 0.5)),
    }[loss]()
    assert m.evaluate(x, t)["loss"] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw", "rmsprop"])
def test_each_optimizer_name_reaches_its_update(opt):
    """One step from w = 1 with gradient g: each formula (PyTorch's) gives a different new weight."""
    desc = {"kind": opt, "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999,
            "eps": 1e-8, "alpha": 0.99}
    m = fnn.Sequential([fnn.Dense(1, use_bias=False)], input_dim=1, dtype="float64", seed=0)
    m.layers[0].weight[...] = 1.0
    m.compile("mse", optimizer={"sgd": fnn.SGD, "adam": fnn.Adam, "adamw": fnn.AdamW,
                                "rmsprop": fnn.RMSprop}[opt](lr=0.1))
    m.train_on_batch(np.array([[1.0]]), np.array([[0.0]]))  # g = 2 * (1 - 0) = 2
    g = 2.0
    want = {"sgd": 1 - 0.1 * g,
            "adam": 1 - 0.1 * (0.1 * g / 0.1) / (math.sqrt(0.001 * g * g / 0.001) + 1e-8),
            # AdamW's default decoupled decay (0.01) shrinks w before the Adam step
            "adamw": 1 * (1 - 0.1 * 0.01) - 0.1 * (0.1 * g / 0.1) / (math.sqrt(0.001 * g * g / 0.001) + 1e-8),
            "rmsprop": 1 - 0.1 * g / (math.sqrt(0.01 * g * g) + 1e-8)}[opt]
    assert _core.optim_n_state(desc) == {"sgd": 0, "adam": 2, "adamw": 2, "rmsprop": 1}[opt]
    assert m.layers[0].weight[0, 0] == pytest.approx(want, rel=1e-12)


# ---- CSR rows ------------------------------------------------------------------------------------

def _csr(X, rng, duplicates=False):
    """(indptr, indices, values) of X, int64 indices; with duplicates, each stored value split in two."""
    indptr, indices, values = [0], [], []
    for row in X:
        nz = np.flatnonzero(row)
        rng.shuffle(nz)  # unsorted columns are allowed
        for j in nz:
            if duplicates:
                indices += [j, j]
                values += [row[j] * 0.25, row[j] * 0.75]
            else:
                indices.append(j)
                values.append(row[j])
        indptr.append(len(indices))
    return (np.array(indptr, np.int64), np.array(indices, np.int64), np.array(values, X.dtype))


def _sparse_data(rng, dtype, n=150, d=20):
    X = rng.standard_normal((n, d)).astype(dtype)
    X[rng.random((n, d)) < 0.7] = 0
    X[3] = 0  # an empty row
    y = rng.integers(0, 3, n).astype(np.int64)
    return X, y


def _model(dtype, dropout=0.2):
    m = fnn.Sequential([fnn.Dense(16, "relu"), fnn.Dropout(dropout), fnn.Dense(3)], input_dim=20, dtype=dtype, seed=3)
    m.compile("cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9))
    m._push_optimizer(0)
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_rows_predict_and_evaluate_as_dense(dtype, rng):
    X, y = _sparse_data(rng, dtype)
    m = _model(dtype)
    for csr in (_csr(X, rng), _csr(X, rng, duplicates=True)):
        for batch in (1, 7, 150):
            a = np.empty((150, 3), dtype)
            b = np.empty((150, 3), dtype)
            _core.net_forward(m._net, X, batch, False, True, a)
            _core.net_forward(m._net, csr, batch, False, True, b)
            if csr[1].size == np.count_nonzero(X):
                np.testing.assert_array_equal(a, b)
            else:  # duplicates summed: 0.25 v + 0.75 v may round differently from v in float32
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        la = _core.net_evaluate(m._net, X, y, None, None, 32, None)
        lb = _core.net_evaluate(m._net, csr, y, None, None, 32, None)
        assert la == pytest.approx(lb, rel=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shuffle", [False, True])
def test_csr_rows_train_to_the_same_bits_as_dense(dtype, shuffle, rng):
    X, y = _sparse_data(rng, dtype)
    csr = _csr(X, rng)
    weights = []
    for rows in (X, csr):
        m = _model(dtype)
        perm = np.empty(150, np.int64) if shuffle else None
        for epoch in range(2):
            if shuffle:
                _core.permutation(5, epoch, perm)
            losses = np.zeros(-(-150 // 32))
            pred = np.empty((150, 3), dtype)
            rc, _ = _core.net_fit_chunk(m._net, rows, y, None, None, perm, 32, 0, losses, pred)
            assert rc == 0
        rc, loss = _core.net_step(m._net, rows, y, None, None, True)
        assert rc == 0
        weights.append((m.get_weights(), losses, pred, loss))
    (wa, la, pa, sa), (wb, lb, pb, sb) = weights
    for a, b in zip(wa, wb):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(pa, pb)
    assert sa == sb


def test_csr_rows_with_out_of_range_columns_write_nothing_outside(rng):
    """The Python layer validates indices; the engine still never writes past a row for a bad one."""
    m = _model(np.float64)
    X = np.zeros((2, 20))
    csr = (np.array([0, 2, 3], np.int64), np.array([1, 10**9, 20], np.int64), np.array([1.0, 5.0, 7.0]))
    X[0, 1] = 1.0
    a, b = np.empty((2, 3)), np.empty((2, 3))
    _core.net_forward(m._net, X, 2, False, True, a)
    _core.net_forward(m._net, csr, 2, False, True, b)
    np.testing.assert_array_equal(a, b)


def test_noncontiguous_buffers_are_refused_not_copied(rng):
    m = _model(np.float64)
    X = np.asfortranarray(rng.standard_normal((4, 20)))
    with pytest.raises(ValueError, match="contiguous"):
        _core.net_forward(m._net, X, 4, False, True, np.empty((4, 3)))
