/*
 * The whole-node simulator (see nodesim.h). One event queue on a virtual clock carries
 * everything between the nodes and the world: ticks, peer messages and frames, persist
 * and fsm completions, client requests and replies, faults. Each node is the real
 * struct node of src/node/ with a real fsm; only struct node_io is simulated. After every
 * event a node receives, its loop turn ends (node_turn), as in the real runtime.
 *
 * What it catches: any client-visible outcome that no linearization explains (a write
 * answered before it is applied, a stale read, a lost acknowledged write, a success
 * reply for a write whose outcome is unknown), a client answered twice, replicas whose
 * states differ after the faults heal, and every assertion of the node and the core.
 * What it cannot: anything in the real runtime (libuv, LMDB, the transport, the fsm
 * thread, snapshot children), which the specs with real processes cover.
 */
#include "sim/nodes/nodesim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/nodes/internal.h"
#include "util/assert.h"

/* ------------------------------------------------------------------------------------ */
/* Faults, and the run. */

static void fault(struct world *w)
{
    int i = (int)ns_rnd(w, 0, (uint64_t)w->n_nodes - 1);
    struct sim_node *s = &w->nodes[i];
    switch (ns_rnd(w, 0, 13)) {
        case 0:
            if (s->up && ns_nodes_leaving(w) < (w->n_nodes - 1) / 2) {
                ns_node_crash(s);
            }
            break;
        case 1:
            if (!s->up) {
                ns_node_start(s);
            }
            break;
        case 2:
            w->cut[i] = !w->cut[i];
            w->st->partitions += w->cut[i];
            break;
        case 3:
            s->slow_disk = !s->slow_disk;
            break;
        case 4:
            if (s->up && ns_rnd(w, 0, 3) == 0) {
                s->disk_fail_next = true; /* fail-stop; the operator restarts it later */
            }
            break;
        case 5:
            w->drop_percent = (unsigned)ns_rnd(w, 0, 20);
            break;
        case 6:
            s->snap_fail_next = true; /* its next snapshot child fails */
            break;
        case 7:
            s->slow_fsm = !s->slow_fsm; /* a script that takes its time */
            break;
        case 8:
            if (s->up && ns_rnd(w, 0, 3) == 0) {
                s->disk_full_next = true; /* the map fills up: fail-stop too */
            }
            break;
        case 9:
        case 10:
            ns_transfer_fault(w, s); /* RAFT.TRANSFER, through the node's command path */
            break;
        case 11:
            if (ns_rnd(w, 0, 2) == 0) {
                ns_shutdown_fault(w, s); /* SIGTERM: hand over leadership, then exit */
            }
            break;
        default: /* a node whose store failed is restarted by its operator */
            if (s->up && s->n->dur.store_failed) {
                ns_node_crash(s);
                ns_node_start(s);
            }
    }
    ns_schedule(
        w, (struct event){.time = w->now + ns_rnd(w, 1, 2 * sim_fault_every_ms), .type = EV_FAULT});
}

static void heal(struct world *w)
{
    w->healing = true;
    w->drop_percent = 0;
    for (int i = 0; i < w->n_nodes; i++) {
        struct sim_node *s = &w->nodes[i];
        w->cut[i] = false;
        if (s->up && (s->n->dur.store_failed || s->exiting || s->shutdown_at > 0)) {
            ns_node_crash(s);
        }
        if (!s->up) {
            ns_node_start(s);
        }
        s->slow_disk = s->disk_fail_next = s->disk_full_next = s->slow_fsm = false;
        s->snap_fail_next = false;
    }
}

static void dispatch(struct world *w, struct event *ev)
{
    switch (ev->type) {
        case EV_CLIENT_SEND:
            ns_client_send(w, ev->node);
            return;
        case EV_CLIENT_REPLY:
            ns_client_reply(w, ev);
            free(ev->p);
            return;
        case EV_CLIENT_TIMEOUT:
            if (w->clients[ev->node].op == (int64_t)ev->a) {
                ns_client_unknown(w, ev->node);
                ns_client_next(w, ev->node);
            }
            return;
        case EV_FAULT:
            if (!w->healing) {
                fault(w);
            }
            return;
        default:
            break;
    }
    struct sim_node *s = &w->nodes[ev->node];
    if (!s->up || ev->inc != s->inc) {
        ns_event_free(ev);
        return;
    }
    if (s->exiting) {
        ns_exiting_event(s, ev);
        return;
    }
    ns_node_event(w, s, ev);
}

static int snap_write(void *arg, const void *data, size_t len)
{
    return buf_append(arg, data, len) == 0 ? 0 : -1;
}

/* After the heal: every node applied the same log, and holds the same state. */
static bool converged(struct world *w, bool report)
{
    raft_index applied = w->nodes[0].n->applied;
    for (int i = 0; i < w->n_nodes; i++) {
        struct node *n = w->nodes[i].n;
        if (n->applied != applied || n->applied != raft_commit_index(n->raft) ||
            raft_leader_of(n->raft) == 0) {
            return false;
        }
    }
    for (int c = 0; c < sim_clients; c++) {
        if (w->clients[c].op >= 0) {
            return false;
        }
    }
    if (!report) {
        return true;
    }
    struct buf first;
    buf_init(&first);
    for (int i = 0; i < w->n_nodes; i++) {
        struct buf b;
        buf_init(&b);
        fsm_snapshot(w->nodes[i].fsm, snap_write, &b);
        if (i == 0) {
            first = b;
            continue;
        }
        if (b.len != first.len || memcmp(b.data, first.data, b.len) != 0) {
            ns_violation(w, "node %d's state differs from node 1's at applied index %" PRIu64,
                         i + 1, applied);
        }
        buf_free(&b);
    }
    buf_free(&first);
    return true;
}

static void world_free(struct world *w)
{
    while (w->heap_n > 0) {
        struct event ev = ns_pop(w);
        if (ev.type == EV_DELIVER || ev.type == EV_PERSIST || ev.type == EV_FSM ||
            ev.type == EV_FRAME || ev.type == EV_CLIENT_REPLY || ev.type == EV_SNAPSHOT_WRITTEN ||
            ev.type == EV_DELIVER_SNAPSHOT) {
            ns_event_free(&ev);
        }
    }
    free(w->heap);
    for (int i = 0; i < w->n_nodes; i++) {
        struct sim_node *s = &w->nodes[i];
        if (s->up) {
            ns_node_crash(s);
        }
        ns_free_entries(s->log, (uint32_t)s->log_n);
        ns_files_free(s);
    }
    lincheck_free(w->h);
}

static void run_events(struct world *w, uint64_t until, bool until_converged)
{
    while (w->heap_n > 0 && !w->failed && w->now <= until) {
        struct event ev = ns_pop(w);
        lr_assert(ev.time >= w->now);
        w->now = ev.time;
        w->st->events++;
        dispatch(w, &ev);
        if (until_converged && converged(w, false)) {
            return;
        }
        if (!until_converged && w->st->ops >= w->o->steps) {
            return;
        }
    }
}

int nodesim_run(const struct nodesim_options *o,
                struct nodesim_stats *stats,
                char *msg,
                size_t msg_size)
{
    struct world *w = calloc(1, sizeof *w);
    lr_assert(w != NULL && o->nodes >= 1 && o->nodes <= sim_nodes_max);
    memset(stats, 0, sizeof *stats);
    *w = (struct world){.o = o,
                        .st = stats,
                        .msg = msg,
                        .msg_size = msg_size,
                        .n_nodes = o->nodes,
                        .h = lincheck_new()};
    msg[0] = '\0';
    lr_rand_seed(&w->rng, o->seed);
    /* A third of the runs take no snapshots; the rest take them often, with or without
     * entries kept behind them, so that followers catch up from the log or a snapshot. */
    uint64_t snapshot_entries = ns_rnd(w, 0, 2) == 0 ? 0 : ns_rnd(w, 10, 60);
    uint64_t snapshot_trailing = ns_rnd(w, 0, 1) == 0 ? 0 : ns_rnd(w, 1, 20);
    /* Half the runs keep every payload in memory, half a few hundred bytes of them, so
     * lagging followers are served from the store. */
    uint64_t log_cache_bytes = ns_rnd(w, 0, 1) == 0 ? 0 : ns_rnd(w, 1, 400);
    /* A third of the runs also snapshot by log bytes. */
    uint64_t snapshot_bytes = ns_rnd(w, 0, 2) == 0 ? ns_rnd(w, 300, 3000) : 0;
    for (int i = 0; i < w->n_nodes; i++) {
        struct sim_node *s = &w->nodes[i];
        s->w = w;
        s->idx = i;
        s->log_first = 1;
        snprintf(s->dir, sizeof s->dir, "sim-node-%d", i + 1);
        s->cfg = (struct node_config){.id = (raft_id)i + 1,
                                      .data_dir = s->dir,
                                      .tick_ms = sim_tick_ms,
                                      .heartbeat_ticks = 1,
                                      .election_ticks = 10,
                                      .snapshot_entries = snapshot_entries,
                                      .snapshot_trailing = snapshot_trailing,
                                      .write_timeout_ms = 20000,
                                      .log_cache_bytes = log_cache_bytes,
                                      .snapshot_bytes = snapshot_bytes};
        for (int k = 0; k < w->n_nodes; k++) {
            s->servers[k] = (struct raft_server){(raft_id)k + 1, true};
        }
        s->n_servers = (unsigned)w->n_nodes;
        if (ns_node_start(s) != 0) {
            break;
        }
    }
    for (int c = 0; c < sim_clients; c++) {
        w->clients[c] =
            (struct sim_client){.uid = ++w->next_uid, .op = -1, .target = c % w->n_nodes};
        ns_client_next(w, c);
    }
    ns_schedule(w, (struct event){.time = 500, .type = EV_FAULT});
    run_events(w, UINT64_MAX, false);
    heal(w);
    run_events(w, w->now + sim_heal_ms_max, true);
    if (!w->failed && !converged(w, true)) {
        ns_violation(w, "the cluster did not converge within %d ms of virtual time after the heal",
                     (int)sim_heal_ms_max);
    }
    if (!w->failed) {
        static char report[8192];
        int rv = lincheck_check(w->h, 10 * lincheck_budget_default, report, sizeof report);
        if (rv != LINCHECK_OK) {
            ns_violation(w, "%s: %s", rv == LINCHECK_VIOLATION ? "not linearizable" : "undecided",
                         report);
        }
    }
    bool failed = w->failed;
    world_free(w);
    free(w);
    return failed ? -1 : 0;
}
