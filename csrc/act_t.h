/* act_t.h - body of the activation kernels, included by act.c once per dtype (FNN_T, FNN_P, FNN_M).
 *
 *   act_forward   y = act(x)                       x, y: rows x cols; y may equal x
 *   act_backward  dx = dy * act'(x)                x, y = act(x), dy, dx: rows x cols; dx may equal dy
 *   bias_add      y[i][j] += bias[j]               y: rows x cols, bias: cols
 *   colsum        out[j] = beta*out[j] + sum_i x[i][j]   (out not read when beta == 0)
 *   colsum_scaled out[j] = sum_i scale[i]*x[i*ldx + j]   (rows at any stride, each scaled)
 *   act_backward_from_output   g *= act'(x) given only y = act(x) (training keeps no input then)
 *
 * Formulas (alpha is the activation's parameter):
 *   linear      x                                  1
 *   relu        x < 0 ? 0 : x                      y > 0                  (0 at x = 0, like PyTorch)
 *   leaky_relu  x < 0 ? alpha*x : x                x > 0 ? 1 : alpha
 *   elu         x > 0 ? x : alpha*expm1(x)         x > 0 ? 1 : y + alpha
 *   sigmoid     1/(1+exp(-x)), as (x>=0 ? 1 : e)/(1+e) with e = exp(-|x|): no overflow for any x
 *                                                  y*(1-y)
 *   tanh        tanh(x)                            1 - y*y
 *   gelu        x*Phi(x), the exact GELU (PyTorch's default nn.GELU, not the tanh approximation):
 *               0.5*x*(1+erf(x/sqrt2)), evaluated as 0.5*x*erfc(-x/sqrt2), the same function
 *               without the cancellation of 1+erf in the left tail
 *                                                  Phi(x) + x*exp(-x*x/2)/sqrt(2*pi)
 *   silu        x*sigmoid(x)                       s*(1 + x*(1-s)), s = sigmoid(x), 1-s = sigmoid(-x)
 *   softmax     exp(x - max)/sum(exp(x - max)) per row          dx = y*(dy - <dy, y>)
 *   log_softmax (x - max) - log(sum(exp(x - max))) per row      dx = dy - exp(y)*sum(dy)
 * NaN inputs propagate (pass through) rather than being clipped.  Unknown codes act as linear.
 */
#define T FNN_T

/* ---- elementwise ranges (n values, serial) -------------------------------------------------
 * The ReLU family's selects pick between values loaded on every element: a load, or arithmetic that
 * may raise an FP flag, on one side of a select alone keeps the compiler from vectorizing the loop,
 * and the branch it leaves costs a misprediction on about every other value of a ReLU's data (20
 * times slower).  So the side's arithmetic is done for every element first, into a small buffer
 * (`side`), or is a slope picked from constants times the value (1 * g is g exactly). */
#define FNN_ACT_SIDE 256
static void FNN_FN(act_fwd_n)(int act, T alpha, const T *x, T *y, size_t n) {
    switch (act) {
    case FNN_ACT_RELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0 ? (T)0 : x[i];
        break;
    case FNN_ACT_LEAKY_RELU:
        for (size_t i0 = 0; i0 < n; i0 += FNN_ACT_SIDE) { /* x may be y */
            const size_t m = n - i0 < FNN_ACT_SIDE ? n - i0 : FNN_ACT_SIDE;
            T side[FNN_ACT_SIDE];
            for (size_t i = 0; i < m; i++) side[i] = alpha * x[i0 + i];
            for (size_t i = 0; i < m; i++) y[i0 + i] = x[i0 + i] < 0 ? side[i] : x[i0 + i];
        }
        break;
    case FNN_ACT_ELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : alpha * FNN_M(expm1)(x[i]);
        break;
    case FNN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            T e = FNN_M(exp)(-FNN_M(fabs)(x[i]));
            y[i] = (x[i] >= 0 ? (T)1 : e) / (1 + e);
        }
        break;
    case FNN_ACT_TANH:
        for (size_t i = 0; i < n; i++) y[i] = FNN_M(tanh)(x[i]);
        break;
    case FNN_ACT_GELU:
        for (size_t i = 0; i < n; i++)
            y[i] = (T)0.5 * x[i] * FNN_M(erfc)(-x[i] * (T)0.70710678118654752440);
        break;
    case FNN_ACT_SILU:
        for (size_t i = 0; i < n; i++) {
            T e = FNN_M(exp)(-FNN_M(fabs)(x[i]));
            y[i] = x[i] * ((x[i] >= 0 ? (T)1 : e) / (1 + e));
        }
        break;
    default: /* linear */
        if (x != y) memmove(y, x, n * sizeof *y);
        break;
    }
}

static void FNN_FN(act_bwd_n)(int act, T alpha, const T *x, const T *y, const T *dy, T *dx, size_t n) {
    switch (act) {
    case FNN_ACT_RELU:
        for (size_t i = 0; i < n; i++) {
            T d = dy[i]; /* loaded on both sides */
            dx[i] = y[i] > 0 ? d : (T)0;
        }
        break;
    case FNN_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) dx[i] = (x[i] > 0 ? (T)1 : alpha) * dy[i];
        break;
    case FNN_ACT_ELU:
        for (size_t i0 = 0; i0 < n; i0 += FNN_ACT_SIDE) { /* dy may be dx */
            const size_t m = n - i0 < FNN_ACT_SIDE ? n - i0 : FNN_ACT_SIDE;
            T side[FNN_ACT_SIDE];
            for (size_t i = 0; i < m; i++) side[i] = dy[i0 + i] * (y[i0 + i] + alpha);
            for (size_t i = 0; i < m; i++) {
                T d = dy[i0 + i];
                dx[i0 + i] = x[i0 + i] > 0 ? d : side[i];
            }
        }
        break;
    case FNN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (y[i] * (1 - y[i]));
        break;
    case FNN_ACT_TANH:
        for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1 - y[i] * y[i]);
        break;
    case FNN_ACT_GELU:
        for (size_t i = 0; i < n; i++) {
            T cdf = (T)0.5 * FNN_M(erfc)(-x[i] * (T)0.70710678118654752440);
            T pdf = (T)0.39894228040143267794 * FNN_M(exp)((T)-0.5 * x[i] * x[i]);
            dx[i] = dy[i] * (cdf + x[i] * pdf);
        }
        break;
    case FNN_ACT_SILU:
        for (size_t i = 0; i < n; i++) {
            T e = FNN_M(exp)(-FNN_M(fabs)(x[i]));
            T s = (x[i] >= 0 ? (T)1 : e) / (1 + e);  /* sigmoid(x) */
            T sm = (x[i] >= 0 ? e : (T)1) / (1 + e); /* sigmoid(-x) = 1 - s, without cancellation */
            dx[i] = dy[i] * (s * (1 + x[i] * sm));
        }
        break;
    default: /* linear */
        if (dx != dy) memmove(dx, dy, n * sizeof *dx);
        break;
    }
}

/* ---- row-wise (one row of n values; row sums are accumulated in double, in column order) ------ */
/* Four running maxima, then theirs: short dependency chains (a max is exact in any order; a NaN is
 * passed over here and poisons the row in the exp). */
static T FNN_FN(row_max)(const T *x, size_t n) {
    T m[4] = {x[0], x[0], x[0], x[0]};
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (int t = 0; t < 4; t++) m[t] = x[j + t] > m[t] ? x[j + t] : m[t];
    for (; j < n; j++) m[0] = x[j] > m[0] ? x[j] : m[0];
    m[0] = m[1] > m[0] ? m[1] : m[0];
    m[2] = m[3] > m[2] ? m[3] : m[2];
    return m[2] > m[0] ? m[2] : m[0];
}

/* Rows [0, r) of n values: each row less its max, exp over all of them at once (narrow rows, such as
 * ten classes, would spend more on a call per row than on the exp), then each row over its sum. */
static void FNN_FN(softmax_rows)(const T *x, T *y, size_t r, size_t n) {
    for (size_t i = 0; i < r; i++) {
        const T *xi = x + i * n;
        T *yi = y + i * n;
        const T m = FNN_FN(row_max)(xi, n);
        for (size_t j = 0; j < n; j++) yi[j] = xi[j] - m; /* reads x[j] before writing y[j]: y may equal x */
    }
    FNN_FN(exp_n)(y, y, r * n);
    for (size_t i = 0; i < r; i++) {
        T *yi = y + i * n;
        double s[4] = {0, 0, 0, 0}; /* four running sums, then theirs: a fixed order, in two vector adds */
        size_t j = 0;
        for (; j + 4 <= n; j += 4)
            for (int t = 0; t < 4; t++) s[t] += yi[j + t];
        for (; j < n; j++) s[0] += yi[j];
        const double inv = 1.0 / ((s[0] + s[1]) + (s[2] + s[3]));
        for (j = 0; j < n; j++) yi[j] = (T)(yi[j] * inv);
    }
}

static void FNN_FN(log_softmax_row)(const T *x, T *y, size_t n) {
    T m = FNN_FN(row_max)(x, n);
    double s = 0;
    for (size_t j = 0; j < n; j++) s += FNN_M(exp)(x[j] - m);
    T ls = (T)log(s);
    for (size_t j = 0; j < n; j++) y[j] = (x[j] - m) - ls;
}

static void FNN_FN(softmax_bwd_row)(const T *y, const T *dy, T *dx, size_t n) {
    double dot = 0;
    for (size_t j = 0; j < n; j++) dot += (double)dy[j] * y[j];
    T d = (T)dot;
    for (size_t j = 0; j < n; j++) dx[j] = y[j] * (dy[j] - d);
}

static void FNN_FN(log_softmax_bwd_row)(const T *y, const T *dy, T *dx, size_t n) {
    double sum = 0;
    for (size_t j = 0; j < n; j++) sum += dy[j];
    T s = (T)sum;
    for (size_t j = 0; j < n; j++) dx[j] = dy[j] - FNN_M(exp)(y[j]) * s;
}

/* ---- entry points ------------------------------------------------------------------------ */
void FNN_FN(act_forward)(int act, T alpha, const T *x, T *y, size_t rows, size_t cols, int nt) {
    size_t n = rows * cols;
    if (n == 0 || (act == FNN_ACT_LINEAR && x == y)) return;
    nt = fnn_threads_for(n, FNN_ACT_GRAIN, nt);
    if (act == FNN_ACT_SOFTMAX) { /* blocks of rows of about FNN_ACT_CHUNK values, at least one row */
        const size_t per = cols < FNN_ACT_CHUNK ? FNN_ACT_CHUNK / cols : 1;
        long nblk = (long)((rows + per - 1) / per);
        FNN_PARALLEL_FOR(b, nblk, {
            size_t r0 = (size_t)b * per, r = rows - r0 < per ? rows - r0 : per;
            FNN_FN(softmax_rows)(x + r0 * cols, y + r0 * cols, r, cols);
        });
        return;
    }
    if (FNN_ACT_IS_ROWWISE(act)) {
        FNN_PARALLEL_FOR(i, rows, { FNN_FN(log_softmax_row)(x + (size_t)i * cols, y + (size_t)i * cols, cols); });
        return;
    }
    long nchunk = (long)((n + FNN_ACT_CHUNK - 1) / FNN_ACT_CHUNK);
    FNN_PARALLEL_FOR(c, nchunk, {
        size_t lo = (size_t)c * FNN_ACT_CHUNK, len = n - lo < FNN_ACT_CHUNK ? n - lo : FNN_ACT_CHUNK;
        FNN_FN(act_fwd_n)(act, alpha, x + lo, y + lo, len);
    });
}

void FNN_FN(act_backward)(int act, T alpha, const T *x, const T *y, const T *dy, T *dx, size_t rows,
                          size_t cols, int nt) {
    size_t n = rows * cols;
    if (n == 0 || (act == FNN_ACT_LINEAR && dx == dy)) return;
    nt = fnn_threads_for(n, FNN_ACT_GRAIN, nt);
    if (FNN_ACT_IS_ROWWISE(act)) {
        int soft = act == FNN_ACT_SOFTMAX;
        FNN_PARALLEL_FOR(i, rows, {
            size_t o = (size_t)i * cols;
            if (soft) FNN_FN(softmax_bwd_row)(y + o, dy + o, dx + o, cols);
            else FNN_FN(log_softmax_bwd_row)(y + o, dy + o, dx + o, cols);
        });
        return;
    }
    long nchunk = (long)((n + FNN_ACT_CHUNK - 1) / FNN_ACT_CHUNK);
    FNN_PARALLEL_FOR(c, nchunk, {
        size_t lo = (size_t)c * FNN_ACT_CHUNK, len = n - lo < FNN_ACT_CHUNK ? n - lo : FNN_ACT_CHUNK;
        FNN_FN(act_bwd_n)(act, alpha, x + lo, y + lo, dy + lo, dx + lo, len);
    });
}

/* g *= act'(x) from y = act(x) alone (fnn_act_grad_from_output says for which activations). */
static void FNN_FN(act_bwd_out_n)(int act, T alpha, const T *FNN_RESTRICT y, T *FNN_RESTRICT g, size_t n) {
    switch (act) {
    case FNN_ACT_RELU:
        for (size_t i = 0; i < n; i++) g[i] = y[i] > 0 ? g[i] : (T)0;
        break;
    case FNN_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) g[i] = (y[i] > 0 ? (T)1 : alpha) * g[i];
        break;
    case FNN_ACT_ELU: /* x <= 0: y = alpha (e^x - 1), y' = alpha e^x = y + alpha */
        for (size_t i0 = 0; i0 < n; i0 += FNN_ACT_SIDE) {
            const size_t m = n - i0 < FNN_ACT_SIDE ? n - i0 : FNN_ACT_SIDE;
            T side[FNN_ACT_SIDE];
            for (size_t i = 0; i < m; i++) side[i] = g[i0 + i] * (y[i0 + i] + alpha);
            for (size_t i = 0; i < m; i++) g[i0 + i] = y[i0 + i] > 0 ? g[i0 + i] : side[i];
        }
        break;
    case FNN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) g[i] *= y[i] * (1 - y[i]);
        break;
    case FNN_ACT_TANH:
        for (size_t i = 0; i < n; i++) g[i] *= 1 - y[i] * y[i];
        break;
    default: /* linear */
        break;
    }
}

void FNN_FN(act_backward_from_output)(int act, T alpha, const T *y, T *g, size_t n, int nt) {
    if (act == FNN_ACT_LINEAR || n == 0) return;
    nt = fnn_threads_for(n, FNN_ACT_GRAIN, nt);
    FNN_PARALLEL_RANGES(lo, hi, n, { FNN_FN(act_bwd_out_n)(act, alpha, y + lo, g + lo, hi - lo); });
}

void FNN_FN(bias_add)(T *y, const T *bias, size_t rows, size_t cols, int nt) {
    if (rows == 0 || cols == 0) return;
    nt = fnn_threads_for(rows * cols, FNN_ACT_GRAIN, nt);
    FNN_PARALLEL_FOR(i, rows, {
        T *FNN_RESTRICT yi = y + (size_t)i * cols;
        const T *FNN_RESTRICT b = bias;
        for (size_t j = 0; j < cols; j++) yi[j] += b[j];
    });
}

/* out[j] = beta*out[j] + sum_i scale[i]*x[i*ldx + j] (scale NULL: 1), summed in row order. */
static void FNN_FN(colsum_)(const T *x, size_t rows, size_t cols, size_t ldx, const T *scale, T beta, T *out,
                            int nt) {
    if (cols == 0) return;
    long nblk = (long)((cols + FNN_COLSUM_BLOCK - 1) / FNN_COLSUM_BLOCK);
    nt = fnn_threads_for(rows * cols, FNN_ACT_GRAIN, nt);
    if (nt > nblk) nt = (int)nblk;
    FNN_PARALLEL_FOR(b, nblk, {
        size_t j0 = (size_t)b * FNN_COLSUM_BLOCK;
        size_t w = cols - j0 < FNN_COLSUM_BLOCK ? cols - j0 : FNN_COLSUM_BLOCK;
        T acc[FNN_COLSUM_BLOCK];
        for (size_t j = 0; j < w; j++) acc[j] = 0;
        for (size_t i = 0; i < rows; i++) { /* row order: each column's sum is the same for any nt */
            const T *FNN_RESTRICT xi = x + i * ldx + j0;
            if (scale) {
                const T s = scale[i];
                for (size_t j = 0; j < w; j++) acc[j] += s * xi[j];
            } else {
                for (size_t j = 0; j < w; j++) acc[j] += xi[j];
            }
        }
        T *o = out + j0;
        if (beta == 0)
            for (size_t j = 0; j < w; j++) o[j] = acc[j];
        else
            for (size_t j = 0; j < w; j++) o[j] = beta * o[j] + acc[j];
    });
}

void FNN_FN(colsum)(const T *x, size_t rows, size_t cols, T beta, T *out, int nt) {
    FNN_FN(colsum_)(x, rows, cols, cols, NULL, beta, out, nt);
}

void FNN_FN(colsum_scaled)(const T *x, size_t rows, size_t cols, size_t ldx, const T *scale, T *out, int nt) {
    FNN_FN(colsum_)(x, rows, cols, ldx, scale, 0, out, nt);
}

#undef FNN_ACT_SIDE
#undef T
