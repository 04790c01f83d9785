/* loss.c - fused loss value and gradient for float and double (bodies in loss_t.h).
 *
 * Serial on purpose: one pass over rows x cols costs little next to the GEMMs that produce the
 * predictions, and a serial loop gives the fixed summation order the result must have.
 * No allocation.
 */
#include "fnn_impl.h"

#include <math.h>

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
