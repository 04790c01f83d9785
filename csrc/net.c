/* net.c - training networks: a plan (plan.c) over the caller's parameter, gradient and optimizer-state
 * buffers, trained one step (or one chunk of an epoch's batches) per call.  See net.h for the
 * interface and net_t.h for the workspace.
 *
 * Step: the forward pass of layer.c (dropout on, batch statistics for the BatchNorm layers), the loss
 * fused with its gradient (and with a final softmax/sigmoid), the backward pass of layer.c (none of it
 * for frozen layers or below the lowest trainable layer, no dX for the first layer), L1/L2 penalties,
 * and the optimizer step: the scheduled rate of the step, Keras's gradient clipping, the update of every
 * trainable tensor, the max-norm constraints and the BatchNorm running statistics.  Nothing is
 * allocated after the workspace has been sized for the batch.
 *
 * The names the per-dtype body defines (FNN_FN(x) is fnn_s<x> or fnn_d<x>): fnn_snet_new,
 * fnn_snet_free, fnn_snet_plan, fnn_snet_link, fnn_snet_set_loss, fnn_snet_set_optim,
 * fnn_snet_set_trainable, fnn_snet_get_counters, fnn_snet_set_counters, fnn_snet_workspace_info,
 * fnn_snet_step_threads, fnn_snet_reserve, fnn_snet_workspace_bytes, fnn_snet_step,
 * fnn_snet_fit_chunk, fnn_snet_gradient, fnn_snet_forward, fnn_snet_evaluate, fnn_snet_copy_params,
 * fnn_snet_set_seed, fnn_snet_set_grad_hook, fnn_snet_set_grads, fnn_snet_repack, fnn_snet_set_bf16,
 * fnn_snet_input_ranges, and the same with fnn_dnet_.
 *
 * Low precision (lowp.h): a net whose plan has int8 or bfloat16 weights predicts and evaluates but
 * refuses to train (FNN_ERR_UNSUPPORTED); set_bf16 makes a float net's training steps multiply in
 * bfloat16, its weights, gradients and optimizer state staying float32.
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
