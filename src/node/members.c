/*
 * Membership: the configuration in force with every member's addresses.
 *
 * The core changes the configuration one server at a time, by CONFIG entries whose payload
 * starts with raft_members_encode's bytes (raft.h). After them the node writes its address
 * book, every member's peer and client address, so that every replica learns them from
 * the log:
 *
 *   'B' (1 byte), the count (1 byte), then per member: its id (8 bytes, big-endian), the
 *   length of its peer address (1 byte) and the address ("host:port" as given), the length
 *   of its client address (1 byte, 0 when not known) and the address.
 *
 * A snapshot file carries the configuration as of its index as a members record
 * (snapfile_begin_members): the length of the cluster's id (1 byte), the id (hex), then
 * the CONFIG payload of that configuration. A record of another cluster (a backup restored
 * into a new cluster) is not taken.
 *
 * n->members follows the configuration in force (the latest in the log, committed or not,
 * as the core acts on it): CLUSTER, INFO, RAFT.INFO, /status and /metrics show it, and the
 * peers the transport connects to are its members (node_io.set_peers). A node whose
 * configuration is empty (it joins and is not added yet) keeps the peers it started
 * with. A member removed stays a peer for node_gone_ms (so that the frames on their way,
 * a removed leader's answers to forwarded writes among them, arrive), and so does the
 * leader a node follows; a node removed from the cluster drops its peers that long after,
 * once it no longer leads, so it neither disturbs the others nor is disturbed (they
 * refuse its connections too).
 *
 * RAFT.ADD id raft-address [client-address] adds a learner; the leader promotes it to voter
 * on its ticks once the learner's log is within node_promote_lag_entries of its own and
 * no other change is under way. RAFT.REMOVE id removes a voter or a learner (the leader
 * too: it commits the change, then the core makes it step down). Either is answered once
 * its CONFIG entry is committed, or with why not (one change at a time; a new leader
 * commits an entry of its own term first: -TRYAGAIN).
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
#include "peer/transport.h"
#include "util/assert.h"

enum { book_magic = 'B' };

/* ------------------------------------------------------------------------------------ */
/* The address book. */

struct member_addr *members_book_find(struct membership *mb, raft_id id)
{
    for (unsigned i = 0; i < mb->book_n; i++) {
        if (mb->book[i].id == id) {
            return &mb->book[i];
        }
    }
    return NULL;
}

/* Records id's addresses (an empty client address keeps the one known). When the book is
 * full, an entry of a server outside the configuration in force makes room. */
static void book_put(struct node *n, raft_id id, const char *raft, const char *client)
{
    struct membership *mb = &n->mb;
    struct member_addr *a = members_book_find(mb, id);
    if (a == NULL && mb->book_n == sizeof mb->book / sizeof mb->book[0]) {
        const struct raft_members *m = n->raft != NULL ? raft_members_of(n->raft) : NULL;
        for (unsigned i = 0; i < mb->book_n && a == NULL; i++) {
            if (m == NULL || raft_members_find(m, mb->book[i].id) == NULL) {
                a = &mb->book[i];
            }
        }
    }
    if (a == NULL && mb->book_n < sizeof mb->book / sizeof mb->book[0]) {
        a = &mb->book[mb->book_n++];
    }
    if (a == NULL) {
        return;
    }
    if (a->id != id) {
        memset(a, 0, sizeof *a);
        a->id = id;
    }
    snprintf(a->raft, sizeof a->raft, "%s", raft);
    if (client[0] != '\0') {
        snprintf(a->client, sizeof a->client, "%s", client);
    }
}

const char *members_client_addr(const struct node *n, raft_id id)
{
    for (unsigned i = 0; i < n->mb.book_n; i++) {
        if (n->mb.book[i].id == id && n->mb.book[i].client[0] != '\0') {
            return n->mb.book[i].client;
        }
    }
    return NULL;
}

/* A CONFIG payload: m's encoding, then the book's entries for its members (extra, if
 * given, stands for its id). */
void members_record_make(struct node *n,
                         const struct raft_members *m,
                         const struct member_addr *extra,
                         struct buf *out)
{
    uint8_t enc[RAFT_MEMBERS_BYTES_MAX];
    size_t k = raft_members_encode(m, enc, sizeof enc);
    lr_assert(k > 0);
    buf_init(out);
    int rv = buf_append(out, enc, k);
    rv = rv ? rv : buf_put_u8(out, book_magic);
    rv = rv ? rv : buf_put_u8(out, (uint8_t)m->n);
    for (unsigned i = 0; i < m->n && rv == 0; i++) {
        raft_id id = m->servers[i].id;
        const struct member_addr *a = extra != NULL && extra->id == id ? extra : NULL;
        a = a != NULL ? a : members_book_find(&n->mb, id);
        const char *raft = a != NULL ? a->raft : "";
        const char *client = a != NULL ? a->client : "";
        rv = buf_put_u64(out, id);
        rv = rv ? rv : buf_put_u8(out, (uint8_t)strlen(raft));
        rv = rv ? rv : buf_append(out, raft, strlen(raft));
        rv = rv ? rv : buf_put_u8(out, (uint8_t)strlen(client));
        rv = rv ? rv : buf_append(out, client, strlen(client));
    }
    lr_assert(rv == 0);
}

static bool get_text(struct cursor *c, char *out, size_t size)
{
    uint8_t len;
    const uint8_t *p;
    if (!cursor_get_u8(c, &len) || len >= size || !cursor_get_bytes(c, len, &p)) {
        return false;
    }
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* Decodes a CONFIG payload into m, and its book into the node's (learn). Returns false if
 * it is not one; a payload without a book (the core's encoding alone) is one. */
static bool record_parse(struct node *n,
                         const void *p,
                         size_t len,
                         struct raft_members *m,
                         bool learn)
{
    size_t used;
    if (raft_members_decode(p, len, m, &used) != 0) {
        return false;
    }
    struct cursor c = cursor_make((const uint8_t *)p + used, len - used);
    uint8_t magic, count;
    if (c.left == 0) {
        return true;
    }
    if (!cursor_get_u8(&c, &magic) || magic != book_magic || !cursor_get_u8(&c, &count)) {
        return false;
    }
    for (unsigned i = 0; i < count; i++) {
        struct member_addr a = {0};
        if (!cursor_get_u64(&c, &a.id) || !get_text(&c, a.raft, sizeof a.raft) ||
            !get_text(&c, a.client, sizeof a.client)) {
            return false;
        }
        if (learn && a.id != 0 && a.raft[0] != '\0') {
            book_put(n, a.id, a.raft, a.client);
        }
    }
    return true;
}

void members_appended(struct node *n, const struct raft_entry *e)
{
    struct raft_members m;
    if (e->type == RAFT_ENTRY_CONFIG && e->buf != NULL) {
        record_parse(n, e->buf, e->len, &m, true);
    }
}

void members_dispatched(struct node *n, const struct cache_entry *e)
{
    if (e->type != RAFT_ENTRY_CONFIG || e->buf == NULL) {
        return;
    }
    buf_reset(&n->mb.applied);
    lr_assert(buf_append(&n->mb.applied, e->buf, e->len) == 0);
}

void *members_snapshot_record(struct node *n, size_t *len)
{
    struct membership *mb = &n->mb;
    size_t cid = strlen(mb->cluster_id);
    *len = 0;
    if (cid == 0 || mb->applied.len == 0) {
        return NULL;
    }
    uint8_t *rec = malloc(1 + cid + mb->applied.len);
    lr_assert(rec != NULL);
    rec[0] = (uint8_t)cid;
    memcpy(rec + 1, mb->cluster_id, cid);
    memcpy(rec + 1 + cid, mb->applied.data, mb->applied.len);
    *len = 1 + cid + mb->applied.len;
    return rec;
}

bool members_record_take(struct node *n,
                         const void *rec,
                         size_t len,
                         struct raft_members *m,
                         const void **payload,
                         size_t *payload_len)
{
    const uint8_t *p = rec;
    size_t cid = strlen(n->mb.cluster_id);
    if (len < 1 || p[0] != cid || len < 1 + cid || memcmp(p + 1, n->mb.cluster_id, cid) != 0) {
        return false;
    }
    *payload = p + 1 + cid;
    *payload_len = len - 1 - cid;
    return record_parse(n, *payload, *payload_len, m, true);
}

/* ------------------------------------------------------------------------------------ */
/* Following the configuration in force. */

static bool same_members(const struct raft_members *a, const struct raft_members *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (unsigned i = 0; i < a->n; i++) {
        const struct raft_server *s = raft_members_find(b, a->servers[i].id);
        if (s == NULL || s->voter != a->servers[i].voter) {
            return false;
        }
    }
    return true;
}

static void show(struct node *n, const struct raft_members *m)
{
    char line[node_errmsg_bytes];
    size_t k = 0;
    struct node_member old[RAFT_SERVERS_MAX];
    int n_old = n->n_members;
    memcpy(old, n->members, (size_t)n_old * sizeof old[0]);
    n->n_members = 0;
    for (unsigned i = 0; i < m->n; i++) {
        struct node_member *nm = &n->members[n->n_members++];
        const struct member_addr *a = members_book_find(&n->mb, m->servers[i].id);
        char msg[node_errmsg_bytes];
        *nm = (struct node_member){.id = m->servers[i].id, .voter = m->servers[i].voter};
        for (int j = 0; j < n_old; j++) {
            if (old[j].id == nm->id) { /* resolved already (a name is resolved once) */
                snprintf(nm->host, sizeof nm->host, "%s", old[j].host);
                nm->port = old[j].port;
            }
        }
        if (nm->port == 0 && (a == NULL || config_resolve_addr(a->raft, nm->host, sizeof nm->host,
                                                               &nm->port, msg, sizeof msg) != 0)) {
            nm->host[0] = '\0';
            nm->port = 0;
        }
        k += (size_t)snprintf(line + k, k < sizeof line ? sizeof line - k : 0, " %" PRIu64 "%s",
                              nm->id, nm->voter ? "" : " (learner)");
        k = k < sizeof line ? k : sizeof line - 1;
    }
    node_log(n, "configuration in force (index %" PRIu64 "%s):%s", raft_members_index(n->raft),
             raft_members_index(n->raft) <= raft_commit_index(n->raft) ? ", committed" : "", line);
}

static bool peer_listed(const struct node_member *peers, int k, raft_id id)
{
    for (int i = 0; i < k; i++) {
        if (peers[i].id == id) {
            return true;
        }
    }
    return false;
}

static void peer_add(struct node *n, struct node_member *peers, int *k, const struct node_member *m)
{
    if (m->id != n->c->id && m->port != 0 && !peer_listed(peers, *k, m->id) &&
        *k < RAFT_SERVERS_MAX) {
        peers[(*k)++] = *m;
    }
}

/* The leader tells the members it removed, once that is committed: a removed follower
 * never gets the entry that removes it (the leader replicates to the new configuration
 * only), and would otherwise keep knocking at the others' doors. */
static void tell_gone(struct node *n)
{
    struct membership *mb = &n->mb;
    uint64_t now = node_now(n);
    for (unsigned i = 0; i < mb->gone_n && raft_role_of(n->raft) == RAFT_LEADER; i++) {
        if (mb->gone_told[i] || now >= mb->gone_until_ms[i] ||
            mb->gone_index[i] > raft_commit_index(n->raft) ||
            raft_members_find(raft_members_of(n->raft), mb->gone[i].id) != NULL) {
            continue;
        }
        static const uint8_t zeros[node_frame_headroom];
        struct buf b;
        buf_init(&b);
        int rv = buf_append(&b, zeros, sizeof zeros);
        rv = rv ? rv : buf_put_u64(&b, mb->gone_index[i]);
        lr_assert(rv == 0);
        mb->gone_told[i] =
            n->io->send_frame(n->io->arg, mb->gone[i].id, TRANSPORT_FRAME_REMOVED, &b) == 0;
    }
}

const char members_busy_reply[] = "-TRYAGAIN this leader is removing itself; retry\r\n";

bool members_blocks_writes(struct node *n)
{
    return raft_role_of(n->raft) == RAFT_LEADER && !raft_is_voter(n->raft, n->c->id);
}

void members_frame(struct node *n, raft_id from, const void *body, size_t len)
{
    struct cursor c = cursor_make(body, len);
    raft_index index;
    if (!cursor_get_u64(&c, &index) || n->mb.removed_ms != 0) {
        return;
    }
    node_log(n,
             "node %" PRIu64 " (the leader%s) removed this node from the cluster at index %" PRIu64,
             from, from == raft_leader_of(n->raft) ? "" : " of another term", index);
    n->mb.removed_ms = node_now(n);
    members_update_peers(n);
}

/* The leader this node follows, with its address from the address book. */
static bool leader_member(struct node *n, struct node_member *out)
{
    raft_id id = raft_leader_of(n->raft);
    const struct member_addr *a = id != 0 ? members_book_find(&n->mb, id) : NULL;
    char msg[node_errmsg_bytes];
    *out = (struct node_member){.id = id};
    return a != NULL && config_resolve_addr(a->raft, out->host, sizeof out->host, &out->port, msg,
                                            sizeof msg) == 0;
}

/* The peers: the members in force, the leader this node follows (a removed leader still
 * answers the writes its followers forwarded; an older configuration that a replaying
 * node meets may not name it), and the members removed within the last
 * node_gone_ms (whose last frames are still on their way). A node removed from the
 * cluster keeps them for that long too, then none. */
void members_update_peers(struct node *n)
{
    struct membership *mb = &n->mb;
    if (n->io->set_peers == NULL || !mb->shown_valid) {
        return;
    }
    tell_gone(n);
    struct node_member peers[RAFT_SERVERS_MAX];
    int k = 0;
    uint64_t now = node_now(n);
    bool drop = mb->removed_ms != 0 && now >= mb->removed_ms + node_gone_ms &&
                raft_role_of(n->raft) != RAFT_LEADER;
    for (int i = 0; i < n->n_members && !drop; i++) {
        peer_add(n, peers, &k, &n->members[i]);
    }
    for (unsigned i = 0; i < mb->gone_n && !drop; i++) {
        if (now < mb->gone_until_ms[i] || mb->gone[i].id == raft_leader_of(n->raft)) {
            peer_add(n, peers, &k, &mb->gone[i]);
        }
    }
    /* A node replaying the log (one that joined) meets older configurations than the
     * one it joined, which may leave out the leader it follows: that leader stays. */
    struct node_member leader;
    if (!drop && leader_member(n, &leader)) {
        peer_add(n, peers, &k, &leader);
    }
    bool same = k == mb->peers_n;
    for (int i = 0; i < k && same; i++) {
        same = peer_listed(mb->peers, mb->peers_n, peers[i].id);
    }
    if (same) {
        return;
    }
    if (drop) {
        node_log(n, "this node is no longer a member of the cluster: it drops its peers");
    }
    memcpy(mb->peers, peers, (size_t)k * sizeof peers[0]);
    mb->peers_n = k;
    n->io->set_peers(n->io->arg, peers, k);
}

/* The members of the configuration shown until now that the new one m leaves out. */
static void note_gone(struct node *n, const struct raft_members *m)
{
    struct membership *mb = &n->mb;
    uint64_t until = node_now(n) + node_gone_ms;
    for (int i = 0; i < n->n_members; i++) {
        if (raft_members_find(m, n->members[i].id) != NULL) {
            continue;
        }
        unsigned j = 0;
        while (j < mb->gone_n && mb->gone[j].id != n->members[i].id) {
            j++;
        }
        if (j == mb->gone_n && mb->gone_n == RAFT_SERVERS_MAX) {
            j = 0; /* full: the oldest slot goes */
        } else if (j == mb->gone_n) {
            mb->gone_n++;
        }
        mb->gone[j] = n->members[i];
        mb->gone_until_ms[j] = until;
        mb->gone_index[j] = raft_members_index(n->raft);
        mb->gone_told[j] = false;
    }
}

/* The change a client waits for: committed (+OK), or lost with the leadership. */
void members_answer_waiter(struct node *n)
{
    struct membership *mb = &n->mb;
    if (!mb->waiting) {
        return;
    }
    const char *text = NULL;
    if (raft_commit_index(n->raft) >= mb->wait_index &&
        raft_term_at(n->raft, mb->wait_index) == mb->wait_term) {
        text = "+OK\r\n";
        mb->changes++;
    } else if (raft_role_of(n->raft) != RAFT_LEADER ||
               raft_term_at(n->raft, mb->wait_index) != mb->wait_term) {
        text = node_unknown_reply;
    } else if (node_now(n) >= mb->wait_deadline_ms) {
        text = node_timeout_reply;
    }
    if (text != NULL) {
        mb->waiting = false;
        origin_reply(n, &mb->wait_o, text, strlen(text));
    }
}

void members_follow(struct node *n)
{
    struct membership *mb = &n->mb;
    if (n->raft == NULL) {
        return;
    }
    members_answer_waiter(n);
    const struct raft_members *m = raft_members_of(n->raft);
    raft_index index = raft_members_index(n->raft);
    bool in = raft_members_find(m, n->c->id) != NULL;
    if (m->n > 0 && !(mb->shown_valid && mb->shown_index == index && same_members(&mb->shown, m))) {
        if (mb->shown_valid) {
            note_gone(n, m);
        }
        mb->shown_valid = true;
        mb->shown_index = index;
        mb->shown = *m;
        show(n, m);
        mb->removed_ms = mb->was_member && !in ? node_now(n) : 0;
        mb->was_member = mb->was_member || in;
    }
    members_update_peers(n);
}

void members_start(struct node *n, const struct raft_server *servers, unsigned n_servers)
{
    for (int i = 0; i < n->n_members; i++) {
        const struct node_member *nm = &n->members[i];
        char addr[node_addr_text_bytes];
        snprintf(addr, sizeof addr, strchr(nm->host, ':') ? "[%s]:%d" : "%s:%d", nm->host,
                 nm->port);
        if (members_book_find(&n->mb, nm->id) == NULL) {
            book_put(n, nm->id, addr, "");
        }
    }
    struct membership *mb = &n->mb;
    struct member_addr *self = members_book_find(mb, n->c->id);
    if (self != NULL && self->client[0] == '\0') {
        snprintf(self->client, sizeof self->client, "%s", n->client_addr);
    }
    struct raft_members m = {.n = 0};
    for (unsigned i = 0; i < n_servers; i++) {
        m.servers[m.n++] = servers[i];
    }
    if (mb->applied.len == 0 && m.n > 0) {
        members_record_make(n, &m, NULL,
                            &mb->applied); /* as of the snapshot (or the first start) */
    }
    mb->was_member = raft_members_find(&m, n->c->id) != NULL;
    mb->shown_valid = false;
    if (raft_members_of(n->raft)->n > 0) {
        members_follow(n);
    }
}

void members_stop(struct node *n)
{
    if (n->mb.waiting) {
        n->mb.waiting = false;
        origin_reply(n, &n->mb.wait_o, node_down_reply, strlen(node_down_reply));
    }
    buf_free(&n->mb.applied);
}
