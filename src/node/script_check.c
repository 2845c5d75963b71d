/*
 * Every member of a cluster must run the same script: a node that applies the log with
 * another one diverges from the others without anyone noticing, and one that votes or
 * leads spreads its state. The script a data directory was made with (the store's
 * "script" record, runtime_identity.c) is the cluster's first script on every member
 * that was started, restored or joined as the README says: upgrades (RAFT.LOAD, load.c)
 * go through the log and leave it alone. So each node tells each peer, once per
 * connection and again every script_check_resend_ms, the identity of that script
 * (TRANSPORT_FRAME_SCRIPT, body: u8 1 and script_identity_encode's bytes, or u8 0 for a
 * directory that records none); a node that hears another identity from a peer logs it
 * loudly and drops that peer's messages: its votes, its entries, its snapshots, its
 * forwarded writes. It cannot then vote here, lead here or append here, which is what
 * keeps a misconfigured node from moving the cluster; the others go on without it.
 *
 * Until a peer's frame has arrived its raft messages are dropped too (frames travel on
 * another lane than messages, so a message may come first): a node that drops one asks
 * for the frame (bit 1 of the first byte), at most every script_check_ask_ms, and the
 * peer answers at once, so a new connection loses a few milliseconds of messages, which
 * Raft sends again, rather than letting one entry of another script's cluster in.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node/internal.h"
#include "peer/transport.h"
#include "util/assert.h"

enum {
    script_check_resend_ms = 10 * 1000,
    script_check_log_ms = 10 * 1000,
    script_check_ask_ms = 20,
    script_has_base = 1, /* bits of the frame's first byte */
    script_asks = 2,
    script_frame_bytes_max = 1 + SCRIPT_IDENTITY_BYTES_MAX,
};

static struct script_peer *peer_of(struct node *n, raft_id id)
{
    struct script_checks *sc = &n->sc;
    for (int i = 0; i < sc->n; i++) {
        if (sc->peers[i].id == id) {
            return &sc->peers[i];
        }
    }
    if (sc->n == RAFT_SERVERS_MAX) {
        memmove(sc->peers, sc->peers + 1, (RAFT_SERVERS_MAX - 1) * sizeof sc->peers[0]);
        sc->n--; /* forget the oldest: members come and go */
    }
    struct script_peer *p = &sc->peers[sc->n++];
    memset(p, 0, sizeof *p);
    p->id = id;
    return p;
}

void script_check_set_base(struct node *n, const struct script_identity *base)
{
    n->sc.has_base = base != NULL;
    if (base != NULL) {
        n->sc.base = *base;
        n->sc.base.since = 0;
    }
}

static void send_base(struct node *n, raft_id to, bool ask)
{
    static const unsigned char zeros[node_frame_headroom];
    unsigned char body[script_frame_bytes_max];
    size_t len = 1;
    body[0] = (unsigned char)((n->sc.has_base ? script_has_base : 0) | (ask ? script_asks : 0));
    if (n->sc.has_base) {
        len += script_identity_encode(&n->sc.base, body + 1);
    }
    struct buf b;
    buf_init(&b);
    int rv = buf_append(&b, zeros, sizeof zeros);
    rv = rv ? rv : buf_append(&b, body, len);
    lr_assert(rv == 0);
    n->io->send_frame(n->io->arg, to, TRANSPORT_FRAME_SCRIPT, &b);
}

void script_check_tick(struct node *n)
{
    uint64_t now = node_now(n);
    for (int i = 0; i < n->n_members; i++) {
        raft_id id = n->members[i].id;
        if (id == n->c->id) {
            continue;
        }
        struct script_peer *p = peer_of(n, id);
        bool up = n->io->peer_connected(n->io->arg, id);
        if (up && (!p->sent || now >= p->sent_ms + script_check_resend_ms)) {
            send_base(n, id, false);
            p->sent_ms = now;
        }
        p->sent = up; /* a new connection gets the frame again */
    }
}

void script_check_frame(struct node *n, raft_id from, const void *body, size_t len)
{
    const unsigned char *b = body;
    struct script_identity theirs;
    bool has = len >= 1 && (b[0] & script_has_base);
    if (len < 1 || b[0] > (script_has_base | script_asks) ||
        (has && script_identity_decode(b + 1, len - 1, &theirs) != 0)) {
        return; /* not a frame of ours */
    }
    struct script_peer *p = peer_of(n, from);
    if (b[0] & script_asks) {
        send_base(n, from, false);
    }
    p->known = true;
    bool foreign = has && n->sc.has_base && !script_identity_same(&theirs, &n->sc.base);
    uint64_t now = node_now(n);
    if (foreign && (!p->foreign || now >= p->logged_ms + script_check_log_ms)) {
        char mine[SCRIPT_HASH_HEX_BYTES], other[SCRIPT_HASH_HEX_BYTES];
        script_identity_hex(&n->sc.base, mine);
        script_identity_hex(&theirs, other);
        node_log(n,
                 "REFUSED node %" PRIu64
                 ": its data directory was made by script %s (content %.16s...), this "
                 "node's by %s (content %.16s...); every member must start from the "
                 "cluster's first script (README: Upgrading the script): its votes, entries "
                 "and snapshots are dropped here until it is restarted with that script on "
                 "a new data directory",
                 from, theirs.name, other, n->sc.base.name, mine);
        p->logged_ms = now;
    } else if (!foreign && p->foreign) {
        node_log(n, "node %" PRIu64 " now runs this cluster's script: its messages are taken",
                 from);
    }
    p->foreign = foreign;
}

bool script_check_foreign(struct node *n, raft_id id)
{
    for (int i = 0; i < n->sc.n; i++) {
        if (n->sc.peers[i].id == id) {
            return n->sc.peers[i].foreign;
        }
    }
    return false;
}

bool script_check_refuses(struct node *n, raft_id id)
{
    struct script_peer *p = peer_of(n, id);
    if (p->known) {
        return p->foreign;
    }
    uint64_t now = node_now(n);
    if (p->asked_ms == 0 || now >= p->asked_ms + script_check_ask_ms) {
        send_base(n, id, true); /* ours, and a request for theirs */
        p->asked_ms = now != 0 ? now : 1;
    }
    return true;
}
