/* timer_util.h - what the C timers of bench/ share: a clock in seconds, a whole file read into memory
 * and the training benchmark's optimizer.  Included by train_timer.c and step_ab.c, each built as one
 * file. */
#ifndef FNN_BENCH_TIMER_UTIL_H
#define FNN_BENCH_TIMER_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fastnn.h"

static double now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The first `bytes` of the file at path in a malloc'd buffer, or NULL. */
static void *slurp(const char *path, size_t bytes) {
    FILE *fp = fopen(path, "rb");
    void *p = fp ? malloc(bytes) : NULL;
    if (p && fread(p, 1, bytes, fp) != bytes) {
        free(p);
        p = NULL;
    }
    if (fp) fclose(fp);
    return p;
}

/* The training benchmark's optimizer (fastnn.benchmark): SGD lr 0.01 momentum 0.9, `batch` rows a step. */
static fnn_train_options bench_sgd(size_t batch) {
    fnn_train_options o;
    fnn_train_options_init(&o);
    o.lr = 0.01;
    o.momentum = 0.9;
    o.batch_size = batch;
    return o;
}

#endif
