/*
 * The node's own commands, answered here and never logged: the ones about the connection
 * (HELLO, AUTH, CLIENT, SELECT, ECHO, PING, QUIT, RESET, TIME, READONLY, READWRITE), and,
 * through the table below, the ones about the node and the cluster (introspect.c: COMMAND,
 * CONFIG, INFO, CLUSTER, RAFT.*). Replies follow Redis 7.0's, in RESP3 where Redis has a
 * RESP3 form (a RESP2 connection gets them converted at the client port).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/resp.h"
#include "node/auth.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "node/session.h"
#include "util/assert.h"

static bool word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static bool arg_is(int argc,
                   const char *const *argv,
                   const size_t *argvlen,
                   int i,
                   const char *word)
{
    return i < argc && word_is(argv[i], argvlen[i], word);
}

void conn_reply_buf(struct node *n, struct server_request *req, struct buf *b)
{
    node_reply(n, req, b->data, b->len);
    buf_free(b);
}

void conn_reply_error(struct node *n, struct server_request *req, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct buf b;
    buf_init(&b);
    lr_assert(resp_put_error(&b, text, strlen(text)) == 0);
    conn_reply_buf(n, req, &b);
}

static void reply_bulk(struct node *n, struct server_request *req, const void *s, size_t len)
{
    struct buf b;
    buf_init(&b);
    lr_assert(resp_put_bulk(&b, s, len) == 0);
    conn_reply_buf(n, req, &b);
}

/* ------------------------------------------------------------------------------------ */
/* Names and AUTH. */

/* Redis's rule for client names: printable, no spaces. */
static bool name_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '!' || s[i] > '~') {
            return false;
        }
    }
    return true;
}

static void set_string(char **dst, const char *s, size_t len)
{
    free(*dst);
    *dst = NULL;
    if (len > 0) {
        *dst = malloc(len + 1);
        lr_assert(*dst != NULL);
        memcpy(*dst, s, len);
        (*dst)[len] = '\0';
    }
}

static const char name_invalid_text[] =
    "ERR Client names cannot contain spaces, newlines or special characters.";

static const char wrongpass_text[] =
    "WRONGPASS invalid username-password pair or user is disabled.";

/* AUTH [user] pass, HELLO's AUTH user pass (user NULL: none given). With a password
 * (auth.c) the user must be default and the password right. Without one (the default
 * user has none), as Redis: AUTH user pass succeeds for the default user with any
 * password, and AUTH pass is a configuration mistake. */
static bool auth_check(const struct conn_call *c,
                       const char *user,
                       size_t user_len,
                       const char *pass,
                       size_t pass_len)
{
    struct node *n = c->n;
    struct server_request *req = c->req;
    if (auth_required(n)) {
        bool user_ok = user == NULL || (user_len == 7 && memcmp(user, "default", 7) == 0);
        if (!auth_password_ok(n, pass, pass_len) || !user_ok) {
            conn_reply_error(n, req, "%s", wrongpass_text);
            return false;
        }
        auth_set(n, c->s, req, true);
        return true;
    }
    if (user == NULL) {
        conn_reply_error(n, req,
                         "ERR AUTH <password> called without any password configured for "
                         "the default user. Are you sure your configuration is correct?");
        return false;
    }
    if (user_len != 7 || memcmp(user, "default", 7) != 0) {
        conn_reply_error(n, req, "%s", wrongpass_text);
        return false;
    }
    return true;
}

static void cmd_auth(const struct conn_call *c)
{
    if (c->argc == 2) {
        if (auth_check(c, NULL, 0, c->argv[1], c->argvlen[1])) {
            node_reply_text(c->n, c->req, "+OK\r\n");
        }
    } else if (c->argc == 3) {
        if (auth_check(c, c->argv[1], c->argvlen[1], c->argv[2], c->argvlen[2])) {
            node_reply_text(c->n, c->req, "+OK\r\n");
        }
    } else {
        conn_reply_error(c->n, c->req, "ERR syntax error");
    }
}

/* ------------------------------------------------------------------------------------ */
/* HELLO. */

static void hello_reply(struct node *n, struct server_request *req, struct session *s)
{
    struct buf b;
    buf_init(&b);
    bool leader = raft_role_of(n->raft) == RAFT_LEADER;
    resp_put_map(&b, 7);
    resp_put_cstr(&b, "server");
    resp_put_cstr(&b, "redis");
    resp_put_cstr(&b, "version");
    resp_put_cstr(&b, NODE_REDIS_VERSION);
    resp_put_cstr(&b, "proto");
    resp_put_integer(&b, s != NULL ? s->proto : 2);
    resp_put_cstr(&b, "id");
    resp_put_integer(&b, s != NULL ? (int64_t)s->id : 0);
    resp_put_cstr(&b, "mode");
    resp_put_cstr(&b, "standalone");
    resp_put_cstr(&b, "role");
    resp_put_cstr(&b, leader ? "master" : "replica");
    resp_put_cstr(&b, "modules");
    resp_put_array(&b, 0);
    conn_reply_buf(n, req, &b);
}

static bool parse_long(const char *s, size_t len, long long *v)
{
    char text[32];
    if (len == 0 || len >= sizeof text) {
        return false;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    char *end;
    *v = strtoll(text, &end, 10);
    return *end == '\0';
}

static void cmd_hello(const struct conn_call *c)
{
    long long proto = c->s != NULL ? c->s->proto : 2;
    if (c->argc >= 2) {
        if (!parse_long(c->argv[1], c->argvlen[1], &proto)) {
            conn_reply_error(c->n, c->req,
                             "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (proto < 2 || proto > 3) {
            conn_reply_error(c->n, c->req, "NOPROTO unsupported protocol version");
            return;
        }
    }
    const char *name = NULL;
    size_t name_len = 0;
    for (int i = 2; i < c->argc; i++) {
        if (arg_is(c->argc, c->argv, c->argvlen, i, "AUTH") && i + 2 < c->argc) {
            if (!auth_check(c, c->argv[i + 1], c->argvlen[i + 1], c->argv[i + 2],
                            c->argvlen[i + 2])) {
                return;
            }
            i += 2;
        } else if (arg_is(c->argc, c->argv, c->argvlen, i, "SETNAME") && i + 1 < c->argc) {
            name = c->argv[i + 1];
            name_len = c->argvlen[i + 1];
            if (!name_valid(name, name_len)) {
                conn_reply_error(c->n, c->req, "%s", name_invalid_text);
                return;
            }
            i++;
        } else {
            conn_reply_error(c->n, c->req, "ERR Syntax error in HELLO option '%.*s'",
                             (int)(c->argvlen[i] > 128 ? 128 : c->argvlen[i]), c->argv[i]);
            return;
        }
    }
    if (c->s != NULL && !c->s->authenticated) {
        conn_reply_error(c->n, c->req,
                         "NOAUTH HELLO must be called with the client already authenticated, "
                         "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                         "authenticate the client and select the RESP protocol version at the "
                         "same time");
        return;
    }
    if (c->s != NULL) {
        c->s->proto = (int)proto;
        if (name != NULL) {
            set_string(&c->s->name, name, name_len);
        }
    }
    c->n->io->set_protocol(c->n->io->arg, c->req, (int)proto);
    hello_reply(c->n, c->req, c->s);
}

/* ------------------------------------------------------------------------------------ */
/* CLIENT. */

static void client_line(struct node *n, const struct session *s, struct buf *b)
{
    uint64_t now = node_now(n);
    uint64_t age = now > s->opened_ms ? (now - s->opened_ms) / 1000 : 0;
    char line[512];
    int k = snprintf(line, sizeof line,
                     "id=%" PRIu64 " addr=? laddr=%s fd=-1 name=%s age=%" PRIu64
                     " idle=0 flags=%s db=0 sub=0 psub=0 ssub=0 multi=%d watch=%" PRIu32
                     " qbuf=0 argv-mem=0 obl=0 oll=0 omem=0 events=r cmd=client user=default "
                     "redir=-1 resp=%d lib-name=%s lib-ver=%s\n",
                     s->id, n->client_addr, s->name ? s->name : "", age, s->in_multi ? "x" : "N",
                     s->in_multi ? (int)s->tx_n : -1, s->watched_n, s->proto,
                     s->lib_name ? s->lib_name : "", s->lib_ver ? s->lib_ver : "");
    if (k > 0) {
        lr_assert(buf_append(b, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1) == 0);
    }
}

static void client_info(struct node *n, struct server_request *req, struct session *s, bool all)
{
    struct buf text, b;
    buf_init(&text);
    buf_init(&b);
    for (struct session *x = all ? n->sessions : s; x != NULL; x = all ? x->next : NULL) {
        if (!x->closed) {
            client_line(n, x, &text);
        }
    }
    lr_assert(resp_put_verbatim(&b, text.data, text.len) == 0);
    buf_free(&text);
    conn_reply_buf(n, req, &b);
}

static void client_setinfo(const struct conn_call *c)
{
    if (c->argc != 4) {
        conn_reply_error(c->n, c->req,
                         "ERR wrong number of arguments for 'client|setinfo' command");
        return;
    }
    bool lib_name = arg_is(c->argc, c->argv, c->argvlen, 2, "LIB-NAME");
    if (!lib_name && !arg_is(c->argc, c->argv, c->argvlen, 2, "LIB-VER")) {
        conn_reply_error(c->n, c->req, "ERR Unrecognized option '%.*s'",
                         (int)(c->argvlen[2] > 128 ? 128 : c->argvlen[2]), c->argv[2]);
        return;
    }
    if (!name_valid(c->argv[3], c->argvlen[3])) {
        conn_reply_error(c->n, c->req,
                         "ERR %s cannot contain spaces, newlines or special characters.",
                         lib_name ? "lib-name" : "lib-ver");
        return;
    }
    if (c->s != NULL) {
        set_string(lib_name ? &c->s->lib_name : &c->s->lib_ver, c->argv[3], c->argvlen[3]);
    }
    node_reply_text(c->n, c->req, "+OK\r\n");
}

static void client_help(struct node *n, struct server_request *req)
{
    static const char *const lines[] = {
        "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
        "ID",
        "    Return the ID of the current connection.",
        "GETNAME",
        "    Return the name of the current connection.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "SETINFO <LIB-NAME|LIB-VER> <value>",
        "    Record the client library.",
        "INFO",
        "    Return information about the current client connection.",
        "LIST",
        "    Return information about the client connections of this node.",
        "NO-EVICT|NO-TOUCH|REPLY ON",
        "    Accepted; they change nothing here.",
    };
    struct buf b;
    buf_init(&b);
    size_t k = sizeof lines / sizeof lines[0];
    resp_put_array(&b, k);
    for (size_t i = 0; i < k; i++) {
        resp_put_status(&b, lines[i], strlen(lines[i]));
    }
    conn_reply_buf(n, req, &b);
}

static void cmd_client(const struct conn_call *c)
{
    if (arg_is(c->argc, c->argv, c->argvlen, 1, "ID") && c->argc == 2) {
        struct buf b;
        buf_init(&b);
        resp_put_integer(&b, c->s != NULL ? (int64_t)c->s->id : 0);
        conn_reply_buf(c->n, c->req, &b);
    } else if (arg_is(c->argc, c->argv, c->argvlen, 1, "GETNAME") && c->argc == 2) {
        if (c->s != NULL && c->s->name != NULL) {
            reply_bulk(c->n, c->req, c->s->name, strlen(c->s->name));
        } else {
            node_reply_text(c->n, c->req, "$-1\r\n");
        }
    } else if (arg_is(c->argc, c->argv, c->argvlen, 1, "SETNAME") && c->argc == 3) {
        if (!name_valid(c->argv[2], c->argvlen[2])) {
            conn_reply_error(c->n, c->req, "%s", name_invalid_text);
            return;
        }
        if (c->s != NULL) {
            set_string(&c->s->name, c->argv[2], c->argvlen[2]);
        }
        node_reply_text(c->n, c->req, "+OK\r\n");
    } else if (arg_is(c->argc, c->argv, c->argvlen, 1, "SETINFO")) {
        client_setinfo(c);
    } else if (arg_is(c->argc, c->argv, c->argvlen, 1, "INFO") && c->argc == 2 && c->s != NULL) {
        client_info(c->n, c->req, c->s, false);
    } else if (arg_is(c->argc, c->argv, c->argvlen, 1, "LIST")) {
        client_info(c->n, c->req, c->s, true);
    } else if ((arg_is(c->argc, c->argv, c->argvlen, 1, "NO-EVICT") ||
                arg_is(c->argc, c->argv, c->argvlen, 1, "NO-TOUCH") ||
                arg_is(c->argc, c->argv, c->argvlen, 1, "REPLY")) &&
               c->argc == 3 &&
               (arg_is(c->argc, c->argv, c->argvlen, 2, "ON") ||
                arg_is(c->argc, c->argv, c->argvlen, 2, "OFF")) &&
               !(arg_is(c->argc, c->argv, c->argvlen, 1, "REPLY") &&
                 arg_is(c->argc, c->argv, c->argvlen, 2, "OFF"))) {
        node_reply_text(c->n, c->req, "+OK\r\n");
    } else if (arg_is(c->argc, c->argv, c->argvlen, 1, "HELP") && c->argc == 2) {
        client_help(c->n, c->req);
    } else if (c->argc >= 2) {
        conn_reply_error(c->n, c->req,
                         "ERR unknown subcommand or wrong number of arguments for "
                         "'%.*s'. Try CLIENT HELP.",
                         (int)(c->argvlen[1] > 128 ? 128 : c->argvlen[1]), c->argv[1]);
    } else {
        conn_reply_error(c->n, c->req, "ERR wrong number of arguments for 'client' command");
    }
}

/* ------------------------------------------------------------------------------------ */
/* The small ones. */

static void cmd_ping(const struct conn_call *c)
{
    if (c->argc == 1) {
        node_reply_text(c->n, c->req, "+PONG\r\n");
    } else if (c->argc == 2) {
        reply_bulk(c->n, c->req, c->argv[1], c->argvlen[1]);
    } else {
        conn_reply_error(c->n, c->req, "ERR wrong number of arguments for 'ping' command");
    }
}

static void cmd_echo(const struct conn_call *c)
{
    reply_bulk(c->n, c->req, c->argv[1], c->argvlen[1]);
}

static void cmd_select(const struct conn_call *c)
{
    long long db;
    if (!parse_long(c->argv[1], c->argvlen[1], &db)) {
        conn_reply_error(c->n, c->req, "ERR value is not an integer or out of range");
    } else if (db != 0) {
        conn_reply_error(c->n, c->req, "ERR DB index is out of range");
    } else {
        node_reply_text(c->n, c->req, "+OK\r\n");
    }
}

static void cmd_quit(const struct conn_call *c)
{
    c->n->io->close_after(c->n->io->arg, c->req);
    node_reply_text(c->n, c->req, "+OK\r\n");
}

static void cmd_reset(const struct conn_call *c)
{
    if (c->s != NULL) {
        session_reset_state(c->s);
        c->s->proto = 2;
        c->s->redirect = false;
        set_string(&c->s->name, NULL, 0);
        auth_set(c->n, c->s, c->req, false); /* as Redis: RESET signs the client out */
    }
    c->n->io->set_protocol(c->n->io->arg, c->req, 2);
    node_reply_text(c->n, c->req, "+RESET\r\n");
}

static void cmd_time(const struct conn_call *c)
{
    int64_t ms = c->n->io->wall_ms(c->n->io->arg);
    char secs[32], usecs[32];
    snprintf(secs, sizeof secs, "%" PRId64, ms / 1000);
    snprintf(usecs, sizeof usecs, "%" PRId64, (ms % 1000) * 1000);
    struct buf b;
    buf_init(&b);
    resp_put_array(&b, 2);
    resp_put_cstr(&b, secs);
    resp_put_cstr(&b, usecs);
    conn_reply_buf(c->n, c->req, &b);
}

static void cmd_ok(const struct conn_call *c)
{
    node_reply_text(c->n, c->req, "+OK\r\n");
}

static void cmd_redirect(const struct conn_call *c)
{
    bool on = arg_is(c->argc, c->argv, c->argvlen, 1, "ON");
    if (!on && !arg_is(c->argc, c->argv, c->argvlen, 1, "OFF")) {
        conn_reply_error(c->n, c->req, "ERR syntax error: RAFT.REDIRECT ON|OFF");
        return;
    }
    if (c->s != NULL) {
        c->s->redirect = on;
    }
    node_reply_text(c->n, c->req, "+OK\r\n");
}

/* ------------------------------------------------------------------------------------ */
/* The table. */

/* arity as in Redis's command table: N exactly, -N at least N words with the name. */
static const struct conn_command table[] = {
    {"auth", -2, "noscript loading stale fast no_auth allow_busy", cmd_auth},
    {"client", -2, "noscript loading stale", cmd_client},
    {"cluster", -2, "", introspect_cluster},
    {"command", -1, "loading stale", introspect_command},
    {"config", -2, "admin noscript loading stale", introspect_config},
    {"echo", 2, "fast", cmd_echo},
    {"hello", -1, "noscript loading stale fast no_auth allow_busy", cmd_hello},
    {"info", -1, "loading stale", introspect_info},
    {"ping", -1, "fast", cmd_ping},
    {"quit", -1, "noscript loading stale fast no_auth allow_busy", cmd_quit},
    {"raft.add", -3, "admin", members_add_command},
    {"raft.backup", 2, "admin", introspect_raft_backup},
    {"raft.check", 1, "admin", introspect_raft_check},
    {"raft.info", 1, "loading stale", introspect_raft_info},
    {"raft.load", -3, "admin", load_command},
    {"raft.members", 1, "loading stale", members_info_command},
    {"raft.redirect", 2, "fast", cmd_redirect},
    {"raft.remove", 2, "admin", members_remove_command},
    {"raft.snapshot", 1, "admin", introspect_raft_snapshot},
    {"raft.transfer", -1, "admin", transfer_command},
    {"readonly", 1, "loading stale fast", cmd_ok},
    {"readwrite", 1, "loading stale fast", cmd_ok},
    {"reset", 1, "noscript loading stale fast no_auth allow_busy", cmd_reset},
    {"select", 2, "loading stale fast", cmd_select},
    {"time", 1, "loading stale fast", cmd_time},
};

const struct conn_command *connection_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (word_is(name, len, table[i].name)) {
            return &table[i];
        }
    }
    return NULL;
}

size_t connection_count(void)
{
    return sizeof table / sizeof table[0];
}

const struct conn_command *connection_at(size_t i)
{
    return i < connection_count() ? &table[i] : NULL;
}

bool connection_command(struct node *n,
                        struct server_request *req,
                        struct session *s,
                        int argc,
                        const char *const *argv,
                        const size_t *argvlen)
{
    const struct conn_command *c = connection_find(argv[0], argvlen[0]);
    if (c == NULL) {
        return false;
    }
    if (c->arity > 0 ? argc != c->arity : argc < -c->arity) {
        conn_reply_error(n, req, "ERR wrong number of arguments for '%s' command", c->name);
        return true;
    }
    if (n->dur.store_failed &&
        (c->fn == introspect_raft_snapshot || c->fn == introspect_raft_backup)) {
        char reply[256];
        node_reply_text(n, req,
                        durability_failed_reply(n, ": it serves nothing until it is restarted",
                                                reply, sizeof reply));
        return true;
    }
    struct conn_call call = {n, req, s, argc, argv, argvlen};
    c->fn(&call);
    return true;
}
