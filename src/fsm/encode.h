/*
 * luaraft.encode/decode/keys/sorted_pairs: the helpers a script sees in the global table
 * luaraft (fsm.h lists them for script authors). The format is canonical MessagePack;
 * encode.c describes it byte by byte.
 */
#ifndef LUARAFT_FSM_ENCODE_H
#define LUARAFT_FSM_ENCODE_H

#include <lua.h>

enum {
    encode_depth_max = 64, /* tables nested in tables, the outermost counting as 1 */
};

/* Creates the global table luaraft. Runs from sandbox_open, before the globals are
 * locked and after pairs has been replaced. [-0, +0, e] */
void encode_open(lua_State *L);

#endif
