/*
 * luaraft.store: the LMDB store and the snapshot files as a Lua module, for busted specs
 * (round trips, reopen, map full, crash safety). Each store object runs its own private
 * uv_loop, so a spec drives it synchronously.
 *
 *   local store = require("luaraft.store")
 *
 *   store.open(dir, {map_bytes =}) -> st | nil, message, code
 *   st:load() -> {term =, vote =, snapshot_index =, snapshot_term =, has_config =,
 *                 config = {{id =, voter =}, ...}, first_index =, last_index =,
 *                 script = {name =, hash =, since =} or nil}
 *                | nil, message, code
 *   st:submit{hard_state = {term =, vote =}, config = {{id =, voter =}, ...},
 *             script = {name =, hash =, since =},
 *             snapshot = {index =, term =}, entries = {first =, {term =, type =, data =}, ...},
 *             compact_to =} -> true (queued) | nil, message, code
 *   st:run() -> {status, ...}: runs the loop until every queued request's callback ran;
 *               the statuses of those callbacks in the order they ran (0 = durable)
 *   st:read(first, last) -> {{index =, term =, type =, data =}, ...} | nil, message, code
 *   st:stats() -> {requests =, batches =, txns =}
 *   st:close() (also __gc and __close): finishes the queue, closes LMDB and the loop
 *
 *   store.snapfile_write(dir, index, term, data [, script [, text]]) -> path | nil, message
 *     (text: the script's text, which makes the file version 4)
 *       script = {name =, hash =, since =}; by default {name = "spec.lua", hash = 64 zeros}
 *   store.snapfile_latest(dir) -> index, term, path | nil, code
 *   store.snapfile_verify(path) -> body_bytes | nil, code
 *   store.snapfile_inspect(path) -> {version =, script = {...} or nil, body_offset =,
 *                                    body_bytes =, text = (version 4)} | nil, code
 *   store.snapfile_prune(dir, index)
 *   store.snapfile_path(dir, index, term) -> path | nil, message, code
 *   store.snapfile_cleanup(dir) -> removed | nil, message, code
 *   store.strerror(code) -> message
 *   store.OK, store.EIO, store.EFULL, store.ENOMEM, store.ECORRUPT, store.ECLOSED,
 *   store.EINVAL, store.SNAPFILE_EIO, store.SNAPFILE_ECORRUPT, store.SNAPFILE_ENOENT
 *
 * A script's hash is 64 hex digits in Lua (SCRIPT_HASH_BYTES bytes in C).
 *
 * Never use a store object in a forked child (see store.c).
 */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "store/snapfile.h"
#include "store/store.h"
#include "util/assert.h"

#define STORE_MT "luaraft.store.store"

struct store_ud
{
    uv_loop_t loop;
    bool loop_open;
    struct store *store; /* NULL once closed */
    bool closed;
    unsigned outstanding; /* submitted, callback not run yet */
    int *statuses;        /* callbacks run since the last run() */
    size_t n_statuses;
    size_t cap_statuses; /* >= n_statuses + outstanding, so callbacks never allocate */
};

static struct store_ud *check_store(lua_State *L)
{
    struct store_ud *u = luaL_checkudata(L, 1, STORE_MT);
    if (u->store == NULL) {
        luaL_error(L, "store is closed");
    }
    return u;
}

static void store_lua_done_cb(void *arg, int status)
{
    struct store_ud *u = arg;
    lr_assert(u->outstanding > 0);
    lr_assert(u->n_statuses < u->cap_statuses);
    u->statuses[u->n_statuses++] = status;
    u->outstanding--;
}

static void store_lua_closed_cb(void *arg)
{
    struct store_ud *u = arg;
    u->closed = true;
}

static void store_ud_close(struct store_ud *u)
{
    if (u->store != NULL) {
        u->closed = false;
        store_close(u->store, store_lua_closed_cb, u);
        u->store = NULL;
        while (!u->closed) {
            uv_run(&u->loop, UV_RUN_ONCE);
        }
    }
    if (u->loop_open) {
        uv_run(&u->loop, UV_RUN_DEFAULT);
        lr_assert(uv_loop_close(&u->loop) == 0);
        u->loop_open = false;
    }
    free(u->statuses);
    u->statuses = NULL;
    u->n_statuses = 0;
    u->cap_statuses = 0;
}

static int store_lua_close(lua_State *L)
{
    struct store_ud *u = luaL_checkudata(L, 1, STORE_MT);
    store_ud_close(u);
    return 0;
}

static int push_error(lua_State *L, const char *message, int code)
{
    lua_pushnil(L);
    lua_pushstring(L, message);
    lua_pushinteger(L, code);
    return 3;
}

static lua_Integer field_integer(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name); /* v */
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum && !lua_isnil(L, -1)) {
        luaL_error(L, "field %s must be an integer", name);
    }
    lua_pop(L, 1); /* */
    return v;
}

/* {name =, hash = hex, since =} at index t into id; raises a Lua error when malformed. */
static void check_identity(lua_State *L, int t, struct script_identity *id)
{
    luaL_checktype(L, t, LUA_TTABLE);
    memset(id, 0, sizeof *id);
    lua_getfield(L, t, "name"); /* name */
    size_t len;
    const char *name = luaL_checklstring(L, -1, &len);
    if (len > SCRIPT_NAME_BYTES_MAX) {
        luaL_error(L, "script name over %d bytes", SCRIPT_NAME_BYTES_MAX);
    }
    memcpy(id->name, name, len + 1);
    lua_pop(L, 1);              /* */
    lua_getfield(L, t, "hash"); /* hash */
    const char *hex = luaL_checklstring(L, -1, &len);
    if (len != 2 * SCRIPT_HASH_BYTES) {
        luaL_error(L, "script hash must be %d hex digits", 2 * SCRIPT_HASH_BYTES);
    }
    for (int i = 0; i < SCRIPT_HASH_BYTES; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            luaL_error(L, "script hash must be hex");
        }
        id->hash[i] = (unsigned char)v;
    }
    lua_pop(L, 1); /* */
    id->since = (raft_index)field_integer(L, t, "since");
}

static void push_identity(lua_State *L, const struct script_identity *id)
{
    char hex[SCRIPT_HASH_HEX_BYTES];
    script_identity_hex(id, hex);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, id->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "hash");
    lua_pushinteger(L, (lua_Integer)id->since);
    lua_setfield(L, -2, "since");
}

static int store_lua_open(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    lua_Integer map_bytes = 64 * 1024 * 1024;
    if (lua_istable(L, 2)) {
        lua_Integer m = field_integer(L, 2, "map_bytes");
        if (m > 0) {
            map_bytes = m;
        }
    }
    struct store_ud *u = lua_newuserdatauv(L, sizeof *u, 0); /* u */
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, STORE_MT);
    int rv = uv_loop_init(&u->loop);
    if (rv != 0) {
        return push_error(L, uv_strerror(rv), STORE_EIO);
    }
    u->loop_open = true;
    struct store_options o = {.dir = dir, .map_bytes = (uint64_t)map_bytes};
    char errmsg[512] = "";
    rv = store_open(&u->store, &u->loop, &o, errmsg, sizeof errmsg);
    if (rv != 0) {
        u->store = NULL;
        store_ud_close(u);
        return push_error(L, errmsg, rv);
    }
    return 1;
}

static int store_lua_load(lua_State *L)
{
    struct store_ud *u = check_store(L);
    struct store_state st;
    char errmsg[512] = "";
    int rv = store_load(u->store, &st, errmsg, sizeof errmsg);
    if (rv != 0) {
        return push_error(L, errmsg, rv);
    }
    lua_createtable(L, 0, 8); /* t */
    lua_pushinteger(L, (lua_Integer)st.term);
    lua_setfield(L, -2, "term");
    lua_pushinteger(L, (lua_Integer)st.vote);
    lua_setfield(L, -2, "vote");
    lua_pushinteger(L, (lua_Integer)st.snapshot_index);
    lua_setfield(L, -2, "snapshot_index");
    lua_pushinteger(L, (lua_Integer)st.snapshot_term);
    lua_setfield(L, -2, "snapshot_term");
    lua_pushboolean(L, st.has_config);
    lua_setfield(L, -2, "has_config");
    lua_createtable(L, (int)st.n_servers, 0); /* t, config */
    for (unsigned i = 0; i < st.n_servers; i++) {
        lua_createtable(L, 0, 2); /* t, config, server */
        lua_pushinteger(L, (lua_Integer)st.servers[i].id);
        lua_setfield(L, -2, "id");
        lua_pushboolean(L, st.servers[i].voter);
        lua_setfield(L, -2, "voter");
        lua_rawseti(L, -2, (lua_Integer)i + 1); /* t, config */
    }
    lua_setfield(L, -2, "config"); /* t */
    lua_pushinteger(L, (lua_Integer)st.first_index);
    lua_setfield(L, -2, "first_index");
    lua_pushinteger(L, (lua_Integer)st.last_index);
    lua_setfield(L, -2, "last_index");
    if (st.has_script) {
        push_identity(L, &st.script);
        lua_setfield(L, -2, "script");
    }
    return 1;
}

static int store_lua_submit(lua_State *L)
{
    struct store_ud *u = check_store(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct store_write w;
    memset(&w, 0, sizeof w);
    struct raft_server servers[RAFT_SERVERS_MAX];

    if (lua_getfield(L, 2, "hard_state") == LUA_TTABLE) { /* hs */
        w.hard_state = true;
        w.term = (raft_term)field_integer(L, -1, "term");
        w.vote = (raft_id)field_integer(L, -1, "vote");
    }
    lua_pop(L, 1); /* */

    if (lua_getfield(L, 2, "config") == LUA_TTABLE) { /* cfg */
        lua_Integer n = luaL_len(L, -1);
        if (n > RAFT_SERVERS_MAX) {
            return luaL_error(L, "config has more than %d servers", RAFT_SERVERS_MAX);
        }
        w.config = true;
        w.n_servers = (unsigned)n;
        w.servers = servers;
        for (lua_Integer i = 0; i < n; i++) {
            lua_geti(L, -1, i + 1); /* cfg, server */
            luaL_checktype(L, -1, LUA_TTABLE);
            servers[i].id = (raft_id)field_integer(L, -1, "id");
            lua_getfield(L, -1, "voter"); /* cfg, server, voter */
            servers[i].voter = lua_toboolean(L, -1);
            lua_pop(L, 2); /* cfg */
        }
    }
    lua_pop(L, 1); /* */

    struct script_identity script;
    if (lua_getfield(L, 2, "script") == LUA_TTABLE) { /* script */
        check_identity(L, -1, &script);
        w.script = &script;
    }
    lua_pop(L, 1); /* */

    if (lua_getfield(L, 2, "snapshot") == LUA_TTABLE) { /* snap */
        w.snapshot = true;
        w.snapshot_index = (raft_index)field_integer(L, -1, "index");
        w.snapshot_term = (raft_term)field_integer(L, -1, "term");
    }
    lua_pop(L, 1); /* */

    if (lua_getfield(L, 2, "entries") == LUA_TTABLE) { /* entries */
        lua_Integer n = luaL_len(L, -1);
        w.entries = true;
        w.first = (raft_index)field_integer(L, -1, "first");
        w.n = (uint32_t)n;
        /* Owned by Lua, so an error below leaks nothing. */
        struct raft_entry *e =
            lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *e, 0); /* entries, ud */
        for (lua_Integer i = 0; i < n; i++) {
            lua_geti(L, -2, i + 1); /* entries, ud, entry */
            luaL_checktype(L, -1, LUA_TTABLE);
            e[i].term = (raft_term)field_integer(L, -1, "term");
            e[i].type = (uint32_t)field_integer(L, -1, "type");
            lua_getfield(L, -1, "data"); /* entries, ud, entry, data */
            size_t len = 0;
            const char *data = lua_isnil(L, -1) ? "" : luaL_checklstring(L, -1, &len);
            /* The string stays alive: the entries table on the stack holds it. */
            e[i].buf = data;
            e[i].len = (uint32_t)len;
            lua_pop(L, 2); /* entries, ud */
        }
        w.e = e;
    }
    w.compact_to = (raft_index)field_integer(L, 2, "compact_to");

    if (u->n_statuses + u->outstanding + 1 > u->cap_statuses) {
        size_t cap = u->cap_statuses == 0 ? 16 : u->cap_statuses * 2;
        int *grown = realloc(u->statuses, cap * sizeof *grown);
        if (grown == NULL) {
            return luaL_error(L, "out of memory");
        }
        u->statuses = grown;
        u->cap_statuses = cap;
    }
    int rv = store_submit(u->store, &w, store_lua_done_cb, u);
    if (rv != 0) {
        return push_error(L, store_strerror(rv), rv);
    }
    u->outstanding++;
    lua_pushboolean(L, 1);
    return 1;
}

static int store_lua_run(lua_State *L)
{
    struct store_ud *u = check_store(L);
    while (u->outstanding > 0) {
        uv_run(&u->loop, UV_RUN_ONCE);
    }
    lua_createtable(L, (int)u->n_statuses, 0); /* list */
    for (size_t i = 0; i < u->n_statuses; i++) {
        lua_pushinteger(L, u->statuses[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    u->n_statuses = 0;
    return 1;
}

static int store_lua_read_fn(void *arg, raft_index index, const struct raft_entry *e)
{
    lua_State *L = arg;
    lua_createtable(L, 0, 4); /* list, entry */
    lua_pushinteger(L, (lua_Integer)index);
    lua_setfield(L, -2, "index");
    lua_pushinteger(L, (lua_Integer)e->term);
    lua_setfield(L, -2, "term");
    lua_pushinteger(L, (lua_Integer)e->type);
    lua_setfield(L, -2, "type");
    lua_pushlstring(L, e->buf, e->len);
    lua_setfield(L, -2, "data");
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1); /* list */
    return 0;
}

static int store_lua_read(lua_State *L)
{
    struct store_ud *u = check_store(L);
    lua_Integer first = luaL_checkinteger(L, 2);
    lua_Integer last = luaL_checkinteger(L, 3);
    luaL_argcheck(L, first >= 1, 2, "first must be >= 1");
    lua_settop(L, 3);
    lua_newtable(L); /* list */
    int rv = store_read(u->store, (raft_index)first, (raft_index)last, store_lua_read_fn, L);
    if (rv != 0) {
        return push_error(L, store_strerror(rv), rv);
    }
    return 1;
}

static int store_lua_stats(lua_State *L)
{
    struct store_ud *u = check_store(L);
    struct store_stats st;
    store_stats(u->store, &st);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)st.requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, (lua_Integer)st.batches);
    lua_setfield(L, -2, "batches");
    lua_pushinteger(L, (lua_Integer)st.txns);
    lua_setfield(L, -2, "txns");
    return 1;
}

static int store_lua_snapfile_write(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    lua_Integer index = luaL_checkinteger(L, 2);
    lua_Integer term = luaL_checkinteger(L, 3);
    size_t len;
    const char *data = luaL_checklstring(L, 4, &len);
    struct script_identity script = {.name = "spec.lua"};
    if (!lua_isnoneornil(L, 5)) {
        check_identity(L, 5, &script);
    }
    struct snapfile_header h = {.script = &script};
    if (!lua_isnoneornil(L, 6)) {
        h.text = luaL_checklstring(L, 6, &h.text_len);
    }
    struct snapfile_writer w;
    char errmsg[512] = "";
    int rv = snapfile_begin_header(&w, dir, (raft_index)index, (raft_term)term, &h, errmsg,
                                   sizeof errmsg);
    if (rv != 0) {
        return push_error(L, errmsg, rv);
    }
    /* In pieces, to exercise the running checksum. */
    size_t half = len / 2;
    rv = snapfile_write(&w, data, half);
    if (rv == 0) {
        rv = snapfile_write(&w, data + half, len - half);
    }
    if (rv != 0) {
        snapfile_abort(&w);
        return push_error(L, "snapfile_write failed", rv);
    }
    rv = snapfile_commit(&w, errmsg, sizeof errmsg);
    if (rv != 0) {
        return push_error(L, errmsg, rv);
    }
    lua_pushstring(L, w.path);
    return 1;
}

static int store_lua_snapfile_latest(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    raft_index index;
    raft_term term;
    char path[1024];
    int rv = snapfile_latest(dir, &index, &term, path, sizeof path);
    if (rv != 0) {
        lua_pushnil(L);
        lua_pushinteger(L, rv);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)index);
    lua_pushinteger(L, (lua_Integer)term);
    lua_pushstring(L, path);
    return 3;
}

static int store_lua_snapfile_verify(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    uint64_t body = 0;
    int rv = snapfile_verify(path, &body);
    if (rv != 0) {
        lua_pushnil(L);
        lua_pushinteger(L, rv);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)body);
    return 1;
}

static int store_lua_snapfile_inspect(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct snapfile_info info;
    int rv = snapfile_inspect(path, &info);
    if (rv != 0) {
        lua_pushnil(L);
        lua_pushinteger(L, rv);
        return 2;
    }
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, info.version);
    lua_setfield(L, -2, "version");
    if (info.has_script) {
        push_identity(L, &info.script);
        lua_setfield(L, -2, "script");
    }
    lua_pushinteger(L, (lua_Integer)info.body_offset);
    lua_setfield(L, -2, "body_offset");
    lua_pushinteger(L, (lua_Integer)info.body_bytes);
    lua_setfield(L, -2, "body_bytes");
    char *text;
    if (info.has_text && snapfile_script_text(path, &info, &text) == 0) {
        lua_pushlstring(L, text, info.text_len);
        free(text);
        lua_setfield(L, -2, "text");
    }
    return 1;
}

static int store_lua_snapfile_prune(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    lua_Integer index = luaL_checkinteger(L, 2);
    snapfile_prune(dir, (raft_index)index);
    return 0;
}

static int store_lua_snapfile_path(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    lua_Integer index = luaL_checkinteger(L, 2);
    lua_Integer term = luaL_checkinteger(L, 3);
    char path[512]; /* as big as snapfile_writer's path */
    int rv = snapfile_path(dir, (raft_index)index, (raft_term)term, path, sizeof path);
    if (rv != 0) {
        return push_error(L, strerror(errno), rv);
    }
    lua_pushstring(L, path);
    return 1;
}

static int store_lua_snapfile_cleanup(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    int rv = snapfile_cleanup(dir);
    if (rv < 0) {
        return push_error(L, strerror(errno), rv);
    }
    lua_pushinteger(L, rv);
    return 1;
}

static int store_lua_strerror(lua_State *L)
{
    lua_pushstring(L, store_strerror((int)luaL_checkinteger(L, 1)));
    return 1;
}

static const luaL_Reg store_methods[] = {
    {"load", store_lua_load},
    {"submit", store_lua_submit},
    {"run", store_lua_run},
    {"read", store_lua_read},
    {"stats", store_lua_stats},
    {"close", store_lua_close},
    {NULL, NULL},
};

static const luaL_Reg store_meta[] = {
    {"__gc", store_lua_close},
    {"__close", store_lua_close},
    {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"open", store_lua_open},
    {"snapfile_write", store_lua_snapfile_write},
    {"snapfile_latest", store_lua_snapfile_latest},
    {"snapfile_verify", store_lua_snapfile_verify},
    {"snapfile_inspect", store_lua_snapfile_inspect},
    {"snapfile_prune", store_lua_snapfile_prune},
    {"snapfile_path", store_lua_snapfile_path},
    {"snapfile_cleanup", store_lua_snapfile_cleanup},
    {"strerror", store_lua_strerror},
    {NULL, NULL},
};

int luaopen_luaraft_store(lua_State *L);

int luaopen_luaraft_store(lua_State *L)
{
    luaL_newmetatable(L, STORE_MT);     /* mt */
    luaL_setfuncs(L, store_meta, 0);    /* mt */
    luaL_newlibtable(L, store_methods); /* mt, methods */
    luaL_setfuncs(L, store_methods, 0); /* mt, methods */
    lua_setfield(L, -2, "__index");     /* mt */
    lua_pop(L, 1);                      /* */
    luaL_newlib(L, module_funcs);       /* module */
    static const struct
    {
        const char *name;
        int value;
    } codes[] = {
        {"OK", 0},
        {"EIO", STORE_EIO},
        {"EFULL", STORE_EFULL},
        {"ENOMEM", STORE_ENOMEM},
        {"ECORRUPT", STORE_ECORRUPT},
        {"ECLOSED", STORE_ECLOSED},
        {"EINVAL", STORE_EINVAL},
        {"SNAPFILE_EIO", SNAPFILE_EIO},
        {"SNAPFILE_ECORRUPT", SNAPFILE_ECORRUPT},
        {"SNAPFILE_ENOENT", SNAPFILE_ENOENT},
        {"SNAPFILE_EVERSION", SNAPFILE_EVERSION},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        lua_pushinteger(L, codes[i].value); /* module, v */
        lua_setfield(L, -2, codes[i].name); /* module */
    }
    return 1;
}
