/* train_t.h - body of the C training API (train.c), included once per dtype (FNN_T, FNN_P): the
 * trainer's net, fit and evaluate of a model whose arguments train.c has checked.
 *
 * Rows come in as float.  A float32 model trains on the caller's array in place (the net gathers
 * shuffled batches into its workspace, as for Python); a float64 model converts rows and targets
 * once per call, exactly, as Python's fit converts a float32 array.  Labels become int64 once per
 * call.  Everything a call allocates is allocated before it changes the model, and freed on return;
 * nothing is allocated per step.
 */
#define T FNN_T
#define NET FNN_CAT(FNN_CAT(fnn_, FNN_P), net)

/* n floats in the model's dtype: `src` itself for float, else a converted copy in *own (NULL when
 * it cannot be allocated). */
static const T *FNN_FN(train_convert_)(const float *src, size_t n, T **own) {
    *own = NULL;
    if (sizeof(T) == sizeof(float)) return (const T *)(const void *)src;
    T *dst = malloc(mul_(n, sizeof(T)));
    if (!dst) return NULL;
    for (size_t i = 0; i < n; i++) dst[i] = (T)src[i];
    return *own = dst;
}

/* A trainer for m: a training net over the model's parameters (its plan's layers, trainable flags
 * included) and a zeroed gradient buffer; no loss or optimizer yet. */
static int FNN_FN(train_open_)(fnn_model *m, uint64_t seed, struct fnn_trainer **out) {
    const fnn_plan *p = &m->plan;
    struct fnn_trainer *t = calloc(1, sizeof *t);
    if (!t) return FNN_ERR_NOMEM;
    t->loss = -1; /* as the new net plans: no loss (loss_param 1.0) until the first fit sets one */
    t->loss_param = 1.0;
    t->seed = seed;
    t->grads = fnn_aligned_alloc(mul_(p->n_params ? p->n_params : 1, sizeof(T)));
    int rc = t->grads ? FNN_OK : FNN_ERR_NOMEM;
    if (!rc) {
        memset(t->grads, 0, p->n_params * sizeof(T));
        struct NET *net = NULL;
        rc = FNN_FN(net_new)(&net, p->L, p->nl, p->n_in, (T *)m->params, (T *)t->grads, p->n_params, seed);
        t->net = net;
    }
    if (rc) {
        fnn_trainer_free(t, (int)sizeof(T));
        return rc;
    }
    *out = t;
    return FNN_OK;
}

static int FNN_FN(train_fit_)(fnn_model *m, const train_call *c, const float *x, const int32_t *labels,
                              const float *targets, size_t rows, size_t epochs, double *final_loss) {
    const fnn_plan *p = &m->plan;
    const size_t ni = p->n_in, no = p->n_out, batch = c->batch < rows ? c->batch : rows;
    const size_t n_batches = (rows + batch - 1) / batch;
    const int ns = fnn_optim_n_state(&c->opt); /* 0 to 3: the options were checked */
    struct fnn_trainer *t = m->trainer, *created = NULL;
    T *x_own = NULL, *t_own = NULL, *state = NULL;
    int64_t *lab = NULL, *perm = NULL;
    double *losses = NULL;
    int rc = FNN_OK;

    /* ---- everything that can fail, before the model changes */
    const T *xs = FNN_FN(train_convert_)(x, rows * ni, &x_own);
    const T *ts = targets ? FNN_FN(train_convert_)(targets, rows * no, &t_own) : NULL;
    if (labels && (lab = malloc(mul_(rows, sizeof *lab))))
        for (size_t i = 0; i < rows; i++) lab[i] = labels[i];
    if (c->shuffle) perm = malloc(mul_(rows, sizeof *perm));
    losses = malloc(mul_(n_batches, sizeof *losses));
    if (!xs || (targets && !ts) || (labels && !lab) || (c->shuffle && !perm) || !losses) {
        rc = fail_(FNN_ERR_NOMEM, "%s: out of memory for the %zu rows of this call", c->who, rows);
        goto done;
    }
    if (!t) {
        if ((rc = FNN_FN(train_open_)(m, c->seed, &created))) {
            fail_(rc, "%s: out of memory for the trainer (gradients of %zu parameters)", c->who, p->n_params);
            goto done;
        }
        t = created;
    }
    struct NET *net = t->net;
    /* a different optimizer, state layout or loss starts afresh, as compile does in Python */
    const int fresh = !t->has_opt || t->opt_kind != c->opt.kind || t->opt_n_state != ns || t->loss != c->loss ||
                      t->loss_param != c->loss_param;
    const size_t n_state = mul_((size_t)ns, p->n_params);
    if (fresh && ns > 0) {
        if (!(state = fnn_aligned_alloc(mul_(n_state, sizeof(T))))) {
            rc = fail_(FNN_ERR_NOMEM, "%s: out of memory for the %s state (%d x %zu parameters)", c->who,
                       fnn_optim_name(c->opt.kind), ns, p->n_params);
            goto done;
        }
        memset(state, 0, n_state * sizeof(T));
    }
    const int new_loss = t->loss != c->loss || t->loss_param != c->loss_param;
    if (new_loss) FNN_FN(net_set_loss)(net, c->loss, c->loss_param); /* checked: cannot fail */
    if ((rc = FNN_FN(net_reserve)(net, batch))) {
        if (new_loss) FNN_FN(net_set_loss)(net, t->loss, t->loss_param);
        fail_(rc, "%s: out of memory for the workspace of batch_size = %zu rows (%zu bytes)", c->who, batch,
              FNN_FN(net_workspace_bytes)(net, batch));
        goto done;
    }

    /* ---- commit: from here the model changes */
    if (new_loss) {
        fnn_plan_set_loss(&m->plan, c->loss, c->loss_param); /* predict's link and save follow the loss */
        t->loss = c->loss;
        t->loss_param = c->loss_param;
    }
    if (fresh) {
        fnn_aligned_free(t->state);
        t->state = state;
        state = NULL;
        t->opt_kind = c->opt.kind;
        t->opt_n_state = ns;
        t->has_opt = 1;
        int64_t step;
        FNN_FN(net_get_counters)(net, &step, NULL);
        FNN_FN(net_set_counters)(net, step, 0); /* Adam's t restarts with its moments */
    }
    FNN_FN(net_set_optim)(net, &c->opt, (T *)t->state, t->state ? n_state : 0);
    if (t->seed != c->seed) {
        FNN_FN(net_set_seed)(net, c->seed);
        t->seed = c->seed;
    }
    m->trainer = t;
    created = NULL;

    /* ---- the epochs: Sequential.fit's loop, each epoch's batches in one call */
    fnn_rows xr = {.x = xs};
    double epoch_loss = NAN;
    for (size_t e = 0; e < epochs; e++) {
        if (perm) fnn_permutation(c->seed, t->epochs, perm, rows);
        t->epochs++;
        size_t bad = 0;
        rc = FNN_FN(net_fit_chunk)(net, &xr, lab, ts, NULL, perm, rows, batch, 0, n_batches, losses, NULL, &bad);
        if (rc == FNN_ERR_NONFINITE) {
            fail_(rc, "%s: the loss became %g at epoch %zu, batch %zu of %zu; the weights are those of the last "
                  "good step (a smaller lr or scaled inputs usually help)", c->who, losses[bad], e + 1, bad + 1,
                  n_batches);
            goto done;
        }
        if (rc) {
            fail_(rc, "%s: a training step failed: %s", c->who, fnn_strerror(rc));
            goto done;
        }
        double sum = 0; /* the mean of the batch losses weighted by their rows, as Python's history */
        for (size_t b = 0; b < n_batches; b++) sum += losses[b] * (double)(b + 1 < n_batches ? batch : rows - b * batch);
        epoch_loss = sum / (double)rows;
    }
    if (final_loss) *final_loss = epoch_loss;
done:
    free(x_own);
    free(t_own);
    free(lab);
    free(perm);
    free(losses);
    fnn_aligned_free(state);
    fnn_trainer_free(created, (int)sizeof(T));
    return rc;
}

/* The forward pass of the model's plan (or of a copy planned with another loss) in blocks of
 * FNN_TRAIN_EVAL_BLOCK rows, the loss summed block by block, plus every layer's penalty: what
 * fnn_snet_evaluate computes for Python, without touching the trainer (any number may run at once). */
static int FNN_FN(train_evaluate_)(const fnn_model *m, const train_call *c, const float *x, const int32_t *labels,
                                   const float *targets, size_t rows, double *loss) {
    const fnn_plan *p = &m->plan;
    fnn_plan own;
    int rc = FNN_OK, planned = 0;
    if (c->loss != p->loss || (c->loss == FNN_LOSS_HUBER && c->loss_param != p->loss_param)) {
        if (!(rc = fnn_plan_init(&own, p->L, p->nl, p->n_in, p->n_params))) {
            planned = 1;
            rc = fnn_plan_set_loss(&own, c->loss, c->loss_param);
            if (!rc) rc = fnn_plan_pack(&own, m->params); /* int8 layers read their packed weights */
        }
        p = &own;
    }
    const size_t ni = p->n_in, no = p->n_out, chunk = rows < FNN_TRAIN_EVAL_BLOCK ? rows : FNN_TRAIN_EVAL_BLOCK;
    const int convert = sizeof(T) != sizeof(float);
    T *ws = NULL, *xb = NULL, *tb = NULL;
    int64_t *lb = NULL;
    if (!rc) {
        ws = fnn_aligned_alloc(mul_(chunk * (p->icols ? p->icols : 1), sizeof(T)));
        if (convert) xb = malloc(chunk * ni * sizeof(T));
        if (convert && targets) tb = malloc(chunk * no * sizeof(T));
        if (labels) lb = malloc(chunk * sizeof *lb);
        if (!ws || (convert && !xb) || (convert && targets && !tb) || (labels && !lb)) rc = FNN_ERR_NOMEM;
    }
    if (rc) {
        fail_(rc, "%s: out of memory for blocks of %zu rows", c->who, chunk);
    } else {
        const int nt = fnn_get_num_threads();
        const T *params = (const T *)m->params;
        double sum = 0;
        for (size_t start = 0; start < rows; start += chunk) {
            const size_t r = rows - start < chunk ? rows - start : chunk;
            const float *xs = x + start * ni, *tsrc = targets ? targets + start * no : NULL;
            if (convert) {
                for (size_t i = 0; i < r * ni; i++) xb[i] = (T)xs[i];
                for (size_t i = 0; tsrc && i < r * no; i++) tb[i] = (T)tsrc[i];
            }
            for (size_t i = 0; labels && i < r; i++) lb[i] = labels[start + i];
            const T *xin = convert ? xb : (const T *)(const void *)xs;
            const T *tin = !tsrc ? NULL : convert ? tb : (const T *)(const void *)tsrc;
            const T *y = FNN_FN(forward)(p, params, xin, r, ws, chunk, NULL, NULL, nt);
            sum += FNN_FN(loss)(p->loss, y, lb, tin, NULL, r, no, (T)p->loss_param, 0, NULL);
        }
        *loss = sum / (double)rows + FNN_FN(penalty)(p, params, 1);
    }
    fnn_aligned_free(ws);
    free(xb);
    free(tb);
    free(lb);
    if (planned) fnn_plan_free(&own);
    return rc;
}

#undef NET
#undef T
