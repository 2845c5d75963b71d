/*
 * The command table (M.commands, fsm.h): lookups, Redis's checks before a command runs,
 * and its key arguments. The table is loaded and checked by fsm_contract.c; nothing here
 * touches the Lua state, so the node's loop thread calls these while the fsm thread runs.
 */
#include <stdio.h>
#include <string.h>

#include "fsm/fsm_internal.h"

bool fsm_has_commands(const struct fsm *f)
{
    return f->has_commands;
}

size_t fsm_commands_count(const struct fsm *f)
{
    return f->commands_count;
}

const struct fsm_command *fsm_command_at(const struct fsm *f, size_t i)
{
    return i < f->commands_count ? &f->commands[i] : NULL;
}

const struct fsm_command *fsm_command_find(const struct fsm *f, const char *name, size_t len)
{
    char lower[fsm_command_name_bytes_max + 1];
    if (len == 0 || len > fsm_command_name_bytes_max || f->commands_count == 0) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        lower[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    lower[len] = '\0';
    if (strlen(lower) != len) {
        return NULL; /* a NUL byte: no name has one */
    }
    size_t lo = 0;
    size_t hi = f->commands_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(lower, f->commands[mid].name);
        if (cmp == 0) {
            return &f->commands[mid];
        }
        if (cmp < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* What "%.*s" prints of s[0, len) at most max bytes: up to a NUL byte (Redis formats its
 * arguments as C strings). */
static size_t cstr_len(const char *s, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    const char *nul = memchr(s, '\0', n);
    return nul != NULL ? (size_t)(nul - s) : n;
}

/* Redis's text for a command it does not know (server.c, commandCheckExistence). */
static void unknown_command(int argc,
                            const char *const *argv,
                            const size_t *argvlen,
                            char *err,
                            size_t err_size)
{
    char args[128 + 3 + 1];
    size_t len = 0;
    for (int i = 1; i < argc && len < 128; i++) {
        size_t n = cstr_len(argv[i], argvlen[i], 128 - len);
        args[len++] = '\'';
        memcpy(args + len, argv[i], n);
        len += n;
        args[len++] = '\'';
        args[len++] = ' ';
    }
    snprintf(err, err_size, "ERR unknown command '%.*s', with args beginning with: %.*s",
             (int)cstr_len(argv[0], argvlen[0], 128), argv[0], (int)len, args);
    for (char *p = err; *p != '\0'; p++) {
        if (*p == '\r' || *p == '\n') {
            *p = ' ';
        }
    }
}

const struct fsm_command *fsm_command_check(const struct fsm *f,
                                            int argc,
                                            const char *const *argv,
                                            const size_t *argvlen,
                                            char *err,
                                            size_t err_size)
{
    if (err_size > 0) {
        err[0] = '\0';
    }
    if (!f->has_commands) {
        return NULL;
    }
    if (argc < 1) {
        snprintf(err, err_size, "ERR empty command");
        return NULL;
    }
    const struct fsm_command *c = fsm_command_find(f, argv[0], argvlen[0]);
    if (c == NULL) {
        unknown_command(argc, argv, argvlen, err, err_size);
        return NULL;
    }
    if ((c->arity > 0 && c->arity != argc) || argc < -c->arity) {
        snprintf(err, err_size, "ERR wrong number of arguments for '%s' command", c->name);
        return NULL;
    }
    return c;
}

void fsm_command_keys(const struct fsm_command *c,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen,
                      void (*fn)(void *arg, const char *key, size_t len),
                      void *arg)
{
    if (c->first_key <= 0 || c->step <= 0) {
        return;
    }
    int last = c->last_key < 0 ? argc + c->last_key : c->last_key;
    if (last >= argc) {
        return; /* Redis: no keys, the command reports its own error */
    }
    for (int j = c->first_key; j <= last; j += c->step) {
        fn(arg, argv[j], argvlen[j]);
    }
}
