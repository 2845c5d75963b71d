/*
 * The determinism sandbox: our library list (cf. linit.c) and replacements for the
 * functions whose results depend on the process (tostring, string.format's %p,
 * collectgarbage, os.time, math.randomseed, table.sort; pairs and next are
 * sandbox_order.c's), and the charged wrappers of the C string functions (the pattern
 * functions are sandbox_pattern.c's). The memory cap and the instruction budget are
 * sandbox_limits.c's. fsm.h lists the rules a script sees.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "fsm/encode.h"
#include "fsm/fsm_internal.h"

/* ------------------------------------------------------------------------------------
 * No addresses: tostring and string.format
 * ------------------------------------------------------------------------------------ */

static bool sandbox_type_has_address(int type)
{
    return type == LUA_TTABLE || type == LUA_TFUNCTION || type == LUA_TUSERDATA ||
           type == LUA_TTHREAD || type == LUA_TLIGHTUSERDATA;
}

/* Like luaL_tolstring, but a value without __tostring shows its __name or type, never
 * its address. [-0, +1, e] */
static const char *sandbox_tolstring(lua_State *L, int idx, size_t *len)
{
    idx = lua_absindex(L, idx);
    if (sandbox_type_has_address(lua_type(L, idx))) {
        if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) { /* mm */
            lua_pop(L, 1);                                         /* */
            return luaL_tolstring(L, idx, len);
        }
        int name = luaL_getmetafield(L, idx, "__name"); /* [name] */
        if (name == LUA_TSTRING) {
            return lua_tolstring(L, -1, len);
        }
        if (name != LUA_TNIL) {
            lua_pop(L, 1); /* */
        }
        lua_pushstring(L, luaL_typename(L, idx)); /* typename */
        return lua_tolstring(L, -1, len);
    }
    return luaL_tolstring(L, idx, len);
}

static int sandbox_tostring(lua_State *L)
{
    luaL_checkany(L, 1);
    sandbox_tolstring(L, 1, NULL); /* ... s */
    return 1;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Upvalue 1: the real string.format. */
static int sandbox_format(lua_State *L)
{
    size_t len;
    const char *fmt = luaL_checklstring(L, 1, &len);
    for (size_t i = 0; i < len; i++) {
        if (fmt[i] != '%') {
            continue;
        }
        i++;
        if (i < len && fmt[i] == '%') {
            continue;
        }
        while (i < len && (fmt[i] == '-' || fmt[i] == '+' || fmt[i] == ' ' || fmt[i] == '#' ||
                           fmt[i] == '0')) {
            i++;
        }
        while (i < len && is_digit(fmt[i])) {
            i++;
        }
        if (i < len && fmt[i] == '.') {
            i++;
            while (i < len && is_digit(fmt[i])) {
                i++;
            }
        }
        if (i < len && fmt[i] == 'p') {
            return luaL_error(L,
                              "string.format: %%p is not allowed (addresses differ "
                              "between replicas)");
        }
    }
    int n = lua_gettop(L);
    for (int i = 2; i <= n; i++) {
        if (sandbox_type_has_address(lua_type(L, i))) {
            sandbox_tolstring(L, i, NULL); /* fmt ... s */
            lua_replace(L, i);             /* fmt ... */
        }
    }
    sandbox_charge_format(L, fmt, len);
    /* called in this frame, so that its errors name the function as the script did */
    lua_tocfunction(L, lua_upvalueindex(1))(L); /* fmt ... s */
    sandbox_charge_string(L, -1);
    return 1;
}

/* ------------------------------------------------------------------------------------
 * Other replacements
 * ------------------------------------------------------------------------------------ */

/* collectgarbage("collect") does nothing: a full collection's work grows with the heap,
 * which differs between replicas, so it could not be charged the same everywhere, and in
 * the sandbox nothing shows when the collector runs (no __gc, no __mode, no "count"). A
 * heap near its limit is collected by Lua's emergency collection anyway. */
static int sandbox_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "collect") != 0) {
        return luaL_error(L,
                          "collectgarbage(\"%s\") is not allowed (its result depends on "
                          "the heap's history)",
                          opt);
    }
    lua_pushinteger(L, 0);
    return 1;
}

/* Upvalue 1: the real setmetatable. */
static int sandbox_setmetatable(lua_State *L)
{
    static const char *const refused[] = {"__gc", "__mode"};
    lua_settop(L, 2); /* t mt */
    if (lua_type(L, 2) == LUA_TTABLE) {
        for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
            lua_pushstring(L, refused[i]);           /* t mt key */
            bool set = lua_rawget(L, 2) != LUA_TNIL; /* t mt value */
            lua_pop(L, 1);                           /* t mt */
            if (set) {
                return luaL_error(L,
                                  "setmetatable: %s is not allowed (the collector runs "
                                  "at moments that differ between replicas)",
                                  refused[i]);
            }
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* t mt setmetatable */
    lua_insert(L, 1);                      /* setmetatable t mt */
    lua_call(L, 2, 1);                     /* t */
    return 1;
}

/* Upvalue 1: the real rawset. Refuses the globals table once it is locked. */
static int sandbox_rawset(lua_State *L)
{
    lua_pushglobaltable(L); /* ... G */
    bool globals = lua_rawequal(L, 1, -1);
    lua_pop(L, 1); /* ... */
    if (globals && fsm_from_state(L)->globals_locked) {
        return luaL_error(L, "rawset: the globals table is locked");
    }
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* ... rawset */
    lua_insert(L, 1);                      /* rawset ... */
    lua_call(L, n, 1);                     /* t */
    return 1;
}

/* Upvalue 1: the real load. Text chunks only: binary chunks can escape any sandbox. */
static int sandbox_load(lua_State *L)
{
    if (lua_gettop(L) < 3) {
        lua_settop(L, 3); /* chunk name nil */
    }
    lua_pushliteral(L, "t"); /* chunk name mode [env] "t" */
    lua_replace(L, 3);       /* chunk name "t" [env] */
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* chunk name "t" [env] load */
    lua_insert(L, 1);                      /* load chunk name "t" [env] */
    lua_call(L, n, LUA_MULTRET);           /* results */
    return lua_gettop(L);
}

/* Upvalue 1: the real math.randomseed. */
static int sandbox_randomseed(lua_State *L)
{
    if (lua_isnone(L, 1)) {
        return luaL_error(L, "math.randomseed() without a seed is not deterministic");
    }
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* ... randomseed */
    lua_insert(L, 1);                      /* randomseed ... */
    lua_call(L, n, LUA_MULTRET);           /* results */
    return lua_gettop(L);
}

/* Upvalue 1: the real string.rep, which does all its work in one instruction. */
static int sandbox_rep(lua_State *L)
{
    size_t len = 0;
    size_t sep = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &sep);
    if (n > 0) {
        /* One instruction per 64 bytes produced; saturates rather than overflows. */
        uint64_t bytes = (uint64_t)(len + sep) * (uint64_t)n;
        if (len + sep != 0 && bytes / (len + sep) != (uint64_t)n) {
            bytes = UINT64_MAX;
        }
        sandbox_charge_memory(L, bytes);
        sandbox_charge(L, bytes / 64);
    }
    int top = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* ... rep */
    lua_insert(L, 1);                      /* rep ... */
    lua_call(L, top, 1);                   /* s */
    return 1;
}

/*
 * Upvalue 1: a C library function that scans or builds strings in one instruction, in
 * time linear in their sizes (string.upper, lower, reverse, table.concat). Charges the
 * size of its first argument before and of its first result after, so a loop over big
 * strings runs out of budget as it would if the work were Lua code. The pattern functions,
 * whose work is not linear, are sandbox_pattern.c's, charged by the matcher's steps.
 */
static int sandbox_charged(lua_State *L)
{
    sandbox_charge_string(L, 1);
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* ... fn */
    lua_insert(L, 1);                      /* fn ... */
    lua_call(L, n, LUA_MULTRET);           /* results */
    if (lua_gettop(L) > 0) {
        sandbox_charge_string(L, 1);
    }
    return lua_gettop(L);
}

int64_t sandbox_seconds(int64_t ms)
{
    return ms >= 0 ? ms / 1000 : -((-(ms + 1)) / 1000) - 1;
}

static int sandbox_os_time(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) {
        return luaL_error(L, "os.time(t) is not available: use ctx.time_ms");
    }
    lua_pushinteger(L, (lua_Integer)sandbox_seconds(fsm_from_state(L)->time_ms));
    return 1;
}

static int sandbox_os_clock(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)fsm_from_state(L)->time_ms / 1000.0);
    return 1;
}

/* The globals' __newindex once locked: every assignment gets here (sandbox_frozen.c
 * keeps the globals table itself empty), to an existing global or a new one. */
static int sandbox_global_newindex(lua_State *L)
{
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    if (luaL_getmetafield(L, 1, "__index") == LUA_TTABLE) { /* ... H */
        lua_pushvalue(L, 2);                                /* ... H k */
        if (lua_rawget(L, -2) != LUA_TNIL) {
            return luaL_error(L,
                              "%s (an assignment to global '%s': keep state in the module table)",
                              sandbox_frozen_text, name);
        }
    }
    return luaL_error(L,
                      "assignment to undeclared global '%s' (globals are locked after "
                      "load: keep state in the module table)",
                      name);
}

/* table.sort in Lua: a stable bottom-up merge sort. The C table.sort picks pivots at
 * random (ltablib.c l_randomizePivot), so equal elements and the number of comparator
 * calls would differ between replicas. Written in Lua, it is charged by the count hook.
 * Its length is sandbox_border's, like the other table functions'. */
static const char sandbox_sort_source[] =
    "local border = ...\n"
    "local min, type, error = math.min, type, error\n"
    "local function less(a, b) return a < b end\n"
    "return function(t, lt)\n"
    "  if lt == nil then lt = less\n"
    "  elseif type(lt) ~= 'function' then\n"
    "    error(\"bad argument #2 to 'sort' (function expected)\", 2)\n"
    "  end\n"
    "  local n = border(t)\n"
    "  if n < 2 then return end\n"
    "  local a, b = {}, {}\n"
    "  for i = 1, n do a[i] = t[i] end\n"
    "  local width = 1\n"
    "  while width < n do\n"
    "    local lo = 1\n"
    "    while lo <= n do\n"
    "      local mid, hi = min(lo + width, n + 1), min(lo + 2 * width, n + 1)\n"
    "      local l, r, k = lo, mid, lo\n"
    "      while l < mid and r < hi do\n"
    "        if lt(a[r], a[l]) then b[k] = a[r]; r = r + 1 else b[k] = a[l]; l = l + 1 end\n"
    "        k = k + 1\n"
    "      end\n"
    "      while l < mid do b[k] = a[l]; l = l + 1; k = k + 1 end\n"
    "      while r < hi do b[k] = a[r]; r = r + 1; k = k + 1 end\n"
    "      lo = lo + 2 * width\n"
    "    end\n"
    "    a, b = b, a\n"
    "    width = width * 2\n"
    "  end\n"
    "  for i = 1, n do t[i] = a[i] end\n"
    "end\n";

/* Replaces t[name] with a C closure whose upvalue is the old value. [-0, +0, e] */
/*
 * xpcall(f, msgh, ...), with msgh run after the unwinding rather than where the error was
 * raised. Lua runs a message handler at the error, and when the error is the instruction
 * budget's it is raised inside the count hook, where hooks are off: a handler that loops
 * there would run forever, uncounted, on every replica, and again after every restart.
 * Here f runs under pcall and msgh is called after as ordinary, counted code (a spent
 * budget raises again at its first instruction). The results are xpcall's: true and f's
 * results, or false and what msgh returns ("error in error handling" if msgh fails).
 */
static int sandbox_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checkany(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);                                 /* f msgh args... msgh */
    lua_insert(L, 1);                                    /* msgh f msgh args... */
    lua_remove(L, 3);                                    /* msgh f args... */
    if (lua_pcall(L, n - 2, LUA_MULTRET, 0) == LUA_OK) { /* msgh results... */
        lua_pushboolean(L, 1);                           /* msgh results... true */
        lua_replace(L, 1);                               /* true results... */
        return lua_gettop(L);
    }
    /* msgh err */
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* msg | err2 */
        lua_pop(L, 1);
        lua_pushliteral(L, "error in error handling"); /* msg */
    }
    lua_pushboolean(L, 0); /* msg false */
    lua_insert(L, -2);     /* false msg */
    return 2;
}

static void sandbox_wrap(lua_State *L, int t, const char *name, lua_CFunction fn)
{
    t = lua_absindex(L, t);
    lua_getfield(L, t, name);   /* old */
    lua_pushcclosure(L, fn, 1); /* wrapper */
    lua_setfield(L, t, name);   /* */
}

static void sandbox_set(lua_State *L, int t, const char *name, lua_CFunction fn)
{
    t = lua_absindex(L, t);
    if (fn != NULL) {
        lua_pushcfunction(L, fn); /* fn */
    } else {
        lua_pushnil(L); /* nil */
    }
    lua_setfield(L, t, name); /* */
}

void sandbox_open(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func != NULL; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1); /* lib */
        lua_pop(L, 1);                             /* */
    }
    struct fsm *f = fsm_from_state(L);

    lua_pushglobaltable(L); /* G */
    sandbox_set(L, -1, "dofile", NULL);
    sandbox_set(L, -1, "loadfile", NULL);
    sandbox_set(L, -1, "print", NULL);
    sandbox_set(L, -1, "warn", NULL);
    sandbox_set(L, -1, "pairs", sandbox_pairs);
    sandbox_set(L, -1, "next", sandbox_next);
    sandbox_set(L, -1, "tostring", sandbox_tostring);
    sandbox_set(L, -1, "collectgarbage", sandbox_collectgarbage);
    sandbox_set(L, -1, "xpcall", sandbox_xpcall);
    sandbox_wrap(L, -1, "setmetatable", sandbox_setmetatable);
    sandbox_wrap(L, -1, "rawset", sandbox_rawset);
    sandbox_wrap(L, -1, "load", sandbox_load);

    lua_getfield(L, -1, LUA_STRLIBNAME); /* G string */
    sandbox_set(L, -1, "dump", NULL);
    sandbox_wrap(L, -1, "format", sandbox_format);
    sandbox_wrap(L, -1, "rep", sandbox_rep);
    static const char *const charged[] = {"upper", "lower", "reverse"};
    for (size_t i = 0; i < sizeof charged / sizeof charged[0]; i++) {
        sandbox_wrap(L, -1, charged[i], sandbox_charged);
    }
    sandbox_pattern_open(L, -1); /* find, match, gmatch, gsub; ("x"):find too (__index) */
    lua_pop(L, 1);               /* G */

    lua_getfield(L, -1, LUA_MATHLIBNAME);               /* G math */
    lua_getfield(L, -1, "randomseed");                  /* G math randomseed */
    lua_pushvalue(L, -1);                               /* G math rs rs */
    f->randomseed_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* G math rs */
    lua_pushinteger(L, 0);                              /* G math rs 0 */
    lua_call(L, 1, 0);                                  /* G math */
    sandbox_wrap(L, -1, "randomseed", sandbox_randomseed);
    lua_pop(L, 1); /* G */

    lua_createtable(L, 0, 2); /* G os */
    sandbox_set(L, -1, "time", sandbox_os_time);
    sandbox_set(L, -1, "clock", sandbox_os_clock);
    lua_setfield(L, -2, "os"); /* G */

    encode_open(L); /* the luaraft table: encode, decode, keys, sorted_pairs */

    if (luaL_loadbufferx(L, sandbox_sort_source, sizeof sandbox_sort_source - 1, "=sandbox", "t") !=
        LUA_OK) { /* G chunk | G msg */
        lua_error(L);
    }
    lua_pushcfunction(L, sandbox_border_lua); /* G chunk border */
    lua_call(L, 1, 1);                        /* G sort */
    lua_getfield(L, -2, LUA_TABLIBNAME);      /* G sort table */
    lua_insert(L, -2);                        /* G table sort */
    lua_setfield(L, -2, "sort");              /* G table */
    sandbox_wrap(L, -1, "concat", sandbox_charged);
    lua_pop(L, 2); /* */

    /* Protect the string metatable: getmetatable("") returns false. */
    lua_pushliteral(L, "");             /* "" */
    lua_getmetatable(L, -1);            /* "" mt */
    lua_pushboolean(L, 0);              /* "" mt false */
    lua_setfield(L, -2, "__metatable"); /* "" mt */
    lua_pop(L, 2);                      /* */

    sandbox_charge_open(L);   /* sandbox_charge.c: C functions charged by their work */
    sandbox_meta_open(L);     /* sandbox_meta.c: metatables never gain __gc or __mode */
    sandbox_readonly_open(L); /* sandbox_query.c: M.query's read-only proxies */
}

void sandbox_lock_globals(lua_State *L)
{
    sandbox_freeze(L, sandbox_global_newindex); /* sandbox_frozen.c */
    fsm_from_state(L)->globals_locked = true;
}
