/*
 * luaraft.decode(bytes) -> value: the strict inverse of luaraft.encode. encode.c
 * describes the format and what decode refuses; decode(b) succeeds only when
 * encode(decode(b)) == b.
 */
#include "fsm/decode.h"

#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/encode.h"
#include "fsm/fsm_internal.h"

struct dec
{
    lua_State *L;
    const uint8_t *start;
    const uint8_t *p;
    const uint8_t *end;
    int depth;
};

__attribute__((noreturn)) static void dec_fail(struct dec *d, const char *what)
{
    luaL_error(d->L, "luaraft.decode: %s at byte %d", what, (int)(d->p - d->start));
    abort(); /* not reached */
}

static uint64_t dec_uint(struct dec *d, int bytes)
{
    if (d->end - d->p < bytes) {
        dec_fail(d, "truncated input");
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = (v << 8) | d->p[i];
    }
    d->p += bytes;
    return v;
}

static void dec_value(struct dec *d);

static void dec_enter(struct dec *d, uint64_t n, size_t min_bytes_each)
{
    if (d->depth >= encode_depth_max) {
        dec_fail(d, "tables nested too deep");
    }
    if (n > (uint64_t)(d->end - d->p) / min_bytes_each) {
        dec_fail(d, "truncated input");
    }
    luaL_checkstack(d->L, 8, "luaraft.decode");
    sandbox_charge(d->L, n);
    d->depth++;
}

static void dec_array(struct dec *d, uint64_t n)
{
    lua_State *L = d->L;
    if (n == 0) {
        dec_fail(d, "non-canonical empty array");
    }
    dec_enter(d, n, 1);
    lua_createtable(L, n <= INT32_MAX ? (int)n : 0, 0); /* t */
    for (uint64_t i = 1; i <= n; i++) {
        dec_value(d); /* t v */
        if (lua_isnil(L, -1)) {
            dec_fail(d, "nil in an array");
        }
        lua_rawseti(L, -2, (lua_Integer)i); /* t */
    }
    d->depth--;
}

static bool is_key_type(int type)
{
    return type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TBOOLEAN;
}

static void dec_map(struct dec *d, uint64_t n)
{
    lua_State *L = d->L;
    dec_enter(d, n, 2);
    lua_createtable(L, 0, n <= INT32_MAX ? (int)n : 0); /* t */
    struct sort_key prev;
    bool sequence = true; /* the keys so far are 1, 2, ... */
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *at = d->p;
        dec_value(d); /* t k */
        int ktype = lua_type(L, -1);
        if (!is_key_type(ktype)) {
            d->p = at;
            dec_fail(d, ktype == LUA_TNIL ? "nil key" : "table as a key");
        }
        if (ktype == LUA_TNUMBER && !lua_isinteger(L, -1)) {
            lua_Number x = lua_tonumber(L, -1);
            lua_Integer as_int;
            /* Lua itself turns a float key with an integer value into that integer. */
            if (isnan(x) || (floor(x) == x && lua_numbertointeger(x, &as_int))) {
                d->p = at;
                dec_fail(d, "NaN or integral float key");
            }
        }
        struct sort_key k;
        sort_key_init(L, -1, &k); /* the string stays alive in t */
        if (i > 0 && sort_key_compare(&prev, &k) >= 0) {
            d->p = at;
            dec_fail(d, "map keys out of order or repeated");
        }
        sequence = sequence && k.rank == 0 && k.is_int && k.i == (lua_Integer)i + 1;
        prev = k;
        dec_value(d); /* t k v */
        if (lua_isnil(L, -1)) {
            dec_fail(d, "nil value in a map");
        }
        lua_rawset(L, -3); /* t */
    }
    if (n > 0 && sequence) {
        dec_fail(d, "non-canonical map of keys 1..n (an array)");
    }
    d->depth--;
}

/* Checks that a header's length is not one a shorter form holds. */
static uint64_t dec_len(struct dec *d, int bytes, uint64_t min)
{
    uint64_t n = dec_uint(d, bytes);
    if (n < min) {
        d->p -= bytes + 1;
        dec_fail(d, "non-canonical length");
    }
    return n;
}

static void dec_string(struct dec *d, uint64_t len)
{
    if (len > (uint64_t)(d->end - d->p)) {
        dec_fail(d, "truncated input");
    }
    lua_pushlstring(d->L, (const char *)d->p, (size_t)len); /* s */
    d->p += len;
}

/* uint8..uint64 (tag cc..cf, already read): a non-negative integer too big for a shorter
 * form, and at most INT64_MAX. */
static void dec_unsigned(struct dec *d, uint8_t tag)
{
    static const uint64_t min[] = {128, UINT64_C(1) << 8, UINT64_C(1) << 16, UINT64_C(1) << 32};
    const uint8_t *at = d->p - 1;
    int bytes = 1 << (tag - 0xcc);
    uint64_t u = dec_uint(d, bytes);
    if (u < min[tag - 0xcc] || u > (uint64_t)INT64_MAX) {
        d->p = at;
        dec_fail(d, "non-canonical or out of range integer");
    }
    lua_pushinteger(d->L, (lua_Integer)u);
}

/* int8..int64 (tag d0..d3, already read): a negative integer too small for a shorter
 * form. */
static void dec_negative(struct dec *d, uint8_t tag)
{
    static const int64_t max[] = {-33, INT8_MIN - 1, INT16_MIN - 1, (int64_t)INT32_MIN - 1};
    const uint8_t *at = d->p - 1;
    int bytes = 1 << (tag - 0xd0);
    uint64_t u = dec_uint(d, bytes);
    if (bytes < 8) {
        uint64_t sign = UINT64_C(1) << (8 * bytes - 1);
        u = (u ^ sign) - sign; /* sign-extend */
    }
    int64_t v = (int64_t)u;
    if (v > max[tag - 0xd0]) {
        d->p = at;
        dec_fail(d, "non-canonical integer");
    }
    lua_pushinteger(d->L, (lua_Integer)v);
}

/* float64 (tag cb, already read); the only NaN is canonical_nan. */
static void dec_float(struct dec *d)
{
    const uint8_t *at = d->p - 1;
    uint64_t bits = dec_uint(d, 8);
    double x;
    memcpy(&x, &bits, sizeof x);
    if (isnan(x) && bits != canonical_nan) {
        d->p = at;
        dec_fail(d, "non-canonical NaN");
    }
    lua_pushnumber(d->L, (lua_Number)x);
}

static void dec_value(struct dec *d)
{
    lua_State *L = d->L;
    if (d->p == d->end) {
        dec_fail(d, "truncated input");
    }
    uint8_t tag = *d->p++;
    if (tag <= 0x7f) {
        lua_pushinteger(L, tag);
        return;
    }
    if (tag >= 0xe0) {
        lua_pushinteger(L, (lua_Integer)tag - 0x100);
        return;
    }
    if (tag >= 0xa0 && tag <= 0xbf) {
        dec_string(d, tag & 0x1f);
        return;
    }
    if (tag >= 0x90 && tag <= 0x9f) {
        dec_array(d, tag & 0x0f);
        return;
    }
    if (tag <= 0x8f) {
        dec_map(d, tag & 0x0f);
        return;
    }
    const uint8_t *at = d->p - 1;
    switch (tag) {
        case 0xc0:
            lua_pushnil(L);
            return;
        case 0xc2:
        case 0xc3:
            lua_pushboolean(L, tag == 0xc3);
            return;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            dec_unsigned(d, tag);
            return;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3:
            dec_negative(d, tag);
            return;
        case 0xcb:
            dec_float(d);
            return;
        case 0xd9:
            dec_string(d, dec_len(d, 1, 32));
            return;
        case 0xda:
            dec_string(d, dec_len(d, 2, UINT64_C(1) << 8));
            return;
        case 0xdb:
            dec_string(d, dec_len(d, 4, UINT64_C(1) << 16));
            return;
        case 0xdc:
            dec_array(d, dec_len(d, 2, 16));
            return;
        case 0xdd:
            dec_array(d, dec_len(d, 4, UINT64_C(1) << 16));
            return;
        case 0xde:
            dec_map(d, dec_len(d, 2, 16));
            return;
        case 0xdf:
            dec_map(d, dec_len(d, 4, UINT64_C(1) << 16));
            return;
        default:
            d->p = at;
            dec_fail(d, "bad tag");
    }
}

/* luaraft.decode(string) -> value */
int decode_lua(lua_State *L)
{
    size_t len = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1); /* s */
    sandbox_charge(L, (uint64_t)len / 64);
    struct dec d = {.L = L, .start = (const uint8_t *)s, .p = (const uint8_t *)s};
    d.end = d.start + len;
    dec_value(&d); /* s v */
    if (d.p != d.end) {
        dec_fail(&d, "trailing bytes");
    }
    return 1;
}
