/* io.h - private: the loaded model (io.c builds it from a model file, model.c runs it).
 *
 * A model owns everything it points to: its layers, one FNN_ALIGN-aligned buffer holding every
 * parameter in the model's dtype (Dense layer l: weight in x out row-major, then bias), the
 * architecture JSON text and the file's metadata strings.  After loading it is never written, so
 * any number of threads may run fnn_model_predict on it at once.
 */
#ifndef FNN_IO_H
#define FNN_IO_H

#include "fnn_impl.h"

/* Layer kinds, numbered as the training engine's (net.h). */
enum { FNN_MODEL_DENSE = 0, FNN_MODEL_DROPOUT = 1, FNN_MODEL_ACTIVATION = 2 };

/* Limits of what the reader accepts (far beyond any model fastnn trains, far below overflow). */
#define FNN_IO_MAX_HEADER 100000000u    /* bytes of JSON header (safetensors' own limit) */
#define FNN_IO_MAX_LAYERS 4096
#define FNN_IO_MAX_WIDTH ((size_t)1 << 31) /* features of any layer */
#define FNN_IO_MAX_NDIM 8
#define FNN_IO_SCHEMA_MAJOR 1             /* files of a newer major schema are refused */
#define FNN_IO_SCHEMA_MINOR 0

typedef struct {
    int kind;           /* FNN_MODEL_DENSE, _DROPOUT, _ACTIVATION */
    int act;            /* Dense, Activation: enum fnn_act */
    double act_alpha;   /* leaky_relu slope, elu alpha (0 for the others) */
    int has_alpha;      /* the file gave a number for alpha */
    size_t in, out;     /* features */
    int use_bias, trainable;
    double l1, l2;      /* Dense penalties (training only) */
    double p;           /* Dropout: drop probability */
    char *name;         /* NULL when the file has none */
    size_t w_off, b_off;/* Dense: offsets of weight and bias in params (in elements) */
} fnn_model_layer;

struct fnn_model {
    int dtype;          /* sizeof(float) or sizeof(double) */
    size_t n_in, n_out, max_width;
    int n_layers;
    fnn_model_layer *layers;
    int loss;           /* enum fnn_loss, or -1 */
    double loss_param;  /* huber delta */
    int link;           /* FNN_ACT_LINEAR, _SOFTMAX, _SIGMOID: applied to the output by predict */
    void *params;       /* FNN_ALIGN-aligned, n_params values of the dtype */
    size_t n_params;
    /* the inference plan (as the training engine's): Activation layers folded into the linear Dense
     * below them, the final softmax/sigmoid merged into the link */
    int *act;           /* effective activation per layer */
    unsigned char *folded;
    char *arch_json;    /* the architecture as written in the file */
    int n_meta;         /* __metadata__ as key/value pairs, in file order */
    char **meta_keys, **meta_values;
    int schema_major, schema_minor;
};

/* Thread-local detail of the last failed fnn_model_* call on this thread ("" after a success). */
void fnn_io_set_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void fnn_io_clear_error(void);

/* Activation names of the public API <-> enum fnn_act; -1 / NULL when unknown. */
int fnn_act_from_name(const char *name);
const char *fnn_act_name(int act);
int fnn_loss_from_name(const char *name);
const char *fnn_loss_name(int loss);

/* Compute the inference plan of a model whose layers, loss and link are set (io.c). */
void fnn_model_plan(fnn_model *m);

/* The model's output for rows x n_in inputs in its own dtype (float or double). */
int fnn_model_predict_native(const fnn_model *m, const void *x, size_t rows, void *out);

/* Read-only views for the Python binding. */
int fnn_model_dtype(const fnn_model *m);
int fnn_model_n_layers(const fnn_model *m);
const fnn_model_layer *fnn_model_layer_at(const fnn_model *m, int i);
const void *fnn_model_params(const fnn_model *m, size_t *n_params);
const char *fnn_model_architecture(const fnn_model *m);
int fnn_model_loss(const fnn_model *m, double *param);
int fnn_model_link(const fnn_model *m);
int fnn_model_n_metadata(const fnn_model *m);
int fnn_model_metadata_at(const fnn_model *m, int i, const char **key, const char **value);

/* A plain safetensors file, checked as a container only (sizes, header JSON, tensor entries, tiling of
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

#endif /* FNN_IO_H */
