/*
 * The whole-node simulator: leadership transfers and graceful shutdowns among the faults.
 *
 * A transfer is RAFT.TRANSFER [id] handed to a random node through its command path, as
 * a client's would be (a follower forwards it), with the id of a random node, none (the
 * node picks), or one that is no member. Its reply is checked against what the nodes did:
 * +OK only once the target led a term after the one the asked node knew (or, asked for
 * the leader itself, led that term); never for a node that is no member.
 *
 * A graceful shutdown is node_shutdown, then node_stop once node_shutdown_ready says so or
 * two election timeouts passed (as src/node/runtime.c bounds it); the node's store then
 * finishes its queued writes and the node exits, to be restarted later like a crashed one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/nodes/internal.h"
#include "util/assert.h"

int ns_nodes_leaving(struct world *w)
{
    int k = 0;
    for (int i = 0; i < w->n_nodes; i++) {
        k += !w->nodes[i].up || w->nodes[i].exiting || w->nodes[i].shutdown_at > 0;
    }
    return k;
}

void ns_transfer_fault(struct world *w, struct sim_node *s)
{
    struct sim_admin *a = &w->adm;
    if (a->inflight && w->now < a->asked_at + sim_client_timeout_ms) {
        return; /* one at a time; an answer lost in a crash is given up on */
    }
    if (!s->up || s->exiting) {
        return;
    }
    /* A random voter, none (0), or one past the last member. */
    raft_id target = (raft_id)ns_rnd(w, 0, (uint64_t)w->n_nodes + 1);
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, target);
    const char *argv[2] = {"RAFT.TRANSFER", id};
    size_t argvlen[2] = {strlen(argv[0]), strlen(id)};
    *a = (struct sim_admin){.inflight = true,
                            .seq = a->seq + 1,
                            .asked_at = w->now,
                            .target = target,
                            .leader_then = raft_leader_of(s->n->raft),
                            .term_then = raft_current_term(s->n->raft)};
    w->st->transfers++;
    struct server_request *r = calloc(1, sizeof *r);
    lr_assert(r != NULL);
    r->client = -1;
    r->op = a->seq;
    r->admin = true;
    r->next = s->reqs;
    s->reqs = r;
    node_command(s->n, r, NULL, target == 0 ? 1 : 2, argv, argvlen);
    node_turn(s->n);
}

/* What a +OK proves: the target (any node but the old leader, if none was named) led a
 * term after the one the asked node knew; a target that already led gets +OK at once. */
static bool ok_explained(struct world *w, const struct sim_admin *a)
{
    if (a->target > (raft_id)w->n_nodes) {
        return false;
    }
    if (a->target != 0) {
        raft_term led = w->nodes[a->target - 1].led_term;
        return a->target == a->leader_then ? led >= a->term_then : led > a->term_then;
    }
    for (int i = 0; i < w->n_nodes; i++) {
        if ((raft_id)i + 1 != a->leader_then && w->nodes[i].led_term > a->term_then) {
            return true;
        }
    }
    return false;
}

void ns_admin_reply(struct world *w, struct server_request *req, const char *resp, size_t len)
{
    struct sim_admin *a = &w->adm;
    if (!a->inflight || req->op != a->seq) {
        return; /* given up on */
    }
    a->inflight = false;
    if (len >= 5 && memcmp(resp, "+OK\r\n", 5) == 0) {
        w->st->transfers_ok++;
        if (!ok_explained(w, a)) {
            ns_violation(w,
                         "RAFT.TRANSFER %" PRIu64 " (asked at %" PRIu64 " ms in term %" PRIu64
                         ", leader %" PRIu64 ") answered +OK, but its target never led after",
                         a->target, a->asked_at, a->term_then, a->leader_then);
        }
    } else if (len == 0 || resp[0] != '-') {
        char text[64];
        snprintf(text, sizeof text, "%.*s", (int)(len < 60 ? len : 60), resp);
        ns_violation(w, "RAFT.TRANSFER answered neither +OK nor an error: %s", text);
    }
}

void ns_shutdown_fault(struct world *w, struct sim_node *s)
{
    if (s->up && !s->exiting && s->shutdown_at == 0 && ns_nodes_leaving(w) < (w->n_nodes - 1) / 2) {
        s->shutdown_at = w->now;
        node_shutdown(s->n);
        ns_shutdown_check(w, s);
    }
}

void ns_shutdown_check(struct world *w, struct sim_node *s)
{
    if (!s->up || s->exiting || s->shutdown_at == 0) {
        return;
    }
    uint64_t bound = 2 * (uint64_t)s->cfg.election_ticks * s->cfg.tick_ms;
    if (!node_shutdown_ready(s->n) && w->now < s->shutdown_at + bound) {
        return;
    }
    node_stop(s->n);
    s->exiting = true;
    s->shutdown_at = 0;
    w->st->graceful_stops++;
    /* Persist requests finish in order by disk_free_at: the exit comes after the last. */
    uint64_t at = s->disk_free_at > w->now ? s->disk_free_at : w->now;
    ns_schedule(w, (struct event){.time = at, .type = EV_EXIT, .node = s->idx, .inc = s->inc});
}
