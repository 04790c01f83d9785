/* json.h - a small strict JSON parser (RFC 8259) for untrusted model-file headers (json.c).
 *
 * The whole document is parsed into a flat array of nodes; nothing points outside the document's
 * own two allocations (the nodes and a string arena), so one fnn_json_free releases everything.
 * Strict: UTF-8 only (no overlong forms, surrogates or code points past U+10FFFF), control characters
 * must be escaped, \u escapes must pair surrogates, no NUL character in a string, no duplicate key
 * in an object, numbers in JSON's grammar only (no NaN/Infinity, no leading '+' or zeros), nesting
 * at most FNN_JSON_MAX_DEPTH, at most FNN_JSON_MAX_NODES values, nothing but whitespace after the
 * top-level value.  Errors carry a message with the byte offset.
 */
#ifndef FNN_JSON_H
#define FNN_JSON_H

#include <stddef.h>
#include <stdint.h>

#define FNN_JSON_MAX_DEPTH 16
#define FNN_JSON_MAX_NODES (1u << 20)
#define FNN_JSON_NONE UINT32_MAX

enum fnn_json_type { FNN_JSON_NULL, FNN_JSON_FALSE, FNN_JSON_TRUE, FNN_JSON_NUMBER, FNN_JSON_STRING,
                     FNN_JSON_ARRAY, FNN_JSON_OBJECT };

typedef struct {
    int type;               /* enum fnn_json_type */
    uint32_t first, next;   /* first child (arrays, objects) and next sibling, FNN_JSON_NONE at the end */
    uint32_t count;         /* children of an array or object */
    const char *str;        /* STRING: decoded UTF-8, NUL-terminated; NUMBER: the literal in the source */
    size_t len;             /* its length in bytes */
    const char *key;        /* member of an object: its decoded key (NUL-terminated), else NULL */
    size_t key_len;
    size_t pos;             /* byte offset of the value in the source, for messages */
} fnn_json_node;

typedef struct {
    fnn_json_node *nodes;   /* nodes[0] is the top-level value */
    size_t n_nodes, cap;
    char *arena;            /* decoded strings */
    size_t arena_used, arena_cap;
} fnn_json;

/* Parse src[0, len).  Returns 0, FNN_ERR_FORMAT (message in err) or FNN_ERR_NOMEM.
 * On failure *doc is left empty (nothing to free, though fnn_json_free is harmless). */
int fnn_json_parse(fnn_json *doc, const char *src, size_t len, char *err, size_t err_len);
void fnn_json_free(fnn_json *doc);

/* The member `key` of object node `obj`, or NULL. */
const fnn_json_node *fnn_json_get(const fnn_json *doc, const fnn_json_node *obj, const char *key);
/* The child after `n` (array elements and object members in document order), or NULL. */
const fnn_json_node *fnn_json_child(const fnn_json *doc, const fnn_json_node *n);
const fnn_json_node *fnn_json_next(const fnn_json *doc, const fnn_json_node *n);

/* A NUMBER node as an exact non-negative integer (no fraction, no exponent, no minus sign);
 * 0 on success, -1 if it is not one or exceeds UINT64_MAX. */
int fnn_json_uint(const fnn_json_node *n, uint64_t *out);
/* A NUMBER node as a double, correctly rounded whatever the C locale; -1 if it overflows. */
int fnn_json_double(const fnn_json_node *n, double *out);

/* `s` (len bytes) for a message, in buf (cap bytes): printable ASCII kept, other bytes (and quotes and
 * backslashes) escaped as \xHH, cut after 60 bytes.  Returns buf. */
const char *fnn_json_quote(char *buf, size_t cap, const char *s, size_t len);

#endif /* FNN_JSON_H */
