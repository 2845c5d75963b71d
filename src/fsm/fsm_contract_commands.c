/*
 * The contract of M.commands, the command table (fsm.h has it in words): every entry
 * checked strictly, with a message naming the command and the field, then copied into
 * f->commands for fsm_commands.c. Called from fsm_check_module (fsm_contract.c).
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "fsm/fsm_internal.h"

static const char contract_commands[] =
    "M.commands is optional; when present it maps each command name to {arity = N (N: "
    "exactly N words counting the name, -N: at least N), keys = {first, last, step} "
    "(optional, as Redis's COMMAND gives them: last -1 is the last argument), read = true "
    "for a command M.query serves (optional), flags = {\"denyoom\", ...} (optional)} "
    "(see README.md, Writing a state machine)";
static const char contract_commands_query[] =
    "the commands marked read = true in M.commands are served by M.query(cmd, ctx), so "
    "the script must define it (see README.md, Writing a state machine)";
static const char contract_commands_reads[] =
    "give one or the other: mark the reads in M.commands with read = true and remove "
    "M.reads (see README.md, Writing a state machine)";

/* One entry of M.commands as checked, before it is copied into f->commands. */
struct command_spec
{
    const char *name; /* as the script wrote it (a key of M.commands) */
    size_t name_len;
    lua_Integer arity, first, last, step;
    bool read;
    size_t n_flags;
    const char *flags[fsm_command_flags_max]; /* M.commands[name].flags, in order */
    size_t flag_len[fsm_command_flags_max];
};

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == ':' || ch == '-';
}

static bool flag_ok(const char *s, size_t len)
{
    if (len == 0 || len > fsm_command_flag_bytes_max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')) {
            return false;
        }
    }
    return true;
}

/* M.commands[name] has only the fields read, arity, keys and flags. [-0, +0, e] */
static void check_fields(lua_State *L,
                         int idx,
                         const struct command_spec *cs,
                         struct fsm_contract *c)
{
    static const char *const known[] = {"read", "arity", "keys", "flags"};
    lua_pushnil(L);                 /* nil */
    while (lua_next(L, idx) != 0) { /* key value */
        bool ok = false;
        if (lua_type(L, -2) == LUA_TSTRING) {
            for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
                ok = ok || strcmp(lua_tostring(L, -2), known[i]) == 0;
            }
            if (!ok) {
                fsm_contract_add(c, "M.commands.%s has an unknown field '%s'", cs->name,
                                 lua_tostring(L, -2));
            }
        } else {
            fsm_contract_add(c, "M.commands.%s has a %s key", cs->name, luaL_typename(L, -2));
        }
        lua_pop(L, 1); /* key */
        if (!ok) {
            lua_pop(L, 1); /* */
            return;
        }
    }
}

/* M.commands[name].keys (at idx, a table) into cs. [-0, +0, e] */
static void check_keys(lua_State *L, int idx, struct command_spec *cs, struct fsm_contract *c)
{
    lua_Integer v[3] = {0, 0, 0};
    bool ok = lua_rawlen(L, idx) == 3;
    for (int i = 0; i < 3 && ok; i++) {
        ok = lua_rawgeti(L, idx, i + 1) == LUA_TNUMBER && lua_isinteger(L, -1); /* v */
        v[i] = ok ? lua_tointeger(L, -1) : 0;
        lua_pop(L, 1); /* */
    }
    lua_pushnil(L);                          /* nil */
    for (int n = 0; lua_next(L, idx); n++) { /* key value */
        ok = ok && n < 3;
        lua_pop(L, 1); /* key */
    }
    const char *name = cs->name;
    if (!ok) {
        fsm_contract_add(c, "M.commands.%s.keys must be {first, last, step}, three integers", name);
        return;
    }
    lua_Integer fewest = cs->arity < 0 ? -cs->arity : cs->arity; /* words, the name included */
    lua_Integer last = v[1] < 0 ? fewest + v[1] : v[1];
    if (v[0] < 1) {
        fsm_contract_add(c,
                         "M.commands.%s.keys: first must be at least 1 (leave keys out for a "
                         "command without key arguments)",
                         name);
    } else if (v[2] < 1 || v[2] > command_argc_max) {
        fsm_contract_add(c, "M.commands.%s.keys: step must be at least 1", name);
    } else if (v[1] == 0 || (v[1] > 0 && v[1] < v[0])) {
        fsm_contract_add(c,
                         "M.commands.%s.keys: last must be at least first, or negative (-1 is "
                         "the last argument)",
                         name);
    } else if (((cs->arity > 0 || v[1] > 0) && (last >= fewest || last < v[0])) ||
               v[0] > command_argc_max || v[1] < -command_argc_max) {
        /* A fixed argc must hold the keys; so must the fewest arguments, for a last key
         * counted from the front. Counted from the end, there are none when too few; no
         * call has more than command_argc_max arguments. */
        fsm_contract_add(c,
                         "M.commands.%s.keys {%lld, %lld, %lld} names arguments that a call "
                         "of arity %lld need not have",
                         name, (long long)v[0], (long long)v[1], (long long)v[2],
                         (long long)cs->arity);
    }
    cs->first = v[0];
    cs->last = v[1];
    cs->step = v[2];
}

/* M.commands[name].flags (at idx, a table) into cs. [-0, +0, e] */
static void check_flags(lua_State *L, int idx, struct command_spec *cs, struct fsm_contract *c)
{
    size_t n = lua_rawlen(L, idx);
    size_t entries = 0;
    lua_pushnil(L);                 /* nil */
    while (lua_next(L, idx) != 0) { /* key value */
        entries++;
        lua_pop(L, 1); /* key */
    }
    if (entries != n || n > fsm_command_flags_max) {
        fsm_contract_add(c, "M.commands.%s.flags must be a list of at most %d strings", cs->name,
                         (int)fsm_command_flags_max);
        return;
    }
    const char *conflict = cs->read ? "write" : "readonly";
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *s = lua_rawgeti(L, idx, (lua_Integer)i + 1) == LUA_TSTRING
                            ? lua_tolstring(L, -1, &len) /* kept alive by the table */
                            : NULL;
        lua_pop(L, 1); /* */
        if (s == NULL || !flag_ok(s, len)) {
            fsm_contract_add(c,
                             "M.commands.%s.flags[%zu] must be a flag name: lowercase letters, "
                             "digits and _ (at most %d)",
                             cs->name, i + 1, (int)fsm_command_flag_bytes_max);
            return;
        }
        if (strcmp(s, cs->read ? "readonly" : "write") == 0) {
            continue; /* the default, which comes first anyway */
        }
        if (strcmp(s, conflict) == 0) {
            fsm_contract_add(c, "M.commands.%s.flags says %s, but the command is a %s", cs->name, s,
                             cs->read ? "read (read = true)" : "write (no read = true)");
            return;
        }
        for (size_t j = 0; j < cs->n_flags; j++) {
            if (strcmp(cs->flags[j], s) == 0) {
                fsm_contract_add(c, "M.commands.%s.flags lists %s twice", cs->name, s);
                return;
            }
        }
        cs->flags[cs->n_flags] = s;
        cs->flag_len[cs->n_flags++] = len;
    }
}

typedef void (*field_check)(lua_State *L, int idx, struct command_spec *cs, struct fsm_contract *c);

/* M.commands[name][field] (M.commands[name] at idx): nil, or a table that check takes.
 * [-0, +0, e] */
static void check_table_field(lua_State *L,
                              int idx,
                              const char *field,
                              struct command_spec *cs,
                              struct fsm_contract *c,
                              field_check check)
{
    int type = lua_getfield(L, idx, field); /* v */
    if (type == LUA_TTABLE) {
        check(L, lua_absindex(L, -1), cs, c);
    } else if (type != LUA_TNIL) {
        fsm_contract_add(c, "M.commands.%s.%s is a %s, not a table", cs->name, field,
                         lua_typename(L, type));
    }
    lua_pop(L, 1); /* */
}

/* Checks M.commands[name] (the value at idx) into cs. [-0, +0, e] */
static void check_command(lua_State *L, int idx, struct command_spec *cs, struct fsm_contract *c)
{
    const char *name = cs->name;
    size_t mark = c->len;
    bool name_ok = cs->name_len > 0 && cs->name_len <= fsm_command_name_bytes_max;
    for (size_t i = 0; i < cs->name_len && name_ok; i++) {
        name_ok = name_char(name[i]);
    }
    if (!name_ok) {
        fsm_contract_add(c,
                         "M.commands has a bad command name '%s' (1 to %d letters, digits and "
                         "_ . : -)",
                         name, (int)fsm_command_name_bytes_max);
        return;
    }
    if (!lua_istable(L, idx)) {
        fsm_contract_add(c, "M.commands.%s is a %s, not a table", name, luaL_typename(L, idx));
        return;
    }
    check_fields(L, idx, cs, c);
    int type = lua_getfield(L, idx, "read"); /* read */
    cs->read = lua_toboolean(L, -1);
    lua_pop(L, 1); /* */
    if (type != LUA_TNIL && type != LUA_TBOOLEAN) {
        fsm_contract_add(c, "M.commands.%s.read is a %s, not a boolean", name,
                         lua_typename(L, type));
    }
    type = lua_getfield(L, idx, "arity"); /* arity */
    cs->arity = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1); /* */
    if (cs->arity == 0 || cs->arity > command_argc_max || cs->arity < -command_argc_max) {
        fsm_contract_add(c, "M.commands.%s.arity %s", name,
                         type == LUA_TNIL ? "is missing"
                                          : "must be an integer other than 0 (N: exactly N words "
                                            "counting the name, -N: at least N)");
    }
    if (c->len == mark) {
        check_table_field(L, idx, "keys", cs, c, check_keys);
    }
    if (c->len == mark) {
        check_table_field(L, idx, "flags", cs, c, check_flags);
    }
}

static int compare_commands(const void *a, const void *b)
{
    return strcmp(((const struct fsm_command *)a)->name, ((const struct fsm_command *)b)->name);
}

/*
 * One allocation per command: the flags' pointers, then the name (lower-cased) and the
 * flags' strings; fsm_close frees it through c->flags. The default flag comes first.
 * [-0, +0, e]
 */
static void copy_command(lua_State *L, const struct command_spec *cs, struct fsm_command *out)
{
    const char *def = cs->read ? "readonly" : "write";
    size_t n = cs->n_flags + 1;
    size_t bytes = n * sizeof(char *) + cs->name_len + 1 + strlen(def) + 1;
    for (size_t i = 0; i < cs->n_flags; i++) {
        bytes += cs->flag_len[i] + 1;
    }
    char **flags = malloc(bytes);
    if (flags == NULL) {
        luaL_error(L, "out of memory");
    }
    char *p = (char *)(flags + n);
    char *name = p;
    for (size_t i = 0; i < cs->name_len; i++) {
        char ch = cs->name[i];
        *p++ = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    *p++ = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *s = i == 0 ? def : cs->flags[i - 1];
        size_t len = i == 0 ? strlen(def) : cs->flag_len[i - 1];
        flags[i] = p;
        memcpy(p, s, len + 1);
        p += len + 1;
    }
    *out = (struct fsm_command){
        .name = name,
        .arity = (int)cs->arity,
        .first_key = (int)cs->first,
        .last_key = (int)cs->last,
        .step = (int)cs->step,
        .read = cs->read,
        .flags = (const char *const *)flags,
        .n_flags = n,
    };
}

/* Copies the checked specs into f->commands, sorted by name; refuses a name given twice
 * (names are case-insensitive). [-0, +0, e] */
static void copy_commands(lua_State *L,
                          struct fsm *f,
                          const struct command_spec *specs,
                          size_t n,
                          struct fsm_contract *c)
{
    f->commands = calloc(n, sizeof *f->commands);
    if (f->commands == NULL) {
        luaL_error(L, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        copy_command(L, &specs[i], &f->commands[i]);
        f->commands_count++;
    }
    qsort(f->commands, n, sizeof *f->commands, compare_commands);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(f->commands[i - 1].name, f->commands[i].name) == 0) {
            fsm_contract_add(c, "M.commands names %s twice (command names are case-insensitive)",
                             f->commands[i].name);
            return;
        }
    }
}

/* Checks the command names of M.commands (at t) and each entry, in the names' order, then
 * loads them into f. [-0, +0, e] */
static void check_command_table(lua_State *L, struct fsm *f, int t, struct fsm_contract *c)
{
    size_t n = 0;
    lua_pushnil(L);               /* nil */
    while (lua_next(L, t) != 0) { /* key value */
        lua_pop(L, 1);            /* key */
        if (lua_type(L, -1) != LUA_TSTRING) {
            fsm_contract_add(c, "M.commands has a %s key (command names are strings)",
                             luaL_typename(L, -1));
            lua_pop(L, 1); /* */
            return;
        }
        n++;
    }
    if (n == 0) {
        fsm_contract_add(c, "M.commands names no command");
        return;
    }
    sandbox_push_sorted_keys(L, t);                                          /* names */
    struct command_spec *specs = lua_newuserdatauv(L, n * sizeof *specs, 0); /* names specs */
    memset(specs, 0, n * sizeof *specs);
    for (size_t i = 0; i < n && c->len == 0; i++) {
        lua_rawgeti(L, -2, (lua_Integer)i + 1);                   /* names specs name */
        specs[i].name = lua_tolstring(L, -1, &specs[i].name_len); /* kept alive by names */
        lua_rawget(L, t);                                         /* names specs entry */
        check_command(L, lua_absindex(L, -1), &specs[i], c);
        lua_pop(L, 1); /* names specs */
    }
    if (c->len == 0) {
        copy_commands(L, f, specs, n, c);
    }
    lua_pop(L, 2); /* */
}

void fsm_check_commands(lua_State *L, struct fsm *f, int idx, struct fsm_contract *c)
{
    int type = lua_getfield(L, idx, "commands"); /* commands */
    if (type == LUA_TNIL) {
        lua_pop(L, 1); /* */
        return;
    }
    f->has_commands = true;
    if (type != LUA_TTABLE) {
        fsm_contract_add(c, "M.commands is a %s, not a table", lua_typename(L, type));
    } else {
        check_command_table(L, f, lua_absindex(L, -1), c);
    }
    lua_pop(L, 1); /* */
    if (c->len > 0) {
        fsm_contract_explain(c, contract_commands);
        return;
    }
    type = lua_getfield(L, idx, "reads"); /* reads */
    lua_pop(L, 1);                        /* */
    if (type != LUA_TNIL) {
        fsm_contract_add(c, "M.commands and M.reads are both given");
        fsm_contract_explain(c, contract_commands_reads);
        return;
    }
    for (size_t i = 0; i < f->commands_count && !f->has_query; i++) {
        if (f->commands[i].read) {
            fsm_contract_add(c, "M.commands marks %s as a read but M.query is missing",
                             f->commands[i].name);
            fsm_contract_explain(c, contract_commands_query);
            return;
        }
    }
}
