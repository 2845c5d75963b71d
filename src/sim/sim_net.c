/*
 * The simulated network: a directed link matrix, message loss, duplication and random
 * delays (which reorder messages), and the rule that after_persist messages wait for the
 * sender's pending writes.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

void sim_msg_free_list(struct sim *s, struct sim_msg *head, bool count_lost)
{
    while (head != NULL) {
        struct sim_msg *next = head->next;
        if (count_lost) {
            s->stats.msgs_held_lost++;
        }
        free(head);
        head = next;
    }
}

static struct sim_msg *msg_alloc(uint32_t n_entries)
{
    struct sim_msg *msg = malloc(sizeof *msg + n_entries * sizeof(struct sim_entry));
    lr_assert(msg != NULL);
    memset(msg, 0, sizeof *msg);
    return msg;
}

/* APPEND: copies of the n_entries entries after prev_index from the sender's log. The
 * contract says they are always there; a missing one is a violation, and the message is
 * not sent. */
static bool attach_entries(struct sim *s, const struct sim_node *n, struct sim_msg *msg)
{
    const struct raft_message *m = &msg->m;
    raft_term prev_term;
    uint64_t prev_chain;
    if (!sim_log_chain_at(&n->log, m->append.prev_index, &prev_term, &prev_chain) &&
        m->append.n_entries > 0) {
        sim_fail(s, "APPEND names entries the driver does not hold", n->id,
                 m->append.prev_index + 1, m->term, "log holds %llu..%llu",
                 (unsigned long long)n->log.offset + 1,
                 (unsigned long long)sim_log_last_index(&n->log));
        return false;
    }
    for (uint32_t k = 0; k < m->append.n_entries; k++) {
        const struct sim_entry *e = sim_log_at(&n->log, m->append.prev_index + 1 + k);
        if (e == NULL) {
            sim_fail(s, "APPEND names entries the driver does not hold", n->id,
                     m->append.prev_index + 1 + k, m->term, "log holds %llu..%llu",
                     (unsigned long long)n->log.offset + 1,
                     (unsigned long long)sim_log_last_index(&n->log));
            return false;
        }
        msg->entries[k] = *e;
    }
    return true;
}

/* SNAPSHOT: the sender's latest snapshot, which must be the one the core names. */
static bool attach_snapshot(struct sim *s, const struct sim_node *n, struct sim_msg *msg)
{
    const struct raft_message *m = &msg->m;
    if (n->snap.index != m->snapshot.index || n->snap.term != m->snapshot.term) {
        sim_fail(s, "SNAPSHOT names a snapshot the driver does not hold", n->id, m->snapshot.index,
                 m->snapshot.term, "latest snapshot %llu/%llu", (unsigned long long)n->snap.index,
                 (unsigned long long)n->snap.term);
        return false;
    }
    msg->snap = n->snap;
    s->stats.snapshots_sent++;
    return true;
}

/*
 * Carries out step 2 of the update contract for one message: attach payloads, then send
 * at once or hold it behind the node's newest pending write (after_persist).
 */
void sim_net_send_update_msg(struct sim *s, struct sim_node *n, const struct raft_message *m)
{
    lr_assert(m->from == n->id);
    if (m->to == 0 || m->to > s->n_nodes || m->to == n->id) {
        sim_fail(s, "message to an unknown node", n->id, 0, m->term, "%s to n%llu",
                 raft_msg_name(m->type), (unsigned long long)m->to);
        return;
    }
    uint32_t n_entries = m->type == RAFT_MSG_APPEND ? m->append.n_entries : 0;
    struct sim_msg *msg = msg_alloc(n_entries);
    msg->m = *m;
    if (m->type == RAFT_MSG_APPEND) {
        msg->m.append.entries = NULL;
        if (!attach_entries(s, n, msg)) {
            free(msg);
            return;
        }
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        if (!attach_snapshot(s, n, msg)) {
            free(msg);
            return;
        }
    }
    if (m->type == RAFT_MSG_APPEND_RESP && m->append_resp.success) {
        raft_term term;
        if (!sim_log_chain_at(&n->log, m->append_resp.index, &term, &msg->ack_chain)) {
            msg->ack_chain = 0; /* at or below a compacted prefix: the snapshot vouches */
        }
    }
    if (m->after_persist) {
        struct sim_write *w = sim_disk_last_write(n);
        if (w != NULL) {
            if (w->held_tail != NULL) {
                w->held_tail->next = msg;
            } else {
                w->held = msg;
            }
            w->held_tail = msg;
            return;
        }
    }
    sim_net_send(s, msg);
}

static void drop(struct sim *s, struct sim_msg *msg, uint8_t why)
{
    s->stats.msgs_dropped++;
    sim_trace_msg(s, SIM_TR_DROP, why, &msg->m);
    free(msg);
}

/* Puts a message on the network now: it is checked, then lost, cut, or scheduled for
 * delivery after a random delay (and maybe duplicated). */
void sim_net_send(struct sim *s, struct sim_msg *msg)
{
    raft_id from = msg->m.from;
    raft_id to = msg->m.to;
    lr_assert(from >= 1 && from <= s->n_nodes && to >= 1 && to <= s->n_nodes);
    sim_check_send(s, &s->nodes[from], msg);
    s->stats.msgs_sent++;
    if (!s->link[from][to]) {
        drop(s, msg, 'c');
        return;
    }
    if (s->loss_ppm > 0 && lr_rand_chance(&s->rand, s->loss_ppm)) {
        drop(s, msg, 'l');
        return;
    }
    if (s->dup_ppm > 0 && lr_rand_chance(&s->rand, s->dup_ppm)) {
        uint32_t n_entries = msg->m.type == RAFT_MSG_APPEND ? msg->m.append.n_entries : 0;
        size_t size = sizeof *msg + n_entries * sizeof(struct sim_entry);
        struct sim_msg *copy = malloc(size);
        lr_assert(copy != NULL);
        memcpy(copy, msg, size);
        s->stats.msgs_duplicated++;
        sim_schedule(s, s->now_us + sim_rand_range(s, s->delay_min_us, s->delay_max_us),
                     SIM_EV_DELIVER, (uint8_t)to, 0, copy);
    }
    uint64_t at = s->now_us + sim_rand_range(s, s->delay_min_us, s->delay_max_us);
    if (s->opt.fifo_links) {
        /* Never before the link's previous message; equal times keep insertion order. */
        at = at < s->link_last_us[from][to] ? s->link_last_us[from][to] : at;
        s->link_last_us[from][to] = at;
    }
    sim_schedule(s, at, SIM_EV_DELIVER, (uint8_t)to, 0, msg);
}

/* Scratch room for the entries of one incoming APPEND. */
static void rx_reserve(struct sim *s, uint32_t n)
{
    if (n <= s->rx_cap) {
        return;
    }
    uint32_t cap = s->rx_cap ? s->rx_cap : 64;
    while (cap < n) {
        cap *= 2;
    }
    free(s->rx_entries);
    free(s->rx_payload);
    s->rx_entries = malloc(cap * sizeof *s->rx_entries);
    s->rx_payload = malloc(cap * sizeof *s->rx_payload);
    lr_assert(s->rx_entries != NULL && s->rx_payload != NULL);
    s->rx_cap = cap;
}

/*
 * Hands a message to its destination's core. Links are checked again at delivery, so a
 * partition also cuts what is in flight. The message (and for APPEND the decoded entries)
 * stays valid while the core's update is carried out: an install reads its snapshot.
 */
void sim_net_deliver(struct sim *s, struct sim_msg *msg)
{
    struct sim_node *n = &s->nodes[msg->m.to];
    if (!n->up) {
        drop(s, msg, 'd');
        return;
    }
    if (!s->link[msg->m.from][msg->m.to]) {
        drop(s, msg, 'c');
        return;
    }
    lr_assert(!n->paused);
    n->heard_us[msg->m.from] = s->now_us;
    s->stats.msgs_delivered++;
    sim_trace_msg(s, SIM_TR_RECV, 0, &msg->m);

    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_RECEIVE;
    ev.receive = msg->m;
    if (msg->m.type == RAFT_MSG_APPEND) {
        uint32_t count = msg->m.append.n_entries;
        rx_reserve(s, count);
        for (uint32_t k = 0; k < count; k++) {
            sim_entry_to_core(&msg->entries[k], s->rx_payload[k], &s->rx_entries[k]);
        }
        ev.receive.append.entries = count > 0 ? s->rx_entries : NULL;
    }
    struct raft_members conf; /* a snapshot's configuration travels with its data */
    if (msg->m.type == RAFT_MSG_SNAPSHOT) {
        sim_conf_unpack(msg->snap.conf, &conf);
        ev.receive.snapshot.members = &conf;
    }
    s->delivering = msg;
    sim_step_node(s, n, &ev, NULL);
    s->delivering = NULL;
    free(msg);
}

/* --- Faults ----------------------------------------------------------------------- */

void sim_partition(struct sim *s, const unsigned *group)
{
    for (raft_id a = 1; a <= s->n_nodes; a++) {
        for (raft_id b = 1; b <= s->n_nodes; b++) {
            s->link[a][b] = group[a] != 0 && group[a] == group[b];
        }
    }
    /* Record the groups compactly: 4 bits per node. */
    uint64_t packed = 0;
    for (raft_id a = 1; a <= s->n_nodes; a++) {
        packed |= (uint64_t)(group[a] & 0xf) << (4 * (a - 1));
    }
    sim_trace_add(s, SIM_TR_PARTITION, 0, 0, 0, packed, s->n_nodes, 0, 0, 0, 0);
}

void sim_link(struct sim *s, raft_id from, raft_id to, bool up)
{
    lr_assert(from >= 1 && from <= s->n_nodes && to >= 1 && to <= s->n_nodes);
    s->link[from][to] = up;
    sim_trace_add(s, SIM_TR_LINK, from, to, up, 0, 0, 0, 0, 0, 0);
}

bool sim_link_up(const struct sim *s, raft_id from, raft_id to)
{
    lr_assert(from >= 1 && from <= s->n_nodes && to >= 1 && to <= s->n_nodes);
    return s->link[from][to];
}

void sim_isolate(struct sim *s, raft_id id)
{
    lr_assert(id >= 1 && id <= s->n_nodes);
    for (raft_id b = 1; b <= s->n_nodes; b++) {
        if (b != id) {
            s->link[id][b] = false;
            s->link[b][id] = false;
        }
    }
    sim_trace_add(s, SIM_TR_LINK, id, 0, 2, 0, 0, 0, 0, 0, 0);
}

void sim_heal_links(struct sim *s)
{
    for (raft_id a = 1; a <= s->n_nodes; a++) {
        for (raft_id b = 1; b <= s->n_nodes; b++) {
            s->link[a][b] = true;
        }
    }
    sim_trace_add(s, SIM_TR_HEAL, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

void sim_net_faults(struct sim *s,
                    uint32_t loss_ppm,
                    uint32_t dup_ppm,
                    uint64_t delay_min_us,
                    uint64_t delay_max_us)
{
    lr_assert(loss_ppm <= 1000000 && dup_ppm <= 1000000);
    lr_assert(delay_min_us <= delay_max_us);
    s->loss_ppm = loss_ppm;
    s->dup_ppm = dup_ppm;
    s->delay_min_us = delay_min_us;
    s->delay_max_us = delay_max_us;
    sim_trace_add(s, SIM_TR_NET, 0, 0, 0, loss_ppm, dup_ppm, delay_min_us, delay_max_us, 0, 0);
}
