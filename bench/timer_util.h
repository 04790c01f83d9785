/* timer_util.h - what the C timers of bench/ share: a clock in seconds and a whole file read into
 * memory.  Included by train_timer.c and step_ab.c, each built as one file. */
#ifndef FNN_BENCH_TIMER_UTIL_H
#define FNN_BENCH_TIMER_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

#endif
