/* embed.c - run a fastnn model file from plain C: load it, predict rows, print the outputs.
 *
 *   embed MODEL [INPUT]            INPUT: CSV, one row per line, n_inputs numbers separated by
 *                                  commas (or spaces/tabs); blank lines and lines starting with '#'
 *                                  are skipped; "-" or no INPUT reads standard input
 *   embed --binary MODEL INPUT     INPUT: raw float32 little-endian rows, n_inputs values each
 *   --threads N                    threads for the kernels (default: OMP_NUM_THREADS or all cores)
 *
 * Prints one line per row: the model's outputs (probabilities for a classifier saved with a
 * cross-entropy loss), comma-separated, with %.9g so that every float32 reads back exactly.
 * Rows are predicted 256 at a time.  Exit status 0, 1 on a usage or data error, 2 if the model
 * cannot be loaded.  Build: see the Makefile beside this file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"

#define BATCH 256

static int usage(void) {
    fprintf(stderr, "usage: embed [--threads N] [--binary] MODEL [INPUT]\n");
    return 1;
}

static void print_rows(const float *out, size_t rows, size_t n_out) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < n_out; j++) printf("%.9g%c", out[i * n_out + j], j + 1 < n_out ? ',' : '\n');
}

static int flush_batch(const fnn_model *m, const float *x, size_t rows, float *out) {
    int rc = fnn_model_predict(m, x, rows, out);
    if (rc) {
        fprintf(stderr, "embed: predict failed: %s (%s)\n", fnn_strerror(rc), fnn_last_error_detail());
        return 1;
    }
    print_rows(out, rows, fnn_model_n_outputs(m));
    return 0;
}

/* Read one line of any length into *buf (grown as needed); 0 at end of file. */
static int read_line(FILE *fp, char **buf, size_t *cap) {
    size_t len = 0;
    for (;;) {
        if (*cap - len < 2) {
            size_t ncap = *cap ? 2 * *cap : 4096;
            char *nb = realloc(*buf, ncap);
            if (!nb) return -1;
            *buf = nb;
            *cap = ncap;
        }
        if (!fgets(*buf + len, (int)(*cap - len), fp)) return len > 0;
        len += strlen(*buf + len);
        if (len && (*buf)[len - 1] == '\n') return 1;
    }
}

static int run_csv(const fnn_model *m, FILE *fp, float *x, float *out) {
    const size_t n_in = fnn_model_n_inputs(m);
    char *line = NULL;
    size_t cap = 0, rows = 0, lineno = 0;
    int rc = 0, got;
    while (rc == 0 && (got = read_line(fp, &line, &cap)) > 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '\r' || *p == '\0' || *p == '#') continue;
        for (size_t j = 0; j < n_in; j++) {
            while (*p == ' ' || *p == '\t' || (j > 0 && *p == ',')) p++;
            char *end;
            errno = 0;
            double v = strtod(p, &end);
            if (end == p) {
                fprintf(stderr, "embed: line %zu: expected %zu numbers, found %zu\n", lineno, n_in, j);
                rc = 1;
                break;
            }
            x[rows * n_in + j] = (float)v;
            p = end;
        }
        if (rc) break;
        while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r' || *p == '\n') p++;
        if (*p) {
            fprintf(stderr, "embed: line %zu: more than %zu values\n", lineno, n_in);
            rc = 1;
            break;
        }
        if (++rows == BATCH) {
            rc = flush_batch(m, x, rows, out);
            rows = 0;
        }
    }
    if (got < 0) {
        fprintf(stderr, "embed: out of memory\n");
        rc = 1;
    }
    if (rc == 0 && rows) rc = flush_batch(m, x, rows, out);
    free(line);
    return rc;
}

static int run_binary(const fnn_model *m, FILE *fp, float *x, float *out) {
    const size_t n_in = fnn_model_n_inputs(m);
    for (;;) {
        size_t got = fread(x, sizeof(float), BATCH * n_in, fp);
        if (got % n_in) {
            fprintf(stderr, "embed: the input ends inside a row (%zu values left over)\n", got % n_in);
            return 1;
        }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        for (size_t i = 0; i < got; i++) { /* the file is little-endian */
            unsigned char *b = (unsigned char *)&x[i], t;
            t = b[0]; b[0] = b[3]; b[3] = t;
            t = b[1]; b[1] = b[2]; b[2] = t;
        }
#endif
        if (got && flush_batch(m, x, got / n_in, out)) return 1;
        if (got < BATCH * n_in) break;
    }
    if (ferror(fp)) {
        fprintf(stderr, "embed: read error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int binary = 0, a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
        if (strcmp(argv[a], "--binary") == 0) binary = 1;
        else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc) fnn_set_num_threads(atoi(argv[++a]));
        else return usage();
    }
    if (a >= argc || argc - a > 2) return usage();
    const char *model_path = argv[a], *input = a + 1 < argc ? argv[a + 1] : "-";

    fnn_model *m;
    int rc = fnn_model_load(model_path, &m);
    if (rc) {
        fprintf(stderr, "embed: cannot load %s: %s: %s\n", model_path, fnn_strerror(rc), fnn_last_error_detail());
        return 2;
    }
    FILE *fp = strcmp(input, "-") == 0 ? stdin : fopen(input, binary ? "rb" : "r");
    float *x = malloc(BATCH * fnn_model_n_inputs(m) * sizeof *x);
    float *out = malloc(BATCH * fnn_model_n_outputs(m) * sizeof *out);
    if (!fp) {
        fprintf(stderr, "embed: cannot open %s: %s\n", input, strerror(errno));
        rc = 1;
    } else if (!x || !out) {
        fprintf(stderr, "embed: out of memory\n");
        rc = 1;
    } else {
        rc = binary ? run_binary(m, fp, x, out) : run_csv(m, fp, x, out);
    }
    if (fp && fp != stdin) fclose(fp);
    free(x);
    free(out);
    fnn_model_free(m);
    return rc;
}
