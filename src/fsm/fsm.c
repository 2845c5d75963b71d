/*
 * The fsm's lifecycle and calls. Every Lua call runs inside lua_pcall with fsm_msghandler
 * (cf. lua.c's docall and msghandler): the only Lua API used outside protected mode is
 * what cannot raise (pushing C functions and light userdata, reading strings and
 * registry slots that already exist, lua_close).
 */
#include <errno.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm_internal.h"

#define FSM_STREAM_MT "luaraft.fsm.stream"

static const char budget_text[] = "ERR script exceeded its instruction budget";
static const char memory_text[] = "ERR script exceeded its memory budget";

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

__attribute__((format(printf, 3, 4))) static void set_errmsg(char *errmsg,
                                                             size_t size,
                                                             const char *fmt,
                                                             ...)
{
    if (errmsg == NULL || size == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, size, fmt, ap);
    va_end(ap);
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
static int fsm_msghandler(lua_State *L)
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
static void fsm_take_error(struct fsm *f, const char *text)
{
    lua_State *L = f->L;
    const char *tb = NULL;
    if (f->traceback_ref != LUA_NOREF &&
        lua_rawgeti(L, LUA_REGISTRYINDEX, f->traceback_ref) == LUA_TSTRING) { /* tb */
        tb = lua_tostring(L, -1);
    }
    if (tb != NULL && text != budget_text && text != memory_text) {
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

/* ------------------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------------------ */

/* strerror is not thread-safe; the fsm runs on a thread of its own. */
static const char *errno_text(int err, char *buf, size_t size)
{
    if (strerror_r(err, buf, size) != 0) {
        snprintf(buf, size, "errno %d", err);
    }
    return buf;
}

static int read_script(const char *path, char **out, size_t *out_len, char *errmsg, size_t size)
{
    char text[128];
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        set_errmsg(errmsg, size, "cannot open %s: %s", path, errno_text(errno, text, sizeof text));
        return FSM_ELOAD;
    }
    size_t cap = 4096;
    size_t len = 0;
    char *buf = malloc(cap);
    int rv = buf == NULL ? FSM_ENOMEM : 0;
    while (rv == 0) {
        if (len == cap) {
            char *grown = cap > fsm_script_bytes_max ? NULL : realloc(buf, cap * 2);
            if (grown == NULL) {
                rv = cap > fsm_script_bytes_max ? FSM_ELOAD : FSM_ENOMEM;
                set_errmsg(errmsg, size, "%s: script larger than %d bytes or out of memory", path,
                           fsm_script_bytes_max);
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, fp);
        len += n;
        if (n == 0) {
            if (ferror(fp)) {
                set_errmsg(errmsg, size, "cannot read %s: %s", path,
                           errno_text(errno, text, sizeof text));
                rv = FSM_ELOAD;
            }
            break;
        }
    }
    fclose(fp);
    if (rv != 0) {
        free(buf);
        return rv;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void upper_ascii(char *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        dst[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    dst[len] = '\0';
}

/* ------------------------------------------------------------------------------------
 * The module's contract (README.md, "Writing a state machine"), checked at load
 * ------------------------------------------------------------------------------------ */

/*
 * M.apply runs every committed command. M.snapshot and M.restore are required too: the
 * node compacts its log only through a snapshot, restarts from one and catches up a
 * lagging follower with one, and a script without M.snapshot made it fork a full-size
 * child on every apply batch (issue 7). M.query and M.reads are optional, but M.reads
 * names the commands that M.query serves, so one needs the other.
 */
static const char contract_required[] =
    "a script must define M.apply(cmd, ctx), M.snapshot(w) and M.restore(r) "
    "(see README.md, Writing a state machine)";
static const char contract_query[] =
    "M.query(cmd) is optional, but when present it must be a function "
    "(see README.md, Writing a state machine)";
static const char contract_reads[] =
    "M.reads is optional; when present it is a table naming the commands M.query serves, "
    "{ GET = true } or { \"GET\", ... } (see README.md, Writing a state machine)";
static const char contract_reads_query[] =
    "the commands in M.reads are served by M.query(cmd), so a script with M.reads must "
    "define it (see README.md, Writing a state machine)";

/* What is wrong with the module: "" while it keeps the contract. */
struct fsm_contract
{
    char why[fsm_error_bytes_max];
    size_t len;
};

/* Appends one problem to c->why, after a "; " when there is one already. */
__attribute__((format(printf, 2, 3))) static void contract_add(struct fsm_contract *c,
                                                               const char *fmt,
                                                               ...)
{
    if (c->len > 0 && c->len + 2 < sizeof c->why) {
        memcpy(c->why + c->len, "; ", 3);
        c->len += 2;
    }
    if (c->len + 1 >= sizeof c->why) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->why + c->len, sizeof c->why - c->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        c->len += (size_t)n < sizeof c->why - c->len ? (size_t)n : sizeof c->why - c->len - 1;
    }
}

/* Ends the list of problems with what the contract says, after ": ". */
static void contract_explain(struct fsm_contract *c, const char *text)
{
    snprintf(c->why + c->len, sizeof c->why - c->len, ": %s", text);
    c->len = strlen(c->why);
}

/* Notes M[name] (M at idx) in c unless it is a function. [-0, +0, e] */
static void check_function(lua_State *L, int idx, const char *name, struct fsm_contract *c)
{
    int type = lua_getfield(L, idx, name); /* M[name] */
    if (type == LUA_TNIL) {
        contract_add(c, "M.%s is missing", name);
    } else if (type != LUA_TFUNCTION) {
        contract_add(c, "M.%s is a %s, not a function", name, lua_typename(L, type));
    }
    lua_pop(L, 1); /* */
}

/*
 * Counts the command names in the reads table at idx ({NAME = true} or {"NAME", ...}; a
 * NAME = false entry names nothing), or notes in c the first entry of another shape.
 * [-0, +0, e]
 */
static size_t count_reads(lua_State *L, int idx, struct fsm_contract *c)
{
    size_t count = 0;
    lua_pushnil(L);                 /* nil */
    while (lua_next(L, idx) != 0) { /* key value */
        int key = lua_type(L, -2);
        int value = lua_type(L, -1);
        if (key == LUA_TNUMBER && value == LUA_TSTRING) {
            count++;
        } else if (key == LUA_TSTRING) {
            count += lua_toboolean(L, -1) ? 1 : 0;
        } else {
            contract_add(c, "M.reads has a %s key with a %s value", lua_typename(L, key),
                         lua_typename(L, value));
            lua_pop(L, 2); /* */
            return 0;
        }
        lua_pop(L, 1); /* key */
    }
    return count;
}

/* Copies the names of the reads table at idx (checked by count_reads) into f->reads,
 * upper-cased and sorted. [-0, +0, e] */
static void copy_reads(lua_State *L, struct fsm *f, int idx, size_t count)
{
    f->reads = calloc(count > 0 ? count : 1, sizeof *f->reads);
    if (f->reads == NULL) {
        luaL_error(L, "out of memory");
    }
    lua_pushnil(L);                 /* nil */
    while (lua_next(L, idx) != 0) { /* key value */
        int name = lua_type(L, -2) == LUA_TSTRING ? -2 : -1;
        if (name == -2 && !lua_toboolean(L, -1)) {
            lua_pop(L, 1); /* key */
            continue;
        }
        size_t len;
        const char *s = lua_tolstring(L, name, &len);
        char *copy = malloc(len + 1);
        if (copy == NULL) {
            luaL_error(L, "out of memory");
        }
        upper_ascii(copy, s, len);
        f->reads[f->reads_count++] = copy;
        lua_pop(L, 1); /* key */
    }
    qsort(f->reads, f->reads_count, sizeof *f->reads, compare_names);
}

/* Checks M.query and M.reads (M at idx) and loads M.reads into f. [-0, +0, e] */
static void check_reads(lua_State *L, struct fsm *f, int idx, struct fsm_contract *c)
{
    int type = lua_getfield(L, idx, "query"); /* query */
    lua_pop(L, 1);                            /* */
    if (type != LUA_TNIL && type != LUA_TFUNCTION) {
        contract_add(c, "M.query is a %s, not a function", lua_typename(L, type));
        contract_explain(c, contract_query);
        return;
    }
    f->has_query = type == LUA_TFUNCTION;
    type = lua_getfield(L, idx, "reads"); /* reads */
    if (type != LUA_TNIL && type != LUA_TTABLE) {
        contract_add(c, "M.reads is a %s, not a table", lua_typename(L, type));
    } else if (type == LUA_TTABLE) {
        size_t count = count_reads(L, lua_absindex(L, -1), c);
        if (c->len == 0) {
            copy_reads(L, f, lua_absindex(L, -1), count);
        }
    }
    lua_pop(L, 1); /* */
    if (c->len > 0) {
        contract_explain(c, contract_reads);
    } else if (f->reads_count > 0 && !f->has_query) {
        contract_add(c, "M.reads names %s but M.query is missing", f->reads[0]);
        contract_explain(c, contract_reads_query);
    }
}

/*
 * Checks the module table at idx against the contract, loading M.reads into f; returns
 * false with c->why saying what is missing and what it must be. [-0, +0, e]
 */
static bool check_module(lua_State *L, struct fsm *f, int idx, struct fsm_contract *c)
{
    if (!lua_istable(L, idx)) {
        contract_add(c, "the script must return its module table (it returned %s%s)",
                     lua_isnil(L, idx) ? "" : "a ", luaL_typename(L, idx));
        contract_explain(c, contract_required);
        return false;
    }
    idx = lua_absindex(L, idx);
    check_function(L, idx, "apply", c);
    check_function(L, idx, "snapshot", c);
    check_function(L, idx, "restore", c);
    if (c->len > 0) {
        contract_explain(c, contract_required);
        return false;
    }
    check_reads(L, f, idx, c);
    return c->len == 0;
}

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

struct fsm_open_args
{
    struct fsm *f;
    const char *source;
    size_t len;
    struct fsm_contract contract; /* out: what the module lacks, "" when it loaded */
};

static int fsm_open_protected(lua_State *L)
{
    static const luaL_Reg stream_methods[] = {
        {"write", stream_write},
        {"read", stream_read},
        {NULL, NULL},
    };
    struct fsm_open_args *a = lua_touserdata(L, 1);
    struct fsm *f = a->f;
    lua_pushboolean(L, 0);                             /* false */
    f->traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* */

    f->stream_box = lua_newuserdatauv(L, sizeof *f->stream_box, 0); /* box */
    f->stream_box->s = NULL;
    luaL_newmetatable(L, FSM_STREAM_MT);            /* box mt */
    luaL_newlib(L, stream_methods);                 /* box mt methods */
    lua_setfield(L, -2, "__index");                 /* box mt */
    lua_setmetatable(L, -2);                        /* box */
    f->stream_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* */

    sandbox_open(L);

    char chunkname[sizeof f->chunk_name + 1];
    snprintf(chunkname, sizeof chunkname, "@%s", f->chunk_name);
    if (luaL_loadbufferx(L, a->source, a->len, chunkname, "t") != LUA_OK) { /* chunk | msg */
        return lua_error(L);
    }
    sandbox_begin(f, true);
    lua_call(L, 0, 1); /* M */
    sandbox_end(f);

    if (!check_module(L, f, -1, &a->contract)) {
        return 0; /* not an error of the script's code: fsm_open reports it without a traceback */
    }
    f->module_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* */
    sandbox_lock_globals(L);
    return 0;
}

int fsm_open(struct fsm **out,
             const char *script_path,
             const struct fsm_limits *limits,
             char *errmsg,
             size_t errmsg_size)
{
    set_errmsg(errmsg, errmsg_size, "%s", "");
    struct fsm *f = calloc(1, sizeof *f);
    if (f == NULL) {
        set_errmsg(errmsg, errmsg_size, "out of memory");
        return FSM_ENOMEM;
    }
    f->budget.max = limits != NULL ? limits->instructions_max : 0;
    f->memory.max = limits != NULL ? limits->memory_bytes_max : 0;
    f->memory.enforced = true;
    f->module_ref = LUA_NOREF;
    f->randomseed_ref = LUA_NOREF;
    f->traceback_ref = LUA_NOREF;
    f->stream_ref = LUA_NOREF;
    const char *base = strrchr(script_path, '/');
    snprintf(f->chunk_name, sizeof f->chunk_name, "%s", base != NULL ? base + 1 : script_path);

    char *source = NULL;
    size_t len = 0;
    int rv = read_script(script_path, &source, &len, errmsg, errmsg_size);
    if (rv != 0) {
        free(f);
        return rv;
    }
    f->L = lua_newstate(sandbox_alloc, f);
    if (f->L == NULL) {
        free(source);
        free(f);
        set_errmsg(errmsg, errmsg_size, "cannot create a Lua state: out of memory");
        return FSM_ENOMEM;
    }

    struct fsm_open_args args = {.f = f, .source = source, .len = len};
    lua_State *L = f->L;
    lua_pushcfunction(L, fsm_msghandler);     /* h */
    lua_pushcfunction(L, fsm_open_protected); /* h fn */
    lua_pushlightuserdata(L, &args);          /* h fn args */
    int status = lua_pcall(L, 1, 0, 1);       /* h [text] */
    bool budget = f->budget.exceeded;
    bool memory = f->memory.exceeded || status == LUA_ERRMEM;
    sandbox_end(f);
    free(source);
    if (status != LUA_OK) {
        fsm_take_error(f, budget   ? budget_text
                          : memory ? memory_text
                                   : (lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                                     : "error in error handling"));
        set_errmsg(errmsg, errmsg_size, "%s: %s", script_path, f->last_error);
        fsm_close(f);
        return FSM_ELOAD;
    }
    if (args.contract.len > 0) {
        set_errmsg(errmsg, errmsg_size, "%s: %s", script_path, args.contract.why);
        fsm_close(f);
        return FSM_ELOAD;
    }
    lua_settop(L, 0);
    *out = f;
    return 0;
}

void fsm_close(struct fsm *f)
{
    if (f == NULL) {
        return;
    }
    if (f->L != NULL) {
        lua_close(f->L);
    }
    for (size_t i = 0; i < f->reads_count; i++) {
        free(f->reads[i]);
    }
    free(f->reads);
    free(f);
}

bool fsm_is_read(struct fsm *f, const char *name, size_t len)
{
    char upper[64];
    if (len >= sizeof upper || memchr(name, '\0', len) != NULL || f->reads_count == 0) {
        return false;
    }
    upper_ascii(upper, name, len);
    const char *key = upper;
    return bsearch(&key, f->reads, f->reads_count, sizeof *f->reads, compare_names) != NULL;
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
    const char *fn; /* "apply" or "query" */
    const struct fsm_ctx *ctx;
    int argc;
    const char *const *argv;
    const size_t *argvlen;
    struct fsm_reply *out;
    int host_error; /* FSM_ENOMEM when out could not grow */
};

static void set_integer_field(lua_State *L, const char *key, lua_Integer value)
{
    lua_pushinteger(L, value); /* t value */
    lua_setfield(L, -2, key);  /* t */
}

static int fsm_call_protected(lua_State *L)
{
    struct fsm_call_args *a = lua_touserdata(L, 1);
    struct fsm *f = a->f;
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->module_ref); /* a M */
    lua_getfield(L, -1, a->fn);                       /* a M fn */
    if (a->ctx != NULL) {
        f->time_ms = a->ctx->time_ms;
        lua_rawgeti(L, LUA_REGISTRYINDEX, f->randomseed_ref); /* a M fn randomseed */
        lua_pushinteger(L, (lua_Integer)a->ctx->seed);        /* a M fn randomseed seed */
        lua_call(L, 1, 0);                                    /* a M fn */
    }
    lua_createtable(L, a->argc, 0); /* a M fn cmd */
    for (int i = 0; i < a->argc; i++) {
        lua_pushlstring(L, a->argv[i], a->argvlen[i]); /* a M fn cmd arg */
        lua_rawseti(L, -2, i + 1);                     /* a M fn cmd */
    }
    int nargs = 1;
    if (a->ctx != NULL) {
        lua_createtable(L, 0, 5); /* a M fn cmd ctx */
        set_integer_field(L, "index", (lua_Integer)a->ctx->index);
        set_integer_field(L, "term", (lua_Integer)a->ctx->term);
        set_integer_field(L, "time_ms", (lua_Integer)a->ctx->time_ms);
        set_integer_field(L, "time", (lua_Integer)sandbox_seconds(a->ctx->time_ms));
        set_integer_field(L, "seed", (lua_Integer)a->ctx->seed);
        nargs = 2;
    }
    sandbox_begin(f, true);
    lua_call(L, nargs, 1); /* a M reply */
    int rv = reply_encode(L, -1, a->out);
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
    if (a->argc < 1) {
        return FSM_EINVAL;
    }
    size_t mark = a->out->len;
    f->last_error[0] = '\0';
    lua_settop(L, 0);
    lua_pushcfunction(L, fsm_msghandler);     /* h */
    lua_pushcfunction(L, fsm_call_protected); /* h fn */
    lua_pushlightuserdata(L, a);              /* h fn a */
    int status = lua_pcall(L, 1, 0, 1);       /* h [text] */
    bool budget = f->budget.exceeded;
    bool memory = f->memory.exceeded || status == LUA_ERRMEM;
    sandbox_end(f);
    if (status == LUA_OK && !budget && !memory) {
        lua_settop(L, 0);
        return 0;
    }
    a->out->len = mark;
    if (a->host_error != 0) {
        lua_settop(L, 0);
        return a->host_error;
    }
    const char *text = budget ? budget_text : memory ? memory_text : NULL;
    if (text == NULL) {
        text = status == LUA_ERRRUN && lua_type(L, -1) == LUA_TSTRING
                   ? lua_tostring(L, -1)
                   : "ERR error in error handling";
    }
    fsm_take_error(f, text);
    int rv = reply_append_error(a->out, text, strlen(text));
    lua_settop(L, 0);
    if (memory) {
        lua_gc(L, LUA_GCCOLLECT);
    }
    return rv;
}

int fsm_apply(struct fsm *f,
              const struct fsm_ctx *ctx,
              int argc,
              const char *const *argv,
              const size_t *argvlen,
              struct fsm_reply *out)
{
    struct fsm_call_args a = {
        .f = f,
        .fn = "apply",
        .ctx = ctx,
        .argc = argc,
        .argv = argv,
        .argvlen = argvlen,
        .out = out,
    };
    return fsm_call(&a);
}

int fsm_query(struct fsm *f,
              int argc,
              const char *const *argv,
              const size_t *argvlen,
              struct fsm_reply *out)
{
    if (!f->has_query) {
        return FSM_ENOTSUP;
    }
    struct fsm_call_args a = {
        .f = f,
        .fn = "query",
        .argc = argc,
        .argv = argv,
        .argvlen = argvlen,
        .out = out,
    };
    return fsm_call(&a);
}

/* ------------------------------------------------------------------------------------
 * snapshot and restore
 * ------------------------------------------------------------------------------------ */

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
    fsm_take_error(f, memory ? memory_text
                             : (lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                               : "ERR error in error handling"));
    lua_settop(L, 0);
    if (memory) {
        lua_gc(L, LUA_GCCOLLECT);
    }
    return stream->failed ? FSM_ESTREAM : FSM_ESCRIPT;
}

int fsm_snapshot(struct fsm *f, fsm_write_fn write_fn, void *arg)
{
    struct fsm_stream stream = {.write = write_fn, .arg = arg};
    return fsm_stream_run(f, "snapshot", &stream);
}

int fsm_restore(struct fsm *f, fsm_read_fn read_fn, void *arg)
{
    struct fsm_stream stream = {.read = read_fn, .arg = arg};
    return fsm_stream_run(f, "restore", &stream);
}
