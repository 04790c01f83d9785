/* act.c - activations (forward and backward), bias add and column sums, for float and double.
 *
 * The bodies live in act_t.h, included once per dtype.  Shapes: rows x cols, row-major, contiguous.
 * Threads: elementwise work is cut into fixed chunks of FNN_ACT_CHUNK elements and row-wise work
 * (softmax, log_softmax) into rows; column sums into fixed blocks of columns.  The partition never
 * depends on the thread count and no value is summed across a partition boundary, so every result
 * is bitwise identical for any nt.  Work below FNN_ACT_GRAIN elements per thread runs serially.
 * The names of the activations live here too, beside the kernels they name.
 */
#include "fnn_impl.h"

#include <math.h>
#include <string.h>

#define FNN_ACT_GRAIN 32768 /* elements per thread, at least */
#define FNN_ACT_CHUNK 4096  /* elements per elementwise work item (a multiple of every vector width) */
#define FNN_COLSUM_BLOCK 256 /* columns per colsum work item (its accumulators live on the stack) */

/* ---- names: the only place activation codes meet their public names -------------------------- */
static const struct { const char *name; double alpha; } act_info[FNN_ACT__COUNT] = {
    [FNN_ACT_LINEAR] = {"linear", 0},       [FNN_ACT_RELU] = {"relu", 0},
    [FNN_ACT_LEAKY_RELU] = {"leaky_relu", 0.01}, [FNN_ACT_ELU] = {"elu", 1.0},
    [FNN_ACT_SIGMOID] = {"sigmoid", 0},     [FNN_ACT_TANH] = {"tanh", 0},
    [FNN_ACT_GELU] = {"gelu", 0},           [FNN_ACT_SILU] = {"silu", 0},
    [FNN_ACT_SOFTMAX] = {"softmax", 0},     [FNN_ACT_LOG_SOFTMAX] = {"log_softmax", 0}};

const char *fnn_act_name(int act) { return act >= 0 && act < FNN_ACT__COUNT ? act_info[act].name : NULL; }

int fnn_act_from_name(const char *name) {
    for (int a = 0; name && a < FNN_ACT__COUNT; a++)
        if (strcmp(name, act_info[a].name) == 0) return a;
    return -1;
}

double fnn_act_default_alpha(int act) { return act >= 0 && act < FNN_ACT__COUNT ? act_info[act].alpha : 0; }

int fnn_act_is_layer(int act) { return act >= 0 && act < FNN_ACT__COUNT && act != FNN_ACT_LOG_SOFTMAX; }

int fnn_act_grad_from_output(int act, double alpha) {
    switch (act) {
    case FNN_ACT_LINEAR: case FNN_ACT_RELU: case FNN_ACT_SIGMOID: case FNN_ACT_TANH: return 1;
    case FNN_ACT_LEAKY_RELU: case FNN_ACT_ELU: return alpha >= 0; /* then the sign of y is that of x */
    default: return 0;
    }
}

/* exp over arrays (the softmax's): float through the active vector-math kernel (the same bits at
 * every level), double through exp() itself. */
static void fnn_sexp_n(const float *x, float *y, size_t n) { fnn_vmath_kernel_active()->exp(x, y, n); }

static void fnn_dexp_n(const double *x, double *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = exp(x[i]);
}

#define FNN_T float
#define FNN_P s
#define FNN_M(fn) fn##f /* the float flavour of a <math.h> function: expf, erfcf, ... */
#include "act_t.h"
#undef FNN_T
#undef FNN_P
#undef FNN_M

#define FNN_T double
#define FNN_P d
#define FNN_M(fn) fn
#include "act_t.h"
#undef FNN_T
#undef FNN_P
#undef FNN_M
