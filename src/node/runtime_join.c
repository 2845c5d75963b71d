/*
 * The cluster's identity and joining (see runtime.h).
 *
 * The cluster id, which peers check in their handshakes, is kept in DIR/cluster-id: made on
 * the first start from the hash of --cluster (so that nodes started with the same text
 * agree, and data directories made before the file existed keep theirs), and given to a
 * node that joins. Membership changes never change it.
 *
 * `luaraft node --join ADDRESS` on a data directory with no configuration asks ADDRESS (a
 * member's client port) with RAFT.MEMBERS for the cluster id and the configuration in
 * force, writes them to DIR/cluster-id and DIR/cluster, and starts with an empty
 * configuration: it knows its peers and waits to be added (RAFT.ADD), then learns the
 * log or a snapshot from the leader. Start-up runs before the loop, so this is plain
 * blocking IO with timeouts.
 */
#include "client/resp_call.h"
#include "node/runtime.h"

enum {
    join_attempts_max = 60, /* one every join_retry_ms: a minute */
    join_retry_ms = 1000,
    join_io_timeout_s = 2,
    join_reply_bytes_max = 8192,
};

/* RAFT.MEMBERS's bulk reply into out. Returns 0, or -1 with why in out. */
static int ask(const char *host, int port, char *out, size_t size)
{
    static const char *const argv[] = {"RAFT.MEMBERS"};
    return resp_call(host, port, 1, argv, join_io_timeout_s, out, size) == 0 ? 0 : -1;
}

/* The value of the line "name:value" in text, into out. */
static bool line_value(const char *text, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == ':') {
            size_t len = strcspn(p + nlen + 1, "\r\n");
            if (len == 0 || len >= size) {
                return false;
            }
            memcpy(out, p + nlen + 1, len);
            out[len] = '\0';
            return true;
        }
    }
    return false;
}

int runtime_join(struct runtime *rt)
{
    const struct node_config *c = rt->c;
    char host[node_host_bytes_max], msg[node_errmsg_bytes];
    int port;
    if (config_resolve_addr(c->join, host, sizeof host, &port, msg, sizeof msg) != 0) {
        FAIL("--join %s: %s", c->join, msg);
    }
    char reply[join_reply_bytes_max], cid[node_cluster_id_bytes], text[join_reply_bytes_max];
    for (int attempt = 1;; attempt++) {
        snprintf(msg, sizeof msg, "%s", "its answer is not RAFT.MEMBERS's");
        if (ask(host, port, reply, sizeof reply) != 0) {
            snprintf(msg, sizeof msg, "%.200s", reply);
        } else if (line_value(reply, "cluster_id", cid, sizeof cid) &&
                   line_value(reply, "cluster", text, sizeof text) &&
                   config_check_cluster(text, msg, sizeof msg) > 0) {
            break;
        }
        if (attempt == join_attempts_max) {
            FAIL("cannot join through %s: %s", c->join, msg);
        }
        node_log(rt->n, "joining through %s: %s; retrying", c->join, msg);
        struct timespec ts = {join_retry_ms / 1000, (join_retry_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    int rv = config_write_named(c->data_dir, "cluster-id", cid);
    rv = rv != 0 ? rv : config_write_file(c->data_dir, text);
    if (rv != 0) {
        FAIL("cannot write the configuration in %s: %s", c->data_dir, strerror(-rv));
    }
    node_log(rt->n, "joining cluster %s through %s: its members are %s; waiting to be added", cid,
             c->join, text);
    return 0;
}

int runtime_cluster_id(struct runtime *rt, const char *text)
{
    const char *dir = rt->c->data_dir;
    char *stored = config_read_named(dir, "cluster-id");
    struct membership *mb = &rt->n->mb;
    if (stored != NULL && stored[0] != '\0' && strlen(stored) < sizeof mb->cluster_id) {
        snprintf(mb->cluster_id, sizeof mb->cluster_id, "%s", stored);
        free(stored);
        return 0;
    }
    free(stored);
    snprintf(mb->cluster_id, sizeof mb->cluster_id, "%016" PRIx64, config_hash_text(text));
    int rv = config_write_named(dir, "cluster-id", mb->cluster_id);
    if (rv != 0) {
        FAIL("cannot write %s/cluster-id: %s", dir, strerror(-rv));
    }
    return 0;
}
