/*
 * Canonical encoding of Lua values for snapshots: luaraft.encode(v) -> bytes and its strict
 * inverse luaraft.decode(bytes) -> v.
 *
 * The format is MessagePack (msgpack.org spec) restricted to one encoding per value, so the
 * same value gives the same bytes on every replica and any MessagePack reader can inspect
 * a snapshot:
 *
 *   nil       c0              false, true   c2, c3
 *   integer   the shortest of: 00-7f (0..127), e0-ff (-32..-1), cc/cd/ce/cf + 1/2/4/8
 *             bytes for other non-negative values (uint8..uint64), d0/d1/d2/d3 + 1/2/4/8
 *             bytes for other negative values (int8..int64); big-endian
 *   float     cb + 8 bytes IEEE-754 binary64 big-endian, always (never float32, never an
 *             integer form: 1.0 stays a float, -0.0 keeps its sign); every NaN is written
 *             as 7ff8000000000000
 *   string    the shortest of: a0-bf (length < 32), d9 + 1-byte, da + 2-byte, db + 4-byte
 *             length, then the bytes. Lua strings are bytes: str is used for all of them,
 *             UTF-8 or not (a MessagePack reader may need a "raw" option)
 *   table     whose keys are exactly 1..n (n >= 1): an array, 90-9f (n < 16), dc + 2-byte
 *             or dd + 4-byte n, then t[1] .. t[n];
 *             any other (the empty table too): a map, 80-8f (n < 16), de + 2-byte or df +
 *             4-byte n, then n key/value pairs in sort_key order (fsm_internal.h: numbers,
 *             then strings by bytes, then false, true: the order of pairs in the sandbox)
 *
 * Tables are read raw (metatables are ignored and not encoded); a table reached twice
 * (not a cycle) is written twice. Refused: functions, userdata, threads, keys of those
 * types or tables as keys, cycles, nesting deeper than encode_depth_max, strings and
 * tables of 2^32 or more bytes or entries.
 *
 * decode accepts exactly what encode produces: it refuses any other tag, a non-shortest
 * integer or length, a float32, a non-canonical NaN, map keys out of sort_key order or
 * repeated, a float key with an integral value, nil or NaN keys, nil values, a map whose
 * keys are 1..n, an empty array, truncated input and trailing bytes. So decode(b) succeeds
 * only when encode(decode(b)) == b.
 *
 * Inside fsm_snapshot, encode also tells the fsm of each table whose positive integer
 * keys are not a sequence 1..n (fsm_snapshot_holes): `#` on it may answer differently
 * after a restore (fsm.h, "Length"). It is a warning, not an error: refusing the
 * snapshot would stop the log's compaction over a rule the script may never rely on.
 *
 * Budget: encode charges one instruction per table entry and one per 64 bytes of output;
 * decode one per 64 bytes of input and one per table entry. Both are functions of the
 * value alone, so the charge is the same on every replica. Their buffers are Lua userdata,
 * under the memory cap like any other allocation.
 *
 * The encoder is here, the decoder in decode.c.
 */
#include "fsm/encode.h"

#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/decode.h"
#include "fsm/fsm_internal.h"

/* ------------------------------------------------------------------------------------
 * encode
 * ------------------------------------------------------------------------------------ */

struct enc
{
    lua_State *L;
    int slot;       /* stack slot of the buffer userdata */
    uint8_t *data;  /* that userdata's bytes */
    size_t len;     /* bytes written */
    size_t cap;     /* bytes in the userdata */
    size_t charged; /* bytes already charged to the budget */
    int depth;      /* tables open */
    const void *path[encode_depth_max];
    struct enc_key
    {
        const char *s; /* a string key (alive while its table is on the stack), or NULL */
        size_t len;
        lua_Integer i; /* else an integer key (a float key shows as "?") */
        bool is_int;
    } keys[encode_depth_max]; /* keys[d]: where path[d + 1] sits in path[d] */
    bool snapshot;            /* inside fsm_snapshot: note tables with holes */
};

static void enc_charge(struct enc *e)
{
    uint64_t blocks = (uint64_t)(e->len - e->charged) / 64;
    e->charged += (size_t)blocks * 64;
    sandbox_charge(e->L, blocks);
}

/* Makes room for n more bytes: a new userdata twice as big replaces the old one. */
static void enc_reserve(struct enc *e, size_t n)
{
    if (n <= e->cap - e->len) {
        return;
    }
    if (n > SIZE_MAX / 4 - e->len) {
        luaL_error(e->L, "luaraft.encode: output too large");
    }
    size_t cap = e->cap < 256 ? 256 : e->cap;
    while (cap - e->len < n) {
        cap *= 2;
    }
    enc_charge(e);
    uint8_t *data = lua_newuserdatauv(e->L, cap, 0); /* ... new */
    if (e->len > 0) {
        memcpy(data, e->data, e->len);
    }
    lua_replace(e->L, e->slot); /* ... */
    e->data = data;
    e->cap = cap;
}

static void enc_byte(struct enc *e, uint8_t b)
{
    enc_reserve(e, 1);
    e->data[e->len++] = b;
}

/* tag, then the low `bytes` bytes of v big-endian. */
static void enc_tagged(struct enc *e, uint8_t tag, uint64_t v, int bytes)
{
    enc_reserve(e, 1 + (size_t)bytes);
    uint8_t *p = e->data + e->len;
    p[0] = tag;
    for (int i = 0; i < bytes; i++) {
        p[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    }
    e->len += 1 + (size_t)bytes;
}

static void enc_int(struct enc *e, lua_Integer v)
{
    if (v >= 0) {
        uint64_t u = (uint64_t)v;
        if (u < 128) {
            enc_byte(e, (uint8_t)u);
        } else if (u <= UINT8_MAX) {
            enc_tagged(e, 0xcc, u, 1);
        } else if (u <= UINT16_MAX) {
            enc_tagged(e, 0xcd, u, 2);
        } else if (u <= UINT32_MAX) {
            enc_tagged(e, 0xce, u, 4);
        } else {
            enc_tagged(e, 0xcf, u, 8);
        }
    } else if (v >= -32) {
        enc_byte(e, (uint8_t)(0xe0 | (uint8_t)(v + 32)));
    } else if (v >= INT8_MIN) {
        enc_tagged(e, 0xd0, (uint64_t)v, 1);
    } else if (v >= INT16_MIN) {
        enc_tagged(e, 0xd1, (uint64_t)v, 2);
    } else if (v >= INT32_MIN) {
        enc_tagged(e, 0xd2, (uint64_t)v, 4);
    } else {
        enc_tagged(e, 0xd3, (uint64_t)v, 8);
    }
}

static void enc_float(struct enc *e, lua_Number n)
{
    double d = (double)n;
    uint64_t bits = canonical_nan;
    if (!isnan(d)) {
        memcpy(&bits, &d, sizeof bits);
    }
    enc_tagged(e, 0xcb, bits, 8);
}

/* A length or count header: fix form below fix_limit, then the 1/2/4-byte forms. */
static void enc_header(struct enc *e,
                       uint64_t n,
                       uint8_t fix,
                       uint64_t fix_limit,
                       uint8_t tag8,
                       uint8_t tag16,
                       uint8_t tag32,
                       const char *what)
{
    if (n < fix_limit) {
        enc_byte(e, (uint8_t)(fix | n));
    } else if (tag8 != 0 && n <= UINT8_MAX) {
        enc_tagged(e, tag8, n, 1);
    } else if (n <= UINT16_MAX) {
        enc_tagged(e, tag16, n, 2);
    } else if (n <= UINT32_MAX) {
        enc_tagged(e, tag32, n, 4);
    } else {
        luaL_error(e->L, "luaraft.encode: %s too large (2^32 or more)", what);
    }
}

static void enc_string(struct enc *e, const char *s, size_t len)
{
    enc_header(e, len, 0xa0, 32, 0xd9, 0xda, 0xdb, "string");
    enc_reserve(e, len);
    if (len > 0) {
        memcpy(e->data + e->len, s, len);
    }
    e->len += len;
}

static void enc_value(struct enc *e, int idx);

/* A scalar (key or value) collected from a map; a table value is only marked here. */
struct enc_scalar
{
    union {
        lua_Integer i; /* an integer, or a boolean */
        lua_Number n;
        const char *s; /* the table keeps the string alive */
    } u;
    size_t len;
    uint8_t type; /* LUA_T* */
    bool is_int;
};

/* One map entry, 48 bytes: what lua_next gave, read once. */
struct enc_entry
{
    struct enc_scalar key;
    struct enc_scalar value;
};

/* Reads the value at idx into x; false for a type it cannot hold (table and others). */
static bool enc_scalar_init(lua_State *L, int idx, struct enc_scalar *x)
{
    x->type = (uint8_t)lua_type(L, idx);
    x->is_int = false;
    x->len = 0;
    switch (x->type) {
        case LUA_TNUMBER:
            x->is_int = lua_isinteger(L, idx);
            if (x->is_int) {
                x->u.i = lua_tointeger(L, idx);
            } else {
                x->u.n = lua_tonumber(L, idx);
            }
            return true;
        case LUA_TSTRING:
            x->u.s = lua_tolstring(L, idx, &x->len);
            return true;
        case LUA_TBOOLEAN:
            x->u.i = lua_toboolean(L, idx);
            return true;
        default:
            return false;
    }
}

/* The sort_key of a key: what sort_key_init would give for the same Lua value. */
static void enc_sort_key(const struct enc_scalar *x, struct sort_key *k)
{
    memset(k, 0, sizeof *k);
    k->rank = x->type == LUA_TNUMBER ? 0 : (x->type == LUA_TSTRING ? 1 : 2);
    k->is_int = x->is_int;
    if (x->type == LUA_TSTRING) {
        k->s = x->u.s;
        k->len = x->len;
    } else if (x->type == LUA_TNUMBER && !x->is_int) {
        k->n = x->u.n;
    } else {
        k->i = x->u.i;
    }
}

/*
 * What the map sort moves: 24 bytes, most comparisons settled without leaving the array
 * (following a key to its string elsewhere in memory costs a cache miss). hi, lo is a
 * prefix of the key that never orders two keys against sort_key_compare: the rank in the
 * top byte, then for strings the first 15 bytes (zero-padded), for booleans the value.
 * Equal prefixes fall back to sort_key_compare, so the order is exactly that one.
 */
struct enc_order
{
    uint64_t hi;
    uint64_t lo;
    const struct enc_entry *entry; /* set once the entries stop moving */
};

static void enc_order_init(struct enc_order *o, const struct enc_scalar *key)
{
    uint8_t b[16] = {0};
    b[0] = key->type == LUA_TNUMBER ? 0 : (key->type == LUA_TSTRING ? 1 : 2);
    if (key->type == LUA_TSTRING) {
        memcpy(b + 1, key->u.s, key->len < 15 ? key->len : 15);
    } else if (key->type == LUA_TBOOLEAN) {
        b[1] = (uint8_t)key->u.i;
    }
    o->hi = 0;
    o->lo = 0;
    for (int i = 0; i < 8; i++) {
        o->hi = (o->hi << 8) | b[i];
        o->lo = (o->lo << 8) | b[8 + i];
    }
}

static int enc_order_cmp(const void *pa, const void *pb)
{
    const struct enc_order *a = pa;
    const struct enc_order *b = pb;
    if (a->hi != b->hi) {
        return a->hi < b->hi ? -1 : 1;
    }
    if (a->lo != b->lo) {
        return a->lo < b->lo ? -1 : 1;
    }
    struct sort_key ka;
    struct sort_key kb;
    enc_sort_key(&a->entry->key, &ka);
    enc_sort_key(&b->entry->key, &kb);
    return sort_key_compare(&ka, &kb);
}

static void enc_scalar(struct enc *e, const struct enc_scalar *x)
{
    switch (x->type) {
        case LUA_TNUMBER:
            if (x->is_int) {
                enc_int(e, x->u.i);
            } else {
                enc_float(e, x->u.n);
            }
            break;
        case LUA_TSTRING:
            enc_string(e, x->u.s, x->len);
            break;
        default:
            enc_byte(e, x->u.i ? 0xc3 : 0xc2);
            break;
    }
}

/* The map's entries as one pass of lua_next collects them: order and entries for up to
 * cap, in one userdata at stack slot ud that grows by doubling. */
struct enc_entries
{
    size_t cap;
    struct enc_order *order;
    struct enc_entry *entries;
};

static const size_t enc_entry_bytes = sizeof(struct enc_order) + sizeof(struct enc_entry);

static void enc_entries_grow(lua_State *L, struct enc_entries *en, size_t used, int ud)
{
    size_t cap = en->cap < 64 ? 64 : en->cap * 2;
    if (cap > (SIZE_MAX / 2) / enc_entry_bytes) {
        luaL_error(L, "luaraft.encode: table too large");
    }
    struct enc_order *order = lua_newuserdatauv(L, cap * enc_entry_bytes, 0); /* ... new */
    struct enc_entry *entries = (struct enc_entry *)(void *)(order + cap);
    if (used > 0) {
        memcpy(order, en->order, used * sizeof *order);
        memcpy(entries, en->entries, used * sizeof *entries);
    }
    lua_replace(L, ud); /* ... */
    en->cap = cap;
    en->order = order;
    en->entries = entries;
}

/* A table at depth e->depth whose positive integer keys are not 1..k (counted, k the
 * first nil's index less 1): told to the fsm with its key path, when a snapshot runs. */
static void enc_note_holes(struct enc *e)
{
    char path[fsm_holes_path_bytes];
    size_t used = 0;
    path[0] = '\0';
    for (int d = 0; d + 1 < e->depth && used + 1 < sizeof path; d++) {
        const struct enc_key *k = &e->keys[d];
        const char *dot = d > 0 ? "." : "";
        int n = k->s != NULL ? snprintf(path + used, sizeof path - used, "%s%.*s", dot,
                                        (int)(k->len > 64 ? 64 : k->len), k->s)
                : k->is_int
                    ? snprintf(path + used, sizeof path - used, "%s%lld", dot, (long long)k->i)
                    : snprintf(path + used, sizeof path - used, "%s?", dot);
        used += n > 0 ? (size_t)n : 0;
    }
    fsm_note_holes(fsm_from_state(e->L), path);
}

static void enc_set_key(struct enc *e, const struct enc_scalar *key, lua_Integer i)
{
    struct enc_key *k = &e->keys[e->depth - 1];
    k->s = key != NULL && key->type == LUA_TSTRING ? key->u.s : NULL;
    k->len = key != NULL ? key->len : 0;
    k->is_int = key == NULL || (key->type == LUA_TNUMBER && key->is_int);
    k->i = key != NULL ? key->u.i : i;
}

/*
 * A map: one lua_next pass collects the entries (the C API has no cheaper way to walk a
 * table, and each step costs a hash lookup), then they are sorted with enc_order_cmp. A
 * table value is kept in a side table by position, to be encoded after the sort.
 */
static void enc_map(struct enc *e, int t, lua_Integer k)
{
    lua_State *L = e->L;
    lua_pushnil(L); /* ud */
    int ud = lua_gettop(L);
    lua_pushnil(L); /* ud tables */
    int tables = ud + 1;
    bool have_tables = false;
    struct enc_entries en = {0};
    size_t count = 0;
    lua_Integer positive = 0;     /* positive integer keys: k of them make a sequence */
    lua_pushnil(L);               /* ud tables nil */
    while (lua_next(L, t) != 0) { /* ud tables key value */
        if (count == en.cap) {
            enc_entries_grow(L, &en, count, ud);
        }
        struct enc_entry *x = &en.entries[count];
        if (!enc_scalar_init(L, -2, &x->key)) {
            luaL_error(L, "luaraft.encode: cannot encode a %s key", luaL_typename(L, -2));
        }
        enc_order_init(&en.order[count], &x->key); /* the string is in cache now */
        positive += x->key.type == LUA_TNUMBER && x->key.is_int && x->key.u.i > 0;
        if (!enc_scalar_init(L, -1, &x->value)) {
            if (x->value.type != LUA_TTABLE) {
                luaL_error(L, "luaraft.encode: cannot encode a %s", luaL_typename(L, -1));
            }
            if (!have_tables) {
                lua_createtable(L, 0, 0); /* ud tables key value new */
                lua_replace(L, tables);   /* ud tables key value */
                have_tables = true;
            }
            lua_pushvalue(L, -1);                             /* ud tables key value value */
            lua_rawseti(L, tables, (lua_Integer)(count + 1)); /* ud tables key value */
        }
        lua_pop(L, 1); /* ud tables key */
        count++;
    }
    sandbox_charge(L, (uint64_t)count);
    if (positive > k && e->snapshot) {
        enc_note_holes(e);
    }
    enc_header(e, (uint64_t)count, 0x80, 16, 0, 0xde, 0xdf, "table");
    for (size_t i = 0; i < count; i++) {
        en.order[i].entry = &en.entries[i];
    }
    if (count > 1) {
        qsort(en.order, count, sizeof *en.order, enc_order_cmp);
    }
    for (size_t i = 0; i < count; i++) {
        if (i + 8 < count) { /* the entries are in collection order, the strings anywhere */
            const struct enc_entry *ahead = en.order[i + 8].entry;
            __builtin_prefetch(ahead);
            if (ahead->key.type == LUA_TSTRING) {
                __builtin_prefetch(ahead->key.u.s);
            }
        }
        if (i + 4 < count && en.order[i + 4].entry->value.type == LUA_TSTRING) {
            __builtin_prefetch(en.order[i + 4].entry->value.u.s);
        }
        const struct enc_entry *x = en.order[i].entry;
        enc_scalar(e, &x->key);
        if (x->value.type == LUA_TTABLE) {
            lua_Integer pos = (lua_Integer)(x - en.entries) + 1;
            lua_rawgeti(L, tables, pos); /* ud tables value */
            enc_set_key(e, &x->key, 0);
            enc_value(e, -1);
            lua_pop(L, 1); /* ud tables */
        } else {
            enc_scalar(e, &x->value);
        }
    }
    lua_settop(L, ud - 1); /* */
}

/*
 * An array when the keys are exactly 1..n: t[1..k] are not nil up to the first nil, and
 * there are no other keys (counted by a lua_next pass, made only when k > 0).
 */
static void enc_table(struct enc *e, int idx)
{
    lua_State *L = e->L;
    int t = lua_absindex(L, idx);
    sandbox_readonly_unwrap(L, t); /* a query's view of a state table: the table */
    const void *self = lua_topointer(L, t);
    for (int d = 0; d < e->depth; d++) {
        if (e->path[d] == self) {
            luaL_error(L, "luaraft.encode: the table contains itself (a cycle)");
        }
    }
    if (e->depth >= encode_depth_max) {
        luaL_error(L, "luaraft.encode: tables nested deeper than %d", (int)encode_depth_max);
    }
    luaL_checkstack(L, 8, "luaraft.encode");
    e->path[e->depth++] = self;

    lua_Integer k = 0;
    while (lua_rawgeti(L, t, k + 1) != LUA_TNIL) { /* value */
        lua_pop(L, 1);                             /* */
        k++;
    }
    lua_pop(L, 1); /* */
    bool array = false;
    if (k > 0) {
        lua_Integer n = 0;
        lua_pushnil(L); /* nil */
        while (lua_next(L, t) != 0) {
            lua_pop(L, 1); /* key */
            n++;
        }
        array = n == k;
    }
    if (array) {
        sandbox_charge(L, (uint64_t)k);
        enc_header(e, (uint64_t)k, 0x90, 16, 0, 0xdc, 0xdd, "table");
        for (lua_Integer i = 1; i <= k; i++) {
            lua_rawgeti(L, t, i); /* value */
            enc_set_key(e, NULL, i);
            enc_value(e, -1);
            lua_pop(L, 1); /* */
        }
    } else {
        enc_map(e, t, k);
    }
    e->depth--;
}

static void enc_value(struct enc *e, int idx)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
        case LUA_TNIL:
            enc_byte(e, 0xc0);
            break;
        case LUA_TBOOLEAN:
            enc_byte(e, lua_toboolean(L, idx) ? 0xc3 : 0xc2);
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) {
                enc_int(e, lua_tointeger(L, idx));
            } else {
                enc_float(e, lua_tonumber(L, idx));
            }
            break;
        case LUA_TSTRING: {
            size_t len = 0;
            const char *s = lua_tolstring(L, idx, &len);
            enc_string(e, s, len);
            break;
        }
        case LUA_TTABLE:
            enc_table(e, idx);
            break;
        default:
            luaL_error(L, "luaraft.encode: cannot encode a %s", luaL_typename(L, idx));
    }
}

/* luaraft.encode(value) -> string */
static int encode_lua(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1); /* v */
    lua_pushnil(L);   /* v buffer-slot */
    struct fsm *f = fsm_from_state(L);
    struct enc e = {.L = L, .slot = 2};
    e.snapshot =
        f->stream_box != NULL && f->stream_box->s != NULL && f->stream_box->s->write != NULL;
    enc_value(&e, 1);
    enc_charge(&e);
    lua_pushlstring(L, e.len > 0 ? (const char *)e.data : "", e.len); /* v buf s */
    return 1;
}

/* ------------------------------------------------------------------------------------
 * keys, and the table
 * ------------------------------------------------------------------------------------ */

/* luaraft.keys(t) -> {k1, k2, ...} in sort_key order */
static int keys_lua(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);               /* t */
    sandbox_readonly_unwrap(L, 1);  /* a query's view of a state table: the table */
    sandbox_push_sorted_keys(L, 1); /* t keys */
    return 1;
}

void encode_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"encode", encode_lua},
        {"decode", decode_lua},
        {"keys", keys_lua},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);                   /* luaraft */
    lua_getglobal(L, "pairs");               /* luaraft pairs */
    lua_setfield(L, -2, "sorted_pairs");     /* luaraft */
    lua_pushinteger(L, encode_depth_max);    /* luaraft n */
    lua_setfield(L, -2, "encode_depth_max"); /* luaraft */
    lua_setglobal(L, "luaraft");             /* */
}
