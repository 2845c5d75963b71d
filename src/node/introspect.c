/*
 * The node's commands about itself and the cluster: COMMAND (the script's table and the
 * node's own commands, in Redis 7.0's reply shapes), CONFIG GET (the few parameters
 * clients ask for), INFO and CLUSTER (their text in info.c and cluster_view.c), RAFT.INFO
 * and RAFT.SNAPSHOT.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/resp.h"
#include "command.h"
#include "fsm/job.h"
#include "fsm/fsm.h"
#include "node/cluster_view.h"
#include "node/info.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "node/session.h"
#include "util/assert.h"

static bool word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* ------------------------------------------------------------------------------------ */
/* COMMAND. */

/* One command as COMMAND INFO shows it (Redis 7.0: ten fields). */
static void put_info(struct buf *b,
                     const char *name,
                     int arity,
                     const char *flags,
                     int first,
                     int last,
                     int step)
{
    resp_put_array(b, 10);
    resp_put_cstr(b, name);
    resp_put_integer(b, arity);
    size_t nf = 0;
    for (const char *p = flags; *p != '\0'; p++) {
        nf += (p == flags || p[-1] == ' ') && *p != ' ';
    }
    resp_put_set(b, nf);
    for (const char *p = flags; *p != '\0';) {
        size_t k = strcspn(p, " ");
        if (k > 0) {
            resp_put_status(b, p, k);
        }
        p += k;
        p += *p == ' ';
    }
    resp_put_integer(b, first);
    resp_put_integer(b, last);
    resp_put_integer(b, step);
    resp_put_set(b, 0);   /* ACL categories */
    resp_put_set(b, 0);   /* tips */
    resp_put_array(b, 0); /* key specs */
    resp_put_array(b, 0); /* subcommands */
}

static void put_script_info(struct buf *b, const struct fsm_command *c)
{
    char flags[256];
    size_t k = 0;
    flags[0] = '\0';
    if (c->n_flags == 0) {
        snprintf(flags, sizeof flags, "%s", c->read ? "readonly" : "write");
    }
    for (size_t i = 0; i < c->n_flags && k < sizeof flags; i++) {
        int w = snprintf(flags + k, sizeof flags - k, "%s%s", i > 0 ? " " : "", c->flags[i]);
        k += w > 0 ? (size_t)w : 0;
    }
    put_info(b, c->name, c->arity, flags, c->first_key, c->last_key, c->step);
}

/* Puts the info of the command named, or a null if neither the node nor the script has it. */
static bool put_named(struct node *n, struct buf *b, const char *name, size_t len)
{
    const struct conn_command *c = connection_find(name, len);
    if (c != NULL) {
        put_info(b, c->name, c->arity, c->flags, 0, 0, 0);
        return true;
    }
    const struct fsm_command *f = fsm_command_find(n->fsm, name, len);
    if (f != NULL) {
        put_script_info(b, f);
        return true;
    }
    return false;
}

static size_t commands_total(struct node *n)
{
    return connection_count() + fsm_commands_count(n->fsm);
}

static void command_list(struct node *n, struct buf *b, bool info)
{
    resp_put_array(b, commands_total(n));
    for (size_t i = 0; i < connection_count(); i++) {
        const struct conn_command *c = connection_at(i);
        if (info) {
            put_info(b, c->name, c->arity, c->flags, 0, 0, 0);
        } else {
            resp_put_cstr(b, c->name);
        }
    }
    for (size_t i = 0; i < fsm_commands_count(n->fsm); i++) {
        const struct fsm_command *c = fsm_command_at(n->fsm, i);
        if (info) {
            put_script_info(b, c);
        } else {
            resp_put_cstr(b, c->name);
        }
    }
}

/* One command's docs: the script's table has none to give beyond its group. */
static void put_doc(struct buf *b, const char *name, bool script)
{
    resp_put_cstr(b, name);
    resp_put_map(b, 2);
    resp_put_cstr(b, "summary");
    resp_put_cstr(b, script ? "a command of the script" : "a command of the luaraft node");
    resp_put_cstr(b, "group");
    resp_put_cstr(b, script ? "script" : "connection");
}

static void command_docs(struct node *n,
                         struct buf *b,
                         int argc,
                         const char *const *argv,
                         const size_t *argvlen)
{
    size_t k = 0;
    struct buf body;
    buf_init(&body);
    for (size_t i = 0; i < commands_total(n); i++) {
        bool script = i >= connection_count();
        const char *name =
            script ? fsm_command_at(n->fsm, i - connection_count())->name : connection_at(i)->name;
        bool wanted = argc == 0;
        for (int a = 0; a < argc && !wanted; a++) {
            wanted = word_is(argv[a], argvlen[a], name);
        }
        if (wanted) {
            put_doc(&body, name, script);
            k++;
        }
    }
    resp_put_map(b, k);
    lr_assert(buf_append(b, body.data, body.len) == 0);
    buf_free(&body);
}

static void put_key(void *arg, const char *key, size_t len)
{
    struct buf *keys = arg;
    lr_assert(buf_put_u32(keys, (uint32_t)len) == 0 && buf_append(keys, key, len) == 0);
}

static void command_getkeys(struct node *n,
                            struct server_request *req,
                            int argc,
                            const char *const *argv,
                            const size_t *argvlen)
{
    char err[fsm_command_err_bytes_max];
    const struct fsm_command *c = fsm_command_check(n->fsm, argc, argv, argvlen, err, sizeof err);
    if (c == NULL) {
        conn_reply_error(n, req, "%s", err[0] ? err : "ERR Invalid command specified");
        return;
    }
    struct buf keys, b;
    buf_init(&keys);
    buf_init(&b);
    fsm_command_keys(c, argc, argv, argvlen, put_key, &keys);
    size_t k = 0;
    for (struct cursor cur = cursor_make(keys.data, keys.len); cur.left > 0; k++) {
        uint32_t len;
        const uint8_t *p;
        lr_assert(cursor_get_u32(&cur, &len) && cursor_get_bytes(&cur, len, &p));
    }
    if (k == 0) {
        buf_free(&keys);
        conn_reply_error(n, req, "ERR The command has no key arguments");
        return;
    }
    resp_put_array(&b, k);
    for (struct cursor cur = cursor_make(keys.data, keys.len); cur.left > 0;) {
        uint32_t len;
        const uint8_t *p;
        lr_assert(cursor_get_u32(&cur, &len) && cursor_get_bytes(&cur, len, &p));
        resp_put_bulk(&b, p, len);
    }
    buf_free(&keys);
    conn_reply_buf(n, req, &b);
}

void introspect_command(const struct conn_call *c)
{
    struct buf b;
    buf_init(&b);
    if (c->argc == 1) {
        command_list(c->n, &b, true);
    } else if (word_is(c->argv[1], c->argvlen[1], "COUNT") && c->argc == 2) {
        resp_put_integer(&b, (int64_t)commands_total(c->n));
    } else if (word_is(c->argv[1], c->argvlen[1], "LIST") && c->argc == 2) {
        command_list(c->n, &b, false);
    } else if (word_is(c->argv[1], c->argvlen[1], "INFO")) {
        if (c->argc == 2) {
            command_list(c->n, &b, true);
        } else {
            resp_put_array(&b, (size_t)c->argc - 2);
            for (int i = 2; i < c->argc; i++) {
                if (!put_named(c->n, &b, c->argv[i], c->argvlen[i])) {
                    resp_put_null3(&b);
                }
            }
        }
    } else if (word_is(c->argv[1], c->argvlen[1], "DOCS")) {
        command_docs(c->n, &b, c->argc - 2, c->argv + 2, c->argvlen + 2);
    } else if (word_is(c->argv[1], c->argvlen[1], "GETKEYS") && c->argc >= 3) {
        buf_free(&b);
        command_getkeys(c->n, c->req, c->argc - 2, c->argv + 2, c->argvlen + 2);
        return;
    } else {
        buf_free(&b);
        conn_reply_error(c->n, c->req,
                         "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try "
                         "COMMAND HELP.",
                         (int)(c->argvlen[1] > 128 ? 128 : c->argvlen[1]), c->argv[1]);
        return;
    }
    conn_reply_buf(c->n, c->req, &b);
}

/* ------------------------------------------------------------------------------------ */
/* CONFIG. */

/* Redis's glob match (* ? [..] and \ escapes), case-insensitive as CONFIG GET is. */
static bool glob_match(const char *p, size_t pn, const char *s, size_t sn)
{
    while (pn > 0) {
        if (*p == '*') {
            while (pn > 1 && p[1] == '*') {
                p++, pn--;
            }
            if (pn == 1) {
                return true;
            }
            for (size_t i = 0; i <= sn; i++) {
                if (glob_match(p + 1, pn - 1, s + i, sn - i)) {
                    return true;
                }
            }
            return false;
        }
        if (sn == 0) {
            return false;
        }
        if (*p != '?' && strncasecmp(p, s, 1) != 0 && !(*p == '\\' && pn > 1)) {
            return false;
        }
        if (*p == '\\' && pn > 1) {
            p++, pn--;
            if (strncasecmp(p, s, 1) != 0) {
                return false;
            }
        }
        p++, pn--, s++, sn--;
    }
    return sn == 0;
}

void introspect_config(const struct conn_call *c)
{
    if (word_is(c->argv[1], c->argvlen[1], "RESETSTAT") && c->argc == 2) {
        node_reply_text(c->n, c->req, "+OK\r\n");
        return;
    }
    if (!word_is(c->argv[1], c->argvlen[1], "GET") || c->argc < 3) {
        conn_reply_error(c->n, c->req,
                         "ERR luaraft answers CONFIG GET and CONFIG RESETSTAT only; its "
                         "settings are its command-line flags");
        return;
    }
    char port[16], maxclients[16];
    const char *colon = strrchr(c->n->client_addr, ':');
    snprintf(port, sizeof port, "%s", colon != NULL ? colon + 1 : "0");
    snprintf(maxclients, sizeof maxclients, "%d", 10000);
    const char *const params[][2] = {
        {"appendonly", "no"},
        {"appendfsync", "always"},
        {"cluster-enabled", "yes"},
        {"databases", "1"},
        {"maxclients", maxclients},
        {"maxmemory", "0"},
        {"maxmemory-policy", "noeviction"},
        {"port", port},
        {"proto-max-bulk-len", "33554432"},
        {"save", ""},
        {"timeout", "0"},
    };
    size_t np = sizeof params / sizeof params[0];
    bool hit[sizeof params / sizeof params[0]] = {false};
    size_t k = 0;
    for (int a = 2; a < c->argc; a++) {
        for (size_t i = 0; i < np; i++) {
            if (!hit[i] &&
                glob_match(c->argv[a], c->argvlen[a], params[i][0], strlen(params[i][0]))) {
                hit[i] = true;
                k++;
            }
        }
    }
    struct buf b;
    buf_init(&b);
    resp_put_map(&b, k);
    for (size_t i = 0; i < np; i++) {
        if (hit[i]) {
            resp_put_cstr(&b, params[i][0]);
            resp_put_cstr(&b, params[i][1]);
        }
    }
    conn_reply_buf(c->n, c->req, &b);
}

/* ------------------------------------------------------------------------------------ */
/* INFO, CLUSTER, RAFT.*. */

/* INFO asks the fsm thread for the keyspace first (a local read: INFO needs no leader),
 * carrying its arguments in the query's blob; introspect_info_done() answers. */
void introspect_info(const struct conn_call *c)
{
    struct fsm_job *job = fsm_job_new(FSM_JOB_QUERY);
    lr_assert(job != NULL);
    job->queries = calloc(1, sizeof *job->queries);
    lr_assert(job->queries != NULL);
    struct buf blob;
    buf_init(&blob);
    lr_assert(command_put_argv(&blob, c->argc, c->argv, c->argvlen) == 0);
    job->queries[0] = (struct fsm_job_query){.tag = c->req, .blob = blob.data, .len = blob.len};
    job->queries[0].kind = FSM_QUERY_KEYSPACE;
    job->n_queries = 1;
    c->n->io->fsm_submit(c->n->io->arg, job);
}

/* The keyspace reply: an array of two integers, or anything else for "unknown". */
static bool keyspace_parse(const struct fsm_reply *r, int64_t ks[2])
{
    long long keys, expires;
    int end = -1;
    if (r->data == NULL || r->len == 0 || r->len > 64) {
        return false;
    }
    char text[72];
    memcpy(text, r->data, r->len);
    text[r->len] = '\0';
    /* (Whitespace in a scanf format matches any run of it, CR and LF included.) */
    if (sscanf(text, "*2\r\n:%lld\r\n:%lld%n", &keys, &expires, &end) != 2 || end < 0 ||
        strcmp(text + end, "\r\n") != 0) {
        return false;
    }
    ks[0] = keys;
    ks[1] = expires;
    return true;
}

void introspect_info_done(struct node *n, struct fsm_job_query *q)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    lr_assert(command_get_argv(q->blob, q->len, &argc, &argv, &argvlen));
    int64_t ks[2];
    bool known = keyspace_parse(&q->reply, ks);
    struct buf text, b;
    buf_init(&text);
    buf_init(&b);
    if (argc <= 1) {
        info_text(n, NULL, 0, known ? ks : NULL, &text);
    }
    for (int i = 1; i < argc; i++) {
        info_text(n, argv[i], argvlen[i], known ? ks : NULL, &text);
    }
    free(argv);
    free(argvlen);
    lr_assert(resp_put_verbatim(&b, text.data, text.len) == 0);
    buf_free(&text);
    conn_reply_buf(n, q->tag, &b);
}

void introspect_cluster(const struct conn_call *c)
{
    struct buf b;
    buf_init(&b);
    cluster_view_reply(c->n, c->argc, c->argv, c->argvlen, &b);
    conn_reply_buf(c->n, c->req, &b);
}

/* RAFT.INFO: INFO's Raft section, with its role field named as it always was. */
void introspect_raft_info(const struct conn_call *c)
{
    struct buf text, b;
    buf_init(&text);
    buf_init(&b);
    info_printf(&text, "# Raft\r\n");
    info_raft_fields(c->n, "role", &text);
    lr_assert(resp_put_bulk(&b, text.data, text.len) == 0);
    buf_free(&text);
    node_reply(c->n, c->req, b.data, b.len);
    buf_free(&b);
}

void introspect_raft_snapshot(const struct conn_call *c)
{
    snapshots_request(c->n, c->req);
}

void introspect_raft_check(const struct conn_call *c)
{
    check_request(c->n, c->req);
}

void introspect_raft_backup(const struct conn_call *c)
{
    backup_request(c->n, c->req, c->argv[1], c->argvlen[1]);
}
