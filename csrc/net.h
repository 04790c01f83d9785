/* net.h - private interface of the network engine: the one layer descriptor, the one plan, the one
 * forward pass, and training (plan.c, layer.c, net.c, optim.c).  Used by the C model API (model.c)
 * and by the Python binding.
 *
 * One engine.  A network is a plan over an array of layer descriptors (fnn_layer_desc).  The same
 * plan type and the same forward pass (fnn_sforward/fnn_dforward) serve training, Sequential.predict
 * and evaluate, and fnn_model_predict on a loaded file, so their results agree by construction.
 *
 * Parameters live in ONE flat buffer; Dense layer l has W at params + w_off (in x out, row-major:
 * y = act(x W + b)) and b at params + b_off (out values); a normalization layer its gamma and beta
 * there (and a BatchNorm its running statistics at s_off).  Gradients and each optimizer-state copy
 * use the same offsets.  The caller owns the buffers (Python allocates them as NumPy arrays so that
 * every layer's weights are views; a loaded model owns its own); a training net owns only its workspace,
 * sized for a batch size and grown, never per batch.
 *
 * Threads: every call reads fnn_get_num_threads() once, picks the count for its work (small steps run
 * serial) and passes it down explicitly.  Results are bitwise identical for any count.  Every
 * function returns FNN_OK or an error code; none aborts.
 */
#ifndef FNN_NET_H
#define FNN_NET_H

#include "fnn_impl.h"

/* ---- layers (plan.c) -------------------------------------------------------------------------- */
enum fnn_layer_kind { FNN_LAYER_DENSE = 0, FNN_LAYER_DROPOUT, FNN_LAYER_ACTIVATION, FNN_LAYER_BATCHNORM,
                      FNN_LAYER_LAYERNORM, FNN_LAYER__COUNT };
/* "dense", "dropout", "activation", "batch_norm", "layer_norm"; NULL out of range */
const char *fnn_layer_kind_name(int kind);
int fnn_layer_kind_from_name(const char *name);  /* the code, or -1 */

/* What a Dense layer's weights are (lowp.h): the model's dtype, int8 with per-column scales, or
 * bfloat16 (float values that bfloat16 holds exactly; products in bf16).  Float models only. */
enum fnn_weight_kind { FNN_WEIGHT_NATIVE = 0, FNN_WEIGHT_INT8, FNN_WEIGHT_BF16, FNN_WEIGHT__COUNT };
const char *fnn_weight_kind_name(int kind);      /* "native", "int8", "bfloat16"; NULL out of range */
int fnn_weight_kind_from_name(const char *name); /* the code, or -1 */

typedef struct {
    int kind;          /* enum fnn_layer_kind */
    int act;           /* Dense, Activation: enum fnn_act */
    double act_alpha;  /* leaky_relu slope, elu alpha */
    size_t in, out;    /* features in and out (equal for Dropout and Activation) */
    int use_bias;      /* Dense */
    int trainable;     /* Dense: 0 = frozen (no gradient, no update, no decay, no state change) */
    double l1, l2;     /* Dense: loss += l1*sum|W| + l2*sum W^2 (weights only) */
    size_t w_off, b_off; /* Dense: offsets of W and b in the parameter buffer */
    double p;          /* Dropout: probability of dropping a unit, in [0, 1) */
    double max_norm;   /* Dense: after each update, every column of W (a unit's incoming weights) is scaled
                        * by min(norm, max_norm) / (1e-7 + norm), Keras's MaxNorm; 0 = no constraint */
    double eps;        /* BatchNorm, LayerNorm: added to the variance, > 0 */
    double momentum;   /* BatchNorm: running = momentum * running + (1 - momentum) * batch, in [0, 1] */
    size_t s_off;      /* BatchNorm: running mean at s_off, running variance at s_off + out (gamma at
                        * w_off, beta at b_off; LayerNorm has gamma and beta only).  int8 Dense: the out
                        * column scales of its weights */
    int wkind;         /* Dense: enum fnn_weight_kind.  INT8: W is in x out bytes from params + w_off
                        * (in units of the dtype, in*out/4 of them rounded up), r_off the calibrated input
                        * range [lo, hi] or FNN_PLAN_NONE (per row) */
    size_t r_off;
} fnn_layer_desc;

/* The parameter tensors of a layer, in the order they lie in the parameter buffer: Dense weight (in x
 * out) and bias; BatchNorm gamma, beta, moving_mean, moving_variance; LayerNorm gamma, beta.  The names
 * are those of model files ("layers.<i>.<name>") and of Python's parameter views. */
#define FNN_LAYER_MAX_TENSORS 4
typedef struct {
    const char *name;
    size_t off;        /* in the parameter buffer */
    int ndim;          /* 1 or 2 */
    size_t shape[2];
    int trainable;     /* has a gradient (a BatchNorm's running statistics have none) */
    int decay;         /* takes weight decay and L1/L2 penalties (a Dense weight only) */
    int wkind;         /* enum fnn_weight_kind: INT8 bytes (I8 in files), BF16 values, or the dtype's */
} fnn_tensor_info;
int fnn_layer_tensors(const fnn_layer_desc *d, fnn_tensor_info out[FNN_LAYER_MAX_TENSORS]);
/* Values of the model's dtype the tensor takes in the parameter buffer (int8: four to a value);
 * SIZE_MAX when that overflows. */
size_t fnn_tensor_slots(const fnn_tensor_info *t);
/* Lay the layer's tensors out back to back from `base` (its offsets set); returns the values they take. */
size_t fnn_layer_place(fnn_layer_desc *d, size_t base);

/* ---- the plan (plan.c) ------------------------------------------------------------------------
 * What a pass over the layers does, decided once: Activation layers folded into a linear Dense
 * directly below them (the GEMM's epilogue applies them), the final softmax/sigmoid fused into the
 * matching cross-entropy (and applied by predict as the link), which Dense layers keep their
 * pre-activation for the backward pass, the lowest trainable layer (backprop stops there), and
 * where each layer's output lives in a workspace of `cap` rows: at ws + cap * col[l] (training,
 * dropout and pre-activations included) or ws + cap * icol[l] (inference).  A layer that is the
 * identity in a pass (dropout at inference or with p = 0, a linear Activation) has no buffer: its
 * output is its input. */
#define FNN_PLAN_NONE ((size_t)-1)
typedef struct {
    int nl;
    fnn_layer_desc *L;       /* a copy of the descriptors */
    size_t n_in, n_out, max_width, n_params;
    int loss;                /* enum fnn_loss, or -1: no loss, the output is the last layer's */
    double loss_param;       /* huber delta */
    int link;                /* FNN_ACT_LINEAR, _SOFTMAX or _SIGMOID: what predict applies */
    int *act;                /* effective activation per layer (FNN_ACT_LINEAR for dropout, folded) */
    double *alpha;           /* its parameter (a folded Activation brings its own) */
    unsigned char *folded;   /* Activation layer whose function runs in the Dense below it */
    unsigned char *needs_z;  /* Dense layer that keeps its pre-activation in training */
    int lowest;              /* lowest trainable layer with parameters, -1 if none */
    size_t *col, *zcol, *icol; /* per layer: columns of y (training), z (training), y (inference) */
    size_t cols, icols;      /* columns per row of a training / inference workspace */
    /* Normalization.  A training pass keeps each trainable BatchNorm's batch mean, variance and
     * 1/sqrt(var + eps) (3 x out values from stat[l]) in a region of `stats` values after the training
     * layout (at ws + cap * cols), and each LayerNorm's row means and 1/sqrt(var + eps) in its zcol.
     * Inference: a BatchNorm directly above a linear Dense runs in that Dense's output pass (its
     * running statistics and the Dense's bias become one scale and shift per unit), and so does an
     * Activation directly above such a BatchNorm: ifolded marks those layers, iact/ialpha is the
     * Dense's activation in an inference pass, bn_of[l] the BatchNorm folded into Dense l (or -1). */
    size_t *stat, stats;
    unsigned char *ifolded;
    int *iact, *bn_of;
    double *ialpha;
    int batch_stats;         /* a training pass takes batch statistics (needs at least 2 rows) */
    /* low precision (lowp.h): the int8 layers' packed weights (fnn_plan_pack) at qpack + qoff[l],
     * their quantized inputs in the workspace at columns qcol (training) / qicol (inference), and
     * bf16 = 1 when training multiplies in bfloat16 (compile(precision="bfloat16")) */
    unsigned char *qpack;
    size_t *qoff, qpack_bytes;
    size_t qcol, qicol;
    int bf16;
} fnn_plan;

/* Validate `nl` descriptors for n_in inputs over a parameter buffer of n_params values (offsets in
 * range, widths chained, codes known) and plan them with no loss.  FNN_ERR_ARG when invalid. */
int  fnn_plan_init(fnn_plan *p, const fnn_layer_desc *L, int nl, size_t n_in, size_t n_params);
void fnn_plan_free(fnn_plan *p);
/* loss: enum fnn_loss or -1; param: huber delta (> 0).  Re-plans folding, link and layout. */
int  fnn_plan_set_loss(fnn_plan *p, int loss, double param);
int  fnn_plan_set_trainable(fnn_plan *p, int layer, int trainable); /* a layer with parameters */
/* Pack the int8 layers' weights from params (after they are set or changed); FNN_ERR_NOMEM.  The
 * plan then holds its own packed copy: a net or model whose int8 weights change packs again. */
int  fnn_plan_pack(fnn_plan *p, const void *params);
/* 1 when some Dense layer has int8 or bfloat16 weights (such a plan predicts but does not train). */
int  fnn_plan_lowp(const fnn_plan *p);
/* GEMM flops of one training step on `rows` rows (6 per weight per row): what sizes its threads. */
double fnn_plan_step_flops(const fnn_plan *p, size_t rows);

/* Dropout masks of a training pass: Philox(key; step, layer, element).  NULL = inference. */
typedef struct {
    uint32_t key[2];
    uint64_t step;
} fnn_dropout;

/* ---- the forward pass and the layer steps (layer.c) -------------------------------------------
 * fnn_{s,d}forward: rows x n_in inputs through every layer into the buffers of a workspace of
 * cap >= rows rows laid out by the plan: a training pass (dropout on, pre-activations kept, the
 * training layout) when drop != NULL, else an inference pass (the inference layout).  Returns the
 * output (rows x n_out, without the link), which is x itself when every layer is an identity.  With
 * in != NULL, in[l] receives the input of layer l and in[nl] the output (what backward reads).
 * No allocation. */
const float *fnn_sforward(const fnn_plan *p, const float *params, const float *x, size_t rows, float *ws,
                          size_t cap, const fnn_dropout *drop, const float **in, int nt);
const double *fnn_dforward(const fnn_plan *p, const double *params, const double *x, size_t rows, double *ws,
                           size_t cap, const fnn_dropout *drop, const double **in, int nt);
/* From dL/d(output) in *g (rows x n_out), after a training forward that filled `in` from the same
 * workspace: the gradients of every trainable layer down to the lowest one.  g[0] and g[1] hold
 * rows x max_width values each and ping-pong.  Returns the L1/L2 penalties of the trainable
 * layers, whose gradients it adds. */
double fnn_sbackward(const fnn_plan *p, const float *params, float *grads, const float *const *in,
                     const float *ws, size_t cap, const fnn_dropout *drop, size_t rows, float *g[2], int nt);
double fnn_dbackward(const fnn_plan *p, const double *params, double *grads, const double *const *in,
                     const double *ws, size_t cap, const fnn_dropout *drop, size_t rows, double *g[2], int nt);
/* The same, calling done(ctx, l) as soon as layer l's gradients are final (every layer the pass
 * visits, top down; done may be NULL): what lets data-parallel training send the gradients of the
 * upper layers while the lower ones are still being computed. */
typedef void (*fnn_layer_done_fn)(void *ctx, int layer);
double fnn_sbackward_notify(const fnn_plan *p, const float *params, float *grads, const float *const *in,
                            const float *ws, size_t cap, const fnn_dropout *drop, size_t rows, float *g[2], int nt,
                            fnn_layer_done_fn done, void *ctx);
double fnn_dbackward_notify(const fnn_plan *p, const double *params, double *grads, const double *const *in,
                            const double *ws, size_t cap, const fnn_dropout *drop, size_t rows, double *g[2],
                            int nt, fnn_layer_done_fn done, void *ctx);
/* After a training step, a trainable BatchNorm's running statistics from the batch statistics st that its
 * training forward kept (mean, variance): running = momentum * running + (1 - momentum) * batch. */
void fnn_sbn_update_running(float *params, const fnn_layer_desc *d, const float *st);
void fnn_dbn_update_running(double *params, const fnn_layer_desc *d, const double *st);
/* The L1/L2 penalty of the frozen Dense layers (all != 0: of every layer), summed in layer order. */
double fnn_spenalty(const fnn_plan *p, const float *params, int all);
double fnn_dpenalty(const fnn_plan *p, const double *params, int all);

/* ---- learning-rate schedules (optim.c) -----------------------------------------------------------
 * Closed forms of a step (or epoch) count t >= 0, with a linear warm-up first:
 *   t < warmup:  initial * (t + 1) / (warmup + 1)
 *   then, with s = t - warmup:
 *   constant     initial
 *   step         initial * factor^floor(s / period)                       (factor: the drop)
 *   exponential  initial * factor^(s / period), floor(s / period) when staircase  (factor: the rate)
 *   cosine       factor + (initial - factor) * (1 + cos(pi * s / period)) / 2 for s < period, then
 *                factor                                                   (factor: the final rate)
 * The training net evaluates a schedule at every optimizer step (t = the steps taken before it);
 * Python's per-epoch schedules are the same functions of the epoch. */
enum fnn_sched_kind { FNN_SCHED_NONE = 0, FNN_SCHED_CONSTANT, FNN_SCHED_STEP, FNN_SCHED_EXPONENTIAL, FNN_SCHED_COSINE,
                      FNN_SCHED__COUNT };
const char *fnn_schedule_name(int kind);   /* "none", "constant", "step", "exponential", "cosine" */
typedef struct {
    int kind;           /* enum fnn_sched_kind; NONE: the optimizer's lr throughout */
    double initial;     /* the rate after the warm-up, > 0 */
    double warmup;      /* steps of linear warm-up, >= 0 */
    double period;      /* step: steps between drops; exponential: steps per factor; cosine: decay steps; > 0 */
    double factor;      /* step: drop in (0, 1]; exponential: rate in (0, 1]; cosine: final rate in [0, initial] */
    int staircase;      /* exponential */
} fnn_schedule;
/* The rate at t, or NaN for an invalid schedule (fnn_schedule_check says why: FNN_ERR_ARG). */
double fnn_schedule_lr(const fnn_schedule *s, double t);
int fnn_schedule_check(const fnn_schedule *s);

/* ---- optimizers (optim.c) ---------------------------------------------------------------------- */
enum fnn_optim_kind { FNN_OPT_SGD = 0, FNN_OPT_ADAM, FNN_OPT_ADAMW, FNN_OPT_RMSPROP, FNN_OPT__COUNT };
const char *fnn_optim_name(int kind);        /* "sgd", "adam", "adamw", "rmsprop"; NULL out of range */
int fnn_optim_from_name(const char *name);   /* the code, or -1 */

/* The formulas are PyTorch's (torch.optim.SGD with dampening 0, Adam, AdamW, RMSprop), except that
 * weight_decay applies to weights only, never to biases. */
typedef struct fnn_optim_desc {
    int kind;            /* enum fnn_optim_kind */
    double lr;
    double momentum;     /* SGD, RMSprop */
    int nesterov;        /* SGD */
    double weight_decay; /* SGD, Adam, RMSprop: wd*w added to the gradient; AdamW: w *= 1 - lr*wd */
    double beta1, beta2, eps; /* Adam, AdamW (eps also RMSprop) */
    double alpha;        /* RMSprop smoothing constant */
    int centered;        /* RMSprop */
    /* Keras's gradient clipping before each update, at most one of them > 0 (0 = off): each tensor's
     * gradient scaled by clipnorm / max(norm, clipnorm); every trainable gradient scaled by
     * global_clipnorm / max(global norm, global_clipnorm); each element clamped to +-clipvalue.  Norms
     * are sums of squares in double in a fixed order, so the same for any thread count. */
    double clipnorm, global_clipnorm, clipvalue;
    fnn_schedule sched;  /* the rate of each step (kind NONE: lr) */
} fnn_optim_desc;

/* How many parameter-sized state buffers the optimizer needs (0 to 3), or -1 if invalid. */
int fnn_optim_n_state(const fnn_optim_desc *o);
/* FNN_OK for a descriptor the engine runs (ranges, at most one clipping, a valid schedule), else
 * FNN_ERR_ARG. */
int fnn_optim_check(const fnn_optim_desc *o);
/* The name of state buffer s (< fnn_optim_n_state(o)): PyTorch's ("momentum_buffer", "exp_avg",
 * "exp_avg_sq", "square_avg", "grad_avg"); NULL out of range.  Model files name the saved state so. */
const char *fnn_optim_state_name(const fnn_optim_desc *o, int s);
/* Update params[off, off+len) from grads with state copies at state + s*stride (s < n_state).
 * t: the step number, from 1 (Adam's bias correction).  decay: apply weight_decay. */
void fnn_soptim_update(const fnn_optim_desc *o, int64_t t, float *params, const float *grads, float *state,
                       size_t stride, size_t off, size_t len, int decay, int nt);
void fnn_doptim_update(const fnn_optim_desc *o, int64_t t, double *params, const double *grads, double *state,
                       size_t stride, size_t off, size_t len, int decay, int nt);
/* Around the update: the sum of squares of g[0, n) in double (the same bits for any nt); g *= s;
 * g clamped to [-v, v]; Keras's max-norm constraint on each column of a rows x cols matrix. */
double fnn_ssumsq(const float *g, size_t n, int nt);
double fnn_dsumsq(const double *g, size_t n, int nt);
void fnn_sscale(float *g, size_t n, float s, int nt);
void fnn_dscale(double *g, size_t n, double s, int nt);
void fnn_sclamp(float *g, size_t n, float v, int nt);
void fnn_dclamp(double *g, size_t n, double v, int nt);
void fnn_smax_norm(float *w, size_t rows, size_t cols, double max_value, int nt);
void fnn_dmax_norm(double *w, size_t rows, size_t cols, double max_value, int nt);

/* ---- training networks (net.c) ------------------------------------------------------------------
 * A net is a plan, the caller's parameter, gradient and optimizer-state buffers, the counters of
 * training, and a workspace.  Each entry point holds the net's mutex: concurrent calls on one net
 * take turns instead of sharing the workspace.
 *
 * Input rows come as fnn_rows: dense (x: rows x n_in, row-major) or CSR (indptr[n+1], indices and
 * values of the non-zeros; a row's indices in [0, n_in)), which the engine densifies a batch at a time
 * into its workspace.  Labels (int64 class per row, cross-entropy) or targets (rows x n_out), and
 * optional per-row sample weights, are dense. */
typedef struct {
    const void *x;              /* dense rows, or NULL for CSR */
    const int64_t *indptr;      /* CSR: n + 1 offsets into indices/values */
    const int64_t *indices;     /* CSR: column of each stored value */
    const void *values;         /* CSR: the stored values, in the net's dtype */
} fnn_rows;

typedef struct fnn_snet fnn_snet;
typedef struct fnn_dnet fnn_dnet;

/* A net over the caller's params/grads (n_params values each; they must outlive it). */
int  fnn_snet_new(fnn_snet **out, const fnn_layer_desc *layers, int n_layers, size_t n_in, float *params,
                  float *grads, size_t n_params, uint64_t seed);
int  fnn_dnet_new(fnn_dnet **out, const fnn_layer_desc *layers, int n_layers, size_t n_in, double *params,
                  double *grads, size_t n_params, uint64_t seed);
void fnn_snet_free(fnn_snet *net);
void fnn_dnet_free(fnn_dnet *net);
/* The net's plan (read-only; valid until the next set_loss/set_trainable). */
const fnn_plan *fnn_snet_plan(const fnn_snet *net);
const fnn_plan *fnn_dnet_plan(const fnn_dnet *net);
/* loss: enum fnn_loss, or -1 for none (then nothing is fused and the output is the last layer's).
 * A final softmax (cross-entropy) or sigmoid (binary cross-entropy) is fused into the loss and
 * becomes the prediction link. */
int  fnn_snet_set_loss(fnn_snet *net, int loss, double param);
int  fnn_dnet_set_loss(fnn_dnet *net, int loss, double param);
int  fnn_snet_link(const fnn_snet *net); /* FNN_ACT_SOFTMAX, _SIGMOID or _LINEAR */
int  fnn_dnet_link(const fnn_dnet *net);
/* The optimizer and its state: n_state values, fnn_optim_n_state(o) copies of the parameter layout.
 * The state buffer is the caller's and must outlive the net (or the next set_optim that succeeds:
 * once it returns, no call on the net uses the previous buffer any more). */
int  fnn_snet_set_optim(fnn_snet *net, const fnn_optim_desc *o, float *state, size_t n_state);
int  fnn_dnet_set_optim(fnn_dnet *net, const fnn_optim_desc *o, double *state, size_t n_state);
int  fnn_snet_set_trainable(fnn_snet *net, int layer, int trainable);
int  fnn_dnet_set_trainable(fnn_dnet *net, int layer, int trainable);
/* step: dropout/training steps taken; opt_step: optimizer steps (Adam's t) */
void fnn_snet_get_counters(const fnn_snet *net, int64_t *step, int64_t *opt_step);
void fnn_dnet_get_counters(const fnn_dnet *net, int64_t *step, int64_t *opt_step);
void fnn_snet_set_counters(fnn_snet *net, int64_t step, int64_t opt_step);
void fnn_dnet_set_counters(fnn_dnet *net, int64_t step, int64_t opt_step);
/* Key the dropout masks of the following steps by a new seed (the net is created with one). */
void fnn_snet_set_seed(fnn_snet *net, uint64_t seed);
void fnn_dnet_set_seed(fnn_dnet *net, uint64_t seed);
int  fnn_snet_reserve(fnn_snet *net, size_t batch);
int  fnn_dnet_reserve(fnn_dnet *net, size_t batch);
/* Bytes of the workspace for `batch` rows (SIZE_MAX if that overflows): what reserve asks for. */
size_t fnn_snet_workspace_bytes(fnn_snet *net, size_t batch);
size_t fnn_dnet_workspace_bytes(fnn_dnet *net, size_t batch);
/* dst (n_params values) = the parameters as they are between two steps: a consistent copy while
 * another thread trains the net. */
int  fnn_snet_copy_params(fnn_snet *net, float *dst);
int  fnn_dnet_copy_params(fnn_dnet *net, double *dst);
/* The rows the workspace holds and how many times it was allocated. */
void fnn_snet_workspace_info(const fnn_snet *net, size_t *rows, int *n_allocs);
void fnn_dnet_workspace_info(const fnn_dnet *net, size_t *rows, int *n_allocs);
/* The thread count a training step on `batch` rows hands its kernels (1 = all serial). */
int  fnn_snet_step_threads(const fnn_snet *net, size_t batch);
int  fnn_dnet_step_threads(const fnn_dnet *net, size_t batch);
/* One training step on `rows` rows: forward (dropout on), loss, backward, penalties, and, when
 * update, the optimizer step.  *loss = weighted mean loss + penalties.  A non-finite loss returns
 * FNN_ERR_NONFINITE before any gradient or update. */
int  fnn_snet_step(fnn_snet *net, const fnn_rows *x, const int64_t *labels, const float *target,
                   const float *sample_w, size_t rows, int update, double *loss);
int  fnn_dnet_step(fnn_dnet *net, const fnn_rows *x, const int64_t *labels, const double *target,
                   const double *sample_w, size_t rows, int update, double *loss);
/* Batches [first, first+count) of an epoch over n rows taken in the order perm (NULL = identity),
 * batch rows each (the last may be short): one step each.  losses[i] receives the loss of batch
 * first+i; pred (n x n_out, optional) receives each row's linked output at its own row.  On a
 * non-finite loss (or an error of the gradient hook), stops before that update with *bad = its batch
 * index.  With a gradient hook set, batches past the end of the data are empty steps (below). */
int  fnn_snet_fit_chunk(fnn_snet *net, const fnn_rows *x, const int64_t *labels, const float *target,
                        const float *sample_w, const int64_t *perm, size_t n, size_t batch, size_t first,
                        size_t count, double *losses, float *pred, size_t *bad);
int  fnn_dnet_fit_chunk(fnn_dnet *net, const fnn_rows *x, const int64_t *labels, const double *target,
                        const double *sample_w, const int64_t *perm, size_t n, size_t batch, size_t first,
                        size_t count, double *losses, double *pred, size_t *bad);
/* ---- data-parallel training: the gradient hook --------------------------------------------------
 * The engine knows nothing of MPI.  With a hook set, every training step calls it between the
 * backward pass and the optimizer update, and the caller (the Python binding) exchanges the gradients
 * there: the hook leaves the gradient buffer holding the average over every process's rows, and all
 * processes then apply the same update.  Events, in order, within one step:
 *   FNN_GRAD_LAYER (only when set with `layers`): layer `layer`'s gradients are final (top down);
 *   FNN_GRAD_STEP: the backward pass is over (status FNN_OK), or was not run because this process's
 *     loss was not finite (status FNN_ERR_NONFINITE: the step then ends with that code whatever the
 *     hook returns).  `rows` is the step's rows on this process.
 * A nonzero return from the hook ends the step without an update and is returned as is.  At
 * FNN_GRAD_STEP the hook may point `update` at a buffer of the gradient layout (n_params values)
 * holding the average: the update reads it instead of the net's gradient buffer (which saves copying
 * an average made in shared memory back).
 * While a hook is set, fit_chunk's batches past the end of the data are empty steps: the gradient
 * is zero, the events are raised as for a real step (rows = 0) and the update is applied, so that a
 * process whose shard is shorter keeps taking part in the exchanges of the others. */
enum { FNN_GRAD_LAYER = 0, FNN_GRAD_STEP = 1 };
typedef struct {
    int event;   /* FNN_GRAD_LAYER, FNN_GRAD_STEP */
    int layer;   /* LAYER: the layer whose gradients are final */
    int status;  /* STEP: FNN_OK or FNN_ERR_NONFINITE */
    size_t rows; /* rows of this step on this process (0: an empty step) */
    void *update; /* STEP, set by the hook: where the update reads the gradient (NULL: the net's buffer) */
} fnn_grad_event;
typedef int (*fnn_grad_hook)(void *ctx, fnn_grad_event *e);
/* hook NULL: none (the default). */
int  fnn_snet_set_grad_hook(fnn_snet *net, fnn_grad_hook hook, void *ctx, int layers);
int  fnn_dnet_set_grad_hook(fnn_dnet *net, fnn_grad_hook hook, void *ctx, int layers);
/* Point the backward pass at another gradient buffer of n_params values (zeroed here; it must outlive
 * its use), such as a row of a shared-memory window; NULL: back to the buffer the net was made with. */
int  fnn_snet_set_grads(fnn_snet *net, float *grads);
int  fnn_dnet_set_grads(fnn_dnet *net, double *grads);

/* out (rows x n_out) = the network's output, batch rows at a time; link: apply the loss's link.
 * training: dropout on, with the masks of the current step. */
int  fnn_snet_forward(fnn_snet *net, const fnn_rows *x, size_t rows, size_t batch, int training, int link,
                      float *out);
int  fnn_dnet_forward(fnn_dnet *net, const fnn_rows *x, size_t rows, size_t batch, int training, int link,
                      double *out);
/* The loss and gradients of one training step on all n rows (dropout on, no update), computed batch
 * rows at a time so that no more than `batch` rows are densified or held in the workspace at once:
 * each batch's loss and gradients weighted by its share of the rows (which counts the penalties once).
 * With batch >= n it is fnn_{s,d}net_step with update = 0.  Dropout masks and a BatchNorm's batch
 * statistics are those of each batch. */
int  fnn_snet_gradient(fnn_snet *net, const fnn_rows *x, const int64_t *labels, const float *target,
                       const float *sample_w, size_t n, size_t batch, double *loss);
int  fnn_dnet_gradient(fnn_dnet *net, const fnn_rows *x, const int64_t *labels, const double *target,
                       const double *sample_w, size_t n, size_t batch, double *loss);
/* The int8 weights changed (params are the caller's): pack them again. */
int  fnn_snet_repack(fnn_snet *net);
int  fnn_dnet_repack(fnn_dnet *net);
/* on = 1: training steps multiply in bfloat16 (float32 weights, state and sums); FNN_ERR_ARG for a
 * double net. */
int  fnn_snet_set_bf16(fnn_snet *net, int on);
int  fnn_dnet_set_bf16(fnn_dnet *net, int on);
/* The range [min, max] of each layer's input over n rows (inference mode, batch rows at a time):
 * lo_hi[2l], lo_hi[2l+1] for layer l, each including 0.  What int8 calibration fixes its scales by. */
int  fnn_snet_input_ranges(fnn_snet *net, const fnn_rows *x, size_t n, size_t batch, float *lo_hi);
int  fnn_dnet_input_ranges(fnn_dnet *net, const fnn_rows *x, size_t n, size_t batch, float *lo_hi);
/* *loss = weighted mean loss over n rows + penalties (inference mode); pred optional (linked). */
int  fnn_snet_evaluate(fnn_snet *net, const fnn_rows *x, const int64_t *labels, const float *target,
                       const float *sample_w, size_t n, size_t batch, double *loss, float *pred);
int  fnn_dnet_evaluate(fnn_dnet *net, const fnn_rows *x, const int64_t *labels, const double *target,
                       const double *sample_w, size_t n, size_t batch, double *loss, double *pred);

#endif /* FNN_NET_H */
