/*
 * fsm_snapshot and fsm_restore: M.snapshot(w) and M.restore(r) with the stream userdata
 * whose w:write() and r:read() reach the caller's callbacks. They run without the
 * instruction budget and the memory cap (sandbox_begin explains why).
 */
#include <lauxlib.h>

#include <sodium.h>
#include <stdio.h>

#include "fsm/fsm_internal.h"
#include "util/log.h"

#define FSM_STREAM_MT "luaraft.fsm.stream"

static struct fsm_stream *stream_check(lua_State *L)
{
    struct fsm_stream_box *box = luaL_checkudata(L, 1, FSM_STREAM_MT);
    if (box->s == NULL) {
        luaL_error(L, "the snapshot stream is closed");
    }
    return box->s;
}

/* w:write(s, ...): hands each string to the fsm_write_fn. */
static int stream_write(lua_State *L)
{
    struct fsm_stream *s = stream_check(L);
    luaL_argcheck(L, s->write != NULL, 1, "not a writer (this is fsm_restore's reader)");
    int n = lua_gettop(L);
    for (int i = 2; i <= n; i++) {
        size_t len;
        const char *data = luaL_checklstring(L, i, &len);
        if (len > 0 && s->write(s->arg, data, len) != 0) {
            s->failed = true;
            return luaL_error(L, "snapshot write failed");
        }
    }
    return 0;
}

/* r:read() -> the next chunk, or nil at the end (and on every later call). */
static int stream_read(lua_State *L)
{
    struct fsm_stream *s = stream_check(L);
    luaL_argcheck(L, s->read != NULL, 1, "not a reader (this is fsm_snapshot's writer)");
    const void *data = NULL;
    size_t len = 0;
    if (!s->eof && s->read(s->arg, &data, &len) != 0) {
        s->failed = true;
        return luaL_error(L, "snapshot read failed");
    }
    if (s->eof || len == 0) {
        s->eof = true;
        lua_pushnil(L); /* nil */
        return 1;
    }
    lua_pushlstring(L, data, len); /* chunk */
    return 1;
}

void fsm_stream_install(lua_State *L, struct fsm *f)
{
    static const luaL_Reg stream_methods[] = {
        {"write", stream_write},
        {"read", stream_read},
        {NULL, NULL},
    };
    f->stream_box = lua_newuserdatauv(L, sizeof *f->stream_box, 0); /* box */
    f->stream_box->s = NULL;
    luaL_newmetatable(L, FSM_STREAM_MT);            /* box mt */
    luaL_newlib(L, stream_methods);                 /* box mt methods */
    lua_setfield(L, -2, "__index");                 /* box mt */
    lua_setmetatable(L, -2);                        /* box */
    f->stream_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* */
}

struct fsm_stream_args
{
    struct fsm *f;
    const char *fn; /* "snapshot" or "restore" */
    struct fsm_stream *stream;
    bool missing; /* the script has no such function */
};

static int fsm_stream_protected(lua_State *L)
{
    struct fsm_stream_args *a = lua_touserdata(L, 1);
    struct fsm *f = a->f;
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->module_ref); /* a M */
    lua_getfield(L, -1, a->fn);                       /* a M fn */
    if (!lua_isfunction(L, -1)) {
        a->missing = true;
        return 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->stream_ref); /* a M fn box */
    f->stream_box->s = a->stream;
    sandbox_begin(f, false);
    lua_call(L, 1, 0); /* a M */
    return 0;
}

static int fsm_stream_run(struct fsm *f, const char *fn, struct fsm_stream *stream)
{
    lua_State *L = f->L;
    struct fsm_stream_args a = {.f = f, .fn = fn, .stream = stream};
    f->last_error[0] = '\0';
    lua_settop(L, 0);
    lua_pushcfunction(L, fsm_msghandler);       /* h */
    lua_pushcfunction(L, fsm_stream_protected); /* h fn */
    lua_pushlightuserdata(L, &a);               /* h fn a */
    int status = lua_pcall(L, 1, 0, 1);         /* h [text] */
    bool memory = f->memory.exceeded || status == LUA_ERRMEM;
    sandbox_end(f);
    f->stream_box->s = NULL;
    if (status == LUA_OK) {
        lua_settop(L, 0);
        return a.missing ? FSM_ENOTSUP : 0;
    }
    fsm_take_error(f, memory ? fsm_memory_text
                             : (lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                               : "ERR error in error handling"));
    lua_settop(L, 0);
    if (memory) {
        lua_gc(L, LUA_GCCOLLECT);
    }
    return stream->failed ? FSM_ESTREAM : FSM_ESCRIPT;
}

void fsm_note_holes(struct fsm *f, const char *path)
{
    if (f->holes_count++ == 0) {
        snprintf(f->holes_path, sizeof f->holes_path, "%s", path);
    }
}

size_t fsm_snapshot_holes(const struct fsm *f, const char **path)
{
    *path = f->holes_path;
    return f->holes_count;
}

/* The warning of a snapshot that met tables with holes: at most one line a minute in a
 * process (the node's snapshot children each log at most one), since a script that
 * keeps such a table would otherwise fill the log at every snapshot. */
static void holes_warn(struct fsm *f)
{
    static uint64_t last_ms;
    uint64_t now = lr_log_now_ms();
    if (f->holes_count == 0 || (last_ms != 0 && now - last_ms < 60000)) {
        return;
    }
    last_ms = now;
    lr_log(
        "warning: the snapshot holds %zu table%s whose integer keys are not a sequence "
        "1..n, the first at key path '%s' of the encoded value: `#` on it may answer "
        "differently on a replica that restores this snapshot (fsm.h, \"Length\"; the "
        "table library is not affected)",
        f->holes_count, f->holes_count == 1 ? "" : "s", f->holes_path);
}

int fsm_snapshot(struct fsm *f, fsm_write_fn write_fn, void *arg)
{
    struct fsm_stream stream = {.write = write_fn, .arg = arg};
    f->holes_count = 0;
    f->holes_path[0] = '\0';
    int rv = fsm_stream_run(f, "snapshot", &stream);
    holes_warn(f);
    return rv;
}

static int hash_write(void *arg, const void *data, size_t len)
{
    crypto_generichash_update(arg, data, len);
    return 0;
}

void fsm_test_diverge(struct fsm *f, const char *key)
{
    snprintf(f->test_diverge_key, sizeof f->test_diverge_key, "%s", key != NULL ? key : "");
}

int fsm_state_hash(struct fsm *f, unsigned char out[FSM_STATE_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FSM_STATE_HASH_BYTES);
    int rv = fsm_snapshot(f, hash_write, &st);
    crypto_generichash_final(&st, out, FSM_STATE_HASH_BYTES);
    return rv;
}

int fsm_restore(struct fsm *f, fsm_read_fn read_fn, void *arg)
{
    struct fsm_stream stream = {.read = read_fn, .arg = arg};
    return fsm_stream_run(f, "restore", &stream);
}
