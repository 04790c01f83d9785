/* optim.c - optimizer updates over ranges of the flat parameter buffer (SGD with momentum and
 * Nesterov, Adam, AdamW, RMSprop; PyTorch's formulas, weight decay on weights only).
 * The training net (net_t.h) calls fnn_soptim_update/fnn_doptim_update once per trainable weight or bias
 * range.  The optimizers' names live here too. */
#include "net.h"

#include <math.h>
#include <string.h>

static const char *const optim_names[FNN_OPT__COUNT] = {
    [FNN_OPT_SGD] = "sgd", [FNN_OPT_ADAM] = "adam", [FNN_OPT_ADAMW] = "adamw", [FNN_OPT_RMSPROP] = "rmsprop"};

const char *fnn_optim_name(int kind) { return kind >= 0 && kind < FNN_OPT__COUNT ? optim_names[kind] : NULL; }

int fnn_optim_from_name(const char *name) {
    for (int k = 0; name && k < FNN_OPT__COUNT; k++)
        if (strcmp(name, optim_names[k]) == 0) return k;
    return -1;
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
