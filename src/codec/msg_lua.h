/*
 * Raft messages as Lua tables, for the test modules (luaraft.codec, luaraft.transport):
 * {type = "APPEND", from =, to =, term =, prev_index =, ..., entries = {{term =, type =,
 * data =}, ...}}, with the fields of struct raft_message by name (a SNAPSHOT's own term is
 * snapshot_term, beside the message's term).
 */
#ifndef LUARAFT_CODEC_MSG_LUA_H
#define LUARAFT_CODEC_MSG_LUA_H

#include <lua.h>

#include "raft/raft.h"

/* Names by type code: msg_lua_type_names[RAFT_MSG_APPEND] == "APPEND"; index 0 is NULL. */
extern const char *const msg_lua_type_names[RAFT_MSG_TYPE_MAX + 1];
/* Entry type names by code, index 0 NULL: "NORMAL", "NOOP", "CONFIG". */
extern const char *const msg_lua_entry_type_names[4];

/* Adds m's fields to the table on top of the stack. [-0, +0, m] */
void msg_lua_set_fields(lua_State *L, const struct raft_message *m);

#endif
