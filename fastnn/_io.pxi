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
            d = {"type": fnn_layer_kind_name(L.kind).decode(), "name": None if name == NULL else name.decode("utf-8"),
                 "trainable": bool(L.trainable), "in": L.in_, "out": L.out}
            if L.kind == LAYER_KINDS["dropout"]:
                d["p"] = L.p
            else:
                d["activation"] = fnn_act_name(L.act).decode()
                d["alpha"] = L.act_alpha
            if L.kind == LAYER_KINDS["dense"]:
                d.update(units=L.out, use_bias=bool(L.use_bias), l1=L.l1, l2=L.l2)
                if L.wkind != WEIGHT_KINDS["native"]:
                    d["precision"] = fnn_weight_kind_name(L.wkind).decode()
                if L.wkind == WEIGHT_KINDS["int8"]:
                    d["input_scales"] = "per_row" if L.r_off == FNN_PLAN_NONE else "calibrated"
            out.append(d)
        return out

    def tensors(self):
        """{name: array copy} of every tensor, in layer order (weight (in, out), then bias)."""
        cdef const fnn_plan *p = fnn_model_plan(self._m())
        cdef const fnn_layer_desc *L
        cdef size_t n
        cdef const char *base = <const char *>fnn_model_params(self.m, &n)
        cdef int size = fnn_model_dtype(self.m)
        cdef object a
        cdef char[::1] dst
        dt = self.dtype
        out = {}
        for i in range(p.nl):
            L = &p.L[i]
            if L.kind != LAYER_KINDS["dense"]:
                continue
            int8 = L.wkind == WEIGHT_KINDS["int8"]
            for name, off, shape, t in ((f"layers.{i}.weight", L.w_off, (L.in_, L.out), _np.int8 if int8 else dt),
                                        (f"layers.{i}.bias", L.b_off, (L.out,), dt),
                                        (f"layers.{i}.weight_scale", L.s_off, (L.out,), dt),
                                        (f"layers.{i}.input_range", L.r_off, (2,), dt)):
                if (name.endswith(".bias") and not L.use_bias) or (name.endswith("_scale") and not int8) or \
                        (name.endswith("_range") and (not int8 or L.r_off == FNN_PLAN_NONE)):
                    continue
                a = _np.empty(shape, dtype=t)
                dst = a.reshape(-1).view(_np.int8)
                memcpy(&dst[0], base + <size_t>off * size, <size_t>dst.shape[0])
                out[name] = a
        return out

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
