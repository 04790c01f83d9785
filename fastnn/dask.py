"""Dask: training from Dask arrays, and prediction over a Dask array or DataFrame.

`model.fit(X, y)` with Dask arrays (fastnn/models.py hands them here): the blocks of rows are computed
in order, `shuffle_window` blocks at a time, the next window in a background thread while the C engine
trains on the current one (it releases the GIL), so the data is never held all at once.  The rows of a
window (with the few rows of a partial batch carried over from the window before) are shuffled among
themselves, not across the array; without shuffling, the batches are exactly those fit takes from the
same rows in memory, and so are the trained weights.  Each block is checked as fit checks an array
(dtype, NaN/Inf, label range), its error naming the block.  validation_data may be Dask arrays too
(evaluated block by block), and with fit(distributed=...) each process passes the blocks of its own
shard (X.blocks[rank::size], say).

`predict(model, X)`: a lazy Dask array of the model's predictions (a Dask DataFrame for a DataFrame),
one task per block.  When a dask.distributed Client is active, the model is scattered to every worker
once, instead of travelling inside every task, and each worker process runs fastnn with as many
threads as it has task threads (one predict at a time per model and process, so processes x threads
stays within the cores the cluster was given); a worker lost mid-way has its blocks recomputed by Dask
on another worker, which holds the model too.

Needs dask (pip install "fastnn[dask]"; distributed for a cluster); `import fastnn` does not import it.
"""
import concurrent.futures

import numpy as np

from . import _core
from ._errors import NotFittedError

__all__ = ["predict"]


def _dask_array():
    try:
        import dask.array as da
    except ImportError:
        raise ImportError('fastnn.dask needs dask: pip install "fastnn[dask]"') from None
    return da


# ---- predict ------------------------------------------------------------------------------------------

_threads_set = False


def _use_worker_threads():
    """On a dask.distributed worker: fastnn's threads = the worker's task threads, once per process."""
    global _threads_set
    if _threads_set:
        return
    try:
        from distributed import get_worker
        n = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return  # not on a distributed worker: the threads are the process's own business
    _core.set_num_threads(max(1, int(n)))
    _threads_set = True


def _predict_block(block, model):
    _use_worker_threads()
    return model.predict(block)


def _predict_frame(frame, model, columns):
    import pandas as pd
    _use_worker_threads()
    out = model.predict(frame.to_numpy(dtype=model.dtype)) if len(frame) else \
        np.empty((0, len(columns)), dtype=model.dtype)
    return pd.DataFrame(out, index=frame.index, columns=columns)


def _client():
    try:
        from distributed import get_client
        return get_client()
    except (ImportError, ValueError):
        return None


def predict(model, X):
    """The model's predictions for the Dask array X (rows x features) as a lazy Dask array (rows x
    outputs, X's row chunks), or for a Dask DataFrame (its columns the features, in order) as a Dask
    DataFrame with columns 0..outputs-1 and X's index.  Probabilities for the cross-entropies, as
    Sequential.predict.  The model is scattered to the workers once when a dask.distributed Client is
    active (embedded once in the graph otherwise); the model must be built."""
    da = _dask_array()
    if not getattr(model, "built", False):
        raise NotFittedError("predict: the model is not built yet; give input_dim or fit it first")
    frame = hasattr(X, "map_partitions") and hasattr(X, "columns")
    if not frame and not isinstance(X, da.Array):
        raise TypeError(f"X: expected a Dask array or DataFrame, got {type(X).__name__} (for NumPy arrays "
                        "use model.predict)")
    width = len(X.columns) if frame else (X.shape[1] if X.ndim == 2 else None)
    if width != model.input_dim:
        raise ValueError(f"X: expected {model.input_dim} features (columns), got "
                         f"{width if width is not None else f'{X.ndim}-D data'}")
    client = _client()
    if client is not None:
        ref = client.scatter(model, broadcast=True, hash=False)
    else:
        import dask
        ref = dask.delayed(model, pure=True)
    k = model.n_outputs
    if frame:
        import pandas as pd
        columns = list(range(k))
        meta = pd.DataFrame({c: np.empty(0, dtype=model.dtype) for c in columns})
        return X.map_partitions(_predict_frame, ref, columns, meta=meta)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X.map_blocks(_predict_block, ref, dtype=model.dtype, chunks=(X.chunks[0], (k,)),
                        meta=np.empty((0, k), dtype=model.dtype))


# ---- fit's sources of rows ------------------------------------------------------------------------------

def _as_dask(a, name, like=None):
    """`a` as a Dask array (a NumPy array or a Dask DataFrame/Series converted), with `like`'s row chunks."""
    da = _dask_array()
    if hasattr(a, "to_dask_array"):
        a = a.to_dask_array(lengths=True)
    if not isinstance(a, da.Array):
        a = np.asarray(a)
        a = da.from_array(a, chunks=(like.chunks[0],) + a.shape[1:] if like is not None else "auto")
    if any(isinstance(c, float) and c != c for c in a.chunks[0]):
        raise ValueError(f"{name}: a Dask array whose block sizes are unknown; call {name}.compute_chunk_sizes()")
    if a.ndim < 1 or a.ndim > 2:
        raise ValueError(f"{name}: expected a 1-D or 2-D array, got shape {a.shape}")
    if like is not None:
        if a.shape[0] != like.shape[0]:
            raise ValueError(f"{name}: has {a.shape[0]} rows but X has {like.shape[0]}")
        if a.chunks[0] != like.chunks[0] or (a.ndim == 2 and len(a.chunks[1]) > 1):
            a = a.rechunk({0: like.chunks[0], 1: -1} if a.ndim == 2 else {0: like.chunks[0]})
    elif a.ndim == 2 and len(a.chunks[1]) > 1:
        a = a.rechunk({1: -1})
    return a


def fit_sources(model, X, y, batch_size, shuffle, validation_split, validation_data, sample_weight, class_weight,
                shuffle_window):
    """(train, val, batch) for Sequential.fit when its data are Dask arrays (see the module docstring)."""
    X = _as_dask(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D array, got shape {X.shape}")
    model._check_width(X.shape, "X")
    y = _as_dask(y, "y", X)
    w = None if sample_weight is None else _as_dask(sample_weight, "sample_weight", X)
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data: expected (X_val, y_val) or (X_val, y_val, sample_weight)")
        if any(type(a).__module__.partition(".")[0] == "dask" for a in validation_data):
            Xv = _as_dask(validation_data[0], "validation_data X")
            yv = _as_dask(validation_data[1], "validation_data y", Xv)
            wv = None
            if len(validation_data) == 3 and validation_data[2] is not None:
                wv = _as_dask(validation_data[2], "validation_data sample_weight", Xv)
            val = _Blocks(model, Xv, yv, wv, None, "validation_data ")
        else:
            val = model._validation_rows(validation_data)
    elif validation_split > 0:
        n_all = X.shape[0]
        split = int(np.floor(n_all * (1.0 - validation_split)))
        if split < 1 or split >= n_all:
            raise ValueError(f"validation_split: {validation_split} of {n_all} rows leaves an empty training or "
                             "validation set")
        cut = lambda a: (None, None) if a is None else (a[:split], a[split:])
        (X, Xv), (y, yv), (w, wv) = cut(X), cut(y), cut(w)
        val = _Blocks(model, Xv, yv, wv, class_weight, "")  # weighted as in memory: the rows' own weights
    batch = min(batch_size, X.shape[0])
    train = _Blocks(model, X, y, w, class_weight, "", batch=batch, shuffle=shuffle, window=shuffle_window,
                    metrics=bool(model.metrics))
    model._reserve(batch, "batch_size")
    if val is not None:  # as fit does for rows in memory, over the largest block
        rows = val.max_block_rows if isinstance(val, _Blocks) else val.n
        val.batch = model._validation_batch(batch, rows)
    return train, val, batch


class _Window:
    """One window of a Dask source: the rows fit's C chunks train on."""
    __slots__ = ("x", "labels", "target", "w", "perm", "count", "pred", "done")


class _Blocks:
    """Rows in the blocks of Dask arrays: trained on window by window, or evaluated block by block.
    Each block is computed (the next ones in a background thread) and checked as fit checks arrays."""

    def __init__(self, model, X, y, w, class_weight, prefix, *, batch=None, shuffle=False, window=1,
                 metrics=False):
        self.model, self.X, self.y, self.w, self.class_weight = model, X, y, w, class_weight
        self.prefix = prefix
        self.n = X.shape[0]
        self.batch, self.shuffle, self.window, self.metrics = batch, shuffle, window, metrics
        self.sizes = [int(c) for c in X.chunks[0]]
        self.max_block_rows = max(self.sizes)
        self.n_batches = -(-self.n // batch) if batch else 0
        self._metric = None

    # -- blocks -----------------------------------------------------------------------------------

    def _groups(self, per):
        """Lists of block indices: `per` consecutive blocks each."""
        nb = len(self.sizes)
        return [list(range(i, min(i + per, nb))) for i in range(0, nb, per)]

    def _compute(self, blocks):
        """The blocks' rows, computed by Dask and checked: a list of (x, labels, target, w)."""
        import dask
        arrays = [a for a in (self.X, self.y, self.w) if a is not None]
        parts = dask.compute(*[a.blocks[i] for i in blocks for a in arrays])
        m, out, k = self.model, [], len(arrays)
        for j, i in enumerate(blocks):
            x, yb = parts[j * k], parts[j * k + 1]
            name = f"{self.prefix}X (block {i})"
            x = m._prepare_x(x, name)
            labels, target = m._prepare_y(yb, x.shape[0], f"{self.prefix}y (block {i})")
            sw = parts[j * k + 2] if self.w is not None else None
            wb = m._sample_weights(sw, self.class_weight, labels, target, x.shape[0])
            out.append((x, labels, target, wb))
        return out

    def _prefetched(self, groups):
        """The computed groups in order, the next one computed in a background thread meanwhile."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastnn-dask") as pool:
            nxt = pool.submit(self._compute, groups[0]) if groups else None
            for i in range(len(groups)):
                cur = nxt.result()
                nxt = pool.submit(self._compute, groups[i + 1]) if i + 1 < len(groups) else None
                try:
                    yield cur
                except GeneratorExit:
                    if nxt is not None:
                        nxt.cancel()
                    raise

    # -- training -----------------------------------------------------------------------------------

    def batch_sizes(self):
        sizes = np.full(self.n_batches, self.batch, dtype=np.float64)
        sizes[-1] = self.n - (self.n_batches - 1) * self.batch
        return sizes

    def label_set(self):
        """The sorted class labels present (computed over y), or None when y holds targets."""
        m = self.model
        c = m._dims[-1]
        if m.loss != "cross_entropy" or not (self.y.ndim == 1 or (self.y.shape[1] == 1 and c > 1)):
            return None
        da = _dask_array()
        return np.unique(da.unique(self.y).compute()).astype(np.int64).tolist()

    def _buffers(self):
        """The window's buffers, sized once: the largest window plus a partial batch carried over."""
        m = self.model
        cap = max(sum(self.sizes[i] for i in g) for g in self._groups(self.window)) + self.batch
        no = m._dims[-1]
        b = {"x": np.empty((cap, m.input_dim), dtype=m.dtype), "perm": np.empty(cap, dtype=np.int64)}
        labels = m.loss == "cross_entropy" and (self.y.ndim == 1 or (self.y.shape[1] == 1 and no > 1))
        b["labels"] = np.empty(cap, dtype=np.int64) if labels else None
        b["target"] = None if labels else np.empty((cap, no), dtype=m.dtype)
        b["w"] = np.empty(cap, dtype=m.dtype) if self.w is not None or self.class_weight is not None else None
        b["pred"] = np.empty((cap, no), dtype=m.dtype) if self.metrics else None
        return b

    def windows(self, seed, epoch):
        """Each window in turn (a _Window the caller trains on, then calls done()).  Batches never cross
        a window: the rows of a last, partial batch move to the front of the next window."""
        if not hasattr(self, "_buf"):
            self._buf = self._buffers()
        buf, B = self._buf, self.batch
        keys = ("x", "labels", "target", "w")
        carry = 0
        self._metric = ([], [])
        groups = self._groups(self.window)
        for gi, blocks in enumerate(self._prefetched(groups)):
            rows = carry
            for part in blocks:
                r = part[0].shape[0]
                for key, a in zip(keys, part):
                    if a is not None:
                        buf[key][rows:rows + r] = a
                rows += r
            last = gi == len(groups) - 1
            count = -(-rows // B) if last else rows // B
            win = _Window()
            win.x, win.labels, win.target, win.w = (None if buf[k] is None else buf[k][:rows] for k in keys)
            win.perm = None
            if self.shuffle:  # the rows carried over first (their batch), then the window's own shuffled
                win.perm = buf["perm"][:rows]
                win.perm[:carry] = np.arange(carry)
                _core.permutation(_window_seed(seed, gi), epoch, win.perm[carry:])
                win.perm[carry:] += carry
            win.count = count
            win.pred = None if buf["pred"] is None else buf["pred"][:rows]
            done = min(count * B, rows)
            win.done = lambda win=win, done=done: self._collect(win, done)
            yield win
            carry = rows - done
            if carry:
                src = win.perm[done:rows] if win.perm is not None else np.arange(done, rows)
                for key in keys:
                    if buf[key] is not None:
                        buf[key][:carry] = buf[key][src]

    def _collect(self, win, done):
        """Keep the targets and predictions of the window's trained rows for the epoch's metrics."""
        if win.pred is None or done == 0:
            return
        rows = win.perm[:done] if win.perm is not None else slice(0, done)
        y = win.labels if win.labels is not None else win.target
        self._metric[0].append(y[rows].copy())
        self._metric[1].append(win.pred[rows].copy())

    def metric_data(self):
        if not self.metrics or not self._metric or not self._metric[0]:
            return None, None
        return np.concatenate(self._metric[0]), np.concatenate(self._metric[1])

    # -- evaluation ---------------------------------------------------------------------------------

    def evaluate(self, model, metrics):
        """(mean loss + penalties, rows, y_true, predictions or None), block by block, dropout off."""
        losses, ys, preds = [], [], []
        for blocks in self._prefetched(self._groups(1)):
            for x, labels, target, w in blocks:
                pred = np.empty((x.shape[0], model._dims[-1]), dtype=model.dtype) if metrics else None
                losses.append(_core.net_evaluate(model._net, x, labels, target, w, self.batch, pred))
                if metrics:
                    ys.append(labels if labels is not None else target)
                    preds.append(pred)
        # each block's mean (the penalty included) weighted by its rows: the mean over all rows
        loss = losses[0] if len(losses) == 1 else float(np.dot(losses, self.sizes) / self.n)
        if not metrics:
            return loss, self.n, None, None
        return loss, self.n, np.concatenate(ys), np.concatenate(preds)


def _window_seed(seed, window):
    """The shuffle stream of window `window`: the seed itself for the first one."""
    if window == 0:
        return seed
    lo, hi = np.random.SeedSequence([seed, window, 0x5EED]).generate_state(2, np.uint32)
    return int(lo) | int(hi) << 32

