/* step_ab.c - two thread settings of training compared in one process, on a host whose speed drifts.
 *
 * Separate processes timed minutes apart disagree by 15% or more on a shared VM; here slices of SLICE
 * rows of one model's training alternate between setting A and setting B (A B, then B A, ...), so that
 * a drift falls on both alike.  A setting is a thread count and the governor on or off
 * (fnn_set_adaptive_threads).  The bits do not depend on either, so the model trains as one run would.
 *   make -C csrc && cc -O2 bench/step_ab.c -Icsrc csrc/build/libfastnn.a -fopenmp -lm -o step_ab
 *   ./step_ab MODEL X.f32 Y.i32 ROWS BATCH SLICE REPS A_THREADS A_ADAPTIVE B_THREADS B_ADAPTIVE
 * MODEL, X.f32 (ROWS x inputs, float32) and Y.i32 (ROWS int32 labels) as bench/train_timer.c reads them
 * (bench/bench_ctrain.py writes such files).  SGD lr 0.01 momentum 0.9, each slice shuffled as fit shuffles
 * an epoch; the first two rounds are not timed.  Prints each setting's median, lower quartile and fastest step time in
 * microseconds, and B's median over A's; e.g. `... 20000 128 1280 40 1 0 2 0` is the 2-thread step over
 * the 1-thread one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fastnn.h"
#include "timer_util.h"

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 12) {
        fprintf(stderr, "usage: %s MODEL X.f32 Y.i32 ROWS BATCH SLICE REPS A_THREADS A_ADAPTIVE B_THREADS B_ADAPTIVE\n",
                argv[0]);
        return 2;
    }
    fnn_model *m = NULL;
    if (fnn_model_load(argv[1], &m)) {
        fprintf(stderr, "%s: %s\n", argv[1], fnn_last_error_detail());
        return 1;
    }
    const size_t rows = strtoull(argv[4], NULL, 10), batch = strtoull(argv[5], NULL, 10);
    const size_t slice = strtoull(argv[6], NULL, 10), reps = strtoull(argv[7], NULL, 10);
    const int threads[2] = {atoi(argv[8]), atoi(argv[10])}, adaptive[2] = {atoi(argv[9]), atoi(argv[11])};
    const size_t ni = fnn_model_n_inputs(m);
    float *x = slurp(argv[2], rows * ni * sizeof(float));
    int32_t *y = slurp(argv[3], rows * sizeof(int32_t));
    double *t = calloc(2 * reps + 2, sizeof *t);
    if (!x || !y || !t || batch == 0 || slice < batch || slice > rows || reps == 0) {
        fprintf(stderr, "cannot read the data, or BATCH <= SLICE <= ROWS and REPS > 0 do not hold\n");
        return 1;
    }
    fnn_train_options o = bench_sgd(batch);
    size_t off = 0;
    int rc = 0;
    for (size_t r = 0; r < reps + 2 && !rc; r++)
        for (int k = 0; k < 2 && !rc; k++) {
            const int s = r % 2 ? 1 - k : k; /* A B, then B A */
            fnn_set_num_threads(threads[s]);
            fnn_set_adaptive_threads(adaptive[s]);
            if (off + slice > rows) off = 0;
            double loss, t0 = now(CLOCK_MONOTONIC);
            rc = fnn_model_fit(m, x + off * ni, y + off, NULL, slice, 1, &o, &loss);
            if (r >= 2) t[s * reps + r - 2] = (now(CLOCK_MONOTONIC) - t0) / ((double)slice / (double)batch) * 1e6;
            off += slice;
        }
    if (rc) {
        fprintf(stderr, "%s: %s\n", fnn_strerror(rc), fnn_last_error_detail());
        return 1;
    }
    double med[2];
    for (int s = 0; s < 2; s++) {
        double *v = t + s * reps;
        qsort(v, reps, sizeof *v, by_value);
        med[s] = v[reps / 2];
        printf("%c: %d thread(s), governor %s: step median %.1f us, lower quartile %.1f, fastest %.1f\n", 'A' + s,
               threads[s], adaptive[s] ? "on" : "off", med[s], v[reps / 4], v[0]);
    }
    printf("B / A (medians): %.3f\n", med[1] / med[0]);
    fnn_model_free(m);
    free(x);
    free(y);
    free(t);
    return 0;
}
