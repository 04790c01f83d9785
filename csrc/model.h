/* model.h - private: the loaded model (io.c reads it from a model file, model.c runs it through the
 * engine's forward pass), and the reader's other services for the Python binding.
 *
 * A model owns everything it points to: its plan (the training engine's type, built by the same
 * plan function, net.h), one FNN_ALIGN-aligned buffer holding every parameter in the model's dtype
 * (each layer's tensors back to back, fnn_layer_place), the layers' names, the architecture JSON
 * text, the file's metadata strings and, when the file has a training state, that state and the
 * optimizer's state buffers as the file holds them (n_state copies of the parameter layout).  After
 * loading it is never written, so any number of threads may run fnn_model_predict on it at once,
 * until the C training API (train.c) changes it: its first fnn_model_fit adds a trainer (the training
 * net over the same parameters, their gradients and the optimizer state).  Every public call takes
 * the model's gate: readers (predict, evaluate, save) share it, a writer (fit, freeze) holds it
 * alone, and a call that cannot have it returns FNN_ERR_BUSY instead of waiting.
 */
#ifndef FNN_MODEL_H
#define FNN_MODEL_H

#include "net.h"

#include <stdatomic.h>

/* Limits of what the reader accepts (far beyond any model fastnn trains, far below overflow). */
#define FNN_IO_MAX_HEADER 100000000u    /* bytes of JSON header (safetensors' own limit) */
#define FNN_IO_MAX_LAYERS 4096
#define FNN_IO_MAX_WIDTH ((size_t)1 << 31) /* features of any layer */
#define FNN_IO_MAX_NDIM 8
#define FNN_IO_SCHEMA_MAJOR 1             /* files of a newer major schema are refused */
#define FNN_IO_SCHEMA_MINOR 1             /* 1.1: normalization layers, max_norm, the training state */

/* A file's training state ("training" in __metadata__, docs/FORMAT.md): what fit needs to continue
 * with the same bits as a run that never stopped. */
typedef struct {
    fnn_optim_desc opt;       /* the optimizer as the engine runs it, its per-step schedule in opt.sched */
    fnn_schedule epoch_sched; /* a per-epoch schedule of the rate (kind FNN_SCHED_NONE: none) */
    uint64_t seed;            /* of the shuffles and dropout masks */
    int64_t epochs_seen, step, opt_step;
} fnn_train_state;

struct fnn_model {
    int dtype;          /* sizeof(float) or sizeof(double) */
    fnn_plan plan;      /* layers, loss and link, as a training net plans them */
    void *params;       /* FNN_ALIGN-aligned, plan.n_params values of the dtype */
    char **names;       /* per layer, NULL where the file has none */
    char *arch_json;    /* the architecture as written in the file */
    int n_meta;         /* __metadata__ as key/value pairs, in file order */
    char **meta_keys, **meta_values;
    int schema_major, schema_minor;
    int has_training;
    fnn_train_state training;
    int n_state;
    void *opt_state;    /* n_state x plan.n_params values of the dtype, or NULL */
    atomic_int users;   /* the gate: calls reading the model, or -1 while one changes it */
    struct fnn_trainer *trainer; /* NULL until the first fnn_model_fit (train.c) */
};

/* ---- the gate and the trainer (model.c, train.c) ---------------------------------------------------
 * Enter as a reader (write = 0) or the writer; FNN_ERR_BUSY, with a detail naming `who`, when the
 * model is held the other way.  Every successful enter is paired with one leave. */
int  fnn_model_enter(const fnn_model *m, int write, const char *who);
void fnn_model_leave(const fnn_model *m, int write);
void fnn_trainer_free(struct fnn_trainer *t, int dtype);

/* ---- the reader's error channel (io.c) ----------------------------------------------------------
 * Thread-local detail of the last failed fnn_model_* call on this thread ("" after a success). */
void fnn_io_set_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void fnn_io_clear_error(void);

/* ---- running and reading a model (model.c) ------------------------------------------------------ */
/* The model's output for rows x n_in inputs in its own dtype (float or double). */
int fnn_model_predict_native(const fnn_model *m, const void *x, size_t rows, void *out);
/* Read-only views for the Python binding. */
int fnn_model_dtype(const fnn_model *m);
const fnn_plan *fnn_model_plan(const fnn_model *m);
const char *fnn_model_layer_name(const fnn_model *m, int i); /* NULL when unnamed */
const void *fnn_model_params(const fnn_model *m, size_t *n_params);
const char *fnn_model_architecture(const fnn_model *m);
int fnn_model_n_metadata(const fnn_model *m);
int fnn_model_metadata_at(const fnn_model *m, int i, const char **key, const char **value);
/* The file's training state and the optimizer's state buffers (*n_state copies of the parameter
 * layout), or NULL when the file has none. */
const fnn_train_state *fnn_model_training(const fnn_model *m, const void **opt_state, int *n_state);

/* ---- plain safetensors files (io.c) ---------------------------------------------------------------
 * A plain safetensors file, checked as a container only (sizes, header JSON, tensor entries, tiling of
 * the data section), without the fastnn metadata: the weights of other frameworks.  It points into
 * the caller's buffer, which must outlive it.  Tensors in header order; begin/end are byte offsets
 * in the buffer; dtype is the safetensors name ("F32", "BF16", ...). */
typedef struct fnn_st_file fnn_st_file;
int fnn_st_open(const void *data, size_t len, fnn_st_file **out);
size_t fnn_st_n_tensors(const fnn_st_file *s);
int fnn_st_tensor_at(const fnn_st_file *s, size_t i, const char **name, const char **dtype, size_t *ndim,
                     const uint64_t **shape, size_t *begin, size_t *end);
int fnn_st_n_metadata(const fnn_st_file *s);
int fnn_st_metadata_at(const fnn_st_file *s, int i, const char **key, const char **value);
void fnn_st_close(fnn_st_file *s);

#endif /* FNN_MODEL_H */
