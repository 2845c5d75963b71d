/*
 * luaraft.sim: what specs read of the nodes: roles, terms and indexes, logs, a leader's
 * view of its peers.
 */
#include "testing/sim_lua_internal.h"

static int l_nodes(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    lua_pushinteger(L, (lua_Integer)sim_node_count(c->s));
    return 1;
}

static int l_leader(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_leader(c->s);
    if (id == 0) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, (lua_Integer)id);
    }
    return 1;
}

static int l_role(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    const struct raft *r = sim_core(c->s, sim_lua_check_node(L, c, 2));
    lua_pushstring(L, r != NULL ? raft_role_name(raft_role_of(r)) : "down");
    return 1;
}

static int l_paused(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    lua_pushboolean(L, sim_node_paused(c->s, sim_lua_check_node(L, c, 2)));
    return 1;
}

/* The integer accessors of a core: nil while the node is down. */
#define CORE_ACCESSOR(name, expr)                     \
    static int l_##name(lua_State *L)                 \
    {                                                 \
        struct cluster *c = sim_lua_check_cluster(L); \
        raft_id id = sim_lua_check_node(L, c, 2);     \
        const struct raft *r = sim_core(c->s, id);    \
        if (r == NULL) {                              \
            lua_pushnil(L);                           \
        } else {                                      \
            lua_pushinteger(L, (lua_Integer)(expr));  \
        }                                             \
        return 1;                                     \
    }

CORE_ACCESSOR(term, raft_current_term(r))
CORE_ACCESSOR(commit, raft_commit_index(r))
CORE_ACCESSOR(last_index, raft_last_index(r))
CORE_ACCESSOR(snapshot_index, raft_snapshot_index(r))
CORE_ACCESSOR(first_index, raft_first_index(r))
CORE_ACCESSOR(stable_index, raft_stable_index(r))
CORE_ACCESSOR(voted_for, raft_voted_for(r))
CORE_ACCESSOR(known_leader, raft_leader_of(r))
CORE_ACCESSOR(applied, sim_applied(c->s, id))
CORE_ACCESSOR(fsm_hash, sim_fsm_hash(c->s, id))

static int l_term_at(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    const struct raft *r = sim_core(c->s, sim_lua_check_node(L, c, 2));
    lua_Integer index = luaL_checkinteger(L, 3);
    raft_term t = r != NULL && index >= 0 ? raft_term_at(r, (raft_index)index) : 0;
    if (t == 0) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, (lua_Integer)t);
    }
    return 1;
}

/* c:log(id) -> {{index=, term=, value=}, ...}: the node's volatile log. A leader's no-op has
 * noop = true and no value. */
static int l_log(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
    raft_index first = sim_log_first(c->s, id);
    raft_index last = sim_log_last(c->s, id);
    lua_createtable(L, last >= first ? (int)(last - first + 1) : 0, 0); /* log */
    for (raft_index i = first; i <= last; i++) {
        raft_term term;
        uint64_t value;
        bool noop;
        if (!sim_log_entry(c->s, id, i, &term, &value, &noop)) {
            continue;
        }
        lua_createtable(L, 0, 4);              /* log, e */
        lua_pushinteger(L, (lua_Integer)i);    /* log, e, index */
        lua_setfield(L, -2, "index");          /* log, e */
        lua_pushinteger(L, (lua_Integer)term); /* log, e, term */
        lua_setfield(L, -2, "term");           /* log, e */
        if (noop) {
            lua_pushboolean(L, 1);       /* log, e, true */
            lua_setfield(L, -2, "noop"); /* log, e */
        } else {
            lua_pushinteger(L, (lua_Integer)value); /* log, e, value */
            lua_setfield(L, -2, "value");           /* log, e */
        }
        lua_rawseti(L, -2, (lua_Integer)(i - first + 1)); /* log */
    }
    return 1;
}

static int l_peer(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    const struct raft *r = sim_core(c->s, sim_lua_check_node(L, c, 2));
    raft_id peer = sim_lua_check_node(L, c, 3);
    struct raft_peer_info info;
    if (r == NULL || !raft_peer_info(r, peer, &info)) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 4);                    /* t */
    lua_pushboolean(L, info.voter);              /* t, voter */
    lua_setfield(L, -2, "voter");                /* t */
    lua_pushinteger(L, (lua_Integer)info.match); /* t, match */
    lua_setfield(L, -2, "match");                /* t */
    lua_pushinteger(L, (lua_Integer)info.next);  /* t, next */
    lua_setfield(L, -2, "next");                 /* t */
    lua_pushstring(L, info.state);               /* t, state */
    lua_setfield(L, -2, "state");                /* t */
    return 1;
}

static int l_members(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    const struct raft *r = sim_core(c->s, sim_lua_check_node(L, c, 2));
    if (r == NULL) {
        lua_pushnil(L);
        return 1;
    }
    const struct raft_members *m = raft_members_of(r);
    lua_createtable(L, 0, 3); /* t */
    lua_newtable(L);          /* t voters */
    lua_newtable(L);          /* t voters learners */
    lua_Integer nv = 0, nl = 0;
    for (unsigned i = 0; i < m->n; i++) {
        lua_pushinteger(L, (lua_Integer)m->servers[i].id); /* t voters learners id */
        if (m->servers[i].voter) {
            lua_rawseti(L, -3, ++nv); /* t voters learners */
        } else {
            lua_rawseti(L, -2, ++nl); /* t voters learners */
        }
    }
    lua_setfield(L, -3, "learners");                        /* t voters */
    lua_setfield(L, -2, "voters");                          /* t */
    lua_pushinteger(L, (lua_Integer)raft_members_index(r)); /* t index */
    lua_setfield(L, -2, "index");                           /* t */
    return 1;
}

const luaL_Reg sim_lua_inspect_methods[] = {
    {"members", l_members},
    {"nodes", l_nodes},
    {"leader", l_leader},
    {"role", l_role},
    {"paused", l_paused},
    {"term", l_term},
    {"commit", l_commit},
    {"last_index", l_last_index},
    {"applied", l_applied},
    {"fsm_hash", l_fsm_hash},
    {"snapshot_index", l_snapshot_index},
    {"first_index", l_first_index},
    {"stable_index", l_stable_index},
    {"voted_for", l_voted_for},
    {"known_leader", l_known_leader},
    {"term_at", l_term_at},
    {"log", l_log},
    {"peer", l_peer},
    {NULL, NULL},
};
