# The training engine (csrc/net.c, csrc/optim.c, csrc/rng.h).  A Net wraps one C plan over the
# parameter, gradient and optimizer-state arrays that fastnn.models allocates; it keeps references to
# them so that the C pointers stay valid.  Every method converts arguments and calls C without the GIL.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "net.h" nogil:
    ctypedef struct fnn_layer_desc:
        int kind
        int act
        double act_alpha
        size_t in_ "in"
        size_t out
        int use_bias
        int trainable
        double l1
        double l2
        size_t w_off
        size_t b_off
        double p
    ctypedef struct fnn_optim_desc:
        int kind
        double lr
        double momentum
        int nesterov
        double weight_decay
        double beta1
        double beta2
        double eps
        double alpha
        int centered
    ctypedef struct fnn_snet:
        pass
    ctypedef struct fnn_dnet:
        pass
    int fnn_optim_n_state(const fnn_optim_desc *o)
    int fnn_snet_new(fnn_snet **out, const fnn_layer_desc *layers, int n_layers, size_t n_in, float *params,
                     float *grads, size_t n_params, uint64_t seed)
    int fnn_dnet_new(fnn_dnet **out, const fnn_layer_desc *layers, int n_layers, size_t n_in, double *params,
                     double *grads, size_t n_params, uint64_t seed)
    void fnn_snet_free(fnn_snet *net)
    void fnn_dnet_free(fnn_dnet *net)
    int fnn_snet_set_loss(fnn_snet *net, int loss, double param)
    int fnn_dnet_set_loss(fnn_dnet *net, int loss, double param)
    int fnn_snet_link(const fnn_snet *net)
    int fnn_dnet_link(const fnn_dnet *net)
    int fnn_snet_set_optim(fnn_snet *net, const fnn_optim_desc *o, float *state, size_t n_state)
    int fnn_dnet_set_optim(fnn_dnet *net, const fnn_optim_desc *o, double *state, size_t n_state)
    int fnn_snet_set_trainable(fnn_snet *net, int layer, int trainable)
    int fnn_dnet_set_trainable(fnn_dnet *net, int layer, int trainable)
    void fnn_snet_get_counters(const fnn_snet *net, int64_t *step, int64_t *opt_step)
    void fnn_dnet_get_counters(const fnn_dnet *net, int64_t *step, int64_t *opt_step)
    void fnn_snet_set_counters(fnn_snet *net, int64_t step, int64_t opt_step)
    void fnn_dnet_set_counters(fnn_dnet *net, int64_t step, int64_t opt_step)
    void fnn_snet_workspace_info(const fnn_snet *net, size_t *rows, int *n_allocs)
    void fnn_dnet_workspace_info(const fnn_dnet *net, size_t *rows, int *n_allocs)
    int fnn_snet_reserve(fnn_snet *net, size_t batch)
    int fnn_dnet_reserve(fnn_dnet *net, size_t batch)
    size_t fnn_snet_workspace_bytes(fnn_snet *net, size_t batch)
    size_t fnn_dnet_workspace_bytes(fnn_dnet *net, size_t batch)
    int fnn_snet_step_threads(const fnn_snet *net, size_t batch)
    int fnn_dnet_step_threads(const fnn_dnet *net, size_t batch)
    int fnn_snet_step(fnn_snet *net, const float *x, const int64_t *labels, const float *target,
                      const float *sample_w, size_t rows, int update, double *loss)
    int fnn_dnet_step(fnn_dnet *net, const double *x, const int64_t *labels, const double *target,
                      const double *sample_w, size_t rows, int update, double *loss)
    int fnn_snet_fit_chunk(fnn_snet *net, const float *x, const int64_t *labels, const float *target,
                           const float *sample_w, const int64_t *perm, size_t n, size_t batch, size_t first,
                           size_t count, double *losses, float *pred, size_t *bad)
    int fnn_dnet_fit_chunk(fnn_dnet *net, const double *x, const int64_t *labels, const double *target,
                           const double *sample_w, const int64_t *perm, size_t n, size_t batch, size_t first,
                           size_t count, double *losses, double *pred, size_t *bad)
    int fnn_snet_forward(fnn_snet *net, const float *x, size_t rows, size_t batch, int training, int link,
                         float *out)
    int fnn_dnet_forward(fnn_dnet *net, const double *x, size_t rows, size_t batch, int training, int link,
                         double *out)
    int fnn_snet_evaluate(fnn_snet *net, const float *x, const int64_t *labels, const float *target,
                          const float *sample_w, size_t n, size_t batch, double *loss, float *pred)
    int fnn_dnet_evaluate(fnn_dnet *net, const double *x, const int64_t *labels, const double *target,
                          const double *sample_w, size_t n, size_t batch, double *loss, double *pred)

cdef extern from "rng.h" nogil:
    void fnn_philox4x32(const uint32_t *ctr, const uint32_t *key, uint32_t *out)
    void fnn_permutation(uint64_t seed, uint64_t epoch, int64_t *perm, size_t n)

ERR_NONFINITE = 6

LAYER_KINDS = {"dense": 0, "dropout": 1, "activation": 2}
ACTIVATIONS = {"linear": 0, "relu": 1, "leaky_relu": 2, "elu": 3, "sigmoid": 4, "tanh": 5, "gelu": 6,
               "silu": 7, "softmax": 8, "log_softmax": 9}
LOSSES = {"cross_entropy": 0, "binary_cross_entropy": 1, "mse": 2, "mae": 3, "huber": 4}
OPTIMIZERS = {"sgd": 0, "adam": 1, "adamw": 2, "rmsprop": 3}


def check(int rc, str what):
    """Raise the Python error of a C error code."""
    if rc == 0:
        return
    msg = f"{what}: {fnn_strerror(rc).decode()}"
    if rc == 1:
        raise MemoryError(msg)
    raise ValueError(msg)


cdef fnn_optim_desc optim_desc(dict o):
    cdef fnn_optim_desc d
    d.kind = OPTIMIZERS[o["kind"]]
    d.lr = o.get("lr", 0.0)
    d.momentum = o.get("momentum", 0.0)
    d.nesterov = o.get("nesterov", False)
    d.weight_decay = o.get("weight_decay", 0.0)
    d.beta1 = o.get("beta1", 0.9)
    d.beta2 = o.get("beta2", 0.999)
    d.eps = o.get("eps", 1e-8)
    d.alpha = o.get("alpha", 0.99)
    d.centered = o.get("centered", False)
    return d


def optim_n_state(dict o):
    """Parameter-sized state buffers the optimizer described by `o` needs."""
    cdef fnn_optim_desc d = optim_desc(o)
    return fnn_optim_n_state(&d)


def philox(ctr, key):
    """Philox4x32-10 of a 4-word counter and a 2-word key (the known-answer tests use it)."""
    cdef uint32_t c[4]
    cdef uint32_t k[2]
    cdef uint32_t r[4]
    for i in range(4):
        c[i] = ctr[i]
    k[0] = key[0]
    k[1] = key[1]
    fnn_philox4x32(c, k, r)
    return (r[0], r[1], r[2], r[3])


def permutation(uint64_t seed, uint64_t epoch, int64_t[::1] perm):
    """perm = the epoch's shuffle of range(len(perm)), a function of (seed, epoch) only."""
    with nogil:
        fnn_permutation(seed, epoch, &perm[0] if perm.shape[0] else NULL, perm.shape[0])


cdef class Net:
    """One C plan.  `layers`: list of dicts (kind, act, act_alpha, in, out, use_bias, trainable, l1, l2,
    w_off, b_off, p); params/grads: 1-D contiguous float32 or float64 arrays of the same dtype."""
    cdef fnn_snet *s
    cdef fnn_dnet *d
    cdef readonly object params, grads, state
    cdef readonly bint is_double

    def __cinit__(self, list layers, size_t n_in, params, grads, uint64_t seed):
        cdef int n = len(layers), rc
        cdef fnn_layer_desc *ld = <fnn_layer_desc *>PyMem_Malloc(max(n, 1) * sizeof(fnn_layer_desc))
        cdef float[::1] fp, fg
        cdef double[::1] dp, dg
        if ld == NULL:
            raise MemoryError()
        try:
            for i, l in enumerate(layers):
                ld[i].kind = LAYER_KINDS[l["kind"]]
                ld[i].act = ACTIVATIONS[l.get("act") or "linear"]
                ld[i].act_alpha = l.get("act_alpha", 0.0)
                ld[i].in_ = l["in"]
                ld[i].out = l["out"]
                ld[i].use_bias = l.get("use_bias", False)
                ld[i].trainable = l.get("trainable", True)
                ld[i].l1 = l.get("l1", 0.0)
                ld[i].l2 = l.get("l2", 0.0)
                ld[i].w_off = l.get("w_off", 0)
                ld[i].b_off = l.get("b_off", 0)
                ld[i].p = l.get("p", 0.0)
            self.params, self.grads = params, grads
            self.is_double = params.dtype.itemsize == 8
            if self.is_double:
                dp, dg = params, grads
                with nogil:
                    rc = fnn_dnet_new(&self.d, ld, n, n_in, &dp[0] if dp.shape[0] else NULL,
                                      &dg[0] if dg.shape[0] else NULL, dp.shape[0], seed)
            else:
                fp, fg = params, grads
                with nogil:
                    rc = fnn_snet_new(&self.s, ld, n, n_in, &fp[0] if fp.shape[0] else NULL,
                                      &fg[0] if fg.shape[0] else NULL, fp.shape[0], seed)
            check(rc, "network")
        finally:
            PyMem_Free(ld)

    def __dealloc__(self):
        if self.s != NULL:
            fnn_snet_free(self.s)
        if self.d != NULL:
            fnn_dnet_free(self.d)

    def set_loss(self, str loss, double param):
        """Set the loss by name (None: no loss, raw outputs)."""
        cdef int code = -1 if loss is None else LOSSES[loss]
        check(fnn_dnet_set_loss(self.d, code, param) if self.is_double else fnn_snet_set_loss(self.s, code, param),
              "loss")

    @property
    def link(self):
        cdef int code = fnn_dnet_link(self.d) if self.is_double else fnn_snet_link(self.s)
        return {0: "linear", 4: "sigmoid", 8: "softmax"}[code]

    def set_optim(self, dict o, state):
        cdef fnn_optim_desc d = optim_desc(o)
        cdef float[::1] fs
        cdef double[::1] ds
        cdef int rc
        self.state = state
        if self.is_double:
            ds = state
            rc = fnn_dnet_set_optim(self.d, &d, &ds[0] if ds.shape[0] else NULL, ds.shape[0])
        else:
            fs = state
            rc = fnn_snet_set_optim(self.s, &d, &fs[0] if fs.shape[0] else NULL, fs.shape[0])
        check(rc, "optimizer")

    def set_trainable(self, int layer, bint trainable):
        check(fnn_dnet_set_trainable(self.d, layer, trainable) if self.is_double
              else fnn_snet_set_trainable(self.s, layer, trainable), "trainable")

    @property
    def counters(self):
        """(training steps taken, optimizer steps taken)."""
        cdef int64_t step, opt_step
        if self.is_double:
            fnn_dnet_get_counters(self.d, &step, &opt_step)
        else:
            fnn_snet_get_counters(self.s, &step, &opt_step)
        return step, opt_step

    @counters.setter
    def counters(self, value):
        if self.is_double:
            fnn_dnet_set_counters(self.d, value[0], value[1])
        else:
            fnn_snet_set_counters(self.s, value[0], value[1])

    @property
    def workspace(self):
        """(rows the workspace holds, allocations so far)."""
        cdef size_t rows
        cdef int n
        if self.is_double:
            fnn_dnet_workspace_info(self.d, &rows, &n)
        else:
            fnn_snet_workspace_info(self.s, &rows, &n)
        return rows, n

    def step_threads(self, size_t batch):
        return fnn_dnet_step_threads(self.d, batch) if self.is_double else fnn_snet_step_threads(self.s, batch)

    def workspace_bytes(self, size_t batch):
        """Bytes of the workspace for `batch` rows (2**64 - 1 when that overflows)."""
        return fnn_dnet_workspace_bytes(self.d, batch) if self.is_double else fnn_snet_workspace_bytes(self.s, batch)

    def reserve(self, size_t batch):
        cdef int rc
        with nogil:
            rc = fnn_dnet_reserve(self.d, batch) if self.is_double else fnn_snet_reserve(self.s, batch)
        if rc == 1:
            raise MemoryError(f"workspace: cannot allocate {self.workspace_bytes(batch):,} bytes for {batch:,} rows")
        check(rc, "workspace")


# Data arguments: x (rows x n_in) and target (rows x n_out) C-contiguous in the net's dtype, labels
# int64, sample_w 1-D; None where absent.  The caller (fastnn.models) has validated shapes and ranges.
# Inputs are const views, so read-only arrays (np.frombuffer, read-only memmaps) are used in place.

cdef inline const int64_t *lab_ptr(const int64_t[::1] a) noexcept nogil:
    return &a[0] if a is not None and a.shape[0] else NULL


def net_step(Net net, const floating[:, ::1] x, const int64_t[::1] labels, const floating[:, ::1] target,
             const floating[::1] sample_w, bint update):
    """One training step (update) or gradient computation; returns (rc, loss)."""
    cdef double loss = 0
    cdef int rc
    cdef const int64_t *lp = lab_ptr(labels)
    cdef const floating *tp = &target[0, 0] if target is not None else NULL
    cdef const floating *wp = &sample_w[0] if sample_w is not None else NULL
    with nogil:
        if floating is double:
            rc = fnn_dnet_step(net.d, &x[0, 0], lp, tp, wp, x.shape[0], update, &loss)
        else:
            rc = fnn_snet_step(net.s, &x[0, 0], lp, tp, wp, x.shape[0], update, &loss)
    return rc, loss


def net_fit_chunk(Net net, const floating[:, ::1] x, const int64_t[::1] labels, const floating[:, ::1] target,
                  const floating[::1] sample_w, const int64_t[::1] perm, size_t batch, size_t first,
                  double[::1] losses, floating[:, ::1] pred):
    """Batches [first, first + len(losses)) of the epoch; returns (rc, index of the failed batch)."""
    cdef int rc
    cdef size_t bad = 0
    cdef const int64_t *lp = lab_ptr(labels)
    cdef const int64_t *pp = lab_ptr(perm)
    cdef const floating *tp = &target[0, 0] if target is not None else NULL
    cdef const floating *wp = &sample_w[0] if sample_w is not None else NULL
    cdef floating *op = &pred[0, 0] if pred is not None else NULL
    with nogil:
        if floating is double:
            rc = fnn_dnet_fit_chunk(net.d, &x[0, 0], lp, tp, wp, pp, x.shape[0], batch, first, losses.shape[0],
                                    &losses[0], op, &bad)
        else:
            rc = fnn_snet_fit_chunk(net.s, &x[0, 0], lp, tp, wp, pp, x.shape[0], batch, first, losses.shape[0],
                                    &losses[0], op, &bad)
    return rc, bad


def net_forward(Net net, const floating[:, ::1] x, size_t batch, bint training, bint link, floating[:, ::1] out):
    cdef int rc
    with nogil:
        if floating is double:
            rc = fnn_dnet_forward(net.d, &x[0, 0], x.shape[0], batch, training, link, &out[0, 0])
        else:
            rc = fnn_snet_forward(net.s, &x[0, 0], x.shape[0], batch, training, link, &out[0, 0])
    check(rc, "forward")


def net_evaluate(Net net, const floating[:, ::1] x, const int64_t[::1] labels, const floating[:, ::1] target,
                 const floating[::1] sample_w, size_t batch, floating[:, ::1] pred):
    """Mean loss (plus penalties) in inference mode; pred receives the linked outputs when given."""
    cdef double loss = 0
    cdef int rc
    cdef const int64_t *lp = lab_ptr(labels)
    cdef const floating *tp = &target[0, 0] if target is not None else NULL
    cdef const floating *wp = &sample_w[0] if sample_w is not None else NULL
    cdef floating *op = &pred[0, 0] if pred is not None else NULL
    with nogil:
        if floating is double:
            rc = fnn_dnet_evaluate(net.d, &x[0, 0], lp, tp, wp, x.shape[0], batch, &loss, op)
        else:
            rc = fnn_snet_evaluate(net.s, &x[0, 0], lp, tp, wp, x.shape[0], batch, &loss, op)
    check(rc, "evaluate")
    return loss
