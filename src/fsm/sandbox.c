/*
 * The determinism sandbox: our library list (cf. linit.c), replacements for the functions
 * whose results depend on the process (pairs, next, tostring, string.format's %p,
 * collectgarbage, os.time, math.randomseed, table.sort), the instruction budget (a count
 * hook, cf. lua.c's lstop and Redis's luaMaskCountHook) and the memory cap (the lua_Alloc).
 * fsm.h lists the rules a script sees.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/encode.h"
#include "fsm/fsm_internal.h"

struct fsm *fsm_from_state(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/* ------------------------------------------------------------------------------------
 * Memory cap
 * ------------------------------------------------------------------------------------ */

/*
 * A growing allocation that would take the heap past the cap fails. Lua then runs an
 * emergency full collection and retries the same allocation once (lmem.c); if the retry
 * fails too, the cap is truly exceeded, and every growing allocation fails until the call
 * returns (sandbox_end), so a pcall inside the script cannot carry on past it. Shrinking
 * and freeing never fail: Lua relies on that.
 */
void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct fsm *f = ud;
    size_t old = ptr != NULL ? osize : 0; /* with ptr NULL, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        f->memory.used -= old;
        return NULL;
    }
    if (nsize > old && f->memory.max > 0 && f->memory.enforced) {
        size_t grow = nsize - old;
        if (f->memory.exceeded || grow > f->memory.max - f->memory.used ||
            f->memory.used > f->memory.max) {
            if (f->memory.failed_once) {
                f->memory.exceeded = true;
            }
            f->memory.failed_once = true;
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) {
        return NULL;
    }
    if (nsize > old) {
        f->memory.failed_once = false;
    }
    f->memory.used = f->memory.used - old + nsize;
    return p;
}

/* ------------------------------------------------------------------------------------
 * Instruction budget
 * ------------------------------------------------------------------------------------ */

static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    sandbox_charge(L, (uint64_t)lua_gethookcount(L));
}

/*
 * Once the budget is spent, the hook is re-armed to fire on every instruction and raises
 * each time: a pcall in the script catches one error, but its very next instruction
 * raises again, so the call unwinds to the host after at most one instruction per frame.
 */
void sandbox_charge(lua_State *L, uint64_t n)
{
    struct fsm *f = fsm_from_state(L);
    if (!f->budget.active) {
        return;
    }
    f->budget.used = n > UINT64_MAX - f->budget.used ? UINT64_MAX : f->budget.used + n;
    if (f->budget.exceeded || f->budget.used > f->budget.max) {
        f->budget.exceeded = true;
        lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "script exceeded its instruction budget");
    }
}

/* Charges a string's size, one instruction per 64 bytes. [-0, +0, v] */
static void sandbox_charge_string(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len = 0;
        lua_tolstring(L, idx, &len);
        sandbox_charge(L, (uint64_t)len / 64);
    }
}

void sandbox_begin(struct fsm *f, bool with_limits)
{
    f->budget.used = 0;
    f->budget.exceeded = false;
    f->budget.active = with_limits && f->budget.max > 0;
    f->memory.enforced = with_limits;
    f->memory.failed_once = false;
    f->memory.exceeded = false;
    if (f->budget.active) {
        uint64_t step = f->budget.max < sandbox_hook_step ? f->budget.max : sandbox_hook_step;
        lua_sethook(f->L, sandbox_hook, LUA_MASKCOUNT, (int)step);
    }
}

void sandbox_end(struct fsm *f)
{
    f->budget.active = false;
    lua_sethook(f->L, NULL, 0, 0);
    f->memory.enforced = true;
    f->memory.failed_once = false;
    f->memory.exceeded = false;
}

/* ------------------------------------------------------------------------------------
 * Deterministic iteration: pairs and next in sorted key order
 * ------------------------------------------------------------------------------------ */

void sort_key_init(lua_State *L, int idx, struct sort_key *k)
{
    memset(k, 0, sizeof *k);
    switch (lua_type(L, idx)) {
        case LUA_TNUMBER:
            k->rank = 0;
            k->is_int = lua_isinteger(L, idx);
            if (k->is_int) {
                k->i = lua_tointeger(L, idx);
            } else {
                k->n = lua_tonumber(L, idx);
            }
            break;
        case LUA_TSTRING:
            k->rank = 1;
            k->s = lua_tolstring(L, idx, &k->len);
            break;
        case LUA_TBOOLEAN:
            k->rank = 2;
            k->i = lua_toboolean(L, idx);
            break;
        default:
            luaL_error(L, "non-deterministic key type (%s) in pairs/next", luaL_typename(L, idx));
    }
}

int sort_key_compare(const struct sort_key *a, const struct sort_key *b)
{
    if (a->rank != b->rank) {
        return a->rank < b->rank ? -1 : 1;
    }
    if (a->rank == 1) {
        size_t len = a->len < b->len ? a->len : b->len;
        int c = len > 0 ? memcmp(a->s, b->s, len) : 0;
        if (c != 0) {
            return c < 0 ? -1 : 1;
        }
        return a->len < b->len ? -1 : (a->len > b->len ? 1 : 0);
    }
    if (a->rank == 2 || (a->is_int && b->is_int)) {
        return a->i < b->i ? -1 : (a->i > b->i ? 1 : 0);
    }
    /* Mixed or float: long double holds every 64-bit integer exactly on x86-64. */
    long double x = a->is_int ? (long double)a->i : (long double)a->n;
    long double y = b->is_int ? (long double)b->i : (long double)b->n;
    if (x != y) {
        return x < y ? -1 : 1;
    }
    return a->is_int == b->is_int ? 0 : (a->is_int ? -1 : 1);
}

static int sort_key_qsort_cmp(const void *a, const void *b)
{
    return sort_key_compare(a, b);
}

void sandbox_push_sorted_keys(lua_State *L, int t)
{
    t = lua_absindex(L, t);
    lua_Integer n = 0;
    lua_pushnil(L); /* nil */
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        n++;
    }
    sandbox_charge(L, (uint64_t)n);
    struct sort_key *keys = lua_newuserdatauv(L, (size_t)n * sizeof *keys + 1, 0); /* ud */
    lua_createtable(L, (int)n, 0); /* ud collected */
    lua_Integer i = 0;
    lua_pushnil(L); /* ud collected nil */
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1); /* ud collected key */
        sort_key_init(L, -1, &keys[i]);
        keys[i].pos = i + 1;
        lua_pushvalue(L, -1);      /* ud collected key key */
        lua_rawseti(L, -3, i + 1); /* ud collected key */
        i++;
    }
    qsort(keys, (size_t)n, sizeof *keys, sort_key_qsort_cmp);
    lua_createtable(L, (int)n, 0); /* ud collected sorted */
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, -2, keys[i].pos); /* ud collected sorted key */
        lua_rawseti(L, -2, i + 1);       /* ud collected sorted */
    }
    lua_replace(L, -3); /* sorted collected */
    lua_pop(L, 1);      /* sorted */
}

/* Upvalues: sorted keys, position, table. Skips keys removed during the traversal. */
static int sandbox_pairs_iter(lua_State *L)
{
    lua_Integer pos = lua_tointeger(L, lua_upvalueindex(2));
    for (;;) {
        pos++;
        if (lua_rawgeti(L, lua_upvalueindex(1), pos) == LUA_TNIL) { /* nil */
            return 1;
        }
        lua_pushvalue(L, -1);                                 /* key key */
        if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL) { /* key value */
            lua_pushinteger(L, pos);                          /* key value pos */
            lua_replace(L, lua_upvalueindex(2));              /* key value */
            return 2;
        }
        lua_pop(L, 2); /* */
    }
}

static int sandbox_pairs(lua_State *L)
{
    luaL_checkany(L, 1);
    if (luaL_getmetafield(L, 1, "__pairs") != LUA_TNIL) { /* t ... mm */
        lua_pushvalue(L, 1);                              /* t ... mm t */
        lua_call(L, 1, 3);                                /* t ... f s c */
        return 3;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);                           /* t */
    sandbox_push_sorted_keys(L, 1);             /* t sorted */
    lua_pushinteger(L, 0);                      /* t sorted 0 */
    lua_pushvalue(L, 1);                        /* t sorted 0 t */
    lua_pushcclosure(L, sandbox_pairs_iter, 3); /* t iter */
    lua_pushvalue(L, 1);                        /* t iter t */
    lua_pushnil(L);                             /* t iter t nil */
    return 3;
}

/* next(t, k): the smallest key greater than k (the smallest key when k is nil). */
static int sandbox_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2); /* t k */
    struct sort_key after;
    bool have_after = !lua_isnil(L, 2);
    if (have_after) {
        sort_key_init(L, 2, &after);
    }
    struct sort_key best = {0};
    bool have_best = false;
    uint64_t n = 0;
    lua_pushnil(L); /* t k best */
    lua_pushnil(L); /* t k best nil */
    while (lua_next(L, 1) != 0) {
        lua_pop(L, 1); /* t k best key */
        n++;
        struct sort_key key;
        sort_key_init(L, -1, &key);
        if ((!have_after || sort_key_compare(&key, &after) > 0) &&
            (!have_best || sort_key_compare(&key, &best) < 0)) {
            best = key;
            have_best = true;
            lua_copy(L, -1, 3); /* t k key key */
        }
    }
    sandbox_charge(L, n);
    if (!have_best) {
        return 1; /* t k nil: nil */
    }
    lua_pushvalue(L, 3); /* t k best best */
    lua_rawget(L, 1);    /* t k best value */
    return 2;
}

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
    lua_pushvalue(L, lua_upvalueindex(1)); /* fmt ... format */
    lua_insert(L, 1);                      /* format fmt ... */
    lua_call(L, n, 1);                     /* s */
    sandbox_charge_string(L, -1);
    return 1;
}

/* ------------------------------------------------------------------------------------
 * Other replacements
 * ------------------------------------------------------------------------------------ */

static int sandbox_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "collect") != 0) {
        return luaL_error(L,
                          "collectgarbage(\"%s\") is not allowed (its result depends on "
                          "the heap's history)",
                          opt);
    }
    lua_gc(L, LUA_GCCOLLECT);
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
        sandbox_charge(L, bytes / 64);
    }
    int top = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* ... rep */
    lua_insert(L, 1);                      /* rep ... */
    lua_call(L, top, 1);                   /* s */
    return 1;
}

/*
 * Upvalue 1: a C library function that scans or builds strings in one instruction
 * (string.find, match, gsub, upper, lower, reverse, table.concat). Charges the size of
 * its first argument before and of its first result after, so a loop over big strings
 * runs out of budget as it would if the work were Lua code. Pattern backtracking is not
 * bounded by this.
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

static int sandbox_global_newindex(lua_State *L)
{
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return luaL_error(L,
                      "assignment to undeclared global '%s' (globals are locked after "
                      "load: keep state in the module table)",
                      name);
}

/* table.sort in Lua: a stable bottom-up merge sort. The C table.sort picks pivots at
 * random (ltablib.c l_randomizePivot), so equal elements and the number of comparator
 * calls would differ between replicas. Written in Lua, it is charged by the count hook. */
static const char sandbox_sort_source[] =
    "local min, type, error = math.min, type, error\n"
    "local function less(a, b) return a < b end\n"
    "return function(t, lt)\n"
    "  if lt == nil then lt = less\n"
    "  elseif type(lt) ~= 'function' then\n"
    "    error(\"bad argument #2 to 'sort' (function expected)\", 2)\n"
    "  end\n"
    "  local n = #t\n"
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
    sandbox_wrap(L, -1, "setmetatable", sandbox_setmetatable);
    sandbox_wrap(L, -1, "rawset", sandbox_rawset);
    sandbox_wrap(L, -1, "load", sandbox_load);

    lua_getfield(L, -1, LUA_STRLIBNAME); /* G string */
    sandbox_set(L, -1, "dump", NULL);
    sandbox_wrap(L, -1, "format", sandbox_format);
    sandbox_wrap(L, -1, "rep", sandbox_rep);
    static const char *const charged[] = {"find", "match", "gsub", "upper", "lower", "reverse"};
    for (size_t i = 0; i < sizeof charged / sizeof charged[0]; i++) {
        sandbox_wrap(L, -1, charged[i], sandbox_charged);
    }
    lua_pop(L, 1); /* G */

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
    lua_call(L, 0, 1);                   /* G sort */
    lua_getfield(L, -2, LUA_TABLIBNAME); /* G sort table */
    lua_insert(L, -2);                   /* G table sort */
    lua_setfield(L, -2, "sort");         /* G table */
    sandbox_wrap(L, -1, "concat", sandbox_charged);
    lua_pop(L, 2); /* */

    /* Protect the string metatable: getmetatable("") returns false. */
    lua_pushliteral(L, "");             /* "" */
    lua_getmetatable(L, -1);            /* "" mt */
    lua_pushboolean(L, 0);              /* "" mt false */
    lua_setfield(L, -2, "__metatable"); /* "" mt */
    lua_pop(L, 2);                      /* */
}

void sandbox_lock_globals(lua_State *L)
{
    lua_pushglobaltable(L);                        /* G */
    lua_createtable(L, 0, 2);                      /* G mt */
    lua_pushcfunction(L, sandbox_global_newindex); /* G mt fn */
    lua_setfield(L, -2, "__newindex");             /* G mt */
    lua_pushboolean(L, 0);                         /* G mt false */
    lua_setfield(L, -2, "__metatable");            /* G mt */
    lua_setmetatable(L, -2);                       /* G */
    lua_pop(L, 1);                                 /* */
    fsm_from_state(L)->globals_locked = true;
}
