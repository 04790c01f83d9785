/* plan.c - the one plan of a network: layer descriptors checked, activations folded, the link fused,
 * and the workspace laid out; shared by training (net.c), inference (model.c) and Python.
 *
 * Folding: an Activation layer directly above a linear Dense runs in that Dense's GEMM epilogue
 * (its own alpha with it).  Link: with cross-entropy (binary cross-entropy) the output goes through
 * a softmax (sigmoid) that the loss fuses; a final Dense or Activation with that same function is
 * then linear in the pass, so that the Keras style (Dense(10, activation="softmax")) and the PyTorch
 * style (logits) are one model.  Layout: see fnn_plan in net.h.
 *
 * Normalization at inference: a BatchNorm directly above a linear Dense (and an Activation directly
 * above that BatchNorm) runs in the Dense's output pass, so Sequential.predict and the C API, which
 * both run this plan, compute a Dense + BatchNorm + activation as one product and one pass over its
 * output.
 */
#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[FNN_LAYER__COUNT] = {
    [FNN_LAYER_DENSE] = "dense", [FNN_LAYER_DROPOUT] = "dropout", [FNN_LAYER_ACTIVATION] = "activation",
    [FNN_LAYER_BATCHNORM] = "batch_norm", [FNN_LAYER_LAYERNORM] = "layer_norm"};

const char *fnn_layer_kind_name(int kind) { return kind >= 0 && kind < FNN_LAYER__COUNT ? kind_names[kind] : NULL; }

int fnn_layer_kind_from_name(const char *name) {
    for (int k = 0; name && k < FNN_LAYER__COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}

static size_t mul_(size_t a, size_t b) { return a && b > SIZE_MAX / a ? SIZE_MAX : a * b; }

static int has_params_(int kind) {
    return kind == FNN_LAYER_DENSE || kind == FNN_LAYER_BATCHNORM || kind == FNN_LAYER_LAYERNORM;
}

/* A matrix (rows x cols) or, with rows = 0, a vector of cols values. */
static fnn_tensor_info tensor_(const char *name, size_t off, size_t rows, size_t cols, int trainable, int decay) {
    return (fnn_tensor_info){.name = name, .off = off, .ndim = rows ? 2 : 1,
                             .shape = {rows ? rows : cols, rows ? cols : 0}, .trainable = trainable, .decay = decay};
}

int fnn_layer_tensors(const fnn_layer_desc *d, fnn_tensor_info out[FNN_LAYER_MAX_TENSORS]) {
    int n = 0;
    switch (d->kind) {
    case FNN_LAYER_DENSE:
        out[n++] = tensor_("weight", d->w_off, d->in, d->out, 1, 1);
        if (d->use_bias) out[n++] = tensor_("bias", d->b_off, 0, d->out, 1, 0);
        break;
    case FNN_LAYER_BATCHNORM:
        out[n++] = tensor_("gamma", d->w_off, 0, d->out, 1, 0);
        out[n++] = tensor_("beta", d->b_off, 0, d->out, 1, 0);
        out[n++] = tensor_("moving_mean", d->s_off, 0, d->out, 0, 0);
        out[n++] = tensor_("moving_variance", d->s_off + d->out, 0, d->out, 0, 0);
        break;
    case FNN_LAYER_LAYERNORM:
        out[n++] = tensor_("gamma", d->w_off, 0, d->out, 1, 0);
        out[n++] = tensor_("beta", d->b_off, 0, d->out, 1, 0);
        break;
    default:
        break;
    }
    return n;
}

size_t fnn_layer_place(fnn_layer_desc *d, size_t base) {
    switch (d->kind) {
    case FNN_LAYER_DENSE:
        d->w_off = base;
        d->b_off = d->use_bias ? base + d->in * d->out : 0;
        return d->in * d->out + (d->use_bias ? d->out : 0);
    case FNN_LAYER_BATCHNORM:
        d->w_off = base;
        d->b_off = base + d->out;
        d->s_off = base + 2 * d->out;
        return 4 * d->out;
    case FNN_LAYER_LAYERNORM:
        d->w_off = base;
        d->b_off = base + d->out;
        return 2 * d->out;
    default:
        return 0;
    }
}

/* Columns are rounded up to 16 values, so that every buffer of a FNN_ALIGN-aligned workspace is
 * 64-byte aligned for either dtype. */
static size_t add_cols_(size_t *cols, size_t width) {
    size_t at = *cols, w = (width + 15) / 16 * 16;
    *cols = w < width || at > SIZE_MAX - w ? SIZE_MAX : at + w;
    return at;
}

static void plan_(fnn_plan *p) {
    const fnn_layer_desc *L = p->L;
    for (int l = 0; l < p->nl; l++) {
        int k = L[l].kind;
        p->act[l] = k == FNN_LAYER_DENSE || k == FNN_LAYER_ACTIVATION ? L[l].act : FNN_ACT_LINEAR;
        p->alpha[l] = L[l].act_alpha;
        p->folded[l] = 0;
        if (l > 0 && k == FNN_LAYER_ACTIVATION && L[l - 1].kind == FNN_LAYER_DENSE && !p->folded[l - 1] &&
            p->act[l - 1] == FNN_ACT_LINEAR) {
            p->act[l - 1] = L[l].act;
            p->alpha[l - 1] = L[l].act_alpha;
            p->folded[l] = 1;
        }
    }
    int last = p->nl - 1;
    while (last > 0 && p->folded[last]) last--;
    p->link = p->loss < 0 ? FNN_ACT_LINEAR : fnn_loss_link(p->loss);
    if (p->link != FNN_ACT_LINEAR && L[last].kind != FNN_LAYER_DROPOUT && p->act[last] == p->link)
        p->act[last] = FNN_ACT_LINEAR;
    for (int l = 0; l < p->nl; l++) {
        p->ifolded[l] = p->folded[l];
        p->iact[l] = p->act[l];
        p->ialpha[l] = p->alpha[l];
        p->bn_of[l] = -1;
    }
    for (int l = 1; l < p->nl; l++) {
        if (L[l].kind != FNN_LAYER_BATCHNORM || L[l - 1].kind != FNN_LAYER_DENSE || p->act[l - 1] != FNN_ACT_LINEAR)
            continue;
        p->ifolded[l] = 1;
        p->bn_of[l - 1] = l;
        if (l + 1 < p->nl && L[l + 1].kind == FNN_LAYER_ACTIVATION && !p->folded[l + 1]) {
            p->ifolded[l + 1] = 1;
            p->iact[l - 1] = p->act[l + 1];
            p->ialpha[l - 1] = p->alpha[l + 1];
        }
    }
    p->cols = p->icols = p->stats = 0;
    for (int l = 0; l < p->nl; l++) {
        const int k = L[l].kind;
        p->needs_z[l] = k == FNN_LAYER_DENSE && !fnn_act_grad_from_output(p->act[l], p->alpha[l]);
        p->col[l] = p->zcol[l] = p->icol[l] = p->stat[l] = FNN_PLAN_NONE;
        if (p->folded[l]) continue;
        int writes = k == FNN_LAYER_DENSE || k == FNN_LAYER_BATCHNORM || k == FNN_LAYER_LAYERNORM ||
                     (k == FNN_LAYER_ACTIVATION && p->act[l] != FNN_ACT_LINEAR);
        if (writes || (k == FNN_LAYER_DROPOUT && L[l].p > 0)) p->col[l] = add_cols_(&p->cols, L[l].out);
        if (p->needs_z[l]) p->zcol[l] = add_cols_(&p->cols, L[l].out);
        if (k == FNN_LAYER_LAYERNORM) p->zcol[l] = add_cols_(&p->cols, 2); /* row mean, 1/sqrt(var + eps) */
        if (k == FNN_LAYER_BATCHNORM) {
            p->stat[l] = p->stats;
            p->stats = mul_(3, L[l].out) > SIZE_MAX - p->stats ? SIZE_MAX : p->stats + 3 * L[l].out;
        }
        if (writes && !p->ifolded[l]) p->icol[l] = add_cols_(&p->icols, L[l].out);
    }
}

static void find_lowest_(fnn_plan *p) {
    p->lowest = -1;
    p->batch_stats = 0;
    for (int l = 0; l < p->nl; l++) {
        if (has_params_(p->L[l].kind) && p->L[l].trainable && p->lowest < 0) p->lowest = l;
        if (p->L[l].kind == FNN_LAYER_BATCHNORM && p->L[l].trainable) p->batch_stats = 1;
    }
}

static int check_layer_(const fnn_layer_desc *d, size_t width, size_t n_params) {
    if (d->in != width || d->out < 1) return FNN_ERR_ARG;
    switch (d->kind) {
    case FNN_LAYER_DENSE:
        if (!fnn_act_is_layer(d->act) || mul_(d->in, d->out) == SIZE_MAX || !(d->l1 >= 0) || !(d->l2 >= 0) ||
            !(d->max_norm >= 0) || !(d->max_norm < HUGE_VAL))
            return FNN_ERR_ARG;
        break;
    case FNN_LAYER_DROPOUT:
        return d->out == d->in && d->p >= 0 && d->p < 1 ? FNN_OK : FNN_ERR_ARG;
    case FNN_LAYER_ACTIVATION:
        return d->out == d->in && fnn_act_is_layer(d->act) ? FNN_OK : FNN_ERR_ARG;
    case FNN_LAYER_BATCHNORM:
        if (!(d->momentum >= 0 && d->momentum <= 1)) return FNN_ERR_ARG;
        /* fall through */
    case FNN_LAYER_LAYERNORM:
        if (d->out != d->in || !(d->eps > 0) || !(d->eps < HUGE_VAL) || d->out > SIZE_MAX / 4) return FNN_ERR_ARG;
        break;
    default:
        return FNN_ERR_ARG;
    }
    fnn_tensor_info t[FNN_LAYER_MAX_TENSORS];
    for (int i = 0, n = fnn_layer_tensors(d, t); i < n; i++) {
        size_t len = t[i].ndim == 2 ? mul_(t[i].shape[0], t[i].shape[1]) : t[i].shape[0];
        if (t[i].off > n_params || len > n_params - t[i].off) return FNN_ERR_ARG;
    }
    return FNN_OK;
}

int fnn_plan_init(fnn_plan *p, const fnn_layer_desc *L, int nl, size_t n_in, size_t n_params) {
    if (!p) return FNN_ERR_ARG;
    memset(p, 0, sizeof *p);
    if (!L || nl < 1 || n_in < 1) return FNN_ERR_ARG;
    size_t width = n_in, max_width = n_in;
    for (int l = 0; l < nl; l++) {
        if (check_layer_(&L[l], width, n_params)) return FNN_ERR_ARG;
        width = L[l].out;
        if (width > max_width) max_width = width;
    }
    const size_t n = (size_t)nl;
    p->L = malloc(n * sizeof *p->L);
    p->act = malloc(3 * n * sizeof *p->act);
    p->alpha = malloc(2 * n * sizeof *p->alpha);
    p->folded = malloc(2 * n);
    p->needs_z = malloc(n);
    p->col = malloc(4 * n * sizeof *p->col);
    if (!p->L || !p->act || !p->alpha || !p->folded || !p->needs_z || !p->col) {
        fnn_plan_free(p);
        return FNN_ERR_NOMEM;
    }
    p->zcol = p->col + n;
    p->icol = p->col + 2 * n;
    p->stat = p->col + 3 * n;
    p->iact = p->act + n;
    p->bn_of = p->act + 2 * n;
    p->ialpha = p->alpha + n;
    p->ifolded = p->folded + n;
    memcpy(p->L, L, n * sizeof *p->L);
    for (int l = 0; l < nl; l++) p->L[l].trainable = p->L[l].trainable != 0;
    p->nl = nl;
    p->n_in = n_in;
    p->n_out = width;
    p->max_width = max_width;
    p->n_params = n_params;
    p->loss = -1;
    p->loss_param = 1.0;
    plan_(p);
    find_lowest_(p);
    return FNN_OK;
}

void fnn_plan_free(fnn_plan *p) {
    if (!p) return;
    free(p->L); free(p->act); free(p->alpha); free(p->folded); free(p->needs_z); free(p->col);
    memset(p, 0, sizeof *p);
}

int fnn_plan_set_loss(fnn_plan *p, int loss, double param) {
    if (!p || loss < -1 || loss >= FNN_LOSS__COUNT) return FNN_ERR_ARG;
    if (loss == FNN_LOSS_HUBER && !(param > 0)) return FNN_ERR_ARG;
    p->loss = loss;
    p->loss_param = param;
    plan_(p);
    return FNN_OK;
}

int fnn_plan_set_trainable(fnn_plan *p, int layer, int trainable) {
    if (!p || layer < 0 || layer >= p->nl || !has_params_(p->L[layer].kind)) return FNN_ERR_ARG;
    p->L[layer].trainable = trainable != 0;
    find_lowest_(p);
    return FNN_OK;
}

double fnn_plan_step_flops(const fnn_plan *p, size_t rows) {
    double flops = 0;
    for (int l = 0; l < p->nl; l++)
        if (p->L[l].kind == FNN_LAYER_DENSE) flops += 6.0 * (double)rows * (double)p->L[l].in * (double)p->L[l].out;
    return flops;
}
