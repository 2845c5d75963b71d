/*
 * Byte buffers and big-endian cursors, for the codecs (RESP, peer frames) and anything else
 * that builds or reads bytes. libc only: this file is compiled into the pure core library.
 *
 * struct buf is a growable byte array owned by its user: buf_init() it (or zero it), append
 * with buf_append()/buf_put_*(), read data[0, len), buf_free() it. Growth doubles and never
 * passes BUF_BYTES_MAX, so a size computed from untrusted input cannot wrap the arithmetic;
 * callers still check their own, much smaller, named limits before they append.
 *
 * struct cursor reads big-endian integers and byte runs out of a const span. Every get
 * checks the bytes left first and returns false when they are not there, leaving the
 * cursor unchanged, so a decoder needs no length arithmetic of its own.
 */
#ifndef LUARAFT_UTIL_BUF_H
#define LUARAFT_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes of the buf_* functions. */
enum {
    BUF_ENOMEM = -1, /* malloc/realloc failed, or the buffer would pass BUF_BYTES_MAX */
};

/* The largest buffer, in bytes: far above every codec limit, far below SIZE_MAX / 2. */
#define BUF_BYTES_MAX ((size_t)1 << 40)

struct buf
{
    uint8_t *data; /* NULL until the first growth */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
};

/* Makes *b empty. Allocates nothing. */
void buf_init(struct buf *b);

/* Frees the bytes and makes *b empty again (so it may be reused or freed twice). */
void buf_free(struct buf *b);

/* Empties *b but keeps its allocation. */
void buf_reset(struct buf *b);

/*
 * Makes room for at least extra more bytes after len, so that the next appends of up to
 * extra bytes cannot fail. Pointers into data are invalidated when it grows.
 *
 * Errors: BUF_ENOMEM (len + extra would pass BUF_BYTES_MAX, or allocation failed; *b is
 * unchanged).
 */
int buf_reserve(struct buf *b, size_t extra);

/* Appends n bytes (data may be NULL when n is 0). Errors: as buf_reserve(). */
int buf_append(struct buf *b, const void *data, size_t n);

/* Appends one big-endian integer. Errors: as buf_reserve(). */
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u16(struct buf *b, uint16_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);

/* Removes the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);

/* Big-endian stores and loads at a raw pointer; the caller has checked the room. */
static inline void be_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void be_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void be_put_u64(uint8_t *p, uint64_t v)
{
    be_put_u32(p, (uint32_t)(v >> 32));
    be_put_u32(p + 4, (uint32_t)v);
}

static inline uint16_t be_get_u16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t be_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be_get_u64(const uint8_t *p)
{
    return (uint64_t)be_get_u32(p) << 32 | be_get_u32(p + 4);
}

/* A read position in a const span of bytes. */
struct cursor
{
    const uint8_t *p;
    size_t left; /* bytes from p to the end of the span */
};

static inline struct cursor cursor_make(const void *data, size_t len)
{
    struct cursor c = {(const uint8_t *)data, len};
    return c;
}

/* Each get returns false, and leaves the cursor and *v unchanged, when too few bytes are left. */
bool cursor_get_u8(struct cursor *c, uint8_t *v);
bool cursor_get_u16(struct cursor *c, uint16_t *v);
bool cursor_get_u32(struct cursor *c, uint32_t *v);
bool cursor_get_u64(struct cursor *c, uint64_t *v);

/* Points *v at the next n bytes (no copy) and steps over them. */
bool cursor_get_bytes(struct cursor *c, size_t n, const uint8_t **v);

#endif
