/* fastnn.h - the one public header of the fastnn C library: run a model trained in Python from C.
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
    FNN_ERR__COUNT
};
FNN_API const char *fnn_strerror(int code);

/* ---- runtime configuration -------------------------------------------- */
/* SIMD levels, lowest first. */
enum { FNN_SIMD_GENERIC = 0, FNN_SIMD_AVX2 = 1, FNN_SIMD_AVX512 = 2 };
FNN_API int  fnn_cpu_has_avx2(void);    /* AVX2 and FMA */
FNN_API int  fnn_cpu_has_avx512(void);  /* AVX-512 F, BW, DQ, VL */
FNN_API int  fnn_simd_level(void);      /* the level in use */
FNN_API int  fnn_simd_max(void);        /* the highest level this CPU runs */
FNN_API int  fnn_set_simd_level(int level); /* FNN_OK, or FNN_ERR_ARG if the CPU lacks it */
FNN_API const char *fnn_simd_name(int level);
FNN_API int  fnn_has_openmp(void);
FNN_API void fnn_set_num_threads(int n); /* n < 1 means the OpenMP default; above fnn_max_threads(), that */
FNN_API int  fnn_get_num_threads(void); /* the count, or fewer when this thread cannot start that many */
FNN_API int  fnn_max_threads(void);     /* the bound: 4 per processor available, at most 1024 */

/* ---- models (inference) ------------------------------------------------ */
typedef struct fnn_model fnn_model;
FNN_API int    fnn_model_load(const char *path, fnn_model **out);
FNN_API int    fnn_model_load_buffer(const void *data, size_t len, fnn_model **out);
FNN_API int    fnn_model_predict(const fnn_model *m, const float *x, size_t rows, float *out);
FNN_API size_t fnn_model_n_inputs(const fnn_model *m);
FNN_API size_t fnn_model_n_outputs(const fnn_model *m);
FNN_API void   fnn_model_free(fnn_model *m);
/* What the last failed fnn_model_* call on the calling thread found wrong, e.g. "tensor
 * \"layers.0.weight\": data_offsets end at 4096, past the 1024-byte data section" ("" after a
 * success).  Thread-local; valid until the thread's next fnn_model_* call. */
FNN_API const char *fnn_last_error_detail(void);

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
