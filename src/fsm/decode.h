/*
 * Shared between encode.c (luaraft.encode, and the format) and decode.c (luaraft.decode,
 * its strict inverse); encode_open puts both in the table luaraft.
 */
#ifndef LUARAFT_FSM_DECODE_H
#define LUARAFT_FSM_DECODE_H

#include <lua.h>
#include <stdint.h>

/* The one NaN encode writes and decode accepts: any NaN is written as this one. */
static const uint64_t canonical_nan = UINT64_C(0x7ff8000000000000);

/* luaraft.decode(string) -> value; raises for any bytes encode would not produce.
 * [-0, +1, v] */
int decode_lua(lua_State *L);

#endif
