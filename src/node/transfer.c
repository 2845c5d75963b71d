/*
 * Leadership transfer: RAFT.TRANSFER [id] from a client (on a follower, forwarded to the
 * leader as its writes are), and the one a leader makes when it shuts down gracefully.
 *
 * The core already knows how to hand over (thesis 3.10, raft.h RAFT_EVENT_TRANSFER): it
 * refuses proposals, brings the target's log up to date, tells it to campaign at once
 * (TIMEOUT_NOW), and gives up after an election timeout. This room decides around it:
 *
 *   DRAINING  the node refuses new writes (-TRYAGAIN) and waits until the writes it
 *             already proposed are applied, so their clients get their replies rather
 *             than the unknown outcome a leader that steps down must give;
 *   HANDING   the core's transfer, until the core gives up or this node steps down;
 *   ELECTING  this node follows nobody yet: waiting to learn who won.
 *
 * Each phase has at most an election timeout (election_ticks x tick_ms of the node's own
 * clock, passed in through node_io). The outcome is known on the old leader: success once
 * it follows the target, failure once another node leads, this node leads again, or a
 * phase's time runs out. Whoever asked gets +OK or an error saying which.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "command.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "util/assert.h"

const char transfer_busy_reply[] = "-TRYAGAIN a leadership transfer is in progress; retry\r\n";

static const char command_name[] = "RAFT.TRANSFER";

static uint64_t election_timeout_ms(const struct node *n)
{
    return (uint64_t)n->c->election_ticks * n->c->tick_ms;
}

bool transfer_blocks_writes(struct node *n)
{
    return n->tr.phase != TRANSFER_IDLE;
}

const char *transfer_phase_name(const struct node *n)
{
    switch (n->tr.phase) {
        case TRANSFER_DRAINING:
            return "draining";
        case TRANSFER_HANDING:
            return "handing";
        case TRANSFER_ELECTING:
            return "electing";
        default:
            return "none";
    }
}

__attribute__((format(printf, 3, 4))) static void reply_error(struct node *n,
                                                              const struct origin *o,
                                                              const char *fmt,
                                                              ...)
{
    va_list ap;
    va_start(ap, fmt);
    origin_reply_verror(n, o, command_name, fmt, ap);
    va_end(ap);
}

raft_id transfer_choose(struct node *n)
{
    raft_id best = 0;
    raft_index best_match = 0;
    bool best_connected = false;
    const struct raft_members *m = raft_members_of(n->raft);
    for (unsigned i = 0; i < m->n; i++) {
        raft_id id = m->servers[i].id;
        struct raft_peer_info pi;
        if (id == n->c->id || !raft_peer_info(n->raft, id, &pi) || !pi.voter) {
            continue;
        }
        bool connected = n->io->peer_connected(n->io->arg, id);
        bool better = best == 0 || (connected && !best_connected) ||
                      (connected == best_connected &&
                       (pi.match > best_match || (pi.match == best_match && id < best)));
        if (better) {
            best = id;
            best_match = pi.match;
            best_connected = connected;
        }
    }
    return best;
}

/* ------------------------------------------------------------------------------------ */
/* Outcomes. */

static void finish(struct node *n)
{
    n->tr.phase = TRANSFER_IDLE;
    n->tr.target = 0;
    n->tr.o = (struct origin){NULL, 0, 0};
}

static void succeed(struct node *n)
{
    struct origin o = n->tr.o;
    raft_id target = n->tr.target;
    n->tr.done++;
    finish(n);
    node_log(n, "leadership transfer: node %" PRIu64 " is the leader", target);
    origin_reply(n, &o, "+OK\r\n", 5);
}

__attribute__((format(printf, 2, 3))) static void fail(struct node *n, const char *fmt, ...)
{
    char why[node_errmsg_bytes / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    struct origin o = n->tr.o;
    raft_id target = n->tr.target;
    n->tr.failed++;
    finish(n);
    node_log(n, "leadership transfer to node %" PRIu64 " failed: %s", target, why);
    reply_error(n, &o, "to node %" PRIu64 " failed: %s", target, why);
}

void transfer_observe(struct node *n)
{
    struct transfers *t = &n->tr;
    if (t->phase == TRANSFER_IDLE || n->stopping) {
        return;
    }
    raft_id leader = raft_leader_of(n->raft);
    raft_term term = raft_current_term(n->raft);
    if (raft_role_of(n->raft) == RAFT_LEADER) {
        if (term != t->term) {
            fail(n, "this node was elected again, in term %" PRIu64, term);
        }
        return;
    }
    if (leader == t->target) {
        succeed(n);
    } else if (leader != 0) {
        fail(n, "node %" PRIu64 " became the leader instead, in term %" PRIu64, leader, term);
    } else if (t->phase != TRANSFER_ELECTING) {
        t->phase = TRANSFER_ELECTING; /* stepped down: the target's campaign is under way */
        t->deadline_ms = node_now(n) + election_timeout_ms(n);
    }
}

/* The core gave up its transfer while this node still leads: say which part failed. */
static void handing_ended(struct node *n)
{
    struct raft_peer_info pi;
    uint64_t ms = election_timeout_ms(n);
    if (raft_peer_info(n->raft, n->tr.target, &pi) && pi.match < raft_last_index(n->raft)) {
        fail(n, "it did not catch up with the log within an election timeout (%" PRIu64 " ms)", ms);
    } else {
        fail(n,
             "it was told to campaign but did not become the leader within an election timeout "
             "(%" PRIu64 " ms)",
             ms);
    }
}

/* The writes in flight are applied: the core's transfer begins. */
static void hand(struct node *n)
{
    struct transfers *t = &n->tr;
    t->phase = TRANSFER_HANDING;
    t->deadline_ms = node_now(n) + election_timeout_ms(n);
    struct raft_event ev = {.type = RAFT_EVENT_TRANSFER};
    ev.transfer.target = t->target;
    int rv = node_step(n, &ev);
    if (rv != 0 && t->phase == TRANSFER_HANDING) {
        fail(n, "%s", raft_strerror(rv));
    }
}

void transfer_poll(struct node *n)
{
    struct transfers *t = &n->tr;
    if (t->phase == TRANSFER_IDLE || n->stopping) {
        return;
    }
    if (n->dur.store_failed) {
        fail(n, "this node's store failed");
        return;
    }
    uint64_t now = node_now(n);
    switch (t->phase) {
        case TRANSFER_DRAINING:
            if (n->wr.pend_n == 0) {
                hand(n);
            } else if (now >= t->deadline_ms) {
                fail(n, "%zu writes in flight were not applied within an election timeout",
                     n->wr.pend_n);
            }
            break;
        case TRANSFER_HANDING:
            if (raft_role_of(n->raft) == RAFT_LEADER && raft_transfer_target(n->raft) == 0) {
                handing_ended(n);
            }
            break;
        case TRANSFER_ELECTING:
            if (now >= t->deadline_ms) {
                fail(n,
                     "no leader was known within an election timeout after this node stepped "
                     "down");
            }
            break;
        default:
            break;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Requests. */

/* On the leader: checks the target (0: the most caught-up voter) and begins. */
static void request(struct node *n, const struct origin *o, raft_id target)
{
    if (n->stopping) {
        origin_reply(n, o, node_down_reply, strlen(node_down_reply));
        return;
    }
    if (raft_role_of(n->raft) != RAFT_LEADER) {
        static const char text[] = "-TRYAGAIN not the leader; retry\r\n";
        origin_reply(n, o, text, strlen(text));
        return;
    }
    if (n->tr.phase != TRANSFER_IDLE) {
        origin_reply(n, o, transfer_busy_reply, strlen(transfer_busy_reply));
        return;
    }
    target = target != 0 ? target : transfer_choose(n);
    struct raft_peer_info pi;
    if (target == 0) {
        reply_error(n, o, "failed: there is no other voter to hand leadership to");
    } else if (target == n->c->id) {
        origin_reply(n, o, "+OK\r\n", 5); /* the target already leads */
    } else if (!raft_peer_info(n->raft, target, &pi)) {
        reply_error(n, o, "failed: node %" PRIu64 " is not a member of the cluster", target);
    } else if (!pi.voter) {
        reply_error(n, o, "failed: node %" PRIu64 " is not a voter", target);
    } else {
        struct transfers *t = &n->tr;
        t->phase = TRANSFER_DRAINING;
        t->target = target;
        t->term = raft_current_term(n->raft);
        t->deadline_ms = node_now(n) + election_timeout_ms(n);
        t->o = *o;
        node_log(n,
                 "leadership transfer to node %" PRIu64 " (match %" PRIu64 " of %" PRIu64
                 "): %zu writes in flight first",
                 target, pi.match, raft_last_index(n->raft), n->wr.pend_n);
        transfer_poll(n);
    }
}

/* RAFT.TRANSFER's arguments: nothing, or a node id. Returns false if malformed. */
static bool parse_target(int argc, const char *const *argv, const size_t *argvlen, raft_id *out)
{
    *out = 0;
    return argc < 2 || node_parse_id(argv[1], argvlen[1], out);
}

/* A member of the configuration the core acts on (the latest, committed or not). */
static bool is_member(const struct node *n, raft_id id)
{
    return raft_members_find(raft_members_of(n->raft), id) != NULL;
}

void transfer_command(const struct conn_call *c)
{
    struct node *n = c->n;
    struct origin o = {c->req, 0, 0};
    raft_id target;
    if (c->argc > 2) {
        conn_reply_error(n, c->req, "ERR wrong number of arguments for 'raft.transfer' command");
        return;
    }
    if (!parse_target(c->argc, c->argv, c->argvlen, &target)) {
        reply_error(n, &o, "failed: the node id must be a positive integer");
        return;
    }
    if (target != 0 && !is_member(n, target)) {
        reply_error(n, &o, "failed: node %" PRIu64 " is not a member of the cluster", target);
        return;
    }
    if (!writes_to_leader(n, c->req, c->argc, c->argv, c->argvlen)) {
        request(n, &o, target);
    }
}

bool transfer_forwarded(struct node *n, const struct origin *o, const void *blob, size_t len)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get_argv(blob, len, &argc, &argv, &argvlen)) {
        return false; /* a transaction, or not a command at all: the writes' to answer */
    }
    bool ours = argc >= 1 && argvlen[0] == strlen(command_name) &&
                strncasecmp(argv[0], command_name, argvlen[0]) == 0;
    raft_id target;
    if (ours && (argc > 2 || !parse_target(argc, argv, argvlen, &target))) {
        reply_error(n, o, "failed: the node id must be a positive integer");
    } else if (ours && n->shutting_down) {
        origin_reply(n, o, node_down_reply, strlen(node_down_reply));
    } else if (ours) {
        request(n, o, target);
    }
    free(argv);
    free(argvlen);
    return ours;
}

/* ------------------------------------------------------------------------------------ */
/* Shutdown. */

void transfer_shutdown(struct node *n)
{
    if (raft_role_of(n->raft) != RAFT_LEADER || n->dur.store_failed) {
        return; /* a follower has no leadership to hand over */
    }
    if (n->tr.phase != TRANSFER_IDLE) {
        node_log(n, "shutting down once the leadership transfer to node %" PRIu64 " ends",
                 n->tr.target);
        return;
    }
    raft_id target = transfer_choose(n);
    if (target == 0) {
        node_log(n, "shutting down: there is no other voter to hand leadership to");
        return;
    }
    struct origin none = {NULL, 0, 0};
    request(n, &none, target);
}

void transfer_stop(struct node *n)
{
    if (n->tr.phase == TRANSFER_IDLE) {
        return;
    }
    struct origin o = n->tr.o;
    raft_id target = n->tr.target;
    finish(n);
    reply_error(n, &o,
                "to node %" PRIu64 ": this node stopped before it ended; its outcome is unknown",
                target);
}
