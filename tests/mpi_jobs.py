"""The programs tests/test_distributed.py runs under `mpiexec -n N`: python tests/mpi_jobs.py JOB OUTDIR.

Each rank writes what it saw (weights, histories, error messages) to OUTDIR/JOB-<rank>.npz or .json;
the test process checks them against oracles it computes itself in one process.  The data are the
functions below, so the test process builds the same shards.
"""
import json
import os
import signal
import sys
import threading
import time

import numpy as np

import fastnn as fnn


def data(n, d=12, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X, y


def model(dtype="float64", dropout=0.0, optimizer=None, seed=3, d=12):
    layers = [fnn.Dense(16, "relu", l2=1e-3)] + ([fnn.Dropout(dropout)] if dropout else []) + [fnn.Dense(3)]
    m = fnn.Sequential(layers, input_dim=d, dtype=dtype, seed=seed)
    m.compile("cross_entropy", optimizer or fnn.SGD(lr=0.05, momentum=0.9), metrics=["accuracy"])
    return m


# shard sizes per rank for the uneven job: rank r gets SHARDS[r] rows, validation VAL[r] rows
SHARDS = (150, 97, 64)
VAL = (40, 0, 25)


def shards(size, rows=SHARDS, seed=0, dtype=np.float64):
    """[(X_r, y_r)] of the ranks, cut from one data set in rank order."""
    X, y = data(sum(rows[:size]), seed=seed, dtype=dtype)
    cuts = np.cumsum((0,) + tuple(rows[:size]))
    return [(X[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def when_training(m, sig, after=0.3):
    """Send this process `sig` once `m` has taken a few training steps (a thread of its own)."""
    def run():
        while m._net is None or m._net.counters[0] < 5:
            time.sleep(0.01)
        time.sleep(after)
        os.kill(os.getpid(), sig)
    threading.Thread(target=run, daemon=True).start()


def flat(m):
    return np.concatenate([a.ravel() for a in m.get_weights()])


def save(out, job, rank, **arrays):
    np.savez(os.path.join(out, f"{job}-{rank}.npz"), **arrays)


def save_json(out, job, rank, obj):
    with open(os.path.join(out, f"{job}-{rank}.json"), "w") as f:
        json.dump(obj, f)


# ---- jobs --------------------------------------------------------------------------------------------

def job_same(comm, out):
    """Equal shards, no shuffle, float64: weights and histories vs the one-process oracle; and float32
    with shuffling and dropout over every exchange (shared memory or MPI, overlapped or not)."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size, rows=(120,) * size)[r]
    m = model()
    h = m.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0, distributed=fnn.distributed.MPI())
    res = {"w64": flat(m), "loss64": np.array(h.history["loss"]), "acc64": np.array(h.history["accuracy"])}
    X32, y32 = shards(size, rows=(120,) * size, dtype=np.float32)[r]
    for name, kw in (("shm", dict(shared_memory=True)), ("mpi", dict(shared_memory=False)),
                     ("shm_overlap", dict(shared_memory=True, overlap=True)),
                     ("mpi_overlap", dict(shared_memory=False, overlap=True))):
        m = model("float32", dropout=0.3, optimizer=fnn.Adam(lr=0.01))
        d = fnn.distributed.MPI(**kw)
        m.fit(X32, y32, epochs=2, batch_size=16, shuffle=True, verbose=0, distributed=d)
        res["w32_" + name] = flat(m)
        res["transport_" + name] = np.array([d.stats["transport"], str(d.stats["overlap"])])
    save(out, "same", r, **res)


def job_uneven(comm, out):
    """Shards of different sizes, each rank with its own validation rows (or none)."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size)[r]
    Xv, yv = data(VAL[r], seed=10 + r)
    m = model()
    val = (Xv, yv) if VAL[r] else None
    h = m.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0, validation_data=val,
              distributed=fnn.distributed.MPI())
    save(out, "uneven", r, w=flat(m), **{k: np.array(v) for k, v in h.history.items() if k not in ("time",)})


def job_single(comm, out):
    """One rank: a distributed fit is the plain fit, bit for bit (shuffling and dropout included)."""
    X, y = data(300, dtype=np.float32)
    m = model("float32", dropout=0.3)
    h = m.fit(X, y, epochs=2, batch_size=32, verbose=0, validation_split=0.2, distributed=fnn.distributed.MPI())
    save(out, "single", 0, w=flat(m), loss=np.array(h.history["loss"]), val_loss=np.array(h.history["val_loss"]))


def job_callbacks(comm, out):
    """Rank 0 decides: EarlyStopping that stops after epoch 2 and restores epoch 1's weights, a
    ModelCheckpoint per epoch (only rank 0's writes), a learning-rate schedule, a callback's stop."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size, rows=(80,) * size)[r]
    m = model()
    ckpt = os.path.join(out, f"ckpt-rank{r}-{{epoch}}.safetensors")
    cbs = [fnn.EarlyStopping(monitor="loss", mode="max", patience=0, restore_best_weights=True),
           fnn.ModelCheckpoint(ckpt, save_best_only=False),
           fnn.LearningRateScheduler(lambda epoch: 0.05 / (1 + epoch))]
    h = m.fit(X, y, epochs=5, batch_size=16, verbose=0, callbacks=cbs, distributed=fnn.distributed.MPI())
    m2 = model()
    h2 = m2.fit(X, y, epochs=5, batch_size=16, verbose=0, distributed=fnn.distributed.MPI(),
                callbacks=[fnn.LambdaCallback(on_epoch_end=lambda e, logs: setattr(m2, "stop_training", e == 2))])
    save(out, "callbacks", r, w=flat(m), epochs=np.array(h.epoch), lr=np.array(h.history["lr"]),
         loss=np.array(h.history["loss"]), epochs2=np.array(h2.epoch))


def _error_of(fn):
    try:
        fn()
    except BaseException as e:  # the job reports what each rank raised
        return f"{type(e).__name__}: {e}"
    return None


def job_mismatch(comm, out):
    """Shards that disagree, and bad data on one rank: every rank raises before training."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size, rows=(60,) * size)[r]
    dist = fnn.distributed.MPI(timeout=60)
    errors = {}
    m = fnn.Sequential([fnn.Dense(8), fnn.Dense(3)], seed=1)  # built from X: the ranks' widths differ
    m.compile("cross_entropy")
    Xw = np.hstack([X, X[:, :1]]) if r == 1 else X
    errors["features"] = _error_of(lambda: m.fit(Xw, y, verbose=0, distributed=dist))
    m = model()
    yl = np.where(y == 2, 1, y) if r == 1 else y
    errors["labels"] = _error_of(lambda: m.fit(X, yl, verbose=0, distributed=dist))
    Xn = X.copy()
    if r == 1:
        Xn[3, 2] = np.nan
    errors["nan"] = _error_of(lambda: m.fit(Xn, y, verbose=0, distributed=dist))
    errors["epochs"] = _error_of(lambda: m.fit(X, y, epochs=1 + r, verbose=0, distributed=dist))
    m2 = fnn.Sequential([fnn.Dense(16 + r, "relu"), fnn.Dense(3)], input_dim=12, seed=1)
    m2.compile("cross_entropy")
    errors["model"] = _error_of(lambda: m2.fit(X, y, verbose=0, distributed=dist))
    errors["steps"] = int(m._net.counters[0])
    errors["ok_after"] = _error_of(lambda: m.fit(X, y, verbose=0, distributed=dist))
    save_json(out, "mismatch", r, errors)


def job_nonfinite(comm, out):
    """Rank 1's loss overflows in epoch 2: every rank stops before that step's update."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size, rows=(64,) * size)[r]
    m = model("float32", optimizer=fnn.SGD(lr=0.01))
    Xb = X.astype(np.float32)
    if r == 1:
        Xb[40] = 3e38
    try:
        m.fit(Xb, y, epochs=3, batch_size=16, shuffle=False, verbose=0, distributed=fnn.distributed.MPI())
    except fnn.NonFiniteLossError as e:
        save(out, "nonfinite", r, w=flat(m), err=np.array(str(e)), epoch=np.array(e.epoch), batch=np.array(e.batch),
             steps=np.array(m._net.counters[0]))


def job_interrupt(comm, out):
    """Ctrl-C on rank 1 mid-training, then a KeyboardInterrupt raised by rank 0's callback: every rank
    stops at the same step with KeyboardInterrupt and keeps equal weights."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size, rows=(2000,) * size)[r]
    m = model()
    if r == 1:
        when_training(m, signal.SIGINT)
    err = _error_of(lambda: m.fit(X, y, epochs=10000, batch_size=8, verbose=0, distributed=fnn.distributed.MPI()))
    epochs_done = len(m.history.epoch)

    def stop(epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt("stop from a callback")

    err2 = _error_of(lambda: m.fit(X, y, epochs=5, batch_size=64, verbose=0, distributed=fnn.distributed.MPI(),
                                   callbacks=[fnn.LambdaCallback(on_epoch_end=stop)]))
    save(out, "interrupt", r, w=flat(m), err=np.array(err), err2=np.array(err2), epochs=np.array(epochs_done),
         epochs2=np.array(len(m.history.epoch)), steps=np.array(m._net.counters[0]))


def job_death(comm, out):
    """Rank 1 is killed mid-training (mpiexec then ends the job)."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size, rows=(2000,) * size)[r]
    m = model()
    if r == 1:
        when_training(m, signal.SIGKILL)
    m.fit(X, y, epochs=10000, batch_size=8, verbose=0, distributed=fnn.distributed.MPI(timeout=3.0))


def job_hang(comm, out):
    """Rank 1 stops answering mid-training (SIGSTOP): rank 0 must stop with DistributedError within its
    timeout, then ends rank 1 so that the job ends."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size, rows=(2000,) * size)[r]
    pids = comm.allgather(os.getpid())
    m = model()
    if r == 1:
        when_training(m, signal.SIGSTOP)
    t0 = time.monotonic()
    err = _error_of(lambda: m.fit(X, y, epochs=10000, batch_size=8, verbose=0,
                                  distributed=fnn.distributed.MPI(timeout=3.0)))
    save_json(out, "hang", r, {"error": err, "seconds": time.monotonic() - t0})
    for pid in pids[1:]:
        os.kill(pid, signal.SIGKILL)
    os._exit(3)  # MPI_Finalize would wait for the stopped rank


FEATURE_SHARDS = (64, 150)  # rank 0 the shorter: it takes empty steps


def feature_model(dtype="float64"):
    """max_norm, global gradient clipping and a per-step schedule, all applied after the exchange."""
    m = fnn.Sequential([fnn.Dense(16, "relu", l2=1e-3, max_norm=0.8), fnn.Dense(3)], input_dim=12, dtype=dtype, seed=3)
    lr = fnn.schedules.CosineDecayByStep(0.2, decay_steps=15, warmup_steps=4)
    m.compile("cross_entropy", fnn.SGD(lr=lr, momentum=0.9, global_clipnorm=0.3))
    return m


def bn_model():
    """BatchNorm with a rate of 0: only its running statistics move."""
    m = fnn.Sequential([fnn.Dense(16), fnn.BatchNorm(momentum=0.8), fnn.Activation("relu"), fnn.Dense(3)],
                       input_dim=12, dtype="float64", seed=3)
    m.compile("cross_entropy", fnn.SGD(lr=0.0))
    return m


def job_features(comm, out):
    """Clipping, max_norm and a per-step schedule over every exchange and from sparse shards; BatchNorm's
    running statistics."""
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = shards(size, rows=FEATURE_SHARDS)[r]
    res = {}
    for name, kw in (("shm", dict(shared_memory=True)), ("mpi", dict(shared_memory=False)),
                     ("shm_overlap", dict(shared_memory=True, overlap=True))):
        m = feature_model()
        m.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0, distributed=fnn.distributed.MPI(**kw))
        res["w_" + name] = flat(m)
    import scipy.sparse
    m = feature_model()  # sparse shards: densified a batch at a time, the same bits
    m.fit(scipy.sparse.csr_matrix(X), y, epochs=2, batch_size=16, shuffle=False, verbose=0,
          distributed=fnn.distributed.MPI(shared_memory=True))
    res["w_sparse"] = flat(m)
    m = bn_model()
    m.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0, distributed=fnn.distributed.MPI())
    res["bn"] = flat(m)
    save(out, "features", r, **res)


def job_dask(comm, out):
    """Each rank trains from its own blocks of one Dask array; the same as its rows in memory."""
    import dask.array as da
    r, size = comm.Get_rank(), comm.Get_size()
    X, y = data(400)
    Xd = da.from_array(X, chunks=(50, 12))
    yd = da.from_array(y, chunks=50)
    mine_x, mine_y = Xd.blocks[r::size], yd.blocks[r::size]
    a = model()
    a.fit(mine_x, mine_y, epochs=2, batch_size=16, shuffle=False, verbose=0, distributed=fnn.distributed.MPI())
    b = model()
    b.fit(mine_x.compute(), mine_y.compute(), epochs=2, batch_size=16, shuffle=False, verbose=0,
          distributed=fnn.distributed.MPI())
    save(out, "dask", r, a=flat(a), b=flat(b))


if __name__ == "__main__":
    from mpi4py import MPI
    job, outdir = sys.argv[1], sys.argv[2]
    globals()["job_" + job](MPI.COMM_WORLD, outdir)
