/* fnn_impl.h - private declarations shared by the C sources of fastnn (not installed).
 *
 * Conventions
 *   - Matrices are row-major and contiguous unless a leading dimension (ld*) is given.
 *   - float and double share one source: a body file "*_t.h" is included twice with
 *       FNN_T = float,  FNN_P = s   and   FNN_T = double, FNN_P = d,
 *     and FNN_FN(name) expands to fnn_<P><name>, e.g. FNN_FN(gemm) -> fnn_sgemm / fnn_dgemm.
 *   - Every function that may run threads takes its thread count `nt` explicitly (nt <= 1 = serial);
 *     nothing calls omp_set_num_threads().  No reduction is split across threads in an order that
 *     depends on nt, so results are bitwise identical for any nt.
 */
#ifndef FNN_IMPL_H
#define FNN_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include "fastnn.h"

#define FNN_CAT_(a, b) a##b
#define FNN_CAT(a, b) FNN_CAT_(a, b)
#define FNN_FN(name) FNN_CAT(FNN_CAT(fnn_, FNN_P), name)

#if defined(__GNUC__)
#  define FNN_RESTRICT __restrict__
#  define FNN_UNUSED __attribute__((unused))
#else
#  define FNN_RESTRICT
#  define FNN_UNUSED
#endif

#define FNN_ALIGN 64

/* for (long I = 0; I < N; I++) { ... } (the body, the last argument) over `nt` threads (a variable of
 * that name), handed out in shrinking chunks as threads come free (guided), so that a thread the OS
 * preempts does not hold the others at the end of the loop; each I runs whole on one thread, so the
 * results are those of the serial loop.  With nt <= 1 it is a plain loop: no OpenMP region is entered
 * at all (even `if(0)` regions cost a team set-up in libgomp, which shows when a kernel is called per row). */
#ifdef _OPENMP
#define FNN_PARALLEL_FOR(I, N, ...)                                                                \
    do {                                                                                           \
        if (nt <= 1) {                                                                             \
            for (long I = 0; I < (long)(N); I++) __VA_ARGS__                                       \
        } else {                                                                                   \
            _Pragma("omp parallel for num_threads(nt) schedule(guided)")                           \
            for (long I = 0; I < (long)(N); I++) __VA_ARGS__                                       \
            fnn_team_touch();                                                                      \
        }                                                                                          \
    } while (0)
#else /* serial: nt is read only so that a count set aside for the macro is not an unused variable */
#define FNN_PARALLEL_FOR(I, N, ...)                                                                \
    do {                                                                                           \
        (void)nt;                                                                                  \
        for (long I = 0; I < (long)(N); I++) __VA_ARGS__                                           \
    } while (0)
#endif

/* { ... } (the body, the last argument) run on [LO, HI) for each of 4 x nt contiguous ranges of [0, N)
 * (fewer when N is smaller), handed out to the `nt` threads as they come free: a preempted thread's
 * share is taken by the others.  The bounds depend on nt: only for elementwise work, whose results do
 * not depend on the range an element falls in.  With nt <= 1, one range and no OpenMP region. */
#ifdef _OPENMP
#define FNN_PARALLEL_RANGES(LO, HI, N, ...)                                                        \
    do {                                                                                           \
        if (nt <= 1) {                                                                             \
            const size_t LO = 0, HI = (size_t)(N);                                                 \
            __VA_ARGS__                                                                            \
        } else {                                                                                   \
            const size_t n_ = (size_t)(N), p_ = n_ < 4 * (size_t)nt ? n_ : 4 * (size_t)nt;         \
            _Pragma("omp parallel for num_threads(nt) schedule(dynamic, 1)")                       \
            for (long k_ = 0; k_ < (long)p_; k_++) {                                               \
                const size_t LO = n_ * (size_t)k_ / p_;                                            \
                const size_t HI = n_ * (size_t)(k_ + 1) / p_;                                      \
                __VA_ARGS__                                                                        \
            }                                                                                      \
            fnn_team_touch();                                                                      \
        }                                                                                          \
    } while (0)
#else
#define FNN_PARALLEL_RANGES(LO, HI, N, ...)                                                        \
    do {                                                                                           \
        const size_t LO = 0, HI = (size_t)(N);                                                     \
        (void)nt;                                                                                  \
        __VA_ARGS__                                                                                \
    } while (0)
#endif

/* ---- runtime: threads, SIMD, memory (runtime.c) ------------------------- */
/* The threads worth starting for `work` units at `grain` units per thread at least: min(nt, work /
 * grain), at least 1.  The one rule every kernel uses to go serial on small work. */
int   fnn_threads_for(size_t work, size_t grain, int nt);

/* The thread-count governor: how many of up to `max` threads each run of a repeated piece of work (a
 * training step) takes.  Results never depend on the count (see fnn_impl.h's conventions), so it
 * changes only the speed: it runs the count that has been fastest lately, measured over windows of
 * steps (the time inside the steps alone, per unit of work), and now and then tries the next count
 * down (half, rounded up) or up for one short window, moving there when that is clearly faster.  A
 * probe that loses doubles the wait before the next, so on a steady machine probes cost about 1% of
 * the time; a window much slower than the last brings the next probe forward.  A thread that keeps
 * losing its core to another process therefore costs a few probes, not every step.  Steps on a count
 * larger than the last, and after a pause between steps, are measured only after a warm-up: threads
 * that slept come back slowly, and judged by those steps a quiet machine looked busy.
 * Zero-initialise; fnn_gov_begin before each step, fnn_gov_end after it with the step's work (rows).
 * They read the clock only while they govern (max > 1 and set_adaptive_threads on), so one-row
 * predicts pay nothing; the _at forms take the time instead (tests drive them with their own). */
#define FNN_GOV_LEVELS 12 /* counts max, ceil(max/2), ceil(max/4), ..., 1: 11 halvings cover 1024 */
typedef struct {
    int max, levels;            /* the count asked for (0: none yet) and how many counts it tries */
    int home, cur;              /* the level run between probes, and the level of the window under way */
    int wait, gap, down;        /* windows to the next probe, windows between probes, next probe's way */
    double warm;                /* > 0: seconds of steps on a new count still to run unmeasured */
    double last;                /* when the last step ended */
    double spent, work, start;  /* the window so far: seconds inside steps and units of work; step start */
    double est[FNN_GOV_LEVELS]; /* seconds per unit of work at each level, 0 = not measured */
} fnn_governor;
int  fnn_gov_begin(fnn_governor *g, int max); /* the count this step runs on */
void fnn_gov_end(fnn_governor *g, double work);
int  fnn_gov_begin_at(fnn_governor *g, int max, double now);
void fnn_gov_end_at(fnn_governor *g, double work, double now);
int  fnn_gov_levels(int max);                 /* the counts it tries: max halved (rounded up) down to 1 */

/* An idle team (runtime.c).  libgomp's threads sleep after about 0.1 ms without work (fastnn sets
 * GOMP_SPINCOUNT; see README, Threads), and a region that needs a sleeping thread waits for it to
 * wake, which on a VM can take 0.1-0.4 ms: longer than a small product takes on one thread.  A GEMM
 * region asks fnn_team_begin first: when the calling thread's team has been idle longer than that
 * and the product would take one thread less time than starting the team was last measured to cost,
 * it runs on one thread (the same bits), so that sporadic calls (a predict per request, fnn.ops
 * between other work) do not pay the wake-up.  The cost is measured as the team starts after an idle
 * stretch: each worker notes when it arrived (fnn_team_arrive), fnn_team_end keeps a running mean of
 * the last arrival; where waking is cheap it stays small and nothing runs on one thread.  Every
 * FNN_TEAM_RECHECK-th such product runs on the team anyway, to measure the cost again.  Training
 * steps (fnn_team_steady) run their regions back to back and keep the count they are given.  All
 * state is the calling thread's own. */
typedef struct {
    double t0;        /* when the region was asked for */
    int cold;         /* the team had been idle: its arrivals are timed */
    long long last;   /* the last worker's arrival, ns on t0's clock (atomic) */
} fnn_team;
int  fnn_team_begin(fnn_team *t, int nt, double serial_seconds); /* the count to run on: nt or 1 */
void fnn_team_arrive(fnn_team *t);       /* inside the region, by every thread (the caller's is ignored) */
void fnn_team_end(fnn_team *t, int nt);  /* after it, with the count it ran on */
void fnn_team_touch(void);               /* another parallel region of this thread just ended */
void fnn_team_steady(int on);            /* nested on/off around training steps */
void fnn_team_state(double *wake, unsigned long *serial, double set_wake); /* test hook; set_wake >= 0 sets */
void *fnn_aligned_alloc(size_t bytes);            /* FNN_ALIGN-aligned, NULL on failure or overflow */
void  fnn_aligned_free(void *p);
/* A buffer of at least `bytes` (FNN_ALIGN-aligned) owned by the calling thread, one per slot; it only
 * grows and lives until the thread ends.  NULL on failure.  Separate slots for users that nest. */
enum { FNN_TBUF_GEMM, FNN_TBUF_MODEL, FNN_TBUF_BF16, FNN_TBUF__COUNT };
void *fnn_thread_buffer(int slot, size_t bytes);

/* ---- input checks (check.c) ---------------------------------------------- */
int fnn_sall_finite(const float *x, size_t n); /* 1 if no NaN or Inf among n values */
int fnn_dall_finite(const double *x, size_t n);

/* ---- vector math (kernels/vmath_t.h) and the optimizer's update (kernels/update_t.h), per ISA, the
 * same bits on each -------------------------------------------------------------------------------
 * Functions whose results must not depend on the SIMD level are compiled without contracting a
 * multiply and an add into one rounding (FNN_EXACT; FNN_EXACT_BEGIN opens their bodies for clang). */
#if defined(__clang__)
#define FNN_EXACT
#define FNN_EXACT_BEGIN _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define FNN_EXACT __attribute__((optimize("fp-contract=off")))
#define FNN_EXACT_BEGIN
#else
#define FNN_EXACT
#define FNN_EXACT_BEGIN
#endif
struct fnn_optim_desc;
/* the optimizer's update of elements [lo, hi) of a tensor (kernels/update_t.h; optim.c calls it) */
typedef void (*fnn_supdate_fn)(const struct fnn_optim_desc *o, int64_t t, float *p, const float *g, float *state,
                               size_t stride, size_t off, int decay, size_t lo, size_t hi);
typedef void (*fnn_dupdate_fn)(const struct fnn_optim_desc *o, int64_t t, double *p, const double *g,
                               double *state, size_t stride, size_t off, int decay, size_t lo, size_t hi);
typedef struct {
    void (*exp)(const float *x, float *y, size_t n);  /* y = exp(x), y may be x */
    int (*all_finite)(const float *x, size_t n);       /* as fnn_sall_finite */
    fnn_supdate_fn supdate;                            /* the same bits at every SIMD level too */
    fnn_dupdate_fn dupdate;
} fnn_vmath_kernel;
extern const fnn_vmath_kernel fnn_vmath_kernel_ref, fnn_vmath_kernel_avx2, fnn_vmath_kernel_avx512;
const fnn_vmath_kernel *fnn_vmath_kernel_active(void);

/* ---- activations (act.c) -------------------------------------------------------------------------
 * The codes are private to the library; names cross every boundary (files, Python) through
 * fnn_act_name/fnn_act_from_name, so the order of this enum may change without breaking anything. */
enum fnn_act {
    FNN_ACT_LINEAR = 0,
    FNN_ACT_RELU,
    FNN_ACT_LEAKY_RELU, /* alpha = negative slope */
    FNN_ACT_ELU,        /* alpha */
    FNN_ACT_SIGMOID,
    FNN_ACT_TANH,
    FNN_ACT_GELU,       /* exact (erf) form */
    FNN_ACT_SILU,
    FNN_ACT_SOFTMAX,    /* row-wise */
    FNN_ACT_LOG_SOFTMAX,/* row-wise; a kernel of fnn.ops, not a layer activation */
    FNN_ACT__COUNT
};
/* Elementwise activations need only the input; softmax/log_softmax are row-wise. */
#define FNN_ACT_IS_ROWWISE(a) ((a) == FNN_ACT_SOFTMAX || (a) == FNN_ACT_LOG_SOFTMAX)
const char *fnn_act_name(int act);        /* "relu", ...; NULL for a code out of range */
int fnn_act_from_name(const char *name);  /* the code, or -1 */
double fnn_act_default_alpha(int act);    /* leaky_relu 0.01, elu 1, others 0 */
int fnn_act_is_layer(int act);            /* may a layer use it (every activation but log_softmax)? */

/* ---- losses (loss.c) ------------------------------------------------------------------------------ */
enum fnn_loss {
    FNN_LOSS_CROSS_ENTROPY = 0, /* softmax fused; int labels or probability targets */
    FNN_LOSS_BCE,               /* sigmoid fused, mean over every element */
    FNN_LOSS_MSE,               /* mean over every element */
    FNN_LOSS_MAE,
    FNN_LOSS_HUBER,             /* delta */
    FNN_LOSS__COUNT
};
const char *fnn_loss_name(int loss);      /* "cross_entropy", ...; NULL out of range */
int fnn_loss_from_name(const char *name); /* the code, or -1 */
int fnn_loss_link(int loss);              /* the activation predict applies: softmax, sigmoid or linear */

/* ---- per-dtype kernels --------------------------------------------------------------------------
 * Each exists for float (fnn_s...) and double (fnn_d...), from one body (*_t.h) per file. */

/* GEMM with an optional fused epilogue applied to each finished tile of C (gemm.c):
 *   C = act(alpha*op(A)*op(B) + beta*C + bias)   (bias: n values or NULL; act elementwise)
 * ta/tb: 0 = as stored, 1 = transposed.  nt: threads.  Deterministic for any nt. */
void fnn_sgemm_ex(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                  const float *b, size_t ldb, float beta, float *c, size_t ldc, const float *bias, int act,
                  float act_alpha, int nt);
void fnn_dgemm_ex(int ta, int tb, size_t m, size_t n, size_t k, double alpha, const double *a, size_t lda,
                  const double *b, size_t ldb, double beta, double *c, size_t ldc, const double *bias, int act,
                  double act_alpha, int nt);
/* One product C = alpha*op(A)*op(B) + beta*C, as fnn_*gemm_ex takes it, for fnn_*gemm_set. */
#define FNN_GEMM_ARGS_(T)                                                                          \
    struct {                                                                                       \
        int ta, tb;                                                                                \
        size_t m, n, k;                                                                            \
        T alpha;                                                                                   \
        const T *a;                                                                                \
        size_t lda;                                                                                \
        const T *b;                                                                                \
        size_t ldb;                                                                                \
        T beta;                                                                                    \
        T *c;                                                                                      \
        size_t ldc;                                                                                \
    }
typedef FNN_GEMM_ARGS_(float) fnn_sgemm_args;
typedef FNN_GEMM_ARGS_(double) fnn_dgemm_args;
/* Side task i of fnn_*gemm_set. */
typedef void (*fnn_task_fn)(void *ctx, size_t i);
#define FNN_GEMM_SET_MAX 4
/* Up to FNN_GEMM_SET_MAX independent products (outputs disjoint from each other and from every
 * input) and ntasks side tasks (task(ctx, i), about task_flops of work in all) in one parallel region,
 * taken from one shared counter by nt threads.  Each product's bits are those of fnn_*gemm_ex. */
void fnn_sgemm_set(const fnn_sgemm_args *ops, int nops, fnn_task_fn task, void *ctx, size_t ntasks,
                   double task_flops, int nt);
void fnn_dgemm_set(const fnn_dgemm_args *ops, int nops, fnn_task_fn task, void *ctx, size_t ntasks,
                   double task_flops, int nt);
/* The naive triple loop: the test oracle. */
void fnn_sgemm_ref(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                   const float *b, size_t ldb, float beta, float *c, size_t ldc);
void fnn_dgemm_ref(int ta, int tb, size_t m, size_t n, size_t k, double alpha, const double *a, size_t lda,
                   const double *b, size_t ldb, double beta, double *c, size_t ldc);

/* y = act(x) over rows x cols (contiguous), row-wise for softmax/log_softmax; y may equal x (act.c). */
void fnn_sact_forward(int act, float alpha, const float *x, float *y, size_t rows, size_t cols, int nt);
void fnn_dact_forward(int act, double alpha, const double *x, double *y, size_t rows, size_t cols, int nt);
/* dx = dy * act'(x), given the input x and the output y = act(x) (both always passed); for
 * softmax/log_softmax the row-wise vector-Jacobian product.  dx may equal dy. */
void fnn_sact_backward(int act, float alpha, const float *x, const float *y, const float *dy, float *dx,
                       size_t rows, size_t cols, int nt);
void fnn_dact_backward(int act, double alpha, const double *x, const double *y, const double *dy, double *dx,
                       size_t rows, size_t cols, int nt);
/* g[0, n) *= act'(x) in place from the output y = act(x) alone, for the elementwise activations whose
 * derivative is a function of the output (relu, sigmoid, tanh; leaky_relu and elu with alpha >= 0);
 * fnn_act_grad_from_output(act, alpha) says which. */
int fnn_act_grad_from_output(int act, double alpha);
void fnn_sact_backward_from_output(int act, float alpha, const float *y, float *g, size_t n, int nt);
void fnn_dact_backward_from_output(int act, double alpha, const double *y, double *g, size_t n, int nt);
/* y[i][j] += bias[j] */
void fnn_sbias_add(float *y, const float *bias, size_t rows, size_t cols, int nt);
void fnn_dbias_add(double *y, const double *bias, size_t rows, size_t cols, int nt);
/* out[j] = beta*out[j] + sum_i x[i][j], summed in row order (deterministic for any nt). */
void fnn_scolsum(const float *x, size_t rows, size_t cols, float beta, float *out, int nt);
void fnn_dcolsum(const double *x, size_t rows, size_t cols, double beta, double *out, int nt);
/* out[j] = sum_i scale[i]*x[i*ldx + j], each product added in row order (deterministic for any nt):
 * the rank-ordered weighted sum that averages gradients across the ranks of data-parallel training. */
void fnn_scolsum_scaled(const float *x, size_t rows, size_t cols, size_t ldx, const float *scale, float *out,
                        int nt);
void fnn_dcolsum_scaled(const double *x, size_t rows, size_t cols, size_t ldx, const double *scale, double *out,
                        int nt);

/* Fused loss and gradient in one pass over rows x cols predictions (loss.c).
 *   labels: int class per row (cross-entropy only) or NULL; target: rows x cols or NULL.
 *   sample_w: per-row weights or NULL (= 1).  param: huber delta.
 *   Returns sum_i w_i * loss_i, where loss_i is the row's loss (cross-entropy: summed over
 *   classes; bce/mse/mae/huber: mean over the row's cols).
 *   If grad != NULL: grad = grad_scale * w_i * d loss_i / d pred (pred = logits for ce/bce).
 *   Summation order is fixed (serial over rows). */
double fnn_sloss(int loss, const float *pred, const int64_t *labels, const float *target, const float *sample_w,
                 size_t rows, size_t cols, float param, float grad_scale, float *grad);
double fnn_dloss(int loss, const double *pred, const int64_t *labels, const double *target,
                 const double *sample_w, size_t rows, size_t cols, double param, double grad_scale, double *grad);

/* ---- GEMM micro-kernel registry (gemm.c, kernels/) ------------------------
 * A micro-kernel computes one full MR x NR tile:  C = Apanel * Bpanel (+ C when beta == 1), where
 * Apanel is packed k-major (MR values per k, alpha applied by the packing), FNN_ALIGN-aligned, and
 * row p of Bpanel starts at b + p*ldb (a packed panel, ldb = NR, or B read in place).  beta is 0 or 1
 * (the GEMM scales C by any other beta first); C is not read when it is 0.  Partial tiles are
 * handled by the caller.  Every kernel sums an element in one order, which the small-M kernel
 * follows too: a chain of multiply-adds from zero over the k values of a call, then stored or added
 * to C, so that a row's result never depends on the kernel, the tile or the other rows. */
typedef void (*fnn_sgemm_ukr_fn)(size_t k, const float *a, const float *b, size_t ldb, float *c,
                                 size_t ldc, float beta);
typedef void (*fnn_dgemm_ukr_fn)(size_t k, const double *a, const double *b, size_t ldb, double *c,
                                 size_t ldc, double beta);
/* mr2/ukr2: an optional narrower tile (same nr) for products whose M is a poor multiple of mr
 * (e.g. a batch of 32 rows with mr = 14); mr2 = 0 when there is none.
 * nrn/ukrn/ukrn2: optional tiles of nrn columns (one vector; mr and mr2 rows) for products of at most
 * nrn columns, where an nr-wide tile would be mostly padding (a 10-class output layer: 10 of 32
 * columns); nrn = 0 when there are none. */
/* gemv: the small-M kernel (kernels/gemv_t.h) for m <= FNN_GEMV_MAX_M rows, A and B at any strides
 * (op(A)[i][p] = a[i*rsa + p*csa], op(B)[p][j] = b[p*rsb + j*csb]), alpha applied to each value of A
 * as packing applies it, K in blocks of kc summed as the micro-kernels sum them; beta 0 or 1.  It
 * needs no heap memory: the GEMM's fallback too. */
#define FNN_GEMV_MAX_M 4
typedef void (*fnn_sgemv_fn)(size_t m, size_t n, size_t k, size_t kc, float alpha, const float *a, size_t rsa,
                             size_t csa, const float *b, size_t rsb, size_t csb, float beta, float *c, size_t ldc);
typedef void (*fnn_dgemv_fn)(size_t m, size_t n, size_t k, size_t kc, double alpha, const double *a, size_t rsa,
                             size_t csa, const double *b, size_t rsb, size_t csb, double beta, double *c,
                             size_t ldc);
/* packt: the transposing copy of packing (kernels/packt_t.h), dst[p*dstride + r] = src[r*ld + p]. */
typedef void (*fnn_spackt_fn)(size_t rows, size_t k, const float *src, size_t ld, float *dst, size_t dstride);
typedef void (*fnn_dpackt_fn)(size_t rows, size_t k, const double *src, size_t ld, double *dst, size_t dstride);
typedef struct {
    int mr, nr, mc, kc, nc;
    fnn_sgemm_ukr_fn ukr;
    int mr2;
    fnn_sgemm_ukr_fn ukr2;
    int nrn;
    fnn_sgemm_ukr_fn ukrn, ukrn2;
    fnn_sgemv_fn gemv;
    fnn_spackt_fn packt;
} fnn_sgemm_kernel;
typedef struct {
    int mr, nr, mc, kc, nc;
    fnn_dgemm_ukr_fn ukr;
    int mr2;
    fnn_dgemm_ukr_fn ukr2;
    int nrn;
    fnn_dgemm_ukr_fn ukrn, ukrn2;
    fnn_dgemv_fn gemv;
    fnn_dpackt_fn packt;
} fnn_dgemm_kernel;

extern size_t fnn_gemm_blocks[6]; /* tuning overrides, 0 = the default: mc, kc, nc, the tile (1 wide,
                                    * 2 narrow rows, 3 thin columns, 4 both), the rows up to which B is
                                    * read in place plus one (any value also turns off the small-M
                                    * kernel), and (a test hook) 1 to run every product as if its
                                    * packing buffers could not be had */
extern const fnn_sgemm_kernel fnn_sgemm_kernel_ref, fnn_sgemm_kernel_avx2, fnn_sgemm_kernel_avx512;
extern const fnn_dgemm_kernel fnn_dgemm_kernel_ref, fnn_dgemm_kernel_avx2, fnn_dgemm_kernel_avx512;
const fnn_sgemm_kernel *fnn_sgemm_kernel_active(void);
const fnn_dgemm_kernel *fnn_dgemm_kernel_active(void);
/* GFLOP/s of the active float micro-kernel on operands in L1 (tile 0 wide, 1 narrow; gemm.c). */
double fnn_sgemm_ukr_rate(int tile, size_t k, double seconds);

#endif /* FNN_IMPL_H */
