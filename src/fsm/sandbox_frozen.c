/*
 * The libraries and the globals, read-only once the script has loaded (issue 10; Redis's
 * CVE-2022-24735 and CVE-2025-46818 class: a script that replaced a shared library
 * function ran its code in every later script). Here every command shares one Lua state,
 * and a change to a library table would outlive the command without being in the state:
 * `string.upper = f` in one command changes what every later command gets, and a replica
 * that restores a snapshot has the stock function, so the replicas answer differently.
 *
 * So after load each library table (string, table, math, utf8, os, luaraft) is replaced
 * in the globals by an empty stand-in whose __index is the library and whose __newindex
 * refuses; and the globals' entries move into a table behind the globals' own __index,
 * leaving the globals table raw-empty, so that assigning any global, existing or not,
 * reaches __newindex and is refused (Lua 5.4 manual §2.4: __newindex runs only for an
 * absent key). Both kinds of stand-in carry their table the way a query's read-only
 * proxies do (sandbox_readonly_mark), so pairs, next, rawget, rawlen and luaraft.keys see
 * through them, and rawset and setmetatable refuse them. The string metatable keeps the
 * real string table as its __index: scripts cannot reach that metatable (sandbox.c).
 */
#include <lauxlib.h>
#include <lualib.h>

#include "fsm/fsm_internal.h"

const char sandbox_frozen_text[] = "the libraries and globals are read-only after load";

/* In a query, the query's own error (a query changes nothing), else the libraries'. */
static int frozen_newindex(lua_State *L)
{
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    if (fsm_from_state(L)->readonly) {
        return luaL_error(L, "%s (an assignment to '%s' in a library)", sandbox_readonly_text,
                          name);
    }
    return luaL_error(L, "%s (an assignment to '%s')", sandbox_frozen_text, name);
}

/* pairs over a stand-in: the table's entries (sandbox_pairs, in key order). */
static int frozen_pairs(lua_State *L)
{
    lua_settop(L, 1);
    sandbox_readonly_unwrap(L, 1); /* t */
    return sandbox_pairs(L);
}

/* The stand-in of the table at t: {} with __index = t, refusing writes. [-0, +1, m] */
static void push_frozen(lua_State *L, int t)
{
    t = lua_absindex(L, t);
    lua_createtable(L, 0, 1);              /* p */
    lua_createtable(L, 0, 4);              /* p mt */
    lua_pushvalue(L, t);                   /* p mt t */
    lua_setfield(L, -2, "__index");        /* p mt */
    lua_pushcfunction(L, frozen_pairs);    /* p mt fn */
    lua_setfield(L, -2, "__pairs");        /* p mt */
    lua_pushcfunction(L, frozen_newindex); /* p mt fn */
    lua_setfield(L, -2, "__newindex");     /* p mt */
    lua_pushboolean(L, 0);                 /* p mt false */
    lua_setfield(L, -2, "__metatable");    /* p mt */
    lua_setmetatable(L, -2);               /* p */
    sandbox_readonly_mark(L, -1, t);       /* p, seen through by the raw readers */
}

void sandbox_freeze(lua_State *L, lua_CFunction global_newindex)
{
    static const char *const libs[] = {LUA_STRLIBNAME,  LUA_TABLIBNAME, LUA_MATHLIBNAME,
                                       LUA_UTF8LIBNAME, "os",           "luaraft"};
    lua_pushglobaltable(L); /* G */
    int g = lua_gettop(L);
    lua_createtable(L, 0, 64); /* G H: the globals' entries */
    int h = g + 1;
    lua_pushnil(L);               /* G H nil */
    while (lua_next(L, g) != 0) { /* G H k v */
        lua_pushvalue(L, -2);     /* G H k v k */
        lua_insert(L, -2);        /* G H k k v */
        lua_rawset(L, h);         /* G H k */
    }
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        if (lua_getfield(L, h, libs[i]) == LUA_TTABLE) { /* G H lib */
            push_frozen(L, -1);                          /* G H lib p */
            lua_setfield(L, h, libs[i]);                 /* G H lib */
        }
        lua_pop(L, 1); /* G H */
    }
    lua_pushvalue(L, g);           /* G H G: _G itself reads as the globals */
    lua_setfield(L, h, LUA_GNAME); /* G H */
    /* empty the globals: no key is set during the walk, so clearing each is allowed */
    lua_pushnil(L);               /* G H nil */
    while (lua_next(L, h) != 0) { /* G H k v */
        lua_pop(L, 1);            /* G H k */
        lua_pushvalue(L, -1);     /* G H k k */
        lua_pushnil(L);           /* G H k k nil */
        lua_rawset(L, g);         /* G H k */
    }
    lua_createtable(L, 0, 4);              /* G H mt */
    lua_pushvalue(L, h);                   /* G H mt H */
    lua_setfield(L, -2, "__index");        /* G H mt */
    lua_pushcfunction(L, frozen_pairs);    /* G H mt fn */
    lua_setfield(L, -2, "__pairs");        /* G H mt */
    lua_pushcfunction(L, global_newindex); /* G H mt fn */
    lua_setfield(L, -2, "__newindex");     /* G H mt */
    lua_pushboolean(L, 0);                 /* G H mt false */
    lua_setfield(L, -2, "__metatable");    /* G H mt */
    lua_setmetatable(L, g);                /* G H */
    sandbox_readonly_mark(L, g, h);        /* G H */
    lua_pop(L, 2);                         /* */
}
