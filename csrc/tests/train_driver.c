/* train_driver.c - the C training API driven from the command line, for tests/test_ctrain.py: load a
 * model, optionally freeze, fit on raw float32 rows with int32 labels or float32 targets, evaluate,
 * save.  Prints one JSON object: {"loss": <last epoch's loss>, "eval": <loss after training>,
 * "eval_other": <the same with --eval-loss's loss, when given>}.
 *
 *   train_driver MODEL OUT --x X.f32 --rows N (--labels Y.i32 | --targets Y.f32) [--epochs E]
 *                [--calls C] [--loss NAME] [--optimizer NAME] [--lr V] [--momentum V] [--nesterov]
 *                [--beta1 V] [--beta2 V] [--eps V] [--weight-decay V] [--alpha V] [--centered]
 *                [--huber-delta V] [--batch B] [--no-shuffle] [--seed S] [--threads T] [--freeze K]
 *                [--eval-loss NAME]
 *
 * --calls C runs the E epochs as C calls of E/C epochs each (the state carries over: same bits);
 * --epochs 0 fits nothing (a model that cannot train, such as a quantized one, is evaluated and saved).
 *   train_driver MODEL OUT --resave      load and save only (what the writer makes of a file)
 * Exit status 0, 1 on an API error (its code and detail on stderr), 2 on a usage error.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"

static void *read_all(const char *path, size_t want) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    void *buf = malloc(want ? want : 1);
    size_t got = buf ? fread(buf, 1, want, fp) : 0;
    fclose(fp);
    if (got != want) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int api_error(const char *what, int rc) {
    fprintf(stderr, "%s: %s: %s\n", what, fnn_strerror(rc), fnn_last_error_detail());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *model_path = argv[1], *out_path = argv[2], *xp = NULL, *lp = NULL, *tp = NULL, *eval_loss = NULL;
    if (argc == 4 && strcmp(argv[3], "--resave") == 0) {
        fnn_model *m = NULL;
        int rc = fnn_model_load(model_path, &m);
        if (!rc) rc = fnn_model_save(m, out_path);
        fnn_model_free(m);
        return rc ? api_error("resave", rc) : 0;
    }
    size_t rows = 0, epochs = 1, calls = 1, freeze = 0;
    int threads = 0, do_freeze = 0;
    fnn_train_options o;
    fnn_train_options_init(&o);
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
        if (OPT("--x")) xp = v;
        else if (OPT("--rows")) rows = strtoull(v, NULL, 10);
        else if (OPT("--labels")) lp = v;
        else if (OPT("--targets")) tp = v;
        else if (OPT("--epochs")) epochs = strtoull(v, NULL, 10);
        else if (OPT("--calls")) calls = strtoull(v, NULL, 10);
        else if (OPT("--loss")) o.loss = v;
        else if (OPT("--eval-loss")) eval_loss = v;
        else if (OPT("--optimizer")) o.optimizer = v;
        else if (OPT("--lr")) o.lr = strtod(v, NULL);
        else if (OPT("--momentum")) o.momentum = strtod(v, NULL);
        else if (OPT("--beta1")) o.beta1 = strtod(v, NULL);
        else if (OPT("--beta2")) o.beta2 = strtod(v, NULL);
        else if (OPT("--eps")) o.eps = strtod(v, NULL);
        else if (OPT("--weight-decay")) o.weight_decay = strtod(v, NULL);
        else if (OPT("--alpha")) o.alpha = strtod(v, NULL);
        else if (OPT("--huber-delta")) o.huber_delta = strtod(v, NULL);
        else if (OPT("--batch")) o.batch_size = strtoull(v, NULL, 10);
        else if (OPT("--seed")) o.seed = strtoull(v, NULL, 10);
        else if (OPT("--threads")) threads = atoi(v);
        else if (OPT("--freeze")) {
            freeze = strtoull(v, NULL, 10);
            do_freeze = 1;
        } else if (strcmp(a, "--nesterov") == 0) o.nesterov = 1;
        else if (strcmp(a, "--centered") == 0) o.centered = 1;
        else if (strcmp(a, "--no-shuffle") == 0) o.shuffle = 0;
        else {
            fprintf(stderr, "train_driver: bad argument %s\n", a);
            return 2;
        }
#undef OPT
    }
    if (!xp || !rows || (!lp == !tp) || !calls || epochs % calls) return 2;
    if (threads) fnn_set_num_threads(threads);
    fnn_model *m = NULL;
    int rc = fnn_model_load(model_path, &m);
    if (rc) return api_error("load", rc);
    const size_t ni = fnn_model_n_inputs(m), no = fnn_model_n_outputs(m);
    float *x = read_all(xp, rows * ni * sizeof(float)), *t = tp ? read_all(tp, rows * no * sizeof(float)) : NULL;
    int32_t *y = lp ? read_all(lp, rows * sizeof(int32_t)) : NULL;
    int status = 0;
    double loss = 0, eval = 0, eval_other = 0;
    if (!x || (lp && !y) || (tp && !t)) {
        fprintf(stderr, "train_driver: cannot read the data (%s)\n", strerror(errno));
        status = 2;
    } else if (do_freeze && (rc = fnn_model_freeze(m, freeze))) {
        status = api_error("freeze", rc);
    } else {
        for (size_t c = 0; c < calls && epochs && !status; c++)
            if ((rc = fnn_model_fit(m, x, y, t, rows, epochs / calls, &o, &loss))) status = api_error("fit", rc);
        if (!status && (rc = fnn_model_evaluate(m, x, y, t, rows, &o, &eval))) status = api_error("evaluate", rc);
        if (!status && (rc = fnn_model_save(m, out_path))) status = api_error("save", rc);
        fnn_train_options other = o;
        other.loss = eval_loss;
        if (!status && eval_loss && (rc = fnn_model_evaluate(m, x, y, t, rows, &other, &eval_other)))
            status = api_error("evaluate", rc);
    }
    if (!status) printf("{\"loss\": %.17g, \"eval\": %.17g, \"eval_other\": %.17g}\n", loss, eval, eval_other);
    free(x);
    free(y);
    free(t);
    fnn_model_free(m);
    return status;
}
