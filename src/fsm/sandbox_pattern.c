/*
 * string.find, string.match, string.gmatch and string.gsub on pattern.c's matcher, with
 * stock Lua 5.4's arguments, results and error messages (the manual's §6.4, lstrlib.c's
 * behaviour), charged by the work they do. Stock Lua matches a pattern inside one VM
 * instruction, so ("a*"):rep(40) .. "b" backtracks for ever without reaching the count
 * hook; here the matcher charges one instruction per 2 steps as it goes (pattern.h) and
 * stops once the budget is spent, and the call then raises the budget's error like any
 * other budget abort. The steps are a function of the arguments alone, so the same call
 * stops at the same point on every replica.
 *
 * What a call produces is charged too: captures and results that are long strings by the
 * allocator (sandbox_limits.c: the memory budget, and an instruction per 64 bytes); gsub's
 * result, built in a luaL_Buffer the allocator does not count, is checked against the
 * memory budget before each piece goes in (sandbox_charge_memory) and charged an
 * instruction per 64 bytes added and per 64 bytes of replacement string scanned.
 */
#include <lauxlib.h>
#include <string.h>

#include "fsm/fsm_internal.h"
#include "fsm/pattern.h"

/* The matcher's charge callback (arg: the lua_State): nonzero once the budget is spent. */
static int sp_charge(void *arg, uint64_t steps)
{
    return sandbox_charge_quiet(arg, steps / 2) ? 0 : 1;
}

/* After the matcher ran: charges its pending steps, then raises the budget's error if it
 * stopped for that, or the pattern's error if it found one. */
static void sp_check(lua_State *L, struct pattern_state *ms)
{
    int status = pattern_flush(ms);
    if (status == PATTERN_STOPPED) {
        sandbox_charge(L, 0); /* the budget is spent: raises */
        luaL_error(L, "script exceeded its instruction budget");
    }
    if (status == PATTERN_ERROR) {
        luaL_error(L, "%s", ms->error);
    }
}

/* An init argument as an offset (lstrlib.c's posrelatI, minus 1): 1 and 0 are the
 * start, -k is k bytes before the end (clipped to the start); past the end stays so. */
static size_t sp_offset(lua_Integer pos, size_t len)
{
    if (pos > 0) {
        return (size_t)pos - 1;
    }
    if (pos == 0 || pos < -(lua_Integer)len) {
        return 0;
    }
    return len - (size_t)(-pos);
}

/* Pushes capture i of the match [s, e) (pattern_capture_get). [-0, +1, v] */
static void sp_push_capture(lua_State *L, struct pattern_state *ms, int i, size_t s, size_t e)
{
    struct pattern_capture c;
    if (pattern_capture_get(ms, i, s, e, &c) != PATTERN_MATCH) {
        luaL_error(L, "%s", ms->error);
    }
    if (c.len == PATTERN_CAP_POSITION) {
        lua_pushinteger(L, (lua_Integer)c.start + 1);
    } else {
        lua_pushlstring(L, ms->src + c.start, (size_t)c.len);
    }
}

/* Pushes the captures of the match [s, e), or with whole and none, the match itself;
 * returns how many. [-0, +n, v] */
static int sp_push_captures(lua_State *L, struct pattern_state *ms, size_t s, size_t e, bool whole)
{
    int n = pattern_capture_count(ms, whole);
    luaL_checkstack(L, n, "too many captures");
    for (int i = 0; i < n; i++) {
        sp_push_capture(L, ms, i, s, e);
    }
    return n;
}

/* string.find (find) and string.match: lstrlib.c's str_find_aux. */
static int sp_find_aux(lua_State *L, bool find)
{
    size_t ls = 0;
    size_t lp = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = sp_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L); /* starts after the end: nothing to find */
        return 1;
    }
    struct pattern_state ms;
    pattern_init(&ms, s, ls, p, lp, sp_charge, L);
    size_t start = 0;
    size_t end = 0;
    if (find && (lua_toboolean(L, 4) || pattern_is_plain(&ms))) {
        int rv = pattern_find_plain(&ms, init, &start);
        sp_check(L, &ms);
        if (rv == PATTERN_MATCH) {
            lua_pushinteger(L, (lua_Integer)start + 1);
            lua_pushinteger(L, (lua_Integer)(start + lp));
            return 2;
        }
    } else {
        bool anchor = lp > 0 && p[0] == '^';
        if (anchor) {
            ms.pat++;
            ms.pat_len--;
        }
        int rv = pattern_find(&ms, init, anchor, &start, &end);
        sp_check(L, &ms);
        if (rv == PATTERN_MATCH && find) {
            lua_pushinteger(L, (lua_Integer)start + 1);
            lua_pushinteger(L, (lua_Integer)end);
            return 2 + sp_push_captures(L, &ms, start, end, false);
        }
        if (rv == PATTERN_MATCH) {
            return sp_push_captures(L, &ms, start, end, true);
        }
    }
    luaL_pushfail(L);
    return 1;
}

static int sp_find(lua_State *L)
{
    return sp_find_aux(L, true);
}

static int sp_match(lua_State *L)
{
    return sp_find_aux(L, false);
}

/* ------------------------------------------------------------------------------------
 * gmatch
 * ------------------------------------------------------------------------------------ */

/* The iterator's state, a userdata beside the subject and pattern it points into (both
 * kept alive as upvalues of the iterator). */
struct sp_gmatch
{
    struct pattern_state ms;
    size_t src;       /* where the next search starts */
    size_t lastmatch; /* the end of the last match, SIZE_MAX before the first */
};

/* A match may not end where the previous one did (an empty match right after a match),
 * so ("abc"):gmatch("%a*") gives "abc" then "" at the end, once. */
static int sp_gmatch_next(lua_State *L)
{
    struct sp_gmatch *gm = lua_touserdata(L, lua_upvalueindex(3));
    gm->ms.arg = L; /* the thread calling now */
    gm->ms.status = 0;
    for (size_t src = gm->src; src <= gm->ms.src_len; src++) {
        size_t e = 0;
        int rv = pattern_match_at(&gm->ms, src, &e);
        if (rv < 0) {
            break;
        }
        if (rv == PATTERN_MATCH && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            sp_check(L, &gm->ms);
            return sp_push_captures(L, &gm->ms, src, e, true);
        }
    }
    sp_check(L, &gm->ms);
    return 0;
}

static int sp_gmatch(lua_State *L)
{
    size_t ls = 0;
    size_t lp = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = sp_offset(luaL_optinteger(L, 3, 1), ls);
    lua_settop(L, 2); /* s p: the iterator's first two upvalues */
    struct sp_gmatch *gm = lua_newuserdatauv(L, sizeof *gm, 0);
    pattern_init(&gm->ms, s, ls, p, lp, sp_charge, L);
    gm->src = init > ls ? ls + 1 : init; /* past the end: nothing to find */
    gm->lastmatch = SIZE_MAX;
    lua_pushcclosure(L, sp_gmatch_next, 3);
    return 1;
}

/* ------------------------------------------------------------------------------------
 * gsub
 * ------------------------------------------------------------------------------------ */

enum { sp_bytes_per_instruction = 64, sp_bytes_batch = 4096 };

struct sp_gsub
{
    luaL_Buffer b;
    size_t out;     /* bytes of the result so far */
    size_t pending; /* bytes added or scanned, not yet charged */
};

/* Charges bytes of work (added or scanned), in batches. [-0, +0, v] */
static void sp_work(lua_State *L, struct sp_gsub *g, size_t bytes, bool flush)
{
    g->pending = bytes > SIZE_MAX - g->pending ? SIZE_MAX : g->pending + bytes;
    if (flush || g->pending >= sp_bytes_batch) {
        sandbox_charge(L, g->pending / sp_bytes_per_instruction);
        g->pending = 0;
    }
}

/* Makes sure n more bytes of result fit the memory budget, and charges them. */
static void sp_grow(lua_State *L, struct sp_gsub *g, size_t n)
{
    g->out = n > SIZE_MAX - g->out ? SIZE_MAX : g->out + n;
    sandbox_charge_memory(L, g->out);
    sp_work(L, g, n, false);
}

static void sp_add(lua_State *L, struct sp_gsub *g, const char *s, size_t n)
{
    sp_grow(L, g, n);
    luaL_addlstring(&g->b, s, n);
}

/* Adds the value on the top of the stack (a string or a number) and pops it. */
static void sp_add_top(lua_State *L, struct sp_gsub *g)
{
    size_t n = 0;
    lua_tolstring(L, -1, &n);
    sp_grow(L, g, n);
    luaL_addvalue(&g->b);
}

/* A replacement string (argument 3) for the match [s, e): %0 the match, %1-%9 its
 * captures, %% a '%'; any other '%' is an error. */
static void sp_add_string(lua_State *L,
                          struct sp_gsub *g,
                          struct pattern_state *ms,
                          size_t s,
                          size_t e)
{
    size_t l = 0;
    const char *repl = lua_tolstring(L, 3, &l);
    sp_work(L, g, l, false); /* scanned whole, whatever it adds */
    const char *p;
    while ((p = memchr(repl, '%', l)) != NULL) {
        sp_add(L, g, repl, (size_t)(p - repl));
        p++; /* a '%' at the end is followed by the string's terminating NUL */
        if (*p == '%') {
            sp_add(L, g, p, 1);
        } else if (*p == '0') {
            sp_add(L, g, ms->src + s, e - s);
        } else if (*p >= '1' && *p <= '9') {
            struct pattern_capture c;
            if (pattern_capture_get(ms, *p - '1', s, e, &c) != PATTERN_MATCH) {
                luaL_error(L, "%s", ms->error);
            }
            if (c.len == PATTERN_CAP_POSITION) {
                lua_pushinteger(L, (lua_Integer)c.start + 1);
                sp_add_top(L, g);
            } else {
                sp_add(L, g, ms->src + c.start, (size_t)c.len);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", '%');
        }
        l -= (size_t)(p + 1 - repl);
        repl = p + 1;
    }
    sp_add(L, g, repl, l);
}

/* Adds the replacement of the match [s, e) as argument 3 (of type tr) says; a function or
 * table giving false or nil keeps the match. Returns whether anything was replaced. */
static bool sp_add_value(lua_State *L,
                         struct sp_gsub *g,
                         struct pattern_state *ms,
                         size_t s,
                         size_t e,
                         int tr)
{
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = sp_push_captures(L, ms, s, e, true);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        sp_push_capture(L, ms, 0, s, e);
        lua_gettable(L, 3);
    } else {
        sp_add_string(L, g, ms, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        sp_add(L, g, ms->src + s, e - s);
        return false;
    }
    if (!lua_isstring(L, -1)) {
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
    sp_add_top(L, g);
    return true;
}

/* string.gsub(s, pattern, repl [, n]): lstrlib.c's str_gsub. */
static int sp_gsub(lua_State *L)
{
    size_t srcl = 0;
    size_t lp = 0;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    struct sp_gsub g = {.out = 0, .pending = 0};
    luaL_buffinit(L, &g.b);
    bool anchor = lp > 0 && p[0] == '^';
    struct pattern_state ms;
    pattern_init(&ms, src, srcl, p + anchor, lp - anchor, sp_charge, L);
    size_t at = 0;
    size_t last = SIZE_MAX; /* the end of the last match */
    lua_Integer n = 0;
    bool changed = false;
    while (n < max_n) {
        size_t e = 0;
        int rv = pattern_match_at(&ms, at, &e);
        if (rv < 0) {
            sp_check(L, &ms); /* raises */
        }
        if (rv == PATTERN_MATCH && e != last) {
            n++;
            changed = sp_add_value(L, &g, &ms, at, e, tr) || changed;
            at = last = e;
        } else if (at < srcl) {
            sp_add(L, &g, src + at, 1); /* no match here: keep the byte */
            at++;
        } else {
            break;
        }
        if (anchor) {
            break;
        }
    }
    sp_check(L, &ms);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        sp_add(L, &g, src + at, srcl - at);
        luaL_pushresult(&g.b);
    }
    sp_work(L, &g, 0, true);
    lua_pushinteger(L, n);
    return 2;
}

void sandbox_pattern_open(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"find", sp_find}, {"match", sp_match}, {"gmatch", sp_gmatch},
        {"gsub", sp_gsub}, {NULL, NULL},
    };
    idx = lua_absindex(L, idx);
    for (const luaL_Reg *fn = fns; fn->name != NULL; fn++) {
        lua_pushcfunction(L, fn->func); /* fn */
        lua_setfield(L, idx, fn->name); /* */
    }
}
