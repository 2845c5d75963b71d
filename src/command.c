/* A client command as a log entry's payload (see command.h). */
#include "command.h"

#include <stdlib.h>

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

bool command_get_argv(const void *data, size_t len, int *argc, const char ***argv, size_t **argvlen)
{
    struct cursor c = cursor_make(data, len);
    uint32_t n;
    if (!cursor_get_u32(&c, &n) || n == 0 || n > command_argc_max || n > c.left / 4) {
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
        if (!cursor_get_u32(&c, &k) || !cursor_get_bytes(&c, k, &p)) {
            free(v);
            free(l);
            return false;
        }
        v[i] = (const char *)p;
        l[i] = k;
    }
    if (c.left != 0) {
        free(v);
        free(l);
        return false;
    }
    *argc = (int)n;
    *argv = v;
    *argvlen = l;
    return true;
}

int command_put(struct buf *b, const void *argv_blob, size_t len)
{
    int rv = buf_put_u8(b, command_version);
    rv = rv ? rv : buf_put_u64(b, 0);
    rv = rv ? rv : buf_append(b, argv_blob, len);
    return rv;
}

void command_stamp(void *payload, int64_t time_ms)
{
    be_put_u64((uint8_t *)payload + 1, (uint64_t)time_ms);
}

bool command_get(const void *payload,
                 size_t len,
                 int64_t *time_ms,
                 const void **argv_blob,
                 size_t *argv_len)
{
    struct cursor c = cursor_make(payload, len);
    uint8_t version;
    uint64_t t;
    if (!cursor_get_u8(&c, &version) || version != command_version || !cursor_get_u64(&c, &t)) {
        return false;
    }
    *time_ms = (int64_t)t;
    *argv_blob = c.p;
    *argv_len = c.left;
    return true;
}
