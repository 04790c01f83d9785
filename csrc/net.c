/* net.c - the training engine: a Sequential network as a plan of layer descriptors over one flat
 * parameter buffer, run one training step (or one chunk of an epoch) per call.  See net.h for the
 * interface and net_t.h for the buffers of a step.
 *
 * Step: forward (GEMM with the bias and elementwise activation fused in its epilogue; Philox
 * dropout), the loss fused with its gradient (and with a final softmax/sigmoid), backward
 * (dZ = dY*act'(.) in one pass; dW = X^T dZ, db = column sums, dX = dZ W^T, none of them for frozen
 * layers or below the lowest trainable layer, no dX for the first layer), L1/L2 penalties, and the
 * optimizer update of every trainable parameter range.  Nothing is allocated after the workspace
 * has been sized for the batch.
 */
#include "net.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#define FNN_T float
#define FNN_P s
#include "net_t.h"
#undef FNN_T
#undef FNN_P

#define FNN_T double
#define FNN_P d
#include "net_t.h"
#undef FNN_T
#undef FNN_P
