/*
 * The node's counters and histograms, and /metrics (metrics.h): the Prometheus text
 * exposition format, one "# HELP" and one "# TYPE" line per family, then its samples.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "node/info.h"
#include "node/internal.h"
#include "node/metrics.h"
#include "util/assert.h"

double metrics_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void metrics_init(struct node_metrics *m)
{
    histogram_init(&m->commit_seconds, histogram_latency_bounds, histogram_latency_bounds_n);
    histogram_init(&m->snapshot_seconds, histogram_duration_bounds, histogram_duration_bounds_n);
    histogram_init(&m->install_seconds, histogram_duration_bounds, histogram_duration_bounds_n);
    histogram_init(&m->snapshot_bytes, histogram_size_bounds, histogram_size_bounds_n);
}

void metrics_proposed(struct node *n, raft_index last)
{
    struct node_metrics *m = &n->metrics;
    if (m->waits_n == metrics_commit_waits_max) {
        return;
    }
    unsigned at = (m->waits_off + m->waits_n) % metrics_commit_waits_max;
    m->waits[at] = (struct commit_wait){last, metrics_now_s()};
    m->waits_n++;
}

void metrics_committed(struct node *n, raft_index commit)
{
    struct node_metrics *m = &n->metrics;
    if (m->waits_n == 0) {
        return;
    }
    /* A deposed leader's batches may never commit as proposed: it times none of them. */
    bool leading = raft_role_of(n->raft) == RAFT_LEADER;
    double now = metrics_now_s();
    while (m->waits_n > 0 && (!leading || m->waits[m->waits_off].last <= commit)) {
        if (leading) {
            histogram_observe(&m->commit_seconds, now - m->waits[m->waits_off].at);
        }
        m->waits_off = (m->waits_off + 1) % metrics_commit_waits_max;
        m->waits_n--;
    }
}

void metrics_snapshot_done(struct node *n, const char *path)
{
    struct node_metrics *m = &n->metrics;
    struct stat st;
    if (path == NULL) {
        m->snapshots_failed_total++;
        return;
    }
    histogram_observe(&m->snapshot_seconds, metrics_now_s() - m->snapshot_started);
    if (stat(path, &st) == 0) {
        histogram_observe(&m->snapshot_bytes, (double)st.st_size);
    }
}

/* ------------------------------------------------------------------------------------ */
/* Rendering. */

static void family(struct buf *out, const char *name, const char *type, const char *help)
{
    info_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one_u64(struct buf *out,
                    const char *name,
                    const char *type,
                    const char *help,
                    uint64_t value)
{
    family(out, name, type, help);
    info_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void one_histogram(struct buf *out,
                          const char *name,
                          const char *help,
                          const struct histogram *h)
{
    family(out, name, "histogram", help);
    uint64_t below = 0;
    for (unsigned i = 0; i < h->n_bounds; i++) {
        below += h->counts[i];
        info_printf(out, "%s_bucket{le=\"%.15g\"} %" PRIu64 "\n", name, h->bounds[i], below);
    }
    info_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    info_printf(out, "%s_sum %.9g\n", name, h->sum);
    info_printf(out, "%s_count %" PRIu64 "\n", name, h->count);
}

/* A label's value between its quotes: backslash, quote and newline escaped. */
static void put_label_value(struct buf *out, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"') {
            info_printf(out, "\\%c", *v);
        } else if (*v == '\n') {
            info_printf(out, "\\n");
        } else {
            info_printf(out, "%c", *v);
        }
    }
}

static void render_state(struct node *n, struct buf *out)
{
    static const char *const roles[] = {"leader",       "follower", "candidate",
                                        "precandidate", "learner",  "failed"};
    family(out, "luaraft_info", "gauge", "The node's id, version and script (value 1).");
    info_printf(out, "luaraft_info{node_id=\"%" PRIu64 "\",version=\"%s\",script=\"", n->c->id,
                LUARAFT_VERSION);
    put_label_value(out, n->script_name);
    info_printf(out, "\"} 1\n");
    family(out, "luaraft_role", "gauge", "1 for the node's current role, 0 for the others.");
    const char *role = info_role_text(n);
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        info_printf(out, "luaraft_role{role=\"%s\"} %d\n", roles[i], strcmp(role, roles[i]) == 0);
    }
    one_u64(out, "luaraft_term", "gauge", "The current term.", raft_current_term(n->raft));
    one_u64(out, "luaraft_leader_id", "gauge", "The leader this node knows (0: none).",
            raft_leader_of(n->raft));
    one_u64(out, "luaraft_commit_index", "gauge", "The highest log index known committed.",
            raft_commit_index(n->raft));
    one_u64(out, "luaraft_applied_index", "gauge", "The highest log index applied here.",
            n->applied);
    one_u64(out, "luaraft_last_log_index", "gauge", "The last index of this node's log.",
            raft_last_index(n->raft));
    one_u64(out, "luaraft_snapshot_index", "gauge", "The index of the newest snapshot file.",
            n->snap.index);
    one_u64(out, "luaraft_log_cache_bytes", "gauge", "Log payload bytes held in memory.",
            n->cache.bytes);
}

/* Replication progress is the leader's to know: the samples are there on the leader. */
static void render_peers(struct node *n, struct buf *out)
{
    bool leading = raft_role_of(n->raft) == RAFT_LEADER;
    raft_index last = raft_last_index(n->raft);
    const char *names[] = {"luaraft_peer_match_index", "luaraft_peer_lag_entries",
                           "luaraft_peer_connected"};
    const char *helps[] = {"On the leader: the highest index known replicated on each peer.",
                           "On the leader: entries of its log each peer does not hold yet.",
                           "1 while this node has a connection to or from the peer."};
    for (int k = 0; k < 3; k++) {
        family(out, names[k], "gauge", helps[k]);
        for (int i = 0; i < n->n_members; i++) {
            raft_id id = n->members[i].id;
            struct raft_peer_info pi;
            if (id == n->c->id) {
                continue;
            }
            bool known = leading && raft_peer_info(n->raft, id, &pi);
            uint64_t v = k == 2   ? n->io->peer_connected(n->io->arg, id)
                         : !known ? UINT64_MAX
                         : k == 0 ? pi.match
                                  : (last > pi.match ? last - pi.match : 0);
            if (v != UINT64_MAX) {
                info_printf(out, "%s{peer=\"%" PRIu64 "\"} %" PRIu64 "\n", names[k], id, v);
            }
        }
    }
}

static void render_counters(struct node *n, struct buf *out)
{
    const struct node_metrics *m = &n->metrics;
    one_u64(out, "luaraft_proposals_total", "counter", "Log entries this node proposed as leader.",
            m->proposals_total);
    one_u64(out, "luaraft_applied_entries_total", "counter", "Log entries applied here.",
            m->applied_total);
    one_u64(out, "luaraft_apply_errors_total", "counter",
            "Applied commands whose reply was an error (a Lua error, an exceeded budget, or "
            "the script's {err = ...}).",
            m->apply_errors_total);
    one_u64(out, "luaraft_reads_total", "counter", "Script reads served here.", m->reads_total);
    one_u64(out, "luaraft_read_errors_total", "counter",
            "Script reads served here whose reply was an error.", m->read_errors_total);
    one_u64(out, "luaraft_read_index_rounds_total", "counter",
            "ReadIndex rounds the reads served here took.", m->read_rounds_total);
    one_u64(out, "luaraft_leader_changes_total", "counter",
            "Times this node learned of a new leader (itself included).", m->leader_changes_total);
    one_u64(out, "luaraft_snapshots_failed_total", "counter", "Snapshots that failed here.",
            m->snapshots_failed_total);
    one_u64(out, "luaraft_client_connections", "gauge", "Client (RESP) connections open.",
            n->io->clients(n->io->arg));
    struct node_client_memory cm = {0};
    if (n->io->client_memory != NULL) {
        n->io->client_memory(n->io->arg, &cm);
    }
    one_u64(out, "luaraft_client_buffer_bytes", "gauge",
            "Bytes every client connection's buffers hold (commands being read, replies not "
            "yet sent).",
            cm.held_bytes);
    one_u64(out, "luaraft_clients_evicted_total", "counter",
            "Client connections closed because all clients' buffers passed --client-memory.",
            cm.evicted);
    one_u64(out, "luaraft_client_connections_total", "counter",
            "Client (RESP) connections accepted.", n->session_seq);
    one_u64(out, "luaraft_commands_total", "counter", "Client commands taken.",
            n->commands_processed);
}

void metrics_render(struct node *n, const struct metrics_world *w, struct buf *out)
{
    const struct node_metrics *m = &n->metrics;
    render_state(n, out);
    render_peers(n, out);
    render_counters(n, out);
    one_u64(out, "luaraft_http_connections", "gauge", "HTTP connections open.",
            w->http_connections);
    if (w->fsync_seconds != NULL) {
        one_histogram(out, "luaraft_fsync_seconds",
                      "Seconds each store transaction took to commit: its write and fsync.",
                      w->fsync_seconds);
    }
    if (w->loop_stall_seconds != NULL) {
        one_histogram(out, "luaraft_loop_stall_seconds",
                      "Seconds each tick of the loop thread ran late: time it spent elsewhere, "
                      "during which no heartbeat left.",
                      w->loop_stall_seconds);
    }
    one_histogram(out, "luaraft_commit_latency_seconds",
                  "On the leader: seconds from proposing a batch of entries to knowing it "
                  "committed.",
                  &m->commit_seconds);
    one_histogram(out, "luaraft_snapshot_duration_seconds",
                  "Seconds each snapshot taken here took, from its start to its complete file.",
                  &m->snapshot_seconds);
    one_histogram(out, "luaraft_snapshot_size_bytes", "The size of each snapshot file taken here.",
                  &m->snapshot_bytes);
    one_histogram(out, "luaraft_snapshot_install_seconds",
                  "Seconds each snapshot received from the leader took to install and restore.",
                  &m->install_seconds);
}
