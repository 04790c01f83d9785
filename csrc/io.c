/* io.c - the model-file reader: a safetensors container whose __metadata__ holds the architecture
 * (docs/FORMAT.md is the full specification).  Python (fastnn.load) and C (fnn_model_load) both
 * come here.
 *
 *   u64 LE header length N | N bytes of JSON header | data section (tensors, little-endian)
 *   header: {"__metadata__": {"format": "fastnn", "fastnn_schema": "1.1", "fastnn_version": ...,
 *            "architecture": "<JSON>", optional "training": "<JSON>"}, "layers.<i>.weight": {"dtype":
 *            "F32"|"F64", "shape": [in, out], "data_offsets": [begin, end]}, "layers.<i>.bias": {... "shape":
 *            [out] ...}, each layer's other tensors, and with "training" "optimizer.<state>.layers.<i>.<name>"}
 *
 * The input is untrusted.  Every length, offset, shape and count is checked against the bytes that
 * are really there before it is used; nothing is allocated by a size read from the file before that
 * size has been bounded by the file's own length; the JSON parser (json.c) bounds depth and count.
 * The checks run in order: container (sizes, header JSON, tensor entries, tiling of the data
 * section), metadata (format, schema version), architecture, the training state, then tensors against
 * the architecture and the training state.
 * The first failure is reported with a specific message (fnn_last_error_detail, the thread's error
 * channel, which lives here) and its code.  A model that passes is planned by the engine's own plan
 * function (plan.c), as a training net is.
 *
 * Schema 1.2 adds low-precision Dense layers (lowp.h): "precision": "int8" (tensors weight I8,
 * weight_scale F32, bias F32, and input_range F32 [2] when "input_scales" is "calibrated") or
 * "bfloat16" (weight BF16, bias F32).  Their values are checked too: int8 weights within +-63, scales
 * finite and >= 0, a range finite around 0.
 */
#include "model.h"
#include "json.h"
#include "lowp.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define FNN_HAVE_FSTAT 1
#endif

/* ---- errors ---------------------------------------------------------------------------------
 * Each check that fails writes one message into the reader's context; the entry points hand it to the
 * calling thread's error channel, which fnn_last_error_detail reads (every fnn_model_* call sets it). */

static _Thread_local char last_detail[512];

void fnn_io_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_detail, sizeof last_detail, fmt, ap);
    va_end(ap);
}

void fnn_io_clear_error(void) { last_detail[0] = '\0'; }

const char *fnn_last_error_detail(void) { return last_detail; }

typedef struct {
    char msg[512];
    int rc;
} ctx;

static int fail(ctx *c, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(ctx *c, int rc, const char *fmt, ...) {
    if (c->rc) return c->rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->rc = rc;
    return rc;
}

#define Q(buf, s, len) fnn_json_quote(buf, sizeof buf, s, len)

/* ---- the container --------------------------------------------------------------------------- */

typedef struct {
    const fnn_json_node *node;
    const char *name;
    size_t name_len;
    const char *dtype_name;
    size_t elem;            /* bytes per element (0 for sub-byte dtypes) */
    int dtype;              /* 4 = F32, 8 = F64, 0 = another safetensors dtype */
    size_t ndim;
    uint64_t shape[FNN_IO_MAX_NDIM];
    uint64_t begin, end;
} tensor;

typedef struct {
    const unsigned char *data; /* the data section */
    size_t data_start;         /* its offset in the file: 8 + header length */
    size_t data_len;
    fnn_json header;
    const fnn_json_node *meta; /* may be NULL */
    tensor *t;
    size_t n_t;
} container;

/* safetensors dtypes and their sizes (0: several elements per byte; never ours anyway). */
static const struct { const char *name; size_t size; } st_dtypes[] = {
    {"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1},
    {"I8", 1}, {"U8", 1}, {"I16", 2}, {"U16", 2}, {"I32", 4}, {"U32", 4}, {"I64", 8}, {"U64", 8},
    {"BOOL", 1}, {"C64", 8}, {"F4", 0}, {"F6_E2M3", 0}, {"F6_E3M2", 0}};

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int tensor_cmp(const void *a, const void *b) {
    const tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_tensor(ctx *c, container *f, const fnn_json_node *n, tensor *t) {
    char q[256];
    const fnn_json *h = &f->header;
    t->node = n;
    t->name = n->key;
    t->name_len = n->key_len;
    const char *nm = Q(q, n->key, n->key_len);
    if (n->type != FNN_JSON_OBJECT) return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": expected an object", nm);
    const fnn_json_node *dt = NULL, *shape = NULL, *offs = NULL;
    for (const fnn_json_node *m = fnn_json_child(h, n); m; m = fnn_json_next(h, m)) {
        if (strcmp(m->key, "dtype") == 0) dt = m;
        else if (strcmp(m->key, "shape") == 0) shape = m;
        else if (strcmp(m->key, "data_offsets") == 0) offs = m;
        else {
            char q2[256];
            return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": unknown key \"%s\"", nm, Q(q2, m->key, m->key_len));
        }
    }
    if (!dt || !shape || !offs)
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": missing \"%s\"", nm, !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    if (dt->type != FNN_JSON_STRING) return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": dtype is not a string", nm);
    t->dtype_name = NULL;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(dt->str, st_dtypes[i].name) == 0) {
            t->dtype_name = st_dtypes[i].name;
            t->elem = st_dtypes[i].size;
        }
    if (!t->dtype_name) {
        char q2[256];
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": unknown dtype \"%s\"", nm, Q(q2, dt->str, dt->len));
    }
    t->dtype = strcmp(t->dtype_name, "F32") == 0 ? 4 : strcmp(t->dtype_name, "F64") == 0 ? 8 : 0;

    if (shape->type != FNN_JSON_ARRAY) return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": shape is not an array", nm);
    if (shape->count > FNN_IO_MAX_NDIM)
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": %u dimensions (at most %d)", nm, (unsigned)shape->count, FNN_IO_MAX_NDIM);
    t->ndim = 0;
    int zero = 0, overflow = 0;
    for (const fnn_json_node *d = fnn_json_child(h, shape); d; d = fnn_json_next(h, d)) {
        uint64_t v;
        if (fnn_json_uint(d, &v))
            return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": shape[%zu] is not a non-negative integer", nm, t->ndim);
        t->shape[t->ndim++] = v;
        zero |= v == 0;
    }
    /* the byte size, with overflow checked (a zero dimension makes it 0 whatever the others are) */
    uint64_t nbytes = zero ? 0 : (t->elem ? t->elem : 1);
    for (size_t i = 0; i < t->ndim && !zero && !overflow; i++) {
        if (nbytes > UINT64_MAX / t->shape[i]) overflow = 1;
        else nbytes *= t->shape[i];
    }
    if (!t->elem) nbytes = 0; /* sub-byte dtypes (never ours): only the offsets' bounds are checked */
    if (overflow || nbytes > f->data_len) {
        char need[32];
        if (overflow) snprintf(need, sizeof need, "over 2^64");
        else snprintf(need, sizeof need, "%llu", (unsigned long long)nbytes);
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": its shape and dtype need %s bytes, more than the %zu-byte "
                    "data section", nm, need, f->data_len);
    }

    if (offs->type != FNN_JSON_ARRAY || offs->count != 2)
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": data_offsets is not a [begin, end] pair", nm);
    const fnn_json_node *b = fnn_json_child(h, offs), *e = fnn_json_next(h, b);
    if (fnn_json_uint(b, &t->begin) || fnn_json_uint(e, &t->end))
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": data_offsets are not non-negative integers", nm);
    if (t->begin > t->end)
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": data_offsets [%llu, %llu] end before they begin", nm,
                    (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > f->data_len)
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": data_offsets end at %llu, past the %zu-byte data section "
                    "(truncated file?)", nm, (unsigned long long)t->end, f->data_len);
    if (t->elem && t->end - t->begin != nbytes)
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\": data_offsets span %llu bytes but shape and dtype %s make %llu",
                    nm, (unsigned long long)(t->end - t->begin), t->dtype_name, (unsigned long long)nbytes);
    return 0;
}

static void container_free(container *f) {
    fnn_json_free(&f->header);
    free(f->t);
    memset(f, 0, sizeof *f);
}

static int parse_container(ctx *c, const unsigned char *buf, size_t len, container *f) {
    memset(f, 0, sizeof *f);
    if (len < 8) return fail(c, FNN_ERR_FORMAT, "the file is %zu bytes, too short for the 8-byte header length", len);
    uint64_t hlen = le64(buf);
    if (hlen > FNN_IO_MAX_HEADER)
        return fail(c, FNN_ERR_FORMAT, "header length %llu exceeds the limit of %u bytes (not a safetensors file?)",
                    (unsigned long long)hlen, FNN_IO_MAX_HEADER);
    if (hlen > len - 8)
        return fail(c, FNN_ERR_FORMAT, "header length %llu exceeds the %zu bytes after it (truncated file?)",
                    (unsigned long long)hlen, len - 8);
    if (hlen < 2 || buf[8] != '{')
        return fail(c, FNN_ERR_FORMAT, "the header does not start with '{' (not a safetensors file?)");
    char jerr[256];
    int rc = fnn_json_parse(&f->header, (const char *)buf + 8, (size_t)hlen, jerr, sizeof jerr);
    if (rc) return fail(c, rc, "header JSON: %s", jerr);
    f->data = buf + 8 + hlen;
    f->data_start = 8 + (size_t)hlen;
    f->data_len = len - 8 - (size_t)hlen;
    const fnn_json *h = &f->header;
    const fnn_json_node *root = &h->nodes[0];
    if (root->type != FNN_JSON_OBJECT) return fail(c, FNN_ERR_FORMAT, "header JSON: not an object");

    f->t = calloc(root->count ? root->count : 1, sizeof *f->t);
    if (!f->t) return fail(c, FNN_ERR_NOMEM, "out of memory");
    for (const fnn_json_node *n = fnn_json_child(h, root); n; n = fnn_json_next(h, n)) {
        if (strcmp(n->key, "__metadata__") == 0) {
            if (n->type != FNN_JSON_OBJECT) return fail(c, FNN_ERR_FORMAT, "__metadata__ is not an object");
            for (const fnn_json_node *m = fnn_json_child(h, n); m; m = fnn_json_next(h, m))
                if (m->type != FNN_JSON_STRING) {
                    char q[256];
                    return fail(c, FNN_ERR_FORMAT, "__metadata__ \"%s\": not a string (safetensors metadata "
                                "maps strings to strings)", Q(q, m->key, m->key_len));
                }
            f->meta = n;
            continue;
        }
        if (parse_tensor(c, f, n, &f->t[f->n_t])) return c->rc;
        f->n_t++;
    }

    /* The tensors must tile the data section: sorted by offset, each begins where the last ended. */
    tensor *s = malloc((f->n_t ? f->n_t : 1) * sizeof *s);
    if (!s) return fail(c, FNN_ERR_NOMEM, "out of memory");
    memcpy(s, f->t, f->n_t * sizeof *s);
    qsort(s, f->n_t, sizeof *s, tensor_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n_t && !c->rc; i++) {
        char q[256], q2[256];
        if (s[i].begin < at)
            fail(c, FNN_ERR_FORMAT, "tensors \"%s\" and \"%s\" overlap in the data section",
                 Q(q, s[i - 1].name, s[i - 1].name_len), Q(q2, s[i].name, s[i].name_len));
        else if (s[i].begin > at)
            fail(c, FNN_ERR_FORMAT, "%llu unused bytes before tensor \"%s\" in the data section",
                 (unsigned long long)(s[i].begin - at), Q(q, s[i].name, s[i].name_len));
        at = s[i].end;
    }
    free(s);
    if (c->rc) return c->rc;
    if (at != f->data_len)
        return fail(c, FNN_ERR_FORMAT, "the data section is %zu bytes but the tensors take %llu (%s)", f->data_len,
                    (unsigned long long)at, at < f->data_len ? "trailing bytes: the file is larger than its header claims"
                                                             : "truncated file");
    return 0;
}

/* ---- metadata and architecture ------------------------------------------------------------------ */

static const fnn_json_node *meta_get(const container *f, const char *key) {
    return f->meta ? fnn_json_get(&f->header, f->meta, key) : NULL;
}

/* "MAJOR.MINOR", each 1 to 9 digits. */
static int parse_schema(const char *s, int *major, int *minor) {
    int v[2] = {0, 0};
    for (int part = 0; part < 2; part++) {
        int digits = 0;
        while (*s >= '0' && *s <= '9') {
            if (++digits > 9) return -1;
            v[part] = v[part] * 10 + (*s++ - '0');
        }
        if (!digits) return -1;
        if (part == 0 && *s++ != '.') return -1;
    }
    if (*s) return -1;
    *major = v[0];
    *minor = v[1];
    return 0;
}

typedef struct {
    ctx *c;
    const fnn_json *doc;
    int lenient; /* a newer minor schema: unknown keys are ignored */
    int minor;   /* the file's minor schema: what it may use */
    const char *what; /* "architecture" or "training": the messages' prefix */
} arch_reader;

/* What the architecture says, before the tensors are attached and the plan is made. */
typedef struct {
    size_t n_in;
    int dtype;            /* 4 or 8 */
    int loss;             /* enum fnn_loss or -1 */
    double loss_param;
    int nl;
    fnn_layer_desc *L;    /* nl descriptors (offsets set by attach_tensors) */
    char **names;         /* nl names, NULL where none */
} arch;

static void arch_free(arch *a) {
    for (int l = 0; a->names && l < a->nl; l++) free(a->names[l]);
    free(a->names);
    free(a->L);
}

static int arch_number(arch_reader *r, const fnn_json_node *n, const char *where, double lo, int lo_open, double hi,
                       int hi_open, double *out) {
    double v;
    if (n->type != FNN_JSON_NUMBER) return fail(r->c, FNN_ERR_FORMAT, "%s: %s is not a number", r->what, where);
    if (fnn_json_double(n, &v) || !isfinite(v))
        return fail(r->c, FNN_ERR_FORMAT, "%s: %s is out of range", r->what, where);
    if (v < lo || (lo_open && v == lo) || v > hi || (hi_open && v == hi))
        return fail(r->c, FNN_ERR_FORMAT, "%s: %s = %.17g is outside %c%g, %g%c", r->what, where, v,
                    lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
    *out = v;
    return 0;
}

static int arch_size(arch_reader *r, const fnn_json_node *n, const char *where, size_t *out) {
    uint64_t v;
    if (n->type != FNN_JSON_NUMBER || fnn_json_uint(n, &v))
        return fail(r->c, FNN_ERR_FORMAT, "%s: %s is not a non-negative integer", r->what, where);
    if (v < 1 || v > FNN_IO_MAX_WIDTH)
        return fail(r->c, FNN_ERR_FORMAT, "%s: %s = %llu is outside [1, %zu]", r->what, where, (unsigned long long)v,
                    FNN_IO_MAX_WIDTH);
    *out = (size_t)v;
    return 0;
}

static int arch_bool(arch_reader *r, const fnn_json_node *n, const char *where, int *out) {
    if (n->type != FNN_JSON_TRUE && n->type != FNN_JSON_FALSE)
        return fail(r->c, FNN_ERR_FORMAT, "%s: %s is not true or false", r->what, where);
    *out = n->type == FNN_JSON_TRUE;
    return 0;
}

/* Copy s (NUL-terminated, len bytes) to a new string. */
static char *dup_str(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (d) memcpy(d, s, len + 1);
    return d;
}

/* The keys a layer of each kind may have. */
static int layer_key_ok(int kind, const char *key) {
    static const char *const dense[] = {"type", "units", "activation", "alpha", "use_bias", "l1", "l2", "trainable",
                                        "name", "max_norm", "precision", "input_scales", NULL};
    static const char *const dropout[] = {"type", "p", "trainable", "name", NULL};
    static const char *const act[] = {"type", "activation", "alpha", "trainable", "name", NULL};
    static const char *const bn[] = {"type", "momentum", "epsilon", "trainable", "name", NULL};
    static const char *const ln[] = {"type", "epsilon", "trainable", "name", NULL};
    const char *const *keys = kind == FNN_LAYER_DENSE ? dense : kind == FNN_LAYER_DROPOUT ? dropout
                            : kind == FNN_LAYER_BATCHNORM ? bn : kind == FNN_LAYER_LAYERNORM ? ln : act;
    for (; *keys; keys++)
        if (strcmp(*keys, key) == 0) return 1;
    return 0;
}

static int parse_activation(arch_reader *r, const fnn_json_node *layer, const char *where, fnn_layer_desc *L,
                            int required) {
    char q[256], w[96];
    const fnn_json_node *a = fnn_json_get(r->doc, layer, "activation");
    L->act = FNN_ACT_LINEAR;
    if (!a || a->type == FNN_JSON_NULL) {
        if (required) return fail(r->c, FNN_ERR_FORMAT, "architecture: %s has no activation", where);
    } else if (a->type != FNN_JSON_STRING) {
        return fail(r->c, FNN_ERR_FORMAT, "architecture: %s activation is not a string", where);
    } else if (!fnn_act_is_layer(L->act = fnn_act_from_name(a->str))) {
        return fail(r->c, FNN_ERR_UNSUPPORTED, "architecture: %s has an unknown activation \"%s\"", where,
                    Q(q, a->str, a->len));
    }
    const fnn_json_node *al = fnn_json_get(r->doc, layer, "alpha");
    L->act_alpha = fnn_act_default_alpha(L->act);
    if (al && al->type != FNN_JSON_NULL) {
        double v;
        snprintf(w, sizeof w, "%s alpha", where);
        if (arch_number(r, al, w, -HUGE_VAL, 0, HUGE_VAL, 0, &v)) return r->c->rc;
        if (L->act == FNN_ACT_LEAKY_RELU || L->act == FNN_ACT_ELU) L->act_alpha = v;
    }
    return 0;
}

/* A Dense layer's "precision" (null: the model's dtype; "int8"; "bfloat16") and, for int8,
 * "input_scales" ("per_row", the default, or "calibrated": an input_range tensor fixes them). */
static int parse_precision(arch_reader *r, const fnn_json_node *layer, const char *where, fnn_layer_desc *L) {
    char q[256];
    const fnn_json_node *v = fnn_json_get(r->doc, layer, "precision"), *sc = fnn_json_get(r->doc, layer, "input_scales");
    if (v && v->type != FNN_JSON_NULL) {
        if (r->minor < 2)
            return fail(r->c, FNN_ERR_FORMAT, "architecture: %s precision needs schema 1.2 (the file says 1.%d)", where,
                        r->minor);
        if (v->type != FNN_JSON_STRING) return fail(r->c, FNN_ERR_FORMAT, "architecture: %s precision is not a string", where);
        L->wkind = fnn_weight_kind_from_name(v->str);
        if (L->wkind != FNN_WEIGHT_INT8 && L->wkind != FNN_WEIGHT_BF16)
            return fail(r->c, FNN_ERR_UNSUPPORTED, "architecture: %s has an unknown precision \"%s\" (expected int8 or "
                        "bfloat16)", where, Q(q, v->str, v->len));
    }
    if (sc && sc->type != FNN_JSON_NULL) {
        if (L->wkind != FNN_WEIGHT_INT8)
            return fail(r->c, FNN_ERR_FORMAT, "architecture: %s has input_scales but no int8 precision", where);
        if (sc->type != FNN_JSON_STRING)
            return fail(r->c, FNN_ERR_FORMAT, "architecture: %s input_scales is not a string", where);
        if (strcmp(sc->str, "calibrated") == 0) L->r_off = 0; /* set by attach_tensors */
        else if (strcmp(sc->str, "per_row") != 0)
            return fail(r->c, FNN_ERR_FORMAT, "architecture: %s input_scales \"%s\" (expected per_row or calibrated)",
                        where, Q(q, sc->str, sc->len));
    }
    if (L->wkind == FNN_WEIGHT_INT8 && L->in > FNN_Q_MAX_K)
        return fail(r->c, FNN_ERR_UNSUPPORTED, "architecture: %s has int8 weights on %zu inputs (at most %d: the "
                    "int32 sums must not overflow)", where, L->in, FNN_Q_MAX_K);
    return 0;
}

static int parse_layer(arch_reader *r, const fnn_json_node *n, int i, size_t width, fnn_layer_desc *L, char **name) {
    char where[64], w[96], q[256];
    snprintf(where, sizeof where, "layers[%d]", i);
    if (n->type != FNN_JSON_OBJECT) return fail(r->c, FNN_ERR_FORMAT, "architecture: %s is not an object", where);
    const fnn_json_node *type = fnn_json_get(r->doc, n, "type");
    if (!type) return fail(r->c, FNN_ERR_FORMAT, "architecture: %s has no type", where);
    if (type->type != FNN_JSON_STRING) return fail(r->c, FNN_ERR_FORMAT, "architecture: %s type is not a string", where);
    if ((L->kind = fnn_layer_kind_from_name(type->str)) < 0) return fail(r->c, FNN_ERR_UNSUPPORTED, "architecture: %s has an unknown type \"%s\"", where, Q(q, type->str, type->len));
    if ((L->kind == FNN_LAYER_BATCHNORM || L->kind == FNN_LAYER_LAYERNORM) && r->minor < 1)
        return fail(r->c, FNN_ERR_FORMAT, "architecture: %s is a %s layer, which needs schema 1.1 (the file says 1.%d)",
                    where, type->str, r->minor);
    for (const fnn_json_node *m = fnn_json_child(r->doc, n); m; m = fnn_json_next(r->doc, m))
        if (!r->lenient && !layer_key_ok(L->kind, m->key))
            return fail(r->c, FNN_ERR_FORMAT, "architecture: %s (%s) has an unknown key \"%s\"", where, type->str,
                        Q(q, m->key, m->key_len));
    L->in = L->out = width;
    L->use_bias = 0;
    L->trainable = 1;
    L->wkind = FNN_WEIGHT_NATIVE;
    L->r_off = FNN_PLAN_NONE;
    const fnn_json_node *v;
    if ((v = fnn_json_get(r->doc, n, "trainable"))) {
        snprintf(w, sizeof w, "%s trainable", where);
        if (arch_bool(r, v, w, &L->trainable)) return r->c->rc;
    }
    if ((v = fnn_json_get(r->doc, n, "name")) && v->type != FNN_JSON_NULL) {
        if (v->type != FNN_JSON_STRING) return fail(r->c, FNN_ERR_FORMAT, "architecture: %s name is not a string", where);
        if (!(*name = dup_str(v->str, v->len))) return fail(r->c, FNN_ERR_NOMEM, "out of memory");
    }
    switch (L->kind) {
    case FNN_LAYER_DENSE:
        if (!(v = fnn_json_get(r->doc, n, "units"))) return fail(r->c, FNN_ERR_FORMAT, "architecture: %s has no units", where);
        snprintf(w, sizeof w, "%s units", where);
        if (arch_size(r, v, w, &L->out)) return r->c->rc;
        if (parse_activation(r, n, where, L, 0)) return r->c->rc;
        L->use_bias = 1;
        if ((v = fnn_json_get(r->doc, n, "use_bias"))) {
            snprintf(w, sizeof w, "%s use_bias", where);
            if (arch_bool(r, v, w, &L->use_bias)) return r->c->rc;
        }
        if ((v = fnn_json_get(r->doc, n, "l1"))) {
            snprintf(w, sizeof w, "%s l1", where);
            if (arch_number(r, v, w, 0, 0, HUGE_VAL, 0, &L->l1)) return r->c->rc;
        }
        if ((v = fnn_json_get(r->doc, n, "l2"))) {
            snprintf(w, sizeof w, "%s l2", where);
            if (arch_number(r, v, w, 0, 0, HUGE_VAL, 0, &L->l2)) return r->c->rc;
        }
        if (parse_precision(r, n, where, L)) return r->c->rc;
        if ((v = fnn_json_get(r->doc, n, "max_norm")) && v->type != FNN_JSON_NULL) {
            if (r->minor < 1)
                return fail(r->c, FNN_ERR_FORMAT, "architecture: %s max_norm needs schema 1.1 (the file says 1.%d)",
                            where, r->minor);
            snprintf(w, sizeof w, "%s max_norm", where);
            if (arch_number(r, v, w, 0, 1, HUGE_VAL, 0, &L->max_norm)) return r->c->rc;
        }
        break;
    case FNN_LAYER_BATCHNORM:
    case FNN_LAYER_LAYERNORM:
        L->momentum = 0.99; /* Keras's defaults, and PyTorch's LayerNorm epsilon */
        L->eps = L->kind == FNN_LAYER_BATCHNORM ? 1e-3 : 1e-5;
        if (L->kind == FNN_LAYER_BATCHNORM && (v = fnn_json_get(r->doc, n, "momentum"))) {
            snprintf(w, sizeof w, "%s momentum", where);
            if (arch_number(r, v, w, 0, 0, 1, 0, &L->momentum)) return r->c->rc;
        }
        if ((v = fnn_json_get(r->doc, n, "epsilon"))) {
            snprintf(w, sizeof w, "%s epsilon", where);
            if (arch_number(r, v, w, 0, 1, HUGE_VAL, 0, &L->eps)) return r->c->rc;
        }
        break;
    case FNN_LAYER_DROPOUT:
        if (!(v = fnn_json_get(r->doc, n, "p"))) return fail(r->c, FNN_ERR_FORMAT, "architecture: %s has no p", where);
        snprintf(w, sizeof w, "%s p", where);
        if (arch_number(r, v, w, 0, 0, 1, 1, &L->p)) return r->c->rc;
        break;
    default:
        if (parse_activation(r, n, where, L, 1)) return r->c->rc;
        break;
    }
    return 0;
}

static int parse_architecture(ctx *c, arch *m, const char *text, size_t len, int minor) {
    const int lenient = minor > FNN_IO_SCHEMA_MINOR;
    fnn_json doc;
    char jerr[256];
    int rc = fnn_json_parse(&doc, text, len, jerr, sizeof jerr);
    if (rc) return fail(c, rc, "architecture JSON: %s", jerr);
    arch_reader r = {c, &doc, lenient, minor, "architecture"};
    const fnn_json_node *root = &doc.nodes[0], *v;
    char q[256];
    if (root->type != FNN_JSON_OBJECT) {
        fail(c, FNN_ERR_FORMAT, "architecture: not a JSON object");
        goto done;
    }
    static const char *const keys[] = {"input_dim", "dtype", "loss", "huber_delta", "link", "layers"};
    for (const fnn_json_node *k = fnn_json_child(&doc, root); k && !lenient; k = fnn_json_next(&doc, k)) {
        int ok = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) ok |= strcmp(k->key, keys[i]) == 0;
        if (!ok) {
            fail(c, FNN_ERR_FORMAT, "architecture: unknown key \"%s\"", Q(q, k->key, k->key_len));
            goto done;
        }
    }
    if (!(v = fnn_json_get(&doc, root, "input_dim"))) { fail(c, FNN_ERR_FORMAT, "architecture: no input_dim"); goto done; }
    if (arch_size(&r, v, "input_dim", &m->n_in)) goto done;
    if (!(v = fnn_json_get(&doc, root, "dtype"))) { fail(c, FNN_ERR_FORMAT, "architecture: no dtype"); goto done; }
    if (v->type != FNN_JSON_STRING) { fail(c, FNN_ERR_FORMAT, "architecture: dtype is not a string"); goto done; }
    if (strcmp(v->str, "float32") == 0) m->dtype = 4;
    else if (strcmp(v->str, "float64") == 0) m->dtype = 8;
    else { fail(c, FNN_ERR_UNSUPPORTED, "architecture: dtype \"%s\" (expected float32 or float64)", Q(q, v->str, v->len)); goto done; }

    m->loss = -1;
    if ((v = fnn_json_get(&doc, root, "loss")) && v->type != FNN_JSON_NULL) {
        if (v->type != FNN_JSON_STRING) { fail(c, FNN_ERR_FORMAT, "architecture: loss is not a string"); goto done; }
        if ((m->loss = fnn_loss_from_name(v->str)) < 0) {
            fail(c, FNN_ERR_UNSUPPORTED, "architecture: unknown loss \"%s\"", Q(q, v->str, v->len));
            goto done;
        }
    }
    m->loss_param = 1.0;
    if ((v = fnn_json_get(&doc, root, "huber_delta")) && v->type != FNN_JSON_NULL)
        if (arch_number(&r, v, "huber_delta", 0, 1, HUGE_VAL, 0, &m->loss_param)) goto done;
    const int want_link = m->loss < 0 ? FNN_ACT_LINEAR : fnn_loss_link(m->loss);
    if ((v = fnn_json_get(&doc, root, "link")) && v->type != FNN_JSON_NULL) {
        if (v->type != FNN_JSON_STRING) { fail(c, FNN_ERR_FORMAT, "architecture: link is not a string"); goto done; }
        int link = fnn_act_from_name(v->str);
        if (link != FNN_ACT_SOFTMAX && link != FNN_ACT_SIGMOID && link != FNN_ACT_LINEAR) {
            fail(c, FNN_ERR_FORMAT, "architecture: link \"%s\" (expected softmax, sigmoid or linear)", Q(q, v->str, v->len));
            goto done;
        }
        if (link != want_link) {
            fail(c, FNN_ERR_FORMAT, "architecture: link \"%s\" does not match loss %s (its link is %s)", v->str,
                 m->loss < 0 ? "null" : fnn_loss_name(m->loss), fnn_act_name(want_link));
            goto done;
        }
    }

    const fnn_json_node *layers = fnn_json_get(&doc, root, "layers");
    if (!layers) { fail(c, FNN_ERR_FORMAT, "architecture: no layers"); goto done; }
    if (layers->type != FNN_JSON_ARRAY) { fail(c, FNN_ERR_FORMAT, "architecture: layers is not an array"); goto done; }
    if (layers->count < 1 || layers->count > FNN_IO_MAX_LAYERS) {
        fail(c, FNN_ERR_FORMAT, "architecture: %u layers (expected 1 to %d)", (unsigned)layers->count, FNN_IO_MAX_LAYERS);
        goto done;
    }
    m->L = calloc(layers->count, sizeof *m->L);
    m->names = calloc(layers->count, sizeof *m->names);
    if (!m->L || !m->names) { fail(c, FNN_ERR_NOMEM, "out of memory"); goto done; }
    m->nl = (int)layers->count;
    size_t width = m->n_in;
    int i = 0;
    for (const fnn_json_node *n = fnn_json_child(&doc, layers); n; n = fnn_json_next(&doc, n), i++) {
        if (parse_layer(&r, n, i, width, &m->L[i], &m->names[i])) goto done;
        if (m->L[i].wkind != FNN_WEIGHT_NATIVE && m->dtype != 4) {
            fail(c, FNN_ERR_FORMAT, "architecture: layers[%d] has %s weights but the model's dtype is float64 (low "
                 "precision is for float32 models)", i, fnn_weight_kind_name(m->L[i].wkind));
            goto done;
        }
        width = m->L[i].out;
    }
done:
    fnn_json_free(&doc);
    return c->rc;
}

/* ---- the training state (schema 1.1, optional): what fit needs to continue with the same bits ---- */

static int train_uint(arch_reader *r, const fnn_json_node *n, const char *where, uint64_t max, uint64_t *out) {
    if (n->type != FNN_JSON_NUMBER || fnn_json_uint(n, out) || *out > max)
        return fail(r->c, FNN_ERR_FORMAT, "training: %s is not an integer in [0, %llu]", where, (unsigned long long)max);
    return 0;
}

/* null for off, else a number > 0 */
static int train_clip(arch_reader *r, const fnn_json_node *n, const char *where, double *out) {
    *out = 0;
    return n->type == FNN_JSON_NULL ? 0 : arch_number(r, n, where, 0, 1, HUGE_VAL, 0, out);
}

static int parse_schedule(arch_reader *r, const fnn_json_node *n, fnn_train_state *t) {
    static const char *const keys[] = {"kind", "per", "initial_lr", "warmup", "period", "factor", "staircase"};
    const fnn_json_node *v[7];
    char q[256];
    if (n->type != FNN_JSON_OBJECT) return fail(r->c, FNN_ERR_FORMAT, "training: schedule is not an object or null");
    for (const fnn_json_node *k = fnn_json_child(r->doc, n); k && !r->lenient; k = fnn_json_next(r->doc, k)) {
        int ok = 0;
        for (size_t i = 0; i < 7; i++) ok |= strcmp(k->key, keys[i]) == 0;
        if (!ok) return fail(r->c, FNN_ERR_FORMAT, "training: schedule has an unknown key \"%s\"", Q(q, k->key, k->key_len));
    }
    for (size_t i = 0; i < 7; i++)
        if (!(v[i] = fnn_json_get(r->doc, n, keys[i])))
            return fail(r->c, FNN_ERR_FORMAT, "training: schedule has no %s", keys[i]);
    fnn_schedule sc = {0};
    if (v[0]->type != FNN_JSON_STRING) return fail(r->c, FNN_ERR_FORMAT, "training: schedule kind is not a string");
    for (sc.kind = FNN_SCHED_CONSTANT; sc.kind < FNN_SCHED__COUNT; sc.kind++)
        if (strcmp(v[0]->str, fnn_schedule_name(sc.kind)) == 0) break;
    if (sc.kind == FNN_SCHED__COUNT)
        return fail(r->c, FNN_ERR_UNSUPPORTED, "training: unknown schedule kind \"%s\"", Q(q, v[0]->str, v[0]->len));
    int per_step = v[1]->type == FNN_JSON_STRING && strcmp(v[1]->str, "step") == 0;
    if (!per_step && !(v[1]->type == FNN_JSON_STRING && strcmp(v[1]->str, "epoch") == 0))
        return fail(r->c, FNN_ERR_FORMAT, "training: schedule per is not \"step\" or \"epoch\"");
    if (!per_step && sc.kind == FNN_SCHED_CONSTANT)
        return fail(r->c, FNN_ERR_FORMAT, "training: a per-epoch schedule is step, exponential or cosine");
    if (arch_number(r, v[2], "schedule initial_lr", 0, 1, HUGE_VAL, 0, &sc.initial) ||
        arch_number(r, v[3], "schedule warmup", 0, 0, HUGE_VAL, 0, &sc.warmup) ||
        arch_number(r, v[4], "schedule period", 0, 1, HUGE_VAL, 0, &sc.period) ||
        arch_number(r, v[5], "schedule factor", 0, 0, HUGE_VAL, 0, &sc.factor) ||
        arch_bool(r, v[6], "schedule staircase", &sc.staircase))
        return r->c->rc;
    if (fnn_schedule_check(&sc))
        return fail(r->c, FNN_ERR_FORMAT, "training: schedule factor %.17g is outside %s", sc.factor,
                    sc.kind == FNN_SCHED_COSINE ? "[0, initial_lr]" : "(0, 1]");
    if (per_step) t->opt.sched = sc;
    else t->epoch_sched = sc;
    return 0;
}

/* The "training" metadata (docs/FORMAT.md) into t: the optimizer as the engine runs it, a schedule,
 * the seed and the counters. */
static int parse_training(ctx *c, fnn_train_state *t, const char *text, size_t len, int minor) {
    static const char *const keys[] = {"optimizer", "lr", "momentum", "nesterov", "weight_decay", "beta1", "beta2",
                                       "eps", "alpha", "centered", "clipnorm", "global_clipnorm", "clipvalue",
                                       "schedule", "seed", "epochs_seen", "step", "opt_step"};
    enum { NK = sizeof keys / sizeof keys[0] };
    fnn_json doc;
    char jerr[256], q[256];
    memset(t, 0, sizeof *t);
    if (minor < 1) return fail(c, FNN_ERR_FORMAT, "__metadata__ training needs schema 1.1 (the file says 1.%d)", minor);
    int rc = fnn_json_parse(&doc, text, len, jerr, sizeof jerr);
    if (rc) return fail(c, rc, "training JSON: %s", jerr);
    arch_reader r = {c, &doc, minor > FNN_IO_SCHEMA_MINOR, minor, "training"};
    const fnn_json_node *root = &doc.nodes[0], *v[NK];
    uint64_t u[4];
    fnn_optim_desc *o = &t->opt;
    if (root->type != FNN_JSON_OBJECT) {
        fail(c, FNN_ERR_FORMAT, "training: not a JSON object");
        goto done;
    }
    for (const fnn_json_node *k = fnn_json_child(&doc, root); k && !r.lenient; k = fnn_json_next(&doc, k)) {
        int ok = 0;
        for (size_t i = 0; i < NK; i++) ok |= strcmp(k->key, keys[i]) == 0;
        if (!ok) {
            fail(c, FNN_ERR_FORMAT, "training: unknown key \"%s\"", Q(q, k->key, k->key_len));
            goto done;
        }
    }
    for (size_t i = 0; i < NK; i++)
        if (!(v[i] = fnn_json_get(&doc, root, keys[i]))) {
            fail(c, FNN_ERR_FORMAT, "training: no %s", keys[i]);
            goto done;
        }
    if (v[0]->type != FNN_JSON_STRING || (o->kind = fnn_optim_from_name(v[0]->str)) < 0) {
        fail(c, v[0]->type == FNN_JSON_STRING ? FNN_ERR_UNSUPPORTED : FNN_ERR_FORMAT, "training: unknown optimizer %s",
             v[0]->type == FNN_JSON_STRING ? Q(q, v[0]->str, v[0]->len) : "(not a string)");
        goto done;
    }
    if (arch_number(&r, v[1], "lr", 0, 0, HUGE_VAL, 0, &o->lr) ||
        arch_number(&r, v[2], "momentum", 0, 0, HUGE_VAL, 0, &o->momentum) || arch_bool(&r, v[3], "nesterov", &o->nesterov) ||
        arch_number(&r, v[4], "weight_decay", 0, 0, HUGE_VAL, 0, &o->weight_decay) ||
        arch_number(&r, v[5], "beta1", 0, 0, 1, 1, &o->beta1) || arch_number(&r, v[6], "beta2", 0, 0, 1, 1, &o->beta2) ||
        arch_number(&r, v[7], "eps", 0, 0, HUGE_VAL, 0, &o->eps) || arch_number(&r, v[8], "alpha", 0, 0, 1, 0, &o->alpha) ||
        arch_bool(&r, v[9], "centered", &o->centered) || train_clip(&r, v[10], "clipnorm", &o->clipnorm) ||
        train_clip(&r, v[11], "global_clipnorm", &o->global_clipnorm) || train_clip(&r, v[12], "clipvalue", &o->clipvalue))
        goto done;
    if ((o->clipnorm > 0) + (o->global_clipnorm > 0) + (o->clipvalue > 0) > 1) {
        fail(c, FNN_ERR_FORMAT, "training: more than one of clipnorm, global_clipnorm and clipvalue is set");
        goto done;
    }
    if (v[13]->type != FNN_JSON_NULL && parse_schedule(&r, v[13], t)) goto done;
    if (train_uint(&r, v[14], "seed", UINT64_MAX, &u[0]) || train_uint(&r, v[15], "epochs_seen", INT64_MAX, &u[1]) ||
        train_uint(&r, v[16], "step", INT64_MAX, &u[2]) || train_uint(&r, v[17], "opt_step", INT64_MAX, &u[3]))
        goto done;
    t->seed = u[0];
    t->epochs_seen = (int64_t)u[1];
    t->step = (int64_t)u[2];
    t->opt_step = (int64_t)u[3];
done:
    fnn_json_free(&doc);
    return c->rc;
}

/* ---- tensors against the architecture ------------------------------------------------------------- */

static void store_le(void *dst, const unsigned char *src, size_t n, size_t elem) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < elem; b++) d[i * elem + b] = src[i * elem + elem - 1 - b];
#else
    memcpy(dst, src, n * elem);
#endif
}


/* "layers.<i>.<name>" with i in canonical decimal: i and where the name starts, else -1. */
static int param_name(const char *s, size_t len, int *layer, size_t *name_at) {
    if (len < 8 || memcmp(s, "layers.", 7) != 0) return -1;
    size_t p = 7;
    long v = 0;
    size_t d0 = p;
    while (p < len && s[p] >= '0' && s[p] <= '9') {
        if (p - d0 >= 6) return -1;
        v = v * 10 + (s[p++] - '0');
    }
    if (p == d0 || (s[d0] == '0' && p - d0 > 1) || p >= len || s[p] != '.') return -1;
    *layer = (int)v;
    *name_at = p + 1;
    return 0;
}

/* The tensor k of layer l that "layers.<l>.<name>" (s, len) names, or -1. */
static int param_slot(const arch *m, const char *s, size_t len, int *layer) {
    size_t at;
    if (param_name(s, len, layer, &at) || *layer >= m->nl) return -1;
    fnn_tensor_info t[FNN_LAYER_MAX_TENSORS];
    for (int k = 0, n = fnn_layer_tensors(&m->L[*layer], t); k < n; k++)
        if (strlen(t[k].name) == len - at && memcmp(s + at, t[k].name, len - at) == 0) return k;
    return -1;
}

/* "optimizer.<state>.layers.<l>.<name>": the state buffer's index and the tensor's slot, or -1. */
static int optim_slot(const arch *m, const fnn_optim_desc *o, const char *s, size_t len, int *state, int *layer) {
    if (len < 10 || memcmp(s, "optimizer.", 10) != 0) return -1;
    for (*state = 0; *state < fnn_optim_n_state(o); (*state)++) {
        const char *nm = fnn_optim_state_name(o, *state);
        size_t nl = strlen(nm);
        if (len > 10 + nl && memcmp(s + 10, nm, nl) == 0 && s[10 + nl] == '.')
            return param_slot(m, s + 11 + nl, len - 11 - nl, layer);
    }
    return -1;
}


/* The file's tensor t as the parameter i of layer l (its name for messages): dtype and shape. */
static int check_tensor(ctx *c, const arch *m, const tensor *t, int l, const fnn_tensor_info *i, const char *name) {
    const fnn_layer_desc *L = &m->L[l];
    if (L->wkind != FNN_WEIGHT_NATIVE) { /* low precision: each tensor's own dtype (I8, BF16 or F32) */
        const char *want = i->wkind == FNN_WEIGHT_INT8 ? "I8" : i->wkind == FNN_WEIGHT_BF16 ? "BF16" : "F32";
        if (strcmp(t->dtype_name, want) != 0)
            return fail(c, FNN_ERR_FORMAT, "tensor \"%s\" is %s but layer %d has %s weights: expected %s", name,
                        t->dtype_name, l, fnn_weight_kind_name(L->wkind), want);
    } else if (t->dtype != m->dtype)
        return fail(c, t->dtype ? FNN_ERR_FORMAT : FNN_ERR_UNSUPPORTED, "tensor \"%s\" is %s but the model's dtype is %s",
                    name, t->dtype_name, m->dtype == 4 ? "float32 (F32)" : "float64 (F64)");
    int ok = i->ndim == 2 ? t->ndim == 2 && t->shape[0] == i->shape[0] && t->shape[1] == i->shape[1]
                          : t->ndim == 1 && t->shape[0] == i->shape[0];
    if (ok) return 0;
    char sh[128];
    size_t o = 0;
    sh[0] = '\0';
    for (size_t d = 0; d < t->ndim; d++)
        o += (size_t)snprintf(sh + o, sizeof sh - o, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
    if (i->ndim == 1 && i->shape[0] != L->out) /* an int8 layer's input_range */
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\" has shape [%s]: expected [%zu]", name, sh, i->shape[0]);
    if (i->ndim == 1)
        return fail(c, FNN_ERR_FORMAT, "tensor \"%s\" has shape [%s] but layer %d has %zu units: expected [%zu]", name, sh,
                    l, L->out, L->out);
    return fail(c, FNN_ERR_FORMAT, "tensor \"%s\" has shape [%s] but layer %d maps %zu inputs to %zu units: expected "
                "[%zu, %zu]", name, sh, l, L->in, L->out, L->in, L->out);
}

/* A tensor's bytes into the parameter buffer at dst: as stored, or bfloat16 widened to float32. */
static void store_param(void *dst, const unsigned char *src, size_t n, const tensor *t) {
    if (strcmp(t->dtype_name, "BF16") != 0) {
        store_le(dst, src, n, t->elem);
        return;
    }
    float *d = dst;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[2 * i] << 16 | (uint32_t)src[2 * i + 1] << 24;
        memcpy(d + i, &u, sizeof u);
    }
}

/* The values of the low-precision tensors (copied to params) that the arithmetic relies on. */
static int check_values(ctx *c, const fnn_layer_desc *L, int l, const void *params) {
    const float *f = params;
    if (L->wkind != FNN_WEIGHT_INT8) return 0;
    const int8_t *w = (const int8_t *)(f + L->w_off);
    for (size_t i = 0; i < L->in * L->out; i++)
        if (w[i] < -FNN_Q_WMAX || w[i] > FNN_Q_WMAX)
            return fail(c, FNN_ERR_FORMAT, "tensor \"layers.%d.weight\": value %d at [%zu, %zu] is outside [-%d, %d] "
                        "(int8 weights have 7 bits)", l, w[i], i / L->out, i % L->out, FNN_Q_WMAX, FNN_Q_WMAX);
    for (size_t j = 0; j < L->out; j++) {
        float v = f[L->s_off + j];
        if (!(v >= 0) || !isfinite(v))
            return fail(c, FNN_ERR_FORMAT, "tensor \"layers.%d.weight_scale\": value %g at [%zu] is not a finite "
                        "scale >= 0", l, (double)v, j);
    }
    if (L->r_off != FNN_PLAN_NONE) {
        float lo = f[L->r_off], hi = f[L->r_off + 1];
        if (!isfinite(lo) || !isfinite(hi) || !(lo <= 0) || !(hi >= 0))
            return fail(c, FNN_ERR_FORMAT, "tensor \"layers.%d.input_range\": [%g, %g] is not a finite range "
                        "[lo, hi] with lo <= 0 <= hi", l, (double)lo, (double)hi);
    }
    return 0;
}

/* Check every tensor against the architecture (and the training state, when train != NULL), lay the
 * layers' parameters out one after another (fnn_layer_place), and copy the tensors into one parameter
 * buffer (*params, n_params values) and the optimizer's state into *state (n_state copies of it). */
static int attach_tensors(ctx *c, arch *m, const container *f, const fnn_train_state *train, void **params,
                          size_t *n_params_out, void **state) {
    const int ns = train ? fnn_optim_n_state(&train->opt) : 0;
    const size_t slots = (size_t)m->nl * FNN_LAYER_MAX_TENSORS;
    const tensor **w = calloc(slots * (size_t)(1 + ns), sizeof *w); /* [s * slots + l * MAX + k], s = 0: params */
    if (!w) return fail(c, FNN_ERR_NOMEM, "out of memory");
    char q[256], name[320];
    for (size_t i = 0; i < f->n_t && !c->rc; i++) {
        const tensor *t = &f->t[i];
        int l, k, st, s = -1;
        if (train && (k = optim_slot(m, &train->opt, t->name, t->name_len, &st, &l)) >= 0) s = st + 1;
        else if ((k = param_slot(m, t->name, t->name_len, &l)) >= 0) s = 0;
        if (s < 0) {
            fail(c, FNN_ERR_FORMAT, "unexpected tensor \"%s\": the architecture%s has no such %s",
                 Q(q, t->name, t->name_len), train ? " and the training state" : "",
                 t->name_len >= 10 && memcmp(t->name, "optimizer.", 10) == 0 ? "optimizer state" : "parameter");
            break;
        }
        w[(size_t)s * slots + (size_t)l * FNN_LAYER_MAX_TENSORS + (size_t)k] = t;
    }
    size_t n_params = 0;
    for (int l = 0; l < m->nl && !c->rc; l++) {
        if (train && m->L[l].kind == FNN_LAYER_DENSE && m->L[l].wkind != FNN_WEIGHT_NATIVE) {
            fail(c, FNN_ERR_FORMAT, "training state: layer %d has %s weights, which do not train", l,
                 fnn_weight_kind_name(m->L[l].wkind));
            break;
        }
        fnn_tensor_info ti[FNN_LAYER_MAX_TENSORS];
        fnn_layer_place(&m->L[l], n_params); /* sizes are bounded: the tensors lie within the data section */
        for (int k = 0, n = fnn_layer_tensors(&m->L[l], ti); k < n && !c->rc; k++) {
            for (int s = 0; s <= ns && !c->rc; s++) {
                const tensor *t = w[(size_t)s * slots + (size_t)l * FNN_LAYER_MAX_TENSORS + (size_t)k];
                if (s) snprintf(name, sizeof name, "optimizer.%s.layers.%d.%s", fnn_optim_state_name(&train->opt, s - 1),
                                l, ti[k].name);
                else snprintf(name, sizeof name, "layers.%d.%s", l, ti[k].name);
                if (!t) fail(c, FNN_ERR_FORMAT, "missing tensor \"%s\" (layer %d is %s)", name, l,
                             fnn_layer_kind_name(m->L[l].kind));
                else check_tensor(c, m, t, l, &ti[k], name);
            }
            n_params += fnn_tensor_slots(&ti[k]); /* int8: four to a value */
        }
    }
    if (!c->rc) {
        *n_params_out = n_params;
        *params = fnn_aligned_alloc(n_params * (size_t)m->dtype);
        if (!*params) fail(c, FNN_ERR_NOMEM, "out of memory for %zu parameters", n_params);
        else if (ns && !(*state = fnn_aligned_alloc((size_t)ns * n_params * (size_t)m->dtype)))
            fail(c, FNN_ERR_NOMEM, "out of memory for the optimizer's state");
        else if (n_params) memset(*params, 0, n_params * (size_t)m->dtype); /* the int8 slots' padding */
    }
    for (int l = 0; l < m->nl && !c->rc; l++) {
        fnn_tensor_info ti[FNN_LAYER_MAX_TENSORS];
        for (int k = 0, n = fnn_layer_tensors(&m->L[l], ti); k < n; k++)
            for (int s = 0; s <= ns; s++) {
                const tensor *t = w[(size_t)s * slots + (size_t)l * FNN_LAYER_MAX_TENSORS + (size_t)k];
                char *dst = s ? (char *)*state + ((size_t)(s - 1) * n_params + ti[k].off) * (size_t)m->dtype
                              : (char *)*params + ti[k].off * (size_t)m->dtype;
                store_param(dst, f->data + t->begin, (size_t)((t->end - t->begin) / t->elem), t);
            }
        if (m->L[l].kind == FNN_LAYER_DENSE) check_values(c, &m->L[l], l, *params);
    }
    free(w);
    return c->rc;
}

/* ---- plain safetensors files (weights from elsewhere: load_weights) ------------------------------ */

struct fnn_st_file {
    container f;
};

int fnn_st_open(const void *data, size_t len, fnn_st_file **out) {
    if (!out || (!data && len)) {
        fnn_io_set_error("fnn_st_open: %s is NULL", out ? "data" : "out");
        return FNN_ERR_ARG;
    }
    *out = NULL;
    ctx c = {{0}, 0};
    fnn_st_file *s = calloc(1, sizeof *s);
    if (!s) {
        fnn_io_set_error("out of memory");
        return FNN_ERR_NOMEM;
    }
    if (parse_container(&c, data, len, &s->f)) {
        fnn_io_set_error("%s", c.msg);
        fnn_st_close(s);
        return c.rc;
    }
    fnn_io_clear_error();
    *out = s;
    return FNN_OK;
}

size_t fnn_st_n_tensors(const fnn_st_file *s) { return s ? s->f.n_t : 0; }

int fnn_st_tensor_at(const fnn_st_file *s, size_t i, const char **name, const char **dtype, size_t *ndim,
                     const uint64_t **shape, size_t *begin, size_t *end) {
    if (!s || i >= s->f.n_t) return FNN_ERR_ARG;
    const tensor *t = &s->f.t[i];
    *name = t->name;
    *dtype = t->dtype_name;
    *ndim = t->ndim;
    *shape = t->shape;
    *begin = s->f.data_start + (size_t)t->begin; /* within the file: checked against its length */
    *end = s->f.data_start + (size_t)t->end;
    return FNN_OK;
}

int fnn_st_n_metadata(const fnn_st_file *s) { return s && s->f.meta ? (int)s->f.meta->count : 0; }

int fnn_st_metadata_at(const fnn_st_file *s, int i, const char **key, const char **value) {
    if (!s || !s->f.meta || i < 0 || (uint32_t)i >= s->f.meta->count) return FNN_ERR_ARG;
    const fnn_json_node *n = fnn_json_child(&s->f.header, s->f.meta);
    while (i-- > 0) n = fnn_json_next(&s->f.header, n);
    *key = n->key;
    *value = n->str;
    return FNN_OK;
}

void fnn_st_close(fnn_st_file *s) {
    if (!s) return;
    container_free(&s->f);
    free(s);
}

/* ---- entry points ------------------------------------------------------------------------------------- */

static int build_model(ctx *c, const unsigned char *buf, size_t len, fnn_model **out) {
    container f;
    arch a = {0};
    fnn_model *m = NULL;
    char q[256];
    if (parse_container(c, buf, len, &f)) goto done;
    const fnn_json_node *fmt = meta_get(&f, "format"), *schema = meta_get(&f, "fastnn_schema"),
                        *arch = meta_get(&f, "architecture");
    if (!f.meta) { fail(c, FNN_ERR_FORMAT, "no __metadata__: a safetensors file but not a fastnn model"); goto done; }
    if (!fmt || strcmp(fmt->str, "fastnn") != 0) {
        fail(c, FNN_ERR_FORMAT, "__metadata__ format is %s%s%s, not \"fastnn\": not a fastnn model", fmt ? "\"" : "",
             fmt ? Q(q, fmt->str, fmt->len) : "missing", fmt ? "\"" : "");
        goto done;
    }
    int major, minor;
    if (!schema) { fail(c, FNN_ERR_FORMAT, "__metadata__ has no fastnn_schema"); goto done; }
    if (parse_schema(schema->str, &major, &minor) || major < 1) {
        fail(c, FNN_ERR_FORMAT, "__metadata__ fastnn_schema \"%s\" is not a schema version (MAJOR.MINOR)",
             Q(q, schema->str, schema->len));
        goto done;
    }
    if (major > FNN_IO_SCHEMA_MAJOR) {
        fail(c, FNN_ERR_UNSUPPORTED, "the file has schema %d.%d, written by a newer fastnn; this version (%s) reads "
             "schema %d.x: upgrade fastnn", major, minor, FNN_VERSION_STRING, FNN_IO_SCHEMA_MAJOR);
        goto done;
    }
    if (!arch) { fail(c, FNN_ERR_FORMAT, "__metadata__ has no architecture"); goto done; }
    m = calloc(1, sizeof *m);
    if (!m) { fail(c, FNN_ERR_NOMEM, "out of memory"); goto done; }
    m->schema_major = major;
    m->schema_minor = minor;
    if (parse_architecture(c, &a, arch->str, arch->len, minor)) goto done;
    const fnn_json_node *training = meta_get(&f, "training");
    if (training) {
        if (parse_training(c, &m->training, training->str, training->len, minor)) goto done;
        m->has_training = 1;
        m->n_state = fnn_optim_n_state(&m->training.opt);
    }
    size_t n_params = 0;
    if (attach_tensors(c, &a, &f, training ? &m->training : NULL, &m->params, &n_params, &m->opt_state)) goto done;
    m->dtype = a.dtype;
    int rc = fnn_plan_init(&m->plan, a.L, a.nl, a.n_in, n_params);
    if (!rc) rc = fnn_plan_set_loss(&m->plan, a.loss, a.loss_param);
    if (!rc) rc = fnn_plan_pack(&m->plan, m->params);
    if (rc) { /* the reader checked everything the plan checks: only memory can fail here */
        fail(c, rc, rc == FNN_ERR_NOMEM ? "out of memory" : "the architecture cannot be planned");
        goto done;
    }
    m->names = a.names;
    a.names = NULL;
    m->arch_json = dup_str(arch->str, arch->len);
    m->n_meta = (int)f.meta->count;
    m->meta_keys = calloc(f.meta->count ? f.meta->count : 1, sizeof *m->meta_keys);
    m->meta_values = calloc(f.meta->count ? f.meta->count : 1, sizeof *m->meta_values);
    if (!m->arch_json || !m->meta_keys || !m->meta_values) { fail(c, FNN_ERR_NOMEM, "out of memory"); goto done; }
    int i = 0;
    for (const fnn_json_node *n = fnn_json_child(&f.header, f.meta); n; n = fnn_json_next(&f.header, n), i++)
        if (!(m->meta_keys[i] = dup_str(n->key, n->key_len)) || !(m->meta_values[i] = dup_str(n->str, n->len))) {
            fail(c, FNN_ERR_NOMEM, "out of memory");
            goto done;
        }
done:
    container_free(&f);
    arch_free(&a);
    if (c->rc) {
        fnn_model_free(m);
        m = NULL;
    }
    *out = m;
    return c->rc;
}

int fnn_model_load_buffer(const void *data, size_t len, fnn_model **out) {
    if (!out) {
        fnn_io_set_error("fnn_model_load_buffer: out is NULL");
        return FNN_ERR_ARG;
    }
    *out = NULL;
    if (!data && len) {
        fnn_io_set_error("fnn_model_load_buffer: data is NULL");
        return FNN_ERR_ARG;
    }
    ctx c = {{0}, 0};
    if (build_model(&c, data, len, out)) {
        fnn_io_set_error("%s", c.msg);
        return c.rc;
    }
    fnn_io_clear_error();
    return FNN_OK;
}

/* `path` opened for reading if it is a regular file; NULL with errno (EISDIR, EINVAL for a FIFO, a
 * device or a socket) otherwise.  Opened without blocking and checked before anything is read: a
 * FIFO with no writer would block open() itself, and a device read forever. */
static FILE *open_regular(const char *path, const char **why) {
    *why = NULL;
#ifdef FNN_HAVE_FSTAT
    int flags = O_RDONLY | O_NONBLOCK;
#ifdef O_CLOEXEC
    flags |= O_CLOEXEC;
#endif
#ifdef O_NOCTTY
    flags |= O_NOCTTY;
#endif
    int fd = open(path, flags);
    if (fd < 0) return NULL;
    struct stat st;
    int fl;
    st.st_mode = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (fl = fcntl(fd, F_GETFL)) < 0 ||
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int isdir = S_ISDIR(st.st_mode);
        *why = isdir ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO, not a regular file" : "not a regular file";
        close(fd);
        errno = isdir ? EISDIR : EINVAL;
        return NULL;
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return fp;
#else
    return fopen(path, "rb");
#endif
}

int fnn_model_load(const char *path, fnn_model **out) {
    if (out) *out = NULL;
    if (!out || !path) {
        fnn_io_set_error("fnn_model_load: %s is NULL", out ? "path" : "out");
        return FNN_ERR_ARG;
    }
    const char *why;
    FILE *fp = open_regular(path, &why);
    if (!fp) {
        int e = errno;
        if (why) fnn_io_set_error("cannot read %s: %s", path, why);
        else fnn_io_set_error("cannot open %s: %s", path, strerror(e));
        errno = e;
        return FNN_ERR_IO;
    }
    unsigned char *buf = NULL;
    long size = -1;
    int rc = FNN_OK, e = 0;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        e = errno;
        fnn_io_set_error("cannot read %s: not a regular file (%s)", path, strerror(e));
        rc = FNN_ERR_IO;
    } else if ((unsigned long)size > SIZE_MAX - 1 || !(buf = malloc((size_t)size + 1))) {
        fnn_io_set_error("out of memory for the %ld-byte file %s", size, path);
        rc = FNN_ERR_NOMEM;
    } else {
        /* one byte more than the size: a file that grew while read is caught, not half read */
        size_t got = fread(buf, 1, (size_t)size + 1, fp);
        if (ferror(fp)) {
            e = errno;
            fnn_io_set_error("cannot read %s: %s", path, strerror(e));
            rc = FNN_ERR_IO;
        } else if (got != (size_t)size) {
            fnn_io_set_error("%s changed size while it was read (%zu bytes, expected %ld)", path, got, size);
            rc = FNN_ERR_IO;
        }
    }
    fclose(fp);
    if (rc == FNN_OK) {
        ctx c = {{0}, 0};
        if (build_model(&c, buf, (size_t)size, out)) {
            fnn_io_set_error("%s", c.msg);
            rc = c.rc;
        } else {
            fnn_io_clear_error();
        }
    }
    free(buf);
    if (e) errno = e;
    return rc;
}
