/* finetune.c - fine-tune a pretrained fastnn model on new rows from plain C: load it, freeze every
 * layer below the last Dense layer, train that layer on a CSV, print the loss per epoch, save.
 *
 *   finetune [options] PRETRAINED NEW.csv OUT
 *     --epochs N        epochs over the new rows (default 10)
 *     --optimizer NAME  sgd, adam, adamw, rmsprop (default adam)
 *     --lr X            learning rate (default: the optimizer's own, as in Python)
 *     --batch N         rows per step (default 32)
 *     --seed S          the shuffles (and dropout) of training (default 0)
 *     --all             train every layer, not only the last Dense one
 *     --threads N       threads for the kernels (default: OMP_NUM_THREADS or all cores)
 *
 * NEW.csv: one row per line, the model's n_inputs numbers and then the target: for a model saved
 * with the cross-entropy loss, a class index in [0, n_outputs); for the other losses, n_outputs
 * numbers.  Commas, spaces or tabs separate them; blank lines, lines starting with '#' and a header
 * line (a first line that does not start with a number) are skipped.
 *
 * Prints the loss (and for a classifier the accuracy) before training, the training loss of every
 * epoch, the loss after, and saves the tuned model atomically: OUT is a model file that fastnn.load,
 * fnn_model_load and examples/embed read.  Exit status 0, 1 on a data or training error, 2 if the
 * model cannot be loaded or saved.  Build: see the Makefile beside this file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"

static int usage(void) {
    fprintf(stderr, "usage: finetune [--epochs N] [--optimizer NAME] [--lr X] [--batch N] [--seed S] [--all] "
                    "[--threads N] PRETRAINED NEW.csv OUT\n");
    return 1;
}

/* The rows of a CSV: features (float) and either int32 class labels or float targets. */
typedef struct {
    size_t rows, cap;
    float *x, *targets;
    int32_t *labels;
} dataset;

/* Read one line of any length into *buf (grown as needed); 0 at end of file, -1 out of memory. */
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

static int grow(dataset *d, size_t n_in, size_t n_tgt, int classes) {
    if (d->rows < d->cap) return 0;
    size_t cap = d->cap ? 2 * d->cap : 1024;
    float *x = realloc(d->x, cap * n_in * sizeof *x);
    if (x) d->x = x;
    void *t = classes ? realloc(d->labels, cap * sizeof *d->labels) : realloc(d->targets, cap * n_tgt * sizeof(float));
    if (t && classes) d->labels = t;
    else if (t) d->targets = t;
    if (!x || !t) return -1;
    d->cap = cap;
    return 0;
}

/* n_in features then the target(s) of each line; 0, or 1 with a message. */
static int read_csv(const char *path, size_t n_in, size_t n_out, int classes, dataset *d) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "finetune: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    const size_t n_tgt = classes ? 1 : n_out, width = n_in + n_tgt;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    int rc = 0, got;
    while (rc == 0 && (got = read_line(fp, &line, &cap)) > 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '\r' || *p == '\0' || *p == '#') continue;
        char *end;
        strtod(p, &end);
        if (end == p && d->rows == 0) continue; /* a header */
        if (grow(d, n_in, n_tgt, classes)) {
            fprintf(stderr, "finetune: out of memory\n");
            rc = 1;
            break;
        }
        for (size_t j = 0; j < width && !rc; j++) {
            while (*p == ' ' || *p == '\t' || (j > 0 && *p == ',')) p++;
            double v = strtod(p, &end);
            if (end == p) {
                fprintf(stderr, "finetune: %s line %zu: expected %zu numbers (%zu features, %s), found %zu\n", path,
                        lineno, width, n_in, classes ? "a class" : "the targets", j);
                rc = 1;
            } else if (j < n_in) {
                d->x[d->rows * n_in + j] = (float)v;
            } else if (classes) {
                if (!(v >= -2147483648.0 && v <= 2147483647.0) || v != (double)(long long)v) {
                    fprintf(stderr, "finetune: %s line %zu: the class %.*s is not a whole number\n", path, lineno,
                            (int)(end - p), p);
                    rc = 1;
                } else {
                    d->labels[d->rows] = (int32_t)v; /* fnn_model_fit checks that it names a class */
                }
            } else {
                d->targets[d->rows * n_tgt + j - n_in] = (float)v;
            }
            p = end;
        }
        while (!rc && (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r' || *p == '\n')) p++;
        if (!rc && *p) {
            fprintf(stderr, "finetune: %s line %zu: more than %zu values\n", path, lineno, width);
            rc = 1;
        }
        d->rows++;
    }
    if (got < 0) {
        fprintf(stderr, "finetune: out of memory\n");
        rc = 1;
    }
    if (!rc && d->rows == 0) {
        fprintf(stderr, "finetune: %s has no rows\n", path);
        rc = 1;
    }
    free(line);
    fclose(fp);
    return rc;
}

/* The fraction of rows whose most probable class is their label. */
static double accuracy(const fnn_model *m, const dataset *d) {
    const size_t n_out = fnn_model_n_outputs(m);
    float *p = malloc(d->rows * n_out * sizeof *p);
    size_t right = 0;
    if (!p || fnn_model_predict(m, d->x, d->rows, p)) {
        free(p);
        return -1;
    }
    for (size_t i = 0; i < d->rows; i++) {
        size_t best = 0;
        for (size_t j = 1; j < n_out; j++)
            if (p[i * n_out + j] > p[i * n_out + best]) best = j;
        right += best == (size_t)d->labels[i];
    }
    free(p);
    return (double)right / (double)d->rows;
}

static void report(const char *when, const fnn_model *m, const dataset *d, const fnn_train_options *o) {
    double loss;
    int rc = fnn_model_evaluate(m, d->x, d->labels, d->targets, d->rows, o, &loss);
    if (rc) {
        fprintf(stderr, "finetune: evaluate: %s: %s\n", fnn_strerror(rc), fnn_last_error_detail());
        return;
    }
    printf("%s: loss %.4f", when, loss);
    if (d->labels) printf(", accuracy %.4f", accuracy(m, d));
    printf("\n");
}

int main(int argc, char **argv) {
    fnn_train_options o;
    fnn_train_options_init(&o);
    o.optimizer = "adam";
    size_t epochs = 10;
    int all = 0, a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
        const char *opt = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (strcmp(opt, "--all") == 0) all = 1;
        else if (!v) return usage();
        else if (strcmp(opt, "--epochs") == 0) epochs = strtoull(v, NULL, 10), a++;
        else if (strcmp(opt, "--optimizer") == 0) o.optimizer = v, a++;
        else if (strcmp(opt, "--lr") == 0) o.lr = strtod(v, NULL), a++;
        else if (strcmp(opt, "--batch") == 0) o.batch_size = strtoull(v, NULL, 10), a++;
        else if (strcmp(opt, "--seed") == 0) o.seed = strtoull(v, NULL, 10), a++;
        else if (strcmp(opt, "--threads") == 0) fnn_set_num_threads(atoi(v)), a++;
        else return usage();
    }
    if (argc - a != 3) return usage();
    const char *pretrained = argv[a], *csv = argv[a + 1], *out = argv[a + 2];

    fnn_model *m;
    int rc = fnn_model_load(pretrained, &m);
    if (rc) {
        fprintf(stderr, "finetune: cannot load %s: %s: %s\n", pretrained, fnn_strerror(rc), fnn_last_error_detail());
        return 2;
    }
    const char *loss = fnn_model_loss(m);
    const int classes = loss && strcmp(loss, "cross_entropy") == 0;
    size_t last = fnn_model_n_layers(m); /* the last Dense layer: the one to train */
    while (last > 0 && strcmp(fnn_model_layer_type(m, last - 1), "dense") != 0) last--;
    printf("%s: %zu inputs, %zu outputs, %zu layers, loss %s; training %s\n", pretrained, fnn_model_n_inputs(m),
           fnn_model_n_outputs(m), fnn_model_n_layers(m), loss ? loss : "none", all ? "every layer" : "the last dense layer");

    dataset d = {0};
    int status = read_csv(csv, fnn_model_n_inputs(m), fnn_model_n_outputs(m), classes, &d);
    if (!status && !loss) {
        fprintf(stderr, "finetune: %s was saved without a loss: compile it in Python first\n", pretrained);
        status = 1;
    }
    if (!status && !all && last > 0 && (rc = fnn_model_freeze(m, last - 1))) {
        fprintf(stderr, "finetune: freeze: %s: %s\n", fnn_strerror(rc), fnn_last_error_detail());
        status = 1;
    }
    if (!status) {
        printf("%zu rows from %s\n", d.rows, csv);
        report("before", m, &d, &o);
        for (size_t e = 0; e < epochs && !status; e++) { /* one call per epoch: the same bits as one call */
            double epoch_loss;
            rc = fnn_model_fit(m, d.x, d.labels, d.targets, d.rows, 1, &o, &epoch_loss);
            if (rc) {
                fprintf(stderr, "finetune: fit: %s: %s\n", fnn_strerror(rc), fnn_last_error_detail());
                status = 1;
            } else {
                printf("epoch %zu/%zu: loss %.4f\n", e + 1, epochs, epoch_loss);
            }
        }
    }
    if (!status) {
        report("after", m, &d, &o);
        if ((rc = fnn_model_save(m, out))) {
            fprintf(stderr, "finetune: cannot save: %s: %s\n", fnn_strerror(rc), fnn_last_error_detail());
            status = 2;
        } else {
            printf("saved %s\n", out);
        }
    }
    free(d.x);
    free(d.labels);
    free(d.targets);
    fnn_model_free(m);
    return status;
}
