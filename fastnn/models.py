"""Sequential models: the user-facing training loop over the C engine (csrc/net.c).

The model owns three flat arrays in its dtype: the parameters (every Dense layer's `weight` and
`bias` are views of it), their gradients (`weight_grad`, `bias_grad`), and the optimizer state.  The
C plan (`fastnn._core.Net`) points into them and owns only its workspace.  A training step, or a
chunk of an epoch's batches with the shuffle and the gathering of rows, is one C call with the GIL
released; Python runs once per chunk (about 0.15 s of work) for the progress bar, Ctrl-C and the
callbacks, and once per epoch for the metrics.

X may be dense (any array-like) or a scipy.sparse matrix or array of any format, converted once to CSR
(`_CSR`: int64 indptr and indices, values in the model's dtype, every index checked); the engine
densifies a batch of rows at a time into its workspace, never the whole matrix.

Threads: the calls that change a model (fit, train_on_batch, compute_gradients, compile, build,
set_weights, load_weights, freeze, unfreeze, setting seed, save(include_optimizer=True), and a
layer's trainable and parameters) claim it for their thread; while one thread holds it, the same
calls from any other thread raise FastNNError (the holder's own thread, a callback inside fit say,
may make them).  predict and evaluate take turns with
the training steps on the C plan's lock, and get_weights and save copy the parameters under that
lock, so from another thread they see the weights between two steps.
"""
import functools
import math
import sys
import threading
import time

import numpy as np

from . import _core, _format
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import schedules as _schedules
from . import weights as _weights
from ._errors import FastNNError, NonFiniteLossError, NotCompiledError, NotFittedError
from ._validate import all_finite, check_memory, integer, probabilities, real_array, real_number, replacement
from .callbacks import CallbackList
from .layers import Layer

__all__ = ["Sequential"]

LOSSES = tuple(_core.LOSSES)
TRAINING_PRECISIONS = ("float32", "bfloat16")
_CHUNK_SECONDS = 0.15   # target duration of one C call of fit
_PREDICT_BATCH = 1024   # rows per forward pass in predict/evaluate (when the training batch is smaller)
_SPARSE_BLOCK = 1 << 22  # values of sparse rows compute_gradients densifies at once (16 MiB of float32)


def zeros_on_lines(n, dtype):
    """n zeros of dtype starting on a 64-byte cache line (NumPy's own arrays start 16 bytes past one):
    the buffers the C net works in (parameters, gradients, optimizer state).  The GEMM reads a weight
    matrix in place only when its rows start on lines, and a product's tiles store whole lines."""
    dtype = np.dtype(dtype)
    buf = np.zeros(n + 64 // dtype.itemsize, dtype)
    start = (-buf.ctypes.data % 64) // dtype.itemsize
    return buf[start:start + n]


class _CSR(tuple):
    """Sparse rows as the engine takes them, (indptr, indices, values), with the matrix's `shape`."""

    ndim = 2

    def __new__(cls, indptr, indices, values, n_cols):
        self = super().__new__(cls, (indptr, indices, values))
        self.shape = (indptr.shape[0] - 1, n_cols)
        return self

    def rows(self, lo, hi):
        """Rows [lo, hi) as CSR of their own."""
        indptr, indices, values = self
        a, b = int(indptr[lo]), int(indptr[hi])
        return _CSR(np.ascontiguousarray(indptr[lo:hi + 1] - a), indices[a:b], values[a:b], self.shape[1])


def _is_sparse(x):
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "tocsr")


def _sparse_rows(x, name, dtype):
    """A scipy.sparse matrix or array (CSR, CSC, COO, ...) as _CSR of `dtype`: converted to CSR once
    (duplicates are summed, as scipy sums them), indptr and indices checked, NaN/Inf refused."""
    try:
        csr = x.tocsr()
        n, d = csr.shape
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{name}: cannot be read as a sparse matrix ({e})") from None
    data = np.asarray(csr.data)
    if data.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a numeric sparse matrix, got dtype {data.dtype}")
    indptr = np.ascontiguousarray(csr.indptr, dtype=np.int64).reshape(-1)
    indices = np.ascontiguousarray(csr.indices, dtype=np.int64).reshape(-1)
    if indptr.shape[0] != n + 1:
        raise ValueError(f"{name}: indptr has {indptr.shape[0]} entries for {n} rows (expected {n + 1})")
    if indptr[0] != 0 or (n and np.any(indptr[1:] < indptr[:-1])):
        raise ValueError(f"{name}: indptr must start at 0 and never decrease")
    nnz = int(indptr[-1])
    if nnz > indices.shape[0] or nnz > data.shape[0]:
        raise ValueError(f"{name}: indptr counts {nnz} stored values but indices and data hold "
                         f"{indices.shape[0]} and {data.shape[0]}")
    indices = indices[:nnz]
    if nnz and (indices.min() < 0 or indices.max() >= d):
        raise ValueError(f"{name}: column indices must lie in [0, {d}), got values from {indices.min()} to "
                         f"{indices.max()}")
    values = np.ascontiguousarray(data[:nnz], dtype=dtype)
    if not all_finite(values):
        raise ValueError(f"{name}: contains NaN or Inf")
    return _CSR(indptr, indices, values, d)


def _take_rows(x, lo, hi):
    """Rows [lo, hi) of dense or _CSR rows (None stays None)."""
    if x is None:
        return None
    return x.rows(lo, hi) if isinstance(x, _CSR) else x[lo:hi]


def _c_array(x, dtype):
    """x as a C-contiguous, aligned array of dtype: a copy only when it is not one (a buffer received
    from another process, such as a Dask block, may start at any byte)."""
    return np.require(x, dtype=dtype, requirements=("C_CONTIGUOUS", "ALIGNED"))


def _as_dtype(x, name, dtype, ndim):
    """`x` as a C-contiguous array of `dtype` (one conversion at most), checked for NaN/Inf."""
    x = real_array(x, name, "fiub", "a numeric array")
    if x.ndim not in ((ndim,) if isinstance(ndim, int) else ndim):
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
    x = _c_array(x, dtype)
    if not all_finite(x):
        raise ValueError(f"{name}: contains NaN or Inf")
    return x


def _exclusive(what):
    """Method decorator: the call claims the model for its thread (Sequential._claim)."""
    def wrap(fn):
        @functools.wraps(fn)
        def method(self, *args, **kwargs):
            self._claim(what)
            try:
                return fn(self, *args, **kwargs)
            finally:
                self._release()
        return method
    return wrap


def _mean_loss(losses, sizes):
    """Mean of per-batch losses weighted by batch rows.  Elementwise on purpose: a BLAS dot product here
    would wake NumPy's BLAS threads, whose spinning then competes with the engine's OpenMP threads."""
    return float((losses * sizes).sum() / sizes.sum())


class _LayerList(list):
    """Sequential.layers: a list that refuses changes once the model is built (the engine's plan,
    the weights and what `save` writes follow the layers)."""

    _frozen = False

    def _refuse(self, *args, **kwargs):
        if self._frozen:
            raise AttributeError("layers cannot change once the model is built (the engine and the weights were "
                                 "laid out for them); build a new Sequential to change them")

    def _guarded(name):
        def method(self, *args, **kwargs):
            self._refuse()
            return getattr(list, name)(self, *args, **kwargs)
        method.__name__ = name
        return method

    for _name in ("append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse", "__setitem__",
                  "__delitem__", "__iadd__", "__imul__"):
        locals()[_name] = _guarded(_name)
    del _name, _guarded

    def __reduce__(self):
        return (list, (list(self),))


# Attributes of a Sequential fixed once it is built, as a built layer's structure is.
_STRUCTURE = ("input_dim", "dtype", "layers")


class Sequential:
    """A stack of layers trained by the C engine; see the module docstring and API.md."""

    def __setattr__(self, name, value):
        if name in _STRUCTURE and self.__dict__.get("_net") is not None:
            was = "its layers" if name == "layers" else f"{name}={getattr(self, name)!r}"
            raise AttributeError(f"{name} cannot change once the model is built (the engine and the weights were "
                                 f"laid out for {was}); build a new Sequential to change it")
        super().__setattr__(name, value)

    def __init__(self, layers=(), *, input_dim=None, dtype="float32", seed=None):
        if isinstance(layers, Layer):
            layers = [layers]
        try:
            layers = list(layers)
        except TypeError:
            raise TypeError(f"layers: expected a list of fastnn layers, got {type(layers).__name__}") from None
        self.layers = _LayerList()
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from None
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype}")
        self.dtype = dtype
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**63))
        self._net = None
        self.seed = seed
        self.input_dim = None
        self.stop_training = False
        self.optimizer = None
        self.loss = None
        self.huber_delta = 1.0
        self.metrics = []
        self.training_precision = "float32"  # compile(precision=): the arithmetic of training steps
        self._params = self._grads = self._state = None
        self._state_for = None  # the optimizer object the state belongs to
        self._epochs_seen = 0
        self.history = None  # the History of the last (or current) fit, kept when fit is interrupted
        self.metadata = {}   # str -> str written into the model file beside the architecture
        self._owner_lock = threading.Lock()
        self._owner = None   # (thread id, what it runs, depth) while a call changes the model
        for layer in layers:
            self.add(layer)
        if input_dim is not None:
            self.build(input_dim)

    @property
    def seed(self):
        """The seed of the initial weights (drawn when the model is built), the epoch shuffles and the
        dropout masks.  Settable: a new seed keys the shuffles and masks from the next step on, so a
        loaded model trains with the bits of any other run given the same seed (the C API's
        fnn_model_fit included)."""
        return self._seed

    @seed.setter
    def seed(self, value):
        seed = integer(value, "seed", low=0)
        if seed >= 2**64:
            raise ValueError(f"seed: must be below 2**64, got {value}")
        if self._net is None:
            self._seed = seed
            return
        self._claim("seed")
        try:
            self._seed = seed
            self._net.set_seed(seed)
        finally:
            self._release()

    # ---- threads --------------------------------------------------------------------------------

    def _claim(self, what):
        """Hold the model for this thread's `what` (re-entrant); FastNNError if another thread holds it."""
        me = threading.get_ident()
        with self._owner_lock:
            owner = self._owner
            if owner is not None and owner[0] != me:
                raise FastNNError(f"{what}: the model is busy in another thread ({owner[1]}); a model that is "
                                  "training or being changed refuses changes from other threads (predict and "
                                  "evaluate may run meanwhile)")
            self._owner = (me, what, 1) if owner is None else (me, owner[1], owner[2] + 1)

    def _release(self):
        with self._owner_lock:
            me, what, depth = self._owner
            self._owner = None if depth == 1 else (me, what, depth - 1)

    # ---- structure ------------------------------------------------------------------------------

    @_exclusive("add")
    def add(self, layer):
        """Append a layer (before the model is built)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"layers[{len(self.layers)}]: expected a fastnn layer, got {type(layer).__name__}")
        if self.built:
            raise ValueError("add: the model is already built; create a new Sequential instead")
        layer._attach(self)
        if layer.name is None:
            taken = {l.name for l in self.layers}
            base, k = layer.kind, 0
            while (f"{base}_{k}" if k else base) in taken:
                k += 1
            layer.name = f"{base}_{k}" if k else base
        self.layers.append(layer)

    @property
    def built(self):
        return self._net is not None

    @property
    def precision(self):
        """"int8" or "bfloat16" for a quantized model (fastnn.quantize), else the dtype: "float32" or
        "float64".  (The arithmetic of training steps is `training_precision`, set by compile.)"""
        for layer in self.layers:
            if getattr(layer, "precision", None):
                return layer.precision
        return str(self.dtype)

    @property
    def quantized(self):
        return self.precision in ("int8", "bfloat16")

    def _require_trainable(self, what):
        if self.quantized:
            raise FastNNError(f"{what}: the model is quantized ({self.precision}): it predicts and evaluates but "
                              "does not train; fastnn.dequantize(model) gives a float32 model to train")

    def _lowp_weights_set(self):
        """The quantized weights are in place: pack them for the engine and make their views read-only."""
        self._net.repack()
        for layer in self.layers:
            if getattr(layer, "precision", None):
                for _, a in layer.parameters():
                    a.flags.writeable = False

    @property
    def n_outputs(self):
        self._require_built("n_outputs")
        return self._dims[-1]

    @_exclusive("build")
    def build(self, input_dim, *, initialize=True):
        """Allocate and initialise the parameters for `input_dim` input features.  initialize=False
        leaves them zero, for a caller that copies weights in next (an imported model)."""
        input_dim = integer(input_dim, "input_dim", low=1)
        if self.built:
            if input_dim != self.input_dim:
                raise ValueError(f"X: the model takes {self.input_dim} features, got {input_dim}")
            return
        if not self.layers:
            raise ValueError("layers: the model has no layer")
        dims, offsets, off = [input_dim], [], 0
        for layer in self.layers:
            offsets.append(off)
            off += layer.n_slots(dims[-1])  # int8 weights take a quarter
            dims.append(layer.output_dim(dims[-1]))
        self._check_param_memory(dims, off)  # before any size reaches C
        descs = [layer.descriptor(dims[i], offsets[i]) for i, layer in enumerate(self.layers)]
        params = zeros_on_lines(off, self.dtype)
        grads = zeros_on_lines(off, self.dtype)
        for i, layer in enumerate(self.layers):
            layer._bind(params, grads, offsets[i], dims[i])
            if initialize:
                layer.init_weights(np.random.default_rng([self.seed, i]))
        self.input_dim = input_dim
        if not isinstance(self.layers, _LayerList):  # a plain list assigned to `layers` before the build
            self.layers = _LayerList(self.layers)
        self._net = _core.Net(descs, input_dim, params, grads, self.seed)
        self._params, self._grads, self._dims = params, grads, dims
        self.layers._frozen = True
        if self.loss is not None:
            self._configure()

    def _check_param_memory(self, dims, n_params):
        """MemoryError naming the layer with the largest parameter array when the parameters, their
        gradients and the float64 draw that initialises that array cannot fit in the memory available."""
        arrays = [(math.prod(shape), i) for i, layer in enumerate(self.layers)
                  for _, shape in layer.param_shapes(dims[i])]
        if not arrays:
            return
        largest, i = max(arrays)
        layer, fan_in = self.layers[i], dims[i]
        arg, culprit = layer.memory_culprit(fan_in)
        if fan_in == dims[0] and fan_in > dims[i + 1]:
            arg = "input_dim"
        check_memory(2 * n_params * self.dtype.itemsize + 8 * largest,
                     f"{arg}: {culprit} ({n_params:,} {self.dtype} parameters in the model, as many gradients)")

    def _reserve(self, batch, what):
        """Grow the workspace to `batch` rows, refusing a size the memory cannot hold."""
        if batch > self._net.workspace[0]:
            check_memory(self._net.workspace_bytes(batch), f"{what}: the workspace for batches of {batch:,} rows")
        self._net.reserve(batch)

    def _inference_batch(self, batch_size, rows):
        """Rows per forward pass in predict/evaluate, with the workspace reserved for them.  The default
        (_PREDICT_BATCH) shrinks for a model too wide for it to fit in memory; a batch_size given is
        kept or refused."""
        if batch_size is not None:
            batch = min(batch_size, rows)
            self._reserve(batch, "batch_size")
            return batch
        batch = min(_PREDICT_BATCH, rows)
        while batch > 1 and batch > self._net.workspace[0]:
            try:
                check_memory(self._net.workspace_bytes(batch), "")
                break
            except MemoryError:
                batch //= 2
        self._reserve(batch, "X")
        return batch

    def _require_built(self, what):
        if not self.built:
            raise NotFittedError(f"{what}: the model is not built yet; give input_dim or call fit first")

    def _apply_trainable(self, layer):
        if self.built and layer.parameters():
            self._net.set_trainable(self.layers.index(layer), layer.trainable)

    @_exclusive("freeze")
    def freeze(self, up_to=None):
        """Freeze layers [0, up_to) (all when None; negative counts from the end, as in a slice):
        `freeze(-1)` trains only the last layer, `freeze(-2)` the last two, `unfreeze()` all."""
        if up_to is not None:
            up_to = integer(up_to, "up_to")
        for layer in self.layers[:up_to]:
            layer.trainable = False

    @_exclusive("unfreeze")
    def unfreeze(self):
        for layer in self.layers:
            layer.trainable = True

    def count_params(self):
        """Number of parameters (trainable or not)."""
        self._require_built("count_params")
        return int(sum(a.size for a in self._param_arrays()))

    def summary(self):
        """A table of the layers, their output widths and parameter counts."""
        rows = [("Layer", "Type", "Output", "Params", "Trainable")]
        dims = self._dims if self.built else [None] * (len(self.layers) + 1)
        total = trainable = 0
        for i, layer in enumerate(self.layers):
            n = layer.n_params(dims[i]) if dims[i] is not None else None
            rows.append((layer.name, layer.summary_label(), "?" if dims[i + 1] is None else f"(None, {dims[i + 1]})",
                         "?" if n is None else str(n), "yes" if layer.trainable else "no"))
            total += n or 0
            trainable += (n or 0) if layer.trainable else 0
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        line = "  ".join("{:<%d}" % w for w in widths)
        kind = f"precision {self.precision}" if self.quantized else f"dtype {self.dtype}"
        out = [f"Sequential ({kind}, input_dim {self.input_dim})", line.format(*rows[0]),
               "-" * (sum(widths) + 8)]
        out += [line.format(*r) for r in rows[1:]]
        out.append(f"Total params: {total:,}  trainable: {trainable:,}  frozen: {total - trainable:,}")
        return "\n".join(out)

    # ---- weights ----------------------------------------------------------------------------------

    def _param_arrays(self):
        return [a for layer in self.layers for _, a in layer.parameters()]

    def _named_parameters(self):
        """[(file name, view)] of every parameter array: `layers.<i>.<name>` in layer order."""
        return [(f"layers.{i}.{name}", a) for i, layer in enumerate(self.layers) for name, a in layer.parameters()]

    def _param_copies(self):
        """[(file name, array)]: copies of every parameter array, taken between two training steps."""
        flat = self._net.copy_params()
        base, size = self._params.__array_interface__["data"][0], self._params.itemsize
        out = []
        for name, a in self._named_parameters():
            start = (a.__array_interface__["data"][0] - base) // size
            if a.dtype == flat.dtype:
                out.append((name, flat[start:start + a.size].reshape(a.shape)))
            else:  # int8 weights, four to a value of the buffer (fastnn/layers.py)
                n = -(-a.size * a.itemsize // size)
                out.append((name, flat[start:start + n].view(a.dtype)[:a.size].reshape(a.shape)))
        return out

    def get_weights(self):
        """Copies of every parameter array (each Dense layer's weight and bias), in layer order."""
        self._require_built("get_weights")
        return [a for _, a in self._param_copies()]

    @_exclusive("set_weights")
    def set_weights(self, weights):
        """Copy `weights` (the layout of get_weights) into the parameters."""
        self._require_built("set_weights")
        if self.quantized:
            raise FastNNError(f"set_weights: the model is quantized ({self.precision}): its weights are fixed; "
                              "fastnn.dequantize(model) gives a float32 model to change")
        arrays = self._param_arrays()
        try:
            weights = list(weights)
        except TypeError:
            raise TypeError(f"weights: expected a list of arrays, got {type(weights).__name__}") from None
        if len(weights) != len(arrays):
            raise ValueError(f"weights: expected {len(arrays)} arrays, got {len(weights)}")
        checked = []
        for i, (dst, w) in enumerate(zip(arrays, weights)):
            checked.append(replacement(w, dst.shape, f"weights[{i}]", "a numeric array", dtype=dst.dtype))
        for dst, w in zip(arrays, checked):
            np.copyto(dst, w)

    # ---- files (docs/FORMAT.md; fastnn.load and fastnn/saving.py read them back) ---------------------

    def spec(self):
        """The architecture a model file stores for this model (built), as a dict."""
        self._require_built("spec")
        arch = {"input_dim": self.input_dim, "dtype": str(self.dtype), "loss": self.loss, "link": self._net.link,
                "layers": [layer.spec() for layer in self.layers]}
        if self.loss == "huber":
            arch["huber_delta"] = self.huber_delta
        return arch

    def _file_bytes(self, extra_metadata=None, include_optimizer=False):
        """The model file's bytes; its metadata: `self.metadata` updated with `extra_metadata`, and with
        include_optimizer the training state."""
        self._require_built("save")
        meta = _format.check_extra_metadata(self.metadata, "metadata")
        meta.update(_format.check_extra_metadata(extra_metadata))
        if not include_optimizer:
            return _format.encode(self.spec(), self._file_tensors(self._param_copies()), extra_metadata=meta)
        if self.quantized:
            raise FastNNError(f"save: include_optimizer: the model is quantized ({self.precision}) and has no "
                              "training state")
        self._claim("save(include_optimizer=True)")  # it lays the optimizer state out in the engine
        try:
            training, state = self._training_state()
            return _format.encode(self.spec(), self._param_copies() + state, extra_metadata=meta,
                                  training=training)
        finally:
            self._release()

    def _file_tensors(self, tensors):
        """[(file name, array, safetensors dtype or None)]: `tensors` ((file name, array) pairs) with the
        dtype a model file stores each in when it is not the array's own (bfloat16 weights)."""
        dtypes = {f"layers.{i}.{name}": dt for i, layer in enumerate(self.layers)
                  for name, dt in layer.param_file_dtypes().items()}
        return [(name, a, dtypes.get(name)) for name, a in tensors]

    def save(self, path, *, extra_metadata=None, include_optimizer=False):
        """Write the model file (safetensors with the architecture in its metadata) atomically;
        `fastnn.load(path)` gives back a model with bitwise-equal predictions.  The file's metadata
        also holds `model.metadata` (the extra metadata of the file the model was loaded from, if
        any) updated with `extra_metadata`, a dict of str -> str whose keys are not the format's own
        (format, fastnn_schema, fastnn_version, architecture, training); the loaded model's `metadata`
        is that.

        include_optimizer=True also stores the optimizer (its settings, its schedule, its state such as
        momentum and Adam's moments), the step counts, the seed and the epochs seen (the position of
        the shuffles and dropout masks): `fnn.load(path)` then comes back compiled with that optimizer,
        and its `fit` continues with the same bits as a `fit` that had never stopped."""
        path = _format.path_arg(path)
        _format.write_atomic(path, self._file_bytes(extra_metadata, include_optimizer))

    def _state_views(self):
        """[(file name, view)] of the optimizer state: `optimizer.<state>.layers.<i>.<name>` per state
        buffer (named by the engine) and parameter tensor."""
        desc = self.optimizer.describe(self._epochs_seen)
        names, size, out = _core.optim_state_names(desc), self._params.size, []
        for s, state in enumerate(names):
            for i, layer in enumerate(self.layers):
                for name, a in layer.parameters():
                    at = s * size + layer._offsets[name]
                    out.append((f"optimizer.{state}.layers.{i}.{name}", self._state[at:at + a.size].reshape(a.shape)))
        return out

    def _training_state(self):
        """(the "training" metadata, [(name, array)] of the optimizer state) that include_optimizer saves."""
        if self.optimizer is None:
            raise ValueError("include_optimizer: the model has no optimizer; call compile first")
        lr = self.optimizer.lr
        if callable(lr) and not isinstance(lr, _schedules.Schedule):
            raise ValueError("include_optimizer: the optimizer's lr is a function, which a model file cannot hold; "
                             "give a number or a fastnn.schedules schedule")
        self._push_optimizer(self._epochs_seen)  # the state laid out for this optimizer
        desc = _core.optim_engine(self.optimizer.describe(self._epochs_seen))  # every field of the engine's
        kind, schedule, per = desc.pop("kind"), desc.pop("schedule"), "step"
        if schedule is None and isinstance(lr, _schedules.Schedule):
            schedule, per = lr._engine(), "epoch"
        step, opt_step = self._net.counters
        training = {"optimizer": kind, **desc,
                    "schedule": None if schedule is None else {
                        "kind": schedule["kind"], "per": per, "initial_lr": schedule["initial"],
                        "warmup": schedule["warmup"], "period": schedule["period"], "factor": schedule["factor"],
                        "staircase": schedule["staircase"]},
                    "seed": self.seed, "epochs_seen": self._epochs_seen, "step": step, "opt_step": opt_step}
        return training, self._state_views()

    def _restore_training(self, training, tensors):
        """The optimizer state, step counts and epochs of a file's training state (after compile)."""
        for name, view in self._state_views():  # the reader checked that every one is there, shaped so
            np.copyto(view, tensors[name])
        self._net.counters = (training["step"], training["opt_step"])
        self._epochs_seen = training["epochs_seen"]

    @classmethod
    def _from_model_file(cls, mf, settings=None, seed=None):
        """The Sequential of a model file read by the C reader (fastnn._core.ModelFile): the file's
        parameters bit for bit, compiled with its loss, `metadata` its extra metadata; its seed is
        the pickle's, else `seed`, else the training state's, else a random one.  With a training
        state, compiled with its optimizer and restored to continue training where it stopped."""
        training = mf.training
        if settings:
            seed = settings["seed"]
        elif seed is None and training:
            seed = training["seed"]
        model = cls([Layer.from_spec(d) for d in mf.layers], input_dim=mf.n_inputs, dtype=mf.dtype, seed=seed)
        params = dict(model._named_parameters())
        for name, a in mf.tensors().items():  # the reader checked names, shapes and values
            np.copyto(params[name], a)
        if model.quantized:
            model._lowp_weights_set()
        model.metadata = {k: v for k, v in mf.metadata.items() if k not in _format.RESERVED_KEYS}
        loss, param = mf.loss
        if training and loss is not None and not settings:
            optimizer = _optimizers.from_engine(training["optimizer"], training["epoch_schedule"])
            model.compile(loss, optimizer=optimizer, huber_delta=param)
            model._restore_training(training, mf.optimizer_tensors())
        else:
            model._compile_as(loss, param, settings)
        return model

    def _compile_as(self, loss, huber_delta, settings):
        if loss is None:
            return
        if settings:
            self.compile(loss, optimizer=settings["optimizer"], metrics=settings["metrics"], huber_delta=huber_delta,
                         precision=settings.get("precision", "float32"))
        else:
            self.compile(loss, huber_delta=huber_delta)

    def export_onnx(self, path, *, opset=17):
        """Write the model as an ONNX graph that gives `predict`'s outputs (probabilities for the
        cross-entropies): Gemm layers, standard activations, a symbolic batch dimension, the
        model's metadata in metadata_props; int8 and bfloat16 layers in standard operators that compute
        what the engine does.  Needs the optional onnx package (pip install "fastnn[onnx]");
        fastnn/onnx.py describes the graph."""
        from . import onnx as onnx_io
        onnx_io.export(self, path, opset=opset)

    @_exclusive("load_weights")
    def load_weights(self, source, *, layout="fastnn", strict=True):
        """Copy weights from `source`, a safetensors path or a dict of arrays/tensors.  layout="fastnn":
        `layers.<i>.weight` (in, out) and `layers.<i>.bias`; layout="torch": a PyTorch nn.Sequential state
        dict (`<module>.weight` (out, in), `<module>.bias`) mapped onto the Dense layers in order.
        strict=False skips the layers that do not match (a new head) instead of raising
        ModelFormatError.  Nothing changes unless every check passes.  Returns a LoadResult
        (loaded, skipped, unexpected)."""
        if self.built and self.quantized:
            raise FastNNError(f"load_weights: the model is quantized ({self.precision}): its weights are fixed; "
                              "load them into a float model and quantize it")
        return _weights.load_weights(self, source, layout=layout, strict=strict)

    def _pickle_settings(self):
        """What a pickle keeps beside the file: the seed and the compile settings (metrics by name
        when they are fastnn's own)."""
        specs = []
        for name, fn in self.metrics:
            try:
                same = isinstance(name, str) and _metrics.get(name) is fn
            except (ValueError, TypeError, KeyError):
                same = False
            specs.append(name if same else fn)
        return {"seed": self.seed, "optimizer": self.optimizer, "metrics": specs, "precision": self.training_precision}

    def __reduce__(self):
        """Pickle and copy.deepcopy through the model file's bytes (plus seed and compile settings)."""
        settings = self._pickle_settings()
        if self.built:
            return _unpickle, (self._file_bytes(), settings)
        config = {"dtype": str(self.dtype), "loss": self.loss, "huber_delta": self.huber_delta,
                  "metadata": dict(self.metadata),
                  "layers": [dict(layer.spec(), **layer._pickle_extra()) for layer in self.layers]}
        return _unpickle_unbuilt, (config, settings)

    # ---- compile ----------------------------------------------------------------------------------

    @_exclusive("compile")
    def compile(self, loss, optimizer="sgd", metrics=(), *, huber_delta=1.0, precision="float32"):
        """Choose the loss ("cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"), the
        optimizer (a name or an instance) and the metrics (names of fastnn.metrics or callables
        metric(y_true, y_pred)).  Resets the optimizer state.

        precision="bfloat16" trains in mixed precision: every product of a training step (forward and
        backward) takes its inputs rounded to bfloat16 and sums in float32; the weights, gradients and
        optimizer state stay float32 (float32 models only).  evaluate and predict, validation included,
        run in float32."""
        if loss not in LOSSES:
            raise ValueError(f"loss: expected one of {', '.join(LOSSES)}, got {loss!r}")
        if precision not in TRAINING_PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(TRAINING_PRECISIONS)}, got {precision!r}")
        if precision == "bfloat16" and self.dtype != np.float32:
            raise ValueError(f"precision: 'bfloat16' trains float32 models (their master weights); this model "
                             f"is {self.dtype}")
        if precision == "bfloat16" and self.quantized:
            raise ValueError(f"precision: the model is quantized ({self.precision}) and does not train")
        self.huber_delta = real_number(huber_delta, "huber_delta", low=0.0, low_open=True)
        opt = _optimizers.get(optimizer)
        if metrics is None:
            metrics = ()
        if isinstance(metrics, str) or callable(metrics):
            metrics = [metrics]
        try:
            metrics = list(metrics)
        except TypeError:
            raise TypeError(f"metrics: expected a list of metric names or callables, got "
                            f"{type(metrics).__name__}") from None
        ms = []
        for i, m in enumerate(metrics):
            try:
                fn = _metrics.get(m)
            except (TypeError, ValueError) as e:
                raise type(e)(f"metrics[{i}]: {str(e).removeprefix('metric: ')}") from None
            ms.append((m if isinstance(m, str) else getattr(fn, "__name__", "metric"), fn))
        self.loss, self.optimizer, self.metrics = loss, opt, ms
        self.training_precision = precision
        if self.built:
            self._configure()

    def _configure(self):
        """Push the loss and a fresh optimizer state into the plan."""
        self._net.set_loss(self.loss, self.huber_delta)
        self._net.set_bf16(self.training_precision == "bfloat16")
        n_state = _core.optim_n_state(self.optimizer.describe(self._epochs_seen))
        check_memory(n_state * self._params.nbytes, f"optimizer: the state of {type(self.optimizer).__name__} "
                                                    f"({n_state} per parameter, {self._params.size:,} parameters)")
        self._state = zeros_on_lines(n_state * self._params.size, self.dtype)
        self._state_for = self.optimizer
        self._net.set_optim(self.optimizer.describe(self._epochs_seen), self._state)
        self._net.counters = (self._net.counters[0], 0)

    def _require_compiled(self, what):
        if self.loss is None:
            raise NotCompiledError(f"{what}: call compile(loss, optimizer) first")

    def _push_optimizer(self, epoch):
        """Hand the optimizer's settings at `epoch` to the plan; returns the learning rate."""
        if self.optimizer is not self._state_for or \
                _core.optim_n_state(self.optimizer.describe(epoch)) * self._params.size != self._state.size:
            self._configure()  # a new optimizer object (or new state layout): fresh state
        desc = self.optimizer.describe(epoch)
        self._net.set_optim(desc, self._state)
        return desc["lr"]

    # ---- data -------------------------------------------------------------------------------------

    def _prepare_x(self, X, name="X"):
        if isinstance(X, _CSR):  # already prepared (a caller that evaluates the same rows many times)
            if X[2].dtype != self.dtype:
                raise TypeError(f"{name}: prepared sparse rows of dtype {X[2].dtype} for a {self.dtype} model")
        elif _is_sparse(X):
            X = _sparse_rows(X, name, self.dtype)
        else:
            X = _as_dtype(X, name, self.dtype, 2)
        self._check_width(X.shape, name)
        return X

    def _check_width(self, shape, name):
        """Refuse no rows or a width the model does not take; build an unbuilt model for `shape`'s columns."""
        if shape[0] == 0:
            raise ValueError(f"{name}: has no rows")
        if not self.built:
            if shape[1] == 0:
                raise ValueError(f"{name}: has no features (columns), shape {shape}")
            self.build(shape[1])
        if shape[1] != self.input_dim:
            raise ValueError(f"{name}: expected {self.input_dim} features (columns), got shape {shape}")

    def _prepare_y(self, y, n, name="y"):
        """(labels int64 or None, target or None) for the loss; errors name `name`."""
        c = self._dims[-1]
        if not isinstance(y, np.ndarray):
            y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{name}: expected a numeric array, got dtype {y.dtype}")
        if y.ndim == 0 or y.ndim > 2:
            raise ValueError(f"{name}: expected a 1-D or 2-D array, got shape {y.shape}")
        if y.shape[0] != n:
            raise ValueError(f"{name}: has {y.shape[0]} rows but X has {n}")
        if y.dtype.kind == "f" and not all_finite(y):
            raise ValueError(f"{name}: contains NaN or Inf")
        if self.loss == "cross_entropy" and (y.ndim == 1 or (y.shape[1] == 1 and c > 1)):
            labels = y.reshape(-1)
            if labels.dtype.kind == "f":
                if np.any(labels != np.floor(labels)):
                    raise ValueError(f"{name}: class labels must be whole numbers")
            if n and (labels.min() < 0 or labels.max() >= c):
                raise ValueError(f"{name}: class labels must be in [0, {c}), got values from "
                                 f"{labels.min()} to {labels.max()}")
            return _c_array(labels, np.int64), None
        if y.ndim == 1:
            if c != 1:
                raise ValueError(f"{name}: expected shape ({n}, {c}) for a model with {c} outputs, got {y.shape}")
            y = y.reshape(n, 1)
        if y.shape[1] != c:
            raise ValueError(f"{name}: expected {c} columns (the model's outputs), got shape {y.shape}")
        target = _c_array(y, self.dtype)
        if self.loss in ("cross_entropy", "binary_cross_entropy"):
            probabilities(target, name, self.loss.replace("_cross_", " cross-").replace("cross_", "cross-") + " targets")
        return None, target

    def _sample_weights(self, sample_weight, class_weight, labels, target, n):
        w = None
        if sample_weight is not None:
            w = _as_dtype(sample_weight, "sample_weight", self.dtype, 1)
            if w.shape[0] != n:
                raise ValueError(f"sample_weight: expected {n} values (one per row), got {w.shape[0]}")
            if np.any(w < 0):
                raise ValueError("sample_weight: must not be negative")
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError(f"class_weight: expected a dict class -> weight, got {type(class_weight).__name__}")
            if labels is not None:
                cls = labels
            elif self.loss == "cross_entropy":
                cls = np.argmax(target, axis=1)
            elif self.loss == "binary_cross_entropy" and target.shape[1] == 1:
                cls = (target[:, 0] > 0.5).astype(np.int64)
            else:
                raise ValueError("class_weight: needs class labels (cross-entropy, or binary cross-entropy "
                                 "with one output)")
            table = np.ones(max(self._dims[-1], 2), dtype=np.float64)
            for k, v in class_weight.items():
                k = integer(k, "class_weight key")
                if not 0 <= k < table.size:
                    raise ValueError(f"class_weight: class {k} out of range [0, {table.size})")
                table[k] = real_number(v, f"class_weight[{k}]", low=0.0)
            cw = table[cls].astype(self.dtype)
            w = cw if w is None else w * cw
        return w

    # ---- training ---------------------------------------------------------------------------------

    def _raise_nonfinite(self, loss, epoch, batch, n_batches, where):
        if epoch is None:
            msg = f"{where}: the loss became {loss} (NaN or Inf); the weights were not updated"
        else:
            msg = (f"{where}: the loss became {loss} (NaN or Inf) at epoch {epoch + 1}, batch {batch + 1} of "
                   f"{n_batches}; the weights are those of the last good step. A smaller learning rate, "
                   f"scaled inputs or gradient-friendlier activations usually help")
        raise NonFiniteLossError(msg, epoch=epoch, batch=batch)

    def _batch_stats(self):
        """Whether a training pass normalizes with batch statistics (a trainable BatchNorm)."""
        return any(layer.kind == "batch_norm" and layer.trainable for layer in self.layers)

    def _check_batch_rows(self, rows, name):
        if rows < 2 and self._batch_stats():
            raise ValueError(f"{name}: BatchNorm in training needs at least 2 rows per batch (a batch's variance), "
                             f"got {rows}")

    @_exclusive("compute_gradients")
    def compute_gradients(self, X, y, *, sample_weight=None):
        """The loss on (X, y) (with dropout active, as in training); fills every trainable layer's
        weight_grad and bias_grad.  Updates nothing.  Sparse X is densified a block of rows at a time,
        each block's gradient weighted by its share of the rows (with a trainable BatchNorm, whose
        statistics are the whole batch's, X is densified at once)."""
        self._require_trainable("compute_gradients")
        self._require_compiled("compute_gradients")
        X = self._prepare_x(X)
        n = X.shape[0]
        self._check_batch_rows(n, "X")
        labels, target = self._prepare_y(y, n)
        w = self._sample_weights(sample_weight, None, labels, target, n)
        if isinstance(X, _CSR) and not self._batch_stats():
            batch = min(n, max(2, _SPARSE_BLOCK // self.input_dim))
            self._reserve(batch, "X")
            rc, loss = _core.net_gradient(self._net, X, labels, target, w, batch)
        else:
            rc, loss = _core.net_step(self._net, X, labels, target, w, False)
        if rc == _core.ERR_NONFINITE:
            self._raise_nonfinite(loss, None, None, None, "compute_gradients")
        _core.check(rc, "compute_gradients")
        return loss

    @_exclusive("train_on_batch")
    def train_on_batch(self, X, y, *, sample_weight=None, class_weight=None):
        """One optimizer step on (X, y) as one batch; returns its loss (before the update)."""
        self._require_trainable("train_on_batch")
        self._require_compiled("train_on_batch")
        X = self._prepare_x(X)
        self._check_batch_rows(X.shape[0], "X")
        labels, target = self._prepare_y(y, X.shape[0])
        w = self._sample_weights(sample_weight, class_weight, labels, target, X.shape[0])
        self._push_optimizer(self._epochs_seen)
        rc, loss = _core.net_step(self._net, X, labels, target, w, True)
        if rc == _core.ERR_NONFINITE:
            self._raise_nonfinite(loss, None, None, None, "train_on_batch")
        _core.check(rc, "train_on_batch")
        return loss

    @_exclusive("fit")
    def fit(self, X, y, *, epochs=1, batch_size=32, shuffle=True, validation_split=0.0, validation_data=None,
            callbacks=(), verbose=1, sample_weight=None, class_weight=None, distributed=None, shuffle_window=1):
        """Train for `epochs` epochs; returns the History (per-epoch `loss`, metrics, `val_*`, `lr`,
        `time`, `samples_per_s`).  `validation_split` holds out the last fraction of the rows (before
        shuffling, as Keras does); `validation_data` = (X, y) or (X, y, sample_weight) takes precedence.
        `loss` is the mean of the epoch's batch losses (weighted by rows) with the weights of the moment
        and dropout on, as in Keras; metrics likewise use the outputs seen during the epoch.  `time` is
        the epoch's wall time with validation, `samples_per_s` the training rows per training second.
        Class weights multiply the sample weights; the batch loss is sum(w_i * loss_i) / rows.
        `model.history` is the same History, also while fit runs.  A KeyboardInterrupt (Ctrl-C, or raised
        by a callback) ends fit within one chunk of batches: the weights are those of the last completed
        step, `model.history` holds the epochs completed, callbacks get on_train_end, and the exception
        propagates.

        X and y (and validation_data's, and sample_weight) may be Dask arrays: their blocks of rows
        are computed in order, the next one in a background thread while the engine trains on the
        current one, and never held all at once.  With shuffle, the rows are shuffled within a window
        of `shuffle_window` blocks (plus the few rows of a partial batch carried over from the window
        before), not across the whole array; without it, the batches are exactly those of the same
        data in memory, and so is the trained model.

        distributed=fastnn.distributed.MPI(): data-parallel training in a program started with
        `mpiexec -n N`, each process passing its own shard; see fastnn/distributed.py."""
        self._require_trainable("fit")
        self._require_compiled("fit")
        coord = _Solo(self) if distributed is None else _session(distributed, self)
        fd = coord.prepare(lambda: self._fit_data(X, y, epochs, batch_size, shuffle, validation_split,
                                                  validation_data, verbose, sample_weight, class_weight,
                                                  shuffle_window))
        steps = coord.steps(fd.train.n_batches)  # more than this process's batches when another has more
        losses = np.zeros(steps)
        sizes = np.zeros(steps)
        sizes[:fd.train.n_batches] = fd.train.batch_sizes()
        verbose = fd.verbose if coord.is_root else 0
        cbs = coord.callbacks(callbacks, model=self, params={
            "epochs": fd.epochs, "batch_size": fd.batch, "steps": steps, "samples": coord.total(fd.train.n),
            "verbose": verbose})
        self.history = cbs.history
        self.stop_training = False
        coord.train_begin(cbs)
        try:
            for epoch in range(fd.epochs):
                lr = coord.epoch_begin(epoch, cbs)
                t0 = time.perf_counter()
                epoch_key = self._epochs_seen
                self._epochs_seen += 1
                bar = _Progress(verbose, epoch, fd.epochs, steps, coord.total(fd.train.n))
                self._train_epoch(fd, coord, epoch, epoch_key, losses, sizes, bar, t0)
                train_time = time.perf_counter() - t0
                logs = coord.epoch_logs(self, fd, losses, sizes)
                logs["lr"] = self._last_step_lr() if self.optimizer.per_step else lr
                logs["time"] = time.perf_counter() - t0
                logs["samples_per_s"] = coord.total(fd.train.n) / train_time if train_time > 0 else float("inf")
                bar.end(logs)
                coord.epoch_end(epoch, logs, cbs)
                if self.stop_training:
                    break
        finally:
            coord.train_end(cbs)
        return cbs.history

    def _fit_data(self, X, y, epochs, batch_size, shuffle, validation_split, validation_data, verbose,
                  sample_weight, class_weight, shuffle_window):
        """fit's arguments checked, and its data as sources of rows (_Rows in memory, or Dask blocks)."""
        epochs = integer(epochs, "epochs", low=0)
        batch_size = integer(batch_size, "batch_size", low=1)
        verbose = integer(verbose, "verbose", low=0)
        validation_split = real_number(validation_split, "validation_split", low=0.0, high=1.0, high_open=True)
        shuffle_window = integer(shuffle_window, "shuffle_window", low=1)
        shuffle = bool(shuffle)
        if _is_dask(X) or _is_dask(y):
            from . import dask as _fdask
            train, val, batch = _fdask.fit_sources(self, X, y, batch_size, shuffle, validation_split, validation_data,
                                                   sample_weight, class_weight, shuffle_window)
            return _FitData(train, val, epochs, batch, verbose)
        X = self._prepare_x(X)
        n_all = X.shape[0]
        labels, target = self._prepare_y(y, n_all)
        w = self._sample_weights(sample_weight, class_weight, labels, target, n_all)
        val = None
        if validation_data is not None:
            val = self._validation_rows(validation_data)
        elif validation_split > 0:
            split = int(math.floor(n_all * (1.0 - validation_split)))
            if split < 1 or split >= n_all:
                raise ValueError(f"validation_split: {validation_split} of {n_all} rows leaves an empty "
                                 "training or validation set")
            cut = lambda a: (_take_rows(a, 0, split), _take_rows(a, split, n_all))
            (X, Xv), (labels, lv), (target, tv), (w, wv) = cut(X), cut(labels), cut(target), cut(w)
            val = _Rows(self, Xv, lv, tv, wv)
        n = X.shape[0]
        batch = min(batch_size, n)
        if self._batch_stats() and (batch < 2 or n % batch == 1):
            raise ValueError(f"batch_size: BatchNorm in training needs at least 2 rows per batch, but batch_size="
                             f"{batch_size} on {n} training rows leaves a batch of 1 row; choose another batch_size")
        train = _Rows(self, X, labels, target, w, batch, shuffle, metrics=bool(self.metrics))
        self._reserve(batch, "batch_size")
        if val is not None:
            val.batch = self._validation_batch(batch, val.n)
        return _FitData(train, val, epochs, batch, verbose)

    def _validation_batch(self, batch, rows):
        """Validation runs in blocks of max(batch, _PREDICT_BATCH) rows, fewer if memory is short."""
        return self._inference_batch(batch if batch > _PREDICT_BATCH else None, rows)

    def _validation_rows(self, validation_data):
        """validation_data, (X, y) or (X, y, sample_weight), as _Rows."""
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data: expected (X_val, y_val) or (X_val, y_val, sample_weight)")
        Xv = self._prepare_x(validation_data[0], "validation_data X")
        lv, tv = self._prepare_y(validation_data[1], Xv.shape[0], "validation_data y")
        wv = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            wv = self._sample_weights(validation_data[2], None, lv, tv, Xv.shape[0])
        return _Rows(self, Xv, lv, tv, wv)

    def _train_epoch(self, fd, coord, epoch, epoch_key, losses, sizes, bar, t0):
        """One epoch's steps: this process's batches, window by window of its rows, in chunks of C calls
        of about _CHUNK_SECONDS; then, in data-parallel training, empty steps until every process is done."""
        b, chunk, win = 0, 1, None
        for win in fd.train.windows(coord.shuffle_seed(self.seed), epoch_key):
            first = 0
            while first < win.count:
                count = min(chunk, win.count - first)
                tc = time.perf_counter()
                rc, bad = _core.net_fit_chunk(self._net, win.x, win.labels, win.target, win.w, win.perm, fd.batch,
                                              first, losses[b:b + count], win.pred)
                self._check_chunk(rc, coord, losses, epoch, b + bad - first, len(losses))
                dt = time.perf_counter() - tc
                first += count
                b += count
                chunk = max(1, min(4 * count, int(count * _CHUNK_SECONDS / max(dt, 1e-6))))
                if bar.verbose == 1:
                    bar.update(b, _mean_loss(losses[:b], sizes[:b]), time.perf_counter() - t0)
            win.done()
        while b < len(losses):  # batches past the end of a window's rows are empty steps (csrc/net.h)
            count = min(chunk, len(losses) - b)
            rc, bad = _core.net_fit_chunk(self._net, win.x, win.labels, win.target, win.w, win.perm, fd.batch,
                                          win.count, losses[b:b + count], None)
            self._check_chunk(rc, coord, losses, epoch, b + bad - win.count, len(losses))
            b += count

    def _check_chunk(self, rc, coord, losses, epoch, bad, n_batches):
        if rc == 0:
            return
        coord.raise_step_error(rc, epoch, bad, n_batches)
        if rc == _core.ERR_NONFINITE:
            self._raise_nonfinite(losses[bad], epoch, bad, n_batches, "fit")
        if rc == _core.ERR_ARG and self._batch_stats():  # the engine refuses a batch of one row (Dask's last)
            raise ValueError(f"batch_size: BatchNorm in training needs at least 2 rows per batch, but batch "
                             f"{bad + 1} of epoch {epoch + 1} has 1 row; choose another batch_size")
        _core.check(rc, "fit")

    def _last_step_lr(self):
        """The rate of the last optimizer step under a per-step schedule (its first before any step)."""
        return self.optimizer.lr(max(self._net.counters[1] - 1, 0))

    @staticmethod
    def _metric_pred(pred, y_true):
        """The predictions as the metrics take them: a vector for one output and 1-D targets."""
        return pred[:, 0] if pred.shape[1] == 1 and y_true.ndim == 1 else pred

    def _add_metrics(self, logs, prefix, y_true, pred):
        """logs[prefix + name] = each compiled metric of (y_true, pred)."""
        for name, fn in self.metrics:
            logs[prefix + name] = float(fn(y_true, self._metric_pred(pred, y_true)))

    # ---- inference --------------------------------------------------------------------------------

    def _evaluate(self, X, labels, target, w, batch):
        pred = np.empty((X.shape[0], self._dims[-1]), dtype=self.dtype) if self.metrics else None
        loss = _core.net_evaluate(self._net, X, labels, target, w, batch, pred)
        logs = {"loss": loss}
        y_true = labels if labels is not None else target
        for name, fn in self.metrics:
            logs[name] = float(fn(y_true, self._metric_pred(pred, y_true)))
        return logs

    def evaluate(self, X, y, *, batch_size=None, sample_weight=None):
        """{"loss": mean loss + penalties, metric: value, ...} on (X, y), dropout off."""
        self._require_compiled("evaluate")
        X = self._prepare_x(X)
        labels, target = self._prepare_y(y, X.shape[0])
        w = self._sample_weights(sample_weight, None, labels, target, X.shape[0])
        batch_size = None if batch_size is None else integer(batch_size, "batch_size", low=1)
        return self._evaluate(X, labels, target, w, self._inference_batch(batch_size, X.shape[0]))

    def predict(self, X, *, batch_size=None):
        """Outputs for X (rows x outputs), dropout off: probabilities for the cross-entropies (the
        loss's softmax/sigmoid applied), raw outputs otherwise."""
        batch_size = None if batch_size is None else integer(batch_size, "batch_size", low=1)
        X = self._prepare_x(X)
        batch = self._inference_batch(batch_size, X.shape[0])
        out = np.empty((X.shape[0], self._dims[-1]), dtype=self.dtype)
        _core.net_forward(self._net, X, batch, False, True, out)
        return out

    def _forward_train(self, X):
        """The training-mode output (dropout on, masks of the current step) without the link: a test hook."""
        X = self._prepare_x(X)
        self._check_batch_rows(X.shape[0], "X")
        out = np.empty((X.shape[0], self._dims[-1]), dtype=self.dtype)
        _core.net_forward(self._net, X, X.shape[0], True, False, out)
        return out

    def _step_threads(self, batch):
        """The thread count a training step on `batch` rows gives its kernels (1 = serial)."""
        self._require_built("_step_threads")
        return self._net.step_threads(batch)

    def __repr__(self):
        return f"Sequential({self.layers!r}, input_dim={self.input_dim}, dtype={str(self.dtype)!r}, seed={self.seed})"


# ---- fit's data and its coordinator ---------------------------------------------------------------

class _FitData:
    """fit's checked settings and its data: `train` and `val` are sources of rows (_Rows, or the Dask
    blocks of fastnn/dask.py); `val` is None without validation."""

    def __init__(self, train, val, epochs, batch, verbose):
        self.train, self.val, self.epochs, self.batch, self.verbose = train, val, epochs, batch, verbose


class _Rows:
    """Rows held in memory, each array C-contiguous in the model's dtype.  For training they are one
    window per epoch (this object itself: x, labels, target, w, perm, count, pred), shuffled in C;
    for validation, evaluated `batch` rows at a time."""

    def __init__(self, model, X, labels, target, w, batch=None, shuffle=False, metrics=False):
        self.x, self.labels, self.target, self.w = X, labels, target, w
        self.n = X.shape[0]
        self.batch = batch
        self.y_true = labels if labels is not None else target
        self.n_batches = self.count = -(-self.n // batch) if batch else 0
        self.perm = np.empty(self.n, dtype=np.int64) if shuffle else None
        self.pred = np.empty((self.n, model._dims[-1]), dtype=model.dtype) if metrics else None

    def batch_sizes(self):
        sizes = np.full(self.n_batches, self.batch, dtype=np.float64)
        sizes[-1] = self.n - (self.n_batches - 1) * self.batch
        return sizes

    def windows(self, seed, epoch):
        if self.perm is not None:
            _core.permutation(seed, epoch, self.perm)
        yield self

    def done(self):
        """The window's batches are trained (its predictions are in self.pred)."""

    def label_set(self):
        """The sorted class labels present (class labels only; None for targets)."""
        return None if self.labels is None else np.unique(self.labels).tolist()

    def metric_data(self):
        """(y_true, predictions) of the epoch's training rows, for the metrics."""
        return self.y_true, self.pred

    def evaluate(self, model, metrics):
        """(mean loss + penalties, rows, y_true, predictions or None without metrics), dropout off."""
        pred = np.empty((self.n, model._dims[-1]), dtype=model.dtype) if metrics else None
        loss = _core.net_evaluate(model._net, self.x, self.labels, self.target, self.w, self.batch, pred)
        return loss, self.n, self.y_true, pred


class _Solo:
    """fit's coordinator in one process: every decision is its own.  fastnn.distributed's session
    answers the same calls for data-parallel training, where rank 0 decides and the others follow."""

    is_root = True

    def __init__(self, model):
        self.model = model

    def prepare(self, fn):
        return fn()

    def steps(self, n_batches):
        return n_batches

    def total(self, n):
        return n

    def shuffle_seed(self, seed):
        return seed

    def callbacks(self, callbacks, model, params):
        return CallbackList(callbacks, model=model, params=params)

    def train_begin(self, cbs):
        cbs.on_train_begin()

    def epoch_begin(self, epoch, cbs):
        cbs.on_epoch_begin(epoch)
        return self.model._push_optimizer(self.model._epochs_seen)  # schedules count the model's epochs

    def raise_step_error(self, rc, epoch, batch, n_batches):
        """Nothing to add to the engine's own error code in one process."""

    def epoch_logs(self, model, fd, losses, sizes):
        logs = {"loss": _mean_loss(losses, sizes)}
        model._add_metrics(logs, "", *fd.train.metric_data())
        if fd.val is not None:
            loss, _, y_true, pred = fd.val.evaluate(model, bool(model.metrics))
            logs["val_loss"] = loss
            model._add_metrics(logs, "val_", y_true, pred)
        return logs

    def epoch_end(self, epoch, logs, cbs):
        cbs.on_epoch_end(epoch, logs)

    def train_end(self, cbs):
        cbs.on_train_end()


def _session(distributed, model):
    """The coordinator of a data-parallel fit: fastnn.distributed.MPI(...)._session(model)."""
    start = getattr(distributed, "_session", None)
    if not callable(start):
        raise TypeError(f"distributed: expected fastnn.distributed.MPI(...), got {type(distributed).__name__}")
    return start(model)


def _is_dask(a):
    """A Dask collection (told by its class's module: Dask itself is not imported for this)."""
    return type(a).__module__.partition(".")[0] == "dask" and hasattr(a, "__dask_graph__")


def _unpickle(data, settings):
    return Sequential._from_model_file(_core.ModelFile.from_buffer(data, "<pickle>"), settings)


def _unpickle_unbuilt(config, settings):
    model = Sequential([Layer.from_spec(d) for d in config["layers"]], dtype=config["dtype"], seed=settings["seed"])
    model.metadata = dict(config.get("metadata", {}))
    model._compile_as(config["loss"], config["huber_delta"], settings)
    return model


class _Progress:
    """The per-epoch progress line on stderr: verbose=1 a bar updated per chunk, 2 one line per epoch."""

    def __init__(self, verbose, epoch, epochs, n_batches, n):
        self.verbose, self.n_batches, self.n = verbose, n_batches, n
        self.head = f"Epoch {epoch + 1}/{epochs}"
        self.width = len(str(n_batches))

    def update(self, done, loss, elapsed):
        if self.verbose != 1:
            return
        filled = 30 * done // self.n_batches
        bar = "=" * filled + (">" if filled < 30 else "") + "." * (29 - filled)
        rate = self.n * done / self.n_batches / elapsed if elapsed > 0 else 0.0
        self._write(f"\r{self.head} {done:>{self.width}}/{self.n_batches} [{bar}] - loss: {loss:.4f}"
                    f" - {rate:,.0f} samples/s")

    def end(self, logs):
        if self.verbose == 0:
            return
        parts = [f"{k}: {v:.4g}" for k, v in logs.items() if k not in ("lr", "time", "samples_per_s")]
        t = logs["time"]
        took = f"{t:.2f}s" if t >= 1 else f"{t * 1000:.0f}ms"
        line = f"{self.head} - {took} - " + " - ".join(parts) + f" - {logs['samples_per_s']:,.0f} samples/s"
        self._write(("\r" if self.verbose == 1 else "") + line, end="\n")

    _last = 0

    def _write(self, text, end=""):
        pad = max(0, self._last - len(text))  # blank out the rest of a longer previous line
        sys.stderr.write(text + " " * pad + end)
        sys.stderr.flush()
        self._last = 0 if end else len(text)
