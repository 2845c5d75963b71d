#include "testing/msg_lua.h"

#include <lauxlib.h>
#include <string.h>

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

uint64_t msg_lua_get_u64(lua_State *L, int idx, const char *name, uint64_t dflt)
{
    uint64_t v = dflt;
    if (lua_getfield(L, idx, name) != LUA_TNIL) { /* v */
        int ok = 0;
        v = (uint64_t)lua_tointegerx(L, -1, &ok);
        if (!ok) {
            luaL_error(L, "field %s must be an integer", name);
        }
    }
    lua_pop(L, 1); /* */
    return v;
}

bool msg_lua_get_bool(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name); /* v */
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1); /* */
    return v;
}

int msg_lua_name_index(const char *const *names, int n, const char *name)
{
    for (int i = 1; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return 0;
}

/* Reads the entries of the message table at idx into a userdata left on the stack. */
static void get_entries(lua_State *L, int idx, struct raft_message *m)
{
    lua_getfield(L, idx, "entries"); /* list */
    lua_Integer n = 0;
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        n = luaL_len(L, -1);
    }
    if (n < 0 || n > (lua_Integer)UINT32_MAX) {
        luaL_error(L, "too many entries");
    }
    struct raft_entry *e = lua_newuserdatauv(L, (size_t)n * sizeof(*e) + 1, 0); /* list ud */
    for (lua_Integer i = 0; i < n; i++) {
        lua_rawgeti(L, -2, i + 1); /* list ud entry */
        luaL_checktype(L, -1, LUA_TTABLE);
        int at = lua_gettop(L);
        e[i].term = msg_lua_get_u64(L, at, "term", 0);
        if (lua_getfield(L, at, "type") == LUA_TSTRING) { /* list ud entry type */
            e[i].type =
                (uint32_t)msg_lua_name_index(msg_lua_entry_type_names, 4, lua_tostring(L, -1));
        } else {
            e[i].type =
                lua_isnil(L, -1) ? RAFT_ENTRY_NORMAL : (uint32_t)msg_lua_get_u64(L, at, "type", 0);
        }
        if (e[i].type == 0) {
            luaL_error(L, "unknown entry type");
        }
        lua_getfield(L, at, "data"); /* list ud entry type data; the entry keeps it alive */
        size_t len = 0;
        const char *data = lua_isnil(L, -1) ? "" : luaL_checklstring(L, -1, &len);
        if (len > UINT32_MAX) {
            luaL_error(L, "entry data too long");
        }
        e[i].buf = len > 0 ? data : NULL;
        e[i].len = (uint32_t)len;
        lua_pop(L, 3); /* list ud */
    }
    lua_remove(L, -2); /* ud; the list stays reachable from the message table */
    m->append.n_entries = (uint32_t)n;
    m->append.entries = n > 0 ? e : NULL;
}

void msg_lua_get_fields(lua_State *L, int idx, struct raft_message *m)
{
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    m->from = msg_lua_get_u64(L, idx, "from", m->from);
    m->to = msg_lua_get_u64(L, idx, "to", m->to);
    m->term = msg_lua_get_u64(L, idx, "term", m->term);
    switch (m->type) {
        case RAFT_MSG_APPEND:
            m->append.prev_index = msg_lua_get_u64(L, idx, "prev_index", 0);
            m->append.prev_term = msg_lua_get_u64(L, idx, "prev_term", 0);
            m->append.commit = msg_lua_get_u64(L, idx, "commit", 0);
            get_entries(L, idx, m); /* ud */
            return;
        case RAFT_MSG_APPEND_RESP:
            m->append_resp.success = msg_lua_get_bool(L, idx, "success");
            m->append_resp.index = msg_lua_get_u64(L, idx, "index", 0);
            m->append_resp.conflict_term = msg_lua_get_u64(L, idx, "conflict_term", 0);
            m->append_resp.conflict_index = msg_lua_get_u64(L, idx, "conflict_index", 0);
            break;
        case RAFT_MSG_VOTE:
            m->vote.prevote = msg_lua_get_bool(L, idx, "prevote");
            m->vote.transfer = msg_lua_get_bool(L, idx, "transfer");
            m->vote.last_index = msg_lua_get_u64(L, idx, "last_index", 0);
            m->vote.last_term = msg_lua_get_u64(L, idx, "last_term", 0);
            break;
        case RAFT_MSG_VOTE_RESP:
            m->vote_resp.prevote = msg_lua_get_bool(L, idx, "prevote");
            m->vote_resp.granted = msg_lua_get_bool(L, idx, "granted");
            break;
        case RAFT_MSG_HEARTBEAT:
            m->heartbeat.commit = msg_lua_get_u64(L, idx, "commit", 0);
            m->heartbeat.read_seq = msg_lua_get_u64(L, idx, "read_seq", 0);
            break;
        case RAFT_MSG_HEARTBEAT_RESP:
            m->heartbeat_resp.read_seq = msg_lua_get_u64(L, idx, "read_seq", 0);
            break;
        case RAFT_MSG_SNAPSHOT:
            m->snapshot.index = msg_lua_get_u64(L, idx, "index", 0);
            m->snapshot.term = msg_lua_get_u64(L, idx, "snapshot_term", 0);
            break;
        case RAFT_MSG_READ_INDEX:
            m->read_index.id = msg_lua_get_u64(L, idx, "id", 0);
            break;
        case RAFT_MSG_READ_INDEX_RESP:
            m->read_index_resp.id = msg_lua_get_u64(L, idx, "id", 0);
            m->read_index_resp.index = msg_lua_get_u64(L, idx, "index", 0);
            break;
        case RAFT_MSG_TIMEOUT_NOW:
            break;
        default:
            luaL_error(L, "bad message type");
    }
    lua_pushnil(L); /* the same stack effect for every type */
}
