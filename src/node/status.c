/*
 * /status and /health (status.h). The JSON object:
 *
 *   node_id, role (as RAFT.INFO's), term, leader_id (0: none), leader_addr (its client
 *   address, "" when none), commit_index, applied_index, last_log_index, snapshot_index,
 *   apply_lag (committed entries not yet applied), clients (RESP connections),
 *   client_addr, http_addr, script, healthy and health (the reason when not healthy),
 *   peers: [{id, raft_addr, client_addr (null until the peer said), connected, and on the
 *   leader match, lag (entries of the leader's log it lacks) and state}]
 *
 * Peers are the members of the configuration; their HTTP addresses are not known here
 * (the status page is told them, see status_page.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node/info.h"
#include "node/internal.h"
#include "node/status.h"

bool status_healthy(struct node *n, char *reason, size_t reason_size)
{
    raft_index commit = raft_commit_index(n->raft);
    if (n->dur.store_failed) {
        snprintf(reason, reason_size, "the store failed: the node must be restarted");
    } else if (n->stopping) {
        snprintf(reason, reason_size, "the node is shutting down");
    } else if (raft_leader_of(n->raft) == 0) {
        snprintf(reason, reason_size, "no leader known (role %s, term %" PRIu64 ")",
                 info_role_text(n), raft_current_term(n->raft));
    } else if (commit > n->applied && commit - n->applied > n->c->health_lag_max) {
        snprintf(reason, reason_size,
                 "applied index %" PRIu64 " is %" PRIu64 " entries behind commit index %" PRIu64
                 " (the bound is %" PRIu64 ")",
                 n->applied, commit - n->applied, commit, n->c->health_lag_max);
    } else {
        snprintf(reason, reason_size, "ok");
        return true;
    }
    return false;
}

/* A JSON string (text is UTF-8 or ASCII; control characters escaped). */
static void json_string(struct buf *out, const char *text)
{
    info_printf(out, "\"");
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            info_printf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            info_printf(out, "\\u%04x", *p);
        } else {
            info_printf(out, "%c", *p);
        }
    }
    info_printf(out, "\"");
}

static void json_field_u64(struct buf *out, const char *name, uint64_t v)
{
    info_printf(out, "\"%s\":%" PRIu64 ",", name, v);
}

static void json_field_string(struct buf *out, const char *name, const char *v)
{
    info_printf(out, "\"%s\":", name);
    json_string(out, v);
    info_printf(out, ",");
}

static void json_peer(struct node *n, const struct node_member *m, struct buf *out)
{
    char raft_addr[node_host_bytes_max + 16];
    snprintf(raft_addr, sizeof raft_addr, strchr(m->host, ':') ? "[%s]:%d" : "%s:%d", m->host,
             m->port);
    const char *client_addr = n->io->peer_client_addr(n->io->arg, m->id);
    info_printf(out, "{\"id\":%" PRIu64 ",", m->id);
    json_field_string(out, "raft_addr", raft_addr);
    if (client_addr != NULL) {
        json_field_string(out, "client_addr", client_addr);
    } else {
        info_printf(out, "\"client_addr\":null,");
    }
    struct raft_peer_info pi;
    if (raft_role_of(n->raft) == RAFT_LEADER && raft_peer_info(n->raft, m->id, &pi)) {
        raft_index last = raft_last_index(n->raft);
        json_field_u64(out, "match", pi.match);
        json_field_u64(out, "lag", last > pi.match ? last - pi.match : 0);
        json_field_string(out, "state", pi.state != NULL ? pi.state : "unknown");
    }
    info_printf(out, "\"connected\":%s}",
                n->io->peer_connected(n->io->arg, m->id) ? "true" : "false");
}

void status_json(struct node *n, struct buf *out)
{
    raft_id leader = raft_leader_of(n->raft);
    const char *laddr = leader == n->c->id ? n->client_addr
                        : leader != 0      ? n->io->peer_client_addr(n->io->arg, leader)
                                           : NULL;
    raft_index commit = raft_commit_index(n->raft);
    char http_addr[node_host_bytes_max + 16] = "";
    if (n->c->http_port != 0) {
        snprintf(http_addr, sizeof http_addr, strchr(n->c->http_host, ':') ? "[%s]:%d" : "%s:%d",
                 n->c->http_host, n->c->http_port);
    }
    char reason[256];
    bool healthy = status_healthy(n, reason, sizeof reason);
    info_printf(out, "{");
    json_field_u64(out, "node_id", n->c->id);
    json_field_string(out, "role", info_role_text(n));
    json_field_u64(out, "term", raft_current_term(n->raft));
    json_field_u64(out, "leader_id", leader);
    json_field_string(out, "leader_addr", laddr != NULL ? laddr : "");
    json_field_u64(out, "commit_index", commit);
    json_field_u64(out, "applied_index", n->applied);
    json_field_u64(out, "last_log_index", raft_last_index(n->raft));
    json_field_u64(out, "snapshot_index", n->snap.index);
    json_field_u64(out, "apply_lag", commit > n->applied ? commit - n->applied : 0);
    json_field_u64(out, "clients", n->io->clients(n->io->arg));
    json_field_string(out, "client_addr", n->client_addr);
    json_field_string(out, "http_addr", http_addr);
    json_field_string(out, "script", n->script_name);
    info_printf(out, "\"healthy\":%s,", healthy ? "true" : "false");
    json_field_string(out, "health", reason);
    info_printf(out, "\"peers\":[");
    bool first = true;
    for (int i = 0; i < n->n_members; i++) {
        if (n->members[i].id != n->c->id) {
            if (!first) {
                info_printf(out, ",");
            }
            json_peer(n, &n->members[i], out);
            first = false;
        }
    }
    info_printf(out, "]}\n");
}
