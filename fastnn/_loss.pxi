# Fused losses (csrc/loss.c); their names and codes come from _names.pxi.  Arrays arrive validated,
# C-contiguous and of matching shapes (fastnn/ops.py checks them; labels are int64 in [0, cols)); None
# stands for an absent buffer.

cdef extern from "fnn_impl.h" nogil:
    double fnn_sloss(int loss, const float *pred, const int64_t *labels, const float *target,
                     const float *sample_w, size_t rows, size_t cols, float param, float grad_scale,
                     float *grad)
    double fnn_dloss(int loss, const double *pred, const int64_t *labels, const double *target,
                     const double *sample_w, size_t rows, size_t cols, double param, double grad_scale,
                     double *grad)


def loss(int kind, const floating[:, ::1] pred, const int64_t[::1] labels, const floating[:, ::1] target,
         const floating[::1] sample_w, double param, double grad_scale, floating[:, ::1] grad):
    """sum_i w_i * loss_i over pred's rows; fills grad (grad_scale * w_i * d loss_i / d pred) unless None."""
    cdef double total
    cdef const int64_t *lp = NULL
    cdef const floating *tp = NULL
    cdef const floating *wp = NULL
    cdef floating *gp = NULL
    if pred.shape[0] == 0 or pred.shape[1] == 0:
        return 0.0
    if labels is not None:
        lp = &labels[0]
    if target is not None:
        tp = &target[0, 0]
    if sample_w is not None:
        wp = &sample_w[0]
    if grad is not None:
        gp = &grad[0, 0]
    with nogil:
        if floating is float:
            total = fnn_sloss(kind, &pred[0, 0], lp, tp, wp, pred.shape[0], pred.shape[1], <float>param,
                              <float>grad_scale, gp)
        else:
            total = fnn_dloss(kind, &pred[0, 0], lp, tp, wp, pred.shape[0], pred.shape[1], param,
                              grad_scale, gp)
    return total
