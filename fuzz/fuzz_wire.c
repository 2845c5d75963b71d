/* libFuzzer target: the peer frame decoder and every body decoder (src/peer/wire.c).
 * Input byte 0, bit 0 clear: the rest is a byte stream decoded frame after frame with
 * wire_decode(). Bit 0 set: byte 1 is the frame type, byte 2 the flags, and the rest a body
 * that gets a valid header and checksum, so the body decoders see it past the CRC check.
 * A raft message that decodes must re-encode and decode again (wire_encode_message). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "peer/wire.h"
#include "util/buf.h"
#include "util/crc32c.h"

static void check_reencode(const struct wire_frame *f, const struct wire_limits *lim)
{
    if (f->type >= WIRE_HANDSHAKE) return;
    struct buf b;
    buf_init(&b);
    if (wire_encode_message(&b, &f->msg) == 0) {
        struct wire_frame g;
        int64_t rv = wire_decode(b.data, b.len, lim, &g);
        if (rv != (int64_t)b.len)
            abort(); /* a message the decoder accepted must survive a round trip */
        wire_frame_free(&g);
    }
    buf_free(&b);
}

static void decode_stream(const uint8_t *p, size_t len, const struct wire_limits *lim)
{
    while (len > 0) {
        struct wire_frame f;
        int64_t rv = wire_decode(p, len, lim, &f);
        if (rv <= 0) return;
        if ((uint64_t)rv > len) abort();
        check_reencode(&f, lim);
        wire_frame_free(&f);
        p += rv, len -= (size_t)rv;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_limits lim;
    wire_limits_default(&lim);
    if (size < 1) return 0;
    if (!(data[0] & 1) || size < 3) {
        decode_stream(data + 1, size - 1, &lim);
        return 0;
    }
    if (data[0] & 2) lim.entries_max = 2;
    size_t body = size - 3;
    struct buf b;
    buf_init(&b);
    if (wire_encode_node_frame(&b, WIRE_NODE_FRAME_MIN, data + 3, body) == 0 &&
        b.len >= WIRE_HEADER_BYTES) {
        b.data[5] = data[1]; /* the type, then the flags; then seal the checksum again */
        b.data[6] = 0;
        b.data[7] = data[2] & 0x0f;
        uint32_t crc = crc32c(crc32c(0, b.data, 12), b.data + WIRE_HEADER_BYTES, body);
        for (int i = 0; i < 4; i++)
            b.data[12 + i] = (uint8_t)(crc >> (24 - 8 * i));
        decode_stream(b.data, b.len, &lim);
    }
    buf_free(&b);
    return 0;
}
