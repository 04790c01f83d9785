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
#include "rng.h"

#include <math.h>

#define FNN_LAYER_GRAIN 32768 /* elements per thread, at least, in the elementwise passes */

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
