/*
 * Membership changes (see members.c for the configuration they change): RAFT.ADD and
 * RAFT.REMOVE on the leader (a follower forwards them), each answered once its CONFIG
 * entry is committed; the leader's promotion of caught-up learners on its ticks; and
 * RAFT.MEMBERS.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/resp.h"
#include "command.h"
#include "node/config.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "util/assert.h"
#include "util/crash_point.h"

static const char change_busy_reply[] = "-TRYAGAIN a membership change is in progress; retry\r\n";
static const char term_busy_reply[] =
    "-TRYAGAIN the leader has not committed an entry of its term yet; retry\r\n";
static const char not_leader_reply[] = "-TRYAGAIN not the leader; retry\r\n";

/* ------------------------------------------------------------------------------------ */
/* Changes. */

__attribute__((format(printf, 4, 5))) static void reply_error(struct node *n,
                                                              const struct origin *o,
                                                              const char *cmd,
                                                              const char *fmt,
                                                              ...)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s failed:", cmd);
    va_list ap;
    va_start(ap, fmt);
    origin_reply_verror(n, o, prefix, fmt, ap);
    va_end(ap);
}

/* Whether a change may be proposed now; if not, o is answered why. */
static bool may_change(struct node *n, const struct origin *o)
{
    const char *busy = NULL;
    if (n->stopping || n->shutting_down) {
        busy = node_down_reply;
    } else if (raft_role_of(n->raft) != RAFT_LEADER) {
        busy = not_leader_reply;
    } else if (transfer_blocks_writes(n)) {
        busy = transfer_busy_reply;
    } else if (n->mb.waiting || raft_members_index(n->raft) > raft_commit_index(n->raft)) {
        busy = change_busy_reply;
    }
    if (busy != NULL) {
        origin_reply(n, o, busy, strlen(busy));
    }
    return busy == NULL;
}

/* Proposes m (one step from the configuration in force). Returns the core's error. */
static int propose(struct node *n,
                   const struct raft_members *m,
                   const struct member_addr *extra,
                   raft_index *index,
                   raft_term *term)
{
    struct buf payload;
    members_record_make(n, m, extra, &payload);
    struct raft_entry e = {0, RAFT_ENTRY_CONFIG, (uint32_t)payload.len, payload.data};
    struct raft_event ev = {.type = RAFT_EVENT_PROPOSE};
    ev.propose.entries = &e;
    ev.propose.n = 1;
    int rv = node_step(n, &ev);
    buf_free(&payload);
    if (rv == 0) {
        *index = raft_last_index(n->raft);
        *term = e.term;
        n->metrics.proposals_total++;
    }
    return rv;
}

/* Proposes m and makes o wait for its commit, or answers o why not. */
static void change(struct node *n,
                   const struct origin *o,
                   const char *cmd,
                   const struct raft_members *m,
                   const struct member_addr *extra)
{
    struct membership *mb = &n->mb;
    raft_index index;
    raft_term term;
    int rv = propose(n, m, extra, &index, &term);
    if (rv == RAFT_ECHANGE) {
        bool pending = raft_members_index(n->raft) > raft_commit_index(n->raft);
        const char *text = pending ? change_busy_reply : term_busy_reply;
        origin_reply(n, o, text, strlen(text));
    } else if (rv == RAFT_ENOTLEADER) {
        origin_reply(n, o, not_leader_reply, strlen(not_leader_reply));
    } else if (rv == RAFT_EBUSY) {
        origin_reply(n, o, transfer_busy_reply, strlen(transfer_busy_reply));
    } else if (rv != 0) {
        reply_error(n, o, cmd, "%s", raft_strerror(rv));
    } else {
        node_log(n, "%s: configuration change proposed at index %" PRIu64, cmd, index);
        crash_point("members.after_propose");
        mb->waiting = true;
        mb->wait_index = index;
        mb->wait_term = term;
        mb->wait_o = *o;
        mb->wait_deadline_ms = node_now(n) + n->c->write_timeout_ms;
        members_answer_waiter(n); /* a cluster of one commits at once */
    }
}

/* RAFT.ADD id raft-address [client-address], on the leader. */
static void add(struct node *n, const struct origin *o, int argc, const char **argv, size_t *len)
{
    static const char cmd[] = "RAFT.ADD";
    struct member_addr a = {0};
    char host[node_host_bytes_max], msg[node_errmsg_bytes];
    int port;
    if (!node_parse_id(argv[1], len[1], &a.id)) {
        reply_error(n, o, cmd, "the node id must be a positive integer");
        return;
    }
    for (int i = 2; i < argc; i++) {
        char *dst = i == 2 ? a.raft : a.client;
        if (len[i] >= sizeof a.raft) {
            reply_error(n, o, cmd, "the address is too long");
            return;
        }
        memcpy(dst, argv[i], len[i]);
        dst[len[i]] = '\0';
        if (config_resolve_addr(dst, host, sizeof host, &port, msg, sizeof msg) != 0) {
            reply_error(n, o, cmd, "%s", msg);
            return;
        }
    }
    if (!may_change(n, o)) {
        return;
    }
    struct raft_members m = *raft_members_of(n->raft);
    const struct member_addr *known = members_book_find(&n->mb, a.id);
    if (raft_members_find(&m, a.id) != NULL) {
        if (known != NULL && strcmp(known->raft, a.raft) == 0) {
            origin_reply(n, o, "+OK\r\n", 5); /* already there: a retry */
        } else {
            reply_error(n, o, cmd, "node %" PRIu64 " is already a member at %s", a.id,
                        known != NULL ? known->raft : "another address");
        }
        return;
    }
    if (m.n >= RAFT_SERVERS_MAX) {
        reply_error(n, o, cmd, "the cluster has %d members, the most it can have",
                    RAFT_SERVERS_MAX);
        return;
    }
    m.servers[m.n++] = (struct raft_server){a.id, false};
    change(n, o, cmd, &m, &a);
}

/* RAFT.REMOVE id, on the leader. */
static void remove_member(struct node *n, const struct origin *o, const char *arg, size_t len)
{
    static const char cmd[] = "RAFT.REMOVE";
    raft_id id;
    if (!node_parse_id(arg, len, &id)) {
        reply_error(n, o, cmd, "the node id must be a positive integer");
        return;
    }
    if (!may_change(n, o)) {
        return;
    }
    const struct raft_members *cur = raft_members_of(n->raft);
    const struct raft_server *s = raft_members_find(cur, id);
    if (s == NULL) {
        reply_error(n, o, cmd, "node %" PRIu64 " is not a member of the cluster", id);
        return;
    }
    struct raft_members m = {.n = 0};
    unsigned voters = 0;
    for (unsigned i = 0; i < cur->n; i++) {
        if (cur->servers[i].id != id) {
            m.servers[m.n++] = cur->servers[i];
            voters += cur->servers[i].voter;
        }
    }
    if (voters == 0) {
        reply_error(n, o, cmd, "node %" PRIu64 " is the last voter", id);
        return;
    }
    change(n, o, cmd, &m, NULL);
}

/* On the leader, a command of ours from a client or a follower. */
static void run(struct node *n, const struct origin *o, int argc, const char **argv, size_t *len)
{
    if (len[0] == 8) {
        add(n, o, argc, argv, len);
    } else {
        remove_member(n, o, argv[1], len[1]);
    }
}

static bool is_ours(int argc, const char **argv, const size_t *len)
{
    bool is_add = argc >= 1 && len[0] == 8 && strncasecmp(argv[0], "RAFT.ADD", 8) == 0;
    bool is_remove = argc >= 1 && len[0] == 11 && strncasecmp(argv[0], "RAFT.REMOVE", 11) == 0;
    return is_add || is_remove;
}

/* Runs a change here on the leader, or forwards it to the leader. */
static void take(const struct conn_call *c)
{
    struct node *n = c->n;
    struct origin o = {c->req, 0, 0};
    if (!writes_to_leader(n, c->req, c->argc, c->argv, c->argvlen)) {
        run(n, &o, c->argc, (const char **)c->argv, (size_t *)c->argvlen);
    }
}

void members_add_command(const struct conn_call *c)
{
    if (c->argc < 3 || c->argc > 4) {
        conn_reply_error(c->n, c->req, "ERR wrong number of arguments for 'raft.add' command");
        return;
    }
    take(c);
}

void members_remove_command(const struct conn_call *c)
{
    if (c->argc != 2) {
        conn_reply_error(c->n, c->req, "ERR wrong number of arguments for 'raft.remove' command");
        return;
    }
    take(c);
}

bool members_forwarded(struct node *n, const struct origin *o, const void *blob, size_t len)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get_argv(blob, len, &argc, &argv, &argvlen)) {
        return false;
    }
    bool ours = is_ours(argc, argv, argvlen);
    if (ours && (argc < 2 || argc > 4 || (argvlen[0] == 8 && argc < 3))) {
        origin_reply(n, o, "-ERR malformed membership change\r\n", 35);
    } else if (ours) {
        run(n, o, argc, argv, argvlen);
    }
    free(argv);
    free(argvlen);
    return ours;
}

/* ------------------------------------------------------------------------------------ */
/* The leader's ticks: promotion of caught-up learners, the waiter's deadline. */

void members_tick(struct node *n)
{
    members_answer_waiter(n);
    members_update_peers(n); /* the removed members' grace ends */
    if (n->stopping || n->shutting_down || raft_role_of(n->raft) != RAFT_LEADER ||
        transfer_blocks_writes(n) || n->mb.waiting || n->dur.store_failed ||
        raft_members_index(n->raft) > raft_commit_index(n->raft)) {
        return;
    }
    const struct raft_members *cur = raft_members_of(n->raft);
    raft_index last = raft_last_index(n->raft);
    for (unsigned i = 0; i < cur->n; i++) {
        struct raft_peer_info pi;
        raft_id id = cur->servers[i].id;
        if (cur->servers[i].voter || !raft_peer_info(n->raft, id, &pi) ||
            pi.match + node_promote_lag_entries < last || pi.match < raft_members_index(n->raft) ||
            !n->io->peer_connected(n->io->arg, id)) {
            continue;
        }
        struct raft_members m = *cur;
        m.servers[i].voter = true;
        raft_index index;
        raft_term term;
        int rv = propose(n, &m, NULL, &index, &term);
        if (rv == 0) {
            n->mb.promotions++;
            node_log(n,
                     "learner %" PRIu64 " caught up (match %" PRIu64 " of %" PRIu64
                     "): promoted to voter at index %" PRIu64,
                     id, pi.match, last, index);
        }
        return; /* one change at a time */
    }
}

/* RAFT.MEMBERS: the cluster's id and the configuration in force with its addresses, as
 * lines (what `luaraft node --join` reads, and operators with redis-cli --raw). */
void members_info_command(const struct conn_call *c)
{
    struct node *n = c->n;
    const struct raft_members *m = raft_members_of(n->raft);
    char text[node_info_bytes_max], cluster[node_info_bytes_max / 2];
    size_t k = 0, ck = 0;
    k += (size_t)snprintf(text + k, sizeof text - k,
                          "cluster_id:%s\r\nconfig_index:%" PRIu64 "\r\nconfig_committed:%d\r\n",
                          n->mb.cluster_id, raft_members_index(n->raft),
                          raft_members_index(n->raft) <= raft_commit_index(n->raft));
    cluster[0] = '\0';
    for (unsigned i = 0; i < m->n && k < sizeof text; i++) {
        const struct member_addr *a = members_book_find(&n->mb, m->servers[i].id);
        const char *client = members_client_addr(n, m->servers[i].id);
        client = client != NULL ? client : n->io->peer_client_addr(n->io->arg, m->servers[i].id);
        k += (size_t)snprintf(text + k, sizeof text - k, "member:%" PRIu64 " %s %s %s\r\n",
                              m->servers[i].id, m->servers[i].voter ? "voter" : "learner",
                              a != NULL ? a->raft : "-", client != NULL ? client : "-");
        if (a != NULL && ck < sizeof cluster) {
            ck += (size_t)snprintf(cluster + ck, sizeof cluster - ck, "%s%" PRIu64 "=%s",
                                   ck > 0 ? "," : "", m->servers[i].id, a->raft);
        }
    }
    if (k < sizeof text) {
        snprintf(text + k, sizeof text - k, "cluster:%s\r\n", cluster);
    }
    struct buf out;
    buf_init(&out);
    lr_assert(resp_put_bulk(&out, text, strlen(text)) == 0);
    conn_reply_buf(n, c->req, &out);
}
