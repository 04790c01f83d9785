/* optim_t.h - body of the optimizer loops, included by optim.c once per dtype (FNN_T, FNN_P).
 *
 * One elementwise loop over a parameter range per call (kernels/update_t.h, at the active SIMD
 * level's width): the update of one element depends only on that element, so any split over threads
 * gives the same bits.  With nt <= 1 no OpenMP region is entered.  State copies sit at
 * state + s*stride + off (same layout as the parameters):
 *   SGD:     [momentum buffer]                     (none without momentum)
 *   Adam(W): [exp_avg, exp_avg_sq]
 *   RMSprop: [square_avg, (grad_avg if centered), (momentum buffer if momentum)]
 */
#define T FNN_T

void FNN_FN(optim_update)(const fnn_optim_desc *o, int64_t t, T *params, const T *grads, T *state, size_t stride,
                          size_t off, size_t len, int decay, int nt) {
    T *p = params + off;
    const T *g = grads + off;
    const FNN_FN(update_fn) range = fnn_vmath_kernel_active()->FNN_CAT(FNN_P, update);
    FNN_PARALLEL_RANGES(lo, hi, len, { range(o, t, p, g, state, stride, off, decay, lo, hi); });
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
