#include "util/crc32c.h"

#include <isa-l/crc.h>
#include <limits.h>

/* crc32_iscsi takes its length as an int, so longer buffers go in pieces of this size. */
#define CRC32C_PIECE_BYTES ((size_t)1 << 30)

_Static_assert(CRC32C_PIECE_BYTES <= INT_MAX, "a piece's length fits crc32_iscsi's int");

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
    /*
     * RFC 3720's CRC starts from all ones and complements the result; crc32_iscsi does
     * neither, taking and returning the raw register. Complementing on the way in and out
     * makes the register continue where the previous call's result left it.
     */
    const unsigned char *p = data;
    uint32_t reg = ~crc;
    while (len > 0) {
        size_t n = len < CRC32C_PIECE_BYTES ? len : CRC32C_PIECE_BYTES;
        /* The library only reads the buffer; its prototype just lacks the const. */
        reg = crc32_iscsi((unsigned char *)p, (int)n, reg);
        p += n;
        len -= n;
    }
    return ~reg;
}
