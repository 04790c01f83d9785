/* update_t.h - body of the optimizer's elementwise update over a range of parameters, included once
 * per (ISA, dtype) by the files beside it (optim.c picks the one for the active SIMD level).
 *
 * The update of elements [lo, hi) of a tensor: p, g and the state copies at state + s*stride + off
 * (the same layout as the parameters; see optim_t.h); one element's update depends on that element
 * alone.  Compiled without fused multiply-adds (FNN_EXACT), and with only IEEE operations (sqrt and
 * division are correctly rounded at every width), so every vector width gives the same bits: a
 * model trains to the same weights whatever the SIMD level, as it does whatever the thread count.
 *
 * Define before including: UPD_T (float or double), UPD_SQRT (sqrtf or sqrt), UPD_NAME, UPD_ATTR
 * (target attribute, may be empty).  Needs net.h (fnn_optim_desc) and <math.h>.
 */
#define T UPD_T

UPD_ATTR FNN_EXACT void UPD_NAME(const struct fnn_optim_desc *o, int64_t t, T *FNN_RESTRICT p,
                                 const T *FNN_RESTRICT g, T *state, size_t stride, size_t off, int decay, size_t lo,
                                 size_t hi) {
    FNN_EXACT_BEGIN
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
            p[i] = pi - step_size * (mi / (UPD_SQRT(vi) / bc2_sqrt + eps));
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
                avg = UPD_SQRT(si - ai * ai) + eps;
            } else {
                avg = UPD_SQRT(si) + eps;
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

#undef T
