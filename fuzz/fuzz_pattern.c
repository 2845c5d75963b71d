/* libFuzzer target: the Lua pattern matcher (src/fsm/pattern.c). Input byte 0 picks the
 * mode: bits 0-1 the init offset (0, 1, the subject's length, or from byte 1), bit 2 a
 * plain find, bits 3-4 the step budget (64, 512, 4096 or 32768 steps). Byte 1 is the pattern's
 * length (of the rest, modulo), then the pattern, then the subject.
 *
 * Asserts: the budget is honoured (once charge says stop, the matcher returns
 * PATTERN_STOPPED within a bounded number of further steps, and it never runs past the
 * budget by more than one charge period and one bulk step); and, for every run that
 * finished inside its budget, the result is stock Lua's string.find (the lua5.4 library,
 * which runs the same algorithm, so it finishes too): the same match and captures, or
 * the same error message. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/pattern.h"
#include "fuzz.h"

struct budget
{
    uint64_t max;     /* steps allowed */
    uint64_t charged; /* steps told so far */
    uint64_t after;   /* steps told after the stop */
    bool stopped;
};

static int charge(void *arg, uint64_t steps)
{
    struct budget *b = arg;
    if (b->stopped) {
        b->after += steps; /* the unwinding's own steps */
        return 1;
    }
    b->charged += steps;
    if (b->charged > b->max) {
        b->stopped = true;
        return 1;
    }
    return 0;
}

static lua_State *stock_state(void)
{
    static lua_State *L;
    if (L == NULL) {
        L = luaL_newstate();
        luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
        lua_setglobal(L, "string_lib");
    }
    lua_settop(L, 0);
    return L;
}

/* One search: string.find(s, p, init + 1, plain). */
struct input
{
    const char *s;
    size_t ls;
    const char *p;
    size_t lp;
    size_t init; /* 0-based */
    bool plain;  /* asked for, or the pattern has no special character */
};

/* Calls stock string.find on in; leaves its results (or its error message) on the stack
 * and returns how many there are, or -1 for an error. */
static int stock_find(lua_State *L, const struct input *in)
{
    lua_getglobal(L, "string_lib");
    lua_getfield(L, -1, "find");
    lua_remove(L, -2);
    lua_pushlstring(L, in->s, in->ls);
    lua_pushlstring(L, in->p, in->lp);
    lua_pushinteger(L, (lua_Integer)in->init + 1);
    lua_pushboolean(L, in->plain);
    if (lua_pcall(L, 4, LUA_MULTRET, 0) != LUA_OK) {
        return -1;
    }
    return lua_gettop(L);
}

static void expect_string(lua_State *L, int idx, const char *s, size_t len)
{
    size_t got = 0;
    const char *text = lua_tolstring(L, idx, &got);
    if (text == NULL || got != len || memcmp(text, s, len) != 0) abort();
}

static void expect_integer(lua_State *L, int idx, size_t value)
{
    if (!lua_isinteger(L, idx) || lua_tointeger(L, idx) != (lua_Integer)value) abort();
}

/* Our result against stock's: rv and [start, end) with ms's captures. */
static void compare(struct pattern_state *ms,
                    int rv,
                    size_t start,
                    size_t end,
                    const struct input *in)
{
    lua_State *L = stock_state();
    int n = stock_find(L, in);
    int captures = 0;
    if (rv == PATTERN_MATCH && !in->plain) {
        captures = pattern_capture_count(ms, false);
        for (int i = 0; i < captures && rv == PATTERN_MATCH; i++) {
            struct pattern_capture c;
            rv = pattern_capture_get(ms, i, start, end, &c);
        }
    }
    if (rv == PATTERN_ERROR) {
        if (n != -1) abort();
        expect_string(L, 1, ms->error, strlen(ms->error));
        return;
    }
    if (n == -1) abort(); /* stock raised an error, we did not */
    if (rv == PATTERN_NOMATCH) {
        if (n != 1 || !lua_isnil(L, 1)) abort();
        return;
    }
    if (n != 2 + captures) abort();
    expect_integer(L, 1, start + 1);
    expect_integer(L, 2, end);
    for (int i = 0; i < captures; i++) {
        struct pattern_capture c;
        pattern_capture_get(ms, i, start, end, &c);
        if (c.len == PATTERN_CAP_POSITION) {
            expect_integer(L, 3 + i, c.start + 1);
        } else {
            expect_string(L, 3 + i, in->s + c.start, (size_t)c.len);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t mode = data[0];
    size_t rest = size - 2;
    struct input in;
    in.lp = rest == 0 ? 0 : data[1] % (rest + 1);
    in.p = (const char *)data + 2;
    in.s = in.p + in.lp;
    in.ls = rest - in.lp;
    size_t inits[4] = {0, 1, in.ls, data[1] % (in.ls + 1)};
    in.init = inits[mode & 3];
    struct budget b = {.max = (uint64_t)64 << (3 * ((mode >> 3) & 3))};

    struct pattern_state ms;
    pattern_init(&ms, in.s, in.ls, in.p, in.lp, charge, &b);
    size_t start = 0, end = 0;
    int rv;
    in.plain = (mode & 4) != 0 || pattern_is_plain(&ms);
    if (in.plain) {
        rv = pattern_find_plain(&ms, in.init, &start);
        end = start + in.lp;
    } else {
        bool anchor = in.lp > 0 && in.p[0] == '^';
        ms.pat += anchor;
        ms.pat_len -= anchor;
        rv = pattern_find(&ms, in.init, anchor, &start, &end);
    }
    /* the last steps may spend the budget too (an error is still reported as one) */
    if (pattern_flush(&ms) == PATTERN_STOPPED) rv = PATTERN_STOPPED;

    /* the budget: a stop is obeyed, and nothing runs far past it */
    uint64_t slack = pattern_charge_every + 1 + (in.ls + in.lp) / 32;
    if (b.stopped != (rv == PATTERN_STOPPED) && rv != PATTERN_ERROR) abort();
    if (b.charged > b.max + slack) abort();
    /* after the stop: the unwinding, and the rest of a set being scanned (pm_frontier
     * scans one three times) */
    if (b.after > 4 * pattern_depth_max + 3 * in.lp + slack) abort();
    if (ms.total != b.charged + b.after) abort();
    if (b.stopped) return 0;
    if (rv == PATTERN_MATCH && (start < in.init || end < start || end > in.ls)) abort();
    compare(&ms, rv, start, end, &in);
    return 0;
}
