/* optim.c - optimizer updates over ranges of the flat parameter buffer (SGD with momentum and
 * Nesterov, Adam, AdamW, RMSprop; PyTorch's formulas, weight decay on weights only).
 * The network engine (net_t.h) calls fnn_{s,d}optim_update once per trainable weight or bias range. */
#include "net.h"

#include <math.h>

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
