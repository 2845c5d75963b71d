/*
 * Raft messages as Lua tables, for the test modules (luaraft.codec, luaraft.transport):
 * {type = "APPEND", from =, to =, term =, prev_index =, ..., entries = {{term =, type =,
 * data =}, ...}}, with the fields of struct raft_message by name (a SNAPSHOT's own term is
 * snapshot_term, beside the message's term).
 */
#ifndef LUARAFT_CODEC_MSG_LUA_H
#define LUARAFT_CODEC_MSG_LUA_H

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"

/* Names by type code: msg_lua_type_names[RAFT_MSG_APPEND] == "APPEND"; index 0 is NULL. */
extern const char *const msg_lua_type_names[RAFT_MSG_TYPE_MAX + 1];
/* Entry type names by code, index 0 NULL: "NORMAL", "NOOP", "CONFIG". */
extern const char *const msg_lua_entry_type_names[4];

/* Adds m's fields to the table on top of the stack. [-0, +0, m] */
void msg_lua_set_fields(lua_State *L, const struct raft_message *m);

/* Field name of the table at idx as an unsigned integer, or dflt when absent; raises when
 * it is not an integer. [-0, +0, e] */
uint64_t msg_lua_get_u64(lua_State *L, int idx, const char *name, uint64_t dflt);
/* Field name of the table at idx as a boolean (absent: false). [-0, +0, -] */
bool msg_lua_get_bool(lua_State *L, int idx, const char *name);
/* The index of name in names[1..n), or 0 when it is not there. */
int msg_lua_name_index(const char *const *names, int n, const char *name);

/*
 * Fills *m from the message table at idx. m->type must be set; fields the table lacks keep
 * the value *m has (so a caller can preset defaults such as from). APPEND entries (type
 * "NORMAL" by default, data as a string) go into a userdata array left on the stack,
 * whose payloads point into the strings of the table, which must stay alive while *m is
 * used. Raises on a malformed field. [-0, +1, e]
 */
void msg_lua_get_fields(lua_State *L, int idx, struct raft_message *m);

#endif
