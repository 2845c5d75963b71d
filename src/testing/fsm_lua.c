/*
 * luaraft.fsm: the Lua host as a Lua module, for busted specs. Each machine is a whole fsm
 * (its own Lua state, inside the Lua state that runs the specs).
 *
 *   local fsm = require("luaraft.fsm")
 *   local m = assert(fsm.open("examples/kv.lua", {instructions_max = 1000000}))
 *   local reply = m:apply({"SET", "k", "v"}, {index = 1, term = 1, time_ms = 0, seed = 7})
 *   assert(reply == "+OK\r\n")
 *   assert(fsm.decode(reply).ok == "OK")
 *
 * Module:   fsm.open(path [, {instructions_max=, memory_bytes_max=, command_memory_bytes_max=}]) ->
 * machine | nil, msg fsm.decode(resp_bytes) -> value: {ok = s}, {err = s}, string, integer, array
 *             table, or fsm.null for a null bulk string or array (and RESP3's _); the
 *             RESP3 forms as the script writes them: {map = {k1, v1, ...}}, {set = {...}},
 *             {double = x}, and after the fsm's hints {pairs = {a1, b1, ...}},
 *             {null_array = true}
 *           fsm.null: the sentinel for RESP null
 *           fsm.payload(kind, ...) -> bytes | nil: an entry's payload (command.h) stamped
 *             with time_ms: ("command", cmd [, time_ms]), ("tick" [, time_ms]),
 *             ("transaction", {cmd, ...} [, time_ms]), ("body", n, bytes [, time_ms])
 *             (command_put_transaction_body: nil when refused), ("argv", cmd) (the argv
 *             blob alone)
 *           fsm.payload_decode(bytes) -> {kind = "command"|"tick"|"transaction", time_ms=,
 *             cmd = {...} or false (not an argv blob), cmds = {{...}, ...}} | nil
 * Machine:  m:apply(cmd, ctx) -> RESP bytes (ctx = {index=, term=, time_ms=, seed=}, each
 *             optional, default 0); m:query(cmd [, ctx]) -> RESP bytes (raises if the
 *             script has no query; ctx = {index=, term=, time_ms=}, default: the last
 *             applied entry's); m:is_read(name) -> boolean; m:snapshot() -> bytes, writes;
 *           m:commands() -> nil (no M.commands) | {{name=, arity=, first_key=, last_key=,
 *             step=, read=, flags = {...}}, ...} in name order (fsm_command_at);
 *           m:check(cmd) -> info, {key, ...} (fsm_command_check, fsm_command_keys) |
 *             nil, err (the node's error text; "" without a table); m:keys(cmd) -> {key,
 *             ...} (fsm_command_keys of the command found, its arity unchecked);
 *           m:apply_entry(payload, {index=, term=} [, raft entry type]) -> RESP bytes
 *             (fsm_job_apply_entry, as the node applies an entry); m:tick_ms() -> integer
 *             (M.tick_ms, 0 when not declared); m:keyspace() -> RESP bytes (a keyspace
 *             query, fsm_job_run_query);
 *           m:restore(bytes [, chunk_bytes = 4096]); m:last_error() -> string;
 *           m:close() (also __gc and __close)
 * Errors from the host (not script errors, which are error replies) raise Lua errors.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "client/resp3.h" /* the hints */
#include "command.h"
#include "fsm/fsm.h"
#include "fsm/job.h"
#include "raft/raft.h"

#define MACHINE_MT "luaraft.fsm.machine"
#define NULL_KEY "luaraft.fsm.null"

enum { decode_depth_max = 64 };

struct machine
{
    struct fsm *f;
    struct fsm_reply reply;
};

static struct machine *check_machine(lua_State *L)
{
    struct machine *m = luaL_checkudata(L, 1, MACHINE_MT);
    if (m->f == NULL) {
        luaL_error(L, "luaraft.fsm: machine is closed");
    }
    return m;
}

static size_t opt_size_field(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key); /* v */
    lua_Integer v = luaL_optinteger(L, -1, 0);
    lua_pop(L, 1); /* */
    if (v < 0) {
        luaL_error(L, "luaraft.fsm: option %s must not be negative", key);
    }
    return (size_t)v;
}

static int fsm_lua_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct fsm_limits limits = {0, 0, 0};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        limits.instructions_max = opt_size_field(L, 2, "instructions_max");
        limits.memory_bytes_max = opt_size_field(L, 2, "memory_bytes_max");
        limits.command_memory_bytes_max = opt_size_field(L, 2, "command_memory_bytes_max");
    }
    struct machine *m = lua_newuserdatauv(L, sizeof *m, 0); /* m */
    m->f = NULL;
    fsm_reply_init(&m->reply);
    luaL_setmetatable(L, MACHINE_MT);
    char errmsg[2048];
    int rv = fsm_open(&m->f, path, &limits, errmsg, sizeof errmsg);
    if (rv != 0) {
        lua_pushnil(L);                                          /* m nil */
        lua_pushfstring(L, "%s (%s)", errmsg, fsm_strerror(rv)); /* m nil msg */
        return 2;
    }
    return 1;
}

/* Reads cmd (a sequence of strings at idx) into arrays kept alive by a userdata it pushes.
 * [-0, +1, e] */
static int push_command(lua_State *L, int idx, const char ***argv, size_t **argvlen)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    luaL_argcheck(L, n >= 1 && n <= 1000000, idx, "command must have 1 to 1000000 strings");
    char *mem = lua_newuserdatauv(L, (size_t)n * (sizeof **argv + sizeof **argvlen), 0);
    *argvlen = (size_t *)(void *)mem;
    *argv = (const char **)(void *)(mem + (size_t)n * sizeof **argvlen);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, idx, i) != LUA_TSTRING) { /* ud arg */
            luaL_argerror(L, idx, "command arguments must be strings");
        }
        (*argv)[i - 1] = lua_tolstring(L, -1, &(*argvlen)[i - 1]); /* kept alive by cmd */
        lua_pop(L, 1);                                             /* ud */
    }
    return (int)n;
}

static lua_Integer ctx_field(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key); /* v */
    lua_Integer v = luaL_optinteger(L, -1, 0);
    lua_pop(L, 1); /* */
    return v;
}

static int push_reply(lua_State *L, struct machine *m, int rv)
{
    if (rv != 0) {
        return luaL_error(L, "luaraft.fsm: %s", fsm_strerror(rv));
    }
    lua_pushlstring(L, m->reply.data != NULL ? m->reply.data : "", m->reply.len); /* bytes */
    fsm_reply_reset(&m->reply);
    return 1;
}

/* The ctx table at idx (absent: all 0). */
static struct fsm_ctx check_ctx(lua_State *L, int idx)
{
    struct fsm_ctx ctx = {0, 0, 0, 0};
    if (!lua_isnoneornil(L, idx)) {
        luaL_checktype(L, idx, LUA_TTABLE);
        ctx.index = (uint64_t)ctx_field(L, idx, "index");
        ctx.term = (uint64_t)ctx_field(L, idx, "term");
        ctx.time_ms = (int64_t)ctx_field(L, idx, "time_ms");
        ctx.seed = (uint64_t)ctx_field(L, idx, "seed");
    }
    return ctx;
}

static int machine_apply(lua_State *L)
{
    struct machine *m = check_machine(L);
    struct fsm_ctx ctx = check_ctx(L, 3);
    const char **argv;
    size_t *argvlen;
    int argc = push_command(L, 2, &argv, &argvlen); /* ud */
    fsm_reply_reset(&m->reply);
    int rv = fsm_apply(m->f, &ctx, argc, argv, argvlen, &m->reply);
    return push_reply(L, m, rv);
}

static int machine_query(lua_State *L)
{
    struct machine *m = check_machine(L);
    const char **argv;
    size_t *argvlen;
    bool at = !lua_isnoneornil(L, 3);
    struct fsm_ctx ctx = check_ctx(L, 3);
    int argc = push_command(L, 2, &argv, &argvlen); /* ud */
    fsm_reply_reset(&m->reply);
    int rv = at ? fsm_query_at(m->f, &ctx, argc, argv, argvlen, &m->reply)
                : fsm_query(m->f, argc, argv, argvlen, &m->reply);
    return push_reply(L, m, rv);
}

static int machine_tick_ms(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)fsm_tick_ms(check_machine(L)->f)); /* ms */
    return 1;
}

static int machine_is_read(lua_State *L)
{
    struct machine *m = check_machine(L);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    lua_pushboolean(L, fsm_is_read(m->f, name, len)); /* bool */
    return 1;
}

/* Pushes c as {name=, arity=, first_key=, last_key=, step=, read=, flags={...}}. */
static void push_command_info(lua_State *L, const struct fsm_command *c)
{
    lua_createtable(L, 0, 7);   /* t */
    lua_pushstring(L, c->name); /* t name */
    lua_setfield(L, -2, "name");
    lua_Integer ints[4] = {c->arity, c->first_key, c->last_key, c->step};
    const char *names[4] = {"arity", "first_key", "last_key", "step"};
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, ints[i]); /* t v */
        lua_setfield(L, -2, names[i]);
    }
    lua_pushboolean(L, c->read); /* t read */
    lua_setfield(L, -2, "read");
    lua_createtable(L, (int)c->n_flags, 0); /* t flags */
    for (size_t i = 0; i < c->n_flags; i++) {
        lua_pushstring(L, c->flags[i]); /* t flags flag */
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "flags"); /* t */
}

/* m:commands() -> nil without a table, else the table as the node sees it, in name order. */
static int machine_commands(lua_State *L)
{
    struct machine *m = check_machine(L);
    if (!fsm_has_commands(m->f)) {
        lua_pushnil(L);
        return 1;
    }
    size_t n = fsm_commands_count(m->f);
    lua_createtable(L, (int)n, 0); /* list */
    for (size_t i = 0; i < n; i++) {
        push_command_info(L, fsm_command_at(m->f, i)); /* list info */
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static void collect_key(void *arg, const char *key, size_t len)
{
    lua_State *L = arg;
    lua_pushlstring(L, key, len);                           /* ... keys key */
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1); /* ... keys */
}

/* m:check(cmd) -> info, {keys...} | nil, err ("" without a table). */
static int machine_check(lua_State *L)
{
    struct machine *m = check_machine(L);
    const char **argv;
    size_t *argvlen;
    int argc = push_command(L, 2, &argv, &argvlen); /* ud */
    char err[fsm_command_err_bytes_max];
    const struct fsm_command *c = fsm_command_check(m->f, argc, argv, argvlen, err, sizeof err);
    if (c == NULL) {
        lua_pushnil(L);         /* ud nil */
        lua_pushstring(L, err); /* ud nil err */
        return 2;
    }
    push_command_info(L, c); /* ud info */
    lua_newtable(L);         /* ud info keys */
    fsm_command_keys(c, argc, argv, argvlen, collect_key, L);
    return 2;
}

/* m:keys(cmd) -> {key, ...}: the command's keys as the table names them, unchecked. */
static int machine_keys(lua_State *L)
{
    struct machine *m = check_machine(L);
    const char **argv;
    size_t *argvlen;
    int argc = push_command(L, 2, &argv, &argvlen); /* ud */
    const struct fsm_command *c = fsm_command_find(m->f, argv[0], argvlen[0]);
    lua_newtable(L); /* ud keys */
    if (c != NULL) {
        fsm_command_keys(c, argc, argv, argvlen, collect_key, L);
    }
    return 1;
}

struct snapshot_sink
{
    struct buf b;
    lua_Integer writes;
};

static int snapshot_sink_write(void *arg, const void *data, size_t len)
{
    struct snapshot_sink *sink = arg;
    sink->writes++;
    return buf_append(&sink->b, data, len) == 0 ? 0 : -1;
}

static int machine_snapshot(lua_State *L)
{
    struct machine *m = check_machine(L);
    struct snapshot_sink sink = {{NULL, 0, 0}, 0};
    int rv = fsm_snapshot(m->f, snapshot_sink_write, &sink);
    if (rv != 0) {
        buf_free(&sink.b);
        return luaL_error(L, "luaraft.fsm: snapshot: %s: %s", fsm_strerror(rv),
                          fsm_last_error(m->f));
    }
    lua_pushlstring(L, sink.b.data != NULL ? (const char *)sink.b.data : "", sink.b.len);
    buf_free(&sink.b);
    lua_pushinteger(L, sink.writes); /* bytes writes */
    return 2;
}

struct restore_source
{
    const char *data;
    size_t len;
    size_t pos;
    size_t chunk;
};

static int restore_source_read(void *arg, const void **data, size_t *len)
{
    struct restore_source *src = arg;
    size_t n = src->len - src->pos;
    if (n > src->chunk) {
        n = src->chunk;
    }
    *data = src->data + src->pos;
    *len = n;
    src->pos += n;
    return 0;
}

static int machine_restore(lua_State *L)
{
    struct machine *m = check_machine(L);
    struct restore_source src = {NULL, 0, 0, 0};
    src.data = luaL_checklstring(L, 2, &src.len);
    lua_Integer chunk = luaL_optinteger(L, 3, 4096);
    luaL_argcheck(L, chunk >= 1, 3, "chunk size must be positive");
    src.chunk = (size_t)chunk;
    int rv = fsm_restore(m->f, restore_source_read, &src);
    if (rv != 0) {
        return luaL_error(L, "luaraft.fsm: restore: %s: %s", fsm_strerror(rv),
                          fsm_last_error(m->f));
    }
    return 0;
}

static int machine_last_error(lua_State *L)
{
    struct machine *m = check_machine(L);
    lua_pushstring(L, fsm_last_error(m->f)); /* msg */
    return 1;
}

/* m:holes() -> count, path: fsm_snapshot_holes after the last snapshot. */
static int machine_holes(lua_State *L)
{
    struct machine *m = check_machine(L);
    const char *path = NULL;
    lua_pushinteger(L, (lua_Integer)fsm_snapshot_holes(m->f, &path)); /* n */
    lua_pushstring(L, path);                                          /* n path */
    return 2;
}

static int machine_close(lua_State *L)
{
    struct machine *m = luaL_checkudata(L, 1, MACHINE_MT);
    fsm_close(m->f);
    m->f = NULL;
    fsm_reply_free(&m->reply);
    return 0;
}

/* fsm.payload, fsm.payload_decode, m:apply_entry (they use the helpers above). */
#include "testing/fsm_lua_entries.c"

/* ------------------------------------------------------------------------------------
 * fsm.decode: RESP2 bytes to Lua values, for asserts
 * ------------------------------------------------------------------------------------ */

struct decoder
{
    const char *p;
    const char *end;
};

/* The line at d->p up to CRLF (not included); advances past the CRLF. */
static const char *decode_line(lua_State *L, struct decoder *d, size_t *len)
{
    const char *start = d->p;
    for (const char *q = start; q + 1 < d->end; q++) {
        if (q[0] == '\r' && q[1] == '\n') {
            *len = (size_t)(q - start);
            d->p = q + 2;
            return start;
        }
    }
    luaL_error(L, "fsm.decode: missing CRLF");
    return NULL;
}

/* The number s[0, len) as a C string in buf[64]; raises "bad <what>" for a bad length. */
static char *number_text(lua_State *L, const char *s, size_t len, char *buf, const char *what)
{
    if (len == 0 || len >= 64) {
        luaL_error(L, "fsm.decode: bad %s", what);
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static long long decode_integer(lua_State *L, const char *s, size_t len)
{
    char buf[64], *endp;
    long long v = strtoll(number_text(L, s, len, buf, "integer"), &endp, 10);
    if (*endp != '\0') {
        luaL_error(L, "fsm.decode: bad integer '%s'", buf);
    }
    return v;
}

/* A RESP3 double's text: what strtod reads, whole ("inf", "-inf" and "nan" too). */
static double decode_double(lua_State *L, const char *s, size_t len)
{
    char buf[64], *endp;
    double v = strtod(number_text(L, s, len, buf, "double"), &endp);
    if (*endp != '\0') {
        luaL_error(L, "fsm.decode: bad double '%s'", buf);
    }
    return v;
}

static void decode_value(lua_State *L, struct decoder *d, int depth);

/* Whether the next value is the simple string text (a hint's key, client/resp3.h). */
static bool decode_is_status(const struct decoder *d, const char *text)
{
    size_t n = strlen(text);
    return (size_t)(d->end - d->p) >= n + 3 && d->p[0] == '+' && memcmp(d->p + 1, text, n) == 0 &&
           d->p[n + 1] == '\r' && d->p[n + 2] == '\n';
}

/* After an attribute's header of n pairs: pushes the reply it annotates, in the form the
 * script wrote it ({pairs = {a1, b1, ...}}, {null_array = true}) where the attribute is
 * one of the fsm's hints. [-0, +1, e] */
static void decode_hinted(lua_State *L, struct decoder *d, long long n, int depth)
{
    const char *hint = NULL;
    for (long long i = 0; i < n; i++) {
        if (decode_is_status(d, RESP3_HINT_PAIRS)) {
            hint = "pairs";
        } else if (decode_is_status(d, RESP3_HINT_NULL_ARRAY)) {
            hint = "null_array";
        }
        decode_value(L, d, depth + 1); /* key */
        decode_value(L, d, depth + 1); /* key value */
        lua_pop(L, 2);                 /* */
    }
    decode_value(L, d, depth); /* v */
    if (hint == NULL) {
        return;
    }
    lua_createtable(L, 0, 1); /* v wrap */
    if (hint[0] == 'n') {
        lua_pushboolean(L, 1); /* v wrap true */
    } else {
        luaL_checktype(L, -2, LUA_TTABLE);
        lua_newtable(L); /* v wrap flat */
        lua_Integer k = 0;
        for (lua_Integer i = 1; lua_rawgeti(L, -3, i) == LUA_TTABLE; i++) { /* v wrap flat pair */
            for (int j = 1; j <= 2; j++) {
                lua_rawgeti(L, -1, j);   /* v wrap flat pair x */
                lua_rawseti(L, -3, ++k); /* v wrap flat pair */
            }
            lua_pop(L, 1); /* v wrap flat */
        }
        lua_pop(L, 1); /* v wrap flat */
    }
    lua_setfield(L, -2, hint); /* v wrap */
    lua_remove(L, -2);         /* wrap */
}

/* Pushes the next value. [-0, +1, e] */
static void decode_value(lua_State *L, struct decoder *d, int depth)
{
    if (depth > decode_depth_max) {
        luaL_error(L, "fsm.decode: nested too deeply");
    }
    luaL_checkstack(L, 4, "fsm.decode");
    if (d->p >= d->end) {
        luaL_error(L, "fsm.decode: truncated reply");
    }
    char type = *d->p++;
    size_t len = 0;
    const char *line = decode_line(L, d, &len);
    switch (type) {
        case '+':
        case '-':
            lua_createtable(L, 0, 1);      /* t */
            lua_pushlstring(L, line, len); /* t s */
            lua_setfield(L, -2, type == '+' ? "ok" : "err");
            return;
        case ':':
            lua_pushinteger(L, (lua_Integer)decode_integer(L, line, len)); /* n */
            return;
        case '$': {
            long long n = decode_integer(L, line, len);
            if (n == -1) {
                lua_getfield(L, LUA_REGISTRYINDEX, NULL_KEY); /* null */
                return;
            }
            if (n < 0 || (size_t)(d->end - d->p) < (size_t)n + 2 || d->p[n] != '\r' ||
                d->p[n + 1] != '\n') {
                luaL_error(L, "fsm.decode: bad bulk string");
            }
            lua_pushlstring(L, d->p, (size_t)n); /* s */
            d->p += n + 2;
            return;
        }
        case '*':
        case '%':
        case '~': {
            long long n = decode_integer(L, line, len);
            if (n == -1 && type == '*') {
                lua_getfield(L, LUA_REGISTRYINDEX, NULL_KEY); /* null */
                return;
            }
            long long items = type == '%' ? 2 * n : n;
            if (n < 0 || items > d->end - d->p) {
                luaL_error(L, "fsm.decode: bad aggregate length");
            }
            if (type != '*') {
                lua_createtable(L, 0, 1); /* wrap */
            }
            lua_createtable(L, (int)items, 0); /* [wrap] t */
            for (long long i = 1; i <= items; i++) {
                decode_value(L, d, depth + 1);      /* [wrap] t v */
                lua_rawseti(L, -2, (lua_Integer)i); /* [wrap] t */
            }
            if (type != '*') {
                lua_setfield(L, -2, type == '%' ? "map" : "set"); /* wrap */
            }
            return;
        }
        case ',':
            lua_createtable(L, 0, 1);                       /* t */
            lua_pushnumber(L, decode_double(L, line, len)); /* t x */
            lua_setfield(L, -2, "double");                  /* t */
            return;
        case '_':
            lua_getfield(L, LUA_REGISTRYINDEX, NULL_KEY); /* null */
            return;
        case '|':
            decode_hinted(L, d, decode_integer(L, line, len), depth);
            return;
        case '#':
            if (len != 1 || (line[0] != 't' && line[0] != 'f')) {
                luaL_error(L, "fsm.decode: bad boolean");
            }
            lua_pushboolean(L, line[0] == 't'); /* b */
            return;
        default:
            /* lua_pushfstring knows no %x: the byte's value in decimal */
            luaL_error(L, "fsm.decode: unknown type byte %d", (int)(unsigned char)type);
    }
}

static int fsm_lua_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct decoder d = {s, s + len};
    decode_value(L, &d, 0); /* v */
    if (d.p != d.end) {
        return luaL_error(L, "fsm.decode: %d trailing bytes", (int)(d.end - d.p));
    }
    return 1;
}

static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "fsm.null"); /* s */
    return 1;
}

int luaopen_luaraft_fsm(lua_State *L);

int luaopen_luaraft_fsm(lua_State *L)
{
    static const luaL_Reg machine_meta[] = {
        {"__gc", machine_close},
        {"__close", machine_close},
        {NULL, NULL},
    };
    static const luaL_Reg machine_methods[] = {
        {"apply", machine_apply},
        {"query", machine_query},
        {"is_read", machine_is_read},
        {"snapshot", machine_snapshot},
        {"commands", machine_commands},
        {"check", machine_check},
        {"keys", machine_keys},
        {"apply_entry", machine_apply_entry},
        {"restore", machine_restore},
        {"last_error", machine_last_error},
        {"tick_ms", machine_tick_ms},
        {"keyspace", machine_keyspace},
        {"close", machine_close},
        {"holes", machine_holes},
        {NULL, NULL},
    };
    static const luaL_Reg module_funcs[] = {
        {"open", fsm_lua_open},
        {"decode", fsm_lua_decode},
        {"payload", fsm_lua_payload},
        {"payload_decode", fsm_lua_payload_decode},
        {NULL, NULL},
    };
    luaL_newmetatable(L, MACHINE_MT);     /* mt */
    luaL_setfuncs(L, machine_meta, 0);    /* mt */
    luaL_newlibtable(L, machine_methods); /* mt methods */
    luaL_setfuncs(L, machine_methods, 0); /* mt methods */
    lua_setfield(L, -2, "__index");       /* mt */
    lua_pop(L, 1);                        /* */

    lua_getfield(L, LUA_REGISTRYINDEX, NULL_KEY); /* null? */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);                                /* */
        lua_newtable(L);                              /* null */
        lua_createtable(L, 0, 1);                     /* null mt */
        lua_pushcfunction(L, null_tostring);          /* null mt fn */
        lua_setfield(L, -2, "__tostring");            /* null mt */
        lua_setmetatable(L, -2);                      /* null */
        lua_pushvalue(L, -1);                         /* null null */
        lua_setfield(L, LUA_REGISTRYINDEX, NULL_KEY); /* null */
    }
    luaL_newlib(L, module_funcs); /* null module */
    lua_insert(L, -2);            /* module null */
    lua_setfield(L, -2, "null");  /* module */
    return 1;
}
