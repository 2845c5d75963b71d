/*
 * What the files of the peer codec share (wire.c: framing, raft messages, chunks;
 * wire_handshake.c: the frames that open a connection). Not part of the API: wire.h is.
 */
#ifndef LUARAFT_PEER_WIRE_INTERNAL_H
#define LUARAFT_PEER_WIRE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "peer/wire.h"
#include "util/buf.h"

/* Writes the header of a frame whose length body bytes already follow at
 * out + WIRE_HEADER_BYTES, checksum included. */
void wire_put_header(uint8_t *out, uint8_t type, uint32_t length);

/* A type of the opening exchange: the challenge, either handshake, the verdicts. */
static inline bool wire_type_opening(unsigned type)
{
    return type == WIRE_HANDSHAKE || type == WIRE_HANDSHAKE_BULK || type == WIRE_CHALLENGE ||
           type == WIRE_ACCEPTED || type == WIRE_REFUSED;
}

/* Decodes the body at c of a frame of the opening exchange of that type into *f (whose
 * type it sets: WIRE_HANDSHAKE for either lane). Leaves what is left of the body in c.
 * Errors: WIRE_ETRUNCATED, WIRE_EINVAL. */
int wire_decode_opening(uint8_t type, struct cursor *c, struct wire_frame *f);

#endif
