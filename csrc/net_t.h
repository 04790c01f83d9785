/* net_t.h - body of the training net, included by net.c once per dtype (FNN_T, FNN_P).
 *
 * Workspace of one allocation for `cap` rows (every buffer row-major, B <= cap rows in use):
 *   lay        cap x plan.cols   each layer's output (and kept pre-activations), laid out by the plan;
 *                                an inference pass uses the plan's smaller inference layout in it;
 *              + plan.stats      then the BatchNorm layers' batch statistics of a training pass
 *   g[0], g[1] cap x max width   ping-pong gradients flowing down (dL/dy, then dL/dx)
 *   xb         cap x n_in        the batch's rows when they must be gathered (a shuffle, CSR input)
 *   tb, wb, lb                   the batch's targets, sample weights and labels, gathered likewise
 * in[0..nl] (allocated with the net) points at each layer's input in the last training forward.
 * acc (n_params values, allocated by the first batched gradient) accumulates fnn_net_gradient's batches.
 */
#define T FNN_T
#define NET FNN_CAT(FNN_CAT(fnn_, FNN_P), net)

struct NET {
    mtx_t lock;             /* held by every entry point: the workspace and settings are shared */
    fnn_plan plan;
    T *params, *grads;      /* the caller's buffers (grads: the one set_grads chose) */
    T *grads0;              /* the gradient buffer the net was made with */
    T *state;               /* the caller's optimizer state, n_state copies of the parameter layout */
    int n_state, has_opt;
    fnn_optim_desc opt;
    fnn_dropout drop;       /* the seed's Philox key; .step = the training step of the pass */
    int64_t step, opt_step;
    const T **in;           /* nl + 1 */
    size_t cap;             /* rows the workspace holds */
    int n_allocs;           /* workspace allocations so far (a test hook: never one per batch) */
    void *ws;
    T *lay, *g[2], *xb, *tb, *wb;
    int64_t *lb;
    T *acc;
    fnn_grad_hook hook;     /* data-parallel training's gradient exchange (net.h), or NULL */
    void *hook_ctx;
    int hook_layers;        /* raise FNN_GRAD_LAYER events too */
    int hook_rc;            /* the first nonzero return of a LAYER event in this step */
    size_t hook_rows;       /* the rows of the step in progress */
    fnn_governor gov;       /* the training steps' thread count (fnn_impl.h) */
    fnn_governor gov_infer; /* and the inference passes' (predict, evaluate) */
};

/* ---- workspace -------------------------------------------------------------------------------- */

static size_t FNN_FN(net_mul_)(size_t a, size_t b) { return a && b > SIZE_MAX / a ? SIZE_MAX : a * b; }

/* Bytes of the workspace for `rows` rows; with base != NULL also point the buffers into it. */
static size_t FNN_FN(net_layout_)(struct NET *net, size_t rows, char *base) {
    const fnn_plan *p = &net->plan;
    size_t off = 0;
    int bad = 0;
#define CARVE(ptr, type, count)                                                                    \
    do {                                                                                           \
        size_t n_ = FNN_FN(net_mul_)(count, sizeof(type));                                         \
        n_ = n_ > SIZE_MAX - FNN_ALIGN ? SIZE_MAX : (n_ + FNN_ALIGN - 1) / FNN_ALIGN * FNN_ALIGN;  \
        if (n_ == SIZE_MAX || off > SIZE_MAX - n_) bad = 1;                                        \
        else {                                                                                     \
            if (base) ptr = (type *)(void *)(base + off);                                          \
            off += n_;                                                                             \
        }                                                                                          \
    } while (0)
    size_t lay = FNN_FN(net_mul_)(rows, p->cols);
    CARVE(net->lay, T, lay > SIZE_MAX - p->stats ? SIZE_MAX : lay + p->stats);
    CARVE(net->g[0], T, FNN_FN(net_mul_)(rows, p->max_width));
    CARVE(net->g[1], T, FNN_FN(net_mul_)(rows, p->max_width));
    CARVE(net->xb, T, FNN_FN(net_mul_)(rows, p->n_in));
    CARVE(net->tb, T, FNN_FN(net_mul_)(rows, p->n_out));
    CARVE(net->wb, T, rows);
    CARVE(net->lb, int64_t, rows);
#undef CARVE
    return bad || p->cols == SIZE_MAX ? SIZE_MAX : off;
}

static int FNN_FN(net_reserve_)(struct NET *net, size_t batch) {
    if (batch <= net->cap && net->ws) return FNN_OK;
    size_t bytes = FNN_FN(net_layout_)(net, batch, NULL);
    if (bytes == SIZE_MAX) return FNN_ERR_NOMEM;
    void *ws = fnn_aligned_alloc(bytes);
    if (!ws) return FNN_ERR_NOMEM;
    fnn_aligned_free(net->ws);
    net->ws = ws;
    net->cap = batch;
    net->n_allocs++;
    FNN_FN(net_layout_)(net, batch, ws);
    return FNN_OK;
}

/* The workspace no longer matches the plan (a loss changed which layers keep what). */
static void FNN_FN(net_drop_workspace_)(struct NET *net) {
    fnn_aligned_free(net->ws);
    net->ws = NULL;
    net->cap = 0;
}

/* Below about 8 MFLOP of GEMM work per thread (a few tens of microseconds), a thread costs more to
 * wake than it saves: a 64-32-10 net at batch 32 (0.45 MFLOP per step) runs entirely serial. */
#define FNN_NET_FLOPS_PER_THREAD 8e6
/* Gathers: at least this many values per thread. */
#define FNN_NET_GRAIN 32768
/* A shuffled gather fetches the row this many rows ahead while it copies one: the rows lie pages
 * apart in memory, and each copy would otherwise wait on its first lines and its page's translation
 * (measured, 784 floats a row from a 63 MB array: 41 -> 23 us for 128 rows, 164 -> 98 us for 512). */
#define FNN_GATHER_AHEAD 3

static int FNN_FN(net_step_threads_)(const struct NET *net, size_t batch) {
    double by_work = fnn_plan_step_flops(&net->plan, batch) / FNN_NET_FLOPS_PER_THREAD;
    return fnn_threads_for(by_work > 1e9 ? (size_t)1e9 : (size_t)by_work, 1, fnn_get_num_threads());
}

static size_t FNN_FN(net_tensor_len_)(const fnn_tensor_info *t) {
    return t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0];
}

/* ---- settings ----------------------------------------------------------------------------------- */

int FNN_FN(net_new)(struct NET **out, const fnn_layer_desc *layers, int n_layers, size_t n_in, T *params,
                    T *grads, size_t n_params, uint64_t seed) {
    if (!out) return FNN_ERR_ARG;
    *out = NULL;
    if (n_params && (!params || !grads)) return FNN_ERR_ARG;
    struct NET *net = calloc(1, sizeof *net);
    if (!net) return FNN_ERR_NOMEM;
    int rc = fnn_plan_init(&net->plan, layers, n_layers, n_in, n_params);
    if (rc) {
        free(net);
        return rc;
    }
    if (sizeof(T) != sizeof(float) && fnn_plan_lowp(&net->plan)) { /* int8/bf16 weights: float only */
        fnn_plan_free(&net->plan);
        free(net);
        return FNN_ERR_ARG;
    }
    fnn_plan_pack(&net->plan, params);
    if (mtx_init(&net->lock, mtx_plain) != thrd_success) {
        fnn_plan_free(&net->plan);
        free(net);
        return FNN_ERR_NOMEM;
    }
    if (!(net->in = calloc((size_t)n_layers + 1, sizeof *net->in))) {
        FNN_FN(net_free)(net);
        return FNN_ERR_NOMEM;
    }
    net->params = params;
    net->grads = net->grads0 = grads;
    fnn_philox_key(seed, net->drop.key);
    *out = net;
    return FNN_OK;
}

void FNN_FN(net_free)(struct NET *net) {
    if (!net) return;
    mtx_destroy(&net->lock);
    fnn_aligned_free(net->ws);
    fnn_aligned_free(net->acc);
    fnn_plan_free(&net->plan);
    free(net->in);
    free(net);
}

const fnn_plan *FNN_FN(net_plan)(const struct NET *net) { return net ? &net->plan : NULL; }

int FNN_FN(net_link)(const struct NET *net) { return net ? net->plan.link : FNN_ACT_LINEAR; }

static int FNN_FN(net_set_loss_)(struct NET *net, int loss, double param) {
    int rc = fnn_plan_set_loss(&net->plan, loss, param);
    if (!rc) FNN_FN(net_drop_workspace_)(net);
    return rc;
}

static int FNN_FN(net_set_optim_)(struct NET *net, const fnn_optim_desc *o, T *state, size_t n_state) {
    int ns = fnn_optim_n_state(o);
    if (fnn_optim_check(o)) return FNN_ERR_ARG;
    if (ns > 0 && (!state || FNN_FN(net_mul_)((size_t)ns, net->plan.n_params) > n_state)) return FNN_ERR_ARG;
    net->opt = *o;
    net->state = state;
    net->n_state = ns;
    net->has_opt = 1;
    return FNN_OK;
}

static int FNN_FN(net_set_trainable_)(struct NET *net, int layer, int trainable) {
    int rc = fnn_plan_set_trainable(&net->plan, layer, trainable);
    if (rc) return rc;
    const fnn_layer_desc *d = &net->plan.L[layer];
    fnn_tensor_info t[FNN_LAYER_MAX_TENSORS];
    for (int k = 0, n = fnn_layer_tensors(d, t); k < n && !d->trainable; k++) /* no stale gradients when frozen */
        if (t[k].trainable) memset(net->grads + t[k].off, 0, FNN_FN(net_tensor_len_)(&t[k]) * sizeof(T));
    return rc;
}

void FNN_FN(net_get_counters)(const struct NET *net, int64_t *step, int64_t *opt_step) {
    if (step) *step = net ? net->step : 0;
    if (opt_step) *opt_step = net ? net->opt_step : 0;
}

/* A new seed: the dropout masks of the following steps are keyed by it (the caller shuffles with it). */
void FNN_FN(net_set_seed)(struct NET *net, uint64_t seed) {
    if (!net) return;
    mtx_lock(&net->lock);
    fnn_philox_key(seed, net->drop.key);
    mtx_unlock(&net->lock);
}

void FNN_FN(net_set_counters)(struct NET *net, int64_t step, int64_t opt_step) {
    if (!net) return;
    net->step = step < 0 ? 0 : step;
    net->opt_step = opt_step < 0 ? 0 : opt_step;
}

void FNN_FN(net_workspace_info)(const struct NET *net, size_t *rows, int *n_allocs) {
    if (rows) *rows = net ? net->cap : 0;
    if (n_allocs) *n_allocs = net ? net->n_allocs : 0;
}

int FNN_FN(net_step_threads)(const struct NET *net, size_t batch) { return net ? FNN_FN(net_step_threads_)(net, batch) : 1; }

/* ---- the gradient hook (net.h) --------------------------------------------------------------------- */

static void FNN_FN(net_layer_done_)(void *ctx, int layer) {
    struct NET *net = ctx;
    if (net->hook_rc) return;
    fnn_grad_event e = {.event = FNN_GRAD_LAYER, .layer = layer, .status = FNN_OK, .rows = net->hook_rows};
    net->hook_rc = net->hook(net->hook_ctx, &e);
}

/* The step's exchange: FNN_GRAD_STEP, after the LAYER events (if any).  The first error wins; *g is
 * where the update reads the gradient. */
static int FNN_FN(net_exchange_)(struct NET *net, int status, size_t rows, const T **g) {
    fnn_grad_event e = {.event = FNN_GRAD_STEP, .layer = -1, .status = status, .rows = rows, .update = NULL};
    int rc = net->hook(net->hook_ctx, &e);
    *g = e.update ? (const T *)e.update : net->grads;
    return status ? status : net->hook_rc ? net->hook_rc : rc;
}

int FNN_FN(net_set_grads)(struct NET *net, T *grads) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    net->grads = grads ? grads : net->grads0;
    if (grads) memset(grads, 0, net->plan.n_params * sizeof(T)); /* frozen ranges stay zero */
    mtx_unlock(&net->lock);
    return FNN_OK;
}

int FNN_FN(net_set_grad_hook)(struct NET *net, fnn_grad_hook hook, void *ctx, int layers) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    net->hook = hook;
    net->hook_ctx = hook ? ctx : NULL;
    net->hook_layers = hook && layers;
    mtx_unlock(&net->lock);
    return FNN_OK;
}

/* ---- one step ------------------------------------------------------------------------------------- */

/* Keras's gradient clipping over the trainable tensors' gradients, in layer order (see net.h). */
static void FNN_FN(net_clip_)(struct NET *net, int nt) {
    const fnn_optim_desc *o = &net->opt;
    const fnn_plan *p = &net->plan;
    if (!(o->clipnorm > 0 || o->global_clipnorm > 0 || o->clipvalue > 0)) return;
    double global = 1;
    for (int pass = o->global_clipnorm > 0 ? 0 : 1; pass < 2; pass++) {
        double total = 0;
        for (int l = 0; l < p->nl; l++) {
            fnn_tensor_info t[FNN_LAYER_MAX_TENSORS];
            for (int k = 0, n = p->L[l].trainable ? fnn_layer_tensors(&p->L[l], t) : 0; k < n; k++) {
                if (!t[k].trainable) continue;
                T *g = net->grads + t[k].off;
                const size_t len = FNN_FN(net_tensor_len_)(&t[k]);
                const int ntk = fnn_threads_for(len, FNN_NET_GRAIN, nt);
                if (pass == 0) {
                    total += FNN_FN(sumsq)(g, len, ntk);
                } else if (o->global_clipnorm > 0) {
                    if (global != 1) FNN_FN(scale)(g, len, (T)global, ntk);
                } else if (o->clipnorm > 0) {
                    double sq = FNN_FN(sumsq)(g, len, ntk), norm = sqrt(sq);
                    if (!(norm <= o->clipnorm)) FNN_FN(scale)(g, len, (T)(norm == norm ? o->clipnorm / norm : NAN), ntk);
                } else {
                    FNN_FN(clamp)(g, len, (T)o->clipvalue, ntk);
                }
            }
        }
        if (pass == 0) { /* Keras's clip_by_global_norm: NaN for a non-finite norm */
            const double norm = sqrt(total), c = o->global_clipnorm;
            global = c * fmin(1 / norm, 1 / c) + (norm - norm);
        }
    }
}

/* The optimizer step from the gradient g (the net's buffer, or the average the gradient hook pointed
 * at): the step's learning rate (its schedule), clipping, the update of every trainable tensor, then
 * the max-norm constraints and (batch: the step ran a forward pass on rows of its own) the running
 * statistics of the BatchNorm layers.  Clipping works in the net's buffer: an average elsewhere is
 * copied there first, since other processes may still read it (the net's buffer is this process's
 * own until its next backward pass). */
static void FNN_FN(net_update_)(struct NET *net, const T *g, int batch, int nt) {
    const fnn_plan *p = &net->plan;
    fnn_optim_desc o = net->opt;
    if (o.sched.kind != FNN_SCHED_NONE) o.lr = fnn_schedule_lr(&o.sched, (double)net->opt_step);
    net->opt_step++;
    if (o.clipnorm > 0 || o.global_clipnorm > 0 || o.clipvalue > 0) {
        if (g != net->grads) memcpy(net->grads, g, p->n_params * sizeof(T));
        g = net->grads;
        FNN_FN(net_clip_)(net, nt);
    }
    for (int l = 0; l < p->nl; l++) {
        const fnn_layer_desc *d = &p->L[l];
        fnn_tensor_info t[FNN_LAYER_MAX_TENSORS];
        const int n = d->trainable ? fnn_layer_tensors(d, t) : 0;
        for (int k = 0; k < n; k++) {
            if (!t[k].trainable) continue;
            const size_t len = FNN_FN(net_tensor_len_)(&t[k]);
            FNN_FN(optim_update)(&o, net->opt_step, net->params, g, net->state, p->n_params, t[k].off, len,
                                 t[k].decay, fnn_threads_for(len, FNN_NET_GRAIN, nt));
        }
        if (n && d->kind == FNN_LAYER_DENSE && d->max_norm > 0)
            FNN_FN(max_norm)(net->params + d->w_off, d->in, d->out, d->max_norm,
                             fnn_threads_for(d->in * d->out, FNN_NET_GRAIN, nt));
        if (n && batch && d->kind == FNN_LAYER_BATCHNORM)
            FNN_FN(bn_update_running)(net->params, d, net->lay + net->cap * p->cols + p->stat[l]);
    }
}

/* Forward with dropout, the fused loss and its gradient, backward, the gradient exchange (hooked and a
 * hook set) and (update) the optimizer step.  *pred receives the output (the loss's input) of the batch. */
static int FNN_FN(net_step_body_)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sw,
                                  size_t rows, int update, int hooked, double pen_frozen, int nt, double *loss,
                                  const T **pred) {
    const fnn_plan *p = &net->plan;
    const int hook = hooked && net->hook;
    const T *g = net->grads;
    if (p->batch_stats && rows < 2) /* a batch's variance needs two rows; the other processes stop too */
        return hook ? FNN_FN(net_exchange_)(net, FNN_ERR_ARG, rows, &g) : FNN_ERR_ARG;
    net->drop.step = (uint64_t)net->step;
    net->hook_rc = 0;
    net->hook_rows = rows;
    const T *y = FNN_FN(forward)(p, net->params, x, rows, net->lay, net->cap, &net->drop, net->in, nt);
    if (pred) *pred = y;
    double data = FNN_FN(loss)(p->loss, y, labels, target, sw, rows, p->n_out, (T)p->loss_param,
                               (T)(1.0 / (double)rows), net->g[0]) / (double)rows;
    *loss = data;
    if (!isfinite(data)) return hook ? FNN_FN(net_exchange_)(net, FNN_ERR_NONFINITE, rows, &g) : FNN_ERR_NONFINITE;
    *loss = data + pen_frozen +
            FNN_FN(backward_notify)(p, net->params, net->grads, net->in, net->lay, net->cap, &net->drop, rows, net->g,
                                    nt, hook && net->hook_layers ? FNN_FN(net_layer_done_) : NULL, net);
    int rc = isfinite(*loss) ? FNN_OK : FNN_ERR_NONFINITE;
    if (hook) rc = FNN_FN(net_exchange_)(net, rc, rows, &g);
    if (rc) return rc;
    if (update) {
        FNN_FN(net_update_)(net, g, 1, nt);
        net->step++;
    }
    return FNN_OK;
}

/* A training step's regions run back to back on the count the governor gave it (fnn_team_steady). */
static int FNN_FN(net_step_)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sw,
                             size_t rows, int update, int hooked, double pen_frozen, int nt, double *loss,
                             const T **pred) {
    fnn_team_steady(1);
    int rc = FNN_FN(net_step_body_)(net, x, labels, target, sw, rows, update, hooked, pen_frozen, nt, loss, pred);
    fnn_team_steady(0);
    return rc;
}

/* A step with no rows of this process's own (its shard is shorter than another's): a zero gradient
 * into the exchange, the events of a real step, then the update with what the exchange left. */
static int FNN_FN(net_empty_step_)(struct NET *net, int nt) {
    const fnn_plan *p = &net->plan;
    memset(net->grads, 0, p->n_params * sizeof(T));
    net->hook_rc = 0;
    net->hook_rows = 0;
    if (net->hook_layers)
        for (int l = p->nl - 1; l >= p->lowest && p->lowest >= 0; l--)
            if (!p->folded[l]) FNN_FN(net_layer_done_)(net, l);
    const T *g;
    int rc = FNN_FN(net_exchange_)(net, FNN_OK, 0, &g);
    if (rc) return rc;
    FNN_FN(net_update_)(net, g, 0, nt);
    net->step++;
    return FNN_OK;
}

/* ---- batches ---------------------------------------------------------------------------------------- */

/* Row `src` of the input into dst (n_in values): a copy, or a CSR row densified (duplicates summed, as
 * scipy does; indices the caller validated, and out-of-range ones skipped rather than written). */
static void FNN_FN(net_row_)(const struct NET *net, const fnn_rows *x, size_t src, T *dst) {
    const size_t ni = net->plan.n_in;
    if (x->x) {
        memcpy(dst, (const T *)x->x + src * ni, ni * sizeof(T));
        return;
    }
    memset(dst, 0, ni * sizeof(T));
    const T *v = x->values;
    for (int64_t k = x->indptr[src]; k < x->indptr[src + 1]; k++)
        if ((uint64_t)x->indices[k] < ni) dst[x->indices[k]] += v[k];
}

/* Rows start..start+r of the epoch order (idx, or the identity) into the batch buffers: the inputs
 * always, and labels, targets and weights when a permutation reorders them. */
static void FNN_FN(net_gather_)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target,
                                const T *sw, const int64_t *idx, size_t start, size_t r, int nt) {
    const size_t ni = net->plan.n_in, no = net->plan.n_out;
    nt = fnn_threads_for(r * (ni + no), FNN_NET_GRAIN, nt);
    FNN_PARALLEL_RANGES(lo, hi, r, {
        for (size_t i = lo; i < hi; i++) {
            size_t src = idx ? (size_t)idx[start + i] : start + i;
            if (idx && x->x && i + FNN_GATHER_AHEAD < hi) {
                const char *ahead = (const char *)((const T *)x->x + (size_t)idx[start + i + FNN_GATHER_AHEAD] * ni);
                for (size_t b = 0; b < ni * sizeof(T); b += FNN_ALIGN) __builtin_prefetch(ahead + b);
            }
            FNN_FN(net_row_)(net, x, src, net->xb + i * ni);
            if (!idx) continue;
            if (labels) net->lb[i] = labels[src];
            if (target) memcpy(net->tb + i * no, target + src * no, no * sizeof(T));
            if (sw) net->wb[i] = sw[src];
        }
    });
}

/* The inputs of rows start..start+r: in place when they are dense and in order, else gathered. */
static const T *FNN_FN(net_rows_)(struct NET *net, const fnn_rows *x, size_t start, size_t r, int nt) {
    if (x->x) return (const T *)x->x + start * net->plan.n_in;
    FNN_FN(net_gather_)(net, x, NULL, NULL, NULL, NULL, start, r, nt);
    return net->xb;
}

/* pred rows of the batch rows [start, start+r) of the epoch order: the output with the link applied. */
static void FNN_FN(net_scatter_pred_)(const struct NET *net, const T *y, const int64_t *perm, size_t start, size_t r,
                                      T *pred) {
    const size_t no = net->plan.n_out;
    for (size_t i = 0; i < r; i++) {
        T *dst = pred + (perm ? (size_t)perm[start + i] : start + i) * no;
        memcpy(dst, y + i * no, no * sizeof(T));
        if (net->plan.link != FNN_ACT_LINEAR) FNN_FN(act_forward)(net->plan.link, 0, dst, dst, 1, no, 1);
    }
}

/* The opening every data call shares: check the data against the loss, clamp the batch to the
 * rows, size the workspace and pick the threads.  labels win over targets for cross-entropy. */
static int FNN_FN(net_begin_)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T **target,
                              int need_loss, size_t n, size_t *batch, int *nt) {
    if (!x || (!x->x && (!x->indptr || !x->indices || !x->values))) return FNN_ERR_ARG;
    if (need_loss) {
        const int loss = net->plan.loss;
        if (loss < 0 || (loss == FNN_LOSS_CROSS_ENTROPY ? !labels && !*target : !*target)) return FNN_ERR_ARG;
        if (loss == FNN_LOSS_CROSS_ENTROPY && labels) *target = NULL;
    }
    if (*batch > n) *batch = n;
    int rc = FNN_FN(net_reserve_)(net, *batch);
    *nt = FNN_FN(net_step_threads_)(net, *batch);
    return rc;
}

/* ---- entry points (called with the lock held) ---------------------------------------------------- */

static int FNN_FN(net_train_step_)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target,
                                   const T *sample_w, size_t rows, int update, double *loss) {
    if (!loss || rows == 0 || (update && !net->has_opt)) return FNN_ERR_ARG;
    if (fnn_plan_lowp(&net->plan)) return FNN_ERR_UNSUPPORTED; /* quantized weights do not train */
    size_t batch = rows;
    int nt, rc = FNN_FN(net_begin_)(net, x, labels, &target, 1, rows, &batch, &nt);
    if (rc) return rc;
    nt = fnn_gov_begin(&net->gov, nt);
    rc = FNN_FN(net_step_)(net, FNN_FN(net_rows_)(net, x, 0, rows, nt), labels, target, sample_w, rows, update, 0,
                           FNN_FN(penalty)(&net->plan, net->params, 0), nt, loss, NULL);
    fnn_gov_end(&net->gov, (double)rows);
    return rc;
}

static int FNN_FN(net_fit_chunk_)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target,
                                  const T *sample_w, const int64_t *perm, size_t n, size_t batch, size_t first,
                                  size_t count, double *losses, T *pred, size_t *bad) {
    if (!losses || n == 0 || batch == 0 || !net->has_opt) return FNN_ERR_ARG;
    if (fnn_plan_lowp(&net->plan)) return FNN_ERR_UNSUPPORTED;
    int nt, rc = FNN_FN(net_begin_)(net, x, labels, &target, 1, n, &batch, &nt);
    if (rc) return rc;
    const double pen_frozen = FNN_FN(penalty)(&net->plan, net->params, 0); /* frozen weights do not move */
    const size_t no = net->plan.n_out;
    for (size_t b = first; b < first + count; b++) {
        size_t start = b * batch;
        if (start >= n) {
            if (!net->hook) break;
            losses[b - first] = 0;
            if ((rc = FNN_FN(net_empty_step_)(net, nt))) {
                if (bad) *bad = b;
                return rc;
            }
            continue;
        }
        size_t r = n - start < batch ? n - start : batch;
        const int ntb = fnn_gov_begin(&net->gov, nt);
        const T *xb, *tb = target ? target + start * no : NULL, *wb = sample_w ? sample_w + start : NULL;
        const int64_t *lb = labels ? labels + start : NULL;
        if (perm) {
            FNN_FN(net_gather_)(net, x, labels, target, sample_w, perm, start, r, ntb);
            xb = net->xb;
            tb = target ? net->tb : NULL;
            wb = sample_w ? net->wb : NULL;
            lb = labels ? net->lb : NULL;
        } else {
            xb = FNN_FN(net_rows_)(net, x, start, r, ntb);
        }
        const T *y;
        rc = FNN_FN(net_step_)(net, xb, lb, tb, wb, r, 1, 1, pen_frozen, ntb, &losses[b - first], &y);
        fnn_gov_end(&net->gov, (double)r);
        if (rc) {
            if (bad) *bad = b;
            return rc;
        }
        if (pred) FNN_FN(net_scatter_pred_)(net, y, perm, start, r, pred);
    }
    return FNN_OK;
}

static int FNN_FN(net_gradient_)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target,
                                 const T *sample_w, size_t n, size_t batch, double *loss) {
    if (!loss || n == 0 || batch == 0) return FNN_ERR_ARG;
    if (fnn_plan_lowp(&net->plan)) return FNN_ERR_UNSUPPORTED; /* no gradient through quantized weights */
    if (batch >= n) return FNN_FN(net_train_step_)(net, x, labels, target, sample_w, n, 0, loss);
    int nt, rc = FNN_FN(net_begin_)(net, x, labels, &target, 1, n, &batch, &nt);
    if (rc) return rc;
    const fnn_plan *p = &net->plan;
    if (!net->acc && !(net->acc = fnn_aligned_alloc(p->n_params * sizeof(T) + 1))) return FNN_ERR_NOMEM;
    memset(net->acc, 0, p->n_params * sizeof(T));
    const double pen_frozen = FNN_FN(penalty)(p, net->params, 0);
    const size_t no = p->n_out;
    double total = 0;
    for (size_t start = 0; start < n; start += batch) {
        const size_t r = n - start < batch ? n - start : batch;
        double l;
        const int ntb = fnn_gov_begin(&net->gov, nt);
        rc = FNN_FN(net_step_)(net, FNN_FN(net_rows_)(net, x, start, r, ntb), labels ? labels + start : NULL,
                               target ? target + start * no : NULL, sample_w ? sample_w + start : NULL, r, 0, 0,
                               pen_frozen, ntb, &l, NULL);
        fnn_gov_end(&net->gov, (double)r);
        if (rc) {
            *loss = l;
            return rc;
        }
        const double share = (double)r / (double)n;
        total += share * l;
        const T sh = (T)share;
        T *acc = net->acc;
        const T *g = net->grads;
        int ntg = fnn_threads_for(p->n_params, FNN_NET_GRAIN, nt);
        { /* the frozen layers' gradients are zero: the whole buffer is one elementwise pass */
            const int nt = ntg;
            FNN_PARALLEL_RANGES(lo, hi, p->n_params, {
                for (size_t i = lo; i < hi; i++) acc[i] += sh * g[i];
            });
        }
    }
    memcpy(net->grads, net->acc, p->n_params * sizeof(T));
    *loss = total;
    return FNN_OK;
}

static int FNN_FN(net_forward_)(struct NET *net, const fnn_rows *x, size_t rows, size_t batch, int training, int link,
                                T *out) {
    if (!out || batch == 0) return FNN_ERR_ARG;
    if (rows == 0) return FNN_OK;
    int nt, rc = FNN_FN(net_begin_)(net, x, NULL, NULL, 0, rows, &batch, &nt);
    if (rc) return rc;
    const fnn_plan *p = &net->plan;
    net->drop.step = (uint64_t)net->step;
    for (size_t start = 0; start < rows; start += batch) {
        size_t r = rows - start < batch ? rows - start : batch;
        if (training && p->batch_stats && r < 2) return FNN_ERR_ARG;
        const int ntb = fnn_gov_begin(&net->gov_infer, nt);
        const T *y = FNN_FN(forward)(p, net->params, FNN_FN(net_rows_)(net, x, start, r, ntb), r, net->lay, net->cap,
                                     training ? &net->drop : NULL, NULL, ntb);
        fnn_gov_end(&net->gov_infer, (double)r);
        T *dst = out + start * p->n_out;
        memcpy(dst, y, r * p->n_out * sizeof(T));
        if (link && p->link != FNN_ACT_LINEAR) FNN_FN(act_forward)(p->link, 0, dst, dst, r, p->n_out, ntb);
    }
    return FNN_OK;
}

static int FNN_FN(net_evaluate_)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target,
                                 const T *sample_w, size_t n, size_t batch, double *loss, T *pred) {
    if (!loss || n == 0 || batch == 0) return FNN_ERR_ARG;
    int nt, rc = FNN_FN(net_begin_)(net, x, labels, &target, 1, n, &batch, &nt);
    if (rc) return rc;
    const fnn_plan *p = &net->plan;
    const size_t no = p->n_out;
    double sum = 0;
    for (size_t start = 0; start < n; start += batch) {
        size_t r = n - start < batch ? n - start : batch;
        const int ntb = fnn_gov_begin(&net->gov_infer, nt);
        const T *y = FNN_FN(forward)(p, net->params, FNN_FN(net_rows_)(net, x, start, r, ntb), r, net->lay, net->cap,
                                     NULL, NULL, ntb);
        fnn_gov_end(&net->gov_infer, (double)r);
        sum += FNN_FN(loss)(p->loss, y, labels ? labels + start : NULL, target ? target + start * no : NULL,
                            sample_w ? sample_w + start : NULL, r, no, (T)p->loss_param, 0, NULL);
        if (pred) FNN_FN(net_scatter_pred_)(net, y, NULL, start, r, pred);
    }
    *loss = sum / (double)n + FNN_FN(penalty)(p, net->params, 1);
    return FNN_OK;
}

static int FNN_FN(net_input_ranges_)(struct NET *net, const fnn_rows *x, size_t n, size_t batch, float *lo_hi) {
    if (!lo_hi || n == 0 || batch == 0) return FNN_ERR_ARG;
    int nt, rc = FNN_FN(net_begin_)(net, x, NULL, NULL, 0, n, &batch, &nt);
    if (rc) return rc;
    const fnn_plan *p = &net->plan;
    for (int l = 0; l < p->nl; l++) lo_hi[2 * l] = lo_hi[2 * l + 1] = 0;
    for (size_t start = 0; start < n; start += batch) {
        size_t r = n - start < batch ? n - start : batch;
        FNN_FN(forward)(p, net->params, FNN_FN(net_rows_)(net, x, start, r, nt), r, net->lay, net->cap, NULL, net->in,
                        nt);
        for (int l = 0; l < p->nl; l++) {
            const T *v = net->in[l];
            float lo = lo_hi[2 * l], hi = lo_hi[2 * l + 1];
            for (size_t i = 0; i < r * p->L[l].in; i++) {
                lo = (float)v[i] < lo ? (float)v[i] : lo;
                hi = (float)v[i] > hi ? (float)v[i] : hi;
            }
            lo_hi[2 * l] = lo;
            lo_hi[2 * l + 1] = hi;
        }
    }
    return FNN_OK;
}

static int FNN_FN(net_set_bf16_)(struct NET *net, int on) {
    if (on && sizeof(T) != sizeof(float)) return FNN_ERR_ARG; /* mixed precision is for float32 models */
    net->plan.bf16 = on != 0;
    return FNN_OK;
}

/* ---- the public entry points: each holds the net's lock around its unlocked body ---------------- */
#define FNN_LOCKED(net, call)                                                                      \
    do {                                                                                           \
        if (!(net)) return FNN_ERR_ARG;                                                            \
        mtx_lock(&(net)->lock);                                                                    \
        int rc_ = (call);                                                                          \
        mtx_unlock(&(net)->lock);                                                                  \
        return rc_;                                                                                \
    } while (0)

int FNN_FN(net_reserve)(struct NET *net, size_t batch) { FNN_LOCKED(net, FNN_FN(net_reserve_)(net, batch)); }
int FNN_FN(net_set_loss)(struct NET *net, int loss, double param) {
    FNN_LOCKED(net, FNN_FN(net_set_loss_)(net, loss, param));
}
int FNN_FN(net_set_optim)(struct NET *net, const fnn_optim_desc *o, T *state, size_t n_state) {
    FNN_LOCKED(net, o ? FNN_FN(net_set_optim_)(net, o, state, n_state) : FNN_ERR_ARG);
}
int FNN_FN(net_set_trainable)(struct NET *net, int layer, int trainable) {
    FNN_LOCKED(net, FNN_FN(net_set_trainable_)(net, layer, trainable));
}
int FNN_FN(net_step)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target, const T *sample_w,
                     size_t rows, int update, double *loss) {
    FNN_LOCKED(net, FNN_FN(net_train_step_)(net, x, labels, target, sample_w, rows, update, loss));
}
int FNN_FN(net_fit_chunk)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target, const T *sample_w,
                          const int64_t *perm, size_t n, size_t batch, size_t first, size_t count, double *losses,
                          T *pred, size_t *bad) {
    FNN_LOCKED(net, FNN_FN(net_fit_chunk_)(net, x, labels, target, sample_w, perm, n, batch, first, count, losses,
                                           pred, bad));
}
int FNN_FN(net_gradient)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target, const T *sample_w,
                         size_t n, size_t batch, double *loss) {
    FNN_LOCKED(net, FNN_FN(net_gradient_)(net, x, labels, target, sample_w, n, batch, loss));
}
int FNN_FN(net_forward)(struct NET *net, const fnn_rows *x, size_t rows, size_t batch, int training, int link, T *out) {
    FNN_LOCKED(net, FNN_FN(net_forward_)(net, x, rows, batch, training, link, out));
}
int FNN_FN(net_evaluate)(struct NET *net, const fnn_rows *x, const int64_t *labels, const T *target, const T *sample_w,
                         size_t n, size_t batch, double *loss, T *pred) {
    FNN_LOCKED(net, FNN_FN(net_evaluate_)(net, x, labels, target, sample_w, n, batch, loss, pred));
}
int FNN_FN(net_repack)(struct NET *net) { FNN_LOCKED(net, fnn_plan_pack(&net->plan, net->params)); }
int FNN_FN(net_set_bf16)(struct NET *net, int on) { FNN_LOCKED(net, FNN_FN(net_set_bf16_)(net, on)); }
int FNN_FN(net_input_ranges)(struct NET *net, const fnn_rows *x, size_t n, size_t batch, float *lo_hi) {
    FNN_LOCKED(net, FNN_FN(net_input_ranges_)(net, x, n, batch, lo_hi));
}
static int FNN_FN(net_copy_params_)(const struct NET *net, T *dst) {
    if (!dst && net->plan.n_params) return FNN_ERR_ARG;
    if (net->plan.n_params) memcpy(dst, net->params, net->plan.n_params * sizeof(T));
    return FNN_OK;
}
int FNN_FN(net_copy_params)(struct NET *net, T *dst) { FNN_LOCKED(net, FNN_FN(net_copy_params_)(net, dst)); }
#undef FNN_LOCKED

size_t FNN_FN(net_workspace_bytes)(struct NET *net, size_t batch) {
    if (!net) return 0;
    mtx_lock(&net->lock);
    size_t bytes = FNN_FN(net_layout_)(net, batch, NULL);
    mtx_unlock(&net->lock);
    return bytes;
}

#undef NET
#undef T
