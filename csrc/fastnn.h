/* fastnn.h - the one public header of the fastnn C library: run, fine-tune and save models from C.
 *
 * Plain C11, no Python.  Build with `make -C csrc` into csrc/build/libfastnn.a and libfastnn.so, then
 *     cc -O2 -Icsrc app.c csrc/build/libfastnn.a -fopenmp -lm
 * (without -fopenmp when the library was built with OPENMP=0).  Every function returns an error code
 * (0 = FNN_OK) or a value; none calls exit() or abort(); fnn_last_error_detail() says what went wrong.
 *
 * A model file is what `model.save(path)` writes in Python (a safetensors file, docs/FORMAT.md).  A
 * loaded model is read-only: any number of threads may call fnn_model_predict on it at once, and it
 * gives the same bits as `Sequential.predict` in Python (both run the same engine).
 *
 * Example: predict two rows of a model file and print the outputs (for a classifier saved with a
 * cross-entropy loss, the class probabilities).
 *
 *     #include <stdio.h>
 *     #include <stdlib.h>
 *     #include "fastnn.h"
 *
 *     int main(int argc, char **argv) {
 *         fnn_model *m;
 *         int rc = fnn_model_load(argc > 1 ? argv[1] : "model.safetensors", &m);
 *         if (rc) {
 *             fprintf(stderr, "%s: %s\n", fnn_strerror(rc), fnn_last_error_detail());
 *             return 1;
 *         }
 *         size_t n_in = fnn_model_n_inputs(m), n_out = fnn_model_n_outputs(m), rows = 2;
 *         float *x = calloc(rows * n_in, sizeof *x), *y = malloc(rows * n_out * sizeof *y);
 *         for (size_t j = 0; j < n_in; j++) x[n_in + j] = 1.0f;   // row 0: zeros, row 1: ones
 *         rc = x && y ? fnn_model_predict(m, x, rows, y) : FNN_ERR_NOMEM;
 *         for (size_t i = 0; !rc && i < rows; i++)
 *             for (size_t j = 0; j < n_out; j++) printf("%.9g%c", y[i * n_out + j], j + 1 < n_out ? ' ' : '\n');
 *         if (rc) fprintf(stderr, "%s\n", fnn_strerror(rc));
 *         free(x);
 *         free(y);
 *         fnn_model_free(m);
 *         return rc != FNN_OK;
 *     }
 *
 * examples/embed/embed.c is a complete program (CSV or binary rows in, one line of outputs per row).
 *
 * Training runs the engine Python trains with, on the model's own parameters: fnn_model_fit on a file
 * saved from Python gives the weights that fnn.load + compile + fit give with the same options, bit
 * for bit.  Fine-tune the last layer of a classifier on new rows and save it:
 *
 *     fnn_train_options o;
 *     fnn_train_options_init(&o);                 // Python's defaults: SGD, batch 32, shuffled
 *     o.optimizer = "adam";                       // lr left at its default: Adam's 0.001
 *     o.seed = 42;                                // the shuffle (and dropout) of every epoch
 *     fnn_model_freeze(m, fnn_model_n_layers(m) - 1);   // all layers but the last
 *     double loss;
 *     for (int epoch = 0; epoch < 10; epoch++) {  // epoch by epoch = all epochs in one call
 *         if (fnn_model_fit(m, x, labels, NULL, rows, 1, &o, &loss)) break;   // int32 labels
 *         printf("epoch %d: loss %.4f\n", epoch + 1, loss);
 *     }
 *     fnn_model_save(m, "tuned.safetensors");    // atomic; fnn.load reads it
 *
 * examples/finetune/finetune.c is a complete program (a CSV of new rows in, a tuned model file out).
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>
#include <stdint.h>

#define FNN_VERSION_MAJOR 0
#define FNN_VERSION_MINOR 1
#define FNN_VERSION_PATCH 0
#define FNN_VERSION_STRING "0.1.0"

#if defined(_WIN32)
#  define FNN_API __declspec(dllexport)
#elif defined(__GNUC__)
#  define FNN_API __attribute__((visibility("default")))
#else
#  define FNN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- error codes ------------------------------------------------------- */
enum {
    FNN_OK = 0,
    FNN_ERR_NOMEM = 1,      /* an allocation failed */
    FNN_ERR_ARG = 2,        /* an argument is out of its domain */
    FNN_ERR_IO = 3,         /* the file could not be opened, read or written */
    FNN_ERR_FORMAT = 4,     /* the model file is malformed */
    FNN_ERR_UNSUPPORTED = 5,/* a valid file that this version cannot run */
    FNN_ERR_NONFINITE = 6,  /* NaN or Inf met where a finite number is required */
    FNN_ERR_BUSY = 7,       /* the model is being changed (fit, freeze) or read by another thread */
    FNN_ERR__COUNT
};
FNN_API const char *fnn_strerror(int code);

/* ---- runtime configuration -------------------------------------------- */
/* SIMD levels, lowest first. */
enum { FNN_SIMD_GENERIC = 0, FNN_SIMD_AVX2 = 1, FNN_SIMD_AVX512 = 2 };
FNN_API int  fnn_cpu_has_avx2(void);    /* AVX2 and FMA */
FNN_API int  fnn_cpu_has_avx512(void);  /* AVX-512 F, BW, DQ, VL */
FNN_API int  fnn_cpu_has_avx512_vnni(void); /* and VNNI: the int8 dot products */
FNN_API int  fnn_cpu_has_avx512_bf16(void); /* and BF16: the bfloat16 dot products */
FNN_API int  fnn_simd_level(void);      /* the level in use */
FNN_API int  fnn_simd_max(void);        /* the highest level this CPU runs */
FNN_API int  fnn_set_simd_level(int level); /* FNN_OK, or FNN_ERR_ARG if the CPU lacks it */
FNN_API const char *fnn_simd_name(int level);
FNN_API int  fnn_has_openmp(void);
FNN_API void fnn_set_num_threads(int n); /* n < 1 means the OpenMP default; above fnn_max_threads(), that */
FNN_API int  fnn_get_num_threads(void); /* the count, or fewer when this thread cannot start that many */
FNN_API int  fnn_max_threads(void);     /* the bound: 4 per processor available, at most 1024 */
/* Training steps (fnn_model_fit; Python's fit, train_on_batch, compute_gradients, predict, evaluate) run on the
 * count above or, while that is measured to be faster, on fewer (half, a quarter, ... down to 1): a
 * machine whose other processes take a core makes a thread wait for it at every step.  The results
 * are the same bits either way.  On (1) by default; 0 keeps every step at the count above.
 * fnn_model_predict and the kernels always run on the count above. */
FNN_API void fnn_set_adaptive_threads(int on);
FNN_API int  fnn_get_adaptive_threads(void);

/* ---- models (inference) ------------------------------------------------
 * Threads: any number of threads may call fnn_model_predict, fnn_model_evaluate and fnn_model_save on
 * one model at once.  fnn_model_fit, fnn_model_freeze and fnn_model_unfreeze change it: while one of
 * them runs, every other call on that model returns FNN_ERR_BUSY at once (it never waits, and never
 * reads a half-updated model), and they themselves return FNN_ERR_BUSY while another call uses it. */
typedef struct fnn_model fnn_model;
FNN_API int    fnn_model_load(const char *path, fnn_model **out);
FNN_API int    fnn_model_load_buffer(const void *data, size_t len, fnn_model **out);
FNN_API int    fnn_model_predict(const fnn_model *m, const float *x, size_t rows, float *out);
FNN_API size_t fnn_model_n_inputs(const fnn_model *m);
FNN_API size_t fnn_model_n_outputs(const fnn_model *m);
FNN_API size_t fnn_model_n_layers(const fnn_model *m);   /* Dropout and Activation layers included */
/* "dense", "dropout", "activation", "batch_norm" or "layer_norm" for layer i, NULL out of range. */
FNN_API const char *fnn_model_layer_type(const fnn_model *m, size_t i);
/* The model's loss ("cross_entropy", ...: the file's, or the last fnn_model_fit's); NULL if it has
 * none, or while another thread changes the model. */
FNN_API const char *fnn_model_loss(const fnn_model *m);
FNN_API void   fnn_model_free(fnn_model *m);
/* What the last failed fnn_model_* call on the calling thread found wrong, e.g. "tensor
 * \"layers.0.weight\": data_offsets end at 4096, past the 1024-byte data section" ("" after a
 * success).  Thread-local; valid until the thread's next fnn_model_* call. */
FNN_API const char *fnn_last_error_detail(void);

/* ---- training ------------------------------------------------------------
 * A loaded model becomes trainable on its first fnn_model_fit: the training net of the Python
 * engine is built over the model's parameters, with a gradient buffer and the optimizer's state
 * (momentum, Adam's moments) beside them, which later calls keep.  Each call checks all its arguments
 * first: on an error nothing in the model has changed.  The one failure after training started is
 * FNN_ERR_NONFINITE (the loss became NaN or Inf): the weights are then those of the last step whose
 * loss was finite, as in Python.
 *
 * The options and their defaults are Python's (Sequential.compile and fit, fastnn.optimizers).  A
 * field fnn_train_options_init leaves at NaN takes the chosen optimizer's own default, as the Python
 * class does: lr 0.01 for sgd and rmsprop, 0.001 for adam and adamw; weight_decay 0.01 for adamw,
 * 0 for the others.  The optimizer's state carries over from one fnn_model_fit to the next while the
 * optimizer, its number of state buffers (SGD with or without momentum) and the loss stay the same,
 * as when Python calls fit again without compile; a change starts it afresh, as compile does.  So
 * fit for 3 epochs, or 3 times for 1 epoch, gives the same bits: epoch e of the model's life (counted
 * over every call) is shuffled by the permutation of (seed, e), and dropout is keyed by (seed, step). */
typedef struct fnn_train_options {
    const char *loss;          /* "cross_entropy", "binary_cross_entropy", "mse", "mae", "huber";
                                * NULL (default): the model's (the file's, or the last fit's) */
    const char *optimizer;     /* "sgd" (default), "adam", "adamw", "rmsprop" */
    double lr, momentum, beta1, beta2, eps, weight_decay;   /* NaN, 0, 0.9, 0.999, 1e-8, NaN */
    int nesterov;              /* SGD: Nesterov momentum (needs momentum > 0); default 0 */
    size_t batch_size;         /* rows per step (the last batch of an epoch may be short); default 32 */
    int shuffle;               /* shuffle the rows every epoch; default 1 */
    uint64_t seed;             /* the shuffles and the dropout masks; default 0 (Python draws one) */
    double alpha;              /* RMSprop's smoothing constant; default 0.99 */
    int centered;              /* RMSprop: centered; default 0 */
    double huber_delta;        /* huber's delta; default NaN: the model file's, else 1.0 */
} fnn_train_options;
FNN_API void fnn_train_options_init(fnn_train_options *o);  /* the Python defaults */
/* Freeze layers [0, up_to) (all when up_to >= fnn_model_n_layers, e.g. SIZE_MAX); the others keep
 * their state.  Frozen parameters never change: no update, no decay, no momentum drift.  A file
 * saved from a model with frozen layers loads with them frozen. */
FNN_API int  fnn_model_freeze(fnn_model *m, size_t up_to);
FNN_API int  fnn_model_unfreeze(fnn_model *m);               /* every layer trainable */
/* Train for `epochs` epochs on rows x n_inputs float rows: with int32 class labels (cross_entropy:
 * one per row, in [0, n_outputs)) or with float targets (rows x n_outputs), never both.  float64
 * models take float rows and compute in float64.  *final_loss (if not NULL): the last epoch's mean
 * training loss, penalties included, as Python's history["loss"][-1]; NaN for 0 epochs.  Errors:
 * FNN_ERR_ARG (a NULL pointer, no rows, a label out of range, an unknown name, a hyperparameter out
 * of its domain), FNN_ERR_NONFINITE (NaN or Inf in x or the targets, or a loss that became NaN),
 * FNN_ERR_NOMEM, FNN_ERR_BUSY; fnn_last_error_detail() names the argument.  o: NULL = the defaults. */
FNN_API int  fnn_model_fit(fnn_model *m, const float *x, const int32_t *labels, const float *targets, size_t rows,
                           size_t epochs, const fnn_train_options *o, double *final_loss);
/* *loss = mean loss over the rows + the L1/L2 penalties, dropout off: Python's evaluate()["loss"],
 * bit for bit.  o: the loss (and huber delta) to use; NULL = the model's. */
FNN_API int  fnn_model_evaluate(const fnn_model *m, const float *x, const int32_t *labels, const float *targets,
                                size_t rows, const fnn_train_options *o, double *loss);
/* Write the model file atomically (a temporary file in the same directory, fsync, rename): `path`
 * holds the old file or the new one, never a torn one.  The bytes are those Python's model.save
 * writes for the same model (architecture with the current loss and frozen layers, weights, and the
 * extra metadata of the file the model came from). */
FNN_API int  fnn_model_save(const fnn_model *m, const char *path);

/* ---- kernels ------------------------------------------------------------
 * Row-major GEMM: C[m x n] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T.
 * A is m x k (k x m when trans_a), B is k x n (n x k when trans_b).  C is never read when beta == 0.
 * Bitwise identical results for any thread count. */
FNN_API void fnn_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k,
                       float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                       float beta, float *c, size_t ldc);
FNN_API void fnn_dgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k,
                       double alpha, const double *a, size_t lda, const double *b, size_t ldb,
                       double beta, double *c, size_t ldc);

#ifdef __cplusplus
}
#endif
#endif /* FASTNN_H */
