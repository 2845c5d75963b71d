/*
 * The module's contract (README.md, "Writing a state machine"), checked once the script
 * has returned its module table: M.reads, the commands M.query serves, kept sorted for
 * fsm_is_read, and M.commands, the command table (looked up in fsm_commands.c).
 */
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm_internal.h"

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
    "M.query(cmd, ctx) is optional, but when present it must be a function "
    "(see README.md, Writing a state machine)";
static const char contract_reads[] =
    "M.reads is optional; when present it is a table naming the commands M.query serves, "
    "{ GET = true } or { \"GET\", ... } (see README.md, Writing a state machine)";
static const char contract_reads_query[] =
    "the commands in M.reads are served by M.query(cmd, ctx), so a script with M.reads must "
    "define it (see README.md, Writing a state machine)";

static const char contract_optional[] =
    "M.tick(ctx), M.keyspace(ctx) and M.upgrade(old_version, ctx) are optional, but when "
    "present they must be functions (see README.md, Writing a state machine)";
static const char contract_version[] =
    "M.version is optional; when present it is a string or an integer that names this "
    "version of the script, and M.upgrade of the next version receives it (see README.md, "
    "Upgrading the script)";
static const char contract_tick_ms[] =
    "M.tick_ms is optional; when present it is the milliseconds of idle log after which the "
    "leader logs a TICK entry, an integer from 1 to 86400000 (see README.md, Writing a state "
    "machine)";

/* Appends one problem to c->why, after a "; " when there is one already. */
__attribute__((format(printf, 2, 3))) void fsm_contract_add(struct fsm_contract *c,
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
void fsm_contract_explain(struct fsm_contract *c, const char *text)
{
    snprintf(c->why + c->len, sizeof c->why - c->len, ": %s", text);
    c->len = strlen(c->why);
}

/* Notes M[name] (M at idx) in c unless it is a function. [-0, +0, e] */
static void check_function(lua_State *L, int idx, const char *name, struct fsm_contract *c)
{
    int type = lua_getfield(L, idx, name); /* M[name] */
    if (type == LUA_TNIL) {
        fsm_contract_add(c, "M.%s is missing", name);
    } else if (type != LUA_TFUNCTION) {
        fsm_contract_add(c, "M.%s is a %s, not a function", name, lua_typename(L, type));
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
            fsm_contract_add(c, "M.reads has a %s key with a %s value", lua_typename(L, key),
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
        fsm_contract_add(c, "M.query is a %s, not a function", lua_typename(L, type));
        fsm_contract_explain(c, contract_query);
        return;
    }
    f->has_query = type == LUA_TFUNCTION;
    type = lua_getfield(L, idx, "reads"); /* reads */
    if (type != LUA_TNIL && type != LUA_TTABLE) {
        fsm_contract_add(c, "M.reads is a %s, not a table", lua_typename(L, type));
    } else if (type == LUA_TTABLE) {
        size_t count = count_reads(L, lua_absindex(L, -1), c);
        if (c->len == 0) {
            copy_reads(L, f, lua_absindex(L, -1), count);
        }
    }
    lua_pop(L, 1); /* */
    if (c->len > 0) {
        fsm_contract_explain(c, contract_reads);
    } else if (f->reads_count > 0 && !f->has_query) {
        fsm_contract_add(c, "M.reads names %s but M.query is missing", f->reads[0]);
        fsm_contract_explain(c, contract_reads_query);
    }
}

/* Checks M.version (M at idx) and keeps its text in f, for M.upgrade of a successor
 * (fsm_upgrade.c). [-0, +0, e] */
static void check_version(lua_State *L, struct fsm *f, int idx, struct fsm_contract *c)
{
    int type = lua_getfield(L, idx, "version"); /* version */
    size_t len = 0;
    const char *text =
        type == LUA_TSTRING || lua_isinteger(L, -1) ? lua_tolstring(L, -1, &len) : NULL;
    if (type != LUA_TNIL && (text == NULL || len >= sizeof f->version)) {
        fsm_contract_add(c, "M.version is %s",
                         text != NULL ? "too long" : "neither a string nor an integer");
        fsm_contract_explain(c, contract_version);
    } else if (text != NULL) {
        memcpy(f->version, text, len + 1);
        f->has_version = true;
    }
    lua_pop(L, 1); /* */
}

/* Checks M.tick, M.keyspace, M.upgrade, M.tick_ms and M.version (M at idx) and loads them into f.
 * [-0, +0, e] */
static void check_tick(lua_State *L, struct fsm *f, int idx, struct fsm_contract *c)
{
    static const char *const names[] = {"tick", "keyspace", "upgrade"};
    bool *has[] = {&f->has_tick, &f->has_keyspace, &f->has_upgrade};
    for (int i = 0; i < 3; i++) {
        int type = lua_getfield(L, idx, names[i]); /* fn */
        lua_pop(L, 1);                             /* */
        *has[i] = type == LUA_TFUNCTION;
        if (type != LUA_TNIL && type != LUA_TFUNCTION) {
            fsm_contract_add(c, "M.%s is a %s, not a function", names[i], lua_typename(L, type));
        }
    }
    if (c->len > 0) {
        fsm_contract_explain(c, contract_optional);
        return;
    }
    int type = lua_getfield(L, idx, "tick_ms"); /* tick_ms */
    lua_Integer ms = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1); /* */
    if (type != LUA_TNIL && (ms < 1 || ms > fsm_tick_ms_max)) {
        fsm_contract_add(c, "M.tick_ms is %s",
                         type == LUA_TNUMBER ? "out of range" : "not a number");
        fsm_contract_explain(c, contract_tick_ms);
    }
    f->tick_ms = type == LUA_TNIL ? 0 : ms;
    check_version(L, f, idx, c);
}

/*
 * Checks the module table at idx against the contract, loading M.reads into f; returns
 * false with c->why saying what is missing and what it must be. [-0, +0, e]
 */
bool fsm_check_module(lua_State *L, struct fsm *f, int idx, struct fsm_contract *c)
{
    if (!lua_istable(L, idx)) {
        fsm_contract_add(c, "the script must return its module table (it returned %s%s)",
                         lua_isnil(L, idx) ? "" : "a ", luaL_typename(L, idx));
        fsm_contract_explain(c, contract_required);
        return false;
    }
    idx = lua_absindex(L, idx);
    check_function(L, idx, "apply", c);
    check_function(L, idx, "snapshot", c);
    check_function(L, idx, "restore", c);
    if (c->len > 0) {
        fsm_contract_explain(c, contract_required);
        return false;
    }
    check_reads(L, f, idx, c);
    if (c->len == 0) {
        fsm_check_commands(L, f, idx, c);
    }
    if (c->len == 0) {
        check_tick(L, f, idx, c);
    }
    return c->len == 0;
}

int64_t fsm_tick_ms(const struct fsm *f)
{
    return f->tick_ms;
}

bool fsm_is_read(struct fsm *f, const char *name, size_t len)
{
    if (f->has_commands) {
        const struct fsm_command *c = fsm_command_find(f, name, len);
        return c != NULL && c->read;
    }
    char upper[64];
    if (len >= sizeof upper || memchr(name, '\0', len) != NULL || f->reads_count == 0) {
        return false;
    }
    upper_ascii(upper, name, len);
    const char *key = upper;
    return bsearch(&key, f->reads, f->reads_count, sizeof *f->reads, compare_names) != NULL;
}
