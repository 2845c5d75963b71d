/*
 * luaraft.sim: the simulator as a Lua module, for busted specs (the idea of Lua's own
 * ltests.c "T" library: a test-only C library the suite depends on).
 *
 *   local sim = require("luaraft.sim")
 *   local c = sim.cluster{nodes = 3, seed = 1}
 *   assert(c:run_until(function() return c:leader() end, 2000))
 *
 * A cluster is a full userdata with the named metatable "luaraft.sim.cluster" (__index
 * methods, __gc and __close free it). Times are in milliseconds (numbers) on the Lua side
 * and microseconds in C. Operations that can be refused return nil plus an error name
 * ("ENOTLEADER", "EDOWN", ...); a checker violation raises a Lua error whose message names
 * the rule and carries the trace tail. Errors are raised only after the simulator has
 * finished the step, so a cluster is never left half-stepped; once a violation is found
 * the cluster stays stopped and every stepping call raises it again.
 *
 * Set LUARAFT_TRACE=1 to print every trace line to stderr.
 *
 * Module:  sim.cluster{nodes=3, learners=0, seed=1, election_ticks=10, heartbeat_ticks=1,
 *            tick_ms=10, net_delay_min_ms=1, net_delay_max_ms=5, disk_delay_min_ms=0.1,
 *            disk_delay_max_ms=2, snapshot_threshold=0, snapshot_trailing=10,
 *            append_entries_max=<core default>, inflight_msgs_max=<core default>,
 *            log_entries_max=<core default>, fifo_links=false, trace=<LUARAFT_TRACE>}
 *          sim.random_run{seed=, steps=} -> true, stats | false, message, stats
 *          sim.random_runs{first=, count=, steps=, stop_at_first=}
 *            -> {failures=, runs=, first_failed=, message=, steps=, stats=}
 * Time:    c:step() -> bool; c:run(ms); c:run_until(fn, max_ms) -> bool; c:now() -> ms
 * Nodes:   c:nodes(); c:leader() -> id | nil;
 *          c:role(id) -> "follower" | "precandidate" | "candidate" | "leader" | "down";
 *          c:paused(id); c:term, commit, last_index, applied, snapshot_index, first_index,
 *          stable_index, voted_for, known_leader, fsm_hash (id) -> integer | nil when down;
 *          c:term_at(id, index); c:log(id); c:peer(leader, id) -> {voter=, match=, next=, state=}
 * Clients: c:propose(id, value) -> index; c:propose_many(id, n [, first_value]) -> first index;
 *          c:read_index(id) -> reqid; c:read_result(reqid) -> "pending" | index, applied;
 *          c:transfer(id, target); c:campaign(id [, force]); c:snapshot(id)
 * Faults:  c:partition({1, 2}, {3}); c:cut(a, b) and c:connect(a, b) (one way, a -> b);
 *          c:isolate(id); c:heal() (links); c:heal_all() (everything); c:crash(id);
 *          c:restart(id); c:wipe(id); c:pause(id); c:resume(id); c:clock_rate(id, factor);
 *          c:faults{loss=, dup=, delay_min_ms=, delay_max_ms=}
 * Disks:   c:disk_delay(id, min_ms, max_ms); c:hold_disk(id); c:release_disk(id [, n]) ->
 *          released; c:disk_pending(id) -> writes in flight, completions held
 * Reports: c:trace([lines=64]) -> string; c:failure() -> string | nil; c:stats() -> table
 */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"
#include "util/assert.h"

#define CLUSTER_MT "luaraft.sim.cluster"

enum {
    trace_text_bytes_max = 256 * 1024, /* c:trace() output */
    random_msg_bytes_max = 32768,      /* a random run's failure message */
};

struct cluster
{
    struct sim *s;
    uint64_t next_value; /* propose_many's default values */
};

static bool env_trace(void)
{
    const char *v = getenv("LUARAFT_TRACE");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

static const char *errname(int rv)
{
    switch (rv) {
        case RAFT_ENOTLEADER:
            return "ENOTLEADER";
        case RAFT_EBUSY:
            return "EBUSY";
        case RAFT_ELOGFULL:
            return "ELOGFULL";
        case RAFT_EINVAL:
            return "EINVAL";
        case RAFT_ENOMEM:
            return "ENOMEM";
        case RAFT_ETOOMANY:
            return "ETOOMANY";
        case SIM_EDOWN:
            return "EDOWN";
        case SIM_EPAUSED:
            return "EPAUSED";
        case SIM_ENOENT:
            return "ENOENT";
        case SIM_EBUSY:
            return "EINSTALLING";
        case SIM_EFAILED:
            return "EFAILED";
        case SIM_EINVAL:
            return "EINVAL";
        case SIM_ENOTHING:
            return "ENOTHING";
        case SIM_EREAD_FAILED:
            return "EREADFAILED";
        default:
            return "EUNKNOWN";
    }
}

static struct cluster *check_cluster(lua_State *L)
{
    struct cluster *c = luaL_checkudata(L, 1, CLUSTER_MT);
    if (c->s == NULL) {
        luaL_error(L, "luaraft.sim: cluster is closed");
    }
    return c;
}

/* Raises the checker's violation, if there is one. Call only between steps. */
static void raise_failure(lua_State *L, const struct cluster *c)
{
    const char *f = sim_failure(c->s);
    if (f != NULL) {
        luaL_error(L, "luaraft.sim: %s", f);
    }
}

static raft_id check_node(lua_State *L, const struct cluster *c, int arg)
{
    lua_Integer id = luaL_checkinteger(L, arg);
    luaL_argcheck(L, id >= 1 && id <= (lua_Integer)sim_node_count(c->s), arg, "no such node");
    return (raft_id)id;
}

/* Pushes nil, error name (and raises first if the error is a violation). */
static int push_error(lua_State *L, const struct cluster *c, int rv)
{
    raise_failure(L, c);
    lua_pushnil(L);                      /* nil */
    lua_pushstring(L, errname(rv));      /* nil, name */
    lua_pushstring(L, sim_strerror(rv)); /* nil, name, message */
    return 3;
}

static uint64_t ms_to_us(lua_State *L, int arg, double ms)
{
    luaL_argcheck(L, ms >= 0 && ms < 1e12, arg, "time out of range");
    return (uint64_t)llround(ms * 1000.0);
}

/* --- sim.cluster{...} --------------------------------------------------------------- */

static lua_Integer opt_int(lua_State *L, int t, const char *key, lua_Integer def)
{
    lua_getfield(L, t, key); /* value */
    lua_Integer v = luaL_optinteger(L, -1, def);
    lua_pop(L, 1);
    if (v < 0) {
        luaL_error(L, "luaraft.sim: option %s must not be negative", key);
    }
    return v;
}

static uint64_t opt_ms(lua_State *L, int t, const char *key, uint64_t def_us)
{
    lua_getfield(L, t, key); /* value */
    double ms = luaL_optnumber(L, -1, (double)def_us / 1000.0);
    lua_pop(L, 1);
    if (!(ms >= 0 && ms < 1e12)) {
        luaL_error(L, "luaraft.sim: option %s out of range", key);
    }
    return (uint64_t)llround(ms * 1000.0);
}

static int l_cluster(lua_State *L)
{
    struct sim_options o;
    sim_options_default(&o);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        o.voters = (unsigned)opt_int(L, 1, "nodes", o.voters);
        o.learners = (unsigned)opt_int(L, 1, "learners", o.learners);
        o.seed = (uint64_t)opt_int(L, 1, "seed", (lua_Integer)o.seed);
        o.election_ticks = (uint32_t)opt_int(L, 1, "election_ticks", o.election_ticks);
        o.heartbeat_ticks = (uint32_t)opt_int(L, 1, "heartbeat_ticks", o.heartbeat_ticks);
        o.tick_us = opt_ms(L, 1, "tick_ms", o.tick_us);
        o.net_delay_min_us = opt_ms(L, 1, "net_delay_min_ms", o.net_delay_min_us);
        o.net_delay_max_us = opt_ms(L, 1, "net_delay_max_ms", o.net_delay_max_us);
        o.disk_delay_min_us = opt_ms(L, 1, "disk_delay_min_ms", o.disk_delay_min_us);
        o.disk_delay_max_us = opt_ms(L, 1, "disk_delay_max_ms", o.disk_delay_max_us);
        o.snapshot_threshold =
            (uint64_t)opt_int(L, 1, "snapshot_threshold", (lua_Integer)o.snapshot_threshold);
        o.snapshot_trailing =
            (uint64_t)opt_int(L, 1, "snapshot_trailing", (lua_Integer)o.snapshot_trailing);
        o.append_entries_max = (uint32_t)opt_int(L, 1, "append_entries_max", o.append_entries_max);
        o.inflight_msgs_max = (uint32_t)opt_int(L, 1, "inflight_msgs_max", o.inflight_msgs_max);
        o.log_entries_max =
            (uint64_t)opt_int(L, 1, "log_entries_max", (lua_Integer)o.log_entries_max);
        lua_getfield(L, 1, "fifo_links"); /* fifo */
        o.fifo_links = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 1, "trace"); /* trace */
        o.trace_stderr = lua_isnil(L, -1) ? env_trace() : lua_toboolean(L, -1);
        lua_pop(L, 1);
    } else {
        o.trace_stderr = env_trace();
    }
    struct cluster *c = lua_newuserdatauv(L, sizeof *c, 0); /* c */
    c->s = NULL;
    c->next_value = 1;
    luaL_setmetatable(L, CLUSTER_MT);
    int rv = sim_create(&c->s, &o);
    if (rv != 0) {
        c->s = NULL;
        return luaL_error(L, "luaraft.sim.cluster: %s", sim_strerror(rv));
    }
    return 1;
}

static int l_gc(lua_State *L)
{
    struct cluster *c = luaL_checkudata(L, 1, CLUSTER_MT);
    if (c->s != NULL) {
        sim_destroy(c->s);
        c->s = NULL;
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    struct cluster *c = luaL_checkudata(L, 1, CLUSTER_MT);
    if (c->s == NULL) {
        lua_pushstring(L, "luaraft.sim.cluster (closed)");
    } else {
        lua_pushfstring(L, "luaraft.sim.cluster (%d nodes, t=%f ms)", (int)sim_node_count(c->s),
                        (double)sim_now_us(c->s) / 1000.0);
    }
    return 1;
}

/* --- Time ------------------------------------------------------------------------------ */

static int l_step(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raise_failure(L, c);
    bool stepped = sim_step(c->s);
    raise_failure(L, c);
    lua_pushboolean(L, stepped);
    return 1;
}

static int l_run(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    uint64_t us = ms_to_us(L, 2, luaL_checknumber(L, 2));
    raise_failure(L, c);
    sim_run_for(c->s, us);
    raise_failure(L, c);
    return 0;
}

/* c:run_until(fn, max_ms) -> bool: steps until fn() returns true (checked before the first
 * step and after every step); false when max_ms of virtual time pass or nothing is left. */
static int l_run_until(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    uint64_t deadline = sim_now_us(c->s) + ms_to_us(L, 3, luaL_checknumber(L, 3));
    raise_failure(L, c);
    for (;;) {
        lua_pushvalue(L, 2); /* fn */
        lua_call(L, 0, 1);   /* result */
        bool done = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (done) {
            lua_pushboolean(L, 1);
            return 1;
        }
        uint64_t next;
        if (!sim_next_event_us(c->s, &next) || next > deadline) {
            break;
        }
        sim_step(c->s);
        raise_failure(L, c);
    }
    if (sim_now_us(c->s) < deadline) {
        sim_run_for(c->s, deadline - sim_now_us(c->s));
        raise_failure(L, c);
    }
    lua_pushboolean(L, 0);
    return 1;
}

static int l_now(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    lua_pushnumber(L, (lua_Number)sim_now_us(c->s) / 1000.0);
    return 1;
}

/* --- Inspection ---------------------------------------------------------------------- */

static int l_nodes(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    lua_pushinteger(L, (lua_Integer)sim_node_count(c->s));
    return 1;
}

static int l_leader(lua_State *L)
{
    struct cluster *c = check_cluster(L);
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
    struct cluster *c = check_cluster(L);
    const struct raft *r = sim_core(c->s, check_node(L, c, 2));
    lua_pushstring(L, r != NULL ? raft_role_name(raft_role_of(r)) : "down");
    return 1;
}

static int l_paused(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    lua_pushboolean(L, sim_node_paused(c->s, check_node(L, c, 2)));
    return 1;
}

/* The integer accessors of a core: nil while the node is down. */
#define CORE_ACCESSOR(name, expr)                    \
    static int l_##name(lua_State *L)                \
    {                                                \
        struct cluster *c = check_cluster(L);        \
        raft_id id = check_node(L, c, 2);            \
        const struct raft *r = sim_core(c->s, id);   \
        if (r == NULL) {                             \
            lua_pushnil(L);                          \
        } else {                                     \
            lua_pushinteger(L, (lua_Integer)(expr)); \
        }                                            \
        return 1;                                    \
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
    struct cluster *c = check_cluster(L);
    const struct raft *r = sim_core(c->s, check_node(L, c, 2));
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
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
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
    struct cluster *c = check_cluster(L);
    const struct raft *r = sim_core(c->s, check_node(L, c, 2));
    raft_id peer = check_node(L, c, 3);
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

/* --- Client operations ----------------------------------------------------------------- */

static int l_propose(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
    uint64_t value = (uint64_t)luaL_checkinteger(L, 3);
    raft_index index;
    int rv = sim_propose(c->s, id, value, &index);
    if (rv != 0) {
        return push_error(L, c, rv);
    }
    raise_failure(L, c);
    lua_pushinteger(L, (lua_Integer)index);
    return 1;
}

/* c:propose_many(id, n [, first_value]) -> first index | nil, err. The values are
 * first_value, first_value + 1, ...; by default they continue a per-cluster counter. */
static int l_propose_many(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
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
        return push_error(L, c, rv);
    }
    if (lua_isnoneornil(L, 4)) {
        c->next_value = base + (uint64_t)n;
    }
    raise_failure(L, c);
    lua_pushinteger(L, (lua_Integer)first);
    return 1;
}

static int l_read_index(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    uint64_t reqid = 0;
    int rv = sim_read_index(c->s, check_node(L, c, 2), &reqid);
    if (rv != 0) {
        return push_error(L, c, rv);
    }
    raise_failure(L, c);
    lua_pushinteger(L, (lua_Integer)reqid);
    return 1;
}

/* c:read_result(reqid) -> "pending" | index, applied-when-served | nil, err */
static int l_read_result(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    lua_Integer reqid = luaL_checkinteger(L, 2);
    enum sim_read_state state;
    raft_index index, applied;
    int rv =
        reqid > 0 ? sim_read_result(c->s, (uint64_t)reqid, &state, &index, &applied) : SIM_ENOENT;
    if (rv != 0) {
        return push_error(L, c, rv);
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
            return push_error(L, c, SIM_EREAD_FAILED);
    }
}

/* Operations answering true | nil, err. */
static int push_result(lua_State *L, const struct cluster *c, int rv)
{
    if (rv != 0) {
        return push_error(L, c, rv);
    }
    raise_failure(L, c);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_transfer(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
    lua_Integer target = luaL_checkinteger(L, 3);
    luaL_argcheck(L, target >= 0, 3, "bad node id");
    return push_result(L, c, sim_transfer(c->s, id, (raft_id)target));
}

static int l_campaign(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
    return push_result(L, c, sim_campaign(c->s, id, lua_toboolean(L, 3)));
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
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
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
    return push_result(L, c, sim_inject(c->s, id, &m));
}

static int l_snapshot(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    return push_result(L, c, sim_snapshot(c->s, check_node(L, c, 2)));
}

/* --- Faults -------------------------------------------------------------------------- */

/* c:partition({1, 2}, {3}): nodes in one table talk to each other only; nodes named in no
 * table are isolated. */
static int l_partition(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    unsigned group[sim_nodes_max + 1] = {0};
    int top = lua_gettop(L);
    for (int arg = 2; arg <= top; arg++) {
        luaL_checktype(L, arg, LUA_TTABLE);
        lua_Integer len = luaL_len(L, arg);
        for (lua_Integer k = 1; k <= len; k++) {
            lua_rawgeti(L, arg, k); /* id */
            lua_Integer id = luaL_checkinteger(L, -1);
            lua_pop(L, 1);
            luaL_argcheck(L, id >= 1 && id <= (lua_Integer)sim_node_count(c->s), arg,
                          "no such node");
            luaL_argcheck(L, group[id] == 0, arg, "node named in two groups");
            group[id] = (unsigned)(arg - 1);
        }
    }
    sim_partition(c->s, group);
    return 0;
}

static int l_cut(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    sim_link(c->s, check_node(L, c, 2), check_node(L, c, 3), false);
    return 0;
}

static int l_connect(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    sim_link(c->s, check_node(L, c, 2), check_node(L, c, 3), true);
    return 0;
}

static int l_isolate(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    sim_isolate(c->s, check_node(L, c, 2));
    return 0;
}

static int l_heal(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    sim_heal_links(c->s);
    return 0;
}

static int l_heal_all(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raise_failure(L, c);
    sim_heal_all(c->s);
    raise_failure(L, c);
    return 0;
}

/* crash/restart/pause/resume: true | nil, err (e.g. crashing a node that is down). */
static int l_crash(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    return push_result(L, c, sim_crash(c->s, check_node(L, c, 2)));
}

static int l_wipe(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    return push_result(L, c, sim_wipe(c->s, check_node(L, c, 2)));
}

static int l_restart(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    return push_result(L, c, sim_restart(c->s, check_node(L, c, 2)));
}

static int l_pause(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    return push_result(L, c, sim_pause(c->s, check_node(L, c, 2)));
}

static int l_resume(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    return push_result(L, c, sim_resume(c->s, check_node(L, c, 2)));
}

static int l_clock_rate(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
    double factor = luaL_checknumber(L, 3);
    double permille = factor * 1000.0;
    luaL_argcheck(
        L, permille >= sim_clock_rate_permille_min && permille <= sim_clock_rate_permille_max, 3,
        "clock rate out of range (0.5 .. 2)");
    sim_clock_rate(c->s, id, (uint32_t)llround(permille));
    return 0;
}

/* c:disk_delay(id, min_ms, max_ms): the node's disk latency (a slow disk). */
static int l_disk_delay(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
    uint64_t lo = ms_to_us(L, 3, luaL_checknumber(L, 3));
    uint64_t hi = ms_to_us(L, 4, luaL_checknumber(L, 4));
    luaL_argcheck(L, lo <= hi, 4, "min_ms > max_ms");
    return push_result(L, c, sim_disk_delay(c->s, id, lo, hi));
}

/* c:hold_disk(id): no persist request of the node completes until c:release_disk(). */
static int l_hold_disk(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    return push_result(L, c, sim_disk_hold(c->s, check_node(L, c, 2), true));
}

/* c:release_disk(id [, n]) -> released: with n, the n oldest held completions happen (at
 * the next steps) and the disk stays held; without, the hold ends and all of them do. */
static int l_release_disk(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    raft_id id = check_node(L, c, 2);
    uint32_t before, held;
    sim_disk_pending(c->s, id, &before, &held);
    int rv;
    uint32_t released = held;
    if (lua_isnoneornil(L, 3)) {
        rv = sim_disk_hold(c->s, id, false);
    } else {
        lua_Integer n = luaL_checkinteger(L, 3);
        luaL_argcheck(L, n >= 0 && n <= UINT32_MAX, 3, "count out of range");
        rv = sim_disk_release(c->s, id, (uint32_t)n, &released);
    }
    if (rv != 0) {
        return push_error(L, c, rv);
    }
    lua_pushinteger(L, (lua_Integer)released);
    return 1;
}

/* c:disk_pending(id) -> writes in flight, completions due but held. */
static int l_disk_pending(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    uint32_t writes, held;
    sim_disk_pending(c->s, check_node(L, c, 2), &writes, &held);
    lua_pushinteger(L, (lua_Integer)writes);
    lua_pushinteger(L, (lua_Integer)held);
    return 2;
}

static double opt_field(lua_State *L, int t, const char *key, double def)
{
    lua_getfield(L, t, key); /* value */
    double v = luaL_optnumber(L, -1, def);
    lua_pop(L, 1);
    return v;
}

/* c:faults{loss=, dup=, delay_min_ms=, delay_max_ms=}: loss and duplication probabilities
 * (0..1) and the delay range. Missing fields take their default: no loss, no duplication,
 * the cluster's delay range. c:faults{} turns network faults off. */
static int l_faults(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    double loss = opt_field(L, 2, "loss", 0);
    double dup = opt_field(L, 2, "dup", 0);
    luaL_argcheck(L, loss >= 0 && loss <= 1 && dup >= 0 && dup <= 1, 2,
                  "loss and dup are probabilities");
    const struct sim_options *o = sim_options_of(c->s);
    uint64_t lo =
        ms_to_us(L, 2, opt_field(L, 2, "delay_min_ms", (double)o->net_delay_min_us / 1e3));
    uint64_t hi =
        ms_to_us(L, 2, opt_field(L, 2, "delay_max_ms", (double)o->net_delay_max_us / 1e3));
    luaL_argcheck(L, lo <= hi, 2, "delay_min_ms > delay_max_ms");
    sim_net_faults(c->s, (uint32_t)llround(loss * 1e6), (uint32_t)llround(dup * 1e6), lo, hi);
    return 0;
}

/* --- Trace, statistics ------------------------------------------------------------- */

static int l_trace(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    lua_Integer lines = luaL_optinteger(L, 2, sim_failure_trace_lines);
    luaL_argcheck(L, lines >= 0 && lines <= sim_trace_lines_max, 2, "too many lines");
    char *buf = lua_newuserdatauv(L, trace_text_bytes_max, 0); /* buf */
    size_t n = sim_trace(c->s, (unsigned)lines, buf, trace_text_bytes_max);
    lua_pushlstring(L, buf, n); /* buf, text */
    return 1;
}

static int l_failure(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    const char *f = sim_failure(c->s);
    if (f == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, f);
    }
    return 1;
}

static void push_stats(lua_State *L, const struct sim_stats *st)
{
    lua_createtable(L, 0, 20); /* t */
#define STAT(field)                             \
    lua_pushinteger(L, (lua_Integer)st->field); \
    lua_setfield(L, -2, #field)
    STAT(steps);
    STAT(msgs_sent);
    STAT(msgs_delivered);
    STAT(msgs_dropped);
    STAT(msgs_duplicated);
    STAT(msgs_held_lost);
    STAT(elections);
    STAT(leaders);
    STAT(proposals);
    STAT(commits);
    STAT(writes);
    STAT(snapshots_taken);
    STAT(snapshots_sent);
    STAT(snapshots_installed);
    STAT(crashes);
    STAT(restarts);
    STAT(reads_served);
    STAT(reads_failed);
    STAT(persisted_after_truncation);
#undef STAT
}

static int l_stats(lua_State *L)
{
    struct cluster *c = check_cluster(L);
    push_stats(L, sim_stats(c->s));
    return 1;
}

/* --- Random runs ------------------------------------------------------------------- */

/* sim.random_run{seed=, steps=} -> true, stats | false, message, stats */
static int l_random_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer seed = opt_int(L, 1, "seed", 1);
    lua_Integer steps = opt_int(L, 1, "steps", 2000);
    char *msg = lua_newuserdatauv(L, random_msg_bytes_max, 0); /* msg */
    struct sim_stats st;
    int rv = sim_random_run((uint64_t)seed, (uint64_t)steps, msg, random_msg_bytes_max, &st);
    if (rv == 0) {
        lua_pushboolean(L, 1); /* msg, true */
        push_stats(L, &st);    /* msg, true, stats */
        return 2;
    }
    lua_pushboolean(L, 0);  /* msg, false */
    lua_pushstring(L, msg); /* msg, false, message */
    push_stats(L, &st);     /* msg, false, message, stats */
    return 3;
}

static void add_stats(struct sim_stats *sum, const struct sim_stats *st)
{
    sum->steps += st->steps;
    sum->msgs_sent += st->msgs_sent;
    sum->msgs_delivered += st->msgs_delivered;
    sum->msgs_dropped += st->msgs_dropped;
    sum->msgs_duplicated += st->msgs_duplicated;
    sum->msgs_held_lost += st->msgs_held_lost;
    sum->elections += st->elections;
    sum->leaders += st->leaders;
    sum->proposals += st->proposals;
    sum->commits += st->commits;
    sum->writes += st->writes;
    sum->snapshots_taken += st->snapshots_taken;
    sum->snapshots_sent += st->snapshots_sent;
    sum->snapshots_installed += st->snapshots_installed;
    sum->crashes += st->crashes;
    sum->restarts += st->restarts;
    sum->reads_served += st->reads_served;
    sum->reads_failed += st->reads_failed;
    sum->persisted_after_truncation += st->persisted_after_truncation;
}

/*
 * sim.random_runs{first=1, count=2000, steps=2000, stop_at_first=false} -> {failures=,
 * runs=, first_failed= (seed or nil), message= (the first failure's, or nil), steps=,
 * stats= (summed over the runs)}. The loop runs in C.
 */
static int l_random_runs(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer first = opt_int(L, 1, "first", 1);
    lua_Integer count = opt_int(L, 1, "count", 2000);
    lua_Integer steps = opt_int(L, 1, "steps", 2000);
    lua_getfield(L, 1, "stop_at_first"); /* stop */
    bool stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    char *msg = lua_newuserdatauv(L, random_msg_bytes_max, 0);       /* msg */
    char *first_msg = lua_newuserdatauv(L, random_msg_bytes_max, 0); /* msg, fmsg */
    first_msg[0] = '\0';
    lua_Integer failures = 0, runs = 0, failed_seed = 0;
    struct sim_stats sum;
    memset(&sum, 0, sizeof sum);
    char replay[256];
    for (lua_Integer seed = first; seed < first + count; seed++) {
        struct sim_stats st;
        snprintf(replay, sizeof replay,
                 "LUARAFT_SEED=%lld LUARAFT_STEPS=%lld lua5.4 /usr/bin/busted "
                 "--helper=spec/helper.lua spec/raft/random_spec.lua",
                 (long long)seed, (long long)steps);
        lr_assert_context(replay);
        int rv = sim_random_run((uint64_t)seed, (uint64_t)steps, msg, random_msg_bytes_max, &st);
        lr_assert_context(NULL);
        runs++;
        add_stats(&sum, &st);
        if (rv != 0) {
            if (failures == 0) {
                failed_seed = seed;
                memcpy(first_msg, msg, random_msg_bytes_max);
            }
            failures++;
            if (stop) {
                break;
            }
        }
    }
    lua_createtable(L, 0, 6);        /* msg, fmsg, t */
    lua_pushinteger(L, failures);    /* msg, fmsg, t, failures */
    lua_setfield(L, -2, "failures"); /* msg, fmsg, t */
    lua_pushinteger(L, runs);        /* msg, fmsg, t, runs */
    lua_setfield(L, -2, "runs");     /* msg, fmsg, t */
    if (failures > 0) {
        lua_pushinteger(L, failed_seed);     /* msg, fmsg, t, seed */
        lua_setfield(L, -2, "first_failed"); /* msg, fmsg, t */
        lua_pushstring(L, first_msg);        /* msg, fmsg, t, message */
        lua_setfield(L, -2, "message");      /* msg, fmsg, t */
    }
    lua_pushinteger(L, (lua_Integer)sum.steps); /* msg, fmsg, t, steps */
    lua_setfield(L, -2, "steps");               /* msg, fmsg, t */
    push_stats(L, &sum);                        /* msg, fmsg, t, stats */
    lua_setfield(L, -2, "stats");               /* msg, fmsg, t */
    return 1;
}

/* --- Registration ------------------------------------------------------------------ */

static const luaL_Reg cluster_methods[] = {
    {"step", l_step},
    {"run", l_run},
    {"run_until", l_run_until},
    {"now", l_now},
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
    {"propose", l_propose},
    {"propose_many", l_propose_many},
    {"read_index", l_read_index},
    {"read_result", l_read_result},
    {"transfer", l_transfer},
    {"campaign", l_campaign},
    {"inject", l_inject},
    {"snapshot", l_snapshot},
    {"partition", l_partition},
    {"cut", l_cut},
    {"connect", l_connect},
    {"isolate", l_isolate},
    {"heal", l_heal},
    {"heal_all", l_heal_all},
    {"crash", l_crash},
    {"wipe", l_wipe},
    {"restart", l_restart},
    {"pause", l_pause},
    {"resume", l_resume},
    {"clock_rate", l_clock_rate},
    {"faults", l_faults},
    {"disk_delay", l_disk_delay},
    {"hold_disk", l_hold_disk},
    {"release_disk", l_release_disk},
    {"disk_pending", l_disk_pending},
    {"trace", l_trace},
    {"failure", l_failure},
    {"stats", l_stats},
    {"close", l_gc},
    {NULL, NULL},
};

static const luaL_Reg cluster_meta[] = {
    {"__gc", l_gc},    {"__close", l_gc}, {"__tostring", l_tostring},
    {"__index", NULL}, /* placeholder, set below */
    {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"cluster", l_cluster},
    {"random_run", l_random_run},
    {"random_runs", l_random_runs},
    {NULL, NULL},
};

int luaopen_luaraft_sim(lua_State *L);

int luaopen_luaraft_sim(lua_State *L)
{
    luaL_newmetatable(L, CLUSTER_MT);     /* mt */
    luaL_setfuncs(L, cluster_meta, 0);    /* mt */
    luaL_newlibtable(L, cluster_methods); /* mt, methods */
    luaL_setfuncs(L, cluster_methods, 0); /* mt, methods */
    lua_setfield(L, -2, "__index");       /* mt */
    lua_pop(L, 1);                        /* */
    luaL_newlib(L, module_funcs);         /* module */
    return 1;
}
