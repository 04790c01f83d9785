# Model files through the C reader (csrc/io.c) and inference through the C model (csrc/model.c).
# ModelFile wraps a loaded fnn_model: its architecture as the C reader validated it, copies of its
# tensors as NumPy arrays (what fastnn.load rebuilds a Sequential from), and the C API's predict.

from libc.errno cimport errno
from libc.string cimport memcpy
from libc.stdint cimport uint64_t
import os as _os
import numpy as _np
from ._errors import ModelFormatError

cdef extern from "model.h" nogil:
    ctypedef struct fnn_model:
        pass
    int FNN_IO_SCHEMA_MAJOR, FNN_IO_SCHEMA_MINOR
    int fnn_model_load(const char *path, fnn_model **out)
    int fnn_model_load_buffer(const void *data, size_t len, fnn_model **out)
    int fnn_model_predict(const fnn_model *m, const float *x, size_t rows, float *out)
    int fnn_model_predict_native(const fnn_model *m, const void *x, size_t rows, void *out)
    size_t fnn_model_n_inputs(const fnn_model *m)
    size_t fnn_model_n_outputs(const fnn_model *m)
    void fnn_model_free(fnn_model *m)
    const char *fnn_last_error_detail()
    int fnn_model_dtype(const fnn_model *m)
    const fnn_plan *fnn_model_plan(const fnn_model *m)
    const char *fnn_model_layer_name(const fnn_model *m, int i)
    const void *fnn_model_params(const fnn_model *m, size_t *n_params)
    const char *fnn_model_architecture(const fnn_model *m)
    int fnn_model_n_metadata(const fnn_model *m)
    int fnn_model_metadata_at(const fnn_model *m, int i, const char **key, const char **value)
    ctypedef struct fnn_train_state:
        fnn_optim_desc opt
        fnn_schedule epoch_sched
        uint64_t seed
        int64_t epochs_seen
        int64_t step
        int64_t opt_step
    const fnn_train_state *fnn_model_training(const fnn_model *m, const void **opt_state, int *n_state)
    ctypedef struct fnn_st_file:
        pass
    int fnn_st_open(const void *data, size_t len, fnn_st_file **out)
    size_t fnn_st_n_tensors(const fnn_st_file *s)
    int fnn_st_tensor_at(const fnn_st_file *s, size_t i, const char **name, const char **dtype, size_t *ndim,
                         const uint64_t **shape, size_t *begin, size_t *end)
    int fnn_st_n_metadata(const fnn_st_file *s)
    int fnn_st_metadata_at(const fnn_st_file *s, int i, const char **key, const char **value)
    void fnn_st_close(fnn_st_file *s)

SCHEMA_VERSION = (FNN_IO_SCHEMA_MAJOR, FNN_IO_SCHEMA_MINOR)


cdef _raise_load_error(int rc, where, int err):
    detail = fnn_last_error_detail().decode("utf-8", "replace")
    if rc == FNN_ERR_IO:
        raise OSError(err, detail, where)
    if rc == FNN_ERR_NOMEM:
        raise MemoryError(f"{where}: {detail}")
    if rc == FNN_ERR_ARG:
        raise ValueError(f"{where}: {detail}")
    e = ModelFormatError(f"{where}: {detail}")
    e.reason = fnn_strerror(rc).decode()
    e.detail = detail
    raise e


cdef class ModelFile:
    """A model file loaded and checked by the C reader; read-only."""
    cdef fnn_model *m

    def __dealloc__(self):
        fnn_model_free(self.m)

    @staticmethod
    def from_path(path):
        """Load `path` (str or path-like); OSError if it cannot be read, ModelFormatError if malformed."""
        cdef bytes p = _os.fsencode(path)
        cdef const char *cp = p
        cdef fnn_model *m = NULL
        cdef int rc, err = 0
        with nogil:
            rc = fnn_model_load(cp, &m)
            if rc == FNN_ERR_IO:
                err = errno
        if rc:
            _raise_load_error(rc, _os.fsdecode(p), err)
        cdef ModelFile f = ModelFile.__new__(ModelFile)
        f.m = m
        return f

    @staticmethod
    def from_buffer(data, where="<buffer>"):
        """Load a model from the bytes of a model file (any object with the buffer protocol)."""
        cdef const unsigned char[::1] buf = memoryview(data).cast("B")
        cdef const void *ptr = &buf[0] if buf.shape[0] else NULL
        cdef size_t n = buf.shape[0]
        cdef fnn_model *m = NULL
        cdef int rc
        with nogil:
            rc = fnn_model_load_buffer(ptr, n, &m)
        if rc:
            _raise_load_error(rc, where, 0)
        cdef ModelFile f = ModelFile.__new__(ModelFile)
        f.m = m
        return f

    cdef const fnn_model *_m(self) except NULL:
        if self.m == NULL:
            raise ValueError("ModelFile: no model loaded (use ModelFile.from_path or ModelFile.from_buffer)")
        return self.m

    @property
    def n_inputs(self):
        return fnn_model_n_inputs(self._m())

    @property
    def n_outputs(self):
        return fnn_model_n_outputs(self._m())

    @property
    def dtype(self):
        return _np.dtype(_np.float32 if fnn_model_dtype(self._m()) == 4 else _np.float64)

    @property
    def architecture_json(self):
        """The architecture text as the file holds it."""
        return fnn_model_architecture(self._m()).decode("utf-8")

    @property
    def loss(self):
        """(loss name or None, its parameter: the huber delta)."""
        cdef const fnn_plan *p = fnn_model_plan(self._m())
        return (None if p.loss < 0 else fnn_loss_name(p.loss).decode()), p.loss_param

    @property
    def link(self):
        return fnn_act_name(fnn_model_plan(self._m()).link).decode()

    @property
    def metadata(self):
        cdef const char *k
        cdef const char *v
        out = {}
        for i in range(fnn_model_n_metadata(self._m())):
            fnn_model_metadata_at(self.m, i, &k, &v)
            out[k.decode("utf-8")] = v.decode("utf-8")
        return out

    @property
    def layers(self):
        """One dict per layer, as the C reader understood the architecture (defaults filled in)."""
        cdef const fnn_plan *p = fnn_model_plan(self._m())
        cdef const fnn_layer_desc *L
        cdef const char *name
        out = []
        for i in range(p.nl):
            L = &p.L[i]
            name = fnn_model_layer_name(self.m, i)
            kind = fnn_layer_kind_name(L.kind).decode()
            d = {"type": kind, "name": None if name == NULL else name.decode("utf-8"),
                 "trainable": bool(L.trainable), "in": L.in_, "out": L.out}
            if kind == "dropout":
                d["p"] = L.p
            elif kind in ("batch_norm", "layer_norm"):
                d["epsilon"] = L.eps
                if kind == "batch_norm":
                    d["momentum"] = L.momentum
            else:
                d["activation"] = fnn_act_name(L.act).decode()
                d["alpha"] = L.act_alpha
            if kind == "dense":
                d.update(units=L.out, use_bias=bool(L.use_bias), l1=L.l1, l2=L.l2,
                         max_norm=L.max_norm if L.max_norm > 0 else None)
            out.append(d)
        return out

    cdef dict _arrays(self, const char *base, int copies):
        """{name: array copy} of every tensor of the parameter layout at base, `copies` layouts back to
        back (named by copy index, then tensor), in layer order."""
        cdef const fnn_plan *p = fnn_model_plan(self._m())
        cdef fnn_tensor_info t[FNN_LAYER_MAX_TENSORS]
        cdef int size = fnn_model_dtype(self.m)
        cdef char[::1] dst
        cdef size_t at
        dt = self.dtype
        out = {}
        for c in range(copies):
            for i in range(p.nl):
                for k in range(fnn_layer_tensors(&p.L[i], t)):
                    a = _np.empty(_tensor_shape(&t[k]), dtype=dt)
                    dst = a.reshape(-1).view(_np.int8)
                    at = (<size_t>c * p.n_params + t[k].off) * size
                    memcpy(&dst[0], base + at, <size_t>dst.shape[0])
                    out[(c, f"layers.{i}.{t[k].name.decode()}")] = a
        return out

    def tensors(self):
        """{name: array copy} of every parameter tensor, in layer order (each layer's in buffer order)."""
        cdef size_t n
        cdef const char *base = <const char *>fnn_model_params(self._m(), &n)
        return {name: a for (_, name), a in self._arrays(base, 1).items()}

    @property
    def training(self):
        """The file's training state as a dict (docs/FORMAT.md, "training"), or None: the engine's
        optimizer descriptor (its per-step schedule under "schedule"), "epoch_schedule", "seed",
        "epochs_seen", "step", "opt_step"."""
        cdef const fnn_train_state *t = fnn_model_training(self._m(), NULL, NULL)
        if t == NULL:
            return None
        return {"optimizer": optim_dict(t.opt), "epoch_schedule": schedule_dict(t.epoch_sched), "seed": t.seed,
                "epochs_seen": t.epochs_seen, "step": t.step, "opt_step": t.opt_step}

    def optimizer_tensors(self):
        """{"optimizer.<state>.layers.<i>.<name>": array copy} of the optimizer's saved state ({} without
        a training state)."""
        cdef const void *state
        cdef int ns
        cdef const fnn_train_state *t = fnn_model_training(self._m(), &state, &ns)
        if t == NULL or ns == 0:
            return {}
        names = [fnn_optim_state_name(&t.opt, s).decode() for s in range(ns)]
        return {f"optimizer.{names[c]}.{name}": a for (c, name), a in self._arrays(<const char *>state, ns).items()}

    def predict(self, x):
        """The C API's fnn_model_predict: float32 rows in, float32 outputs (computed in the model's dtype)."""
        self._m()
        cdef const float[:, ::1] xv = _np.ascontiguousarray(x, dtype=_np.float32)
        if <size_t>xv.shape[1] != fnn_model_n_inputs(self.m):
            raise ValueError(f"x: expected {fnn_model_n_inputs(self.m)} columns, got shape {tuple(x.shape)}")
        out = _np.empty((xv.shape[0], fnn_model_n_outputs(self.m)), dtype=_np.float32)
        cdef float[:, ::1] ov = out
        cdef int rc
        if xv.shape[0] == 0:
            return out
        with nogil:
            rc = fnn_model_predict(self.m, &xv[0, 0], xv.shape[0], &ov[0, 0])
        if rc:
            raise RuntimeError(f"predict: {fnn_last_error_detail().decode()}")
        return out

    def predict_native(self, x):
        """Predict in the model's own dtype (no float32 conversion of inputs or outputs)."""
        self._m()
        xa = _np.ascontiguousarray(x, dtype=self.dtype)
        if xa.ndim != 2 or xa.shape[1] != fnn_model_n_inputs(self.m):
            raise ValueError(f"x: expected {fnn_model_n_inputs(self.m)} columns, got shape {xa.shape}")
        out = _np.empty((xa.shape[0], fnn_model_n_outputs(self.m)), dtype=self.dtype)
        cdef const char[:, ::1] xb = xa.view(_np.int8)
        cdef char[:, ::1] ob = out.view(_np.int8)
        cdef size_t rows = xa.shape[0]
        cdef int rc
        if rows == 0:
            return out
        with nogil:
            rc = fnn_model_predict_native(self.m, &xb[0, 0], rows, &ob[0, 0])
        if rc:
            raise RuntimeError(f"predict: {fnn_last_error_detail().decode()}")
        return out


def read_safetensors(data, where="<buffer>"):
    """Check `data` (the bytes of any safetensors file) with the C reader's container checks; returns
    (tensors, metadata): tensors a list of (name, dtype name, shape, begin, end) in header order, with
    begin/end byte offsets into `data`; metadata a dict (empty when the file has none)."""
    cdef const unsigned char[::1] buf = memoryview(data).cast("B")
    cdef const void *ptr = &buf[0] if buf.shape[0] else NULL
    cdef size_t n = buf.shape[0]
    cdef fnn_st_file *s = NULL
    cdef int rc
    cdef const char *name
    cdef const char *dtype
    cdef const char *k
    cdef const char *v
    cdef size_t ndim, begin, end
    cdef const uint64_t *shape
    with nogil:
        rc = fnn_st_open(ptr, n, &s)
    if rc:
        _raise_load_error(rc, where, 0)
    try:
        tensors = []
        for i in range(fnn_st_n_tensors(s)):
            fnn_st_tensor_at(s, i, &name, &dtype, &ndim, &shape, &begin, &end)
            tensors.append((name.decode("utf-8"), dtype.decode(), tuple(shape[d] for d in range(ndim)), begin, end))
        meta = {}
        for j in range(fnn_st_n_metadata(s)):
            fnn_st_metadata_at(s, j, &k, &v)
            meta[k.decode("utf-8")] = v.decode("utf-8")
    finally:
        fnn_st_close(s)
    return tensors, meta
