#include "codec/msg_lua.h"

#include <stdbool.h>
#include <stdint.h>

const char *const msg_lua_type_names[RAFT_MSG_TYPE_MAX + 1] = {
    NULL,          "APPEND",     "APPEND_RESP",     "VOTE",
    "VOTE_RESP",   "HEARTBEAT",  "HEARTBEAT_RESP",  "SNAPSHOT",
    "TIMEOUT_NOW", "READ_INDEX", "READ_INDEX_RESP",
};

const char *const msg_lua_entry_type_names[4] = {NULL, "NORMAL", "NOOP", "CONFIG"};

static void set_int(lua_State *L, const char *name, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v); /* t, v */
    lua_setfield(L, -2, name);          /* t */
}

static void set_bool(lua_State *L, const char *name, bool v)
{
    lua_pushboolean(L, v);     /* t, v */
    lua_setfield(L, -2, name); /* t */
}

static void set_entries(lua_State *L, const struct raft_message *m)
{
    lua_createtable(L, (int)m->append.n_entries, 0); /* t, entries */
    for (uint32_t i = 0; i < m->append.n_entries; i++) {
        const struct raft_entry *e = &m->append.entries[i];
        lua_createtable(L, 0, 3); /* t, entries, e */
        set_int(L, "term", e->term);
        lua_pushstring(L, e->type < 4 ? msg_lua_entry_type_names[e->type] : NULL);
        lua_setfield(L, -2, "type");                              /* t, entries, e */
        lua_pushlstring(L, e->buf != NULL ? e->buf : "", e->len); /* t, entries, e, data */
        lua_setfield(L, -2, "data");                              /* t, entries, e */
        lua_rawseti(L, -2, i + 1);                                /* t, entries */
    }
    lua_setfield(L, -2, "entries"); /* t */
}

void msg_lua_set_fields(lua_State *L, const struct raft_message *m)
{
    lua_pushstring(L, m->type <= RAFT_MSG_TYPE_MAX ? msg_lua_type_names[m->type] : NULL);
    lua_setfield(L, -2, "type"); /* t */
    set_int(L, "from", m->from);
    set_int(L, "to", m->to);
    set_int(L, "term", m->term);
    switch (m->type) {
        case RAFT_MSG_APPEND:
            set_int(L, "prev_index", m->append.prev_index);
            set_int(L, "prev_term", m->append.prev_term);
            set_int(L, "commit", m->append.commit);
            set_entries(L, m);
            break;
        case RAFT_MSG_APPEND_RESP:
            set_bool(L, "success", m->append_resp.success);
            set_int(L, "index", m->append_resp.index);
            set_int(L, "conflict_term", m->append_resp.conflict_term);
            set_int(L, "conflict_index", m->append_resp.conflict_index);
            break;
        case RAFT_MSG_VOTE:
            set_bool(L, "prevote", m->vote.prevote);
            set_bool(L, "transfer", m->vote.transfer);
            set_int(L, "last_index", m->vote.last_index);
            set_int(L, "last_term", m->vote.last_term);
            break;
        case RAFT_MSG_VOTE_RESP:
            set_bool(L, "prevote", m->vote_resp.prevote);
            set_bool(L, "granted", m->vote_resp.granted);
            break;
        case RAFT_MSG_HEARTBEAT:
            set_int(L, "commit", m->heartbeat.commit);
            set_int(L, "read_seq", m->heartbeat.read_seq);
            break;
        case RAFT_MSG_HEARTBEAT_RESP:
            set_int(L, "read_seq", m->heartbeat_resp.read_seq);
            break;
        case RAFT_MSG_SNAPSHOT:
            set_int(L, "index", m->snapshot.index);
            set_int(L, "snapshot_term", m->snapshot.term);
            break;
        case RAFT_MSG_READ_INDEX:
            set_int(L, "id", m->read_index.id);
            break;
        case RAFT_MSG_READ_INDEX_RESP:
            set_int(L, "id", m->read_index_resp.id);
            set_int(L, "index", m->read_index_resp.index);
            break;
        default:
            break;
    }
}
