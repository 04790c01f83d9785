/* layer.c - the layer steps (dense, dropout, activation, batch and layer normalization: forward and
 * backward side by side) and the one forward pass over a plan, used by training (net.c),
 * Sequential.predict/evaluate and the C model API (model.c) alike; and the backward pass of training.
 * Bodies in layer_t.h, per dtype.
 *
 * Threads: each step hands its kernels the thread count it was given; elementwise passes go serial
 * below FNN_LAYER_GRAIN elements per thread.  Dropout's masks come from Philox keyed by (seed,
 * step, layer, element), so they do not depend on the thread count either.
 */
#include "net.h"
#include "lowp.h"
#include "rng.h"

#include <math.h>

#define FNN_LAYER_GRAIN 32768 /* elements per thread, at least, in the elementwise passes */
#define FNN_DENSE_DB_BLOCK 256 /* columns per task of a Dense layer's bias gradient */

/* Low precision (lowp.h) is for float models; a double net refuses it (net_t.h), so the double
 * layer steps get stand-ins that the plan never reaches. */
static void fnn_sdense_int8_(const fnn_plan *p, int l, const float *params, const float *x, size_t rows, float *y,
                             float *scratch, int nt) {
    const fnn_layer_desc *d = &p->L[l];
    const fnn_qdense q = {.pack = p->qpack + p->qoff[l], .in = d->in, .out = d->out, .wscale = params + d->s_off,
                          .bias = d->use_bias ? params + d->b_off : NULL,
                          .range = d->r_off == FNN_PLAN_NONE ? NULL : params + d->r_off,
                          .act = p->act[l], .alpha = (float)p->alpha[l]};
    fnn_qdense_forward(&q, x, rows, y, scratch, nt);
}

static void fnn_ddense_int8_(const fnn_plan *p, int l, const double *params, const double *x, size_t rows,
                             double *y, double *scratch, int nt) {
    (void)p, (void)l, (void)params, (void)x, (void)rows, (void)y, (void)scratch, (void)nt;
}

static void fnn_dgemm_bf16_ex(int round, int ta, int tb, size_t m, size_t n, size_t k, double alpha, const double *a,
                              size_t lda, const double *b, size_t ldb, double beta, double *c, size_t ldc,
                              const double *bias, int act, double act_alpha, int nt) {
    (void)round;
    fnn_dgemm_ex(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act, act_alpha, nt);
}

#define FNN_T float
#define FNN_P s
#define FNN_SQRT sqrtf
#include "layer_t.h"
#undef FNN_T
#undef FNN_P
#undef FNN_SQRT

#define FNN_T double
#define FNN_P d
#define FNN_SQRT sqrt
#include "layer_t.h"
#undef FNN_T
#undef FNN_P
#undef FNN_SQRT
