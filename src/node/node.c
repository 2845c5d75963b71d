/*
 * The node's heart: node_step() is the only caller of raft_step(), and carries out each
 * update the core returns at once, in the order raft.h binds: persist, send, apply,
 * reads (see internal.h for the rooms it hands each part to). Every event of the world
 * (a tick, a peer message, a persist or fsm completion, a loop turn's batch of client
 * writes or reads) enters here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsm/fsm.h"
#include "node/config.h"
#include "node/internal.h"
#include "node/session.h"
#include "peer/transport.h"
#include "util/assert.h"
#include "util/log.h"

const char node_unknown_reply[] =
    "-UNKNOWN the write's outcome is unknown: leadership was lost before it was applied\r\n";
const char node_timeout_reply[] =
    "-TIMEOUT the write's outcome is unknown: it was not applied within the deadline\r\n";
const char node_down_reply[] = "-TRYAGAIN the node is shutting down\r\n";

bool node_parse_id(const char *s, size_t len, raft_id *out)
{
    raft_id id = 0;
    if (len == 0 || len > 19) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        id = id * 10 + (raft_id)(s[i] - '0');
    }
    *out = id;
    return id != 0;
}

uint64_t node_now(struct node *n)
{
    return n->io->now_ms(n->io->arg);
}

void node_log(struct node *n, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n->io->log != NULL) {
        n->io->log(n->io->arg, line);
        return;
    }
    raft_term term = n->raft != NULL ? raft_current_term(n->raft) : n->term;
    lr_log_msg(n->c->id, term, line);
}

void node_fatal(struct node *n, const char *fmt, ...)
{
    char msg[node_errmsg_bytes];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_log(n, "fatal: %s", msg);
    n->io->fatal(n->io->arg, msg);
}

void node_reply(struct node *n, struct server_request *req, const void *resp, size_t len)
{
    struct session *s = n->io->tag_of(n->io->arg, req);
    n->io->reply(n->io->arg, req, resp, len);
    if (s != NULL) {
        session_answered(n, s); /* may start the connection's next commands */
    }
}

void node_reply_text(struct node *n, struct server_request *req, const char *resp)
{
    node_reply(n, req, resp, strlen(resp));
}

/* Role and leader changes: logged, and a leader that lost its role answers every write
 * it was waiting for with the unknown-outcome error (another leader may commit them). */
static void note_role(struct node *n, const struct raft_update *u)
{
    raft_term term = raft_current_term(n->raft);
    if (u->role == n->role && u->leader == n->leader && term == n->term) {
        return;
    }
    bool was_leader = n->role == RAFT_LEADER;
    if (u->role != n->role) {
        if (u->role == RAFT_CANDIDATE && n->stepping_timeout_now) {
            n->tr.elections_transfer++;
            node_log(n, "election: became candidate: the leader handed over its leadership");
        } else if (u->role == RAFT_CANDIDATE || u->role == RAFT_PRECANDIDATE) {
            /* A precandidate that won its pre-vote goes on with the same election. */
            n->tr.elections_timeout += n->role != RAFT_PRECANDIDATE;
            node_log(n, "election: became %s", raft_role_name(u->role));
        } else if (u->role == RAFT_LEADER) {
            node_log(n, "election won: this node is the leader");
            writes_leader_start(n);
        }
    }
    if (u->leader != n->leader && u->leader != 0) {
        n->metrics.leader_changes_total++;
    }
    if (u->leader != n->leader && u->role != RAFT_LEADER) {
        if (u->leader != 0) {
            node_log(n, "leader changed: node %" PRIu64, u->leader);
        } else {
            node_log(n, "leader lost: no leader known");
        }
    }
    n->role = u->role;
    n->leader = u->leader;
    n->term = term;
    if (was_leader && u->role != RAFT_LEADER) {
        writes_fail_all(n, node_unknown_reply);
    }
}

/* Carries out one update in the order raft.h binds: persist, send, apply, reads. */
static void carry_out(struct node *n, struct raft_update *u)
{
    if (u->flags & (RAFT_UPDATE_HARD_STATE | RAFT_UPDATE_SNAPSHOT | RAFT_UPDATE_ENTRIES)) {
        durability_persist(n, u);
    }
    if (u->flags & RAFT_UPDATE_MESSAGES) {
        for (unsigned i = 0; i < u->n_messages; i++) {
            durability_send(n, &u->messages[i]);
        }
    }
    if (u->flags & RAFT_UPDATE_COMMIT) {
        apply_dispatch(n, u->commit);
    }
    if (u->flags & RAFT_UPDATE_READS) {
        reads_results(n, u);
    }
    note_role(n, u);
    transfer_observe(n);
    members_follow(n);
    reads_dispatch(n);
}

/* The core holds the leader's log again (raft.h, raft_boot.recover_term): the marker
 * that kept the node from voting across restarts goes (runtime_recover.c). */
static void recovered(struct node *n)
{
    n->recovering = false;
    char path[node_path_bytes_max + 32];
    snprintf(path, sizeof path, "%s/recovering", n->c->data_dir);
    int rv = unlink(path) == 0 ? config_fsync_dir(n->c->data_dir) : -errno;
    node_log(n,
             "recovered: this node holds the leader's log up to index %" PRIu64 " (term %" PRIu64
             ") and votes again%s%s",
             raft_commit_index(n->raft), raft_current_term(n->raft),
             rv != 0 ? "; cannot remove the marker: " : "", rv != 0 ? strerror(-rv) : "");
}

int node_step(struct node *n, struct raft_event *ev)
{
    struct raft_update u;
    bool outer_timeout_now = n->stepping_timeout_now;
    n->stepping_timeout_now =
        ev->type == RAFT_EVENT_RECEIVE && ev->receive.type == RAFT_MSG_TIMEOUT_NOW;
    int rv = raft_step(n->raft, ev, &u);
    if (rv != 0 && ev->type == RAFT_EVENT_RECEIVE) {
        node_log(n, "dropped a %s from node %" PRIu64 ": %s", raft_msg_name(ev->receive.type),
                 ev->receive.from, raft_strerror(rv));
    }
    carry_out(n, &u);
    if (n->recovering && !raft_recovering(n->raft)) {
        recovered(n);
    }
    n->stepping_timeout_now = outer_timeout_now;
    return rv;
}

/* ------------------------------------------------------------------------------------ */
/* Entry points for the world. */

struct node *node_new(const struct node_config *c, const struct node_io *io, struct fsm *f)
{
    struct node *n = calloc(1, sizeof *n);
    lr_assert(n != NULL);
    n->c = c;
    n->io = io;
    n->fsm = f;
    metrics_init(&n->metrics);
    return n;
}

void node_tick(struct node *n)
{
    if (n->stopping) {
        return;
    }
    struct raft_event ev = {.type = RAFT_EVENT_TICK};
    node_step(n, &ev);
    writes_expire(n);
    reads_expire(n);
    writes_tick(n);
    check_tick(n);
    snapshots_maybe_start(n);
    transfer_poll(n);
    members_tick(n);
    script_check_tick(n);
}

void node_turn(struct node *n)
{
    if (n->stopping) {
        return;
    }
    transfer_poll(n);
    writes_propose(n);
    reads_start(n);
}

void node_receive(struct node *n, struct raft_message *m)
{
    if (n->stopping || m->type == RAFT_MSG_SNAPSHOT || script_check_refuses(n, m->from)) {
        return; /* snapshots arrive through node_receive_snapshot, with their file */
    }
    struct raft_event ev = {.type = RAFT_EVENT_RECEIVE};
    ev.receive = *m;
    node_step(n, &ev);
}

void node_receive_snapshot(struct node *n,
                           struct raft_message *m,
                           const char *path,
                           const void *rec,
                           size_t rec_len)
{
    n->snap.incoming_used = false; /* the world removes a file nobody took */
    if (n->stopping || script_check_refuses(n, m->from)) {
        return;
    }
    n->snap.incoming = path;
    /* The configuration as of the snapshot is in its file (members.c); a file of a
     * format without it stands for the configuration in force. */
    struct raft_members conf = *raft_members_of(n->raft);
    const void *payload = NULL;
    size_t payload_len = 0;
    if (rec != NULL && !members_record_take(n, rec, rec_len, &conf, &payload, &payload_len)) {
        conf = *raft_members_of(n->raft);
        payload = NULL;
    }
    struct raft_event ev = {.type = RAFT_EVENT_RECEIVE};
    ev.receive = *m;
    ev.receive.snapshot.members = &conf;
    node_step(n, &ev);
    if (n->snap.incoming_used && payload != NULL) {
        buf_reset(&n->mb.applied);
        lr_assert(buf_append(&n->mb.applied, payload, payload_len) == 0);
    }
    n->snap.incoming = NULL;
}

void node_frame(struct node *n, raft_id from, uint8_t type, const void *body, size_t len)
{
    if (n->stopping) {
        return;
    }
    if (type == TRANSPORT_FRAME_SCRIPT) {
        script_check_frame(n, from, body, len);
        return;
    }
    if (script_check_foreign(n, from)) {
        return; /* a node of another script (script_check.c) */
    }
    if (type == TRANSPORT_FRAME_CHECK) {
        check_frame(n, from, body, len);
        return;
    }
    if (type == TRANSPORT_FRAME_REMOVED) {
        members_frame(n, from, body, len);
        return;
    }
    writes_frame(n, from, type, body, len);
}

struct session *node_session_open(struct node *n)
{
    return session_open(n);
}

void node_session_close(struct node *n, struct session *s)
{
    session_close(n, s);
}

void node_command(struct node *n,
                  struct server_request *req,
                  struct session *s,
                  int argc,
                  const char *const *argv,
                  const size_t *argvlen)
{
    commands_route(n, req, s, argc, argv, argvlen);
}

void node_shutdown(struct node *n)
{
    if (n->stopping || n->shutting_down) {
        return;
    }
    n->shutting_down = true;
    transfer_shutdown(n);
}

bool node_shutdown_ready(const struct node *n)
{
    return n->stopping || n->tr.phase == TRANSFER_IDLE;
}

void node_stop(struct node *n)
{
    if (n->stopping) {
        return;
    }
    n->stopping = true;
    transfer_stop(n);
    sessions_stop(n);
    writes_stop(n);
    reads_stop(n);
    check_stop(n);
    load_stop(n);
    snapshots_stop(n);
    backups_stop(n);
    members_stop(n);
}

void node_free(struct node *n)
{
    if (n == NULL) {
        return;
    }
    raft_free(n->raft);
    cache_free(&n->cache);
    durability_free(n);
    writes_free(n);
    reads_free(n);
    snapshots_free(n);
    backups_free(n);
    sessions_free(n);
    buf_free(&n->mb.applied);
    free(n);
}
