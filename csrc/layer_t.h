/* layer_t.h - body of the layer steps and of the forward and backward passes, included by layer.c once
 * per dtype (FNN_T, FNN_P).
 *
 * Each layer kind has its forward and backward side by side; outputs first, then inputs.  Shapes of
 * one pass over B rows (row-major): the layer's input x (B x in), its output y (B x out), for a Dense
 * layer that keeps it the pre-activation z (B x out), and the gradient g flowing down (B x out on the
 * way in, B x in on the way out).  A layer that is the identity in a pass writes nothing: its output
 * is its input.
 */
#define T FNN_T

/* ---- penalties ------------------------------------------------------------------------------------- */

/* gW += d/dW (l1 sum|W| + l2 sum W^2) unless gw is NULL; returns the penalty.  Serial: a fixed order. */
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

double FNN_FN(penalty)(const fnn_plan *p, const T *params, int all) {
    double pen = 0;
    for (int l = 0; l < p->nl; l++) {
        const fnn_layer_desc *d = &p->L[l];
        if (d->kind == FNN_LAYER_DENSE && (all || !d->trainable) && (d->l1 > 0 || d->l2 > 0))
            pen += FNN_FN(penalty_)(params + d->w_off, NULL, d->in * d->out, d->l1, d->l2);
    }
    return pen;
}

/* ---- dense: y = act(x W + b) --------------------------------------------------------------------- */

/* With z: the pre-activation is kept (training, when act' needs it) and act runs over it after the
 * GEMM.  Without: act runs in the GEMM's epilogue, tile by tile, unless it is row-wise. */
static void FNN_FN(dense_forward)(T *y, T *z, const fnn_layer_desc *d, int act, T alpha, const T *params,
                                  const T *x, size_t rows, int nt) {
    const T *w = params + d->w_off, *b = d->use_bias ? params + d->b_off : NULL;
    if (z || FNN_ACT_IS_ROWWISE(act)) { /* a tile of the epilogue holds part of a row only */
        T *pre = z ? z : y;
        FNN_FN(gemm_ex)(0, 0, rows, d->out, d->in, 1, x, d->in, w, d->out, 0, pre, d->out, b, FNN_ACT_LINEAR, 0, nt);
        FNN_FN(act_forward)(act, alpha, pre, y, rows, d->out, nt);
    } else {
        FNN_FN(gemm_ex)(0, 0, rows, d->out, d->in, 1, x, d->in, w, d->out, 0, y, d->out, b, act, alpha, nt);
    }
}

/* g (B x out, dL/dy) becomes dL/dz in place; then dW = x^T dZ, db = column sums of dZ (when the layer
 * trains) and, when gx != NULL, dL/dx = dZ W^T into gx.  Returns the layer's penalty (added to dW). */
static double FNN_FN(dense_backward)(T *gx, T *grads, T *g, const fnn_layer_desc *d, int act, T alpha,
                                     const T *params, const T *x, const T *y, const T *z, size_t rows, int nt) {
    const T *w = params + d->w_off;
    double pen = 0;
    if (z) FNN_FN(act_backward)(act, alpha, z, y, g, g, rows, d->out, nt);
    else FNN_FN(act_backward_from_output)(act, alpha, y, g, rows * d->out, nt);
    if (d->trainable) {
        T *gw = grads + d->w_off;
        FNN_FN(gemm_ex)(1, 0, d->in, d->out, rows, 1, x, d->in, g, d->out, 0, gw, d->out, NULL, FNN_ACT_LINEAR, 0, nt);
        if (d->use_bias) FNN_FN(colsum)(g, rows, d->out, 0, grads + d->b_off, nt);
        if (d->l1 > 0 || d->l2 > 0) pen = FNN_FN(penalty_)(w, gw, d->in * d->out, d->l1, d->l2);
    }
    if (gx)
        FNN_FN(gemm_ex)(0, 1, rows, d->in, d->out, 1, g, d->out, w, d->out, 0, gx, d->in, NULL, FNN_ACT_LINEAR, 0, nt);
    return pen;
}

/* ---- dropout: y = x * keep / (1 - p), keep drawn by Philox(seed; step, layer, element) ------------ */

/* Elements [4*b0, 4*b1) of n.  In place (x == y) is how the backward applies the same mask to g. */
static void FNN_FN(dropout_range_)(const fnn_dropout *drop, int layer, double p, const T *x, T *y, size_t n,
                                   size_t b0, size_t b1) {
    const uint64_t thr = fnn_dropout_threshold(p);
    const T scale = (T)(1.0 / (1.0 - p));
    for (size_t b = b0; b < b1; b++) {
        uint32_t r[4];
        fnn_dropout_block(drop->key, drop->step, (uint32_t)layer, (uint64_t)b, r);
        size_t e0 = b * 4;
        for (size_t k = 0; k < 4 && e0 + k < n; k++) y[e0 + k] = r[k] < thr ? (T)0 : x[e0 + k] * scale;
    }
}

static void FNN_FN(dropout_forward)(T *y, const fnn_dropout *drop, int layer, double p, const T *x, size_t n, int nt) {
    const size_t nblk = (n + 3) / 4;
    nt = fnn_threads_for(n * 8, FNN_LAYER_GRAIN, nt); /* Philox costs about 8 multiply-adds per element */
    FNN_PARALLEL_RANGES(lo, hi, nblk, { FNN_FN(dropout_range_)(drop, layer, p, x, y, n, lo, hi); });
}

static void FNN_FN(dropout_backward)(T *g, const fnn_dropout *drop, int layer, double p, size_t n, int nt) {
    FNN_FN(dropout_forward)(g, drop, layer, p, g, n, nt);
}

/* ---- the passes ---------------------------------------------------------------------------------- */

static T *FNN_FN(buf_)(T *ws, size_t cap, size_t col) { return col == FNN_PLAN_NONE ? NULL : ws + cap * col; }

const T *FNN_FN(forward)(const fnn_plan *p, const T *params, const T *x, size_t rows, T *ws, size_t cap,
                         const fnn_dropout *drop, const T **in, int nt) {
    const size_t *col = drop ? p->col : p->icol;
    const T *cur = x;
    for (int l = 0; l < p->nl; l++) {
        const fnn_layer_desc *d = &p->L[l];
        T *y = FNN_FN(buf_)(ws, cap, col[l]);
        if (in) in[l] = cur;
        if (p->folded[l]) continue;
        switch (d->kind) {
        case FNN_LAYER_DENSE:
            FNN_FN(dense_forward)(y, drop ? FNN_FN(buf_)(ws, cap, p->zcol[l]) : NULL, d, p->act[l], (T)p->alpha[l],
                                  params, cur, rows, nt);
            cur = y;
            break;
        case FNN_LAYER_DROPOUT:
            if (drop && d->p > 0) {
                FNN_FN(dropout_forward)(y, drop, l, d->p, cur, rows * d->out, nt);
                cur = y;
            }
            break;
        case FNN_LAYER_ACTIVATION:
            if (p->act[l] != FNN_ACT_LINEAR) {
                FNN_FN(act_forward)(p->act[l], (T)p->alpha[l], cur, y, rows, d->out, nt);
                cur = y;
            }
            break;
        }
    }
    if (in) in[p->nl] = cur;
    return cur;
}

double FNN_FN(backward_notify)(const fnn_plan *p, const T *params, T *grads, const T *const *in, const T *ws,
                               size_t cap, const fnn_dropout *drop, size_t rows, T *g[2], int nt,
                               fnn_layer_done_fn done, void *ctx) {
    const int lo = p->lowest;
    int cur = 0;
    double pen = 0;
    for (int l = p->nl - 1; l >= lo && lo >= 0; l--) {
        const fnn_layer_desc *d = &p->L[l];
        if (p->folded[l]) continue;
        switch (d->kind) {
        case FNN_LAYER_DENSE: {
            const T *z = p->zcol[l] == FNN_PLAN_NONE ? NULL : ws + cap * p->zcol[l];
            T *gx = l > lo ? g[!cur] : NULL;
            pen += FNN_FN(dense_backward)(gx, grads, g[cur], d, p->act[l], (T)p->alpha[l], params, in[l], in[l + 1],
                                          z, rows, nt);
            if (gx) cur = !cur;
            break;
        }
        case FNN_LAYER_DROPOUT:
            if (d->p > 0) FNN_FN(dropout_backward)(g[cur], drop, l, d->p, rows * d->out, nt);
            break;
        case FNN_LAYER_ACTIVATION:
            if (p->act[l] != FNN_ACT_LINEAR)
                FNN_FN(act_backward)(p->act[l], (T)p->alpha[l], in[l], in[l + 1], g[cur], g[cur], rows, d->out, nt);
            break;
        }
        if (done) done(ctx, l);
    }
    return pen;
}

double FNN_FN(backward)(const fnn_plan *p, const T *params, T *grads, const T *const *in, const T *ws, size_t cap,
                        const fnn_dropout *drop, size_t rows, T *g[2], int nt) {
    return FNN_FN(backward_notify)(p, params, grads, in, ws, cap, drop, rows, g, nt, NULL, NULL);
}

#undef T
