"""Dask (fastnn/dask.py): fit from Dask arrays equals fit from the same rows in memory; predict over
Dask arrays and DataFrames, on the threaded scheduler and on a LocalCluster (the model scattered once,
each worker's threads, a worker killed mid-way); what already worked with Dask keeps working
(GridSearchCV under joblib's dask backend, map_blocks(model.predict)); and fit on a memory-mapped array
reads it in place."""
import os
import pickle
import threading

import numpy as np
import pytest

import fastnn as fnn

da = pytest.importorskip("dask.array")
import dask  # noqa: E402


def data(n=600, d=12, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X, y


def model(dtype="float32", dropout=0.2, loss="cross_entropy", outputs=3, metrics=("accuracy",), seed=1):
    m = fnn.Sequential([fnn.Dense(16, "relu", l2=1e-4), fnn.Dropout(dropout), fnn.Dense(outputs)], input_dim=12,
                       dtype=dtype, seed=seed)
    m.compile(loss, fnn.SGD(lr=0.05, momentum=0.9), metrics=list(metrics))
    return m


def same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


# ---- fit ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [600, 128, 77, 10])
def test_fit_from_dask_equals_fit_in_memory_without_shuffling(chunk):
    """Blocks of 600, 128, 77 and 10 rows (fewer than a batch): the same batches, the same bits and the
    same history, with validation_split, sample and class weights."""
    X, y = data()
    sw = np.random.default_rng(2).uniform(0.5, 2, size=600).astype(np.float32)
    kw = dict(epochs=2, batch_size=32, shuffle=False, verbose=0, validation_split=0.25, class_weight={1: 2.0})
    a, b = model(), model()
    ha = a.fit(X, y, sample_weight=sw, **kw)
    hb = b.fit(da.from_array(X, chunks=(chunk, 12)), da.from_array(y, chunks=chunk),
               sample_weight=da.from_array(sw, chunks=chunk), **kw)
    assert same(a, b)
    for key in ("loss", "accuracy", "val_accuracy"):
        assert ha.history[key] == hb.history[key], key
    np.testing.assert_allclose(ha.history["val_loss"], hb.history["val_loss"], rtol=1e-14)  # summed by block


def test_fit_from_dask_with_dask_validation_data_and_targets():
    """Regression targets (2-D), validation_data as Dask arrays, float64, y in memory with X in Dask."""
    X, _ = data(dtype=np.float64)
    t = np.stack([X[:, 0] * 2 - X[:, 3], X[:, 1] ** 2], axis=1)
    Xv, _ = data(200, seed=5, dtype=np.float64)
    tv = np.stack([Xv[:, 0] * 2 - Xv[:, 3], Xv[:, 1] ** 2], axis=1)
    kw = dict(epochs=2, batch_size=50, shuffle=False, verbose=0)
    a, b = model("float64", loss="mse", outputs=2, metrics=["mae"]), model("float64", loss="mse", outputs=2,
                                                                          metrics=["mae"])
    ha = a.fit(X, t, validation_data=(Xv, tv), **kw)
    hb = b.fit(da.from_array(X, chunks=(90, 6)), t, validation_data=(da.from_array(Xv, chunks=(64, 12)),
                                                                    da.from_array(tv, chunks=(64, 2))), **kw)
    assert same(a, b)
    for key in ("loss", "mae"):
        assert ha.history[key] == hb.history[key], key
    for key in ("val_loss", "val_mae"):  # block by block: the same rows, summed in another grouping
        np.testing.assert_allclose(ha.history[key], hb.history[key], rtol=1e-12)


def test_one_block_shuffles_as_memory_does():
    X, y = data()
    a, b = model(), model()
    a.fit(X, y, epochs=2, batch_size=32, verbose=0)
    b.fit(da.from_array(X, chunks=(600, 12)), da.from_array(y, chunks=600), epochs=2, batch_size=32, verbose=0)
    assert same(a, b)


def test_shuffling_stays_within_a_window_and_uses_every_row_once():
    """The rows of each window are trained in a shuffled order, after the partial batch carried over
    from the window before; every row is trained once per epoch, a batch never mixes rows of windows
    further apart, and the same seed gives the same order."""
    X, y = data(1000)
    X[:, 0] = np.arange(1000)  # row ids
    m = model(dropout=0.0)
    from fastnn.dask import fit_sources
    train, _, batch = fit_sources(m, da.from_array(X, chunks=(130, 12)), da.from_array(y, chunks=130), 32, True,
                                  0.0, None, None, None, 2)

    def order(seed, epoch):
        rows = []
        for win in train.windows(seed, epoch):
            idx = win.perm if win.perm is not None else np.arange(len(win.x))
            for b in range(win.count):
                rows.append(win.x[idx[b * batch:(b + 1) * batch], 0].astype(int))
            win.done()
        return rows

    batches = order(7, 0)
    flat = np.concatenate(batches)
    assert sorted(flat) == list(range(1000)) and len(batches) == -(-1000 // 32)
    assert not np.array_equal(flat, np.arange(1000))
    for b in batches:  # a window holds 2 blocks of 130 rows; a batch may finish the window before
        assert b.max() - b.min() < 2 * 260
    assert all(np.array_equal(p, q) for p, q in zip(batches, order(7, 0)))
    assert not all(np.array_equal(p, q) for p, q in zip(batches, order(7, 1)))


def test_blocks_are_computed_in_order_in_a_background_thread():
    X, y = data()
    seen = []

    def record(block, block_info=None):
        seen.append((block_info[0]["chunk-location"][0], threading.current_thread().name))
        return block

    Xd = da.from_array(X, chunks=(100, 12)).map_blocks(record, dtype=X.dtype)
    with dask.config.set(scheduler="synchronous"):
        model().fit(Xd, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    assert [b for b, _ in seen] == list(range(6)) * 2
    assert all(name.startswith("fastnn-dask") for _, name in seen)


def test_bad_blocks_are_named():
    X, y = data()
    X[250, 3] = np.nan
    m = model()
    with pytest.raises(ValueError, match=r"X \(block 2\): contains NaN or Inf"):
        m.fit(da.from_array(X, chunks=(100, 12)), da.from_array(y, chunks=100), verbose=0)
    y2 = y.copy()
    y2[420] = 7
    with pytest.raises(ValueError, match=r"y \(block 4\): class labels must be in \[0, 3\)"):
        m.fit(da.from_array(data()[0], chunks=(100, 12)), da.from_array(y2, chunks=100), verbose=0)
    with pytest.raises(ValueError, match="y: has 500 rows but X has 600"):
        m.fit(da.from_array(X, chunks=(100, 12)), da.from_array(y[:500], chunks=100), verbose=0)
    Xu = da.from_array(X, chunks=(100, 12))
    Xu = Xu[Xu[:, 0] > -10]  # unknown block sizes
    with pytest.raises(ValueError, match="X: a Dask array whose block sizes are unknown"):
        m.fit(Xu, y, verbose=0)


def test_batchnorm_trains_from_dask_blocks_and_a_last_batch_of_one_row_is_named():
    """The batches of Dask blocks are those of the rows in memory, BatchNorm's statistics included; a
    last batch of one row (rows not known before the blocks are read) stops fit with BatchNorm named."""
    X, y = data(n=162)

    def bn():
        m = fnn.Sequential([fnn.Dense(16), fnn.BatchNorm(momentum=0.9), fnn.Activation("relu"), fnn.Dense(3)],
                           input_dim=12, seed=1)
        m.compile("cross_entropy", fnn.SGD(lr=0.05, momentum=0.9, clipnorm=0.5))
        return m

    a, b = bn(), bn()
    a.fit(da.from_array(X, chunks=(50, 12)), da.from_array(y, chunks=50), batch_size=16, shuffle=False, verbose=0)
    b.fit(X, y, batch_size=16, shuffle=False, verbose=0)
    assert same(a, b) and not np.array_equal(a.layers[1].moving_mean, np.zeros(16))
    with pytest.raises(ValueError, match=r"batch_size: BatchNorm in training needs at least 2 rows per batch, "
                                         r"but batch 11 of epoch 1 has 1 row"):
        bn().fit(da.from_array(X[:161], chunks=(50, 12)), da.from_array(y[:161], chunks=50), batch_size=16,
                 shuffle=False, verbose=0)


def test_fit_on_a_memory_mapped_array_reads_it_in_place(tmp_path):
    """64 MB of float32 rows memory-mapped read-only: fit keeps the anonymous memory (heap, copies) far
    below the file's size."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc/self/status (Linux)")

    def anon():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))

    rng = np.random.default_rng(0)
    n = 64 * 2**20 // (4 * 64)
    X = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(n, 64))
    for i in range(0, n, 32768):
        X[i:i + 32768] = rng.normal(size=(min(32768, n - i), 64))
    y = (X[:, 0] > 0).astype(np.int64)
    del X
    Xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    m = fnn.Sequential([fnn.Dense(16, "relu"), fnn.Dense(2)], input_dim=64, seed=0)
    m.compile("cross_entropy", fnn.SGD(lr=0.01))
    m.fit(Xm[:1000], y[:1000], batch_size=256, verbose=0)
    before = anon()
    m.fit(Xm, y, epochs=1, batch_size=256, verbose=0)
    grown = anon() - before
    assert grown < 16 * 2**20, f"anonymous memory grew by {grown / 2**20:.1f} MiB over a 64 MiB file"


# ---- predict --------------------------------------------------------------------------------------------

def trained(dtype="float32"):
    X, y = data(dtype=dtype)
    m = model(dtype)
    m.fit(X, y, epochs=2, verbose=0)
    return m, X


def test_predict_equals_predict_threaded_scheduler():
    m, X = trained()
    out = fnn.dask.predict(m, da.from_array(X, chunks=(77, 5)))  # column blocks are joined
    assert out.chunks == ((77,) * 7 + (61,), (3,))
    assert np.array_equal(out.compute(), m.predict(X))
    with pytest.raises(ValueError, match="X: expected 12 features"):
        fnn.dask.predict(m, da.from_array(X[:, :5], chunks=(77, 5)))
    with pytest.raises(TypeError, match="X: expected a Dask array or DataFrame"):
        fnn.dask.predict(m, X)
    with pytest.raises(fnn.NotFittedError):
        fnn.dask.predict(fnn.Sequential([fnn.Dense(2)]), da.from_array(X))


def test_misaligned_blocks_are_aligned_before_the_engine_reads_them():
    """A block deserialized on a worker may start at any byte of its message: fit and predict copy a
    misaligned array once (the engine's loads would be undefined behaviour) and compute the same."""
    m, X = trained()
    raw = bytearray(X.nbytes + 1)
    odd = np.frombuffer(raw, dtype=np.float32, offset=1).reshape(X.shape)
    odd[...] = X
    assert not odd.flags.aligned
    assert np.array_equal(m.predict(odd), m.predict(X))
    _, y = data()
    yraw = bytearray(y.nbytes + 3)
    yodd = np.frombuffer(yraw, dtype=np.int64, offset=3)
    yodd[...] = y
    a, b = model(), model()
    a.fit(X, y, epochs=1, verbose=0)
    b.fit(odd, yodd, epochs=1, verbose=0)
    assert same(a, b)


def test_predict_dataframe():
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    m, X = trained("float64")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(12)], index=np.arange(1000, 1600))
    out = fnn.dask.predict(m, dd.from_pandas(df, npartitions=4))
    res = out.compute()
    assert list(res.columns) == [0, 1, 2] and list(res.index) == list(range(1000, 1600))
    assert np.array_equal(res.to_numpy(), m.predict(X))


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.timeout(300)
def test_predict_on_a_cluster_scatters_the_model_once_and_sets_threads(client):
    X, _ = data()
    m = fnn.Sequential([fnn.Dense(4096, "relu"), fnn.Dense(3)], input_dim=12, seed=0)  # 250 KB of weights
    m.compile("cross_entropy")
    out = fnn.dask.predict(m, da.from_array(X, chunks=(50, 12)))
    graph = dict(out.__dask_graph__())
    size = len(pickle.dumps(graph))  # X's 28 KB are in it; 12 copies of the model would be 3 MB
    assert size < len(pickle.dumps(m)), f"graph of {len(graph)} tasks is {size} bytes: the model is inside"
    assert np.array_equal(client.compute(out).result(timeout=120), m.predict(X))
    # the worker (2 task threads, OMP_NUM_THREADS=1 from its nanny) runs fastnn on its 2 threads
    assert set(client.run(fnn.get_num_threads).values()) == {2}


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")  # max_iter=20 on purpose: a short search
def test_map_blocks_of_predict_and_gridsearch_under_joblib_dask(client):
    """What worked with Dask before fastnn.dask: map_blocks(model.predict) (the model inside every task)
    and scikit-learn's GridSearchCV on the dask joblib backend."""
    pytest.importorskip("sklearn")
    import joblib
    from sklearn.model_selection import GridSearchCV
    from fastnn.sklearn import MLPClassifier
    m, X = trained()
    out = da.from_array(X, chunks=(100, 12)).map_blocks(m.predict, dtype=np.float32, chunks=((100,) * 6, (3,)))
    assert np.array_equal(client.compute(out).result(timeout=120), m.predict(X))
    _, y = data()
    grid = GridSearchCV(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
                        {"alpha": [1e-4, 1e-2]}, cv=2)
    with joblib.parallel_backend("dask"):
        grid.fit(X, y)
    ref = GridSearchCV(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
                       {"alpha": [1e-4, 1e-2]}, cv=2).fit(X, y)
    assert grid.best_params_ == ref.best_params_
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"])


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_predict_is_recomputed(tmp_path):
    """A LocalCluster of 2 worker processes; the first time block 5 is computed its worker process dies.
    Dask recomputes the lost blocks on a worker (the model is scattered to both) and the result is
    complete and correct."""
    distributed = pytest.importorskip("distributed")
    m, X = trained()
    flag = str(tmp_path / "killed")

    def die_once(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 5 and not os.path.exists(flag):
            open(flag, "w").close()
            os._exit(1)
        return block

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster, distributed.Client(cluster) as c:
        Xd = da.from_array(X, chunks=(50, 12)).map_blocks(die_once, dtype=X.dtype)
        out = c.compute(fnn.dask.predict(m, Xd)).result(timeout=120)
    assert os.path.exists(flag)
    assert np.array_equal(out, m.predict(X))
