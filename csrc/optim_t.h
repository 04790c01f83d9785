/* optim_t.h - body of the optimizer loops, included by optim.c once per dtype (FNN_T, FNN_P).
 *
 * One elementwise loop over a parameter range per call: the update of one element depends only on
 * that element, so any split over threads gives the same bits.  With nt <= 1 no OpenMP region is
 * entered.  State copies sit at
 * state + s*stride + off (same layout as the parameters):
 *   SGD:     [momentum buffer]                     (none without momentum)
 *   Adam(W): [exp_avg, exp_avg_sq]
 *   RMSprop: [square_avg, (grad_avg if centered), (momentum buffer if momentum)]
 */
#define T FNN_T

/* The update of elements [lo, hi) of the range (pointers already offset). */
static void FNN_FN(optim_range_)(const fnn_optim_desc *o, int64_t t, T *FNN_RESTRICT p, const T *FNN_RESTRICT g,
                                 T *state, size_t stride, size_t off, int decay, size_t lo, size_t hi) {
    const T lr = (T)o->lr, wd = decay ? (T)o->weight_decay : (T)0, mom = (T)o->momentum;
    switch (o->kind) {
    case FNN_OPT_SGD:
        if (o->momentum == 0) {
            for (size_t i = lo; i < hi; i++) p[i] -= lr * (g[i] + wd * p[i]);
        } else {
            /* buf = momentum*buf + grad; the zero-initialised buffer makes the first step buf = grad,
             * as torch.optim.SGD does with dampening 0 */
            T *FNN_RESTRICT buf = state + off;
            if (o->nesterov) {
                for (size_t i = lo; i < hi; i++) {
                    T gi = g[i] + wd * p[i];
                    T b = mom * buf[i] + gi;
                    buf[i] = b;
                    p[i] -= lr * (gi + mom * b);
                }
            } else {
                for (size_t i = lo; i < hi; i++) {
                    T b = mom * buf[i] + (g[i] + wd * p[i]);
                    buf[i] = b;
                    p[i] -= lr * b;
                }
            }
        }
        break;
    case FNN_OPT_ADAM:
    case FNN_OPT_ADAMW: {
        T *FNN_RESTRICT m = state + off, *FNN_RESTRICT v = state + stride + off;
        const T b1 = (T)o->beta1, b2 = (T)o->beta2, eps = (T)o->eps;
        const T step_size = (T)(o->lr / (1 - pow(o->beta1, (double)t)));
        const T bc2_sqrt = (T)sqrt(1 - pow(o->beta2, (double)t));
        const int adamw = o->kind == FNN_OPT_ADAMW;
        const T shrink = adamw ? (T)(1 - o->lr * (decay ? o->weight_decay : 0)) : (T)1;
        const T l2 = adamw ? (T)0 : wd;
        for (size_t i = lo; i < hi; i++) {
            T pi = p[i] * shrink;
            T gi = g[i] + l2 * pi;
            T mi = b1 * m[i] + (1 - b1) * gi;
            T vi = b2 * v[i] + (1 - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = pi - step_size * (mi / (FNN_SQRT(vi) / bc2_sqrt + eps));
        }
        break;
    }
    case FNN_OPT_RMSPROP: {
        T *FNN_RESTRICT sq = state + off;
        T *FNN_RESTRICT ga = o->centered ? state + stride + off : NULL;
        T *FNN_RESTRICT buf = o->momentum != 0 ? state + (o->centered ? 2 : 1) * stride + off : NULL;
        const T alpha = (T)o->alpha, eps = (T)o->eps;
        for (size_t i = lo; i < hi; i++) {
            T gi = g[i] + wd * p[i];
            T si = alpha * sq[i] + (1 - alpha) * gi * gi;
            sq[i] = si;
            T avg;
            if (ga) {
                T ai = alpha * ga[i] + (1 - alpha) * gi;
                ga[i] = ai;
                avg = FNN_SQRT(si - ai * ai) + eps;
            } else {
                avg = FNN_SQRT(si) + eps;
            }
            if (buf) {
                T bi = mom * buf[i] + gi / avg;
                buf[i] = bi;
                p[i] -= lr * bi;
            } else {
                p[i] -= lr * (gi / avg);
            }
        }
        break;
    }
    default:
        break;
    }
}

void FNN_FN(optim_update)(const fnn_optim_desc *o, int64_t t, T *params, const T *grads, T *state, size_t stride,
                          size_t off, size_t len, int decay, int nt) {
    T *p = params + off;
    const T *g = grads + off;
    FNN_PARALLEL_RANGES(lo, hi, len, { FNN_FN(optim_range_)(o, t, p, g, state, stride, off, decay, lo, hi); });
}

/* ---- around the update: gradient clipping and the max-norm constraint ---------------------------------
 * Sums of squares are taken in double over FNN_OPTIM_PARTS fixed parts of a range (whatever the thread
 * count), then added in part order: the same bits for any nt. */

#define FNN_OPTIM_PARTS 64

double FNN_FN(sumsq)(const T *g, size_t n, int nt) {
    double part[FNN_OPTIM_PARTS];
    FNN_PARALLEL_FOR(k, FNN_OPTIM_PARTS, {
        size_t lo = n * (size_t)k / FNN_OPTIM_PARTS, hi = n * (size_t)(k + 1) / FNN_OPTIM_PARTS;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)g[i] * (double)g[i];
        part[k] = s;
    });
    double s = 0;
    for (int k = 0; k < FNN_OPTIM_PARTS; k++) s += part[k];
    return s;
}

void FNN_FN(scale)(T *g, size_t n, T s, int nt) {
    FNN_PARALLEL_RANGES(lo, hi, n, {
        for (size_t i = lo; i < hi; i++) g[i] *= s;
    });
}

void FNN_FN(clamp)(T *g, size_t n, T v, int nt) {
    FNN_PARALLEL_RANGES(lo, hi, n, {
        for (size_t i = lo; i < hi; i++) g[i] = g[i] > v ? v : g[i] < -v ? -v : g[i];
    });
}

/* Keras's MaxNorm(max_value, axis=0) on a rows x cols matrix: each column w_j becomes
 * w_j * min(|w_j|, max_value) / (1e-7 + |w_j|).  Column norms in double, rows in order. */
void FNN_FN(max_norm)(T *w, size_t rows, size_t cols, double max_value, int nt) {
    const size_t nblk = (cols + FNN_OPTIM_PARTS - 1) / FNN_OPTIM_PARTS;
    FNN_PARALLEL_FOR(b, nblk, {
        const size_t j0 = (size_t)b * FNN_OPTIM_PARTS;
        const size_t width = cols - j0 < FNN_OPTIM_PARTS ? cols - j0 : FNN_OPTIM_PARTS;
        double acc[FNN_OPTIM_PARTS] = {0};
        for (size_t i = 0; i < rows; i++)
            for (size_t k = 0; k < width; k++) acc[k] += (double)w[i * cols + j0 + k] * (double)w[i * cols + j0 + k];
        T s[FNN_OPTIM_PARTS];
        for (size_t k = 0; k < width; k++) {
            double norm = sqrt(acc[k]);
            s[k] = (T)((norm < max_value ? norm : max_value) / (1e-7 + norm));
        }
        for (size_t i = 0; i < rows; i++)
            for (size_t k = 0; k < width; k++) w[i * cols + j0 + k] *= s[k];
    });
}

#undef T
