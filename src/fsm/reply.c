/*
 * Lua values to RESP bytes: RESP2, and RESP3's map, set and double where the script asks
 * for them, and the hints the edge follows for a RESP2 connection (the mapping is in
 * fsm.h). The encoder reads tables with raw accesses only, so no metamethod runs and the
 * bytes depend on the value alone.
 *
 * Its work is charged like the script's (issue 10): a table reached twice is encoded
 * twice, so 50 references to one table, five levels deep, are 312 million elements from a
 * few hundred instructions. Each table costs reply_table_cost instructions (the field
 * lookups), each element reply_element_cost and every 64 bytes of output one; the output
 * counts against the per-command memory budget as it grows. A table inside itself is
 * refused at once.
 */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/resp3.h" /* the hints */
#include "fsm/fsm_internal.h"

void fsm_reply_init(struct fsm_reply *r)
{
    r->data = NULL;
    r->len = 0;
    r->cap = 0;
}

void fsm_reply_reset(struct fsm_reply *r)
{
    r->len = 0;
}

void fsm_reply_free(struct fsm_reply *r)
{
    free(r->data);
    fsm_reply_init(r);
}

int reply_reserve(struct fsm_reply *r, size_t extra)
{
    if (extra <= r->cap - r->len) {
        return 0;
    }
    if (extra > SIZE_MAX / 2 - r->len) {
        return FSM_ENOMEM;
    }
    size_t cap = r->cap > 0 ? r->cap : 64;
    while (cap - r->len < extra) {
        cap *= 2;
    }
    char *data = realloc(r->data, cap);
    if (data == NULL) {
        return FSM_ENOMEM;
    }
    r->data = data;
    r->cap = cap;
    return 0;
}

int reply_append(struct fsm_reply *r, const void *data, size_t len)
{
    int rv = reply_reserve(r, len);
    if (rv != 0) {
        return rv;
    }
    if (len > 0) {
        memcpy(r->data + r->len, data, len);
    }
    r->len += len;
    return 0;
}

/* "<prefix><n>\r\n", for integers and the headers of bulk strings and arrays. */
static int reply_append_number_line(struct fsm_reply *r, char prefix, long long n)
{
    char line[32];
    int len = snprintf(line, sizeof line, "%c%lld\r\n", prefix, n);
    return reply_append(r, line, (size_t)len);
}

static int reply_append_bulk(struct fsm_reply *r, const char *s, size_t len)
{
    int rv = reply_append_number_line(r, '$', (long long)len);
    if (rv == 0) {
        rv = reply_append(r, s, len);
    }
    if (rv == 0) {
        rv = reply_append(r, "\r\n", 2);
    }
    return rv;
}

/* A status or error line: CR and LF would end the line early, so they become spaces. */
static int reply_append_line(struct fsm_reply *r, char prefix, const char *text, size_t len)
{
    if (len > fsm_error_bytes_max) {
        len = fsm_error_bytes_max;
    }
    int rv = reply_reserve(r, len + 3);
    if (rv != 0) {
        return rv;
    }
    r->data[r->len++] = prefix;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        r->data[r->len++] = (c == '\r' || c == '\n') ? ' ' : c;
    }
    r->data[r->len++] = '\r';
    r->data[r->len++] = '\n';
    return 0;
}

int reply_append_error(struct fsm_reply *out, const char *text, size_t len)
{
    return reply_append_line(out, '-', text, len);
}

static int reply_encode_number(lua_State *L, int idx, struct fsm_reply *out)
{
    if (lua_isinteger(L, idx)) {
        return reply_append_number_line(out, ':', (long long)lua_tointeger(L, idx));
    }
    lua_Number n = lua_tonumber(L, idx);
    /* -2^63 <= n < 2^63 and integral: exactly representable as an integer. */
    if (n == floor(n) && n >= -9223372036854775808.0 && n < 9223372036854775808.0) {
        return reply_append_number_line(out, ':', (long long)n);
    }
    char text[64];
    int len = snprintf(text, sizeof text, "%.17g", (double)n);
    return reply_append_bulk(out, text, (size_t)len);
}

/* A RESP3 double as Redis 7.0 writes one (networking.c, addReplyDouble): "%.17g", and
 * inf and -inf spelled out; every NaN is "nan", whatever its sign bit. */
static int reply_append_double(struct fsm_reply *r, double d)
{
    char text[64];
    int len;
    if (isnan(d)) {
        len = snprintf(text, sizeof text, ",nan\r\n");
    } else if (isinf(d)) {
        len = snprintf(text, sizeof text, ",%s\r\n", d > 0 ? "inf" : "-inf");
    } else {
        len = snprintf(text, sizeof text, ",%.17g\r\n", d);
    }
    return reply_append(r, text, (size_t)len);
}

/* The tables open on the way down (for cycles), and how much of out is charged. */
struct reply_walk
{
    const void *path[fsm_reply_depth_max];
    size_t charged; /* bytes of out charged so far */
};

/* A table is about 200 ns of lookups and formatting, an element 10-30 ns: about what the
 * VM does in as many instructions (2.5 ns each). */
enum { reply_table_cost = 32, reply_element_cost = 4 };

static int reply_encode_depth(lua_State *L,
                              int idx,
                              struct fsm_reply *out,
                              int depth,
                              struct reply_walk *w);

/* Charges the reply's growth since the last call: one instruction per 64 bytes, and the
 * whole reply against the memory budget. [-0, +0, v] */
static void reply_charge(lua_State *L, struct fsm_reply *out, struct reply_walk *w)
{
    if (out->len > w->charged) {
        sandbox_charge(L, (uint64_t)(out->len - w->charged) / 64);
        w->charged = out->len - (out->len - w->charged) % 64;
    }
    sandbox_charge_memory(L, (uint64_t)out->len);
}

/* The elements t[1], t[2], ... up to the first nil (never #t, whose border depends on the
 * table's layout), after a header "<prefix><n / per>"; a count that per does not divide
 * is an error. [-0, +0, v] */
static int reply_encode_list(lua_State *L,
                             int t,
                             char prefix,
                             lua_Integer per,
                             struct fsm_reply *out,
                             int depth,
                             struct reply_walk *w)
{
    lua_Integer n = 0;
    while (lua_rawgeti(L, t, n + 1) != LUA_TNIL) { /* t[n + 1] */
        lua_pop(L, 1);                             /* */
        n++;
    }
    lua_pop(L, 1); /* */
    if (n % per != 0) {
        return luaL_error(L, "a map reply needs a value after each key: {map = {k1, v1, ...}}");
    }
    sandbox_charge(L, (uint64_t)n * reply_element_cost);
    int rv = reply_append_number_line(out, prefix, (long long)(n / per));
    luaL_checkstack(L, 2, "reply encoding");
    for (lua_Integer i = 1; rv == 0 && i <= n; i++) {
        lua_rawgeti(L, t, i); /* t[i] */
        rv = reply_encode_depth(L, -1, out, depth + 1, w);
        lua_pop(L, 1); /* */
    }
    return rv;
}

/* The attribute that tells the edge how a RESP2 connection gets the reply after it
 * (client/resp3.h). */
static int reply_append_hint(struct fsm_reply *out, const char *hint)
{
    int rv = reply_append(out, "|1\r\n", 4);
    if (rv == 0) {
        rv = reply_append_line(out, '+', hint, strlen(hint));
    }
    return rv == 0 ? reply_append(out, "#t\r\n", 4) : rv;
}

/* {pairs = {k1, v1, ...}}: the hint, then *n of *2 pairs. [-0, +0, v] */
static int reply_encode_pairs(lua_State *L,
                              int t,
                              struct fsm_reply *out,
                              int depth,
                              struct reply_walk *w)
{
    lua_Integer n = 0;
    while (lua_rawgeti(L, t, n + 1) != LUA_TNIL) { /* t[n + 1] */
        lua_pop(L, 1);                             /* */
        n++;
    }
    lua_pop(L, 1); /* */
    if (n % 2 != 0) {
        return luaL_error(L,
                          "a pairs reply needs a second value in each pair: "
                          "{pairs = {a1, b1, ...}}");
    }
    sandbox_charge(L, (uint64_t)n * reply_element_cost);
    w->path[depth + 1] = lua_topointer(L, t); /* its elements are two levels down */
    int rv = reply_append_hint(out, RESP3_HINT_PAIRS);
    if (rv == 0) {
        rv = reply_append_number_line(out, '*', (long long)(n / 2));
    }
    luaL_checkstack(L, 2, "reply encoding");
    for (lua_Integer i = 1; rv == 0 && i <= n; i++) {
        if (i % 2 == 1) {
            rv = reply_append(out, "*2\r\n", 4);
        }
        lua_rawgeti(L, t, i); /* t[i] */
        if (rv == 0) {
            rv = reply_encode_depth(L, -1, out, depth + 2, w);
        }
        lua_pop(L, 1); /* */
    }
    return rv;
}

/*
 * The RESP3 forms: {map = {k1, v1, ...}} -> %n, {set = {...}} -> ~n, {double = x} -> ,x,
 * {pairs = {a1, b1, ...}} -> *n of *2 (flat on RESP2), {null_array = true} -> _ (*-1 on
 * RESP2). Sets *done when t is one of them. [-0, +0, v]
 */
static int reply_encode_resp3(lua_State *L,
                              int t,
                              struct fsm_reply *out,
                              int depth,
                              struct reply_walk *w,
                              bool *done)
{
    static const char *const fields[] = {"map", "set", "double", "pairs", "null_array"};
    static const char *const wants[] = {"a table", "a table", "a number", "a table", "true"};
    for (int i = 0; i < 5; i++) {
        lua_pushstring(L, fields[i]); /* key */
        int type = lua_rawget(L, t);  /* t[key] */
        if (type == LUA_TNIL) {
            lua_pop(L, 1); /* */
            continue;
        }
        *done = true;
        int rv;
        if (i == 2 && type == LUA_TNUMBER) {
            rv = reply_append_double(out, (double)lua_tonumber(L, -1));
        } else if (i < 2 && type == LUA_TTABLE) {
            rv = reply_encode_list(L, lua_absindex(L, -1), i == 0 ? '%' : '~', i == 0 ? 2 : 1, out,
                                   depth, w);
        } else if (i == 3 && type == LUA_TTABLE) {
            rv = reply_encode_pairs(L, lua_absindex(L, -1), out, depth, w);
        } else if (i == 4 && type == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
            rv = reply_append_hint(out, RESP3_HINT_NULL_ARRAY);
            if (rv == 0) {
                rv = reply_append(out, "_\r\n", 3);
            }
        } else {
            return luaL_error(L, "a %s reply holds a %s, not %s", fields[i], luaL_typename(L, -1),
                              wants[i]);
        }
        lua_pop(L, 1); /* */
        return rv;
    }
    return 0;
}

/* If t[key] is a string, appends it as a line with prefix and sets *done. [-0, +0, m] */
static int reply_encode_field_line(lua_State *L,
                                   int t,
                                   const char *key,
                                   char prefix,
                                   struct fsm_reply *out,
                                   bool *done)
{
    int rv = 0;
    lua_pushstring(L, key); /* key */
    lua_rawget(L, t);       /* t[key] */
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        rv = reply_append_line(out, prefix, s, len);
        *done = true;
    }
    lua_pop(L, 1); /* */
    return rv;
}

static int reply_encode_depth(lua_State *L,
                              int idx,
                              struct fsm_reply *out,
                              int depth,
                              struct reply_walk *w)
{
    switch (lua_type(L, idx)) {
        case LUA_TNIL:
            return reply_append(out, "$-1\r\n", 5);
        case LUA_TBOOLEAN:
            return lua_toboolean(L, idx) ? reply_append(out, ":1\r\n", 4)
                                         : reply_append(out, "$-1\r\n", 5);
        case LUA_TNUMBER:
            return reply_encode_number(L, idx, out);
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            int rv = reply_append_bulk(out, s, len);
            if (rv == 0 && len >= 64) {
                reply_charge(L, out, w);
            }
            return rv;
        }
        case LUA_TTABLE:
            break;
        default:
            return luaL_error(L, "script returned a %s value, which has no RESP form",
                              luaL_typename(L, idx));
    }

    idx = lua_absindex(L, idx);
    sandbox_readonly_unwrap(L, idx);
    const void *self = lua_topointer(L, idx);
    for (int d = 0; d < depth && d < fsm_reply_depth_max; d++) {
        if (w->path[d] == self) {
            return luaL_error(L, "reply contains itself (a cycle)");
        }
    }
    if (depth >= fsm_reply_depth_max) {
        return luaL_error(L, "reply nested more than %d levels deep", fsm_reply_depth_max);
    }
    w->path[depth] = self;
    sandbox_charge(L, reply_table_cost);
    reply_charge(L, out, w);
    bool done = false;
    int rv = reply_encode_field_line(L, idx, "err", '-', out, &done);
    if (rv != 0 || done) {
        return rv;
    }
    rv = reply_encode_field_line(L, idx, "ok", '+', out, &done);
    if (rv != 0 || done) {
        return rv;
    }

    rv = reply_encode_resp3(L, idx, out, depth, w, &done);
    if (rv != 0 || done) {
        return rv;
    }
    return reply_encode_list(L, idx, '*', 1, out, depth, w);
}

int reply_encode(lua_State *L, int idx, struct fsm_reply *out)
{
    struct reply_walk w = {.charged = out->len};
    int rv = reply_encode_depth(L, idx, out, 0, &w);
    if (rv == 0) {
        reply_charge(L, out, &w);
    }
    return rv;
}
