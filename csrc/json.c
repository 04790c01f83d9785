/* json.c - the strict JSON parser of json.h, for the headers of model files (io.c).
 *
 * Input is untrusted: every read is checked against the length, recursion is bounded by
 * FNN_JSON_MAX_DEPTH, the node count by FNN_JSON_MAX_NODES, and the two allocations are bounded by
 * the input length (decoded strings are never longer than their source, plus a NUL each).
 */
#include "json.h"

#include "fastnn.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *s;
    size_t len, pos;
    fnn_json *doc;
    char *err;
    size_t err_len;
    int rc;
} parser;

static int fail(parser *p, int rc, size_t pos, const char *fmt, ...) {
    if (p->rc) return p->rc; /* keep the first error */
    p->rc = rc;
    if (p->err && p->err_len) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p->err, p->err_len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < p->err_len)
            snprintf(p->err + n, p->err_len - (size_t)n, " at byte %zu", pos);
    }
    return rc;
}

/* Length of the valid UTF-8 sequence at s[0, n), or 0 if it is not one (Unicode table 3-7). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
    else if (c == 0xED) { len = 3; hi = 0x9F; }   /* no UTF-16 surrogates */
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }   /* nothing past U+10FFFF */
    else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static uint32_t new_node(parser *p, int type) {
    fnn_json *d = p->doc;
    if (d->n_nodes >= FNN_JSON_MAX_NODES) {
        fail(p, FNN_ERR_FORMAT, p->pos, "more than %u values", (unsigned)FNN_JSON_MAX_NODES);
        return FNN_JSON_NONE;
    }
    if (d->n_nodes == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        if (cap > FNN_JSON_MAX_NODES) cap = FNN_JSON_MAX_NODES;
        fnn_json_node *nn = realloc(d->nodes, cap * sizeof *nn);
        if (!nn) {
            fail(p, FNN_ERR_NOMEM, p->pos, "out of memory");
            return FNN_JSON_NONE;
        }
        d->nodes = nn;
        d->cap = cap;
    }
    fnn_json_node *n = &d->nodes[d->n_nodes];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->first = n->next = FNN_JSON_NONE;
    n->pos = p->pos;
    return (uint32_t)d->n_nodes++;
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* The string starting at the opening quote at p->pos, decoded into the arena. */
static int parse_string(parser *p, const char **out, size_t *out_len) {
    fnn_json *d = p->doc;
    const size_t start = p->pos;
    p->pos++; /* the quote */
    char *dst = d->arena + d->arena_used;
    size_t n = 0;
    for (;;) {
        if (p->pos >= p->len) return fail(p, FNN_ERR_FORMAT, start, "unterminated string");
        unsigned c = p->s[p->pos];
        if (c == '"') { p->pos++; break; }
        if (c < 0x20) return fail(p, FNN_ERR_FORMAT, p->pos, "unescaped control character 0x%02x in a string", c);
        if (c == '\\') {
            if (p->pos + 1 >= p->len) return fail(p, FNN_ERR_FORMAT, start, "unterminated string");
            unsigned e = p->s[p->pos + 1];
            p->pos += 2;
            switch (e) {
            case '"': dst[n++] = '"'; break;
            case '\\': dst[n++] = '\\'; break;
            case '/': dst[n++] = '/'; break;
            case 'b': dst[n++] = '\b'; break;
            case 'f': dst[n++] = '\f'; break;
            case 'n': dst[n++] = '\n'; break;
            case 'r': dst[n++] = '\r'; break;
            case 't': dst[n++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (p->len - p->pos < 4 || hex4(p->s + p->pos, &cp))
                    return fail(p, FNN_ERR_FORMAT, p->pos - 2, "bad \\u escape");
                p->pos += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(p, FNN_ERR_FORMAT, p->pos - 6, "lone low surrogate in a \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                        hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return fail(p, FNN_ERR_FORMAT, p->pos - 6, "lone high surrogate in a \\u escape");
                    p->pos += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0) return fail(p, FNN_ERR_FORMAT, p->pos - 6, "NUL character (\\u0000) in a string");
                if (cp < 0x80) dst[n++] = (char)cp;
                else if (cp < 0x800) {
                    dst[n++] = (char)(0xC0 | (cp >> 6));
                    dst[n++] = (char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    dst[n++] = (char)(0xE0 | (cp >> 12));
                    dst[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    dst[n++] = (char)(0x80 | (cp & 0x3F));
                } else {
                    dst[n++] = (char)(0xF0 | (cp >> 18));
                    dst[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    dst[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    dst[n++] = (char)(0x80 | (cp & 0x3F));
                }
                break;
            }
            default:
                return fail(p, FNN_ERR_FORMAT, p->pos - 2, "bad escape '\\%c'", e >= 0x20 && e < 0x7f ? (int)e : '?');
            }
            continue;
        }
        /* UTF-8 was checked for the whole input up front: copy the sequence */
        size_t sl = utf8_seq(p->s + p->pos, p->len - p->pos);
        if (!sl) return fail(p, FNN_ERR_FORMAT, p->pos, "invalid UTF-8");
        memcpy(dst + n, p->s + p->pos, sl);
        n += sl;
        p->pos += sl;
    }
    dst[n] = '\0';
    d->arena_used += n + 1; /* n + 1 <= the source bytes consumed (two quotes, escapes longer than their output) */
    *out = dst;
    *out_len = n;
    return 0;
}

static int parse_number(parser *p, uint32_t node) {
    const size_t start = p->pos;
    const unsigned char *s = p->s;
    size_t i = p->pos;
#define DIGIT(k) ((k) < p->len && s[k] >= '0' && s[k] <= '9')
    if (i < p->len && s[i] == '-') i++;
    if (!DIGIT(i)) return fail(p, FNN_ERR_FORMAT, start, "bad number");
    if (s[i] == '0') {
        i++;
        if (DIGIT(i)) return fail(p, FNN_ERR_FORMAT, start, "number with a leading zero");
    } else {
        while (DIGIT(i)) i++;
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (!DIGIT(i)) return fail(p, FNN_ERR_FORMAT, start, "bad number (no digit after '.')");
        while (DIGIT(i)) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (!DIGIT(i)) return fail(p, FNN_ERR_FORMAT, start, "bad number (no digit in the exponent)");
        while (DIGIT(i)) i++;
    }
#undef DIGIT
    fnn_json_node *n = &p->doc->nodes[node];
    n->str = (const char *)s + start;
    n->len = i - start;
    p->pos = i;
    return 0;
}

typedef struct { const char *k; size_t len; size_t pos; } keyref;

static int keyref_cmp(const void *a, const void *b) {
    const keyref *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->k, y->k, m);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

const char *fnn_json_quote(char *buf, size_t cap, const char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 60) { o += (size_t)snprintf(buf + o, cap - o, "..."); break; }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}

static int check_duplicates(parser *p, uint32_t obj) {
    fnn_json *d = p->doc;
    const uint32_t count = d->nodes[obj].count;
    if (count < 2) return 0;
    keyref small[16], *keys = small;
    if (count > 16) {
        keys = malloc((size_t)count * sizeof *keys);
        if (!keys) return fail(p, FNN_ERR_NOMEM, d->nodes[obj].pos, "out of memory");
    }
    uint32_t k = 0;
    for (uint32_t c = d->nodes[obj].first; c != FNN_JSON_NONE; c = d->nodes[c].next, k++)
        keys[k] = (keyref){d->nodes[c].key, d->nodes[c].key_len, d->nodes[c].pos};
    int rc = 0;
    const keyref *dup = NULL;
    if (count <= 16) {
        for (uint32_t i = 0; i < count && !dup; i++)
            for (uint32_t j = i + 1; j < count && !dup; j++)
                if (!keyref_cmp(&keys[i], &keys[j])) dup = &keys[j];
    } else {
        qsort(keys, count, sizeof *keys, keyref_cmp);
        for (uint32_t i = 1; i < count && !dup; i++)
            if (!keyref_cmp(&keys[i - 1], &keys[i])) dup = keys[i].pos > keys[i - 1].pos ? &keys[i] : &keys[i - 1];
    }
    if (dup) {
        char q[256];
        fnn_json_quote(q, sizeof q, dup->k, dup->len);
        rc = fail(p, FNN_ERR_FORMAT, dup->pos, "duplicate key \"%s\"", q);
    }
    if (keys != small) free(keys);
    return rc;
}

static int parse_value(parser *p, int depth, uint32_t *out);

static int parse_container(parser *p, int depth, int is_obj, uint32_t *out) {
    if (depth > FNN_JSON_MAX_DEPTH)
        return fail(p, FNN_ERR_FORMAT, p->pos, "nesting deeper than %d levels", FNN_JSON_MAX_DEPTH);
    uint32_t self = new_node(p, is_obj ? FNN_JSON_OBJECT : FNN_JSON_ARRAY);
    if (self == FNN_JSON_NONE) return p->rc;
    const char close = is_obj ? '}' : ']';
    p->pos++; /* the opening bracket */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        *out = self;
        return 0;
    }
    uint32_t last = FNN_JSON_NONE, count = 0;
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(p);
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, FNN_ERR_FORMAT, p->pos, p->pos >= p->len ? "unexpected end (object not closed)"
                                                                        : "expected a string key");
            if (parse_string(p, &key, &key_len)) return p->rc;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, FNN_ERR_FORMAT, p->pos, "expected ':'");
            p->pos++;
        }
        uint32_t child;
        if (parse_value(p, depth, &child)) return p->rc;
        fnn_json_node *nodes = p->doc->nodes; /* may have moved */
        nodes[child].key = key;
        nodes[child].key_len = key_len;
        if (last == FNN_JSON_NONE) nodes[self].first = child;
        else nodes[last].next = child;
        last = child;
        count++;
        skip_ws(p);
        if (p->pos >= p->len)
            return fail(p, FNN_ERR_FORMAT, p->pos, is_obj ? "unexpected end (object not closed)"
                                                          : "unexpected end (array not closed)");
        unsigned char c = p->s[p->pos++];
        if (c == close) break;
        if (c != ',') return fail(p, FNN_ERR_FORMAT, p->pos - 1, "expected ',' or '%c'", close);
    }
    p->doc->nodes[self].count = count;
    if (is_obj && check_duplicates(p, self)) return p->rc;
    *out = self;
    return 0;
}

static int parse_value(parser *p, int depth, uint32_t *out) {
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, FNN_ERR_FORMAT, p->pos, "unexpected end (expected a value)");
    unsigned char c = p->s[p->pos];
    if (c == '{' || c == '[') return parse_container(p, depth + 1, c == '{', out);
    if (c == '"') {
        uint32_t n = new_node(p, FNN_JSON_STRING);
        if (n == FNN_JSON_NONE) return p->rc;
        const char *s;
        size_t len;
        if (parse_string(p, &s, &len)) return p->rc;
        p->doc->nodes[n].str = s;
        p->doc->nodes[n].len = len;
        *out = n;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        uint32_t n = new_node(p, FNN_JSON_NUMBER);
        if (n == FNN_JSON_NONE) return p->rc;
        if (parse_number(p, n)) return p->rc;
        *out = n;
        return 0;
    }
    static const struct { const char *word; int type; } lits[] = {
        {"true", FNN_JSON_TRUE}, {"false", FNN_JSON_FALSE}, {"null", FNN_JSON_NULL}};
    for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
        size_t wl = strlen(lits[i].word);
        if (p->len - p->pos >= wl && memcmp(p->s + p->pos, lits[i].word, wl) == 0) {
            uint32_t n = new_node(p, lits[i].type);
            if (n == FNN_JSON_NONE) return p->rc;
            p->pos += wl;
            *out = n;
            return 0;
        }
    }
    if (c >= 0x20 && c < 0x7f) return fail(p, FNN_ERR_FORMAT, p->pos, "unexpected character '%c'", c);
    return fail(p, FNN_ERR_FORMAT, p->pos, "unexpected byte 0x%02x", c);
}

int fnn_json_parse(fnn_json *doc, const char *src, size_t len, char *err, size_t err_len) {
    memset(doc, 0, sizeof *doc);
    parser p = {(const unsigned char *)src, len, 0, doc, err, err_len, 0};
    if (err && err_len) err[0] = '\0';
    for (size_t i = 0; i < len;) { /* the whole text is UTF-8, not only its strings */
        size_t sl = utf8_seq(p.s + i, len - i);
        if (!sl) {
            fail(&p, FNN_ERR_FORMAT, i, "not valid UTF-8 (byte 0x%02x)", p.s[i]);
            return p.rc;
        }
        i += sl;
    }
    if (len == SIZE_MAX) return fail(&p, FNN_ERR_FORMAT, 0, "text too long");
    doc->arena_cap = len + 1;
    doc->arena = malloc(doc->arena_cap);
    if (!doc->arena) return fail(&p, FNN_ERR_NOMEM, 0, "out of memory");
    uint32_t root;
    if (parse_value(&p, 0, &root) == 0) {
        skip_ws(&p);
        if (p.pos != len) fail(&p, FNN_ERR_FORMAT, p.pos, "trailing characters after the JSON value");
    }
    if (p.rc) fnn_json_free(doc);
    return p.rc;
}

void fnn_json_free(fnn_json *doc) {
    if (!doc) return;
    free(doc->nodes);
    free(doc->arena);
    memset(doc, 0, sizeof *doc);
}

const fnn_json_node *fnn_json_child(const fnn_json *doc, const fnn_json_node *n) {
    return n && n->first != FNN_JSON_NONE ? &doc->nodes[n->first] : NULL;
}

const fnn_json_node *fnn_json_next(const fnn_json *doc, const fnn_json_node *n) {
    return n && n->next != FNN_JSON_NONE ? &doc->nodes[n->next] : NULL;
}

const fnn_json_node *fnn_json_get(const fnn_json *doc, const fnn_json_node *obj, const char *key) {
    if (!obj || obj->type != FNN_JSON_OBJECT) return NULL;
    size_t kl = strlen(key);
    for (const fnn_json_node *c = fnn_json_child(doc, obj); c; c = fnn_json_next(doc, c))
        if (c->key_len == kl && memcmp(c->key, key, kl) == 0) return c;
    return NULL;
}

int fnn_json_uint(const fnn_json_node *n, uint64_t *out) {
    if (!n || n->type != FNN_JSON_NUMBER || n->len == 0) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n->len; i++) {
        unsigned c = (unsigned char)n->str[i];
        if (c < '0' || c > '9') return -1;
        if (v > (UINT64_MAX - (c - '0')) / 10) return -1;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

int fnn_json_double(const fnn_json_node *n, double *out) {
    if (!n || n->type != FNN_JSON_NUMBER) return -1;
    /* strtod reads the locale's decimal point: put that one in place of '.' */
    const char *dp = localeconv()->decimal_point;
    size_t dpl = dp && *dp ? strlen(dp) : 1;
    char buf[160];
    if (n->len + dpl >= sizeof buf) return -1; /* no writer emits such a literal */
    size_t o = 0;
    for (size_t i = 0; i < n->len; i++) {
        if (n->str[i] == '.' && dp && *dp) {
            memcpy(buf + o, dp, dpl);
            o += dpl;
        } else {
            buf[o++] = n->str[i];
        }
    }
    buf[o] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + o || isinf(v) || isnan(v)) return -1;
    *out = v;
    return 0;
}
