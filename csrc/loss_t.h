/* loss_t.h - body of the fused loss kernels, included by loss.c once per dtype (FNN_T, FNN_P, FNN_M).
 *
 * pred (and target, grad): rows x cols, row-major, contiguous.  grad may equal pred.
 * For row i with weight w_i (1 without sample_w) and c_i = grad_scale * w_i:
 *   cross_entropy  lse = m + log(sum_j exp(x_j - m)), m = max_j x_j (no overflow for any logits)
 *                  labels:  loss_i = lse - x_label                 grad_j = c_i*(p_j - [j == label])
 *                  targets: loss_i = sum_j t_j*(lse - x_j)          grad_j = c_i*(p_j*sum_k t_k - t_j)
 *                  (p = softmax(x)); labels win when both are given; a label outside [0, cols)
 *                  makes the result NaN (the caller validates; this only keeps memory safe)
 *   bce            l_j = max(x_j, 0) - x_j*t_j + log1p(exp(-|x_j|))    grad_j = c_i/cols*(sigmoid(x_j) - t_j)
 *   mse            l_j = d_j^2, d = pred - target                        grad_j = c_i/cols*2*d_j
 *   mae            l_j = |d_j|                                           grad_j = c_i/cols*sign(d_j) (0 at d = 0)
 *   huber          l_j = |d_j| < delta ? d_j^2/2 : delta*(|d_j| - delta/2)  (PyTorch's HuberLoss)
 *                                                                        grad_j = c_i/cols*clamp(d_j, -delta, delta)
 *   with loss_i = mean_j l_j for bce/mse/mae/huber.
 * The row's loss is accumulated in double; the return value sum_i w_i*loss_i too, in row order.
 */
#define T FNN_T

static T FNN_FN(loss_row_max)(const T *x, size_t n) {
    T m = x[0];
    for (size_t j = 1; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* label: this row's class or NULL; t: this row's target probabilities (used only without label). */
static double FNN_FN(ce_row)(const T *x, const int64_t *label, const T *t, size_t n, T c, T *g) {
    T m = FNN_FN(loss_row_max)(x, n), xl = 0;
    int bad = 0;
    if (label) {
        t = NULL;
        bad = *label < 0 || (uint64_t)*label >= n;
        if (!bad) xl = x[*label]; /* read before g (possibly x itself) is written */
    }
    double s = 0, tsum = 0, txm = 0;
    for (size_t j = 0; j < n; j++) {
        T xm = x[j] - m, e = FNN_M(exp)(xm);
        s += e;
        if (t) {
            tsum += t[j];
            txm += (double)t[j] * xm;
        }
        if (g) g[j] = e;
    }
    double ls = log(s);
    if (g) {
        if (label) {
            T k = (T)(c / s);
            for (size_t j = 0; j < n; j++) g[j] *= k;
            if (!bad) g[*label] -= c;
        } else {
            T k = (T)(c * tsum / s);
            for (size_t j = 0; j < n; j++) g[j] = g[j] * k - c * t[j];
        }
    }
    if (label) return bad ? NAN : ls - (double)(xl - m);
    return tsum * ls - txm;
}

static double FNN_FN(bce_row)(const T *x, const T *t, size_t n, T cn, T *g) {
    double acc = 0;
    for (size_t j = 0; j < n; j++) {
        T xv = x[j], tv = t[j], e = FNN_M(exp)(-FNN_M(fabs)(xv));
        /* in double: x*t is exact there, so nothing cancels in the loss for soft targets */
        acc += (xv > 0 ? (double)xv : 0.0) - (double)xv * (double)tv + (double)FNN_M(log1p)(e);
        if (g) g[j] = cn * ((xv >= 0 ? (T)1 : e) / (1 + e) - tv);
    }
    return acc / (double)n;
}

static double FNN_FN(mse_row)(const T *p, const T *t, size_t n, T cn, T *g) {
    double acc = 0;
    T k = 2 * cn;
    for (size_t j = 0; j < n; j++) {
        T d = p[j] - t[j];
        acc += (double)d * (double)d;
        if (g) g[j] = k * d;
    }
    return acc / (double)n;
}

static double FNN_FN(mae_row)(const T *p, const T *t, size_t n, T cn, T *g) {
    double acc = 0;
    for (size_t j = 0; j < n; j++) {
        T d = p[j] - t[j];
        acc += (double)FNN_M(fabs)(d);
        if (g) g[j] = d > 0 ? cn : d < 0 ? -cn : (T)0;
    }
    return acc / (double)n;
}

static double FNN_FN(huber_row)(const T *p, const T *t, size_t n, T delta, T cn, T *g) {
    double acc = 0;
    for (size_t j = 0; j < n; j++) {
        T d = p[j] - t[j], a = FNN_M(fabs)(d);
        acc += a < delta ? 0.5 * (double)d * (double)d : (double)delta * ((double)a - 0.5 * (double)delta);
        if (g) g[j] = cn * (d < -delta ? -delta : d > delta ? delta : d);
    }
    return acc / (double)n;
}

double FNN_FN(loss)(int loss, const T *pred, const int64_t *labels, const T *target, const T *sample_w,
                    size_t rows, size_t cols, T param, T grad_scale, T *grad) {
    if (rows == 0 || cols == 0) return 0;
    if (loss < 0 || loss >= FNN_LOSS__COUNT) return NAN;
    if (!target && !(loss == FNN_LOSS_CROSS_ENTROPY && labels)) return NAN;
    double total = 0;
    for (size_t i = 0; i < rows; i++) {
        T w = sample_w ? sample_w[i] : (T)1, c = grad_scale * w, cn = c / (T)cols;
        const T *x = pred + i * cols, *t = target ? target + i * cols : NULL;
        T *g = grad ? grad + i * cols : NULL;
        double li;
        switch (loss) {
        case FNN_LOSS_CROSS_ENTROPY: li = FNN_FN(ce_row)(x, labels ? labels + i : NULL, t, cols, c, g); break;
        case FNN_LOSS_BCE: li = FNN_FN(bce_row)(x, t, cols, cn, g); break;
        case FNN_LOSS_MSE: li = FNN_FN(mse_row)(x, t, cols, cn, g); break;
        case FNN_LOSS_MAE: li = FNN_FN(mae_row)(x, t, cols, cn, g); break;
        default: li = FNN_FN(huber_row)(x, t, cols, param, cn, g); break;
        }
        total += (double)w * li;
    }
    return total;
}

#undef T
