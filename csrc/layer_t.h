/* layer_t.h - body of the layer steps and of the forward and backward passes, included by layer.c once
 * per dtype (FNN_T, FNN_P).
 *
 * Each layer kind has its forward and backward side by side; outputs first, then inputs.  Shapes of
 * one pass over B rows (row-major): the layer's input x (B x in), its output y (B x out), for a Dense
 * layer that keeps it the pre-activation z (B x out), and the gradient g flowing down (B x out on the
 * way in, B x in on the way out).  A layer that is the identity in a pass writes nothing: its output
 * is its input.
 *
 * Normalization layers take their statistics in T, each sum over rows or columns in index order on one
 * thread: columns (BatchNorm's per-unit statistics, every gamma/beta gradient) or rows (LayerNorm) are
 * split over threads, never a sum, so the bits do not depend on the thread count.
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

/* A Dense layer's product C = op(A) op(B) (+ bias, act): in T, or with bfloat16 inputs when bf16 names
 * the ones to round (lowp.h: bfloat16 weights, or training with precision="bfloat16"). */
static void FNN_FN(dense_gemm_)(int bf16, int ta, int tb, size_t m, size_t n, size_t k, const T *a, size_t lda,
                                const T *b, size_t ldb, T *c, size_t ldc, const T *bias, int act, T act_alpha,
                                int nt) {
    if (bf16) FNN_FN(gemm_bf16_ex)(bf16, ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, ldc, bias, act, act_alpha, nt);
    else FNN_FN(gemm_ex)(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, ldc, bias, act, act_alpha, nt);
}

/* With z: the pre-activation is kept (training, when act' needs it) and act runs over it after the
 * GEMM.  Without: act runs in the GEMM's epilogue, tile by tile, unless it is row-wise. */
static void FNN_FN(dense_forward)(T *y, T *z, const fnn_layer_desc *d, int act, T alpha, const T *params,
                                  const T *x, size_t rows, int bf16, int nt) {
    const T *w = params + d->w_off, *b = d->use_bias ? params + d->b_off : NULL;
    if (z || FNN_ACT_IS_ROWWISE(act)) { /* a tile of the epilogue holds part of a row only */
        T *pre = z ? z : y;
        FNN_FN(dense_gemm_)(bf16, 0, 0, rows, d->out, d->in, x, d->in, w, d->out, pre, d->out, b, FNN_ACT_LINEAR, 0, nt);
        FNN_FN(act_forward)(act, alpha, pre, y, rows, d->out, nt);
    } else {
        FNN_FN(dense_gemm_)(bf16, 0, 0, rows, d->out, d->in, x, d->in, w, d->out, y, d->out, b, act, alpha, nt);
    }
}

/* The bias gradient as side tasks of the backward pass's products: column block i of out[j] = sum_i
 * g[i][j], each column summed in row order (colsum's order, so the bits are colsum's). */
typedef struct {
    const T *g;
    size_t rows, cols;
    T *out;
} FNN_FN(colsum_job_);

static void FNN_FN(colsum_task_)(void *ctx, size_t i) {
    const FNN_FN(colsum_job_) *c = ctx;
    const size_t j0 = i * FNN_DENSE_DB_BLOCK, w = c->cols - j0 < FNN_DENSE_DB_BLOCK ? c->cols - j0 : FNN_DENSE_DB_BLOCK;
    FNN_FN(colsum_scaled)(c->g + j0, c->rows, w, c->cols, NULL, c->out + j0, 1);
}

/* g (B x out, dL/dy) becomes dL/dz in place; then dW = x^T dZ, db = column sums of dZ (when the layer
 * trains) and, when gx != NULL, dL/dx = dZ W^T into gx.  Returns the layer's penalty (added to dW). */
static double FNN_FN(dense_backward)(T *gx, T *grads, T *g, const fnn_layer_desc *d, int act, T alpha,
                                     const T *params, const T *x, const T *y, const T *z, size_t rows, int bf16,
                                     int nt) {
    const T *w = params + d->w_off;
    double pen = 0;
    if (z) FNN_FN(act_backward)(act, alpha, z, y, g, g, rows, d->out, nt);
    else FNN_FN(act_backward_from_output)(act, alpha, y, g, rows * d->out, nt);
    T *gw = d->trainable ? grads + d->w_off : NULL;
    if (!bf16) { /* dW, dX and db from one parallel region */
        const FNN_FN(gemm_args) dw = {1, 0, d->in, d->out, rows, 1, x, d->in, g, d->out, 0, gw, d->out};
        const FNN_FN(gemm_args) dx = {0, 1, rows, d->in, d->out, 1, g, d->out, w, d->out, 0, gx, d->in};
        FNN_FN(gemm_args) ops[2];
        int nops = 0;
        if (gw) ops[nops++] = dw;
        if (gx) ops[nops++] = dx;
        FNN_FN(colsum_job_) cs = {g, rows, d->out, gw && d->use_bias ? grads + d->b_off : NULL};
        const size_t ncs = cs.out ? (d->out + FNN_DENSE_DB_BLOCK - 1) / FNN_DENSE_DB_BLOCK : 0;
        FNN_FN(gemm_set)(ops, nops, FNN_FN(colsum_task_), &cs, ncs, ncs ? (double)(rows * d->out) : 0, nt);
    } else {
        if (gw) {
            FNN_FN(dense_gemm_)(bf16, 1, 0, d->in, d->out, rows, x, d->in, g, d->out, gw, d->out, NULL, FNN_ACT_LINEAR, 0,
                                nt);
            if (d->use_bias) FNN_FN(colsum)(g, rows, d->out, 0, grads + d->b_off, nt);
        }
        if (gx)
            FNN_FN(dense_gemm_)(bf16, 0, 1, rows, d->in, d->out, g, d->out, w, d->out, gx, d->in, NULL, FNN_ACT_LINEAR, 0,
                                nt);
    }
    if (gw && (d->l1 > 0 || d->l2 > 0)) pen = FNN_FN(penalty_)(w, gw, d->in * d->out, d->l1, d->l2);
    return pen;
}

/* Which inputs of a Dense layer's products a pass rounds to bfloat16: its input (its weights already
 * are) for bfloat16 weights; both in a training pass of a net that trains in bfloat16. */
static int FNN_FN(bf16_)(const fnn_plan *p, const fnn_layer_desc *d, int training) {
    if (d->wkind == FNN_WEIGHT_BF16) return FNN_BF16_A;
    return training && p->bf16 ? FNN_BF16_A | FNN_BF16_B : 0;
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

/* ---- batch normalization: y = gamma * (x - mean) / sqrt(var + eps) + beta, per unit (column) -------
 * Training (the layer trainable): the batch's mean and biased variance, kept in st (mean, var and
 * 1/sqrt(var + eps), out values each) for the backward pass and the running statistics' update.
 * Inference, and training with the layer frozen (Keras's rule: a frozen BatchNorm runs in inference
 * mode): the running statistics, as one scale a and shift c per unit, computed for a block of units at
 * a time; bn_affine also takes the bias of a Dense it is folded into (c = beta + (bias - mean) * a). */

#define FNN_NORM_BLOCK 64

static void FNN_FN(bn_coef_)(const fnn_layer_desc *d, const T *params, const T *bias, size_t j0, size_t w, T *a,
                             T *c) {
    const T *gamma = params + d->w_off, *beta = params + d->b_off, *mean = params + d->s_off, *var = mean + d->out;
    const T eps = (T)d->eps;
    for (size_t k = 0; k < w; k++) {
        size_t j = j0 + k;
        a[k] = gamma[j] / FNN_SQRT(var[j] + eps);
        c[k] = beta[j] + ((bias ? bias[j] : (T)0) - mean[j]) * a[k];
    }
}

/* y = x * a + c (y may be x); with shift = 0, g = g * a: the backward pass of the same map. */
static void FNN_FN(bn_affine)(T *y, const T *x, size_t rows, const fnn_layer_desc *d, const T *params, const T *bias,
                              int shift, int nt) {
    const size_t n = d->out;
    nt = fnn_threads_for(rows * n, FNN_LAYER_GRAIN, nt);
    FNN_PARALLEL_RANGES(lo, hi, rows, {
        T a[FNN_NORM_BLOCK], c[FNN_NORM_BLOCK];
        for (size_t j0 = 0; j0 < n; j0 += FNN_NORM_BLOCK) {
            const size_t w = n - j0 < FNN_NORM_BLOCK ? n - j0 : FNN_NORM_BLOCK;
            FNN_FN(bn_coef_)(d, params, bias, j0, w, a, c);
            for (size_t i = lo; i < hi; i++) {
                const T *xi = x + i * n + j0;
                T *yi = y + i * n + j0;
                if (shift)
                    for (size_t k = 0; k < w; k++) yi[k] = xi[k] * a[k] + c[k];
                else
                    for (size_t k = 0; k < w; k++) yi[k] = xi[k] * a[k];
            }
        }
    });
}

static void FNN_FN(bn_forward)(T *y, T *st, const fnn_layer_desc *d, const T *params, const T *x, size_t rows,
                               int nt) {
    const size_t n = d->out;
    const T *gamma = params + d->w_off, *beta = params + d->b_off;
    T *mean = st, *var = st + n, *rstd = st + 2 * n;
    const T inv = (T)(1.0 / (double)rows), eps = (T)d->eps;
    nt = fnn_threads_for(rows * n, FNN_LAYER_GRAIN, nt);
    FNN_PARALLEL_RANGES(lo, hi, n, {
        for (size_t j = lo; j < hi; j++) mean[j] = var[j] = 0;
        for (size_t i = 0; i < rows; i++)
            for (size_t j = lo; j < hi; j++) mean[j] += x[i * n + j];
        for (size_t j = lo; j < hi; j++) mean[j] *= inv;
        for (size_t i = 0; i < rows; i++)
            for (size_t j = lo; j < hi; j++) {
                T dv = x[i * n + j] - mean[j];
                var[j] += dv * dv;
            }
        for (size_t j = lo; j < hi; j++) {
            var[j] *= inv;
            rstd[j] = (T)1 / FNN_SQRT(var[j] + eps);
        }
    });
    FNN_PARALLEL_RANGES(lo, hi, rows, {
        for (size_t i = lo; i < hi; i++)
            for (size_t j = 0; j < n; j++) y[i * n + j] = gamma[j] * ((x[i * n + j] - mean[j]) * rstd[j]) + beta[j];
    });
}

/* g (B x out, dL/dy): dgamma = sum g * xhat, dbeta = sum g into grads; then, when gx, dL/dx in place:
 * gamma * rstd * (g - (dbeta + xhat * dgamma) / B), xhat = (x - mean) * rstd. */
static void FNN_FN(bn_backward)(T *g, T *grads, const fnn_layer_desc *d, const T *params, const T *x, const T *st,
                                size_t rows, int gx, int nt) {
    const size_t n = d->out;
    const T *gamma = params + d->w_off, *mean = st, *rstd = st + 2 * n;
    T *dg = grads + d->w_off, *db = grads + d->b_off;
    const T inv = (T)(1.0 / (double)rows);
    nt = fnn_threads_for(rows * n, FNN_LAYER_GRAIN, nt);
    FNN_PARALLEL_RANGES(lo, hi, n, {
        for (size_t j = lo; j < hi; j++) dg[j] = db[j] = 0;
        for (size_t i = 0; i < rows; i++)
            for (size_t j = lo; j < hi; j++) {
                T gi = g[i * n + j];
                db[j] += gi;
                dg[j] += gi * ((x[i * n + j] - mean[j]) * rstd[j]);
            }
        if (gx)
            for (size_t i = 0; i < rows; i++)
                for (size_t j = lo; j < hi; j++) {
                    T xhat = (x[i * n + j] - mean[j]) * rstd[j];
                    g[i * n + j] = gamma[j] * rstd[j] * (g[i * n + j] - (db[j] + xhat * dg[j]) * inv);
                }
    });
}

/* Running statistics after a training step: running = momentum * running + (1 - momentum) * batch. */
void FNN_FN(bn_update_running)(T *params, const fnn_layer_desc *d, const T *st) {
    const size_t n = d->out;
    T *rmean = params + d->s_off, *rvar = rmean + n;
    const T m = (T)d->momentum, m1 = (T)(1.0 - d->momentum);
    for (size_t j = 0; j < n; j++) {
        rmean[j] = rmean[j] * m + st[j] * m1;
        rvar[j] = rvar[j] * m + st[n + j] * m1;
    }
}

/* A Dense layer with the BatchNorm bn folded into it (inference): the product, then one pass of scale,
 * shift (the bias included) and activation over its output. */
static void FNN_FN(dense_bn_forward)(T *y, const fnn_layer_desc *d, const fnn_layer_desc *bn, int act, T alpha,
                                     const T *params, const T *x, size_t rows, int nt) {
    FNN_FN(gemm_ex)(0, 0, rows, d->out, d->in, 1, x, d->in, params + d->w_off, d->out, 0, y, d->out, NULL,
                    FNN_ACT_LINEAR, 0, nt);
    FNN_FN(bn_affine)(y, y, rows, bn, params, d->use_bias ? params + d->b_off : NULL, 1, nt);
    if (act != FNN_ACT_LINEAR) FNN_FN(act_forward)(act, alpha, y, y, rows, d->out, nt);
}

/* ---- layer normalization: y = gamma * (x - mean) / sqrt(var + eps) + beta, statistics per row ------
 * The same in training and inference; a training pass keeps each row's mean and 1/sqrt(var + eps) in
 * st (rows x 2) for the backward pass. */

static void FNN_FN(ln_forward)(T *y, T *st, const fnn_layer_desc *d, const T *params, const T *x, size_t rows,
                               int nt) {
    const size_t n = d->out;
    const T *gamma = params + d->w_off, *beta = params + d->b_off;
    const T inv = (T)(1.0 / (double)n), eps = (T)d->eps;
    nt = fnn_threads_for(rows * n, FNN_LAYER_GRAIN, nt);
    FNN_PARALLEL_RANGES(lo, hi, rows, {
        for (size_t i = lo; i < hi; i++) {
            const T *xi = x + i * n;
            T *yi = y + i * n;
            T m = 0, v = 0;
            for (size_t j = 0; j < n; j++) m += xi[j];
            m *= inv;
            for (size_t j = 0; j < n; j++) v += (xi[j] - m) * (xi[j] - m);
            const T r = (T)1 / FNN_SQRT(v * inv + eps);
            if (st) {
                st[2 * i] = m;
                st[2 * i + 1] = r;
            }
            for (size_t j = 0; j < n; j++) yi[j] = gamma[j] * ((xi[j] - m) * r) + beta[j];
        }
    });
}

/* g (B x out, dL/dy): dgamma, dbeta (sums over rows) into grads when the layer trains; then, when gx,
 * dL/dx in place, per row: rstd * (g*gamma - mean_j(g*gamma) - xhat * mean_j(g*gamma*xhat)). */
static void FNN_FN(ln_backward)(T *g, T *grads, const fnn_layer_desc *d, const T *params, const T *x, const T *st,
                                size_t rows, int gx, int nt) {
    const size_t n = d->out;
    const T *gamma = params + d->w_off;
    const T inv = (T)(1.0 / (double)n);
    nt = fnn_threads_for(rows * n, FNN_LAYER_GRAIN, nt);
    if (d->trainable) {
        T *dg = grads + d->w_off, *db = grads + d->b_off;
        FNN_PARALLEL_RANGES(lo, hi, n, {
            for (size_t j = lo; j < hi; j++) dg[j] = db[j] = 0;
            for (size_t i = 0; i < rows; i++) {
                const T m = st[2 * i], r = st[2 * i + 1];
                for (size_t j = lo; j < hi; j++) {
                    T gi = g[i * n + j];
                    db[j] += gi;
                    dg[j] += gi * ((x[i * n + j] - m) * r);
                }
            }
        });
    }
    if (!gx) return;
    FNN_PARALLEL_RANGES(lo, hi, rows, {
        for (size_t i = lo; i < hi; i++) {
            const T m = st[2 * i], r = st[2 * i + 1], *xi = x + i * n;
            T *gi = g + i * n, s1 = 0, s2 = 0;
            for (size_t j = 0; j < n; j++) {
                T gg = gi[j] * gamma[j];
                s1 += gg;
                s2 += gg * ((xi[j] - m) * r);
            }
            s1 *= inv;
            s2 *= inv;
            for (size_t j = 0; j < n; j++) gi[j] = r * (gi[j] * gamma[j] - s1 - ((xi[j] - m) * r) * s2);
        }
    });
}

/* ---- the passes ---------------------------------------------------------------------------------- */

static T *FNN_FN(buf_)(T *ws, size_t cap, size_t col) { return col == FNN_PLAN_NONE ? NULL : ws + cap * col; }

const T *FNN_FN(forward)(const fnn_plan *p, const T *params, const T *x, size_t rows, T *ws, size_t cap,
                         const fnn_dropout *drop, const T **in, int nt) {
    const size_t *col = drop ? p->col : p->icol;
    const unsigned char *skip = drop ? p->folded : p->ifolded;
    T *stats = drop ? ws + cap * p->cols : NULL;
    const T *cur = x;
    for (int l = 0; l < p->nl; l++) {
        const fnn_layer_desc *d = &p->L[l];
        T *y = FNN_FN(buf_)(ws, cap, col[l]);
        if (in) in[l] = cur;
        if (skip[l]) continue;
        switch (d->kind) {
        case FNN_LAYER_DENSE:
            if (d->wkind == FNN_WEIGHT_INT8) /* low-precision Dense layers are never folded with a BatchNorm */
                FNN_FN(dense_int8_)(p, l, params, cur, rows, y, FNN_FN(buf_)(ws, cap, drop ? p->qcol : p->qicol), nt);
            else if (!drop && p->bn_of[l] >= 0)
                FNN_FN(dense_bn_forward)(y, d, &p->L[p->bn_of[l]], p->iact[l], (T)p->ialpha[l], params, cur, rows, nt);
            else if (drop)
                FNN_FN(dense_forward)(y, FNN_FN(buf_)(ws, cap, p->zcol[l]), d, p->act[l], (T)p->alpha[l], params, cur,
                                      rows, FNN_FN(bf16_)(p, d, 1), nt);
            else
                FNN_FN(dense_forward)(y, NULL, d, p->iact[l], (T)p->ialpha[l], params, cur, rows, FNN_FN(bf16_)(p, d, 0),
                                      nt);
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
        case FNN_LAYER_BATCHNORM:
            if (drop && d->trainable) FNN_FN(bn_forward)(y, stats + p->stat[l], d, params, cur, rows, nt);
            else FNN_FN(bn_affine)(y, cur, rows, d, params, NULL, 1, nt);
            cur = y;
            break;
        case FNN_LAYER_LAYERNORM:
            FNN_FN(ln_forward)(y, drop ? FNN_FN(buf_)(ws, cap, p->zcol[l]) : NULL, d, params, cur, rows, nt);
            cur = y;
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
                                          z, rows, FNN_FN(bf16_)(p, d, 1), nt);
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
        case FNN_LAYER_BATCHNORM:
            if (d->trainable)
                FNN_FN(bn_backward)(g[cur], grads, d, params, in[l], ws + cap * p->cols + p->stat[l], rows, l > lo, nt);
            else if (l > lo)
                FNN_FN(bn_affine)(g[cur], g[cur], rows, d, params, NULL, 0, nt);
            break;
        case FNN_LAYER_LAYERNORM:
            FNN_FN(ln_backward)(g[cur], grads, d, params, in[l], ws + cap * p->zcol[l], rows, l > lo, nt);
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
