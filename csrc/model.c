/* model.c - the C inference API of fastnn.h: predict with a model loaded by io.c, query, free.
 *
 * Threads: a loaded model is read-only, so any number of threads may call fnn_model_predict on
 * it at once.  Each call works in its own scratch memory: on the stack when it is small (one row of
 * a small network: no allocation at all), else in a per-calling-thread buffer that only grows (as
 * the GEMM's packing buffers do), so a service predicting batches of the same size allocates
 * nothing after its first call.  Rows go through the network FNN_MODEL_CHUNK at a time; each row's
 * result does not depend on the others or on the chunking, nor on the thread count.
 * Errors: each fnn_model_* call sets this thread's detail text (fnn_last_error_detail).
 */
#include "io.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNN_MODEL_CHUNK 1024                 /* rows per pass, at most */
#define FNN_MODEL_WS_MAX ((size_t)32 << 20)  /* bytes of scratch a pass aims to stay under */
#define FNN_MODEL_STACK 16384                /* bytes of scratch taken on the stack */

/* ---- error detail ------------------------------------------------------------------------------ */

static _Thread_local char last_detail[512];

void fnn_io_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_detail, sizeof last_detail, fmt, ap);
    va_end(ap);
}

void fnn_io_clear_error(void) { last_detail[0] = '\0'; }

const char *fnn_last_error_detail(void) { return last_detail; }

/* ---- forward, per dtype ----------------------------------------------------------------------- */

#define FNN_T float
#define FNN_P s
#include "model_t.h"
#undef FNN_T
#undef FNN_P

#define FNN_T double
#define FNN_P d
#include "model_t.h"
#undef FNN_T
#undef FNN_P

/* Rows per pass and the scratch bytes of one pass: two ping-pong buffers of max_width values per
 * row, plus the converted inputs (n_in doubles per row) when a float64 model takes float rows. */
static size_t model_chunk(const fnn_model *m, size_t rows, int convert, size_t *bytes) {
    size_t per_row = 2 * m->max_width + (convert ? m->n_in : 0); /* widths <= 2^31: no overflow */
    per_row *= (size_t)m->dtype;
    size_t chunk = FNN_MODEL_WS_MAX / per_row;
    if (chunk > FNN_MODEL_CHUNK) chunk = FNN_MODEL_CHUNK;
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
    *bytes = chunk * per_row + FNN_ALIGN; /* + room to align the second buffer's successor */
    return chunk;
}

/* x and out in the model's dtype (native) or float (the public API); the model computes in its
 * own dtype either way. */
static int model_run(const fnn_model *m, const void *x, size_t rows, void *out, int native) {
    if (!m || (rows && (!x || !out))) {
        fnn_io_set_error("fnn_model_predict: %s is NULL", !m ? "the model" : !x ? "x" : "out");
        return FNN_ERR_ARG;
    }
    fnn_io_clear_error();
    if (rows == 0) return FNN_OK;
    const int dbl = m->dtype == (int)sizeof(double), convert = dbl && !native;
    size_t bytes, chunk = model_chunk(m, rows, convert, &bytes);
    _Alignas(FNN_ALIGN) unsigned char stack[FNN_MODEL_STACK];
    void *ws = bytes <= sizeof stack ? (void *)stack : fnn_thread_buffer(FNN_TBUF_MODEL, bytes);
    if (!ws) {
        fnn_io_set_error("fnn_model_predict: out of memory for %zu bytes of scratch", bytes);
        return FNN_ERR_NOMEM;
    }
    const int nt = fnn_get_num_threads();
    const size_t ni = m->n_in, no = m->n_out;
    for (size_t start = 0; start < rows; start += chunk) {
        size_t r = rows - start < chunk ? rows - start : chunk;
        if (!dbl) {
            const float *xs = (const float *)x + start * ni;
            float *os = (float *)out + start * no;
            const float *y = fnn_smodel_forward_(m, xs, r, ws, nt);
            memcpy(os, y, r * no * sizeof *os);
            if (m->link != FNN_ACT_LINEAR) fnn_sact_forward(m->link, 0, os, os, r, no, nt);
        } else if (native) {
            const double *xs = (const double *)x + start * ni;
            double *os = (double *)out + start * no;
            const double *y = fnn_dmodel_forward_(m, xs, r, ws, nt);
            memcpy(os, y, r * no * sizeof *os);
            if (m->link != FNN_ACT_LINEAR) fnn_dact_forward(m->link, 0, os, os, r, no, nt);
        } else {
            double *xd = (double *)ws + 2 * chunk * m->max_width;
            const float *xs = (const float *)x + start * ni;
            for (size_t i = 0; i < r * ni; i++) xd[i] = xs[i];
            /* the output lies in the scratch (at worst in xd itself): apply the link there */
            double *y = (double *)fnn_dmodel_forward_(m, xd, r, ws, nt);
            if (m->link != FNN_ACT_LINEAR) fnn_dact_forward(m->link, 0, y, y, r, no, nt);
            float *os = (float *)out + start * no;
            for (size_t i = 0; i < r * no; i++) os[i] = (float)y[i];
        }
    }
    return FNN_OK;
}

int fnn_model_predict(const fnn_model *m, const float *x, size_t rows, float *out) {
    return model_run(m, x, rows, out, 0);
}

int fnn_model_predict_native(const fnn_model *m, const void *x, size_t rows, void *out) {
    return model_run(m, x, rows, out, 1);
}

/* ---- queries ---------------------------------------------------------------------------------- */

size_t fnn_model_n_inputs(const fnn_model *m) { return m ? m->n_in : 0; }
size_t fnn_model_n_outputs(const fnn_model *m) { return m ? m->n_out : 0; }
int fnn_model_dtype(const fnn_model *m) { return m ? m->dtype : 0; }
int fnn_model_n_layers(const fnn_model *m) { return m ? m->n_layers : 0; }

const fnn_model_layer *fnn_model_layer_at(const fnn_model *m, int i) {
    return m && i >= 0 && i < m->n_layers ? &m->layers[i] : NULL;
}

const void *fnn_model_params(const fnn_model *m, size_t *n_params) {
    if (n_params) *n_params = m ? m->n_params : 0;
    return m ? m->params : NULL;
}

const char *fnn_model_architecture(const fnn_model *m) { return m ? m->arch_json : NULL; }

int fnn_model_loss(const fnn_model *m, double *param) {
    if (param) *param = m ? m->loss_param : 0;
    return m ? m->loss : -1;
}

int fnn_model_link(const fnn_model *m) { return m ? m->link : FNN_ACT_LINEAR; }

int fnn_model_n_metadata(const fnn_model *m) { return m ? m->n_meta : 0; }

int fnn_model_metadata_at(const fnn_model *m, int i, const char **key, const char **value) {
    if (!m || i < 0 || i >= m->n_meta) return FNN_ERR_ARG;
    *key = m->meta_keys[i];
    *value = m->meta_values[i];
    return FNN_OK;
}

void fnn_model_free(fnn_model *m) {
    if (!m) return;
    for (int l = 0; m->layers && l < m->n_layers; l++) free(m->layers[l].name);
    free(m->layers);
    fnn_aligned_free(m->params);
    free(m->act);
    free(m->folded);
    free(m->arch_json);
    for (int i = 0; i < m->n_meta; i++) {
        if (m->meta_keys) free(m->meta_keys[i]);
        if (m->meta_values) free(m->meta_values[i]);
    }
    free(m->meta_keys);
    free(m->meta_values);
    free(m);
}
