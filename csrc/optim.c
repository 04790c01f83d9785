/* optim.c - optimizer updates over ranges of the flat parameter buffer (SGD with momentum and
 * Nesterov, Adam, AdamW, RMSprop; PyTorch's formulas, weight decay on weights only), what runs around
 * them (gradient clipping, the max-norm constraint) and the learning-rate schedules.
 * The training net (net_t.h) calls fnn_soptim_update/fnn_doptim_update once per trainable tensor.
 * The optimizers', their state buffers' and the schedules' names live here too. */
#include "net.h"

#include <math.h>
#include <string.h>

#define FNN_PI 3.14159265358979323846

static const char *const optim_names[FNN_OPT__COUNT] = {
    [FNN_OPT_SGD] = "sgd", [FNN_OPT_ADAM] = "adam", [FNN_OPT_ADAMW] = "adamw", [FNN_OPT_RMSPROP] = "rmsprop"};

const char *fnn_optim_name(int kind) { return kind >= 0 && kind < FNN_OPT__COUNT ? optim_names[kind] : NULL; }

int fnn_optim_from_name(const char *name) {
    for (int k = 0; name && k < FNN_OPT__COUNT; k++)
        if (strcmp(name, optim_names[k]) == 0) return k;
    return -1;
}

static const char *const sched_names[FNN_SCHED__COUNT] = {
    [FNN_SCHED_NONE] = "none", [FNN_SCHED_CONSTANT] = "constant", [FNN_SCHED_STEP] = "step",
    [FNN_SCHED_EXPONENTIAL] = "exponential", [FNN_SCHED_COSINE] = "cosine"};

const char *fnn_schedule_name(int kind) { return kind >= 0 && kind < FNN_SCHED__COUNT ? sched_names[kind] : NULL; }

static int finite_(double v) { return v == v && v < HUGE_VAL && v > -HUGE_VAL; }

int fnn_schedule_check(const fnn_schedule *s) {
    if (!s || s->kind < 0 || s->kind >= FNN_SCHED__COUNT) return FNN_ERR_ARG;
    if (s->kind == FNN_SCHED_NONE) return FNN_OK;
    if (!finite_(s->initial) || !(s->initial > 0) || !finite_(s->warmup) || !(s->warmup >= 0)) return FNN_ERR_ARG;
    if (s->kind == FNN_SCHED_CONSTANT) return FNN_OK;
    if (!finite_(s->period) || !(s->period > 0) || !finite_(s->factor)) return FNN_ERR_ARG;
    if (s->kind == FNN_SCHED_COSINE) return s->factor >= 0 && s->factor <= s->initial ? FNN_OK : FNN_ERR_ARG;
    return s->factor > 0 && s->factor <= 1 ? FNN_OK : FNN_ERR_ARG;
}

double fnn_schedule_lr(const fnn_schedule *s, double t) {
    if (fnn_schedule_check(s) || s->kind == FNN_SCHED_NONE || !(t >= 0)) return NAN;
    if (t < s->warmup) return s->initial * (t + 1) / (s->warmup + 1);
    const double u = t - s->warmup;
    switch (s->kind) {
    case FNN_SCHED_STEP:
        return s->initial * pow(s->factor, floor(u / s->period));
    case FNN_SCHED_EXPONENTIAL:
        return s->initial * pow(s->factor, s->staircase ? floor(u / s->period) : u / s->period);
    case FNN_SCHED_COSINE: {
        if (u >= s->period) return s->factor;
        double c = 0.5 * (1.0 + cos(FNN_PI * u / s->period));
        return s->factor + (s->initial - s->factor) * c;
    }
    default:
        return s->initial;
    }
}

int fnn_optim_check(const fnn_optim_desc *o) {
    if (fnn_optim_n_state(o) < 0) return FNN_ERR_ARG;
    const double nonneg[] = {o->lr, o->momentum, o->weight_decay, o->eps, o->clipnorm, o->global_clipnorm,
                             o->clipvalue};
    for (size_t i = 0; i < sizeof nonneg / sizeof nonneg[0]; i++)
        if (!finite_(nonneg[i]) || !(nonneg[i] >= 0)) return FNN_ERR_ARG;
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->alpha >= 0 && o->alpha <= 1))
        return FNN_ERR_ARG;
    if ((o->clipnorm > 0) + (o->global_clipnorm > 0) + (o->clipvalue > 0) > 1) return FNN_ERR_ARG;
    return fnn_schedule_check(&o->sched);
}

const char *fnn_optim_state_name(const fnn_optim_desc *o, int s) {
    if (!o || s < 0 || s >= fnn_optim_n_state(o)) return NULL;
    switch (o->kind) {
    case FNN_OPT_SGD: return "momentum_buffer";
    case FNN_OPT_ADAM:
    case FNN_OPT_ADAMW: return s == 0 ? "exp_avg" : "exp_avg_sq";
    default: /* RMSprop: [square_avg, (grad_avg if centered), (momentum_buffer if momentum)] */
        if (s == 0) return "square_avg";
        return s == 1 && o->centered ? "grad_avg" : "momentum_buffer";
    }
}

int fnn_optim_n_state(const fnn_optim_desc *o) {
    if (!o) return -1;
    switch (o->kind) {
    case FNN_OPT_SGD: return o->momentum != 0;
    case FNN_OPT_ADAM:
    case FNN_OPT_ADAMW: return 2;
    case FNN_OPT_RMSPROP: return 1 + (o->centered != 0) + (o->momentum != 0);
    default: return -1;
    }
}

#define FNN_T float
#define FNN_P s
#define FNN_SQRT sqrtf
#include "optim_t.h"
#undef FNN_T
#undef FNN_P
#undef FNN_SQRT

#define FNN_T double
#define FNN_P d
#define FNN_SQRT sqrt
#include "optim_t.h"
#undef FNN_T
#undef FNN_P
#undef FNN_SQRT
