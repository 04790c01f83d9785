/* save.c - the model-file writer of the C API: fnn_model_save writes, atomically, the bytes that
 * Python's model.save writes for the same model (docs/FORMAT.md; fastnn/_format.py is the Python
 * writer, csrc/io.c the one reader).
 *
 * Same bytes, not only the same meaning: the header is the JSON that Python's json.dumps writes
 * (separators "," and ":", non-ASCII kept as UTF-8, the same escapes, the same key order), every
 * number is written as Python's repr writes a float (the shortest digits that read back to the same
 * double, in the same notation), layers without a name get the names Sequential.add gives them, the
 * header is padded with spaces to a multiple of 8, and the tensors follow in layer order.  So a
 * model trained from C and one trained from Python to the same weights save to identical files
 * (tests/test_ctrain.py compares them), and a file goes through load and save unchanged.
 *
 * The file appears whole or not at all: a temporary file in the target's directory (created with
 * the permissions a new file gets, or given the replaced file's), written, fsync'ed and renamed over
 * the target, then the directory fsync'ed.  On any failure the temporary file is removed and the
 * target is left as it was.  On Linux the temporary file is created unnamed (O_TMPFILE) and named
 * with linkat only once complete, so a process killed while writing leaves nothing behind; where
 * O_TMPFILE is not available it is named from the start, ".NAME.PID.N.tmp".
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* O_TMPFILE */
#endif
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define FNN_HAVE_POSIX_IO 1
#endif

/* The __metadata__ keys of the format itself (fastnn/_format.py RESERVED_KEYS): written first, in
 * this order; a model's extra metadata is every other key of the file it was loaded from. */
static const char *const reserved[] = {"format", "fastnn_schema", "fastnn_version", "architecture", "training"};

/* ---- a growing text buffer --------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void put_(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->cap - b->len <= n) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->len <= n && cap <= SIZE_MAX / 2) cap *= 2;
        char *p = cap - b->len > n ? realloc(b->p, cap) : NULL;
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(sbuf *b, const char *s) { put_(b, s, strlen(s)); }

static void putf_(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void putf_(sbuf *b, const char *fmt, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) b->oom = 1; /* only short numbers and names come here */
    else put_(b, buf, (size_t)n);
}

/* A JSON string as json.dumps(ensure_ascii=False) writes it: quote, backslash and the control
 * characters escaped (\n \r \t \b \f by name, the others as \u00xx), all else as is. */
static void put_string_(sbuf *b, const char *s, size_t n) {
    put_(b, "\"", 1);
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8] = {'\\', 0};
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (ch >= 0x20) continue;
            snprintf(esc, sizeof esc, "\\u%04x", ch);
        }
        put_(b, s + from, i - from);
        puts_(b, esc);
        from = i + 1;
    }
    put_(b, s + from, n - from);
    put_(b, "\"", 1);
}

static void put_cstring_(sbuf *b, const char *s) { put_string_(b, s, strlen(s)); }

/* A finite double as Python's repr writes it: the shortest digits that read back to v (printf's
 * correctly rounded %.*e at 1, 2, ... 17 digits), positional when the decimal exponent is in
 * [-4, 16), with at least one digit after the point ("1.0", "0.0001"), else d.ddde+XX ("1e-05"). */
static void put_number_(sbuf *b, double v) {
    if (v == 0) {
        puts_(b, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char buf[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v) break; /* printf and strtod share the locale's decimal point */
    }
    char digits[24];
    int nd = 0;
    const char *s = buf + (buf[0] == '-');
    for (; *s && *s != 'e'; s++) /* the digits, skipping whatever decimal point the locale has */
        if (*s >= '0' && *s <= '9' && nd < 20) digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    const int decpt = (*s == 'e' ? atoi(s + 1) : 0) + 1; /* v = 0.d1d2... x 10^decpt */
    if (v < 0) put_(b, "-", 1);
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            put_(b, "0.", 2);
            for (int i = 0; i < -decpt; i++) put_(b, "0", 1);
            put_(b, digits, (size_t)nd);
        } else if (decpt < nd) {
            put_(b, digits, (size_t)decpt);
            put_(b, ".", 1);
            put_(b, digits + decpt, (size_t)(nd - decpt));
        } else {
            put_(b, digits, (size_t)nd);
            for (int i = nd; i < decpt; i++) put_(b, "0", 1);
            put_(b, ".0", 2);
        }
    } else {
        put_(b, digits, 1);
        if (nd > 1) {
            put_(b, ".", 1);
            put_(b, digits + 1, (size_t)(nd - 1));
        }
        putf_(b, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    }
}

static void put_bool_(sbuf *b, int v) { puts_(b, v ? "true" : "false"); }

/* ---- the architecture -------------------------------------------------------------------------- */

/* Each layer's name: its own, or the one Sequential.add gives a layer without one (its kind, then
 * kind_1, kind_2, ...: the first not taken by an earlier layer).  Generated names are allocated in
 * own[l]; NULL on failure. */
static const char **layer_names_(const fnn_model *m, char **own) {
    const int nl = m->plan.nl;
    const char **names = calloc((size_t)nl, sizeof *names);
    size_t next[FNN_LAYER__COUNT] = {0}; /* names only get taken: the first free k never goes down */
    for (int l = 0; names && l < nl; l++) {
        if (m->names && m->names[l]) {
            names[l] = m->names[l];
            continue;
        }
        const int kind = m->plan.L[l].kind;
        const char *base = fnn_layer_kind_name(kind);
        char cand[48];
        for (size_t k = next[kind];; k++) {
            if (k) snprintf(cand, sizeof cand, "%s_%zu", base, k);
            else snprintf(cand, sizeof cand, "%s", base);
            int taken = 0;
            for (int j = 0; j < l && !taken; j++) taken = strcmp(names[j], cand) == 0;
            if (taken) continue;
            next[kind] = k + 1;
            break;
        }
        if (!(own[l] = malloc(strlen(cand) + 1))) {
            free(names);
            return NULL;
        }
        names[l] = strcpy(own[l], cand);
    }
    return names;
}

/* The alpha a spec stores: the value for the activations that take one (leaky_relu, elu), else null. */
static void put_alpha_(sbuf *b, const fnn_layer_desc *d) {
    if (fnn_act_default_alpha(d->act) != 0) put_number_(b, d->act_alpha);
    else puts_(b, "null");
}

/* Sequential.spec(): {"input_dim", "dtype", "loss", "link", "layers": [Layer.spec()...]} and
 * "huber_delta" for huber.  FNN_ERR_UNSUPPORTED for a layer kind this writer does not know. */
static int put_architecture_(sbuf *b, const fnn_model *m, const char *const *names) {
    const fnn_plan *p = &m->plan;
    putf_(b, "{\"input_dim\":%zu,\"dtype\":\"%s\",\"loss\":", p->n_in, m->dtype == (int)sizeof(double) ? "float64" : "float32");
    if (p->loss < 0) puts_(b, "null");
    else put_cstring_(b, fnn_loss_name(p->loss));
    puts_(b, ",\"link\":");
    put_cstring_(b, fnn_act_name(p->link));
    puts_(b, ",\"layers\":[");
    for (int l = 0; l < p->nl; l++) {
        const fnn_layer_desc *d = &p->L[l];
        if (l) put_(b, ",", 1);
        puts_(b, "{\"type\":");
        put_cstring_(b, fnn_layer_kind_name(d->kind));
        switch (d->kind) {
        case FNN_LAYER_DENSE:
            putf_(b, ",\"units\":%zu,\"activation\":", d->out);
            put_cstring_(b, fnn_act_name(d->act));
            puts_(b, ",\"alpha\":");
            put_alpha_(b, d);
            puts_(b, ",\"use_bias\":");
            put_bool_(b, d->use_bias);
            puts_(b, ",\"l1\":");
            put_number_(b, d->l1);
            puts_(b, ",\"l2\":");
            put_number_(b, d->l2);
            puts_(b, ",\"trainable\":");
            put_bool_(b, d->trainable);
            break;
        case FNN_LAYER_DROPOUT:
            puts_(b, ",\"p\":");
            put_number_(b, d->p);
            break;
        case FNN_LAYER_ACTIVATION:
            puts_(b, ",\"activation\":");
            put_cstring_(b, fnn_act_name(d->act));
            puts_(b, ",\"alpha\":");
            put_alpha_(b, d);
            break;
        case FNN_LAYER_BATCHNORM:
            puts_(b, ",\"momentum\":");
            put_number_(b, d->momentum);
            /* fall through */
        case FNN_LAYER_LAYERNORM:
            puts_(b, ",\"epsilon\":");
            put_number_(b, d->eps);
            puts_(b, ",\"trainable\":");
            put_bool_(b, d->trainable);
            break;
        default:
            fnn_io_set_error("fnn_model_save: layer %d is a %s, which this writer cannot store", l,
                             fnn_layer_kind_name(d->kind) ? fnn_layer_kind_name(d->kind) : "layer of an unknown kind");
            return FNN_ERR_UNSUPPORTED;
        }
        puts_(b, ",\"name\":");
        put_cstring_(b, names[l]);
        if (d->kind == FNN_LAYER_DENSE && d->max_norm > 0) { /* Python writes it last, and only when set */
            puts_(b, ",\"max_norm\":");
            put_number_(b, d->max_norm);
        }
        if (d->kind == FNN_LAYER_DENSE && d->wkind != FNN_WEIGHT_NATIVE) { /* schema 1.2, as Dense.spec() */
            puts_(b, ",\"precision\":");
            put_cstring_(b, fnn_weight_kind_name(d->wkind));
            if (d->wkind == FNN_WEIGHT_INT8)
                puts_(b, d->r_off == FNN_PLAN_NONE ? ",\"input_scales\":\"per_row\"" : ",\"input_scales\":\"calibrated\"");
        }
        put_(b, "}", 1);
    }
    put_(b, "]", 1);
    if (p->loss == FNN_LOSS_HUBER) {
        puts_(b, ",\"huber_delta\":");
        put_number_(b, p->loss_param);
    }
    put_(b, "}", 1);
    return FNN_OK;
}

/* ---- the header ------------------------------------------------------------------------------------ */

static int is_reserved_(const char *key) {
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(key, reserved[i]) == 0) return 1;
    return 0;
}

/* The tensors in file order: each layer's, as the engine lists them (fnn_layer_tensors). */
typedef struct {
    char name[48];
    size_t off, count; /* off in values of the model's dtype, count in the tensor's own */
    size_t rows, cols; /* shape: [rows, cols] for a matrix, [cols] for a vector (rows 0) */
    int wkind;         /* FNN_WEIGHT_INT8: I8 bytes; FNN_WEIGHT_BF16: float32 values stored as BF16 */
} tensor_ref;

static size_t tensors_(const fnn_model *m, tensor_ref *t) {
    size_t n = 0;
    for (int l = 0; l < m->plan.nl; l++) {
        fnn_tensor_info ti[FNN_LAYER_MAX_TENSORS];
        for (int k = 0, nk = fnn_layer_tensors(&m->plan.L[l], ti); k < nk; k++, n++) {
            if (!t) continue;
            snprintf(t[n].name, sizeof t[n].name, "layers.%d.%s", l, ti[k].name);
            t[n].off = ti[k].off;
            t[n].rows = ti[k].ndim == 2 ? ti[k].shape[0] : 0;
            t[n].cols = ti[k].ndim == 2 ? ti[k].shape[1] : ti[k].shape[0];
            t[n].count = ti[k].ndim == 2 ? ti[k].shape[0] * ti[k].shape[1] : ti[k].shape[0]; /* in its dtype */
            t[n].wkind = ti[k].wkind;
        }
    }
    return n;
}

/* Bytes per value of a tensor in the file, and its safetensors dtype. */
static size_t elem_(const fnn_model *m, const tensor_ref *t) {
    return t->wkind == FNN_WEIGHT_INT8 ? 1 : t->wkind == FNN_WEIGHT_BF16 ? 2 : (size_t)m->dtype;
}
static const char *dtype_name_(const fnn_model *m, const tensor_ref *t) {
    return t->wkind == FNN_WEIGHT_INT8 ? "I8" : t->wkind == FNN_WEIGHT_BF16 ? "BF16"
                                                                             : m->dtype == (int)sizeof(double) ? "F64" : "F32";
}

/* The oldest schema that holds the model, as Python's writer declares it (fastnn/_format.py): 1.2 for
 * low-precision layers, 1.1 for a normalization layer or a max_norm, else 1.0. */
static int schema_minor_(const fnn_model *m) {
    if (fnn_plan_lowp(&m->plan)) return 2;
    for (int l = 0; l < m->plan.nl; l++) {
        const fnn_layer_desc *d = &m->plan.L[l];
        if (d->kind == FNN_LAYER_BATCHNORM || d->kind == FNN_LAYER_LAYERNORM || d->max_norm > 0) return 1;
    }
    return 0;
}

/* The 8-byte length and the padded JSON header of the file. */
static int header_(sbuf *b, const fnn_model *m, const tensor_ref *t, size_t nt) {
    char **own = calloc(m->plan.nl ? (size_t)m->plan.nl : 1, sizeof *own);
    const char **names = own ? layer_names_(m, own) : NULL;
    sbuf arch = {0};
    int rc = names ? put_architecture_(&arch, m, names) : FNN_ERR_NOMEM;
    for (int l = 0; own && l < m->plan.nl; l++) free(own[l]);
    free(own);
    free(names);
    if (rc) {
        free(arch.p);
        return rc;
    }
    put_(b, "\0\0\0\0\0\0\0\0", 8);
    /* the oldest schema that holds the model (schema_minor_): a plain float model's file stays readable
     * by 1.0 readers, and is what Python writes */
    putf_(b, "{\"__metadata__\":{\"format\":\"fastnn\",\"fastnn_schema\":\"%d.%d\",\"fastnn_version\":",
          FNN_IO_SCHEMA_MAJOR, schema_minor_(m));
    put_cstring_(b, FNN_VERSION_STRING);
    puts_(b, ",\"architecture\":");
    put_string_(b, arch.p ? arch.p : "", arch.len);
    b->oom |= arch.oom;
    free(arch.p);
    for (int i = 0; i < m->n_meta; i++) {
        if (is_reserved_(m->meta_keys[i])) continue;
        put_(b, ",", 1);
        put_cstring_(b, m->meta_keys[i]);
        put_(b, ":", 1);
        put_cstring_(b, m->meta_values[i]);
    }
    put_(b, "}", 1);
    size_t at = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t bytes = t[i].count * elem_(m, &t[i]);
        putf_(b, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, dtype_name_(m, &t[i]));
        if (t[i].rows) putf_(b, "%zu,", t[i].rows);
        putf_(b, "%zu],\"data_offsets\":[%zu,%zu]}", t[i].cols, at, at + bytes);
        at += bytes;
    }
    put_(b, "}", 1);
    while (!b->oom && (b->len - 8) % 8) put_(b, " ", 1);
    if (b->oom) return FNN_ERR_NOMEM;
    uint64_t hlen = b->len - 8;
    for (int i = 0; i < 8; i++) b->p[i] = (char)(hlen >> (8 * i) & 0xff);
    return FNN_OK;
}

/* ---- writing -------------------------------------------------------------------------------------- */

/* n values of `elem` bytes, little-endian, through write_fn (a copy per block on big-endian hosts). */
static int put_tensor_(int (*write_fn)(void *, const void *, size_t), void *ctx, const char *src, size_t n,
                       size_t elem) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    unsigned char buf[4096];
    const size_t per = sizeof buf / elem;
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        for (size_t j = 0; j < k; j++)
            for (size_t c = 0; c < elem; c++) buf[j * elem + c] = (unsigned char)src[(i + j) * elem + elem - 1 - c];
        if (write_fn(ctx, buf, k * elem)) return -1;
    }
    return 0;
#else
    return write_fn(ctx, src, n * elem);
#endif
}

/* float32 values that bfloat16 holds (a BF16 weight as the reader widened it) as little-endian
 * bfloat16: their upper halves, exactly. */
static int put_bf16_(int (*write_fn)(void *, const void *, size_t), void *ctx, const float *src, size_t n) {
    unsigned char buf[4096];
    for (size_t i = 0; i < n; i += sizeof buf / 2) {
        size_t k = n - i < sizeof buf / 2 ? n - i : sizeof buf / 2;
        for (size_t j = 0; j < k; j++) {
            uint32_t u;
            memcpy(&u, src + i + j, sizeof u);
            buf[2 * j] = (unsigned char)(u >> 16 & 0xff);
            buf[2 * j + 1] = (unsigned char)(u >> 24);
        }
        if (write_fn(ctx, buf, 2 * k)) return -1;
    }
    return 0;
}

/* The temporary file: a descriptor on POSIX systems (fsync before the rename), stdio elsewhere;
 * `unnamed` while an O_TMPFILE file has no name yet (sink_name_ gives it one). */
typedef struct {
#ifdef FNN_HAVE_POSIX_IO
    int fd;
#else
    FILE *fp;
#endif
    int unnamed;
} sink;

static atomic_uint tmp_counter;

#if defined(FNN_HAVE_POSIX_IO) && defined(O_TMPFILE) && defined(AT_SYMLINK_FOLLOW)
#define FNN_HAVE_TMPFILE 1
#endif

/* Create a new temporary file in `dir`: unnamed where O_TMPFILE works (and /proc can name it
 * later), else named after `base` (its name in tmp, cap bytes); 0 or errno. */
static int sink_open_(sink *s, const char *dir, const char *base, char *tmp, size_t cap) {
    s->unnamed = 0;
#ifdef FNN_HAVE_TMPFILE
    if (access("/proc/self/fd", X_OK) == 0) {
        s->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (s->fd >= 0) {
            s->unnamed = 1;
            tmp[0] = '\0';
            return 0;
        }
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT) return errno;
    }
#endif
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned k = atomic_fetch_add(&tmp_counter, 1u);
#ifdef FNN_HAVE_POSIX_IO
        snprintf(tmp, cap, "%s/.%s.%lx.%x.tmp", dir, base, (unsigned long)getpid(), k);
        /* mode 0666 less the umask, as any new file; a replaced file's own mode is given below */
        if ((s->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) >= 0) return 0;
        if (errno != EEXIST) return errno;
#else
        snprintf(tmp, cap, "%s/.%s.%x.tmp", dir, base, k);
        if ((s->fp = fopen(tmp, "wb"))) return 0;
        return errno ? errno : EIO;
#endif
    }
    return EEXIST;
}

static int sink_write_(void *ctx, const void *p, size_t n) {
    sink *s = ctx;
#ifdef FNN_HAVE_POSIX_IO
    const char *c = p;
    while (n) {
        ssize_t w = write(s->fd, c, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
#else
    return fwrite(p, 1, n, s->fp) == n ? 0 : -1;
#endif
}

#ifdef FNN_HAVE_POSIX_IO
/* Give the complete unnamed file of `s` a fresh temporary name in `dir` (in tmp); 0 or errno.  linkat
 * through /proc with AT_SYMLINK_FOLLOW, as open(2) describes (AT_EMPTY_PATH would need privileges). */
static int sink_name_(sink *s, const char *dir, const char *base, char *tmp, size_t cap) {
#ifdef FNN_HAVE_TMPFILE
    char proc[48];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", s->fd);
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned k = atomic_fetch_add(&tmp_counter, 1u);
        snprintf(tmp, cap, "%s/.%s.%lx.%x.tmp", dir, base, (unsigned long)getpid(), k);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) return 0;
        if (errno != EEXIST) {
            int err = errno ? errno : EIO;
            tmp[0] = '\0';
            return err;
        }
    }
    tmp[0] = '\0';
    return EEXIST;
#else
    (void)s, (void)dir, (void)base, (void)tmp, (void)cap;
    return EINVAL;
#endif
}
#endif

/* Flush to the disk (when ok), name an unnamed file (when ok), and close; 0 or errno. */
static int sink_close_(sink *s, int ok, const char *dir, const char *base, char *tmp, size_t cap) {
    int err = 0;
#ifdef FNN_HAVE_POSIX_IO
    if (ok && fsync(s->fd) != 0) err = errno ? errno : EIO;
    if (ok && !err && s->unnamed) err = sink_name_(s, dir, base, tmp, cap);
    if (close(s->fd) != 0 && !err && ok) err = errno ? errno : EIO;
#else
    (void)dir, (void)base, (void)tmp, (void)cap;
    if (ok && fflush(s->fp) != 0) err = errno ? errno : EIO;
    if (fclose(s->fp) != 0 && !err && ok) err = errno ? errno : EIO;
#endif
    return err;
}

/* Make a rename in `dir` durable (POSIX; elsewhere there is nothing to open). */
static void sync_dir_(const char *dir) {
#ifdef FNN_HAVE_POSIX_IO
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
#else
    (void)dir;
#endif
}

/* Write header + tensors to `path` through a temporary file beside it, atomically. */
static int write_atomic_(const char *path, const sbuf *head, const fnn_model *m, const tensor_ref *t, size_t nt) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    if (!*base) {
        fnn_io_set_error("fnn_model_save: path \"%s\" names a directory, not a file", path);
        return FNN_ERR_ARG;
    }
    const size_t dlen = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path), cap = dlen + strlen(base) + 48;
    char *dir = malloc(dlen + 1), *tmp = malloc(cap);
    if (!dir || !tmp) {
        free(dir);
        free(tmp);
        fnn_io_set_error("fnn_model_save: out of memory");
        return FNN_ERR_NOMEM;
    }
    memcpy(dir, slash ? path : ".", dlen);
    dir[dlen] = '\0';
    sink s;
    int err = sink_open_(&s, dir, base, tmp, cap);
    if (err) {
        fnn_io_set_error("fnn_model_save: cannot create a file in %s: %s", dir, strerror(err));
    } else {
#ifdef FNN_HAVE_POSIX_IO
        struct stat st;
        if (stat(path, &st) == 0) fchmod(s.fd, st.st_mode & 07777);
#endif
        int bad = sink_write_(&s, head->p, head->len);
        for (size_t i = 0; i < nt && !bad; i++) {
            const char *src = (const char *)m->params + t[i].off * (size_t)m->dtype;
            bad = t[i].wkind == FNN_WEIGHT_BF16 ? put_bf16_(sink_write_, &s, (const float *)(const void *)src, t[i].count)
                                                : put_tensor_(sink_write_, &s, src, t[i].count, elem_(m, &t[i]));
        }
        if (bad) err = errno ? errno : EIO;
        int cerr = sink_close_(&s, !bad, dir, base, tmp, cap);
        if (!err) err = cerr;
        if (!err && rename(tmp, path) != 0) err = errno ? errno : EIO;
        if (err) {
            if (tmp[0]) remove(tmp); /* an unnamed file that failed is gone with its descriptor */
            fnn_io_set_error("fnn_model_save: cannot write %s: %s", path, strerror(err));
        } else {
            sync_dir_(dir);
        }
    }
    free(dir);
    free(tmp);
    if (err) errno = err;
    return err ? FNN_ERR_IO : FNN_OK;
}

int fnn_model_save(const fnn_model *m, const char *path) {
    if (!m || !path) {
        fnn_io_set_error("fnn_model_save: %s is NULL", m ? "path" : "the model");
        return FNN_ERR_ARG;
    }
    if (!*path) {
        fnn_io_set_error("fnn_model_save: path is empty");
        return FNN_ERR_ARG;
    }
    int rc = fnn_model_enter(m, 0, "fnn_model_save");
    if (rc) return rc;
    const size_t nt = tensors_(m, NULL);
    tensor_ref *t = malloc((nt ? nt : 1) * sizeof *t);
    sbuf head = {0};
    if (!t) rc = FNN_ERR_NOMEM;
    else {
        tensors_(m, t);
        rc = header_(&head, m, t, nt);
    }
    if (rc == FNN_ERR_NOMEM) fnn_io_set_error("fnn_model_save: out of memory for the header");
    if (!rc) rc = write_atomic_(path, &head, m, t, nt);
    if (!rc) fnn_io_clear_error();
    free(head.p);
    free(t);
    fnn_model_leave(m, 0);
    return rc;
}
