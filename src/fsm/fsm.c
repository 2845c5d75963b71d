/*
 * The fsm's calls: apply and query, and how an error in any Lua call becomes the reply's
 * text and fsm_last_error. Every Lua call runs inside lua_pcall with fsm_msghandler (cf.
 * lua.c's docall and msghandler): the only Lua API used outside protected mode is what
 * cannot raise (pushing C functions and light userdata, reading strings and registry
 * slots that already exist, lua_close). Loading is fsm_load.c, the module's contract
 * fsm_contract.c, snapshot and restore fsm_snapshot.c.
 */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "fsm/fsm_internal.h"

const char fsm_budget_text[] = "ERR script exceeded its instruction budget";
const char fsm_memory_text[] = "ERR script exceeded the state's memory limit";
const char fsm_command_memory_text[] = "ERR script exceeded its memory budget";

const char *fsm_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "success";
        case FSM_ENOMEM:
            return "out of memory";
        case FSM_ELOAD:
            return "the script could not be loaded";
        case FSM_ENOTSUP:
            return "the script does not implement this";
        case FSM_ESCRIPT:
            return "the script raised an error";
        case FSM_ESTREAM:
            return "the snapshot stream failed";
        case FSM_EINVAL:
            return "invalid argument";
        default:
            return "unknown error";
    }
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* If msg[0..len) is followed by ":<line>: ", returns what follows; else NULL. */
static const char *after_position(const char *msg, size_t len)
{
    if (msg[len] != ':' || !is_digit(msg[len + 1])) {
        return NULL;
    }
    const char *p = msg + len + 1;
    while (is_digit(*p)) {
        p++;
    }
    return p[0] == ':' && p[1] == ' ' ? p + 2 : NULL;
}

/*
 * The error message without the "chunk:line: " that Lua puts in front (a chunk name is a
 * file name, which may differ between replicas, or [string "..."] for a loaded string),
 * so that the reply is the same everywhere.
 */
static const char *strip_position(const char *msg)
{
    size_t len = 0;
    if (strncmp(msg, "[string \"", 9) == 0) {
        const char *end = strstr(msg, "\"]");
        if (end == NULL) {
            return msg;
        }
        len = (size_t)(end + 2 - msg);
    } else {
        while (msg[len] != '\0' && msg[len] != ':' && msg[len] != ' ' && msg[len] != '\n') {
            len++;
        }
        if (len == 0) {
            return msg;
        }
    }
    const char *rest = after_position(msg, len);
    return rest != NULL ? rest : msg;
}

/*
 * Message handler for every lua_pcall: keeps the traceback (for fsm_last_error and
 * fsm_open's errmsg) in the registry and returns the error reply's text: "ERR <message>"
 * for a string or number, the err field verbatim for {err = "..."}.
 */
int fsm_msghandler(lua_State *L)
{
    struct fsm *f = fsm_from_state(L);
    const char *msg = NULL;
    bool verbatim = false;
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_pushliteral(L, "err"); /* e "err" */
        lua_rawget(L, 1);          /* e e.err */
        if (lua_type(L, -1) == LUA_TSTRING) {
            msg = lua_tostring(L, -1);
            verbatim = true;
        }
    } else if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
        msg = lua_tostring(L, 1);
    }
    if (msg == NULL) {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (f->traceback_ref != LUA_NOREF) {
        luaL_traceback(L, L, msg, 1);                        /* e ... tb */
        lua_rawseti(L, LUA_REGISTRYINDEX, f->traceback_ref); /* e ... */
    }
    if (verbatim) {
        lua_pushstring(L, msg); /* e ... text */
    } else {
        lua_pushfstring(L, "ERR %s", strip_position(msg)); /* e ... text */
    }
    return 1;
}

/* Copies the traceback of the last error (or text) into f->last_error and clears it. */
void fsm_take_error(struct fsm *f, const char *text)
{
    lua_State *L = f->L;
    const char *tb = NULL;
    if (f->traceback_ref != LUA_NOREF &&
        lua_rawgeti(L, LUA_REGISTRYINDEX, f->traceback_ref) == LUA_TSTRING) { /* tb */
        tb = lua_tostring(L, -1);
    }
    if (tb != NULL && text != fsm_budget_text && text != fsm_memory_text &&
        text != fsm_command_memory_text) {
        snprintf(f->last_error, sizeof f->last_error, "%s", tb);
    } else if (tb != NULL) {
        snprintf(f->last_error, sizeof f->last_error, "%s (%s)", text, tb);
    } else {
        snprintf(f->last_error, sizeof f->last_error, "%s", text);
    }
    if (f->traceback_ref != LUA_NOREF) {
        lua_pop(L, 1);                                       /* */
        lua_pushboolean(L, 0);                               /* false */
        lua_rawseti(L, LUA_REGISTRYINDEX, f->traceback_ref); /* */
    }
}

const char *fsm_last_error(struct fsm *f)
{
    return f->last_error;
}

/* ------------------------------------------------------------------------------------
 * apply and query
 * ------------------------------------------------------------------------------------ */

struct fsm_call_args
{
    struct fsm *f;
    const char *fn;            /* "apply", "query" or "tick" */
    const struct fsm_ctx *ctx; /* never NULL */
    bool entry;                /* an entry being applied: ctx.seed, moves the clock */
    bool seeded;               /* math.randomseed(ctx->seed) first: every entry's call, and a
                                  read inside a transaction (a query has seed 0) */
    bool keyspace;             /* M.keyspace: its reply becomes [keys, expires] or null */
    bool readonly;             /* M.query, M.keyspace: the state is read-only */
    bool upgrade;              /* M.upgrade(old_version, ctx): version (NULL: nil) first */
    const char *version;
    int argc; /* 0 for tick and keyspace, which get no cmd */
    const char *const *argv;
    const size_t *argvlen;
    struct fsm_reply *out; /* NULL: the reply is dropped (tick) */
    int host_error;        /* FSM_ENOMEM when out could not grow */
};

static void set_integer_field(lua_State *L, const char *key, lua_Integer value)
{
    lua_pushinteger(L, value); /* t value */
    lua_setfield(L, -2, key);  /* t */
}

/* Pushes the ctx table: {index, term, time_ms, time} and, for an entry, seed. [-0, +1, m] */
static void push_ctx(lua_State *L, const struct fsm_ctx *ctx, bool entry)
{
    lua_createtable(L, 0, 5); /* ctx */
    set_integer_field(L, "index", (lua_Integer)ctx->index);
    set_integer_field(L, "term", (lua_Integer)ctx->term);
    set_integer_field(L, "time_ms", (lua_Integer)ctx->time_ms);
    set_integer_field(L, "time", (lua_Integer)sandbox_seconds(ctx->time_ms));
    if (entry) {
        set_integer_field(L, "seed", (lua_Integer)ctx->seed);
    }
}

/* M.keyspace's {keys = n, expires = m} (at the top) as [n, m], or null for another value.
 * [-0, +0, m] */
static int keyspace_reply(lua_State *L, struct fsm_reply *out)
{
    static const char *const fields[] = {"keys", "expires"};
    lua_Integer v[2] = {-1, -1};
    sandbox_readonly_unwrap(L, -1);
    for (int i = 0; i < 2 && lua_istable(L, -1); i++) {
        lua_pushstring(L, fields[i]); /* r key */
        lua_rawget(L, -2);            /* r r[key] */
        v[i] = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
        lua_pop(L, 1); /* r */
    }
    char text[64];
    int len = v[0] >= 0 && v[1] >= 0 ? snprintf(text, sizeof text, "*2\r\n:%lld\r\n:%lld\r\n",
                                                (long long)v[0], (long long)v[1])
                                     : snprintf(text, sizeof text, "$-1\r\n");
    return reply_append(out, text, (size_t)len);
}

static int fsm_call_protected(lua_State *L)
{
    struct fsm_call_args *a = lua_touserdata(L, 1);
    struct fsm *f = a->f;
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->module_ref); /* a M */
    lua_getfield(L, -1, a->fn);                       /* a M fn */
    f->time_ms = a->ctx->time_ms;
    if (a->seeded) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, f->randomseed_ref); /* a M fn randomseed */
        lua_pushinteger(L, (lua_Integer)a->ctx->seed);        /* a M fn randomseed seed */
        lua_call(L, 1, 0);                                    /* a M fn */
    }
    int nargs = 1;
    if (a->argc > 0) {
        lua_createtable(L, a->argc, 0); /* a M fn cmd */
        for (int i = 0; i < a->argc; i++) {
            lua_pushlstring(L, a->argv[i], a->argvlen[i]); /* a M fn cmd arg */
            lua_rawseti(L, -2, i + 1);                     /* a M fn cmd */
        }
        nargs = 2;
    } else if (a->upgrade) {
        if (a->version != NULL) {
            lua_pushstring(L, a->version); /* a M fn version */
        } else {
            lua_pushnil(L); /* a M fn nil */
        }
        nargs = 2;
    }
    push_ctx(L, a->ctx, a->entry); /* a M fn [cmd|version] ctx */
    sandbox_begin(f, true);
    if (a->readonly) {
        sandbox_readonly_begin(L);
    }
    lua_call(L, nargs, 1);      /* a M reply */
    int rv = a->out == NULL ? 0 /* a tick's, dropped */
             : a->keyspace  ? keyspace_reply(L, a->out)
                            : reply_encode(L, -1, a->out);
    if (rv != 0) {
        a->host_error = rv;
        return luaL_error(L, "out of memory (reply buffer)");
    }
    return 0;
}

static int fsm_call(struct fsm_call_args *a)
{
    struct fsm *f = a->f;
    lua_State *L = f->L;
    struct fsm_reply *out = a->out; /* NULL for a tick: reply and error dropped */
    int64_t clock = f->time_ms;
    if (a->entry) {
        f->applied = *a->ctx;
    }
    size_t mark = out != NULL ? out->len : 0;
    f->last_error[0] = '\0';
    lua_settop(L, 0);
    lua_pushcfunction(L, fsm_msghandler);     /* h */
    lua_pushcfunction(L, fsm_call_protected); /* h fn */
    lua_pushlightuserdata(L, a);              /* h fn a */
    f->memory.slack = a->readonly ? sandbox_readonly_slack : 0;
    int status = lua_pcall(L, 1, 0, 1); /* h [text] */
    sandbox_readonly_end(L);            /* the query's variables get their values back */
    f->memory.slack = 0;
    bool budget = f->budget.exceeded;
    bool command_memory = f->memory.command_exceeded;
    bool memory = f->memory.exceeded || status == LUA_ERRMEM || command_memory;
    sandbox_end(f);
    f->time_ms = a->entry ? a->ctx->time_ms : clock; /* a query leaves the clock alone */
    if (status == LUA_OK && !budget && !memory) {
        lua_settop(L, 0);
        return 0;
    }
    if (out != NULL) {
        out->len = mark;
    }
    if (a->host_error != 0) {
        lua_settop(L, 0);
        return a->host_error;
    }
    const char *text = command_memory ? fsm_command_memory_text
                       : budget       ? fsm_budget_text
                       : memory       ? fsm_memory_text
                                      : NULL;
    if (text == NULL) {
        text = status == LUA_ERRRUN && lua_type(L, -1) == LUA_TSTRING
                   ? lua_tostring(L, -1)
                   : "ERR error in error handling";
    }
    fsm_take_error(f, text);
    int rv = out != NULL ? reply_append_error(out, text, strlen(text)) : FSM_ESCRIPT;
    lua_settop(L, 0);
    if (memory) {
        lua_gc(L, LUA_GCCOLLECT);
    }
    return rv;
}

/* Runs M[fn](cmd, ctx) for a command; entry and seeded as in struct fsm_call_args. */
static int call_command(struct fsm *f,
                        const char *fn,
                        const struct fsm_ctx *ctx,
                        bool entry,
                        int argc,
                        const char *const *argv,
                        const size_t *argvlen,
                        struct fsm_reply *out)
{
    if (argc < 1) {
        return FSM_EINVAL;
    }
    struct fsm_call_args a = {
        .f = f,
        .fn = fn,
        .ctx = ctx,
        .entry = entry,
        .readonly = strcmp(fn, "query") == 0,
        .seeded = ctx->seed != 0 || entry,
        .argc = argc,
        .argv = argv,
        .argvlen = argvlen,
        .out = out,
    };
    return fsm_call(&a);
}

int fsm_apply(struct fsm *f,
              const struct fsm_ctx *ctx,
              int argc,
              const char *const *argv,
              const size_t *argvlen,
              struct fsm_reply *out)
{
    return call_command(f, "apply", ctx, true, argc, argv, argvlen, out);
}

int fsm_query_at(struct fsm *f,
                 const struct fsm_ctx *ctx,
                 int argc,
                 const char *const *argv,
                 const size_t *argvlen,
                 struct fsm_reply *out)
{
    if (!f->has_query) {
        return FSM_ENOTSUP;
    }
    struct fsm_ctx at = *ctx;
    at.seed = 0; /* math.random continues where the last call left it */
    return call_command(f, "query", &at, false, argc, argv, argvlen, out);
}

int fsm_query(struct fsm *f,
              int argc,
              const char *const *argv,
              const size_t *argvlen,
              struct fsm_reply *out)
{
    struct fsm_ctx ctx = fsm_applied(f);
    return fsm_query_at(f, &ctx, argc, argv, argvlen, out);
}

int fsm_apply_command(struct fsm *f,
                      const struct fsm_ctx *ctx,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen,
                      struct fsm_reply *out)
{
    if (argc < 1) {
        return FSM_EINVAL;
    }
    if (!fsm_is_read(f, argv[0], argvlen[0])) {
        return fsm_apply(f, ctx, argc, argv, argvlen, out);
    }
    if (!f->has_query) {
        return FSM_ENOTSUP;
    }
    fsm_set_applied(f, ctx);
    return call_command(f, "query", ctx, false, argc, argv, argvlen, out);
}

int fsm_tick(struct fsm *f, const struct fsm_ctx *ctx)
{
    fsm_set_applied(f, ctx);
    if (!f->has_tick) {
        return 0;
    }
    struct fsm_call_args a = {.f = f, .fn = "tick", .ctx = ctx, .entry = true, .seeded = true};
    return fsm_call(&a);
}

int fsm_call_upgrade(struct fsm *f,
                     const struct fsm_ctx *ctx,
                     const char *old_version,
                     struct fsm_reply *out)
{
    if (!f->has_upgrade) {
        return 0;
    }
    struct fsm_call_args a = {.f = f,
                              .fn = "upgrade",
                              .ctx = ctx,
                              .entry = true,
                              .seeded = true,
                              .upgrade = true,
                              .version = old_version,
                              .out = out};
    return fsm_call(&a);
}

int fsm_keyspace(struct fsm *f, struct fsm_reply *out)
{
    struct fsm_reply r = {0};
    int rv = 0;
    if (f->has_keyspace) {
        struct fsm_ctx ctx = fsm_applied(f);
        struct fsm_call_args a = {
            .f = f, .fn = "keyspace", .ctx = &ctx, .keyspace = true, .readonly = true, .out = &r};
        rv = fsm_call(&a);
    }
    if (rv == 0) { /* an error reply (or no M.keyspace) says nothing: null */
        bool known = r.len > 0 && r.data[0] == '*';
        rv = known ? reply_append(out, r.data, r.len) : reply_append(out, "$-1\r\n", 5);
    }
    fsm_reply_free(&r);
    return rv;
}

struct fsm_ctx fsm_applied(const struct fsm *f)
{
    struct fsm_ctx ctx = f->applied;
    ctx.seed = 0;
    return ctx;
}

void fsm_set_applied(struct fsm *f, const struct fsm_ctx *ctx)
{
    f->applied = *ctx;
    f->time_ms = ctx->time_ms;
}

void fsm_gc_pause(struct fsm *f)
{
    lua_gc(f->L, LUA_GCSTOP);
    f->gc_paused_kb = lua_gc(f->L, LUA_GCCOUNT) + 1;
}

void fsm_gc_pause_child(struct fsm *f)
{
    fsm_gc_pause(f);
    f->gc_in_child = true;
}

bool fsm_gc_past_bound(const struct fsm *f, int heap_kb)
{
    /* Twice the heap (and 64 MiB at least): the garbage of a long pause stays bounded. */
    int limit = f->gc_paused_kb > 64 * 1024 ? f->gc_paused_kb : 64 * 1024;
    return f->gc_paused_kb != 0 && heap_kb - f->gc_paused_kb > limit;
}

bool fsm_gc_grown(struct fsm *f)
{
    return fsm_gc_past_bound(f, lua_gc(f->L, LUA_GCCOUNT));
}

void fsm_gc_resume(struct fsm *f)
{
    if (f->gc_paused_kb != 0) {
        lua_gc(f->L, LUA_GCRESTART);
        f->gc_paused_kb = 0;
    }
}

uint64_t fsm_lua_bytes(struct fsm *f)
{
    return (uint64_t)lua_gc(f->L, LUA_GCCOUNT) * 1024 + (uint64_t)lua_gc(f->L, LUA_GCCOUNTB);
}
