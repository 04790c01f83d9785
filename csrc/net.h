/* net.h - private interface of the training engine (net.c, optim.c), used by the Python binding.
 *
 * A network is a plan: an array of layer descriptors over ONE parameter buffer, ONE gradient buffer
 * (same layout) and ONE optimizer-state buffer (n_state copies of that layout).  The caller owns the
 * three buffers (the Python layer allocates them as NumPy arrays so that every layer's weights are
 * views); the plan owns only its workspace, sized for a batch size and grown, never per batch.
 *
 * Layout: Dense layer l has W at params + w_off (in x out, row-major: y = act(x W + b)) and b at
 * params + b_off (out values).  Gradients and each optimizer-state copy use the same offsets.
 *
 * Threads: every call reads fnn_get_num_threads() once, picks the count for its work (small
 * steps run serial) and passes it down explicitly.  Results are bitwise identical for any count.
 * Every function returns FNN_OK or an error code; none aborts.
 */
#ifndef FNN_NET_H
#define FNN_NET_H

#include "fnn_impl.h"

enum fnn_layer_kind { FNN_LAYER_DENSE = 0, FNN_LAYER_DROPOUT = 1, FNN_LAYER_ACTIVATION = 2 };

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
} fnn_layer_desc;

enum fnn_optim_kind { FNN_OPT_SGD = 0, FNN_OPT_ADAM, FNN_OPT_ADAMW, FNN_OPT_RMSPROP, FNN_OPT__COUNT };

/* The formulas are PyTorch's (torch.optim.SGD with dampening 0, Adam, AdamW, RMSprop), except that
 * weight_decay applies to weights only, never to biases. */
typedef struct {
    int kind;            /* enum fnn_optim_kind */
    double lr;
    double momentum;     /* SGD, RMSprop */
    int nesterov;        /* SGD */
    double weight_decay; /* SGD, Adam, RMSprop: wd*w added to the gradient; AdamW: w *= 1 - lr*wd */
    double beta1, beta2, eps; /* Adam, AdamW (eps also RMSprop) */
    double alpha;        /* RMSprop smoothing constant */
    int centered;        /* RMSprop */
} fnn_optim_desc;

/* How many parameter-sized state buffers the optimizer needs (0 to 3), or -1 if invalid. */
int fnn_optim_n_state(const fnn_optim_desc *o);

typedef struct fnn_snet fnn_snet;
typedef struct fnn_dnet fnn_dnet;

#define FNN_DECLARE_NET(T, P)                                                                       \
    /* Update params[off, off+len) from grads with state copies at state + s*stride (s < n_state).  \
     * t: the step number, from 1 (Adam's bias correction).  decay: apply weight_decay. */          \
    void fnn_##P##optim_update(const fnn_optim_desc *o, int64_t t, T *params, const T *grads,      \
                               T *state, size_t stride, size_t off, size_t len, int decay, int nt); \
    int  fnn_##P##net_new(fnn_##P##net **out, const fnn_layer_desc *layers, int n_layers,         \
                          size_t n_in, T *params, T *grads, size_t n_params, uint64_t seed);       \
    void fnn_##P##net_free(fnn_##P##net *net);                                                      \
    /* loss: enum fnn_loss, or -1 for none (then nothing is fused and the output is the last       \
     * layer's).  A final softmax (cross-entropy) or sigmoid (binary cross-entropy) is fused into  \
     * the loss and becomes the prediction link. */                                                 \
    int  fnn_##P##net_set_loss(fnn_##P##net *net, int loss, double param);                          \
    int  fnn_##P##net_link(const fnn_##P##net *net); /* FNN_ACT_SOFTMAX, _SIGMOID or _LINEAR */     \
    int  fnn_##P##net_set_optim(fnn_##P##net *net, const fnn_optim_desc *o, T *state, size_t n_state); \
    int  fnn_##P##net_set_trainable(fnn_##P##net *net, int layer, int trainable);                   \
    /* step: dropout/training steps taken; opt_step: optimizer steps (Adam's t) */                 \
    void fnn_##P##net_get_counters(const fnn_##P##net *net, int64_t *step, int64_t *opt_step);     \
    void fnn_##P##net_set_counters(fnn_##P##net *net, int64_t step, int64_t opt_step);             \
    int  fnn_##P##net_reserve(fnn_##P##net *net, size_t batch);                                     \
    /* Bytes of the workspace for `batch` rows (SIZE_MAX if that overflows): what reserve asks for. */ \
    size_t fnn_##P##net_workspace_bytes(fnn_##P##net *net, size_t batch);                          \
    /* The rows the workspace holds and how many times it was allocated. */                        \
    void fnn_##P##net_workspace_info(const fnn_##P##net *net, size_t *rows, int *n_allocs);         \
    /* The thread count a training step on `batch` rows hands its kernels (1 = all serial). */     \
    int  fnn_##P##net_step_threads(const fnn_##P##net *net, size_t batch);                          \
    /* One training step on rows x n_in inputs: forward (dropout on), loss, backward, penalties,   \
     * and, when update, the optimizer step.  labels (cross-entropy with class indices) or target  \
     * (rows x n_out); sample_w per row or NULL.  *loss = weighted mean loss + penalties.          \
     * A non-finite loss returns FNN_ERR_NONFINITE before any gradient or update. */               \
    int  fnn_##P##net_step(fnn_##P##net *net, const T *x, const int64_t *labels, const T *target,  \
                           const T *sample_w, size_t rows, int update, double *loss);               \
    /* Batches [first, first+count) of an epoch over n rows taken in the order perm (NULL =        \
     * identity), batch rows each (the last may be short): one step each.  losses[i] receives      \
     * the loss of batch first+i; pred (n x n_out, optional) receives each row's linked output at its own      \
     * row.  On a non-finite loss, stops before that update with *bad = its batch index. */         \
    int  fnn_##P##net_fit_chunk(fnn_##P##net *net, const T *x, const int64_t *labels,              \
                                const T *target, const T *sample_w, const int64_t *perm, size_t n, \
                                size_t batch, size_t first, size_t count, double *losses, T *pred,  \
                                size_t *bad);                                                       \
    /* out (rows x n_out) = the network's output, batch rows at a time; link: apply the loss's     \
     * link.  training: dropout on, with the masks of the current step. */                         \
    int  fnn_##P##net_forward(fnn_##P##net *net, const T *x, size_t rows, size_t batch,            \
                              int training, int link, T *out);                                      \
    /* *loss = weighted mean loss over n rows + penalties (inference mode); pred optional. */       \
    int  fnn_##P##net_evaluate(fnn_##P##net *net, const T *x, const int64_t *labels,               \
                               const T *target, const T *sample_w, size_t n, size_t batch,          \
                               double *loss, T *pred);

FNN_DECLARE_NET(float, s)
FNN_DECLARE_NET(double, d)

#endif /* FNN_NET_H */
