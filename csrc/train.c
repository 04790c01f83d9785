/* train.c - the C training API of fastnn.h: options, freeze, fit and evaluate of a loaded model, on
 * the engine Python trains with.
 *
 * A loaded model (io.c) already holds the training engine's plan type (plan.c) and its parameters
 * in one buffer.  Its first fnn_model_fit adds a trainer: a training net (net.c) over those same
 * parameters, with a gradient buffer and the optimizer state, built from the model's plan as
 * Sequential.build builds one from its layers.  fit then does what Sequential.fit does with the
 * same options, call for call: the epoch's shuffle fnn_permutation(seed, epoch), every batch one
 * training step through fnn_snet_fit_chunk/fnn_dnet_fit_chunk, the optimizer state and step counts
 * kept from call to call until a different optimizer or loss asks for a fresh start (compile).
 * Hence the same bits as Python.  The per-dtype work is train_t.h, which defines (static)
 * fnn_strain_convert_, fnn_strain_open_, fnn_strain_fit_, fnn_strain_evaluate_ and the same with
 * fnn_dtrain_.
 *
 * Every call checks its arguments before it changes anything, and says what was wrong through
 * fnn_last_error_detail (io.c's thread-local channel).  The model's gate (model.c) keeps the calls
 * that change the model (fit, freeze) apart from those that read it (predict, evaluate, save).
 */
#include "model.h"
#include "json.h"
#include "rng.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows per forward pass of fnn_model_evaluate: the block Python's evaluate takes, so that the loss,
 * summed block by block, has the same bits. */
#define FNN_TRAIN_EVAL_BLOCK 1024

struct fnn_trainer {
    void *net;            /* fnn_snet or fnn_dnet (the model's dtype) over the model's parameters */
    void *grads;          /* n_params values */
    void *state;          /* opt_n_state * n_params values: the optimizer's state */
    int has_opt;          /* an optimizer was set (state and counters belong to it) */
    int loss;             /* the loss and optimizer the state was started for */
    double loss_param;
    int opt_kind, opt_n_state;
    uint64_t seed;        /* the seed the net's dropout is keyed by */
    uint64_t epochs;      /* epochs trained, over every call: the next epoch's shuffle */
};

/* One call's arguments, checked and resolved (names to codes, NaN to the defaults). */
typedef struct {
    const char *who;
    int loss;
    double loss_param;
    fnn_optim_desc opt;
    size_t batch;
    int shuffle;
    uint64_t seed;
} train_call;

static int fail_(int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int fail_(int rc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fnn_io_set_error("%s", msg);
    return rc;
}

/* n * size, or SIZE_MAX when that overflows (an allocation of SIZE_MAX fails). */
static size_t mul_(size_t n, size_t size) { return size && n > SIZE_MAX / size ? SIZE_MAX : n * size; }

#define FNN_T float
#define FNN_P s
#include "train_t.h"
#undef FNN_T
#undef FNN_P

#define FNN_T double
#define FNN_P d
#include "train_t.h"
#undef FNN_T
#undef FNN_P

void fnn_trainer_free(struct fnn_trainer *t, int dtype) {
    if (!t) return;
    if (dtype == (int)sizeof(double)) fnn_dnet_free(t->net);
    else fnn_snet_free(t->net);
    fnn_aligned_free(t->grads);
    fnn_aligned_free(t->state);
    free(t);
}

/* ---- options ----------------------------------------------------------------------------------- */

void fnn_train_options_init(fnn_train_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->loss = NULL;
    o->optimizer = "sgd";
    o->lr = NAN;
    o->momentum = 0.0;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = NAN;
    o->nesterov = 0;
    o->batch_size = 32;
    o->shuffle = 1;
    o->seed = 0;
    o->alpha = 0.99;
    o->centered = 0;
    o->huber_delta = NAN;
}

#define OPT_BIT(k) (1u << (k))
#define OPT_ALL (OPT_BIT(FNN_OPT__COUNT) - 1u)
#define OPT_ADAMS (OPT_BIT(FNN_OPT_ADAM) | OPT_BIT(FNN_OPT_ADAMW))

/* What each hyperparameter accepts, and which optimizers read it (the Python classes' checks). */
static const struct {
    const char *name;
    size_t off;         /* of the double in fnn_train_options */
    double lo, hi;
    int hi_open;        /* [lo, hi) rather than [lo, hi] */
    unsigned used_by;   /* OPT_BIT of each optimizer that reads it */
} hyper[] = {
    {.name = "lr", .off = offsetof(fnn_train_options, lr), .lo = 0, .hi = INFINITY, .hi_open = 1, .used_by = OPT_ALL},
    {.name = "momentum", .off = offsetof(fnn_train_options, momentum), .lo = 0, .hi = INFINITY, .hi_open = 1,
     .used_by = OPT_BIT(FNN_OPT_SGD) | OPT_BIT(FNN_OPT_RMSPROP)},
    {.name = "beta1", .off = offsetof(fnn_train_options, beta1), .lo = 0, .hi = 1, .hi_open = 1, .used_by = OPT_ADAMS},
    {.name = "beta2", .off = offsetof(fnn_train_options, beta2), .lo = 0, .hi = 1, .hi_open = 1, .used_by = OPT_ADAMS},
    {.name = "eps", .off = offsetof(fnn_train_options, eps), .lo = 0, .hi = INFINITY, .hi_open = 1,
     .used_by = OPT_ADAMS | OPT_BIT(FNN_OPT_RMSPROP)},
    {.name = "weight_decay", .off = offsetof(fnn_train_options, weight_decay), .lo = 0, .hi = INFINITY, .hi_open = 1,
     .used_by = OPT_ALL},
    {.name = "alpha", .off = offsetof(fnn_train_options, alpha), .lo = 0, .hi = 1, .hi_open = 0,
     .used_by = OPT_BIT(FNN_OPT_RMSPROP)},
};

/* "a", "b", "c" of a name table, for a message. */
static const char *names_(const char *(*name)(int), int count, char *buf, size_t cap) {
    size_t at = 0;
    buf[0] = '\0';
    for (int k = 0; k < count && at < cap; k++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", k ? ", " : "", name(k));
    return buf;
}

/* The loss, optimizer and batching of a call from its options (NULL: the defaults) and the model. */
static int resolve_(const fnn_model *m, const fnn_train_options *given, int need_opt, train_call *c) {
    fnn_train_options o;
    if (given) o = *given;
    else fnn_train_options_init(&o);
    char list[160];
    const fnn_plan *p = &m->plan;
    if (!o.loss) {
        if (p->loss < 0)
            return fail_(FNN_ERR_ARG, "%s: options.loss is NULL and the model file has no loss: name one (%s)", c->who,
                         names_(fnn_loss_name, FNN_LOSS__COUNT, list, sizeof list));
        c->loss = p->loss;
    } else if ((c->loss = fnn_loss_from_name(o.loss)) < 0) {
        char q[80];
        return fail_(FNN_ERR_ARG, "%s: options.loss: unknown loss \"%s\" (expected %s)", c->who,
                     fnn_json_quote(q, sizeof q, o.loss, strlen(o.loss)), names_(fnn_loss_name, FNN_LOSS__COUNT, list, sizeof list));
    }
    c->loss_param = 1.0;
    if (c->loss == FNN_LOSS_HUBER) {
        double d = !isnan(o.huber_delta) ? o.huber_delta : p->loss == FNN_LOSS_HUBER ? p->loss_param : 1.0;
        if (!(d > 0) || !isfinite(d))
            return fail_(FNN_ERR_ARG, "%s: options.huber_delta = %g: must be finite and > 0", c->who, d);
        c->loss_param = d;
    }
    if (!need_opt) return FNN_OK;

    const char *opt = o.optimizer ? o.optimizer : "sgd";
    memset(&c->opt, 0, sizeof c->opt);
    if ((c->opt.kind = fnn_optim_from_name(opt)) < 0) {
        char q[80];
        return fail_(FNN_ERR_ARG, "%s: options.optimizer: unknown optimizer \"%s\" (expected %s)", c->who,
                     fnn_json_quote(q, sizeof q, opt, strlen(opt)), names_(fnn_optim_name, FNN_OPT__COUNT, list, sizeof list));
    }
    const int adam = c->opt.kind == FNN_OPT_ADAM || c->opt.kind == FNN_OPT_ADAMW;
    if (isnan(o.lr)) o.lr = adam ? 0.001 : 0.01;
    if (isnan(o.weight_decay)) o.weight_decay = c->opt.kind == FNN_OPT_ADAMW ? 0.01 : 0.0;
    for (size_t i = 0; i < sizeof hyper / sizeof hyper[0]; i++) {
        if (!(hyper[i].used_by & OPT_BIT(c->opt.kind))) continue;
        double v = *(const double *)(const void *)((const char *)&o + hyper[i].off);
        if (!isfinite(v) || v < hyper[i].lo || v > hyper[i].hi || (hyper[i].hi_open && v == hyper[i].hi))
            return fail_(FNN_ERR_ARG, "%s: options.%s = %g is outside [%g, %g%c for %s", c->who, hyper[i].name, v,
                         hyper[i].lo, hyper[i].hi, hyper[i].hi_open ? ')' : ']', fnn_optim_name(c->opt.kind));
    }
    if (c->opt.kind == FNN_OPT_SGD && o.nesterov && o.momentum == 0)
        return fail_(FNN_ERR_ARG, "%s: options.nesterov needs a momentum > 0", c->who);
    c->opt.lr = o.lr;
    c->opt.momentum = o.momentum;
    c->opt.nesterov = c->opt.kind == FNN_OPT_SGD && o.nesterov;
    c->opt.weight_decay = o.weight_decay;
    c->opt.beta1 = o.beta1;
    c->opt.beta2 = o.beta2;
    c->opt.eps = o.eps;
    c->opt.alpha = o.alpha;
    c->opt.centered = c->opt.kind == FNN_OPT_RMSPROP && o.centered;
    if (o.batch_size == 0) return fail_(FNN_ERR_ARG, "%s: options.batch_size is 0 (rows per step, >= 1)", c->who);
    c->batch = o.batch_size;
    c->shuffle = o.shuffle != 0;
    c->seed = o.seed;
    return FNN_OK;
}

/* The data of a call against the model and the loss: what Python's _prepare_x/_prepare_y check. */
static int check_data_(const fnn_model *m, const train_call *c, const float *x, const int32_t *labels,
                       const float *targets, size_t rows) {
    const size_t ni = m->plan.n_in, no = m->plan.n_out;
    if (rows == 0) return fail_(FNN_ERR_ARG, "%s: rows is 0 (no data)", c->who);
    if (!x) return fail_(FNN_ERR_ARG, "%s: x is NULL", c->who);
    if (labels && targets) return fail_(FNN_ERR_ARG, "%s: give labels or targets, not both", c->who);
    if (!labels && !targets) return fail_(FNN_ERR_ARG, "%s: labels and targets are both NULL", c->who);
    if (labels && c->loss != FNN_LOSS_CROSS_ENTROPY)
        return fail_(FNN_ERR_ARG, "%s: labels are class indices for cross_entropy; with %s, give targets (%zu per row)",
                     c->who, fnn_loss_name(c->loss), no);
    if (mul_(rows, ni) == SIZE_MAX || mul_(rows, no) == SIZE_MAX)
        return fail_(FNN_ERR_ARG, "%s: rows = %zu is beyond any array", c->who, rows);
    if (!fnn_sall_finite(x, rows * ni)) {
        size_t i = 0;
        while (isfinite(x[i])) i++;
        return fail_(FNN_ERR_NONFINITE, "%s: x contains NaN or Inf (row %zu, column %zu)", c->who, i / ni, i % ni);
    }
    if (labels) {
        for (size_t i = 0; i < rows; i++)
            if (labels[i] < 0 || (size_t)labels[i] >= no)
                return fail_(FNN_ERR_ARG, "%s: labels[%zu] = %ld: class labels must be in [0, %zu)", c->who, i,
                             (long)labels[i], no);
        return FNN_OK;
    }
    if (!fnn_sall_finite(targets, rows * no)) {
        size_t i = 0;
        while (isfinite(targets[i])) i++;
        return fail_(FNN_ERR_NONFINITE, "%s: targets contain NaN or Inf (row %zu, column %zu)", c->who, i / no, i % no);
    }
    /* probabilities outside [0, 1] would make a cross-entropy negative and its gradient meaningless */
    if (c->loss == FNN_LOSS_BCE || c->loss == FNN_LOSS_CROSS_ENTROPY)
        for (size_t i = 0; i < rows * no; i++)
            if (targets[i] < 0 || targets[i] > 1)
                return fail_(FNN_ERR_ARG, "%s: targets[%zu][%zu] = %g: %s targets must be in [0, 1]", c->who, i / no,
                             i % no, (double)targets[i],
                             c->loss == FNN_LOSS_BCE ? "binary cross-entropy" : "cross-entropy");
    return FNN_OK;
}

/* A BatchNorm in training takes each batch's variance: no batch of one row (Sequential.fit's check). */
static int check_batch_(const fnn_model *m, const train_call *c, size_t rows) {
    const size_t b = c->batch < rows ? c->batch : rows;
    if (m->plan.batch_stats && (b < 2 || rows % b == 1))
        return fail_(FNN_ERR_ARG, "%s: options.batch_size = %zu on %zu rows leaves a batch of 1 row; BatchNorm in "
                     "training needs at least 2 rows per batch", c->who, c->batch, rows);
    return FNN_OK;
}

/* ---- entry points ---------------------------------------------------------------------------------- */

int fnn_model_fit(fnn_model *m, const float *x, const int32_t *labels, const float *targets, size_t rows,
                  size_t epochs, const fnn_train_options *o, double *final_loss) {
    train_call c = {.who = "fnn_model_fit"};
    if (final_loss) *final_loss = NAN;
    if (!m) return fail_(FNN_ERR_ARG, "%s: the model is NULL", c.who);
    int rc = fnn_model_enter(m, 1, c.who);
    if (rc) return rc;
    if (fnn_plan_lowp(&m->plan)) { /* int8/bfloat16 weights (lowp.h) are fixed */
        fnn_model_leave(m, 1);
        return fail_(FNN_ERR_UNSUPPORTED, "%s: the model is quantized (int8 or bfloat16 weights): it predicts and "
                     "evaluates but does not train", c.who);
    }
    if (!(rc = resolve_(m, o, 1, &c)) && !(rc = check_data_(m, &c, x, labels, targets, rows)) &&
        !(rc = check_batch_(m, &c, rows))) {
        fnn_io_clear_error();
        rc = m->dtype == (int)sizeof(double) ? fnn_dtrain_fit_(m, &c, x, labels, targets, rows, epochs, final_loss)
                                             : fnn_strain_fit_(m, &c, x, labels, targets, rows, epochs, final_loss);
    }
    fnn_model_leave(m, 1);
    return rc;
}

int fnn_model_evaluate(const fnn_model *m, const float *x, const int32_t *labels, const float *targets, size_t rows,
                       const fnn_train_options *o, double *loss) {
    train_call c = {.who = "fnn_model_evaluate"};
    if (!m) return fail_(FNN_ERR_ARG, "%s: the model is NULL", c.who);
    if (!loss) return fail_(FNN_ERR_ARG, "%s: loss is NULL", c.who);
    int rc = fnn_model_enter(m, 0, c.who);
    if (rc) return rc;
    if (!(rc = resolve_(m, o, 0, &c)) && !(rc = check_data_(m, &c, x, labels, targets, rows))) {
        fnn_io_clear_error();
        rc = m->dtype == (int)sizeof(double) ? fnn_dtrain_evaluate_(m, &c, x, labels, targets, rows, loss)
                                             : fnn_strain_evaluate_(m, &c, x, labels, targets, rows, loss);
    }
    fnn_model_leave(m, 0);
    return rc;
}

/* Layers [lo, hi) trainable or not, in the model's plan and its trainer's net alike. */
static int set_trainable_(fnn_model *m, size_t lo, size_t hi, int trainable, const char *who) {
    if (!m) return fail_(FNN_ERR_ARG, "%s: the model is NULL", who);
    int rc = fnn_model_enter(m, 1, who);
    if (rc) return rc;
    fnn_io_clear_error();
    const size_t nl = (size_t)m->plan.nl;
    for (size_t l = lo; l < hi && l < nl; l++) {
        fnn_tensor_info ti[FNN_LAYER_MAX_TENSORS];
        if (!fnn_layer_tensors(&m->plan.L[l], ti)) continue; /* no parameters: nothing to freeze */
        fnn_plan_set_trainable(&m->plan, (int)l, trainable);
        if (m->trainer && m->dtype == (int)sizeof(double)) fnn_dnet_set_trainable(m->trainer->net, (int)l, trainable);
        else if (m->trainer) fnn_snet_set_trainable(m->trainer->net, (int)l, trainable);
    }
    fnn_model_leave(m, 1);
    return FNN_OK;
}

int fnn_model_freeze(fnn_model *m, size_t up_to) { return set_trainable_(m, 0, up_to, 0, "fnn_model_freeze"); }

int fnn_model_unfreeze(fnn_model *m) { return set_trainable_(m, 0, SIZE_MAX, 1, "fnn_model_unfreeze"); }
