/* act.c - PLACEHOLDER naive activations, bias, column sums and losses (scalar, serial) until the
 * tuned kernels land; the semantics are those declared in fnn_impl.h. */
#include "fnn_impl.h"

#include <math.h>
#include <string.h>

#define PLACEHOLDER_KERNELS(T, P, EXP, LOG, ERF, SQRT, TANH, LOG1P)                                  \
    void fnn_##P##act_forward(int act, T alpha, const T *x, T *y, size_t rows, size_t cols, int nt) { \
        (void)nt;                                                                                    \
        if (act == FNN_ACT_SOFTMAX || act == FNN_ACT_LOG_SOFTMAX) {                                  \
            for (size_t i = 0; i < rows; i++) {                                                      \
                const T *xi = x + i * cols; T *yi = y + i * cols;                                    \
                T m = xi[0];                                                                         \
                for (size_t j = 1; j < cols; j++) m = xi[j] > m ? xi[j] : m;                         \
                T s = 0;                                                                             \
                for (size_t j = 0; j < cols; j++) s += EXP(xi[j] - m);                               \
                if (act == FNN_ACT_SOFTMAX)                                                          \
                    for (size_t j = 0; j < cols; j++) yi[j] = EXP(xi[j] - m) / s;                    \
                else                                                                                 \
                    for (size_t j = 0; j < cols; j++) yi[j] = xi[j] - m - LOG(s);                    \
            }                                                                                        \
            return;                                                                                  \
        }                                                                                            \
        for (size_t i = 0; i < rows * cols; i++) {                                                   \
            T v = x[i], r;                                                                           \
            switch (act) {                                                                           \
            case FNN_ACT_RELU: r = v > 0 ? v : 0; break;                                             \
            case FNN_ACT_LEAKY_RELU: r = v > 0 ? v : alpha * v; break;                               \
            case FNN_ACT_ELU: r = v > 0 ? v : alpha * (EXP(v) - 1); break;                           \
            case FNN_ACT_SIGMOID: r = 1 / (1 + EXP(-v)); break;                                      \
            case FNN_ACT_TANH: r = TANH(v); break;                                                   \
            case FNN_ACT_GELU: r = (T)0.5 * v * (1 + ERF(v * (T)0.70710678118654752440)); break;     \
            case FNN_ACT_SILU: r = v / (1 + EXP(-v)); break;                                         \
            default: r = v;                                                                          \
            }                                                                                        \
            y[i] = r;                                                                                \
        }                                                                                            \
    }                                                                                                \
    void fnn_##P##act_backward(int act, T alpha, const T *x, const T *y, const T *dy, T *dx,         \
                               size_t rows, size_t cols, int nt) {                                  \
        (void)nt;                                                                                    \
        if (act == FNN_ACT_SOFTMAX || act == FNN_ACT_LOG_SOFTMAX) {                                  \
            for (size_t i = 0; i < rows; i++) {                                                      \
                const T *yi = y + i * cols, *gi = dy + i * cols; T *di = dx + i * cols;              \
                T s = 0;                                                                             \
                if (act == FNN_ACT_SOFTMAX) {                                                        \
                    for (size_t j = 0; j < cols; j++) s += gi[j] * yi[j];                            \
                    for (size_t j = 0; j < cols; j++) di[j] = yi[j] * (gi[j] - s);                   \
                } else {                                                                             \
                    for (size_t j = 0; j < cols; j++) s += gi[j];                                    \
                    for (size_t j = 0; j < cols; j++) di[j] = gi[j] - EXP(yi[j]) * s;                \
                }                                                                                    \
            }                                                                                        \
            return;                                                                                  \
        }                                                                                            \
        for (size_t i = 0; i < rows * cols; i++) {                                                   \
            T v = x[i], d;                                                                           \
            switch (act) {                                                                           \
            case FNN_ACT_RELU: d = v > 0; break;                                                     \
            case FNN_ACT_LEAKY_RELU: d = v > 0 ? 1 : alpha; break;                                   \
            case FNN_ACT_ELU: d = v > 0 ? 1 : alpha * EXP(v); break;                                 \
            case FNN_ACT_SIGMOID: { T s = 1 / (1 + EXP(-v)); d = s * (1 - s); } break;               \
            case FNN_ACT_TANH: { T t = TANH(v); d = 1 - t * t; } break;                              \
            case FNN_ACT_GELU:                                                                       \
                d = (T)0.5 * (1 + ERF(v * (T)0.70710678118654752440)) +                              \
                    v * EXP(-(T)0.5 * v * v) * (T)0.39894228040143267794;                            \
                break;                                                                               \
            case FNN_ACT_SILU: { T s = 1 / (1 + EXP(-v)); d = s * (1 + v * (1 - s)); } break;        \
            default: d = 1;                                                                          \
            }                                                                                        \
            dx[i] = dy[i] * d;                                                                       \
        }                                                                                            \
    }                                                                                                \
    void fnn_##P##bias_add(T *y, const T *bias, size_t rows, size_t cols, int nt) {                  \
        (void)nt;                                                                                    \
        for (size_t i = 0; i < rows; i++)                                                            \
            for (size_t j = 0; j < cols; j++) y[i * cols + j] += bias[j];                            \
    }                                                                                                \
    void fnn_##P##colsum(const T *x, size_t rows, size_t cols, T beta, T *out, int nt) {             \
        (void)nt;                                                                                    \
        for (size_t j = 0; j < cols; j++) out[j] = beta == 0 ? 0 : beta * out[j];                    \
        for (size_t i = 0; i < rows; i++)                                                            \
            for (size_t j = 0; j < cols; j++) out[j] += x[i * cols + j];                             \
    }                                                                                                \
    double fnn_##P##loss(int loss, const T *pred, const int64_t *labels, const T *target,            \
                         const T *sample_w, size_t rows, size_t cols, T param, T grad_scale, T *grad) { \
        double total = 0;                                                                            \
        for (size_t i = 0; i < rows; i++) {                                                          \
            const T *p = pred + i * cols, *t = target ? target + i * cols : NULL;                    \
            T *g = grad ? grad + i * cols : NULL;                                                    \
            T w = sample_w ? sample_w[i] : 1, li = 0, gs = grad_scale * w;                           \
            if (loss == FNN_LOSS_CROSS_ENTROPY) {                                                    \
                T m = p[0];                                                                          \
                for (size_t j = 1; j < cols; j++) m = p[j] > m ? p[j] : m;                           \
                T s = 0;                                                                             \
                for (size_t j = 0; j < cols; j++) s += EXP(p[j] - m);                                \
                T lse = m + LOG(s);                                                                  \
                if (labels) li = lse - p[labels[i]];                                                 \
                else for (size_t j = 0; j < cols; j++) li += t[j] * (lse - p[j]);                    \
                if (g)                                                                               \
                    for (size_t j = 0; j < cols; j++) {                                              \
                        T tj = labels ? (T)((int64_t)j == labels[i]) : t[j];                         \
                        T tsum = 1;                                                                  \
                        if (!labels) { tsum = 0; for (size_t q = 0; q < cols; q++) tsum += t[q]; }   \
                        g[j] = gs * (EXP(p[j] - lse) * tsum - tj);                                   \
                    }                                                                                \
            } else {                                                                                 \
                for (size_t j = 0; j < cols; j++) {                                                  \
                    T v = p[j], tj = t[j], d = v - tj, l, gj;                                        \
                    switch (loss) {                                                                  \
                    case FNN_LOSS_BCE:                                                               \
                        l = (v > 0 ? v : 0) - v * tj + LOG1P(EXP(-(v > 0 ? v : -v)));                \
                        gj = 1 / (1 + EXP(-v)) - tj; break;                                          \
                    case FNN_LOSS_MSE: l = d * d; gj = 2 * d; break;                                 \
                    case FNN_LOSS_MAE: l = d > 0 ? d : -d; gj = (T)((d > 0) - (d < 0)); break;       \
                    default: {                                                                       \
                        T a = d > 0 ? d : -d;                                                        \
                        l = a <= param ? (T)0.5 * d * d : param * (a - (T)0.5 * param);              \
                        gj = a <= param ? d : (d > 0 ? param : -param);                              \
                    }                                                                                \
                    }                                                                                \
                    li += l;                                                                         \
                    if (g) g[j] = gs * gj / (T)cols;                                                 \
                }                                                                                    \
                li /= (T)cols;                                                                       \
            }                                                                                        \
            total += (double)w * (double)li;                                                         \
        }                                                                                            \
        return total;                                                                                \
    }

PLACEHOLDER_KERNELS(float, s, expf, logf, erff, sqrtf, tanhf, log1pf)
PLACEHOLDER_KERNELS(double, d, exp, log, erf, sqrt, tanh, log1p)
