/*
 * luaraft.sim: what a spec reads after the fact: the trace, the checker's failure, the
 * statistics.
 */
#include "testing/sim_lua_internal.h"

enum {
    trace_text_bytes_max = 256 * 1024, /* c:trace() output */
};

static int l_trace(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    lua_Integer lines = luaL_optinteger(L, 2, sim_failure_trace_lines);
    luaL_argcheck(L, lines >= 0 && lines <= sim_trace_lines_max, 2, "too many lines");
    char *buf = lua_newuserdatauv(L, trace_text_bytes_max, 0); /* buf */
    size_t n = sim_trace(c->s, (unsigned)lines, buf, trace_text_bytes_max);
    lua_pushlstring(L, buf, n); /* buf, text */
    return 1;
}

static int l_failure(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    const char *f = sim_failure(c->s);
    if (f == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, f);
    }
    return 1;
}

void sim_lua_push_stats(lua_State *L, const struct sim_stats *st)
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
    STAT(changes);
    STAT(persisted_after_truncation);
#undef STAT
}

static int l_stats(lua_State *L)
{
    struct cluster *c = sim_lua_check_cluster(L);
    sim_lua_push_stats(L, sim_stats(c->s));
    return 1;
}

const luaL_Reg sim_lua_report_methods[] = {
    {"trace", l_trace},
    {"failure", l_failure},
    {"stats", l_stats},
    {NULL, NULL},
};
