/* model.c - the C inference API of fastnn.h: predict with a model loaded by io.c, query, free; the
 * model's gate, which keeps predict off a model that the training API (train.c) is changing.
 *
 * Predict runs the engine's forward pass (layer.c) over the model's plan (plan.c): the code that
 * Sequential.predict runs, so the two give the same bits.
 * Threads: a loaded model is read-only, so any number of threads may call fnn_model_predict on
 * it at once.  Each call works in its own scratch memory: on the stack when it is small (one row of
 * a small network: no allocation at all), else in a per-calling-thread buffer that only grows (as
 * the GEMM's packing buffers do), so a service predicting batches of the same size allocates
 * nothing after its first call.  Rows go through the network FNN_MODEL_CHUNK at a time; each row's
 * result does not depend on the others or on the chunking, nor on the thread count.
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#define FNN_MODEL_CHUNK 1024                 /* rows per pass, at most */
#define FNN_MODEL_WS_MAX ((size_t)32 << 20)  /* bytes of scratch a pass aims to stay under */
#define FNN_MODEL_STACK 16384                /* bytes of scratch taken on the stack */

/* Rows per pass and the scratch bytes of one pass: the plan's inference layout, plus the converted
 * inputs (n_in doubles per row) when a float64 model takes float rows. */
static size_t model_chunk(const fnn_model *m, size_t rows, int convert, size_t *bytes) {
    const fnn_plan *p = &m->plan;
    size_t per_row = p->icols + (convert ? p->n_in : 0) + 1; /* widths <= 2^31 per layer: no overflow */
    per_row *= (size_t)m->dtype;
    size_t chunk = FNN_MODEL_WS_MAX / per_row;
    if (chunk > FNN_MODEL_CHUNK) chunk = FNN_MODEL_CHUNK;
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
    *bytes = chunk * per_row + FNN_ALIGN; /* + room to align the converted inputs */
    return chunk;
}

/* ---- the gate -----------------------------------------------------------------------------------
 * users >= 0 counts the readers inside; -1 marks the writer.  Entering is one compare-and-swap when
 * uncontended; nobody waits: a call that finds the model held the other way is refused. */

int fnn_model_enter(const fnn_model *m, int write, const char *who) {
    atomic_int *users = &((fnn_model *)m)->users; /* the gate is the one mutable part of a read-only model */
    int v = atomic_load_explicit(users, memory_order_relaxed);
    for (;;) {
        if (write ? v != 0 : v < 0) {
            fnn_io_set_error("%s: the model is %s by another thread", who,
                             v < 0 ? "being changed (fnn_model_fit, _freeze or _unfreeze)" : "being read (predict, evaluate, save)");
            return FNN_ERR_BUSY;
        }
        if (atomic_compare_exchange_weak_explicit(users, &v, write ? -1 : v + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return FNN_OK;
    }
}

void fnn_model_leave(const fnn_model *m, int write) {
    atomic_int *users = &((fnn_model *)m)->users;
    if (write) atomic_store_explicit(users, 0, memory_order_release);
    else atomic_fetch_sub_explicit(users, 1, memory_order_release);
}

/* x and out in the model's dtype (native) or float (the public API); the model computes in its
 * own dtype either way. */
static int model_run_(const fnn_model *m, const void *x, size_t rows, void *out, int native) {
    const fnn_plan *p = &m->plan;
    const int dbl = m->dtype == (int)sizeof(double), convert = dbl && !native;
    size_t bytes, chunk = model_chunk(m, rows, convert, &bytes);
    _Alignas(FNN_ALIGN) unsigned char stack[FNN_MODEL_STACK];
    void *ws = bytes <= sizeof stack ? (void *)stack : fnn_thread_buffer(FNN_TBUF_MODEL, bytes);
    if (!ws) {
        fnn_io_set_error("fnn_model_predict: out of memory for %zu bytes of scratch", bytes);
        return FNN_ERR_NOMEM;
    }
    const int nt = fnn_get_num_threads();
    const size_t ni = p->n_in, no = p->n_out;
    for (size_t start = 0; start < rows; start += chunk) {
        size_t r = rows - start < chunk ? rows - start : chunk;
        if (!dbl) {
            float *os = (float *)out + start * no;
            const float *y = fnn_sforward(p, m->params, (const float *)x + start * ni, r, ws, chunk, NULL, NULL, nt);
            memcpy(os, y, r * no * sizeof *os);
            if (p->link != FNN_ACT_LINEAR) fnn_sact_forward(p->link, 0, os, os, r, no, nt);
        } else if (native) {
            double *os = (double *)out + start * no;
            const double *y = fnn_dforward(p, m->params, (const double *)x + start * ni, r, ws, chunk, NULL, NULL, nt);
            memcpy(os, y, r * no * sizeof *os);
            if (p->link != FNN_ACT_LINEAR) fnn_dact_forward(p->link, 0, os, os, r, no, nt);
        } else {
            /* the float rows converted after the layer buffers; the output may be them (no layer at all
             * writes) or a layer buffer: the link is applied in place there, then converted out */
            double *xd = (double *)ws + chunk * p->icols;
            const float *xs = (const float *)x + start * ni;
            for (size_t i = 0; i < r * ni; i++) xd[i] = xs[i];
            double *y = (double *)fnn_dforward(p, m->params, xd, r, ws, chunk, NULL, NULL, nt);
            if (p->link != FNN_ACT_LINEAR) fnn_dact_forward(p->link, 0, y, y, r, no, nt);
            float *os = (float *)out + start * no;
            for (size_t i = 0; i < r * no; i++) os[i] = (float)y[i];
        }
    }
    return FNN_OK;
}

static int model_run(const fnn_model *m, const void *x, size_t rows, void *out, int native) {
    if (!m || (rows && (!x || !out))) {
        fnn_io_set_error("fnn_model_predict: %s is NULL", !m ? "the model" : !x ? "x" : "out");
        return FNN_ERR_ARG;
    }
    fnn_io_clear_error();
    if (rows == 0) return FNN_OK;
    int rc = fnn_model_enter(m, 0, "fnn_model_predict");
    if (rc) return rc;
    rc = model_run_(m, x, rows, out, native);
    fnn_model_leave(m, 0);
    return rc;
}

int fnn_model_predict(const fnn_model *m, const float *x, size_t rows, float *out) {
    return model_run(m, x, rows, out, 0);
}

int fnn_model_predict_native(const fnn_model *m, const void *x, size_t rows, void *out) {
    return model_run(m, x, rows, out, 1);
}

/* ---- queries ---------------------------------------------------------------------------------- */

size_t fnn_model_n_inputs(const fnn_model *m) { return m ? m->plan.n_in : 0; }
size_t fnn_model_n_outputs(const fnn_model *m) { return m ? m->plan.n_out : 0; }
size_t fnn_model_n_layers(const fnn_model *m) { return m ? (size_t)m->plan.nl : 0; }

const char *fnn_model_layer_type(const fnn_model *m, size_t i) {
    return m && i < (size_t)m->plan.nl ? fnn_layer_kind_name(m->plan.L[i].kind) : NULL;
}

const char *fnn_model_loss(const fnn_model *m) {
    if (!m || fnn_model_enter(m, 0, "fnn_model_loss")) return NULL; /* fit may be changing it */
    const char *name = m->plan.loss >= 0 ? fnn_loss_name(m->plan.loss) : NULL;
    fnn_model_leave(m, 0);
    return name;
}
int fnn_model_dtype(const fnn_model *m) { return m ? m->dtype : 0; }
const fnn_plan *fnn_model_plan(const fnn_model *m) { return m ? &m->plan : NULL; }

const char *fnn_model_layer_name(const fnn_model *m, int i) {
    return m && m->names && i >= 0 && i < m->plan.nl ? m->names[i] : NULL;
}

const void *fnn_model_params(const fnn_model *m, size_t *n_params) {
    if (n_params) *n_params = m ? m->plan.n_params : 0;
    return m ? m->params : NULL;
}

const char *fnn_model_architecture(const fnn_model *m) { return m ? m->arch_json : NULL; }

int fnn_model_n_metadata(const fnn_model *m) { return m ? m->n_meta : 0; }

int fnn_model_metadata_at(const fnn_model *m, int i, const char **key, const char **value) {
    if (!m || i < 0 || i >= m->n_meta) return FNN_ERR_ARG;
    *key = m->meta_keys[i];
    *value = m->meta_values[i];
    return FNN_OK;
}

const fnn_train_state *fnn_model_training(const fnn_model *m, const void **opt_state, int *n_state) {
    if (opt_state) *opt_state = m && m->has_training ? m->opt_state : NULL;
    if (n_state) *n_state = m && m->has_training ? m->n_state : 0;
    return m && m->has_training ? &m->training : NULL;
}

void fnn_model_free(fnn_model *m) {
    if (!m) return;
    fnn_trainer_free(m->trainer, m->dtype);
    for (int l = 0; m->names && l < m->plan.nl; l++) free(m->names[l]);
    free(m->names);
    fnn_plan_free(&m->plan);
    fnn_aligned_free(m->params);
    fnn_aligned_free(m->opt_state);
    free(m->arch_json);
    for (int i = 0; i < m->n_meta; i++) {
        if (m->meta_keys) free(m->meta_keys[i]);
        if (m->meta_values) free(m->meta_values[i]);
    }
    free(m->meta_keys);
    free(m->meta_values);
    free(m);
}
