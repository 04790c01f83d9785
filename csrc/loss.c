/* loss.c - fused loss value and gradient for float and double (bodies in loss_t.h).
 *
 * Serial on purpose: one pass over rows x cols costs little next to the GEMMs that produce the
 * predictions, and a serial loop gives the fixed summation order the result must have.
 * No allocation.  The names of the losses live here too, beside the kernels they name.
 */
#include "fnn_impl.h"

#include <math.h>
#include <string.h>

static const char *const loss_names[FNN_LOSS__COUNT] = {
    [FNN_LOSS_CROSS_ENTROPY] = "cross_entropy", [FNN_LOSS_BCE] = "binary_cross_entropy",
    [FNN_LOSS_MSE] = "mse", [FNN_LOSS_MAE] = "mae", [FNN_LOSS_HUBER] = "huber"};

const char *fnn_loss_name(int loss) { return loss >= 0 && loss < FNN_LOSS__COUNT ? loss_names[loss] : NULL; }

int fnn_loss_from_name(const char *name) {
    for (int l = 0; name && l < FNN_LOSS__COUNT; l++)
        if (strcmp(name, loss_names[l]) == 0) return l;
    return -1;
}

/* The cross-entropies fuse a softmax (sigmoid) into the loss: predict applies it to the output. */
int fnn_loss_link(int loss) {
    return loss == FNN_LOSS_CROSS_ENTROPY ? FNN_ACT_SOFTMAX : loss == FNN_LOSS_BCE ? FNN_ACT_SIGMOID : FNN_ACT_LINEAR;
}

#define FNN_T float
#define FNN_P s
#define FNN_M(fn) fn##f /* the float flavour of a <math.h> function: expf, log1pf, ... */
#include "loss_t.h"
#undef FNN_T
#undef FNN_P
#undef FNN_M

#define FNN_T double
#define FNN_P d
#define FNN_M(fn) fn
#include "loss_t.h"
#undef FNN_T
#undef FNN_P
#undef FNN_M
