/*
 * luaraft.lincheck: the linearizability checker (src/sim/lincheck.h) as a Lua module, for
 * specs and for tests whose histories are recorded by Lua clients of a real cluster.
 *
 *   local lincheck = require("luaraft.lincheck")
 *   local h = lincheck.new()
 *   local id = h:invoke(client, call_time, "SET", "k", "v")
 *   h:complete(id, return_time, { ok = "OK" })
 *   local verdict, report = h:check()   -- "ok" | "violation" | "undecided", text
 *
 * Module:  lincheck.new() -> history; lincheck.budget_default (search steps per key);
 *          lincheck.now() -> CLOCK_MONOTONIC in ns, the clock a real client's history
 *          is timed by (luasocket's gettime is the wall clock, which can jump)
 * History: h:invoke(client, time, op, key [, arg [, arg2]]) -> id   op: GET SET DEL INCR CAS
 *          (any case); SET takes the value, CAS the expected and the new value
 *          h:complete(id, time, output)   output, as luaraft.fsm.decode gives replies:
 *            nil, false or a table with neither ok nor err (fsm.null): a nil reply;
 *            a string: a bulk string; an integer; {ok = ...} or true: OK;
 *            {err = ...}: an error that proves the command had no effect
 *          h:unknown(id)   the outcome will never be known; the client is retired
 *          h:failed(id, time)  an error proved it had no effect: left out of the check
 *          h:check([budget [, report_bytes]]) -> verdict, report
 *          h:size() -> operations recorded; h:close() (also __close and __gc)
 *
 * Clients and times are non-negative integers; times in any unit (virtual ms, ns). Misuse
 * (a bad op name, a client with an operation in flight, time going backwards, a closed
 * history) raises a Lua error naming the lincheck error code.
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>
#include <time.h>

#include "sim/lincheck.h"

#define HISTORY_MT "luaraft.lincheck.history"

enum {
    report_bytes_default = 64 * 1024, /* h:check()'s report, unless told */
    report_bytes_max = 64 * 1024 * 1024,
};

struct history
{
    struct lincheck *h; /* NULL once closed */
};

static struct lincheck *check_history(lua_State *L)
{
    struct history *u = luaL_checkudata(L, 1, HISTORY_MT);
    if (u->h == NULL) luaL_error(L, "luaraft.lincheck: history is closed");
    return u->h;
}

static uint64_t check_u64(lua_State *L, int arg, const char *what)
{
    lua_Integer v = luaL_checkinteger(L, arg);
    luaL_argcheck(L, v >= 0, arg, what);
    return (uint64_t)v;
}

static int fail(lua_State *L, int rv, const char *what)
{
    return luaL_error(L, "luaraft.lincheck: %s: %s", what, lincheck_strerror(rv));
}

static struct lincheck_bytes check_bytes(lua_State *L, int arg)
{
    struct lincheck_bytes b;
    b.data = luaL_checklstring(L, arg, &b.len);
    return b;
}

static enum lincheck_op check_op(lua_State *L, int arg)
{
    static const char *const names[] = {"GET", "SET", "DEL", "INCR", "CAS", NULL};
    char upper[8] = {0};
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    for (size_t i = 0; i < len && i + 1 < sizeof upper; i++) {
        upper[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
    }
    for (int i = 0; names[i] != NULL; i++) {
        if (len < sizeof upper && strcmp(upper, names[i]) == 0) return (enum lincheck_op)i;
    }
    return (enum lincheck_op)luaL_argerror(L, arg, "op must be GET, SET, DEL, INCR or CAS");
}

/* h:invoke(client, time, op, key [, arg [, arg2]]) -> id */
static int l_invoke(lua_State *L)
{
    struct lincheck *h = check_history(L);
    uint64_t client = check_u64(L, 2, "client must not be negative");
    uint64_t time = check_u64(L, 3, "time must not be negative");
    struct lincheck_call call = {.op = check_op(L, 4), .key = check_bytes(L, 5)};
    if (call.op == LINCHECK_SET || call.op == LINCHECK_CAS) call.arg = check_bytes(L, 6);
    if (call.op == LINCHECK_CAS) call.arg2 = check_bytes(L, 7);
    int64_t id = lincheck_invoke(h, client, time, &call);
    if (id < 0) return fail(L, (int)id, "invoke");
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* The reply at arg as an output; see the header for the mapping. */
static struct lincheck_output check_output(lua_State *L, int arg)
{
    struct lincheck_output out = {.kind = LINCHECK_REPLY_NIL};
    int isint;
    switch (lua_type(L, arg)) {
        case LUA_TNIL:
            break;
        case LUA_TBOOLEAN:
            if (lua_toboolean(L, arg)) out.kind = LINCHECK_REPLY_OK;
            break;
        case LUA_TSTRING:
            out.kind = LINCHECK_REPLY_BULK;
            out.value.data = lua_tolstring(L, arg, &out.value.len);
            break;
        case LUA_TNUMBER:
            out.kind = LINCHECK_REPLY_INT;
            out.n = (int64_t)lua_tointegerx(L, arg, &isint);
            luaL_argcheck(L, isint, arg, "an integer reply must be an integer");
            break;
        case LUA_TTABLE:
            if (lua_getfield(L, arg, "err") != LUA_TNIL) {
                out.kind = LINCHECK_REPLY_ERR;
            } else if (lua_getfield(L, arg, "ok") != LUA_TNIL) {
                out.kind = LINCHECK_REPLY_OK;
            }
            break;
        default:
            luaL_argerror(L, arg, "output must be nil, a string, an integer or a table");
    }
    return out;
}

/* h:complete(id, time, output) */
static int l_complete(lua_State *L)
{
    struct lincheck *h = check_history(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    uint64_t time = check_u64(L, 3, "time must not be negative");
    luaL_checkany(L, 4); /* an explicit output, even nil */
    struct lincheck_output out = check_output(L, 4);
    int rv = lincheck_complete(h, (int64_t)id, time, &out);
    if (rv != 0) return fail(L, rv, "complete");
    return 0;
}

/* h:unknown(id) */
static int l_unknown(lua_State *L)
{
    struct lincheck *h = check_history(L);
    int rv = lincheck_unknown(h, (int64_t)luaL_checkinteger(L, 2));
    if (rv != 0) return fail(L, rv, "unknown");
    return 0;
}

/* h:failed(id, time): an error proved the operation had no effect */
static int l_failed(lua_State *L)
{
    struct lincheck *h = check_history(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    lua_Integer time = luaL_checkinteger(L, 3);
    luaL_argcheck(L, time >= 0, 3, "time must not be negative");
    int rv = lincheck_failed(h, (int64_t)id, (uint64_t)time);
    if (rv != 0) return fail(L, rv, "failed");
    return 0;
}

/* h:check([budget [, report_bytes]]) -> "ok" | "violation" | "undecided", report */
static int l_check(lua_State *L)
{
    struct lincheck *h = check_history(L);
    lua_Integer budget = luaL_optinteger(L, 2, lincheck_budget_default);
    lua_Integer bytes = luaL_optinteger(L, 3, report_bytes_default);
    luaL_argcheck(L, budget > 0, 2, "budget must be positive");
    luaL_argcheck(L, bytes > 0 && bytes <= report_bytes_max, 3, "report size out of range");
    char *report = lua_newuserdatauv(L, (size_t)bytes, 0); /* report (freed by the GC) */
    int rv = lincheck_check(h, (uint64_t)budget, report, (size_t)bytes);
    if (rv < 0) return fail(L, rv, "check");
    lua_pushstring(L, lincheck_strerror(rv)); /* report verdict */
    lua_pushstring(L, report);                /* report verdict text */
    return 2;
}

static int l_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lincheck_size(check_history(L)));
    return 1;
}

static int l_close(lua_State *L)
{
    struct history *u = luaL_checkudata(L, 1, HISTORY_MT);
    lincheck_free(u->h);
    u->h = NULL;
    return 0;
}

static int l_now(lua_State *L)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return luaL_error(L, "clock_gettime failed");
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000000000 + ts.tv_nsec);
    return 1;
}

static int l_new(lua_State *L)
{
    struct history *u = lua_newuserdatauv(L, sizeof *u, 0); /* u */
    u->h = NULL;
    luaL_setmetatable(L, HISTORY_MT);
    u->h = lincheck_new();
    if (u->h == NULL) return fail(L, LINCHECK_ENOMEM, "new");
    return 1;
}

static const luaL_Reg history_methods[] = {
    {"invoke", l_invoke}, {"complete", l_complete}, {"unknown", l_unknown}, {"failed", l_failed},
    {"check", l_check},   {"size", l_size},         {"close", l_close},     {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"new", l_new},
    {"now", l_now},
    {NULL, NULL},
};

int luaopen_luaraft_lincheck(lua_State *L);

int luaopen_luaraft_lincheck(lua_State *L)
{
    luaL_newmetatable(L, HISTORY_MT); /* mt */
    luaL_newlib(L, history_methods);  /* mt methods */
    lua_setfield(L, -2, "__index");   /* mt */
    lua_pushcfunction(L, l_close);    /* mt close */
    lua_setfield(L, -2, "__gc");      /* mt */
    lua_pushcfunction(L, l_close);    /* mt close */
    lua_setfield(L, -2, "__close");   /* mt */
    lua_pop(L, 1);                    /* */
    luaL_newlib(L, module_funcs);     /* module */
    lua_pushinteger(L, lincheck_budget_default);
    lua_setfield(L, -2, "budget_default");
    return 1;
}
