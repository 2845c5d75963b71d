/*
 * luaraft.sim: random runs (src/sim/sim_random.c), one seed or a range of them, the loop
 * in C.
 */
#include <stdio.h>
#include <string.h>

#include "testing/sim_lua_internal.h"
#include "util/assert.h"

enum {
    random_msg_bytes_max = 32768, /* a random run's failure message */
};

/* sim.random_run{seed=, steps=} -> true, stats | false, message, stats */
static int l_random_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer seed = sim_lua_opt_int(L, 1, "seed", 1);
    lua_Integer steps = sim_lua_opt_int(L, 1, "steps", 2000);
    char *msg = lua_newuserdatauv(L, random_msg_bytes_max, 0); /* msg */
    struct sim_stats st;
    int rv = sim_random_run((uint64_t)seed, (uint64_t)steps, msg, random_msg_bytes_max, &st);
    if (rv == 0) {
        lua_pushboolean(L, 1);      /* msg, true */
        sim_lua_push_stats(L, &st); /* msg, true, stats */
        return 2;
    }
    lua_pushboolean(L, 0);      /* msg, false */
    lua_pushstring(L, msg);     /* msg, false, message */
    sim_lua_push_stats(L, &st); /* msg, false, message, stats */
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
    sum->changes += st->changes;
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
    lua_Integer first = sim_lua_opt_int(L, 1, "first", 1);
    lua_Integer count = sim_lua_opt_int(L, 1, "count", 2000);
    lua_Integer steps = sim_lua_opt_int(L, 1, "steps", 2000);
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
    sim_lua_push_stats(L, &sum);                /* msg, fmsg, t, stats */
    lua_setfield(L, -2, "stats");               /* msg, fmsg, t */
    return 1;
}

const luaL_Reg sim_lua_random_funcs[] = {
    {"random_run", l_random_run},
    {"random_runs", l_random_runs},
    {NULL, NULL},
};
