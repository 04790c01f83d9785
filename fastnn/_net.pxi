# The training engine (csrc/plan.c, layer.c, net.c, optim.c, rng.h).  A Net wraps one C net over the
# parameter, gradient and optimizer-state arrays that fastnn.models allocates; it keeps references to
# them so that the C pointers stay valid: a new optimizer state replaces the old reference only once C
# has taken the new buffer (under the net's lock, after any running call), so C never holds a pointer
# into an array Python has freed.  Every method converts arguments and calls C without the GIL.
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
        double max_norm
        double eps
        double momentum
        size_t s_off
        int wkind
        size_t r_off
    ctypedef struct fnn_tensor_info:
        const char *name
        size_t off
        int ndim
        size_t shape[2]
        int trainable
        int decay
        int wkind
    enum:
        FNN_LAYER_MAX_TENSORS
    int fnn_layer_tensors(const fnn_layer_desc *d, fnn_tensor_info *out)
    size_t fnn_layer_place(fnn_layer_desc *d, size_t base)
    ctypedef struct fnn_schedule:
        int kind
        double initial
        double warmup
        double period
        double factor
        int staircase
    double fnn_schedule_lr(const fnn_schedule *s, double t)
    int fnn_schedule_check(const fnn_schedule *s)
    ctypedef struct fnn_plan:
        int nl
        const fnn_layer_desc *L
        size_t n_in
        size_t n_out
        size_t n_params
        int loss
        double loss_param
        int link
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
        double clipnorm
        double global_clipnorm
        double clipvalue
        fnn_schedule sched
    ctypedef struct fnn_rows:
        const void *x
        const int64_t *indptr
        const int64_t *indices
        const void *values
    ctypedef struct fnn_snet:
        pass
    ctypedef struct fnn_dnet:
        pass
    int fnn_optim_n_state(const fnn_optim_desc *o)
    int fnn_optim_check(const fnn_optim_desc *o)
    const char *fnn_optim_state_name(const fnn_optim_desc *o, int s)
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
    void fnn_snet_set_seed(fnn_snet *net, uint64_t seed)
    void fnn_dnet_set_seed(fnn_dnet *net, uint64_t seed)
    void fnn_snet_workspace_info(const fnn_snet *net, size_t *rows, int *n_allocs)
    void fnn_dnet_workspace_info(const fnn_dnet *net, size_t *rows, int *n_allocs)
    int fnn_snet_reserve(fnn_snet *net, size_t batch)
    int fnn_dnet_reserve(fnn_dnet *net, size_t batch)
    size_t fnn_snet_workspace_bytes(fnn_snet *net, size_t batch)
    size_t fnn_dnet_workspace_bytes(fnn_dnet *net, size_t batch)
    int fnn_snet_step_threads(const fnn_snet *net, size_t batch)
    int fnn_dnet_step_threads(const fnn_dnet *net, size_t batch)
    int fnn_snet_step(fnn_snet *net, const fnn_rows *x, const int64_t *labels, const float *target,
                      const float *sample_w, size_t rows, int update, double *loss)
    int fnn_dnet_step(fnn_dnet *net, const fnn_rows *x, const int64_t *labels, const double *target,
                      const double *sample_w, size_t rows, int update, double *loss)
    int fnn_snet_fit_chunk(fnn_snet *net, const fnn_rows *x, const int64_t *labels, const float *target,
                           const float *sample_w, const int64_t *perm, size_t n, size_t batch, size_t first,
                           size_t count, double *losses, float *pred, size_t *bad)
    int fnn_dnet_fit_chunk(fnn_dnet *net, const fnn_rows *x, const int64_t *labels, const double *target,
                           const double *sample_w, const int64_t *perm, size_t n, size_t batch, size_t first,
                           size_t count, double *losses, double *pred, size_t *bad)
    int fnn_snet_forward(fnn_snet *net, const fnn_rows *x, size_t rows, size_t batch, int training, int link,
                         float *out)
    int fnn_dnet_forward(fnn_dnet *net, const fnn_rows *x, size_t rows, size_t batch, int training, int link,
                         double *out)
    int fnn_snet_copy_params(fnn_snet *net, float *dst)
    int fnn_dnet_copy_params(fnn_dnet *net, double *dst)
    int fnn_snet_gradient(fnn_snet *net, const fnn_rows *x, const int64_t *labels, const float *target,
                          const float *sample_w, size_t n, size_t batch, double *loss)
    int fnn_dnet_gradient(fnn_dnet *net, const fnn_rows *x, const int64_t *labels, const double *target,
                          const double *sample_w, size_t n, size_t batch, double *loss)
    int fnn_snet_repack(fnn_snet *net)
    int fnn_dnet_repack(fnn_dnet *net)
    int fnn_snet_set_bf16(fnn_snet *net, int on)
    int fnn_dnet_set_bf16(fnn_dnet *net, int on)
    int fnn_snet_input_ranges(fnn_snet *net, const fnn_rows *x, size_t n, size_t batch, float *lo_hi)
    int fnn_dnet_input_ranges(fnn_dnet *net, const fnn_rows *x, size_t n, size_t batch, float *lo_hi)
    size_t FNN_PLAN_NONE
    int fnn_snet_evaluate(fnn_snet *net, const fnn_rows *x, const int64_t *labels, const float *target,
                          const float *sample_w, size_t n, size_t batch, double *loss, float *pred)
    int fnn_dnet_evaluate(fnn_dnet *net, const fnn_rows *x, const int64_t *labels, const double *target,
                          const double *sample_w, size_t n, size_t batch, double *loss, double *pred)

    ctypedef struct fnn_grad_event:
        int event
        int layer
        int status
        size_t rows
        void *update
    ctypedef int (*fnn_grad_hook)(void *ctx, fnn_grad_event *e) noexcept nogil
    enum:
        FNN_GRAD_LAYER
        FNN_GRAD_STEP
    int fnn_snet_set_grad_hook(fnn_snet *net, fnn_grad_hook hook, void *ctx, int layers)
    int fnn_dnet_set_grad_hook(fnn_dnet *net, fnn_grad_hook hook, void *ctx, int layers)
    int fnn_snet_set_grads(fnn_snet *net, float *grads)
    int fnn_dnet_set_grads(fnn_dnet *net, double *grads)

GRAD_LAYER = FNN_GRAD_LAYER
GRAD_STEP = FNN_GRAD_STEP


cdef class _Hook:
    """What the C net's hook pointer holds: the Python hook and the buffers it may hand the update."""
    cdef object obj
    cdef void *bufs[2]
    cdef int nbufs
    cdef object keep


cdef int _grad_hook(void *ctx, fnn_grad_event *e) noexcept with gil:
    """The C step's gradient hook: hands the event to the Python object set by Net.set_grad_hook (its
    grad_event(event, layer, status, rows) returns 0 to go on; at a STEP event its `update` attribute,
    None or an index into the buffers given with it, says where the update reads the gradient); an
    exception is kept in its `error` and ends the step (-1)."""
    cdef _Hook c = <_Hook>ctx
    cdef int rc
    try:
        rc = c.obj.grad_event(e.event, e.layer, e.status, e.rows)
        if rc == 0 and e.event == FNN_GRAD_STEP:
            i = c.obj.update
            if i is not None:
                if not 0 <= i < c.nbufs:
                    raise IndexError(f"gradient hook: update buffer {i} of {c.nbufs}")
                e.update = c.bufs[<int>i]
    except BaseException as exc:
        c.obj.error = exc
        rc = -1
    return rc


cdef void *_gradient_buffer(object a, bint dbl, size_t n) except? NULL:
    """The data of a 1-D C-contiguous array of the net's dtype holding at least n values."""
    cdef float[::1] f
    cdef double[::1] d
    if dbl:
        d = a
        if <size_t>d.shape[0] < n or n == 0:
            raise ValueError(f"gradient buffer: expected {n} float64 values, got {d.shape[0]}")
        return &d[0]
    f = a
    if <size_t>f.shape[0] < n or n == 0:
        raise ValueError(f"gradient buffer: expected {n} float32 values, got {f.shape[0]}")
    return &f[0]


cdef extern from "rng.h" nogil:
    void fnn_philox4x32(const uint32_t *ctr, const uint32_t *key, uint32_t *out)
    void fnn_permutation(uint64_t seed, uint64_t epoch, int64_t *perm, size_t n)


cdef fnn_schedule schedule_desc(dict sc):
    """A C schedule from {"kind", "initial", "warmup", "period", "factor", "staircase"} (None: none)."""
    cdef fnn_schedule d
    d.kind = SCHEDULES["none" if sc is None else sc["kind"]]
    sc = sc or {}
    d.initial = sc.get("initial", 0.0)
    d.warmup = sc.get("warmup", 0.0)
    d.period = sc.get("period", 1.0)
    d.factor = sc.get("factor", 1.0)
    d.staircase = sc.get("staircase", False)
    return d


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
    d.clipnorm = o.get("clipnorm") or 0.0
    d.global_clipnorm = o.get("global_clipnorm") or 0.0
    d.clipvalue = o.get("clipvalue") or 0.0
    d.sched = schedule_desc(o.get("schedule"))
    return d


cdef object schedule_dict(fnn_schedule s):
    """The dict schedule_desc takes, of a C schedule (None for none)."""
    if s.kind == SCHEDULES["none"]:
        return None
    return {"kind": fnn_schedule_name(s.kind).decode(), "initial": s.initial, "warmup": s.warmup,
            "period": s.period, "factor": s.factor, "staircase": bool(s.staircase)}


cdef dict optim_dict(fnn_optim_desc o):
    """Every field of a C optimizer descriptor (clipping off: None)."""
    return {"kind": fnn_optim_name(o.kind).decode(), "lr": o.lr, "momentum": o.momentum,
            "nesterov": bool(o.nesterov), "weight_decay": o.weight_decay, "beta1": o.beta1, "beta2": o.beta2,
            "eps": o.eps, "alpha": o.alpha, "centered": bool(o.centered), "clipnorm": o.clipnorm or None,
            "global_clipnorm": o.global_clipnorm or None, "clipvalue": o.clipvalue or None,
            "schedule": schedule_dict(o.sched)}


def optim_engine(dict o):
    """The engine's whole descriptor of the optimizer `o` describes (every field, defaults filled in)."""
    return optim_dict(optim_desc(o))


def optim_n_state(dict o):
    """Parameter-sized state buffers the optimizer described by `o` needs."""
    cdef fnn_optim_desc d = optim_desc(o)
    return fnn_optim_n_state(&d)


def optim_state_names(dict o):
    """The names of the optimizer's state buffers, in the order the engine keeps them."""
    cdef fnn_optim_desc d = optim_desc(o)
    return [fnn_optim_state_name(&d, s).decode() for s in range(fnn_optim_n_state(&d))]


def optim_check(dict o):
    """True when the engine runs the optimizer `o` describes (ranges, one clipping, a valid schedule)."""
    cdef fnn_optim_desc d = optim_desc(o)
    return fnn_optim_check(&d) == FNN_OK


def schedule_lr(dict sc, double t):
    """The rate of the schedule `sc` at step (or epoch) t, computed by the engine's formula (NaN if
    the schedule is invalid)."""
    cdef fnn_schedule d = schedule_desc(sc)
    return fnn_schedule_lr(&d, t)


cdef int layer_desc(dict l, fnn_layer_desc *d) except -1:
    """A C layer descriptor from its dict (see Net)."""
    d.kind = LAYER_KINDS[l["kind"]]
    d.act = ACTIVATIONS[l.get("act") or "linear"]
    d.act_alpha = l.get("act_alpha", 0.0)
    d.in_ = l["in"]
    d.out = l["out"]
    d.use_bias = l.get("use_bias", False)
    d.trainable = l.get("trainable", True)
    d.l1 = l.get("l1", 0.0)
    d.l2 = l.get("l2", 0.0)
    d.w_off = l.get("w_off", 0)
    d.b_off = l.get("b_off", 0)
    d.p = l.get("p", 0.0)
    d.max_norm = l.get("max_norm") or 0.0
    d.eps = l.get("eps", 0.0)
    d.momentum = l.get("momentum", 0.0)
    d.s_off = l.get("s_off", 0)
    d.wkind = WEIGHT_KINDS[l.get("wkind") or "native"]
    d.r_off = l["r_off"] if l.get("r_off") is not None else FNN_PLAN_NONE
    return 0


def layer_place(dict l, size_t base):
    """The layer dict `l` with its tensors laid out back to back from `base` (w_off, b_off, s_off set as
    the engine and the model-file reader lay them out)."""
    cdef fnn_layer_desc d
    layer_desc(l, &d)
    fnn_layer_place(&d, base)
    return dict(l, w_off=d.w_off, b_off=d.b_off, s_off=d.s_off, r_off=None if d.r_off == FNN_PLAN_NONE else d.r_off)


def layer_tensors(dict l):
    """[(name, shape, offset, has_gradient)] of the layer's tensors, in buffer order (from C)."""
    cdef fnn_layer_desc d
    cdef fnn_tensor_info t[FNN_LAYER_MAX_TENSORS]
    layer_desc(l, &d)
    n = fnn_layer_tensors(&d, t)
    return [(t[k].name.decode(), _tensor_shape(&t[k]), t[k].off, bool(t[k].trainable)) for k in range(n)]


cdef tuple _tensor_shape(const fnn_tensor_info *t):
    if t.ndim == 2:
        return (t.shape[0], t.shape[1])
    return (t.shape[0],)


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
    """One C net.  `layers`: list of dicts (kind, act, act_alpha, in, out, use_bias, trainable, l1, l2,
    w_off, b_off, p, max_norm, eps, momentum, s_off, and for low-precision Dense layers wkind and r_off) with
    kind, act and wkind given by name; params/grads: 1-D contiguous float32 or float64 arrays of the same
    dtype."""
    cdef fnn_snet *s
    cdef fnn_dnet *d
    cdef readonly object params, grads, state, grad_hook, grads_in_use
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
                layer_desc(l, &ld[i])
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
        """The activation predict applies to the output: "softmax", "sigmoid" or "linear"."""
        return fnn_act_name(fnn_dnet_link(self.d) if self.is_double else fnn_snet_link(self.s)).decode()

    def set_optim(self, dict o, state):
        """The optimizer `o` over `state`; the previous state array stays referenced until C has let it go."""
        cdef fnn_optim_desc d = optim_desc(o)
        cdef float[::1] fs
        cdef double[::1] ds
        cdef int rc
        if self.is_double:
            ds = state
            with nogil:
                rc = fnn_dnet_set_optim(self.d, &d, &ds[0] if ds.shape[0] else NULL, ds.shape[0])
        else:
            fs = state
            with nogil:
                rc = fnn_snet_set_optim(self.s, &d, &fs[0] if fs.shape[0] else NULL, fs.shape[0])
        check(rc, "optimizer")
        self.state = state  # C points here now, and no call of it uses the old array any more

    def copy_params(self):
        """A copy of the parameters taken between two training steps (under the net's lock)."""
        out = _np.empty_like(self.params)
        cdef float[::1] fo
        cdef double[::1] do
        cdef int rc
        if self.is_double:
            do = out
            with nogil:
                rc = fnn_dnet_copy_params(self.d, &do[0] if do.shape[0] else NULL)
        else:
            fo = out
            with nogil:
                rc = fnn_snet_copy_params(self.s, &fo[0] if fo.shape[0] else NULL)
        check(rc, "parameters")
        return out

    def set_grad_hook(self, hook, bint layers=False, update_buffers=()):
        """Call hook.grad_event(event, layer, status, rows) from every step of net_fit_chunk, between the
        backward pass and the update (csrc/net.h, "the gradient hook"); layers: per-layer events too;
        update_buffers: up to 2 arrays of the gradient layout the hook may point the update at.  None
        removes it."""
        cdef fnn_grad_hook fn = NULL
        cdef _Hook c = None
        if hook is not None:
            if len(update_buffers) > 2:
                raise ValueError("set_grad_hook: at most 2 update buffers")
            c = _Hook()
            c.obj, c.keep, c.nbufs = hook, tuple(update_buffers), len(update_buffers)
            n = self.params.shape[0]
            for i, b in enumerate(c.keep):
                c.bufs[i] = _gradient_buffer(b, self.is_double, n)
            fn = _grad_hook
        self.grad_hook = c  # the C net holds a borrowed pointer: keep the object alive here
        if self.is_double:
            fnn_dnet_set_grad_hook(self.d, fn, <void *>c, layers)
        else:
            fnn_snet_set_grad_hook(self.s, fn, <void *>c, layers)

    def set_grads(self, buf):
        """The backward pass writes into buf (1-D, the gradient layout; zeroed here) instead of `grads`;
        None: back to `grads`."""
        cdef void *p = NULL
        if buf is not None:
            p = _gradient_buffer(buf, self.is_double, self.params.shape[0])
        self.grads_in_use = buf
        if self.is_double:
            fnn_dnet_set_grads(self.d, <double *>p)
        else:
            fnn_snet_set_grads(self.s, <float *>p)

    def set_trainable(self, int layer, bint trainable):
        cdef int rc
        with nogil:
            rc = fnn_dnet_set_trainable(self.d, layer, trainable) if self.is_double \
                else fnn_snet_set_trainable(self.s, layer, trainable)
        check(rc, "trainable")

    def set_seed(self, uint64_t seed):
        """Key the dropout masks of the following steps by `seed`."""
        if self.is_double:
            fnn_dnet_set_seed(self.d, seed)
        else:
            fnn_snet_set_seed(self.s, seed)

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

    def repack(self):
        """The int8 weights in params changed: pack them again."""
        check(fnn_dnet_repack(self.d) if self.is_double else fnn_snet_repack(self.s), "repack")

    def set_bf16(self, bint on):
        """Training steps multiply in bfloat16 (on) or in the net's dtype."""
        check(fnn_dnet_set_bf16(self.d, on) if self.is_double else fnn_snet_set_bf16(self.s, on), "precision")

    def reserve(self, size_t batch):
        cdef int rc
        with nogil:
            rc = fnn_dnet_reserve(self.d, batch) if self.is_double else fnn_snet_reserve(self.s, batch)
        if rc == FNN_ERR_NOMEM:
            raise MemoryError(f"workspace: cannot allocate {self.workspace_bytes(batch):,} bytes for {batch:,} rows")
        check(rc, "workspace")


# Data arguments, validated by the caller (fastnn.models): x, the input rows, either a C-contiguous
# 2-D array of the net's dtype or a CSR triple (indptr, indices, values) with int64 indptr/indices
# (indptr[0] = 0, non-decreasing, indices in [0, n_in)) and values of the net's dtype; labels int64;
# target (rows x n_out) and sample_w (1-D) in the net's dtype; None where absent.  Inputs are read
# through const views, so read-only arrays (np.frombuffer, read-only memmaps) are used in place.

cdef int64_t _no_index = 0

cdef inline const int64_t *_i64(const int64_t[::1] a) noexcept nogil:
    return &a[0] if a is not None and a.shape[0] else NULL


cdef const void *_ptr(object a, bint dbl) except? NULL:
    """The data of a C-contiguous 1-D or 2-D array of the net's dtype, or NULL for None (or no values)."""
    cdef const float[::1] f1
    cdef const double[::1] d1
    cdef const float[:, ::1] f2
    cdef const double[:, ::1] d2
    if a is None:
        return NULL
    if a.ndim == 1:
        if dbl:
            d1 = a
            return &d1[0] if d1.shape[0] else NULL
        f1 = a
        return &f1[0] if f1.shape[0] else NULL
    if dbl:
        d2 = a
        return &d2[0, 0] if d2.shape[0] and d2.shape[1] else NULL
    f2 = a
    return &f2[0, 0] if f2.shape[0] and f2.shape[1] else NULL


cdef size_t _rows(fnn_rows *r, object x, bint dbl) except? 0:
    """Point r at the input rows x; returns how many rows there are."""
    cdef const int64_t[::1] ip
    cdef const int64_t[::1] ix
    r.x = r.indptr = r.indices = r.values = NULL
    if isinstance(x, tuple):
        ip, ix = x[0], x[1]
        r.indptr = &ip[0]
        r.indices = &ix[0] if ix.shape[0] else &_no_index
        r.values = _ptr(x[2], dbl)
        if r.values == NULL:
            r.values = &_no_index  # no stored value: nothing is read
        return ip.shape[0] - 1
    r.x = _ptr(x, dbl)
    return x.shape[0]


def net_step(Net net, x, const int64_t[::1] labels, target, sample_w, bint update):
    """One training step (update) or gradient computation; returns (rc, loss)."""
    cdef fnn_rows r
    cdef size_t rows = _rows(&r, x, net.is_double)
    cdef double loss = 0
    cdef int rc
    cdef const int64_t *lp = _i64(labels)
    cdef const void *tp = _ptr(target, net.is_double)
    cdef const void *wp = _ptr(sample_w, net.is_double)
    with nogil:
        if net.is_double:
            rc = fnn_dnet_step(net.d, &r, lp, <const double *>tp, <const double *>wp, rows, update, &loss)
        else:
            rc = fnn_snet_step(net.s, &r, lp, <const float *>tp, <const float *>wp, rows, update, &loss)
    return rc, loss


def net_gradient(Net net, x, const int64_t[::1] labels, target, sample_w, size_t batch):
    """The loss and gradients of a training step on every row (no update), batch rows at a time;
    returns (rc, loss)."""
    cdef fnn_rows r
    cdef size_t rows = _rows(&r, x, net.is_double)
    cdef double loss = 0
    cdef int rc
    cdef const int64_t *lp = _i64(labels)
    cdef const void *tp = _ptr(target, net.is_double)
    cdef const void *wp = _ptr(sample_w, net.is_double)
    with nogil:
        if net.is_double:
            rc = fnn_dnet_gradient(net.d, &r, lp, <const double *>tp, <const double *>wp, rows, batch, &loss)
        else:
            rc = fnn_snet_gradient(net.s, &r, lp, <const float *>tp, <const float *>wp, rows, batch, &loss)
    return rc, loss


def net_fit_chunk(Net net, x, const int64_t[::1] labels, target, sample_w, const int64_t[::1] perm, size_t batch,
                  size_t first, double[::1] losses, pred):
    """Batches [first, first + len(losses)) of the epoch; returns (rc, index of the failed batch)."""
    cdef fnn_rows r
    cdef size_t n = _rows(&r, x, net.is_double)
    cdef int rc
    cdef size_t bad = 0
    cdef const int64_t *lp = _i64(labels)
    cdef const int64_t *pp = _i64(perm)
    cdef const void *tp = _ptr(target, net.is_double)
    cdef const void *wp = _ptr(sample_w, net.is_double)
    cdef void *op = <void *>_ptr(pred, net.is_double)
    with nogil:
        if net.is_double:
            rc = fnn_dnet_fit_chunk(net.d, &r, lp, <const double *>tp, <const double *>wp, pp, n, batch, first,
                                    losses.shape[0], &losses[0], <double *>op, &bad)
        else:
            rc = fnn_snet_fit_chunk(net.s, &r, lp, <const float *>tp, <const float *>wp, pp, n, batch, first,
                                    losses.shape[0], &losses[0], <float *>op, &bad)
    return rc, bad


def net_forward(Net net, x, size_t batch, bint training, bint link, out):
    """out (rows x n_out, the net's dtype) = the output for x; link: apply the loss's link."""
    cdef fnn_rows r
    cdef size_t rows = _rows(&r, x, net.is_double)
    cdef void *op = <void *>_ptr(out, net.is_double)
    cdef int rc
    with nogil:
        if net.is_double:
            rc = fnn_dnet_forward(net.d, &r, rows, batch, training, link, <double *>op)
        else:
            rc = fnn_snet_forward(net.s, &r, rows, batch, training, link, <float *>op)
    check(rc, "forward")


def net_evaluate(Net net, x, const int64_t[::1] labels, target, sample_w, size_t batch, pred):
    """Mean loss (plus penalties) in inference mode; pred receives the linked outputs when given."""
    cdef fnn_rows r
    cdef size_t n = _rows(&r, x, net.is_double)
    cdef double loss = 0
    cdef int rc
    cdef const int64_t *lp = _i64(labels)
    cdef const void *tp = _ptr(target, net.is_double)
    cdef const void *wp = _ptr(sample_w, net.is_double)
    cdef void *op = <void *>_ptr(pred, net.is_double)
    with nogil:
        if net.is_double:
            rc = fnn_dnet_evaluate(net.d, &r, lp, <const double *>tp, <const double *>wp, n, batch, &loss,
                                   <double *>op)
        else:
            rc = fnn_snet_evaluate(net.s, &r, lp, <const float *>tp, <const float *>wp, n, batch, &loss,
                                   <float *>op)
    check(rc, "evaluate")
    return loss


def net_input_ranges(Net net, x, size_t batch, float[::1] lo_hi):
    """lo_hi[2l], lo_hi[2l + 1] = the range of layer l's input over the rows of x (inference mode)."""
    cdef fnn_rows r
    cdef size_t n = _rows(&r, x, net.is_double)
    cdef int rc
    with nogil:
        if net.is_double:
            rc = fnn_dnet_input_ranges(net.d, &r, n, batch, &lo_hi[0])
        else:
            rc = fnn_snet_input_ranges(net.s, &r, n, batch, &lo_hi[0])
    check(rc, "input ranges")
