/*
 * M.query runs read-only (issue 10): a read served by one node must not change the state,
 * or that node diverges from the others.
 *
 * The mechanism: read-only proxies, made as the query reaches the state, and variables
 * rolled back. Stock Lua has no hook on table writes, and an assignment to a key a table
 * already has runs no metamethod, so the query must never hold a table of the state
 * itself, only an empty stand-in whose metatable reads through to it (__index, __len,
 * __pairs and the other metamethods, forwarded) and refuses every write (__newindex):
 * t.k = v, rawset, setmetatable, table.insert and the other table functions (which go
 * through the metamethods) fail at once with "M.query must not change state".
 *
 * A query reaches the state through the upvalues of the functions it runs: the module
 * table, the locals a script keeps its state in, _ENV and through it the libraries. A
 * call hook sees every Lua function before its first instruction; the first time in a
 * query that a function made before the query runs, each of its upvalues made before the
 * query is recorded and, if it holds a table, set to that table's proxy. What was made
 * during the query is the query's own, writable: the allocator notes every table,
 * closure and upvalue allocated while the query runs. At the end every recorded upvalue
 * gets its value back, so an assignment the query made to one (kv.lua keeps its clock in
 * one, `T = ctx.time_ms`) lasts for the query only.
 *
 * The raw readers see through a proxy: rawget, rawlen, next, pairs, getmetatable,
 * luaraft.encode and luaraft.keys, and the reply encoder. A proxy is the same for one
 * table throughout a query, so == and table keys behave as on the tables themselves.
 *
 * Why this way: a copy or a hash of the state before and after costs in proportion to
 * the state on every read, and a fork per read a page-table copy. This costs in
 * proportion to what the query touches: the functions it calls, the tables it reads.
 * Limits: a C closure made before the query keeps its own state (a pairs iterator kept
 * in the state moves on, though what it yields is read-only; so does string.gmatch's);
 * an __index chain is followed up to 2000 tables as Lua does; a table of the state cannot
 * be the metatable of a query's own table (the VM would read its fields raw); errors
 * about a proxy lack the variable's name; the state's __eq, __lt and arithmetic
 * metamethods are looked up on table operands only.
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm_internal.h"

const char sandbox_readonly_text[] = "M.query must not change state";

static const char target_key = 't';   /* a proxy's field (light userdata key): its table */
static const char registry_key = 'r'; /* registry: {mt, records, cache} */

enum {
    slot_mt = 1,  /* the proxies' metatable */
    slot_records, /* fn, n, original value, for each upvalue the query recorded */
    slot_cache,   /* table -> its proxy, weak values: a proxy lives while it is used */
    slot_count
};

enum { tag_upval = LUA_NUMTYPES }; /* LUA_TUPVAL (lobject.h): an upvalue's allocation */

/* ------------------------------------------------------------------------------------
 * Sets of addresses (open addressing, 0 is free): what the query made, the functions
 * and upvalues it has looked at.
 * ------------------------------------------------------------------------------------ */

static size_t ptrset_slot(const struct fsm_ptrset *s, uintptr_t p)
{
    size_t i = (size_t)((p >> 4) * 0x9E3779B97F4A7C15u) & (s->cap - 1);
    while (s->slots[i] != 0 && s->slots[i] != p) {
        i = (i + 1) & (s->cap - 1);
    }
    return i;
}

static bool ptrset_has(const struct fsm_ptrset *s, const void *p)
{
    return s->count > 0 && s->slots[ptrset_slot(s, (uintptr_t)p)] == (uintptr_t)p;
}

static bool ptrset_add(struct fsm_ptrset *s, const void *p)
{
    if (2 * (s->count + 1) > s->cap) {
        size_t cap = s->cap > 0 ? 2 * s->cap : 256;
        uintptr_t *slots = calloc(cap, sizeof *slots);
        if (slots == NULL) {
            return false;
        }
        struct fsm_ptrset grown = {.slots = slots, .cap = cap, .count = s->count};
        for (size_t i = 0; i < s->cap; i++) {
            if (s->slots[i] != 0) {
                slots[ptrset_slot(&grown, s->slots[i])] = s->slots[i];
            }
        }
        free(s->slots);
        *s = grown;
    }
    size_t i = ptrset_slot(s, (uintptr_t)p);
    if (s->slots[i] == 0) {
        s->slots[i] = (uintptr_t)p;
        s->count++;
    }
    return true;
}

static void ptrset_clear(struct fsm_ptrset *s)
{
    if (s->count > 0) {
        memset(s->slots, 0, s->cap * sizeof *s->slots);
        s->count = 0;
    }
}

void sandbox_readonly_free(struct fsm *f)
{
    free(f->fresh.slots);
    free(f->scanned.slots);
    free(f->seen.slots);
}

bool sandbox_readonly_note(struct fsm *f, const void *block, size_t tag)
{
    if (tag != LUA_TTABLE && tag != LUA_TFUNCTION && tag != tag_upval) {
        return true;
    }
    return ptrset_add(&f->fresh, block);
}

enum { index_chain_max = 2000 };

static void readonly_install(lua_State *L);

static void push_slot(lua_State *L, int slot)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &registry_key); /* ro */
    lua_rawgeti(L, -1, slot);                         /* ro value */
    lua_remove(L, -2);                                /* value */
}

bool sandbox_readonly_unwrap(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        return false;
    }
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, idx, &target_key) == LUA_TNIL) { /* target | nil */
        lua_pop(L, 1);
        return false;
    }
    lua_replace(L, idx);
    return true;
}

void sandbox_readonly_check_write(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TTABLE) {
        bool proxy = lua_rawgetp(L, idx, &target_key) != LUA_TNIL;
        lua_pop(L, 1);
        if (proxy && !fsm_from_state(L)->readonly) { /* a library's or the globals' */
            lua_pushglobaltable(L);
            bool globals = lua_rawequal(L, idx, -1);
            lua_pop(L, 1);
            luaL_error(L, "%s", globals ? "the globals table is locked" : sandbox_frozen_text);
        }
        if (proxy) {
            luaL_error(L, "%s (a write into a table of the state)", sandbox_readonly_text);
        }
    }
}

void sandbox_readonly_mark(lua_State *L, int proxy, int target)
{
    proxy = lua_absindex(L, proxy);
    lua_pushvalue(L, target);           /* target */
    lua_rawsetp(L, proxy, &target_key); /* */
}

/*
 * Pushes the proxy of the table at t: the one in use if there is one, so that a table has
 * one proxy throughout a query. Whether one is still in use depends on when the collector
 * last ran, so making one is neither charged nor counted against the memory budget or
 * limit (host_alloc): the charge is the same either way, and the same on every replica,
 * and a query still reads a state that fills the memory limit.
 */
static void push_proxy(lua_State *L, int t)
{
    struct fsm *f = fsm_from_state(L);
    t = lua_absindex(L, t);
    sandbox_charge(L, 1);
    push_slot(L, slot_cache);            /* cache */
    lua_pushvalue(L, t);                 /* cache t */
    if (lua_rawget(L, -2) != LUA_TNIL) { /* cache proxy */
        lua_remove(L, -2);               /* proxy */
        return;
    }
    lua_pop(L, 1); /* cache */
    f->host_alloc = true;
    lua_createtable(L, 0, 1);        /* cache proxy */
    lua_pushvalue(L, t);             /* cache proxy t */
    lua_rawsetp(L, -2, &target_key); /* cache proxy */
    push_slot(L, slot_mt);           /* cache proxy mt */
    lua_setmetatable(L, -2);         /* cache proxy */
    lua_pushvalue(L, t);             /* cache proxy t */
    lua_pushvalue(L, -2);            /* cache proxy t proxy */
    lua_rawset(L, -4);               /* cache proxy */
    lua_remove(L, -2);               /* proxy */
    f->host_alloc = false;
}

static void append(lua_State *L, struct fsm *f, int list, int value)
{
    lua_pushvalue(L, value);
    f->host_alloc = true;
    lua_rawseti(L, list, (lua_Integer)++f->records_count);
    f->host_alloc = false;
}

/*
 * The call hook's part (sandbox_limits.c): the Lua function about to run, if it was made
 * before the query and not looked at yet, has its upvalues made before the query
 * recorded, and those holding a table set to its proxy. [-0, +0, e]
 */
void sandbox_readonly_called(lua_State *L, lua_Debug *ar)
{
    struct fsm *f = fsm_from_state(L);
    lua_getinfo(L, "f", ar); /* fn */
    int fn = lua_gettop(L);
    const void *self = lua_topointer(L, fn);
    if (lua_iscfunction(L, fn) || ptrset_has(&f->fresh, self) || ptrset_has(&f->scanned, self)) {
        lua_pop(L, 1);
        return;
    }
    if (!ptrset_add(&f->scanned, self)) {
        luaL_error(L, "not enough memory");
    }
    luaL_checkstack(L, 6, "M.query");
    push_slot(L, slot_records); /* fn records */
    int records = lua_gettop(L);
    size_t before = f->records_count;
    for (int i = 1; lua_getupvalue(L, fn, i) != NULL; i++) { /* fn records v */
        int v = lua_gettop(L);
        const void *id = lua_upvalueid(L, fn, i);
        if (ptrset_has(&f->fresh, id) || ptrset_has(&f->seen, id)) {
            lua_pop(L, 1);
            continue;
        }
        append(L, f, records, fn);
        lua_pushinteger(L, i);
        append(L, f, records, lua_gettop(L));
        lua_pop(L, 1);
        append(L, f, records, v);
        if (!ptrset_add(&f->seen, id)) { /* recorded first: end() restores it either way */
            luaL_error(L, "not enough memory");
        }
        if (lua_type(L, v) == LUA_TTABLE && !ptrset_has(&f->fresh, lua_topointer(L, v))) {
            push_proxy(L, v);         /* fn records v proxy */
            lua_setupvalue(L, fn, i); /* fn records v */
        }
        lua_pop(L, 1); /* fn records */
    }
    lua_pop(L, 2); /* */
    sandbox_charge(L, (uint64_t)(f->records_count - before) / 3 + 1);
}

void sandbox_readonly_wrap(lua_State *L, int idx)
{
    struct fsm *f = fsm_from_state(L);
    if (!f->readonly) {
        return;
    }
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TTABLE && !ptrset_has(&f->fresh, lua_topointer(L, idx))) {
        lua_rawgetp(L, idx, &target_key); /* target | nil */
        bool proxy = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (!proxy) {
            push_proxy(L, idx);  /* proxy */
            lua_replace(L, idx); /* */
        }
    }
}

/* Pushes the metamethod event of the state table behind the proxy at idx, made safe to
 * call; returns false (pushing nothing) when it has none. */
static bool push_target_mm(lua_State *L, int idx, const char *event)
{
    lua_rawgetp(L, idx, &target_key); /* target */
    if (luaL_getmetafield(L, -1, event) == LUA_TNIL) {
        lua_pop(L, 1);
        return false;
    }
    lua_remove(L, -2); /* mm: the call hook looks at it when it runs */
    return true;
}

/* The metamethod event for the operand at idx: its table's if it is a proxy, its own if
 * it is another table. */
static bool push_operand_mm(lua_State *L, int idx, const char *event)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        return false;
    }
    lua_rawgetp(L, idx, &target_key); /* target | nil */
    bool proxy = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (proxy) {
        return push_target_mm(L, idx, event);
    }
    return luaL_getmetafield(L, idx, event) != LUA_TNIL;
}

static int proxy_index(lua_State *L)
{
    lua_settop(L, 2);               /* p k */
    sandbox_readonly_unwrap(L, 2);  /* p k' */
    lua_rawgetp(L, 1, &target_key); /* p k' h */
    for (int loop = 0; loop < index_chain_max; loop++) {
        lua_pushvalue(L, 2);                /* p k h k */
        if (lua_rawget(L, 3) != LUA_TNIL) { /* p k h v */
            sandbox_readonly_wrap(L, -1);
            return 1;
        }
        lua_pop(L, 1); /* p k h */
        if (luaL_getmetafield(L, 3, "__index") == LUA_TNIL) {
            lua_pushnil(L);
            return 1;
        }
        int type = lua_type(L, -1); /* p k h mm */
        if (type == LUA_TTABLE) {
            lua_replace(L, 3); /* p k mm */
            continue;
        }
        if (type == LUA_TFUNCTION) {
            push_proxy(L, 3);    /* p k h mm proxy(h) */
            lua_pushvalue(L, 2); /* p k h mm proxy(h) k */
            lua_call(L, 2, 1);   /* p k h v */
            return 1;
        }
        lua_pushvalue(L, 2); /* p k h mm k */
        lua_gettable(L, -2); /* p k h mm v */
        return 1;
    }
    return luaL_error(L, "'__index' chain too long; possible loop");
}

static int proxy_newindex(lua_State *L)
{
    return luaL_error(L, "%s (a write into a table of the state)", sandbox_readonly_text);
}

/* Calls the state table's metamethod event on the proxy at 1 for results values;
 * returns false (pushing nothing) when it has none. */
static bool call_target_mm(lua_State *L, const char *event, int results)
{
    if (!push_target_mm(L, 1, event)) {
        return false;
    }
    lua_pushvalue(L, 1);     /* p ... mm p */
    lua_call(L, 1, results); /* p ... results */
    return true;
}

static int proxy_len(lua_State *L)
{
    if (call_target_mm(L, "__len", 1)) {
        return 1;
    }
    lua_rawgetp(L, 1, &target_key);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* Upvalue 1: the iterator pairs gave for the table behind the proxy. */
static int proxy_pairs_step(lua_State *L)
{
    lua_settop(L, 2);                      /* p k */
    lua_pushvalue(L, lua_upvalueindex(1)); /* p k iter */
    lua_rawgetp(L, 1, &target_key);        /* p k iter t */
    lua_pushvalue(L, 2);                   /* p k iter t k */
    lua_call(L, 2, 2);                     /* p k k' v */
    sandbox_readonly_wrap(L, -1);
    return 2;
}

static int proxy_pairs(lua_State *L)
{
    if (call_target_mm(L, "__pairs", 3)) {
        return 3;
    }
    lua_settop(L, 1);                         /* p */
    lua_pushcfunction(L, sandbox_pairs);      /* p pairs */
    lua_rawgetp(L, 1, &target_key);           /* p pairs t */
    lua_call(L, 1, 1);                        /* p iter */
    lua_pushcclosure(L, proxy_pairs_step, 1); /* p step */
    lua_pushvalue(L, 1);                      /* p step p */
    lua_pushnil(L);                           /* p step p nil */
    return 3;
}

static int proxy_tostring(lua_State *L)
{
    if (call_target_mm(L, "__tostring", 1)) {
        return 1;
    }
    lua_rawgetp(L, 1, &target_key); /* p t */
    if (luaL_getmetafield(L, -1, "__name") != LUA_TSTRING) {
        lua_pushliteral(L, "table");
    }
    return 1;
}

static int proxy_call(lua_State *L)
{
    if (!push_target_mm(L, 1, "__call")) {
        return luaL_error(L, "attempt to call a table value");
    }
    lua_insert(L, 1); /* mm p args... */
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Upvalue 1: the event (the operators of two operands; unary ones get the operand twice,
 * as Lua passes it). The first operand's metamethod, else the second's (manual §2.4). */
static int proxy_operator(lua_State *L)
{
    const char *event = lua_tostring(L, lua_upvalueindex(1));
    lua_settop(L, 2);
    if (push_operand_mm(L, 1, event) || push_operand_mm(L, 2, event)) { /* a b mm */
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_call(L, 2, 1);
        return 1;
    }
    if (strcmp(event, "__eq") == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    const char *what = strcmp(event, "__concat") == 0 ? "concatenate a table value"
                       : event[2] == 'l'              ? "compare two table values"
                                                      : "perform arithmetic on a table value";
    return luaL_error(L, "attempt to %s", what);
}

void sandbox_readonly_open(lua_State *L)
{
    static const char *const operators[] = {
        "__add", "__sub",  "__mul", "__div", "__mod",  "__pow",    "__unm", "__idiv", "__band",
        "__bor", "__bxor", "__shl", "__shr", "__bnot", "__concat", "__eq",  "__lt",   "__le",
    };
    lua_createtable(L, slot_count, 0); /* ro */
    lua_createtable(L, 0, 24);         /* ro mt */
    static const luaL_Reg fields[] = {
        {"__index", proxy_index},
        {"__newindex", proxy_newindex},
        {"__len", proxy_len},
        {"__pairs", proxy_pairs},
        {"__tostring", proxy_tostring},
        {"__call", proxy_call},
        {NULL, NULL},
    };
    luaL_setfuncs(L, fields, 0);
    for (size_t i = 0; i < sizeof operators / sizeof operators[0]; i++) {
        lua_pushstring(L, operators[i]);        /* ro mt event */
        lua_pushcclosure(L, proxy_operator, 1); /* ro mt fn */
        lua_setfield(L, -2, operators[i]);      /* ro mt */
    }
    lua_pushboolean(L, 0);              /* ro mt false */
    lua_setfield(L, -2, "__metatable"); /* ro mt */
    lua_rawseti(L, -2, slot_mt);        /* ro */
    lua_newtable(L);                    /* ro records */
    lua_rawseti(L, -2, slot_records);   /* ro */
    lua_newtable(L);                    /* ro cache */
    lua_createtable(L, 0, 1);           /* ro cache mt */
    lua_pushliteral(L, "v");            /* ro cache mt "v" */
    lua_setfield(L, -2, "__mode");      /* ro cache mt: the host's own, never a script's */
    lua_setmetatable(L, -2);            /* ro cache */
    lua_rawseti(L, -2, slot_cache);     /* ro */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &registry_key); /* */
    readonly_install(L);
}

void sandbox_readonly_begin(lua_State *L)
{
    struct fsm *f = fsm_from_state(L);
    f->readonly = true;
    f->host_alloc = false;
    f->records_count = 0;
    lua_Hook hook = lua_gethook(L);
    int mask = lua_gethookmask(L);
    lua_sethook(L, hook != NULL ? hook : sandbox_limits_hook, mask | LUA_MASKCALL,
                mask & LUA_MASKCOUNT ? lua_gethookcount(L) : 0);
}

void sandbox_readonly_end(lua_State *L)
{
    struct fsm *f = fsm_from_state(L);
    if (!f->readonly) {
        return;
    }
    f->readonly = false;
    f->host_alloc = false;
    ptrset_clear(&f->fresh);
    ptrset_clear(&f->scanned);
    ptrset_clear(&f->seen);
    push_slot(L, slot_records); /* records */
    int records = lua_gettop(L);
    lua_Integer n = (lua_Integer)f->records_count;
    for (lua_Integer i = 1; i + 2 <= n; i += 3) {
        lua_rawgeti(L, records, i);     /* records fn */
        lua_rawgeti(L, records, i + 1); /* records fn n */
        int up = (int)lua_tointeger(L, -1);
        lua_rawgeti(L, records, i + 2); /* records fn n original */
        lua_setupvalue(L, -3, up);      /* records fn n */
        lua_pop(L, 2);                  /* records */
    }
    for (lua_Integer i = 1; i <= n; i++) { /* existing slots: no allocation */
        lua_pushnil(L);
        lua_rawseti(L, records, i);
    }
    f->records_count = 0;
    lua_pop(L, 1); /* */
}

/* rawget(t, k): through a proxy, the table's value, read-only. */
static int readonly_rawget(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    bool proxy = sandbox_readonly_unwrap(L, 1);
    sandbox_readonly_unwrap(L, 2);
    lua_rawget(L, 1);
    if (proxy) {
        sandbox_readonly_wrap(L, -1);
    }
    return 1;
}

/* rawlen(v): through a proxy, the table's. */
static int readonly_rawlen(lua_State *L)
{
    int t = lua_type(L, 1);
    luaL_argexpected(L, t == LUA_TTABLE || t == LUA_TSTRING, 1, "table or string");
    sandbox_readonly_unwrap(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
    return 1;
}

static void readonly_install(lua_State *L)
{
    lua_pushglobaltable(L);                /* G */
    lua_pushcfunction(L, readonly_rawget); /* G fn */
    lua_setfield(L, -2, "rawget");         /* G */
    lua_pushcfunction(L, readonly_rawlen); /* G fn */
    lua_setfield(L, -2, "rawlen");         /* G */
    lua_pop(L, 1);                         /* */
}
