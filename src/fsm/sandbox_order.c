/*
 * Deterministic iteration: the one key order (sort_key), luaraft.keys's sorted keys, and
 * pairs and next in that order. The real ones follow the hash table's layout, which
 * depends on the insertion history and on string addresses.
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm_internal.h"

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
            sandbox_readonly_wrap(L, -1); /* an iterator kept in the state, in a query */
            return 2;
        }
        lua_pop(L, 2); /* */
    }
}

int sandbox_pairs(lua_State *L)
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
int sandbox_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);                           /* t k */
    bool proxy = sandbox_readonly_unwrap(L, 1); /* a query reads a state table */
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
    if (proxy) {
        sandbox_readonly_wrap(L, -1);
    }
    return 2;
}
