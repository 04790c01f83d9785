/* act.c - activations (forward and backward), bias add and column sums, for float and double.
 *
 * The bodies live in act_t.h, included once per dtype.  Shapes: rows x cols, row-major, contiguous.
 * Threads: elementwise work is cut into fixed chunks of FNN_ACT_CHUNK elements and row-wise work
 * (softmax, log_softmax) into rows; column sums into fixed blocks of columns.  The partition never
 * depends on the thread count and no value is summed across a partition boundary, so every result
 * is bitwise identical for any nt.  Work below FNN_ACT_GRAIN elements per thread runs serially.
 */
#include "fnn_impl.h"

#include <math.h>
#include <string.h>

#define FNN_ACT_GRAIN 32768 /* elements per thread, at least */
#define FNN_ACT_CHUNK 4096  /* elements per elementwise work item (a multiple of every vector width) */
#define FNN_COLSUM_BLOCK 256 /* columns per colsum work item (its accumulators live on the stack) */

/* Threads worth starting for `work` elements: at most nt, at least FNN_ACT_GRAIN elements each. */
static int act_threads(size_t work, int nt) {
    size_t by_work = work / FNN_ACT_GRAIN;
    if (nt < 1) return 1;
    if (by_work < (size_t)nt) nt = (int)by_work;
    return nt < 1 ? 1 : nt;
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
