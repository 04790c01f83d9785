/* train_timer.c - times fnn_model_fit from C: epochs of a model file on raw rows, one call per epoch,
 * then saves the trained model.  Used by bench/bench_ctrain.py; prints one JSON object.
 *   cc -O2 bench/train_timer.c -Icsrc csrc/build/libfastnn.a -fopenmp -lm -o train_timer
 *   ./train_timer MODEL X.f32 Y.i32 ROWS THREADS EPOCHS BATCH OUT
 * SGD lr 0.01 momentum 0.9 (the training benchmark's optimizer), shuffled with seed 0.  Each epoch's
 * wall and process CPU seconds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fastnn.h"
#include "timer_util.h"

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s MODEL X.f32 Y.i32 ROWS THREADS EPOCHS BATCH OUT\n", argv[0]);
        return 2;
    }
    fnn_model *m = NULL;
    int rc = fnn_model_load(argv[1], &m);
    if (rc) {
        fprintf(stderr, "%s: %s\n", argv[1], fnn_last_error_detail());
        return 1;
    }
    size_t rows = strtoull(argv[4], NULL, 10), epochs = strtoull(argv[6], NULL, 10);
    fnn_set_num_threads(atoi(argv[5]));
    float *x = slurp(argv[2], rows * fnn_model_n_inputs(m) * sizeof(float));
    int32_t *y = slurp(argv[3], rows * sizeof(int32_t));
    if (!x || !y) {
        fprintf(stderr, "cannot read the data\n");
        return 1;
    }
    fnn_train_options o = bench_sgd(strtoull(argv[7], NULL, 10));
    double *wall = calloc(epochs, sizeof *wall), *cpu = calloc(epochs, sizeof *cpu);
    for (size_t e = 0; e < epochs && !rc && wall && cpu; e++) {
        double loss, t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        rc = fnn_model_fit(m, x, y, NULL, rows, 1, &o, &loss);
        wall[e] = now(CLOCK_MONOTONIC) - t0;
        cpu[e] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    printf("{\"seconds\": [");
    for (size_t e = 0; e < epochs; e++) printf("%s%.6f", e ? ", " : "", wall ? wall[e] : 0);
    printf("], \"cpu_seconds\": [");
    for (size_t e = 0; e < epochs; e++) printf("%s%.6f", e ? ", " : "", cpu ? cpu[e] : 0);
    printf("]}\n");
    free(wall);
    free(cpu);
    if (!rc) rc = fnn_model_save(m, argv[8]);
    if (rc) fprintf(stderr, "%s: %s\n", fnn_strerror(rc), fnn_last_error_detail());
    fnn_model_free(m);
    free(x);
    free(y);
    return rc != 0;
}
