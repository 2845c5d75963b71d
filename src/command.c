/* A log entry's payload (see command.h). */
#include "command.h"

#include <stdlib.h>
#include <string.h>

#include "util/assert.h"

size_t command_argv_bytes(int argc, const size_t *argvlen)
{
    size_t n = 4;
    for (int i = 0; i < argc; i++) {
        n += 4 + argvlen[i];
    }
    return n;
}

int command_put_argv(struct buf *b, int argc, const char *const *argv, const size_t *argvlen)
{
    lr_assert(argc >= 0);
    int rv = buf_put_u32(b, (uint32_t)argc);
    for (int i = 0; rv == 0 && i < argc; i++) {
        rv = buf_put_u32(b, (uint32_t)argvlen[i]);
        if (rv == 0) {
            rv = buf_append(b, argv[i], argvlen[i]);
        }
    }
    return rv;
}

/* Reads an argv blob's argc (1 to command_argc_max, and room for that many lengths). */
static bool get_argc(struct cursor *c, uint32_t *n)
{
    return cursor_get_u32(c, n) && *n > 0 && *n <= command_argc_max && *n <= c->left / 4;
}

bool command_argv_valid(const void *data, size_t len)
{
    struct cursor c = cursor_make(data, len);
    uint32_t n;
    if (!get_argc(&c, &n)) {
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        const uint8_t *p;
        if (!cursor_get_u32(&c, &k) || !cursor_get_bytes(&c, k, &p)) {
            return false;
        }
    }
    return c.left == 0;
}

bool command_get_argv(const void *data, size_t len, int *argc, const char ***argv, size_t **argvlen)
{
    struct cursor c = cursor_make(data, len);
    uint32_t n;
    if (!command_argv_valid(data, len) || !get_argc(&c, &n)) {
        return false;
    }
    const char **v = calloc(n, sizeof *v);
    size_t *l = calloc(n, sizeof *l);
    if (v == NULL || l == NULL) {
        free(v);
        free(l);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        const uint8_t *p;
        lr_assert(cursor_get_u32(&c, &k) && cursor_get_bytes(&c, k, &p)); /* valid */
        v[i] = (const char *)p;
        l[i] = k;
    }
    *argc = (int)n;
    *argv = v;
    *argvlen = l;
    return true;
}

/* The header of a version-2 payload, with time 0 until command_stamp. */
static int put_header(struct buf *b, enum command_kind kind)
{
    int rv = buf_put_u8(b, command_version);
    rv = rv ? rv : buf_put_u64(b, 0);
    rv = rv ? rv : buf_put_u8(b, (uint8_t)kind);
    return rv;
}

int command_put(struct buf *b, const void *argv_blob, size_t len)
{
    int rv = put_header(b, COMMAND_KIND_COMMAND);
    return rv ? rv : buf_append(b, argv_blob, len);
}

int command_put_tick(struct buf *b)
{
    return put_header(b, COMMAND_KIND_TICK);
}

int command_put_check(struct buf *b)
{
    return put_header(b, COMMAND_KIND_CHECK);
}

int command_put_load(struct buf *b,
                     const char *name,
                     size_t name_len,
                     const void *text,
                     size_t text_len)
{
    if (name_len == 0 || name_len > command_load_name_max || memchr(name, '\0', name_len) != NULL) {
        return COMMAND_EMALFORMED;
    }
    uint8_t n = (uint8_t)name_len;
    int rv = buf_reserve(b, command_header_bytes + 1 + name_len + text_len);
    rv = rv ? rv : put_header(b, COMMAND_KIND_LOAD);
    rv = rv ? rv : buf_append(b, &n, 1);
    rv = rv ? rv : buf_append(b, name, name_len);
    return rv ? rv : buf_append(b, text, text_len);
}

bool command_get_load(const void *body,
                      size_t len,
                      const char **name,
                      size_t *name_len,
                      const void **text,
                      size_t *text_len)
{
    const unsigned char *p = body;
    if (len < 1 || p[0] == 0 || (size_t)p[0] + 1 > len || memchr(p + 1, '\0', p[0]) != NULL) {
        return false;
    }
    if (name != NULL) {
        *name = (const char *)p + 1;
        *name_len = p[0];
        *text = p + 1 + p[0];
        *text_len = len - 1 - p[0];
    }
    return true;
}

int command_put_transaction(struct buf *b, unsigned n, const void *const *blobs, const size_t *lens)
{
    lr_assert(n <= command_argc_max);
    int rv = put_header(b, COMMAND_KIND_TRANSACTION);
    rv = rv ? rv : buf_put_u32(b, n);
    for (unsigned i = 0; rv == 0 && i < n; i++) {
        rv = buf_put_u32(b, (uint32_t)lens[i]);
        rv = rv ? rv : buf_append(b, blobs[i], lens[i]);
    }
    return rv;
}

/* Whether c holds exactly n commands, each a u32 length and an argv blob of it. */
static bool transaction_valid(struct cursor c, uint32_t n)
{
    if (n > command_argc_max) {
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        const uint8_t *p;
        if (!cursor_get_u32(&c, &k) || !cursor_get_bytes(&c, k, &p) || !command_argv_valid(p, k)) {
            return false;
        }
    }
    return c.left == 0;
}

int command_put_transaction_body(struct buf *b, unsigned n, const void *body, size_t len)
{
    if (!transaction_valid(cursor_make(body, len), n)) {
        return COMMAND_EMALFORMED;
    }
    int rv = buf_reserve(b, command_header_bytes + 4 + len);
    rv = rv ? rv : put_header(b, COMMAND_KIND_TRANSACTION);
    rv = rv ? rv : buf_put_u32(b, n);
    return rv ? rv : buf_append(b, body, len);
}

void command_stamp(void *payload, int64_t time_ms)
{
    be_put_u64((uint8_t *)payload + 1, (uint64_t)time_ms);
}

bool command_get_kind(const void *payload,
                      size_t len,
                      int64_t *time_ms,
                      enum command_kind *kind,
                      const void **body,
                      size_t *body_len)
{
    struct cursor c = cursor_make(payload, len);
    uint8_t version, k = COMMAND_KIND_COMMAND;
    uint64_t t;
    if (!cursor_get_u8(&c, &version) ||
        (version != command_version && version != command_version_1) || !cursor_get_u64(&c, &t) ||
        (version == command_version && !cursor_get_u8(&c, &k))) {
        return false;
    }
    struct cursor tx = c;
    uint32_t n;
    switch (k) {
        case COMMAND_KIND_COMMAND:
            break;
        case COMMAND_KIND_TICK:
        case COMMAND_KIND_CHECK:
            if (c.left != 0) {
                return false;
            }
            break;
        case COMMAND_KIND_TRANSACTION:
            if (!cursor_get_u32(&tx, &n) || !transaction_valid(tx, n)) {
                return false;
            }
            break;
        case COMMAND_KIND_LOAD:
            if (!command_get_load(c.p, c.left, NULL, NULL, NULL, NULL)) {
                return false;
            }
            break;
        default:
            return false;
    }
    *time_ms = (int64_t)t;
    *kind = (enum command_kind)k;
    *body = c.p;
    *body_len = c.left;
    return true;
}

bool command_get(const void *payload,
                 size_t len,
                 int64_t *time_ms,
                 const void **argv_blob,
                 size_t *argv_len)
{
    enum command_kind kind;
    int64_t t;
    const void *body;
    size_t body_len;
    if (!command_get_kind(payload, len, &t, &kind, &body, &body_len) ||
        kind != COMMAND_KIND_COMMAND) {
        return false;
    }
    *time_ms = t;
    *argv_blob = body;
    *argv_len = body_len;
    return true;
}

void command_tx_begin(struct command_tx_iter *it, const void *body, size_t len)
{
    it->c = cursor_make(body, len);
    if (!cursor_get_u32(&it->c, &it->n)) {
        it->n = 0;
    }
    it->left = it->n;
}

bool command_tx_next(struct command_tx_iter *it, const void **blob, size_t *len)
{
    uint32_t k;
    const uint8_t *p;
    if (it->left == 0 || !cursor_get_u32(&it->c, &k) || !cursor_get_bytes(&it->c, k, &p)) {
        it->left = 0;
        return false;
    }
    it->left--;
    *blob = p;
    *len = k;
    return true;
}
