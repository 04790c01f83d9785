/* predict_timer.c - times fnn_model_predict from C: the median latency of one row over many calls,
 * and the throughput of 1024-row batches.  Used by bench/bench_infer.py; prints one JSON object.
 *   cc -O2 bench/predict_timer.c -Icsrc csrc/build/libfastnn.a -fopenmp -lm -o predict_timer
 *   ./predict_timer model.safetensors THREADS [cpu]
 * With "cpu", the batch throughput is timed in the process's CPU time (CLOCK_PROCESS_CPUTIME_ID): on a
 * shared machine, what the work costs rather than how long it waited for a core.  Latencies are
 * always wall-clock medians. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fastnn.h"

static clockid_t clock_id = CLOCK_MONOTONIC; /* of the throughput */

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double busy(void) { return clock_s(clock_id); }

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL THREADS\n", argv[0]); return 2; }
    fnn_model *m = NULL;
    int rc = fnn_model_load(argv[1], &m);
    if (rc) { fprintf(stderr, "%s: %s\n", argv[1], fnn_strerror(rc)); return 1; }
    fnn_set_num_threads(atoi(argv[2]));
    if (argc > 3 && argv[3][0] == 'c') clock_id = CLOCK_PROCESS_CPUTIME_ID;
    size_t nin = fnn_model_n_inputs(m), nout = fnn_model_n_outputs(m), big = 1024;
    float *x = malloc(big * nin * sizeof *x), *y = malloc(big * nout * sizeof *y);
    if (!x || !y) return 1;
    srand(1);
    for (size_t i = 0; i < big * nin; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    enum { CALLS = 5000 };
    static double lat[CALLS];
    for (int i = 0; i < 200; i++) fnn_model_predict(m, x, 1, y);
    for (int i = 0; i < CALLS; i++) {
        double t0 = now();
        fnn_model_predict(m, x, 1, y);
        lat[i] = now() - t0;
    }
    qsort(lat, CALLS, sizeof *lat, cmp);
    double rates[5];
    for (int r = 0; r < 5; r++) {
        double t0 = busy();
        int n = 0;
        while (busy() - t0 < 0.1) { fnn_model_predict(m, x, big, y); n++; }
        rates[r] = (double)n * (double)big / (busy() - t0);
    }
    qsort(rates, 5, sizeof *rates, cmp);
    printf("{\"latency_us\": %.3f, \"b1024_samples_s\": %.1f}\n", lat[CALLS / 2] * 1e6, rates[2]);
    fnn_model_free(m);
    free(x);
    free(y);
    return 0;
}
