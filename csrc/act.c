/* act.c - PLACEHOLDER (linear only) until the activation kernels land. */
#include "fnn_impl.h"
#include <string.h>
void fnn_sact_forward(int act, float alpha, const float *x, float *y, size_t rows, size_t cols, int nt) {
    (void)act; (void)alpha; (void)nt; if (x != y) memmove(y, x, rows * cols * sizeof *y);
}
void fnn_dact_forward(int act, double alpha, const double *x, double *y, size_t rows, size_t cols, int nt) {
    (void)act; (void)alpha; (void)nt; if (x != y) memmove(y, x, rows * cols * sizeof *y);
}
