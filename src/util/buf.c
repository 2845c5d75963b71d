#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

#include "util/assert.h"

/* The first allocation, in bytes: small enough for an idle connection, big enough for a
 * typical reply or frame header without regrowing. */
#define BUF_BYTES_MIN 64

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
    lr_assert(b->len <= b->cap);
    lr_assert(b->cap <= BUF_BYTES_MAX);
    if (extra > BUF_BYTES_MAX - b->len) {
        return BUF_ENOMEM;
    }
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap < BUF_BYTES_MIN ? BUF_BYTES_MIN : b->cap;
    while (cap < need) {
        /* No overflow: cap < need <= BUF_BYTES_MAX, far below SIZE_MAX / 2. */
        cap *= 2;
    }
    if (cap > BUF_BYTES_MAX) {
        cap = BUF_BYTES_MAX;
    }
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL) {
        return BUF_ENOMEM;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int rv = buf_reserve(b, n);
    if (rv != 0) {
        return rv;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

int buf_put_u8(struct buf *b, uint8_t v)
{
    return buf_append(b, &v, 1);
}

int buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t p[2];
    be_put_u16(p, v);
    return buf_append(b, p, sizeof(p));
}

int buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t p[4];
    be_put_u32(p, v);
    return buf_append(b, p, sizeof(p));
}

int buf_put_u64(struct buf *b, uint64_t v)
{
    uint8_t p[8];
    be_put_u64(p, v);
    return buf_append(b, p, sizeof(p));
}

void buf_consume(struct buf *b, size_t n)
{
    lr_assert(n <= b->len);
    if (n == 0) {
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

bool cursor_get_u8(struct cursor *c, uint8_t *v)
{
    if (c->left < 1) {
        return false;
    }
    *v = c->p[0];
    c->p += 1;
    c->left -= 1;
    return true;
}

bool cursor_get_u16(struct cursor *c, uint16_t *v)
{
    if (c->left < 2) {
        return false;
    }
    *v = be_get_u16(c->p);
    c->p += 2;
    c->left -= 2;
    return true;
}

bool cursor_get_u32(struct cursor *c, uint32_t *v)
{
    if (c->left < 4) {
        return false;
    }
    *v = be_get_u32(c->p);
    c->p += 4;
    c->left -= 4;
    return true;
}

bool cursor_get_u64(struct cursor *c, uint64_t *v)
{
    if (c->left < 8) {
        return false;
    }
    *v = be_get_u64(c->p);
    c->p += 8;
    c->left -= 8;
    return true;
}

bool cursor_get_bytes(struct cursor *c, size_t n, const uint8_t **v)
{
    if (c->left < n) {
        return false;
    }
    *v = c->p;
    c->p += n;
    c->left -= n;
    return true;
}
