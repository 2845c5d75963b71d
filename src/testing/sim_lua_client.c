/*
 * luaraft.sim: the operations specs ask of a node: proposals, ReadIndex reads, leadership
 * transfers, campaigns, injected messages, snapshots.
 */
#include <string.h>

#include "testing/sim_lua_internal.h"

static int l_propose(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
    uint64_t value = (uint64_t)luaL_checkinteger(L, 3);
    raft_index index;
    int rv = sim_propose(c->s, id, value, &index);
    if (rv != 0) {
        return sim_lua_push_error(L, c, rv);
    }
    sim_lua_raise_failure(L, c);
    lua_pushinteger(L, (lua_Integer)index);
    return 1;
}

/* c:propose_many(id, n [, first_value]) -> first index | nil, err. The values are
 * first_value, first_value + 1, ...; by default they continue a per-cluster counter. */
static int l_propose_many(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 1 && n <= sim_propose_batch_max, 3, "batch size out of range");
    uint64_t base = (uint64_t)luaL_optinteger(L, 4, (lua_Integer)c->next_value);
    /* The buffer is a userdata so that an error cannot leak it. */
    uint64_t *values = lua_newuserdatauv(L, (size_t)n * sizeof *values, 0); /* values */
    for (lua_Integer k = 0; k < n; k++) {
        values[k] = base + (uint64_t)k;
    }
    raft_index first;
    int rv = sim_propose_many(c->s, id, values, (uint32_t)n, &first);
    lua_pop(L, 1);
    if (rv != 0) {
        return sim_lua_push_error(L, c, rv);
    }
    if (lua_isnoneornil(L, 4)) {
        c->next_value = base + (uint64_t)n;
    }
    sim_lua_raise_failure(L, c);
    lua_pushinteger(L, (lua_Integer)first);
    return 1;
}

static int l_read_index(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    uint64_t reqid = 0;
    int rv = sim_read_index(c->s, sim_lua_check_node(L, c, 2), &reqid);
    if (rv != 0) {
        return sim_lua_push_error(L, c, rv);
    }
    sim_lua_raise_failure(L, c);
    lua_pushinteger(L, (lua_Integer)reqid);
    return 1;
}

/* c:read_result(reqid) -> "pending" | index, applied-when-served | nil, err */
static int l_read_result(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    lua_Integer reqid = luaL_checkinteger(L, 2);
    enum sim_read_state state;
    raft_index index, applied;
    int rv =
        reqid > 0 ? sim_read_result(c->s, (uint64_t)reqid, &state, &index, &applied) : SIM_ENOENT;
    if (rv != 0) {
        return sim_lua_push_error(L, c, rv);
    }
    switch (state) {
        case SIM_READ_PENDING:
            lua_pushstring(L, "pending");
            return 1;
        case SIM_READ_SERVED:
            lua_pushinteger(L, (lua_Integer)index);
            lua_pushinteger(L, (lua_Integer)applied);
            return 2;
        default:
            return sim_lua_push_error(L, c, SIM_EREAD_FAILED);
    }
}

static int l_transfer(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
    lua_Integer target = luaL_checkinteger(L, 3);
    luaL_argcheck(L, target >= 0, 3, "bad node id");
    return sim_lua_push_result(L, c, sim_transfer(c->s, id, (raft_id)target));
}

static int l_campaign(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
    return sim_lua_push_result(L, c, sim_campaign(c->s, id, lua_toboolean(L, 3)));
}

static const char *const msg_type_names[] = {
    "APPEND",   "APPEND_RESP", "VOTE",       "VOTE_RESP",       "HEARTBEAT", "HEARTBEAT_RESP",
    "SNAPSHOT", "TIMEOUT_NOW", "READ_INDEX", "READ_INDEX_RESP", NULL,
};

static uint64_t opt_u64(lua_State *L, int t, const char *field)
{
    lua_getfield(L, t, field); /* ... v */
    lua_Integer v = luaL_optinteger(L, -1, 0);
    lua_pop(L, 1); /* ... */
    return (uint64_t)v;
}

/*
 * c:inject(id, {type = "APPEND", from =, term =, ...}) -> true | nil, err: hands node id a
 * message no link carried, with the fields of struct raft_message by name (entries as
 * {{term =, type =, len =}, ...}). For specs of malformed peer input.
 */
static int l_inject(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    lua_getfield(L, 3, "type"); /* ... type */
    m.type = (uint8_t)(luaL_checkoption(L, -1, NULL, msg_type_names) + 1);
    lua_pop(L, 1); /* ... */
    m.from = opt_u64(L, 3, "from");
    m.to = id;
    m.term = opt_u64(L, 3, "term");
    struct raft_entry entries[sim_inject_entries_max];
    memset(entries, 0, sizeof entries);
    switch (m.type) {
        case RAFT_MSG_APPEND:
            m.append.prev_index = opt_u64(L, 3, "prev_index");
            m.append.prev_term = opt_u64(L, 3, "prev_term");
            m.append.commit = opt_u64(L, 3, "commit");
            lua_getfield(L, 3, "entries"); /* ... entries */
            if (lua_istable(L, -1)) {
                lua_Integer n = luaL_len(L, -1);
                luaL_argcheck(L, n <= sim_inject_entries_max, 3, "too many entries");
                for (lua_Integer i = 1; i <= n; i++) {
                    lua_geti(L, -1, i); /* ... entries e */
                    entries[i - 1].term = opt_u64(L, lua_gettop(L), "term");
                    entries[i - 1].type = (uint32_t)opt_u64(L, lua_gettop(L), "type");
                    entries[i - 1].len = (uint32_t)opt_u64(L, lua_gettop(L), "len");
                    lua_pop(L, 1); /* ... entries */
                }
                m.append.n_entries = (uint32_t)n;
                m.append.entries = entries;
            }
            lua_pop(L, 1); /* ... */
            break;
        case RAFT_MSG_SNAPSHOT:
            m.snapshot.index = opt_u64(L, 3, "index");
            m.snapshot.term = opt_u64(L, 3, "snapshot_term");
            break;
        case RAFT_MSG_HEARTBEAT:
            m.heartbeat.commit = opt_u64(L, 3, "commit");
            break;
        case RAFT_MSG_VOTE:
            m.vote.last_index = opt_u64(L, 3, "last_index");
            m.vote.last_term = opt_u64(L, 3, "last_term");
            break;
        default:
            break;
    }
    return sim_lua_push_result(L, c, sim_inject(c->s, id, &m));
}

static int l_change(lua_State *L)
{
    static const char *const kinds[] = {"add", "promote", "demote", "remove", NULL};
    static const enum sim_change_kind values[] = {SIM_CHANGE_ADD, SIM_CHANGE_PROMOTE,
                                                  SIM_CHANGE_DEMOTE, SIM_CHANGE_REMOVE};
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
    enum sim_change_kind kind = values[luaL_checkoption(L, 3, NULL, kinds)];
    lua_Integer target = luaL_checkinteger(L, 4);
    luaL_argcheck(L, target >= 0, 4, "bad node id");
    raft_index index = 0;
    int rv = sim_change(c->s, id, kind, (raft_id)target, &index);
    if (rv != 0) {
        return sim_lua_push_result(L, c, rv);
    }
    sim_lua_raise_failure(L, c);
    lua_pushinteger(L, (lua_Integer)index);
    return 1;
}

static int l_snapshot(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    return sim_lua_push_result(L, c, sim_snapshot(c->s, sim_lua_check_node(L, c, 2)));
}

const luaL_Reg sim_lua_client_methods[] = {
    {"propose", l_propose},       {"propose_many", l_propose_many},
    {"read_index", l_read_index}, {"read_result", l_read_result},
    {"transfer", l_transfer},     {"campaign", l_campaign},
    {"inject", l_inject},         {"snapshot", l_snapshot},
    {"change", l_change},         {NULL, NULL},
};
