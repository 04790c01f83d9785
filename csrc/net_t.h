/* net_t.h - body of the training engine, included by net.c once per dtype (FNN_T, FNN_P).
 *
 * Buffers of one step on B rows (all row-major, B <= the reserved capacity):
 *   x          B x n_in          the batch (the caller's rows, or gathered into xb by a permutation)
 *   y[l]       B x out_l         output of layer l (Dense: act(x W + b), from the GEMM epilogue)
 *   z[l]       B x out_l         Dense pre-activation, kept only when act' needs the input
 *                                (gelu, silu, softmax; leaky_relu/elu with a negative alpha)
 *   g0, g1     B x max width     ping-pong gradients flowing down (dL/dy, then dL/dx)
 *   in[l], out[l]                pointers to the input and output of layer l in the last forward
 * Layers that are identities in a pass (folded activations, dropout at inference or with p = 0)
 * alias their input instead of copying.
 * The engine's own elementwise loops split [0, n) into nt contiguous ranges, and enter no OpenMP
 * region at all when nt <= 1 (a serial region still allocates a thread team in libgomp).
 */
#define T FNN_T
#define NET FNN_CAT(FNN_CAT(fnn_, FNN_P), net)

struct NET {
    mtx_t lock;             /* held by every entry point that uses the workspace or settings */
    int nl;
    fnn_layer_desc *L;      /* the descriptors as given */
    int *act;               /* effective activation: Activation layers folded, final link fused */
    unsigned char *folded;  /* Activation layer whose function runs in the Dense below it */
    unsigned char *needs_z; /* Dense layer that keeps its pre-activation */
    const T **in, **out;    /* per layer, set by each forward */
    int lowest;             /* lowest trainable Dense layer, -1 if none: backprop stops there */
    size_t n_in, n_out, n_params, max_width;
    T *params, *grads;      /* the caller's buffers */
    T *state;               /* the caller's optimizer state, n_state copies of the parameter layout */
    int n_state, has_opt;
    fnn_optim_desc opt;
    int loss, link;         /* -1 when no loss; link: FNN_ACT_LINEAR, _SOFTMAX or _SIGMOID */
    double loss_param;
    uint32_t key[2];        /* Philox key: the seed */
    int64_t step, opt_step;
    /* workspace for `cap` rows, one allocation */
    size_t cap;
    int n_allocs;           /* workspace allocations so far (a test hook: never one per batch) */
    void *ws;
    T **y, **z;
    T *g0, *g1, *xb, *tb, *wb;
    int64_t *lb;
};

/* ---- sizes and threads ---------------------------------------------------------------------- */

static size_t FNN_FN(net_mul_)(size_t a, size_t b) { /* a*b, SIZE_MAX on overflow */
    return a && b > SIZE_MAX / a ? SIZE_MAX : a * b;
}

/* Bytes of the workspace for `rows` rows; with base != NULL also point the buffers into it. */
static size_t FNN_FN(net_layout_)(struct NET *net, size_t rows, char *base) {
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
    for (int l = 0; l < net->nl; l++) {
        const fnn_layer_desc *d = &net->L[l];
        if (base) net->y[l] = net->z[l] = NULL;
        if (net->folded[l]) continue;
        if (d->kind == FNN_LAYER_ACTIVATION && net->act[l] == FNN_ACT_LINEAR) continue;
        if (d->kind == FNN_LAYER_DROPOUT && !(d->p > 0)) continue;
        CARVE(net->y[l], T, FNN_FN(net_mul_)(rows, d->out));
        if (net->needs_z[l]) CARVE(net->z[l], T, FNN_FN(net_mul_)(rows, d->out));
    }
    CARVE(net->g0, T, FNN_FN(net_mul_)(rows, net->max_width));
    CARVE(net->g1, T, FNN_FN(net_mul_)(rows, net->max_width));
    CARVE(net->xb, T, FNN_FN(net_mul_)(rows, net->n_in));
    CARVE(net->tb, T, FNN_FN(net_mul_)(rows, net->n_out));
    CARVE(net->wb, T, rows);
    CARVE(net->lb, int64_t, rows);
#undef CARVE
    return bad ? SIZE_MAX : off;
}

static int FNN_FN(net_reserve_unlocked_)(struct NET *net, size_t batch) {
    if (!net) return FNN_ERR_ARG;
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
/* Elementwise passes: at least this many elements per thread. */
#define FNN_NET_ELEMS_PER_THREAD 32768

int FNN_FN(net_step_threads)(const struct NET *net, size_t batch) {
    if (!net) return 1;
    double flops = 0;
    for (int l = 0; l < net->nl; l++)
        if (net->L[l].kind == FNN_LAYER_DENSE)
            flops += 6.0 * (double)batch * (double)net->L[l].in * (double)net->L[l].out;
    int nt = fnn_get_num_threads();
    double by_work = flops / FNN_NET_FLOPS_PER_THREAD;
    if (by_work < nt) nt = (int)by_work;
    return nt < 1 ? 1 : nt;
}

static int FNN_FN(net_ew_threads_)(size_t n, int nt) {
    size_t by_work = n / FNN_NET_ELEMS_PER_THREAD;
    if (by_work < (size_t)nt) nt = (int)by_work;
    return nt < 1 ? 1 : nt;
}

/* ---- plan ------------------------------------------------------------------------------------ */

static int FNN_FN(net_keeps_z_)(int act, double alpha) {
    switch (act) {
    case FNN_ACT_GELU: case FNN_ACT_SILU: case FNN_ACT_SOFTMAX: case FNN_ACT_LOG_SOFTMAX: return 1;
    case FNN_ACT_LEAKY_RELU: case FNN_ACT_ELU: return alpha < 0; /* else the sign of y is that of x */
    default: return 0;
    }
}

/* The parameter of layer l's effective activation: a folded activation's alpha travels with it. */
static double FNN_FN(net_alpha_)(const struct NET *net, int l) {
    return l + 1 < net->nl && net->folded[l + 1] ? net->L[l + 1].act_alpha : net->L[l].act_alpha;
}

/* Effective activations: fold Activation layers into a linear Dense below them, then fuse the final
 * softmax/sigmoid into the matching cross-entropy. */
static void FNN_FN(net_plan_)(struct NET *net) {
    for (int l = 0; l < net->nl; l++) {
        net->act[l] = net->L[l].kind == FNN_LAYER_DROPOUT ? FNN_ACT_LINEAR : net->L[l].act;
        net->folded[l] = 0;
        if (l > 0 && net->L[l].kind == FNN_LAYER_ACTIVATION && net->L[l - 1].kind == FNN_LAYER_DENSE &&
            !net->folded[l - 1] && net->act[l - 1] == FNN_ACT_LINEAR) {
            net->act[l - 1] = net->L[l].act;
            net->folded[l] = 1;
        }
    }
    int last = net->nl - 1;
    while (last > 0 && net->folded[last]) last--;
    int fusable = net->L[last].kind != FNN_LAYER_DROPOUT;
    net->link = FNN_ACT_LINEAR;
    if (net->loss == FNN_LOSS_CROSS_ENTROPY) {
        net->link = FNN_ACT_SOFTMAX;
        if (fusable && net->act[last] == FNN_ACT_SOFTMAX) net->act[last] = FNN_ACT_LINEAR;
    } else if (net->loss == FNN_LOSS_BCE) {
        net->link = FNN_ACT_SIGMOID;
        if (fusable && net->act[last] == FNN_ACT_SIGMOID) net->act[last] = FNN_ACT_LINEAR;
    }
    for (int l = 0; l < net->nl; l++)
        net->needs_z[l] = net->L[l].kind == FNN_LAYER_DENSE && FNN_FN(net_keeps_z_)(net->act[l], FNN_FN(net_alpha_)(net, l));
}

static void FNN_FN(net_find_lowest_)(struct NET *net) {
    net->lowest = -1;
    for (int l = 0; l < net->nl && net->lowest < 0; l++)
        if (net->L[l].kind == FNN_LAYER_DENSE && net->L[l].trainable) net->lowest = l;
}

int FNN_FN(net_new)(struct NET **out, const fnn_layer_desc *layers, int n_layers, size_t n_in, T *params,
                    T *grads, size_t n_params, uint64_t seed) {
    if (!out) return FNN_ERR_ARG;
    *out = NULL;
    if (!layers || n_layers < 1 || n_in < 1 || (n_params && (!params || !grads))) return FNN_ERR_ARG;
    size_t width = n_in, max_width = n_in;
    for (int l = 0; l < n_layers; l++) {
        const fnn_layer_desc *d = &layers[l];
        if (d->in != width || d->out < 1) return FNN_ERR_ARG;
        switch (d->kind) {
        case FNN_LAYER_DENSE: {
            size_t nw = FNN_FN(net_mul_)(d->in, d->out);
            if (d->act < 0 || d->act >= FNN_ACT__COUNT || nw == SIZE_MAX || d->w_off > n_params ||
                nw > n_params - d->w_off || (d->use_bias && (d->b_off > n_params || d->out > n_params - d->b_off)) ||
                !(d->l1 >= 0) || !(d->l2 >= 0))
                return FNN_ERR_ARG;
            break;
        }
        case FNN_LAYER_DROPOUT:
            if (d->out != d->in || !(d->p >= 0 && d->p < 1)) return FNN_ERR_ARG;
            break;
        case FNN_LAYER_ACTIVATION:
            if (d->out != d->in || d->act < 0 || d->act >= FNN_ACT__COUNT) return FNN_ERR_ARG;
            break;
        default:
            return FNN_ERR_ARG;
        }
        width = d->out;
        if (width > max_width) max_width = width;
    }
    struct NET *net = calloc(1, sizeof *net);
    if (!net) return FNN_ERR_NOMEM;
    if (mtx_init(&net->lock, mtx_plain) != thrd_success) {
        free(net);
        return FNN_ERR_NOMEM;
    }
    net->nl = n_layers;
    net->L = malloc((size_t)n_layers * sizeof *net->L);
    net->act = malloc((size_t)n_layers * sizeof *net->act);
    net->folded = malloc((size_t)n_layers);
    net->needs_z = malloc((size_t)n_layers);
    net->in = malloc((size_t)n_layers * sizeof *net->in);
    net->out = malloc((size_t)n_layers * sizeof *net->out);
    net->y = calloc((size_t)n_layers, sizeof *net->y);
    net->z = calloc((size_t)n_layers, sizeof *net->z);
    if (!net->L || !net->act || !net->folded || !net->needs_z || !net->in || !net->out || !net->y || !net->z) {
        FNN_FN(net_free)(net);
        return FNN_ERR_NOMEM;
    }
    memcpy(net->L, layers, (size_t)n_layers * sizeof *net->L);
    for (int l = 0; l < n_layers; l++) net->L[l].trainable = net->L[l].trainable != 0;
    net->n_in = n_in;
    net->n_out = width;
    net->max_width = max_width;
    net->n_params = n_params;
    net->params = params;
    net->grads = grads;
    net->loss = -1;
    fnn_philox_key(seed, net->key);
    FNN_FN(net_plan_)(net);
    FNN_FN(net_find_lowest_)(net);
    *out = net;
    return FNN_OK;
}

void FNN_FN(net_free)(struct NET *net) {
    if (!net) return;
    mtx_destroy(&net->lock);
    fnn_aligned_free(net->ws);
    free(net->L); free(net->act); free(net->folded); free(net->needs_z);
    free(net->in); free(net->out); free(net->y); free(net->z);
    free(net);
}

static int FNN_FN(net_set_loss_unlocked_)(struct NET *net, int loss, double param) {
    if (!net || loss < -1 || loss >= FNN_LOSS__COUNT) return FNN_ERR_ARG;
    if (loss == FNN_LOSS_HUBER && !(param > 0)) return FNN_ERR_ARG;
    net->loss = loss;
    net->loss_param = param;
    FNN_FN(net_plan_)(net);
    FNN_FN(net_drop_workspace_)(net);
    return FNN_OK;
}

int FNN_FN(net_link)(const struct NET *net) { return net ? net->link : FNN_ACT_LINEAR; }

void FNN_FN(net_workspace_info)(const struct NET *net, size_t *rows, int *n_allocs) {
    if (rows) *rows = net ? net->cap : 0;
    if (n_allocs) *n_allocs = net ? net->n_allocs : 0;
}

static int FNN_FN(net_set_optim_unlocked_)(struct NET *net, const fnn_optim_desc *o, T *state, size_t n_state) {
    int ns = fnn_optim_n_state(o);
    if (!net || ns < 0 || !(o->lr >= 0) || !(o->weight_decay >= 0) || !(o->momentum >= 0)) return FNN_ERR_ARG;
    if (ns > 0 && (!state || FNN_FN(net_mul_)((size_t)ns, net->n_params) > n_state)) return FNN_ERR_ARG;
    net->opt = *o;
    net->state = state;
    net->n_state = ns;
    net->has_opt = 1;
    return FNN_OK;
}

static int FNN_FN(net_set_trainable_unlocked_)(struct NET *net, int layer, int trainable) {
    if (!net || layer < 0 || layer >= net->nl || net->L[layer].kind != FNN_LAYER_DENSE) return FNN_ERR_ARG;
    fnn_layer_desc *d = &net->L[layer];
    d->trainable = trainable != 0;
    if (!d->trainable) { /* no stale gradients on a frozen layer */
        memset(net->grads + d->w_off, 0, d->in * d->out * sizeof(T));
        if (d->use_bias) memset(net->grads + d->b_off, 0, d->out * sizeof(T));
    }
    FNN_FN(net_find_lowest_)(net);
    return FNN_OK;
}

void FNN_FN(net_get_counters)(const struct NET *net, int64_t *step, int64_t *opt_step) {
    if (step) *step = net ? net->step : 0;
    if (opt_step) *opt_step = net ? net->opt_step : 0;
}

void FNN_FN(net_set_counters)(struct NET *net, int64_t step, int64_t opt_step) {
    if (!net) return;
    net->step = step < 0 ? 0 : step;
    net->opt_step = opt_step < 0 ? 0 : opt_step;
}

/* ---- dropout ------------------------------------------------------------------------------------ */

/* y = x * keep / (1 - p) over elements [4*b0, 4*b1) of n; keep decided by Philox(seed; step, layer,
 * element).  In place (x == y) is how the backward applies the same mask to a gradient. */
static void FNN_FN(dropout_range_)(const struct NET *net, int layer, double p, const T *x, T *y, size_t n,
                                   size_t b0, size_t b1) {
    const uint64_t thr = fnn_dropout_threshold(p);
    const T scale = (T)(1.0 / (1.0 - p));
    const uint64_t step = (uint64_t)net->step;
    for (size_t b = b0; b < b1; b++) {
        uint32_t r[4];
        fnn_dropout_block(net->key, step, (uint32_t)layer, (uint64_t)b, r);
        size_t e0 = b * 4;
        for (size_t k = 0; k < 4 && e0 + k < n; k++) y[e0 + k] = r[k] < thr ? (T)0 : x[e0 + k] * scale;
    }
}

static void FNN_FN(dropout_)(const struct NET *net, int layer, double p, const T *x, T *y, size_t n, int nt) {
    const size_t nblk = (n + 3) / 4;
    nt = FNN_FN(net_ew_threads_)(n * 8, nt); /* Philox costs about 8 multiply-adds per element */
    if (nt <= 1) {
        FNN_FN(dropout_range_)(net, layer, p, x, y, n, 0, nblk);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int k = 0; k < nt; k++)
        FNN_FN(dropout_range_)(net, layer, p, x, y, n, nblk * (size_t)k / (size_t)nt, nblk * (size_t)(k + 1) / (size_t)nt);
}

/* ---- forward ------------------------------------------------------------------------------------ */

static const T *FNN_FN(net_fwd_)(struct NET *net, const T *x, size_t rows, int training, int nt) {
    const T *cur = x;
    for (int l = 0; l < net->nl; l++) {
        const fnn_layer_desc *d = &net->L[l];
        const int act = net->act[l];
        net->in[l] = cur;
        if (!net->folded[l]) switch (d->kind) {
        case FNN_LAYER_DENSE: {
            const T *w = net->params + d->w_off, *b = d->use_bias ? net->params + d->b_off : NULL;
            const T alpha = (T)FNN_FN(net_alpha_)(net, l);
            T *y = net->y[l];
            if (net->needs_z[l]) {
                FNN_FN(gemm_ex)(0, 0, rows, d->out, d->in, 1, cur, d->in, w, d->out, 0, net->z[l], d->out, b,
                                FNN_ACT_LINEAR, 0, nt);
                FNN_FN(act_forward)(act, alpha, net->z[l], y, rows, d->out, FNN_FN(net_ew_threads_)(rows * d->out, nt));
            } else {
                FNN_FN(gemm_ex)(0, 0, rows, d->out, d->in, 1, cur, d->in, w, d->out, 0, y, d->out, b, act, alpha, nt);
            }
            cur = y;
            break;
        }
        case FNN_LAYER_DROPOUT:
            if (training && d->p > 0) {
                FNN_FN(dropout_)(net, l, d->p, cur, net->y[l], rows * d->out, nt);
                cur = net->y[l];
            }
            break;
        case FNN_LAYER_ACTIVATION:
            if (act != FNN_ACT_LINEAR) {
                FNN_FN(act_forward)(act, (T)d->act_alpha, cur, net->y[l], rows, d->out,
                                    FNN_FN(net_ew_threads_)(rows * d->out, nt));
                cur = net->y[l];
            }
            break;
        }
        net->out[l] = cur;
    }
    return cur;
}

/* ---- backward ----------------------------------------------------------------------------------- */

/* g[lo, hi) *= act'(x) for the activations whose derivative is a function of the output y = act(x). */
static void FNN_FN(act_bwd_out_range_)(int act, T alpha, const T *FNN_RESTRICT y, T *FNN_RESTRICT g, size_t lo,
                                       size_t hi) {
    switch (act) {
    case FNN_ACT_RELU:
        for (size_t i = lo; i < hi; i++) g[i] = y[i] > 0 ? g[i] : (T)0;
        break;
    case FNN_ACT_LEAKY_RELU:
        for (size_t i = lo; i < hi; i++) g[i] = y[i] > 0 ? g[i] : alpha * g[i];
        break;
    case FNN_ACT_ELU: /* x <= 0: y = alpha (e^x - 1), y' = alpha e^x = y + alpha */
        for (size_t i = lo; i < hi; i++) g[i] = y[i] > 0 ? g[i] : g[i] * (y[i] + alpha);
        break;
    case FNN_ACT_SIGMOID:
        for (size_t i = lo; i < hi; i++) g[i] *= y[i] * (1 - y[i]);
        break;
    case FNN_ACT_TANH:
        for (size_t i = lo; i < hi; i++) g[i] *= 1 - y[i] * y[i];
        break;
    default: /* linear */
        break;
    }
}

static void FNN_FN(act_backward_from_output_)(int act, T alpha, const T *y, T *g, size_t n, int nt) {
    if (act == FNN_ACT_LINEAR) return;
    nt = FNN_FN(net_ew_threads_)(n, nt);
    if (nt <= 1) {
        FNN_FN(act_bwd_out_range_)(act, alpha, y, g, 0, n);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int k = 0; k < nt; k++)
        FNN_FN(act_bwd_out_range_)(act, alpha, y, g, n * (size_t)k / (size_t)nt, n * (size_t)(k + 1) / (size_t)nt);
}

/* gW += d/dW (l1 sum|W| + l2 sum W^2); returns the penalty.  Serial: a fixed summation order. */
static double FNN_FN(penalty_)(const T *w, T *gw, size_t n, double l1, double l2) {
    double pen1 = 0, pen2 = 0;
    const T a = (T)l1, b = (T)(2 * l2);
    for (size_t i = 0; i < n; i++) {
        T v = w[i];
        if (gw) gw[i] += b * v + a * (T)((v > 0) - (v < 0));
        pen1 += fabs((double)v);
        pen2 += (double)v * (double)v;
    }
    return l1 * pen1 + l2 * pen2;
}

/* Penalties of the layers that are not trained (trainable == 0), or of all layers (all != 0). */
static double FNN_FN(net_penalty_)(const struct NET *net, int all) {
    double pen = 0;
    for (int l = 0; l < net->nl; l++) {
        const fnn_layer_desc *d = &net->L[l];
        if (d->kind == FNN_LAYER_DENSE && (all || !d->trainable) && (d->l1 > 0 || d->l2 > 0))
            pen += FNN_FN(penalty_)(net->params + d->w_off, NULL, d->in * d->out, d->l1, d->l2);
    }
    return pen;
}

/* From dL/dy of the output in g0: gradients of every trainable layer, down to the lowest one.
 * Returns the penalties of the trainable layers (added to their weight gradients). */
static double FNN_FN(net_bwd_)(struct NET *net, size_t rows, int nt) {
    const int lo = net->lowest;
    T *gc = net->g0, *gn = net->g1;
    double pen = 0;
    for (int l = net->nl - 1; l >= lo && lo >= 0; l--) {
        const fnn_layer_desc *d = &net->L[l];
        const int act = net->act[l];
        if (net->folded[l]) continue;
        switch (d->kind) {
        case FNN_LAYER_DENSE: {
            const T alpha = (T)FNN_FN(net_alpha_)(net, l);
            /* dZ = dY * act'(.) in place */
            if (net->needs_z[l])
                FNN_FN(act_backward)(act, alpha, net->z[l], net->y[l], gc, gc, rows, d->out,
                                     FNN_FN(net_ew_threads_)(rows * d->out, nt));
            else
                FNN_FN(act_backward_from_output_)(act, alpha, net->y[l], gc, rows * d->out, nt);
            if (d->trainable) {
                T *gw = net->grads + d->w_off;
                /* dW = X^T dZ (in x out), db = column sums of dZ */
                FNN_FN(gemm_ex)(1, 0, d->in, d->out, rows, 1, net->in[l], d->in, gc, d->out, 0, gw, d->out, NULL,
                                FNN_ACT_LINEAR, 0, nt);
                if (d->use_bias) FNN_FN(colsum)(gc, rows, d->out, 0, net->grads + d->b_off, FNN_FN(net_ew_threads_)(rows * d->out, nt));
                if (d->l1 > 0 || d->l2 > 0) pen += FNN_FN(penalty_)(net->params + d->w_off, gw, d->in * d->out, d->l1, d->l2);
            }
            if (l > lo) { /* dX = dZ W^T (rows x in) */
                FNN_FN(gemm_ex)(0, 1, rows, d->in, d->out, 1, gc, d->out, net->params + d->w_off, d->out, 0, gn, d->in,
                                NULL, FNN_ACT_LINEAR, 0, nt);
                T *t = gc; gc = gn; gn = t;
            }
            break;
        }
        case FNN_LAYER_DROPOUT:
            if (d->p > 0) FNN_FN(dropout_)(net, l, d->p, gc, gc, rows * d->out, nt);
            break;
        case FNN_LAYER_ACTIVATION:
            if (act != FNN_ACT_LINEAR)
                FNN_FN(act_backward)(act, (T)d->act_alpha, net->in[l], net->out[l], gc, gc, rows, d->out,
                                     FNN_FN(net_ew_threads_)(rows * d->out, nt));
            break;
        }
    }
    return pen;
}

static void FNN_FN(net_update_)(struct NET *net, int nt) {
    const fnn_optim_desc *o = &net->opt;
    net->opt_step++;
    for (int l = 0; l < net->nl; l++) {
        const fnn_layer_desc *d = &net->L[l];
        if (d->kind != FNN_LAYER_DENSE || !d->trainable) continue;
        size_t nw = d->in * d->out;
        FNN_FN(optim_update)(o, net->opt_step, net->params, net->grads, net->state, net->n_params, d->w_off, nw, 1,
                             FNN_FN(net_ew_threads_)(nw, nt));
        if (d->use_bias)
            FNN_FN(optim_update)(o, net->opt_step, net->params, net->grads, net->state, net->n_params, d->b_off, d->out,
                                 0, 1);
    }
}

/* ---- steps ---------------------------------------------------------------------------------------- */

static int FNN_FN(net_step_)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sw,
                             size_t rows, int update, double pen_frozen, int nt, double *loss, const T **pred) {
    const T *y = FNN_FN(net_fwd_)(net, x, rows, 1, nt);
    if (pred) *pred = y;
    double data = FNN_FN(loss)(net->loss, y, labels, target, sw, rows, net->n_out, (T)net->loss_param,
                               (T)(1.0 / (double)rows), net->g0) / (double)rows;
    *loss = data;
    if (!isfinite(data)) return FNN_ERR_NONFINITE;
    *loss = data + pen_frozen + FNN_FN(net_bwd_)(net, rows, nt);
    if (!isfinite(*loss)) return FNN_ERR_NONFINITE;
    if (update) {
        FNN_FN(net_update_)(net, nt);
        net->step++;
    }
    return FNN_OK;
}

static int FNN_FN(net_check_data_)(const struct NET *net, const T *x, const int64_t *labels, const T *target) {
    if (!x || net->loss < 0) return FNN_ERR_ARG;
    if (net->loss == FNN_LOSS_CROSS_ENTROPY ? !labels && !target : !target) return FNN_ERR_ARG;
    return FNN_OK;
}

static int FNN_FN(net_step_unlocked_)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sample_w,
                     size_t rows, int update, double *loss) {
    if (!net || !loss || rows == 0 || (update && !net->has_opt)) return FNN_ERR_ARG;
    int rc = FNN_FN(net_check_data_)(net, x, labels, target);
    if (rc) return rc;
    if (net->loss == FNN_LOSS_CROSS_ENTROPY) target = labels ? NULL : target;
    if ((rc = FNN_FN(net_reserve_unlocked_)(net, rows))) return rc;
    const int nt = FNN_FN(net_step_threads)(net, rows);
    return FNN_FN(net_step_)(net, x, labels, target, sample_w, rows, update, FNN_FN(net_penalty_)(net, 0), nt, loss,
                             NULL);
}

/* Copy rows idx[lo..hi) of the data into the batch buffers. */
static void FNN_FN(net_gather_range_)(struct NET *net, const T *x, const int64_t *labels, const T *target,
                                      const T *sw, const int64_t *idx, size_t lo, size_t hi) {
    const size_t ni = net->n_in, no = net->n_out;
    for (size_t i = lo; i < hi; i++) {
        size_t src = (size_t)idx[i];
        memcpy(net->xb + i * ni, x + src * ni, ni * sizeof(T));
        if (labels) net->lb[i] = labels[src];
        if (target) memcpy(net->tb + i * no, target + src * no, no * sizeof(T));
        if (sw) net->wb[i] = sw[src];
    }
}

static void FNN_FN(net_gather_)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sw,
                                const int64_t *idx, size_t r, int nt) {
    nt = FNN_FN(net_ew_threads_)(r * (net->n_in + net->n_out), nt);
    if (nt <= 1) {
        FNN_FN(net_gather_range_)(net, x, labels, target, sw, idx, 0, r);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int k = 0; k < nt; k++)
        FNN_FN(net_gather_range_)(net, x, labels, target, sw, idx, r * (size_t)k / (size_t)nt,
                                  r * (size_t)(k + 1) / (size_t)nt);
}

/* pred rows of the batch rows [start, start+r) of the epoch order: the output with the link applied. */
static void FNN_FN(net_scatter_pred_)(const struct NET *net, const T *y, const int64_t *perm, size_t start, size_t r,
                                      T *pred) {
    const size_t no = net->n_out;
    for (size_t i = 0; i < r; i++) {
        T *dst = pred + (perm ? (size_t)perm[start + i] : start + i) * no;
        memcpy(dst, y + i * no, no * sizeof(T));
        if (net->link != FNN_ACT_LINEAR) FNN_FN(act_forward)(net->link, 0, dst, dst, 1, no, 1);
    }
}

static int FNN_FN(net_fit_chunk_unlocked_)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sample_w,
                          const int64_t *perm, size_t n, size_t batch, size_t first, size_t count, double *losses,
                          T *pred, size_t *bad) {
    if (!net || !losses || n == 0 || batch == 0 || !net->has_opt) return FNN_ERR_ARG;
    int rc = FNN_FN(net_check_data_)(net, x, labels, target);
    if (rc) return rc;
    if (net->loss == FNN_LOSS_CROSS_ENTROPY) target = labels ? NULL : target;
    if (batch > n) batch = n;
    if ((rc = FNN_FN(net_reserve_unlocked_)(net, batch))) return rc;
    const int nt = FNN_FN(net_step_threads)(net, batch);
    const double pen_frozen = FNN_FN(net_penalty_)(net, 0); /* frozen weights do not move in a chunk */
    const size_t ni = net->n_in, no = net->n_out;
    for (size_t b = first; b < first + count; b++) {
        size_t start = b * batch;
        if (start >= n) break;
        size_t r = n - start < batch ? n - start : batch;
        const T *xb = x + start * ni, *tb = target ? target + start * no : NULL, *wb = sample_w ? sample_w + start : NULL;
        const int64_t *lb = labels ? labels + start : NULL;
        if (perm) {
            FNN_FN(net_gather_)(net, x, labels, target, sample_w, perm + start, r, nt);
            xb = net->xb;
            tb = target ? net->tb : NULL;
            wb = sample_w ? net->wb : NULL;
            lb = labels ? net->lb : NULL;
        }
        const T *y;
        rc = FNN_FN(net_step_)(net, xb, lb, tb, wb, r, 1, pen_frozen, nt, &losses[b - first], &y);
        if (rc) {
            if (bad) *bad = b;
            return rc;
        }
        if (pred) FNN_FN(net_scatter_pred_)(net, y, perm, start, r, pred);
    }
    return FNN_OK;
}

static int FNN_FN(net_forward_unlocked_)(struct NET *net, const T *x, size_t rows, size_t batch, int training, int link, T *out) {
    if (!net || !x || !out || batch == 0) return FNN_ERR_ARG;
    if (rows == 0) return FNN_OK;
    if (batch > rows) batch = rows;
    int rc = FNN_FN(net_reserve_unlocked_)(net, batch);
    if (rc) return rc;
    const int nt = FNN_FN(net_step_threads)(net, batch);
    const size_t ni = net->n_in, no = net->n_out;
    for (size_t start = 0; start < rows; start += batch) {
        size_t r = rows - start < batch ? rows - start : batch;
        const T *y = FNN_FN(net_fwd_)(net, x + start * ni, r, training, nt);
        T *dst = out + start * no;
        memcpy(dst, y, r * no * sizeof(T));
        if (link && net->link != FNN_ACT_LINEAR)
            FNN_FN(act_forward)(net->link, 0, dst, dst, r, no, FNN_FN(net_ew_threads_)(r * no, nt));
    }
    return FNN_OK;
}

static int FNN_FN(net_evaluate_unlocked_)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sample_w,
                         size_t n, size_t batch, double *loss, T *pred) {
    if (!net || !loss || n == 0 || batch == 0) return FNN_ERR_ARG;
    int rc = FNN_FN(net_check_data_)(net, x, labels, target);
    if (rc) return rc;
    if (net->loss == FNN_LOSS_CROSS_ENTROPY) target = labels ? NULL : target;
    if (batch > n) batch = n;
    if ((rc = FNN_FN(net_reserve_unlocked_)(net, batch))) return rc;
    const int nt = FNN_FN(net_step_threads)(net, batch);
    const size_t ni = net->n_in, no = net->n_out;
    double sum = 0;
    for (size_t start = 0; start < n; start += batch) {
        size_t r = n - start < batch ? n - start : batch;
        const T *y = FNN_FN(net_fwd_)(net, x + start * ni, r, 0, nt);
        sum += FNN_FN(loss)(net->loss, y, labels ? labels + start : NULL, target ? target + start * no : NULL,
                            sample_w ? sample_w + start : NULL, r, no, (T)net->loss_param, 0, NULL);
        if (pred) FNN_FN(net_scatter_pred_)(net, y, NULL, start, r, pred);
    }
    *loss = sum / (double)n + FNN_FN(net_penalty_)(net, 1);
    return FNN_OK;
}

/* ---- locked entry points ------------------------------------------------------------------------
 * Each call that reads or writes the plan's workspace or settings holds the network's mutex, so that
 * concurrent calls on one network (predict from several threads) are serialised instead of sharing
 * the workspace. */
int FNN_FN(net_reserve)(struct NET *net, size_t batch) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    int rc = FNN_FN(net_reserve_unlocked_)(net, batch);
    mtx_unlock(&net->lock);
    return rc;
}
size_t FNN_FN(net_workspace_bytes)(struct NET *net, size_t batch) {
    if (!net) return 0;
    mtx_lock(&net->lock);
    size_t bytes = FNN_FN(net_layout_)(net, batch, NULL);
    mtx_unlock(&net->lock);
    return bytes;
}
int FNN_FN(net_set_loss)(struct NET *net, int loss, double param) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    int rc = FNN_FN(net_set_loss_unlocked_)(net, loss, param);
    mtx_unlock(&net->lock);
    return rc;
}
int FNN_FN(net_set_optim)(struct NET *net, const fnn_optim_desc *o, T *state, size_t n_state) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    int rc = FNN_FN(net_set_optim_unlocked_)(net, o, state, n_state);
    mtx_unlock(&net->lock);
    return rc;
}
int FNN_FN(net_set_trainable)(struct NET *net, int layer, int trainable) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    int rc = FNN_FN(net_set_trainable_unlocked_)(net, layer, trainable);
    mtx_unlock(&net->lock);
    return rc;
}
int FNN_FN(net_step)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sample_w,
                     size_t rows, int update, double *loss) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    int rc = FNN_FN(net_step_unlocked_)(net, x, labels, target, sample_w, rows, update, loss);
    mtx_unlock(&net->lock);
    return rc;
}
int FNN_FN(net_fit_chunk)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sample_w,
                          const int64_t *perm, size_t n, size_t batch, size_t first, size_t count, double *losses,
                          T *pred, size_t *bad) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    int rc = FNN_FN(net_fit_chunk_unlocked_)(net, x, labels, target, sample_w, perm, n, batch, first, count, losses, pred, bad);
    mtx_unlock(&net->lock);
    return rc;
}
int FNN_FN(net_forward)(struct NET *net, const T *x, size_t rows, size_t batch, int training, int link, T *out) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    int rc = FNN_FN(net_forward_unlocked_)(net, x, rows, batch, training, link, out);
    mtx_unlock(&net->lock);
    return rc;
}
int FNN_FN(net_evaluate)(struct NET *net, const T *x, const int64_t *labels, const T *target, const T *sample_w,
                         size_t n, size_t batch, double *loss, T *pred) {
    if (!net) return FNN_ERR_ARG;
    mtx_lock(&net->lock);
    int rc = FNN_FN(net_evaluate_unlocked_)(net, x, labels, target, sample_w, n, batch, loss, pred);
    mtx_unlock(&net->lock);
    return rc;
}

#undef NET
#undef T
