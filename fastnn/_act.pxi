# Activations, bias add and column sums (csrc/act.c); their names and codes come from _names.pxi.
# Arrays arrive validated, C-contiguous and of matching shapes (fastnn/ops.py checks them); these
# wrappers only hand pointers to C.

cdef extern from "fnn_impl.h" nogil:
    void fnn_sact_forward(int act, float alpha, const float *x, float *y, size_t rows, size_t cols, int nt)
    void fnn_dact_forward(int act, double alpha, const double *x, double *y, size_t rows, size_t cols, int nt)
    void fnn_sact_backward(int act, float alpha, const float *x, const float *y, const float *dy, float *dx,
                           size_t rows, size_t cols, int nt)
    void fnn_dact_backward(int act, double alpha, const double *x, const double *y, const double *dy,
                           double *dx, size_t rows, size_t cols, int nt)
    void fnn_sbias_add(float *y, const float *bias, size_t rows, size_t cols, int nt)
    void fnn_dbias_add(double *y, const double *bias, size_t rows, size_t cols, int nt)
    void fnn_scolsum(const float *x, size_t rows, size_t cols, float beta, float *out, int nt)
    void fnn_dcolsum(const double *x, size_t rows, size_t cols, double beta, double *out, int nt)
    void fnn_scolsum_scaled(const float *x, size_t rows, size_t cols, size_t ldx, const float *scale, float *out,
                            int nt)
    void fnn_dcolsum_scaled(const double *x, size_t rows, size_t cols, size_t ldx, const double *scale,
                            double *out, int nt)


def act_forward(int act, double alpha, const floating[:, ::1] x, floating[:, ::1] y):
    """y = act(x) over x's rows x cols (y may be x)."""
    cdef int nt = fnn_get_num_threads()
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    with nogil:
        if floating is float:
            fnn_sact_forward(act, <float>alpha, &x[0, 0], &y[0, 0], x.shape[0], x.shape[1], nt)
        else:
            fnn_dact_forward(act, alpha, &x[0, 0], &y[0, 0], x.shape[0], x.shape[1], nt)


def act_backward(int act, double alpha, const floating[:, ::1] x, const floating[:, ::1] y,
                 const floating[:, ::1] dy, floating[:, ::1] dx):
    """dx = dy * act'(x) given y = act(x) (dx may be dy)."""
    cdef int nt = fnn_get_num_threads()
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    with nogil:
        if floating is float:
            fnn_sact_backward(act, <float>alpha, &x[0, 0], &y[0, 0], &dy[0, 0], &dx[0, 0],
                              x.shape[0], x.shape[1], nt)
        else:
            fnn_dact_backward(act, alpha, &x[0, 0], &y[0, 0], &dy[0, 0], &dx[0, 0], x.shape[0], x.shape[1], nt)


def bias_add(floating[:, ::1] y, const floating[::1] bias):
    """y[i, j] += bias[j]."""
    cdef int nt = fnn_get_num_threads()
    if y.shape[0] == 0 or y.shape[1] == 0:
        return
    with nogil:
        if floating is float:
            fnn_sbias_add(&y[0, 0], &bias[0], y.shape[0], y.shape[1], nt)
        else:
            fnn_dbias_add(&y[0, 0], &bias[0], y.shape[0], y.shape[1], nt)


def colsum(const floating[:, ::1] x, double beta, floating[::1] out):
    """out[j] = beta*out[j] + sum_i x[i, j], in row order (out is not read when beta == 0)."""
    cdef int nt = fnn_get_num_threads()
    if x.shape[1] == 0:
        return
    with nogil:
        if floating is float:
            fnn_scolsum(&x[0, 0] if x.shape[0] else NULL, x.shape[0], x.shape[1], <float>beta, &out[0], nt)
        else:
            fnn_dcolsum(&x[0, 0] if x.shape[0] else NULL, x.shape[0], x.shape[1], beta, &out[0], nt)


def colsum_scaled(const floating[::1] x, size_t rows, size_t cols, size_t ldx, const floating[::1] scale,
                  floating[::1] out):
    """out[:cols] = sum over i < rows, in order, of scale[i] * x[i*ldx : i*ldx + cols] (the rank-ordered
    average of data-parallel training).  Bounds are checked here: the callers index shared buffers."""
    cdef int nt = fnn_get_num_threads()
    if cols == 0 or rows == 0:
        return
    if ldx < cols or (rows - 1) * ldx + cols > <size_t>x.shape[0] or <size_t>scale.shape[0] < rows \
            or <size_t>out.shape[0] < cols:
        raise ValueError("colsum_scaled: the rows, columns and stride do not fit the buffers")
    with nogil:
        if floating is float:
            fnn_scolsum_scaled(&x[0], rows, cols, ldx, &scale[0], &out[0], nt)
        else:
            fnn_dcolsum_scaled(&x[0], rows, cols, ldx, &scale[0], &out[0], nt)
