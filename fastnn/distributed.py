"""Data-parallel training over MPI: `model.fit(X, y, distributed=fastnn.distributed.MPI())`.

In a program started with `mpiexec -n N python -m mpi4py train.py`, every process builds the same
model, passes its own shard of the data to `fit` and trains with `batch_size` rows of its own per step
(a global batch of up to N * batch_size rows).  The C engine is unchanged and knows nothing of MPI: its
training step calls a hook between the backward pass and the optimizer update (csrc/net.h, "the
gradient hook"), and this module's hook averages the gradient buffer over the processes there.

Before the first step, every process's data is checked in the usual way; an error on any process, or a
shard whose feature count, label set, model, epochs or optimizer differs from rank 0's, is an error on
every process naming the rank.  Then rank 0's weights, optimizer state, step counters and seed reach
every process.

Each step, from the hook: (1) a header exchange: every rank's rows in the step, whether its loss was
finite, and whether it was interrupted (Ctrl-C): any failure ends the step on every rank before the
update; (2) the average
    g[j] = sum over r = 0, 1, ..., N-1, in this order, of (rows_r / R) * g_r[j],   R = sum of rows_r,
where g_r is rank r's gradient (the mean over its rows, plus the L1/L2 terms), which is the gradient of
the mean loss over the global batch.  The gradient buffer is cut into N chunks; rank k sums chunk k of
every rank in rank order in one C loop (fnn_scolsum_scaled) and every rank then gathers every sum.  The
chunks travel through a shared-memory window when all ranks are on one host, by MPI all-to-all and
all-gather otherwise; no MPI reduction operator is used, so the summation order does not depend on the
MPI library or its algorithms.  Hence: every rank gets the same bits and applies the same update to the
same weights; the same data split over the same N gives the same bits every run; and the result
matches one process training on the concatenated batches up to rounding (its sums run in another
order).  With `overlap`, a thread of the exchange's own reduces each layer's gradient as soon as the
backward pass has finished it, while the layers below are still being computed.

A shorter shard runs out of batches first; its process then takes empty steps (no rows, weight 0 in the
average) until every process is done, so every row of every shard is used once per epoch.  Each process
draws its own shuffles and dropout masks (rank 0 those of the model's seed, so one process is a plain
fit bit for bit).

Each epoch, the loss and the metrics are those of every process's rows (the training predictions and
every process's validation data are gathered on rank 0); rank 0 runs the callbacks (early stopping,
checkpoints, learning-rate changes) and its logs and decisions reach every process, so `fit` returns
the same History everywhere and stops at the same epoch; at the end every process takes rank 0's
weights (EarlyStopping may have restored earlier ones).  Only rank 0 prints progress.

Faults: every exchange waits at most `timeout` seconds, so a process that died or hangs makes the
others raise DistributedError rather than hang (under mpiexec's default, the launcher also ends the
whole job when a process dies).  A non-finite loss, an exception in rank 0's callbacks, or Ctrl-C on
any rank stops every rank at the same step (before that step's update), and the error is raised on
every rank (KeyboardInterrupt for an interruption), naming the rank it came from.

Needs mpi4py with an MPI library (pip install "fastnn[mpi]": mpi4py and the mpich wheel); `import
fastnn` does not import them.
"""
import pickle
import queue
import signal
import threading
import time

import numpy as np

from . import _core
from ._errors import FastNNError, NonFiniteLossError
from ._validate import real_number
from .callbacks import CallbackList
from .models import zeros_on_lines

__all__ = ["MPI", "DistributedError"]


class DistributedError(FastNNError, RuntimeError):
    """Another process of data-parallel training failed or stopped answering."""


def _mpi4py():
    try:
        from mpi4py import MPI as mpi
    except ImportError:
        raise ImportError('fastnn.distributed.MPI needs mpi4py and an MPI library: pip install "fastnn[mpi]"') \
            from None
    return mpi


class MPI:
    """`fit(..., distributed=MPI())`: data-parallel training over the processes of `comm` (see the
    module docstring).

    comm: an mpi4py intra-communicator (default MPI.COMM_WORLD) whose processes all call fit together.
    timeout: seconds any exchange waits for the other processes before raising DistributedError.
    overlap: reduce each layer's gradient in a thread of its own while the backward pass computes the
      layers below it.  None (default): when the processes span more than one host, where the transfer
      runs on the network; on one host the exchange is memory copies that compete with the
      computation for the same cores (measured in README, "Scaling out").
    shared_memory: exchange through a shared-memory window.  None (default): when every process is on
      one host; False forces MPI all-to-all and all-gather.  Both give the same bits.
    """

    def __init__(self, comm=None, *, timeout=300.0, overlap=None, shared_memory=None):
        mpi = _mpi4py()
        if comm is None:
            comm = mpi.COMM_WORLD
        if not isinstance(comm, mpi.Intracomm):
            raise TypeError(f"comm: expected an mpi4py intra-communicator, got {type(comm).__name__}")
        for name, v in (("overlap", overlap), ("shared_memory", shared_memory)):
            if v is not None and not isinstance(v, bool):
                raise TypeError(f"{name}: expected None, True or False, got {v!r}")
        self.comm = comm
        self.timeout = real_number(timeout, "timeout", low=0.0, low_open=True)
        self.overlap = overlap
        self.shared_memory = shared_memory
        self.stats = {}  # of the last fit: steps, the seconds of their exchanges, transport, overlap

    @property
    def rank(self):
        return self.comm.Get_rank()

    @property
    def size(self):
        return self.comm.Get_size()

    def _session(self, model):
        return _Session(self, model)

    def __repr__(self):
        return (f"MPI(rank {self.rank} of {self.size}, timeout={self.timeout:g}, overlap={self.overlap}, "
                f"shared_memory={self.shared_memory})")


def _stream_seed(seed, rank):
    """The seed of rank `rank`'s shuffles and dropout masks: the model's own on rank 0."""
    if rank == 0:
        return seed
    lo, hi = np.random.SeedSequence([seed, rank]).generate_state(2, np.uint32)
    return int(lo) | int(hi) << 32


# ---- the collectives, each waited for at most `timeout` seconds ----------------------------------

class _Failure:
    """What a rank reports instead of a result: the exception's class name and message."""

    def __init__(self, exc):
        self.kind = type(exc).__name__
        self.message = str(exc)


_SAME_KIND = {"ValueError": ValueError, "TypeError": TypeError, "MemoryError": MemoryError,
              "NonFiniteLossError": NonFiniteLossError}


def _remote(failure, rank):
    """The exception a rank raises for another rank's failure: of the same kind where it is a plain
    argument or data error (the user fixes those the same way), else DistributedError."""
    if failure.kind == "KeyboardInterrupt":
        return KeyboardInterrupt(f"training interrupted on rank {rank}")
    if failure.kind in _SAME_KIND:
        return _SAME_KIND[failure.kind](f"rank {rank}: {failure.message}")
    return DistributedError(f"rank {rank} failed: {failure.kind}: {failure.message}")


class _Group:
    """fit's collectives over a duplicate of the user's communicator (nothing fit leaves pending can meet
    the user's own messages).  Every call is nonblocking and polled: a process that died or hangs
    makes the wait end with DistributedError after `timeout` seconds, and Ctrl-C during a wait that
    cannot end ends it a few seconds later."""

    _SPIN = 5e-4    # seconds of busy polling before sleeping between polls (a step's ranks are close)
    _INTERRUPT = 5.0   # seconds a wait goes on after Ctrl-C, for the others to take part

    def __init__(self, mpi, comm, timeout):
        self.mpi, self.timeout = mpi, timeout
        self.broken = None  # the message of the failure that ended every further exchange
        self.interrupted = None  # time.monotonic() of a Ctrl-C not yet reported to the others
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.comm = comm
        dup, req = comm.Idup()
        self.wait(req, "fit: starting (every rank must call fit)")
        self.comm = dup

    def free(self):
        if self.broken is None and self.comm is not None:
            self.comm.Free()
        self.comm = None

    def _break(self, message):
        self.broken = message
        raise DistributedError(message)

    def wait(self, req, what):
        if self.broken is not None:
            raise DistributedError(self.broken)
        start = time.monotonic()
        try:
            while not req.Test():
                now = time.monotonic()
                if now - start < self._SPIN:
                    continue
                if now - start > self.timeout:
                    self._break(f"{what}: waited {self.timeout:g} s for the other ranks (a process died, hangs "
                                f"or stopped calling fit); training stopped on this rank")
                if self.interrupted is not None and now - self.interrupted > self._INTERRUPT:
                    self.broken = f"{what}: interrupted while waiting for the other ranks"
                    raise KeyboardInterrupt(self.broken)
                time.sleep(1e-4 if now - start < 1.0 else 1e-2)
        except self.mpi.Exception as e:
            self._break(f"{what}: MPI failed ({e}); training stopped on this rank")

    def datatype(self, dtype):
        from mpi4py.util.dtlib import from_numpy_dtype
        return from_numpy_dtype(dtype)

    def allgather_i64(self, values, out, what):
        """out (size x len(values), int64) = every rank's values."""
        self.wait(self.comm.Iallgather(values, out), what)
        return out

    def allgather_obj(self, obj, what):
        """Every rank's `obj` (pickled: the ranks are processes of one program)."""
        data = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8)
        lens = self.allgather_i64(np.array([data.size], dtype=np.int64), np.empty(self.size, np.int64), what)
        displs = np.zeros(self.size, dtype=np.int64)
        np.cumsum(lens[:-1], out=displs[1:])
        out = np.empty(int(lens.sum()), dtype=np.uint8)
        self.wait(self.comm.Iallgatherv(data, [out, lens, displs, self.mpi.BYTE]), what)
        return [pickle.loads(out[d:d + n]) for d, n in zip(displs, lens)]

    def bcast(self, a, what):
        """a = rank 0's a (a contiguous array of the same shape on every rank)."""
        if a.size:
            self.wait(self.comm.Ibcast(a, root=0), what)

    def gather_rows(self, a, what):
        """Every rank's rows of `a` (1-D or 2-D, the same width everywhere) concatenated on rank 0, in
        rank order; None elsewhere."""
        a = np.ascontiguousarray(a)
        width = int(np.prod(a.shape[1:], dtype=np.int64))
        counts = self.allgather_i64(np.array([a.size], dtype=np.int64), np.empty(self.size, np.int64), what)
        displs = np.zeros(self.size, dtype=np.int64)
        np.cumsum(counts[:-1], out=displs[1:])
        out = np.empty((int(counts.sum()) // max(width, 1),) + a.shape[1:], dtype=a.dtype) if self.rank == 0 else None
        dt = self.datatype(a.dtype)
        recv = [out, counts, displs, dt] if self.rank == 0 else None
        self.wait(self.comm.Igatherv([a, dt], recv, root=0), what)
        return out

    def round(self, what, fn, *, root_only=False, name_own=False, interruptible=True):
        """fn() on every rank (on rank 0 only with root_only; None elsewhere), and every rank's result
        to every rank.  When fn fails on some rank, or Ctrl-C was pressed there (unless not
        interruptible: the Ctrl-C then waits for the next exchange), every rank raises: the failed rank
        its own exception (with name_own, a ValueError/TypeError gains its rank in the message), the
        others one of the same kind naming that rank (the lowest one that failed)."""
        err = value = None
        try:
            if self.rank == 0 or not root_only:
                value = fn()
        except BaseException as e:  # every failure is reported: the others must not wait for this rank
            err = e
        if err is None and interruptible and self.interrupted is not None:
            err = KeyboardInterrupt(f"training interrupted on rank {self.rank}")
            self.interrupted = None
        try:
            results = self.allgather_obj(value if err is None else _Failure(err), what)
        except BaseException:
            if err is not None:
                raise err
            raise
        for r, res in enumerate(results):
            if isinstance(res, _Failure):
                if r != self.rank:
                    raise _remote(res, r)
                if name_own and type(err) in (ValueError, TypeError):
                    raise type(err)(f"rank {r}: {err}") from err
                raise err
        return results


# ---- the per-step exchange -------------------------------------------------------------------------

class _AllToAll:
    """The average over MPI: rank k receives chunk k of every rank (all-to-all), sums it in rank order,
    and every rank gathers every sum (all-gather, in place in the gradient buffer)."""

    update_buffers = ()

    def __init__(self, group, grads, net):
        self.g, self.grads = group, grads
        n = grads.size
        self.recv = np.empty(group.size * (n // group.size + 1), dtype=grads.dtype)
        self.dt = group.datatype(grads.dtype)
        self.plans = {}

    def _plan(self, lo, hi):
        plan = self.plans.get((lo, hi))
        if plan is None:
            size, k = self.g.size, self.g.rank
            starts = (np.arange(size + 1, dtype=np.int64) * (hi - lo)) // size
            counts = np.diff(starts)
            mine = int(counts[k])
            plan = (starts[:-1].copy(), counts, mine, np.full(size, mine, dtype=np.int64),
                    np.arange(size, dtype=np.int64) * mine, lo + int(starts[k]))
            self.plans[(lo, hi)] = plan
        return plan

    def reduce(self, lo, hi, coef, what):
        displs, counts, mine, rcounts, rdispls, at = self._plan(lo, hi)
        size = self.g.size
        send = self.grads[lo:hi]
        recv = self.recv[:size * mine]
        self.g.wait(self.g.comm.Ialltoallv([send, counts, displs, self.dt], [recv, rcounts, rdispls, self.dt]), what)
        _core.colsum_scaled(recv, size, mine, mine, coef, self.grads[at:at + mine])
        self.g.wait(self.g.comm.Iallgatherv(self.g.mpi.IN_PLACE, [send, counts, displs, self.dt]), what)

    def update_index(self):
        return None  # the average is in the gradient buffer itself

    def close(self, span):
        pass


class _SharedWindow:
    """The average through a shared-memory window (every rank on one host): the backward pass of rank r
    writes its gradient straight into row r of the window (Net.set_grads); after a barrier rank k sums
    chunk k of every row in rank order into a result row; after a second barrier the update of every
    rank reads the result row (the hook's `update`), so no gradient is copied at all.  Two result rows,
    used in turn step by step, let a rank write the next step's sums while another still updates from
    the last ones."""

    def __init__(self, group, grads, net):
        mpi = group.mpi
        self.g, self.grads, self.n, self.net = group, grads, grads.size, net
        size, n = group.size, grads.size
        nbytes = (size + 2) * n * grads.itemsize if group.rank == 0 else 0  # one block, rank 0's: rows at a stride
        self.win = mpi.Win.Allocate_shared(nbytes, grads.itemsize, comm=group.comm)
        buf, _ = self.win.Shared_query(0)
        self.shm = np.frombuffer(buf, dtype=grads.dtype, count=(size + 2) * n)
        self.win.Lock_all(mpi.MODE_NOCHECK)
        self.update_buffers = (self.shm[size * n:(size + 1) * n], self.shm[(size + 1) * n:])
        self.turn, self.last = 0, None
        self.plans = {}
        net.set_grads(self.shm[group.rank * n:(group.rank + 1) * n])

    def _barrier(self, what):
        self.win.Sync()
        self.g.wait(self.g.comm.Ibarrier(), what)
        self.win.Sync()

    def reduce(self, lo, hi, coef, what):
        size, k = self.g.size, self.g.rank
        starts = self.plans.get((lo, hi))
        if starts is None:
            starts = self.plans[(lo, hi)] = lo + (np.arange(size + 1, dtype=np.int64) * (hi - lo)) // size
        c0, c1 = int(starts[k]), int(starts[k + 1])
        self._barrier(what)
        _core.colsum_scaled(self.shm[c0:], size, c1 - c0, self.n, coef, self.update_buffers[self.turn][c0:c1])
        self._barrier(what)

    def update_index(self):
        """The result row of this step (the next step writes the other one)."""
        self.last, self.turn = self.turn, self.turn ^ 1
        return self.last

    def close(self, span):
        """The backward pass writes the model's own gradient buffer again, which receives the average of
        the last step (what layer.weight_grad shows after fit)."""
        self.net.set_grads(None)
        if self.last is not None and span is not None:
            np.copyto(self.grads[span[0]:span[1]], self.update_buffers[self.last][span[0]:span[1]])
        if self.g.broken is None:
            self.win.Unlock_all()
            self.win.Free()


class _StepFailure(Exception):
    """A rank's step failed (a non-finite loss, an interruption): every rank stops before the update."""

    def __init__(self, kind, rank):
        super().__init__(kind, rank)
        self.kind, self.rank = kind, rank


class _Exchange:
    """The C step's gradient hook (fastnn._core.Net.set_grad_hook): grad_event is called with the GIL by
    the thread that runs fit's C chunk; see the module docstring for the protocol.  `error` holds what
    ended a step, for fit to raise."""

    error = None
    update = None  # at the end of a step: None, or which of reducer.update_buffers holds the average

    def __init__(self, group, reducer, grads, ranges, overlap):
        self.g, self.reducer, self.ranges = group, reducer, ranges
        self.span = (min(lo for lo, _ in ranges.values()), max(hi for _, hi in ranges.values())) if ranges else None
        self.coef = np.empty(group.size, dtype=grads.dtype)
        self.header = np.zeros(3, dtype=np.int64)
        self.headers = np.zeros((group.size, 3), dtype=np.int64)
        self.step = 0
        self.seconds = 0.0  # spent in the step's exchange (waiting for the others included)
        self._reset()
        self.worker = _Worker(self) if overlap else None

    def _reset(self):
        self.opened = False   # this step's first header was exchanged
        self.failure = None   # the step's failure, once known

    def _what(self):
        return f"fit: the gradient exchange of step {self.step + 1}"

    def _exchange_headers(self, rows, status):
        """Every rank's (rows, status, interrupted); a failure anywhere raises _StepFailure here."""
        h = self.header
        h[0], h[1], h[2] = rows, status, self.g.interrupted is not None
        hs = self.g.allgather_i64(h, self.headers, self._what())
        for col, kind in ((2, "interrupt"), (1, "nonfinite")):
            bad = np.flatnonzero(hs[:, col])
            if bad.size:
                self.g.interrupted = None
                raise _StepFailure(kind, int(bad[0]))
        np.divide(hs[:, 0], hs[:, 0].sum(), out=self.coef, casting="unsafe")

    def open(self, rows):
        """The step's first exchange, when its first layer is done (overlap)."""
        self.opened = True
        self._exchange_headers(rows, 0)

    def reduce_layer(self, layer):
        r = self.ranges.get(layer)
        if r is not None:
            self.reducer.reduce(r[0], r[1], self.coef, self._what())

    def grad_event(self, event, layer, status, rows):
        if event == _core.GRAD_LAYER:
            if self.worker is not None:
                self.worker.put(layer, rows)
            return 0
        t0 = time.perf_counter()
        self.update = None
        try:
            if self.worker is not None:
                self.worker.finish()  # the layers' reductions are over (or one failed: raised here)
            if not self.opened:  # no layer event (no overlap, or this rank's loss was not finite)
                self._exchange_headers(rows, status)
                if self.worker is None and self.span is not None:
                    self.reducer.reduce(self.span[0], self.span[1], self.coef, self._what())
            else:  # overlap: the layers are reduced; agree that every rank's step ended well
                self._exchange_headers(rows, status)
            self.update = self.reducer.update_index()
        except _StepFailure as f:
            self.error = f
            return -1
        finally:
            self.step += 1
            self.seconds += time.perf_counter() - t0
            self._reset()
        return 0

    def close(self):
        if self.worker is not None:
            self.worker.stop()
        self.reducer.close(self.span)


class _Worker:
    """The exchange's thread with overlap: reduces each layer as the backward pass finishes it.  Only
    this thread calls MPI during a step (fit's own thread calls it between chunks), so MPI's
    THREAD_SERIALIZED level is enough."""

    def __init__(self, exchange):
        self.ex = exchange
        self.q = queue.Queue()
        self.error = None
        self.thread = threading.Thread(target=self._run, name="fastnn-exchange", daemon=True)
        self.thread.start()

    def put(self, layer, rows):
        self.q.put((layer, rows))

    def _run(self):
        while True:
            item = self.q.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    layer, rows = item
                    if not self.ex.opened:
                        self.ex.open(rows)
                    self.ex.reduce_layer(layer)
            except BaseException as e:  # kept for the step's end, which raises it in fit's thread
                self.error = e
            finally:
                self.q.task_done()

    def finish(self):
        """Wait for the step's layers; raise what failed among them."""
        self.q.join()
        err, self.error = self.error, None
        if err is not None:
            raise err

    def stop(self):
        self.q.put(None)
        self.thread.join(timeout=1.0)


# ---- fit's coordinator ------------------------------------------------------------------------------

class _Session:
    """One data-parallel fit: answers Sequential.fit's coordinator calls (fastnn.models._Solo is the
    one-process version) with rank 0 deciding and the others following."""

    def __init__(self, cfg, model):
        self.cfg, self.model = cfg, model
        self.g = _Group(_mpi4py(), cfg.comm, cfg.timeout)
        self.rank, self.size = self.g.rank, self.g.size
        self.is_root = self.rank == 0
        self.exchange = None
        self._sigint = None

    # -- before training --------------------------------------------------------------------------

    def prepare(self, fn):
        """fit's own checks on every rank, then the checks that the ranks agree."""
        mine = {}

        def local():
            mine["fd"] = fd = fn()
            return self._facts(fd)

        try:
            facts = self.g.round("fit: checking every rank's data", local, name_own=True)
            self._agree(facts)
        except BaseException:
            self.g.free()
            raise
        self.facts = facts
        self.rows = sum(f["rows"] for f in facts)
        return mine["fd"]

    def _facts(self, fd):
        m = self.model
        labels = fd.train.label_set()
        return {"features": m.input_dim, "rows": fd.train.n, "batches": fd.train.n_batches, "epochs": fd.epochs,
                "spec": {k: v for k, v in m.spec().items() if k != "link"}, "labels": labels,
                "optimizer": m.optimizer.describe(m._epochs_seen)["kind"], "n_state": m._state.size}

    def _agree(self, facts):
        """ValueError naming the first rank whose shard or model does not match rank 0's (the same
        error on every rank: each compares the same facts)."""
        f0 = facts[0]
        for r, f in enumerate(facts[1:], 1):
            if f["features"] != f0["features"]:
                raise ValueError(f"X: rank {r} has {f['features']} features and rank 0 {f0['features']}: every "
                                 "rank's shard must have the same columns")
            if f["spec"] != f0["spec"]:
                diff = sorted(k for k in f0["spec"] if f["spec"].get(k) != f0["spec"][k])
                raise ValueError(f"model: rank {r}'s model differs from rank 0's ({', '.join(diff)}): every rank "
                                 "must build and compile the same model")
            if f["optimizer"] != f0["optimizer"] or f["n_state"] != f0["n_state"]:
                raise ValueError(f"optimizer: rank {r} uses {f['optimizer']} and rank 0 {f0['optimizer']}: every "
                                 "rank must compile the same optimizer")
            if f["epochs"] != f0["epochs"]:
                raise ValueError(f"epochs: rank {r} asks for {f['epochs']} and rank 0 for {f0['epochs']}: every "
                                 "rank must train as many epochs")
            if (f["labels"] is None) != (f0["labels"] is None):
                raise ValueError(f"y: rank {r} gives {'targets' if f['labels'] is None else 'class labels'} and "
                                 f"rank 0 {'targets' if f0['labels'] is None else 'class labels'}")
            if f["labels"] is not None and f["labels"] != f0["labels"]:
                missing = sorted(set(f0["labels"]) - set(f["labels"]))
                extra = sorted(set(f["labels"]) - set(f0["labels"]))
                raise ValueError(f"y: rank {r}'s class labels differ from rank 0's (missing on rank {r}: "
                                 f"{missing or 'none'}; only on rank {r}: {extra or 'none'}): every rank's shard "
                                 "must hold the same classes")

    def steps(self, n_batches):
        return max(f["batches"] for f in self.facts)

    def total(self, n):
        return self.rows

    def shuffle_seed(self, seed):
        return _stream_seed(self.seed, self.rank)

    def callbacks(self, callbacks, model, params):
        """Rank 0 runs the callbacks; the others keep a History of rank 0's logs."""
        built = {}

        def root():
            built["cbs"] = CallbackList(callbacks, model=model, params=params)

        self.g.round("fit: callbacks", root, root_only=True)
        return built["cbs"] if self.is_root else CallbackList((), model=model, params=params)

    def train_begin(self, cbs):
        m, g = self.model, self.g

        def root():
            cbs.on_train_begin()
            return {"seed": m.seed, "counters": m._net.counters, "epochs_seen": m._epochs_seen}

        if not self.is_root:
            cbs.on_train_begin()
        try:
            state = g.round("fit: starting", root, root_only=True)[0]
            m._push_optimizer(m._epochs_seen)  # the state of the optimizer compiled, as on rank 0
            g.bcast(m._params, "fit: rank 0's weights")
            g.bcast(m._state, "fit: rank 0's optimizer state")
            self.seed = state["seed"]
            m._net.counters = state["counters"]
            m._epochs_seen = state["epochs_seen"]
            m._net.set_seed(_stream_seed(self.seed, self.rank))
            self.exchange = self._exchange()
            m._net.set_grad_hook(self.exchange, self.exchange.worker is not None,
                                 self.exchange.reducer.update_buffers)
        except BaseException:
            self._close()
            raise
        if threading.current_thread() is threading.main_thread():
            self._sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame):
        self.g.interrupted = time.monotonic()

    def _exchange(self):
        """The step's hook over this model's gradient buffer and the ranks' placement."""
        m, g, cfg, mpi = self.model, self.g, self.cfg, self.g.mpi
        node = g.comm.Split_type(mpi.COMM_TYPE_SHARED)
        one_host = node.Get_size() == g.size
        node.Free()
        overlap = (not one_host) if cfg.overlap is None else cfg.overlap
        if overlap and mpi.Query_thread() < mpi.THREAD_SERIALIZED:
            overlap = False  # the exchange's thread may not call MPI
        shared = one_host if cfg.shared_memory is None else (cfg.shared_memory and one_host)
        reducer = (_SharedWindow if shared else _AllToAll)(g, m._grads, m._net)
        self.transport = "shared memory" if shared else "MPI all-to-all"
        self.overlap = overlap
        return _Exchange(g, reducer, m._grads, self._trainable_ranges(), overlap)

    def _trainable_ranges(self):
        """{layer index: (start, end)} of each trainable layer's parameters in the flat buffer."""
        m = self.model
        base, size = m._params.ctypes.data, m._params.itemsize
        out = {}
        for i, layer in enumerate(m.layers):
            arrays = [a for _, a in layer.parameters()]
            if layer.trainable and arrays:
                offs = [((a.ctypes.data - base) // size, (a.ctypes.data - base) // size + a.size) for a in arrays]
                out[i] = (min(o[0] for o in offs), max(o[1] for o in offs))
        return out

    # -- each epoch ---------------------------------------------------------------------------------

    def epoch_begin(self, epoch, cbs):
        m = self.model

        def root():
            cbs.on_epoch_begin(epoch)
            fresh = m.optimizer is not m._state_for
            m._push_optimizer(m._epochs_seen)  # schedules count the model's epochs, as in one process
            return {"desc": m.optimizer.describe(m._epochs_seen), "fresh": fresh, "counters": m._net.counters}

        res = self.g.round(f"fit: epoch {epoch + 1}", root, root_only=True)[0]
        if not self.is_root:
            desc = res["desc"]
            if res["fresh"] or _core.optim_n_state(desc) * m._params.size != m._state.size:
                m._state = zeros_on_lines(_core.optim_n_state(desc) * m._params.size, m.dtype)
            m._net.set_optim(desc, m._state)
            m._net.counters = res["counters"]
        return res["desc"]["lr"]

    def raise_step_error(self, rc, epoch, batch, n_batches):
        err = self.exchange.error if self.exchange is not None else None
        if err is None:
            return
        self.exchange.error = None
        if isinstance(err, _StepFailure):
            if err.kind == "interrupt":
                raise KeyboardInterrupt(f"training interrupted on rank {err.rank}")
            raise NonFiniteLossError(
                f"fit: the loss became NaN or Inf on rank {err.rank} at epoch {epoch + 1}, step {batch + 1} of "
                f"{n_batches}; every rank stopped before that step's update, so the weights are those of the "
                "last good step. A smaller learning rate, scaled inputs or gradient-friendlier activations "
                "usually help", epoch=epoch, batch=batch)
        raise err

    def epoch_logs(self, model, fd, losses, sizes):
        g, metrics = self.g, bool(model.metrics)

        def local():
            out = {"loss": float((losses * sizes).sum()), "rows": fd.train.n, "val": None}
            if fd.val is not None:
                self._val = fd.val.evaluate(model, metrics)
                out["val"] = (self._val[0] * self._val[1], self._val[1])
            return out

        parts = g.round("fit: the epoch's losses", local)
        logs = {"loss": sum(p["loss"] for p in parts) / sum(p["rows"] for p in parts)}
        if metrics:
            y_true, pred = fd.train.metric_data()
            y_all = g.gather_rows(y_true, "fit: the training predictions")
            p_all = g.gather_rows(pred, "fit: the training predictions")
            if self.is_root:
                model._add_metrics(logs, "", y_all, p_all)
        vals = [p["val"] for p in parts if p["val"] is not None]
        if vals:
            logs["val_loss"] = sum(v[0] for v in vals) / sum(v[1] for v in vals)
            if metrics:
                own = self._val if fd.val is not None else None
                y_all, p_all = self._gather_val(own, model)
                if self.is_root:
                    model._add_metrics(logs, "val_", y_all, p_all)
        return logs

    def _gather_val(self, own, model):
        """Every rank's validation targets and predictions on rank 0 (empty for a rank without any)."""
        if own is None:
            kind = self.facts[0]["labels"] is not None
            width = model._dims[-1]
            y = np.empty(0, np.int64) if kind else np.empty((0, width), model.dtype)
            pred = np.empty((0, width), model.dtype)
        else:
            _, _, y, pred = own
        return (self.g.gather_rows(y, "fit: the validation predictions"),
                self.g.gather_rows(pred, "fit: the validation predictions"))

    def epoch_end(self, epoch, logs, cbs):
        m = self.model

        def root():
            cbs.on_epoch_end(epoch, logs)
            return {"logs": logs, "stop": bool(m.stop_training)}

        # not interruptible: rank 0's History has the epoch already, so every rank records it first
        res = self.g.round(f"fit: the end of epoch {epoch + 1}", root, root_only=True, interruptible=False)[0]
        if not self.is_root:
            cbs.on_epoch_end(epoch, res["logs"])
            m.stop_training = res["stop"]

    # -- after training -------------------------------------------------------------------------------

    def train_end(self, cbs):
        """Rank 0's callbacks end (EarlyStopping may restore weights), then every rank takes rank 0's
        weights; a rank that lost the others runs only its own end."""
        m, g = self.model, self.g
        try:
            if g.broken is None:
                if not self.is_root:
                    cbs.on_train_end()
                g.round("fit: ending", cbs.on_train_end, root_only=True, interruptible=False)
                g.bcast(m._params, "fit: rank 0's final weights")
                if g.interrupted is not None:  # Ctrl-C after the last step: training is over everywhere
                    raise KeyboardInterrupt(f"training interrupted on rank {self.rank}")
            elif self.is_root:
                cbs.on_train_end()
        finally:
            self._close()

    def _close(self):
        m = self.model
        if self._sigint is not None:
            signal.signal(signal.SIGINT, self._sigint)
            self._sigint = None
        m._net.set_grad_hook(None)
        m._net.set_seed(m.seed)
        if self.exchange is not None:
            self.cfg.stats = {"steps": self.exchange.step, "exchange_seconds": self.exchange.seconds,
                              "transport": self.transport, "overlap": self.overlap}
            self.exchange.close()
            self.exchange = None
        self.g.free()
