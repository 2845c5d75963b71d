/*
 * Metatables that cannot gain __gc or __mode after setmetatable (issue 10). The collector
 * reads a metatable's __mode at every cycle, so `mt.__mode = "k"` after `setmetatable(t,
 * mt)` made t weak, losing entries at collections that come at different moments on
 * different replicas. setmetatable (sandbox.c) refuses the keys at the call; here the
 * later routes are closed. An assignment of a key a table lacks goes to its metatable's
 * __newindex (Lua 5.4 manual, §2.4), so setmetatable gives every metatable the guard as
 * its own metatable, whose __newindex refuses the two keys and stores any other raw; the
 * rawset wrapper refuses them on a guarded table. The guard is invisible: getmetatable of
 * a guarded table is nil, as before. A metatable therefore cannot have a metatable of its
 * own (it would replace the guard): setmetatable refuses both orders, with a message that
 * says so. Inheritance still works through __index tables, which may have metatables.
 */
#include <lauxlib.h>
#include <string.h>

#include "fsm/fsm_internal.h"

static const char guard_key = 'g'; /* its address: the registry key of the guard */

static const char refused_text[] =
    "%s is not allowed (the collector runs at moments that differ between replicas)";
static const char nested_text[] =
    "setmetatable: a metatable cannot have a metatable of its own (it could then gain "
    "__mode or __gc unseen); inherit through an __index table instead";

static bool refused_key(lua_State *L, int key)
{
    if (lua_type(L, key) != LUA_TSTRING) {
        return false;
    }
    const char *s = lua_tostring(L, key);
    return strcmp(s, "__gc") == 0 || strcmp(s, "__mode") == 0;
}

/* Whether the table at idx has the guard as its metatable. */
static bool guarded(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx)) { /* ... mt */
        return false;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &guard_key); /* ... mt guard */
    bool is = lua_rawequal(L, -1, -2);
    lua_pop(L, 2); /* ... */
    return is;
}

/* The guard's __newindex(t, k, v). */
static int guard_newindex(lua_State *L)
{
    if (refused_key(L, 2)) {
        return luaL_error(L, refused_text, lua_tostring(L, 2));
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

void sandbox_meta_check_rawset(lua_State *L, int idx, int key)
{
    if (lua_type(L, idx) == LUA_TTABLE && refused_key(L, key) && guarded(L, idx)) {
        luaL_error(L, refused_text, lua_tostring(L, key));
    }
}

/* Upvalue 1: the sandbox's setmetatable (sandbox.c), which refuses __gc and __mode
 * present at the call. */
static int meta_setmetatable(lua_State *L)
{
    lua_settop(L, 2);                       /* t mt */
    if (fsm_from_state(L)->readonly) {      /* else the libraries' stand-ins (sandbox_frozen.c) */
        sandbox_readonly_check_write(L, 1); /* have protected metatables, refused below */
    }
    if (lua_type(L, 2) == LUA_TTABLE && sandbox_readonly_unwrap(L, 2)) {
        return luaL_error(L, "%s (a table of the state cannot be a metatable in M.query)",
                          sandbox_readonly_text);
    }
    if (lua_type(L, 1) == LUA_TTABLE && guarded(L, 1)) {
        return luaL_error(L, nested_text);
    }
    bool fresh = false;
    if (lua_type(L, 2) == LUA_TTABLE) {
        fresh = !lua_getmetatable(L, 2); /* t mt [mtmt] */
        if (!fresh) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &guard_key); /* t mt mtmt guard */
            bool ours = lua_rawequal(L, -1, -2);
            lua_pop(L, 2); /* t mt */
            if (!ours) {
                return luaL_error(L, nested_text);
            }
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* t mt setmetatable */
    lua_pushvalue(L, 1);                   /* t mt setmetatable t */
    lua_pushvalue(L, 2);                   /* t mt setmetatable t mt */
    lua_call(L, 2, 1);                     /* t mt t */
    if (fresh) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &guard_key); /* t mt t guard */
        lua_setmetatable(L, 2);                        /* t mt t */
    }
    return 1;
}

/* getmetatable(v): as the base library's, but the guard is not shown, and a table of the
 * state seen in M.query shows its metatable read-only. */
static int meta_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    bool proxy = lua_type(L, 1) == LUA_TTABLE && sandbox_readonly_unwrap(L, 1);
    if (!lua_getmetatable(L, 1)) { /* v [mt] */
        lua_pushnil(L);
        return 1;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &guard_key); /* v mt guard */
    if (lua_rawequal(L, -1, -2)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pop(L, 1);                                            /* v mt */
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) { /* v mt field */
        lua_remove(L, -2);                                    /* v field */
    }
    if (proxy) {
        sandbox_readonly_wrap(L, -1);
    }
    return 1;
}

/* Upvalue 1: the sandbox's rawset (sandbox.c, which keeps the globals locked). */
static int meta_rawset(lua_State *L)
{
    sandbox_readonly_check_write(L, 1);
    sandbox_meta_check_rawset(L, 1, 2);
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* ... rawset */
    lua_insert(L, 1);                      /* rawset ... */
    lua_call(L, n, 1);                     /* t */
    return 1;
}

void sandbox_meta_open(lua_State *L)
{
    lua_createtable(L, 0, 1);                      /* guard */
    lua_pushcfunction(L, guard_newindex);          /* guard fn */
    lua_setfield(L, -2, "__newindex");             /* guard */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &guard_key); /* */

    lua_pushglobaltable(L);                    /* G */
    lua_getfield(L, -1, "setmetatable");       /* G setmetatable */
    lua_pushcclosure(L, meta_setmetatable, 1); /* G wrapper */
    lua_setfield(L, -2, "setmetatable");       /* G */
    lua_getfield(L, -1, "rawset");             /* G rawset */
    lua_pushcclosure(L, meta_rawset, 1);       /* G wrapper */
    lua_setfield(L, -2, "rawset");             /* G */
    lua_pushcfunction(L, meta_getmetatable);   /* G fn */
    lua_setfield(L, -2, "getmetatable");       /* G */
    lua_pop(L, 1);                             /* */
}
