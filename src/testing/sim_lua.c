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
 * Module:  sim.cluster{nodes=3, learners=0, spares=0, seed=1, election_ticks=10,
 *            heartbeat_ticks=1,
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
 *          c:term_at(id, index); c:log(id); c:peer(leader, id) -> {voter=, match=, next=, state=};
 *          c:members(id) -> {voters = {ids}, learners = {ids}, index =} | nil when down
 * Clients: c:propose(id, value) -> index; c:propose_many(id, n [, first_value]) -> first index;
 *          c:read_index(id) -> reqid; c:read_result(reqid) -> "pending" | index, applied;
 *          c:transfer(id, target); c:campaign(id [, force]); c:snapshot(id);
 *          c:change(id, "add" | "promote" | "demote" | "remove", target) -> index
 * Faults:  c:partition({1, 2}, {3}); c:cut(a, b) and c:connect(a, b) (one way, a -> b);
 *          c:isolate(id); c:heal() (links); c:heal_all() (everything); c:crash(id);
 *          c:restart(id); c:wipe(id); c:pause(id); c:resume(id); c:clock_rate(id, factor);
 *          c:faults{loss=, dup=, delay_min_ms=, delay_max_ms=}
 * Disks:   c:disk_delay(id, min_ms, max_ms); c:hold_disk(id); c:release_disk(id [, n]) ->
 *          released; c:disk_pending(id) -> writes in flight, completions held
 * Reports: c:trace([lines=64]) -> string; c:failure() -> string | nil; c:stats() -> table
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testing/sim_lua_internal.h"

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
        case RAFT_ECHANGE:
            return "ECHANGE";
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

/* --- Helpers the method files share (sim_lua_internal.h) ------------------------- */

struct cluster *sim_lua_check_cluster(lua_State *L)
{
    struct cluster *c = luaL_checkudata(L, 1, CLUSTER_MT);
    if (c->s == NULL) {
        luaL_error(L, "luaraft.sim: cluster is closed");
    }
    return c;
}

/* Raises the checker's violation, if there is one. Call only between steps. */
void sim_lua_raise_failure(lua_State *L, const struct cluster *c)
{
    const char *f = sim_failure(c->s);
    if (f != NULL) {
        luaL_error(L, "luaraft.sim: %s", f);
    }
}

raft_id sim_lua_check_node(lua_State *L, const struct cluster *c, int arg)
{
    lua_Integer id = luaL_checkinteger(L, arg);
    luaL_argcheck(L, id >= 1 && id <= (lua_Integer)sim_node_count(c->s), arg, "no such node");
    return (raft_id)id;
}

/* Pushes nil, error name (and raises first if the error is a violation). */
int sim_lua_push_error(lua_State *L, const struct cluster *c, int rv)
{
    sim_lua_raise_failure(L, c);
    lua_pushnil(L);                      /* nil */
    lua_pushstring(L, errname(rv));      /* nil, name */
    lua_pushstring(L, sim_strerror(rv)); /* nil, name, message */
    return 3;
}

uint64_t sim_lua_ms_to_us(lua_State *L, int arg, double ms)
{
    luaL_argcheck(L, ms >= 0 && ms < 1e12, arg, "time out of range");
    return (uint64_t)llround(ms * 1000.0);
}

/* Operations answering true | nil, err. */
int sim_lua_push_result(lua_State *L, const struct cluster *c, int rv)
{
    if (rv != 0) {
        return sim_lua_push_error(L, c, rv);
    }
    sim_lua_raise_failure(L, c);
    lua_pushboolean(L, 1);
    return 1;
}

/* --- sim.cluster{...} --------------------------------------------------------------- */

lua_Integer sim_lua_opt_int(lua_State *L, int t, const char *key, lua_Integer def)
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
        o.voters = (unsigned)sim_lua_opt_int(L, 1, "nodes", o.voters);
        o.learners = (unsigned)sim_lua_opt_int(L, 1, "learners", o.learners);
        o.spares = (unsigned)sim_lua_opt_int(L, 1, "spares", o.spares);
        o.seed = (uint64_t)sim_lua_opt_int(L, 1, "seed", (lua_Integer)o.seed);
        o.election_ticks = (uint32_t)sim_lua_opt_int(L, 1, "election_ticks", o.election_ticks);
        o.heartbeat_ticks = (uint32_t)sim_lua_opt_int(L, 1, "heartbeat_ticks", o.heartbeat_ticks);
        o.tick_us = opt_ms(L, 1, "tick_ms", o.tick_us);
        o.net_delay_min_us = opt_ms(L, 1, "net_delay_min_ms", o.net_delay_min_us);
        o.net_delay_max_us = opt_ms(L, 1, "net_delay_max_ms", o.net_delay_max_us);
        o.disk_delay_min_us = opt_ms(L, 1, "disk_delay_min_ms", o.disk_delay_min_us);
        o.disk_delay_max_us = opt_ms(L, 1, "disk_delay_max_ms", o.disk_delay_max_us);
        o.snapshot_threshold = (uint64_t)sim_lua_opt_int(L, 1, "snapshot_threshold",
                                                         (lua_Integer)o.snapshot_threshold);
        o.snapshot_trailing =
            (uint64_t)sim_lua_opt_int(L, 1, "snapshot_trailing", (lua_Integer)o.snapshot_trailing);
        o.append_entries_max =
            (uint32_t)sim_lua_opt_int(L, 1, "append_entries_max", o.append_entries_max);
        o.inflight_msgs_max =
            (uint32_t)sim_lua_opt_int(L, 1, "inflight_msgs_max", o.inflight_msgs_max);
        o.log_entries_max =
            (uint64_t)sim_lua_opt_int(L, 1, "log_entries_max", (lua_Integer)o.log_entries_max);
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
    struct cluster *c = sim_lua_check_cluster(L);
    sim_lua_raise_failure(L, c);
    bool stepped = sim_step(c->s);
    sim_lua_raise_failure(L, c);
    lua_pushboolean(L, stepped);
    return 1;
}

static int l_run(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    uint64_t us = sim_lua_ms_to_us(L, 2, luaL_checknumber(L, 2));
    sim_lua_raise_failure(L, c);
    sim_run_for(c->s, us);
    sim_lua_raise_failure(L, c);
    return 0;
}

/* c:run_until(fn, max_ms) -> bool: steps until fn() returns true (checked before the first
 * step and after every step); false when max_ms of virtual time pass or nothing is left. */
static int l_run_until(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    uint64_t deadline = sim_now_us(c->s) + sim_lua_ms_to_us(L, 3, luaL_checknumber(L, 3));
    sim_lua_raise_failure(L, c);
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
        sim_lua_raise_failure(L, c);
    }
    if (sim_now_us(c->s) < deadline) {
        sim_run_for(c->s, deadline - sim_now_us(c->s));
        sim_lua_raise_failure(L, c);
    }
    lua_pushboolean(L, 0);
    return 1;
}

static int l_now(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    lua_pushnumber(L, (lua_Number)sim_now_us(c->s) / 1000.0);
    return 1;
}

/* --- Registration ------------------------------------------------------------------ */

static const luaL_Reg time_methods[] = {
    {"step", l_step}, {"run", l_run}, {"run_until", l_run_until}, {"now", l_now}, {NULL, NULL},
};

static const luaL_Reg close_methods[] = {
    {"close", l_gc},
    {NULL, NULL},
};

/* The cluster's methods, in the order of the module comment. */
static const luaL_Reg *const method_lists[] = {
    time_methods,
    sim_lua_inspect_methods,
    sim_lua_client_methods,
    sim_lua_fault_methods,
    sim_lua_report_methods,
    close_methods,
    NULL,
};

static const luaL_Reg cluster_meta[] = {
    {"__gc", l_gc},    {"__close", l_gc}, {"__tostring", l_tostring},
    {"__index", NULL}, /* placeholder, set below */
    {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"cluster", l_cluster},
    {NULL, NULL},
};

/* The entries of a luaL_Reg list: tables are sized for them, as luaL_newlib() does. */
static int count_funcs(const luaL_Reg *l)
{
    int n = 0;
    while (l[n].name != NULL) {
        n++;
    }
    return n;
}

int luaopen_luaraft_sim(lua_State *L);

int luaopen_luaraft_sim(lua_State *L)
{
    luaL_newmetatable(L, CLUSTER_MT);  /* mt */
    luaL_setfuncs(L, cluster_meta, 0); /* mt */
    int n = 0;
    for (const luaL_Reg *const *l = method_lists; *l != NULL; l++) {
        n += count_funcs(*l);
    }
    lua_createtable(L, 0, n); /* mt, methods */
    for (const luaL_Reg *const *l = method_lists; *l != NULL; l++) {
        luaL_setfuncs(L, *l, 0); /* mt, methods */
    }
    lua_setfield(L, -2, "__index"); /* mt */
    lua_pop(L, 1);                  /* */
    luaL_checkversion(L);
    lua_createtable(L, 0, count_funcs(module_funcs) + count_funcs(sim_lua_random_funcs));
    luaL_setfuncs(L, module_funcs, 0);         /* module */
    luaL_setfuncs(L, sim_lua_random_funcs, 0); /* module */
    return 1;
}
