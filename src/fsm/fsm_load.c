/*
 * fsm_open and fsm_close: reads the script, creates its Lua state with the sandbox's
 * allocator, opens the sandboxed libraries, runs the chunk under the limits and checks
 * the module it returns against the contract (fsm_contract.c).
 */
#include <errno.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm_internal.h"

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

struct fsm_open_args
{
    struct fsm *f;
    const char *source;
    size_t len;
    struct fsm_contract contract; /* out: what the module lacks, "" when it loaded */
};

static int fsm_open_protected(lua_State *L)
{
    struct fsm_open_args *a = lua_touserdata(L, 1);
    struct fsm *f = a->f;
    lua_pushboolean(L, 0);                             /* false */
    f->traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* */

    fsm_stream_install(L, f); /* the w/r userdata */

    sandbox_open(L);

    char chunkname[sizeof f->chunk_name + 1];
    snprintf(chunkname, sizeof chunkname, "@%s", f->chunk_name);
    if (luaL_loadbufferx(L, a->source, a->len, chunkname, "t") != LUA_OK) { /* chunk | msg */
        return lua_error(L);
    }
    sandbox_begin(f, true);
    lua_call(L, 0, 1); /* M */
    sandbox_end(f);

    if (!fsm_check_module(L, f, -1, &a->contract)) {
        return 0; /* not an error of the script's code: fsm_open reports it without a traceback */
    }
    f->module_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* */
    sandbox_lock_globals(L);
    return 0;
}

/* label: what errmsg starts with (the path fsm_open was given, or the name). */
static int open_source(struct fsm **out,
                       const char *name,
                       const char *label,
                       const char *source,
                       size_t len,
                       const struct fsm_limits *limits,
                       char *errmsg,
                       size_t errmsg_size)
{
    set_errmsg(errmsg, errmsg_size, "%s", "");
    if (len > fsm_script_bytes_max) {
        set_errmsg(errmsg, errmsg_size, "%s: script larger than %d bytes", label,
                   fsm_script_bytes_max);
        return FSM_ELOAD;
    }
    struct fsm *f = calloc(1, sizeof *f);
    char *copy = malloc(len > 0 ? len : 1);
    if (f == NULL || copy == NULL) {
        free(f);
        free(copy);
        set_errmsg(errmsg, errmsg_size, "out of memory");
        return FSM_ENOMEM;
    }
    memcpy(copy, source, len);
    f->source = copy;
    f->source_len = len;
    if (limits != NULL) {
        f->limits = *limits;
    }
    f->budget.max = f->limits.instructions_max;
    f->memory.max = f->limits.memory_bytes_max;
    f->memory.command_max = f->limits.command_memory_bytes_max;
    f->memory.enforced = true;
    f->module_ref = LUA_NOREF;
    f->randomseed_ref = LUA_NOREF;
    f->traceback_ref = LUA_NOREF;
    f->stream_ref = LUA_NOREF;
    snprintf(f->chunk_name, sizeof f->chunk_name, "%s", name);

    f->L = lua_newstate(sandbox_alloc, f);
    if (f->L == NULL) {
        fsm_close(f);
        set_errmsg(errmsg, errmsg_size, "cannot create a Lua state: out of memory");
        return FSM_ENOMEM;
    }

    struct fsm_open_args args = {.f = f, .source = f->source, .len = len};
    lua_State *L = f->L;
    lua_pushcfunction(L, fsm_msghandler);     /* h */
    lua_pushcfunction(L, fsm_open_protected); /* h fn */
    lua_pushlightuserdata(L, &args);          /* h fn args */
    int status = lua_pcall(L, 1, 0, 1);       /* h [text] */
    bool budget = f->budget.exceeded;
    bool memory = f->memory.exceeded || status == LUA_ERRMEM;
    sandbox_end(f);
    if (status != LUA_OK) {
        fsm_take_error(f, budget   ? fsm_budget_text
                          : memory ? fsm_memory_text
                                   : (lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                                     : "error in error handling"));
        set_errmsg(errmsg, errmsg_size, "%s: %s", label, f->last_error);
        fsm_close(f);
        return FSM_ELOAD;
    }
    if (args.contract.len > 0) {
        set_errmsg(errmsg, errmsg_size, "%s: %s", label, args.contract.why);
        fsm_close(f);
        return FSM_ELOAD;
    }
    lua_settop(L, 0);
    *out = f;
    return 0;
}

int fsm_open(struct fsm **out,
             const char *script_path,
             const struct fsm_limits *limits,
             char *errmsg,
             size_t errmsg_size)
{
    set_errmsg(errmsg, errmsg_size, "%s", "");
    char *source = NULL;
    size_t len = 0;
    int rv = read_script(script_path, &source, &len, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    const char *base = strrchr(script_path, '/');
    rv = open_source(out, base != NULL ? base + 1 : script_path, script_path, source, len, limits,
                     errmsg, errmsg_size);
    free(source);
    return rv;
}

int fsm_open_source(struct fsm **out,
                    const char *name,
                    const char *source,
                    size_t len,
                    const struct fsm_limits *limits,
                    char *errmsg,
                    size_t errmsg_size)
{
    return open_source(out, name, name, source, len, limits, errmsg, errmsg_size);
}

void fsm_close_state(struct fsm *f)
{
    if (f->L != NULL) {
        lua_close(f->L);
        f->L = NULL;
    }
}

void fsm_close(struct fsm *f)
{
    if (f == NULL) {
        return;
    }
    fsm_close_state(f);
    sandbox_readonly_free(f);
    free(f->source);
    for (size_t i = 0; i < f->reads_count; i++) {
        free(f->reads[i]);
    }
    free(f->reads);
    for (size_t i = 0; i < f->commands_count; i++) {
        free((void *)f->commands[i].flags); /* the command's one block (fsm_contract.c) */
    }
    free(f->commands);
    free(f);
}
