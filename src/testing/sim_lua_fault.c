/*
 * luaraft.sim: faults: partitions and one-way links, loss, duplication and delays;
 * crashes, wipes, restarts, pauses and skewed clocks; slow and held disks.
 */
#include <math.h>

#include "testing/sim_lua_internal.h"

/* c:partition({1, 2}, {3}): nodes in one table talk to each other only; nodes named in no
 * table are isolated. */
static int l_partition(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
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
    struct cluster *c = sim_lua_check_cluster(L);
    sim_link(c->s, sim_lua_check_node(L, c, 2), sim_lua_check_node(L, c, 3), false);
    return 0;
}

static int l_connect(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    sim_link(c->s, sim_lua_check_node(L, c, 2), sim_lua_check_node(L, c, 3), true);
    return 0;
}

static int l_isolate(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    sim_isolate(c->s, sim_lua_check_node(L, c, 2));
    return 0;
}

static int l_heal(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    sim_heal_links(c->s);
    return 0;
}

static int l_heal_all(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    sim_lua_raise_failure(L, c);
    sim_heal_all(c->s);
    sim_lua_raise_failure(L, c);
    return 0;
}

/* crash/restart/pause/resume: true | nil, err (e.g. crashing a node that is down). */
static int l_crash(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    return sim_lua_push_result(L, c, sim_crash(c->s, sim_lua_check_node(L, c, 2)));
}

static int l_wipe(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    return sim_lua_push_result(L, c, sim_wipe(c->s, sim_lua_check_node(L, c, 2)));
}

static int l_lose_log(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    return sim_lua_push_result(L, c, sim_lose_log(c->s, sim_lua_check_node(L, c, 2)));
}

static int l_restart(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    return sim_lua_push_result(L, c, sim_restart(c->s, sim_lua_check_node(L, c, 2)));
}

static int l_pause(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    return sim_lua_push_result(L, c, sim_pause(c->s, sim_lua_check_node(L, c, 2)));
}

static int l_resume(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    return sim_lua_push_result(L, c, sim_resume(c->s, sim_lua_check_node(L, c, 2)));
}

static int l_clock_rate(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
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
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
    uint64_t lo = sim_lua_ms_to_us(L, 3, luaL_checknumber(L, 3));
    uint64_t hi = sim_lua_ms_to_us(L, 4, luaL_checknumber(L, 4));
    luaL_argcheck(L, lo <= hi, 4, "min_ms > max_ms");
    return sim_lua_push_result(L, c, sim_disk_delay(c->s, id, lo, hi));
}

/* c:hold_disk(id): no persist request of the node completes until c:release_disk(). */
static int l_hold_disk(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    return sim_lua_push_result(L, c, sim_disk_hold(c->s, sim_lua_check_node(L, c, 2), true));
}

/* c:release_disk(id [, n]) -> released: with n, the n oldest held completions happen (at
 * the next steps) and the disk stays held; without, the hold ends and all of them do. */
static int l_release_disk(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    raft_id id = sim_lua_check_node(L, c, 2);
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
        return sim_lua_push_error(L, c, rv);
    }
    lua_pushinteger(L, (lua_Integer)released);
    return 1;
}

/* c:disk_pending(id) -> writes in flight, completions due but held. */
static int l_disk_pending(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    uint32_t writes, held;
    sim_disk_pending(c->s, sim_lua_check_node(L, c, 2), &writes, &held);
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
    struct cluster *c = sim_lua_check_cluster(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    double loss = opt_field(L, 2, "loss", 0);
    double dup = opt_field(L, 2, "dup", 0);
    luaL_argcheck(L, loss >= 0 && loss <= 1 && dup >= 0 && dup <= 1, 2,
                  "loss and dup are probabilities");
    const struct sim_options *o = sim_options_of(c->s);
    uint64_t lo =
        sim_lua_ms_to_us(L, 2, opt_field(L, 2, "delay_min_ms", (double)o->net_delay_min_us / 1e3));
    uint64_t hi =
        sim_lua_ms_to_us(L, 2, opt_field(L, 2, "delay_max_ms", (double)o->net_delay_max_us / 1e3));
    luaL_argcheck(L, lo <= hi, 2, "delay_min_ms > delay_max_ms");
    sim_net_faults(c->s, (uint32_t)llround(loss * 1e6), (uint32_t)llround(dup * 1e6), lo, hi);
    return 0;
}

const luaL_Reg sim_lua_fault_methods[] = {
    {"partition", l_partition},
    {"cut", l_cut},
    {"connect", l_connect},
    {"isolate", l_isolate},
    {"heal", l_heal},
    {"heal_all", l_heal_all},
    {"crash", l_crash},
    {"wipe", l_wipe},
    {"lose_log", l_lose_log},
    {"restart", l_restart},
    {"pause", l_pause},
    {"resume", l_resume},
    {"clock_rate", l_clock_rate},
    {"faults", l_faults},
    {"disk_delay", l_disk_delay},
    {"hold_disk", l_hold_disk},
    {"release_disk", l_release_disk},
    {"disk_pending", l_disk_pending},
    {NULL, NULL},
};
