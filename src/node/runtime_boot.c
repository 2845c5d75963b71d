/* Loading the durable state and booting the node (see runtime.h). */
#include "node/runtime.h"
#include "util/log.h"

/* The configuration: --cluster on first start, the stored one afterwards. On first start
 * it is written to DIR/cluster and to the store. */
static int load_config(struct runtime *rt,
                       const struct store_state *st,
                       struct raft_server *servers,
                       unsigned *n_servers,
                       uint64_t *cluster_hash)
{
    const struct node_config *c = rt->c;
    struct node *n = rt->n;
    char msg[node_errmsg_bytes];
    char *stored = config_read_file(c->data_dir);
    const char *text = st->has_config && stored != NULL && stored[0] != '\0' ? stored : c->cluster;
    int rv = 0;
    if (text == NULL) {
        lr_log("%s holds no configuration: give --cluster on first start", c->data_dir);
        rv = 1;
    } else if ((n->n_members = node_parse_cluster(text, n->members, msg, sizeof msg)) < 0) {
        /* The hosts are resolved here, once per start (config.c). */
        lr_log("cannot start: the cluster configuration '%s': %s", text, msg);
        rv = 1;
    }
    if (rv != 0) {
        free(stored);
        return rv;
    }
    if (st->has_config && c->cluster != NULL && strcmp(text, c->cluster) != 0) {
        node_log(n, "the stored configuration wins over --cluster: %s", text);
    }
    *cluster_hash = config_hash_text(text);
    *n_servers = 0;
    if (st->has_config) {
        memcpy(servers, st->servers, st->n_servers * sizeof *servers);
        *n_servers = st->n_servers;
        free(stored);
        return 0;
    }
    for (int i = 0; i < n->n_members; i++) {
        servers[(*n_servers)++] = (struct raft_server){n->members[i].id, true};
    }
    rv = config_write_file(c->data_dir, text);
    free(stored);
    if (rv != 0) {
        FAIL("cannot write %s/cluster: %s", c->data_dir, strerror(-rv));
    }
    struct store_write w;
    memset(&w, 0, sizeof w);
    w.config = true;
    w.servers = servers;
    w.n_servers = *n_servers;
    /* Requests finish in order, so every later persist implies this one. */
    rv = durability_submit_plain(n, &w);
    if (rv != 0) {
        FAIL("cannot store the configuration: %s", store_strerror(rv));
    }
    return 0;
}

/* Start-up. */

static int load_entry_cb(void *arg, raft_index index, const struct raft_entry *e)
{
    node_boot_append(arg, index, e);
    return 0;
}

/*
 * Temporaries a crash left (a snapshot being written or received) are garbage: remove
 * them before anything writes a new one (snapfile.h, snapfile_cleanup). Nothing else
 * runs in the directory yet; a failure to remove one is logged, not fatal.
 */
static void remove_temporaries(struct runtime *rt)
{
    int rv = snapfile_cleanup(rt->c->data_dir);
    if (rv > 0) {
        node_log(rt->n, "removed %d temporary snapshot file(s) a crash left in %s", rv,
                 rt->c->data_dir);
    } else if (rv < 0) {
        node_log(rt->n, "cannot remove every temporary snapshot file in %s: %s", rt->c->data_dir,
                 strerror(errno));
    }
}

/* Loading. */

static int open_store(struct runtime *rt, struct store_state *st)
{
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    struct store_options so = {.dir = c->data_dir, .map_bytes = c->map_bytes};
    if (store_open(&rt->store, &rt->loop, &so, msg, sizeof msg) != 0) {
        FAIL("cannot open the store in %s: %s", c->data_dir, msg);
    }
    if (store_load(rt->store, st, msg, sizeof msg) != 0) {
        FAIL("cannot load the store in %s: %s", c->data_dir, msg);
    }
    return 0;
}

/* The store, the script's identity, the configuration, the newest valid snapshot and the
 * log after it. */
int runtime_load_and_boot(struct runtime *rt, uint64_t *cluster_hash)
{
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    remove_temporaries(rt);
    struct node_boot_state b = {0};
    char snap_path[node_snap_path_bytes_max];
    bool has_snap = snapfile_latest(c->data_dir, &b.snapshot_index, &b.snapshot_term, snap_path,
                                    sizeof snap_path) == 0;
    /* Both before anything is recorded: a refused directory keeps what it had (a fresh
     * one gets an empty store, which records nothing). */
    struct store_state st;
    if (open_store(rt, &st) != 0 || runtime_check_store_identity(rt, &st) != 0 ||
        (has_snap && runtime_check_snapshot_identity(rt, snap_path) != 0)) {
        return 1;
    }
    b.term = st.term;
    b.vote = st.vote;
    struct raft_server servers[RAFT_SERVERS_MAX];
    unsigned n_servers;
    if (runtime_record_identity(rt, &st) != 0 ||
        load_config(rt, &st, servers, &n_servers, cluster_hash) != 0) {
        return 1;
    }
    bool member = false;
    for (int i = 0; i < rt->n->n_members; i++) {
        member = member || rt->n->members[i].id == c->id;
    }
    if (!member) {
        FAIL("node %" PRIu64 " is not in the cluster configuration", c->id);
    }
    b.stored_snapshot_index = st.snapshot_index;
    b.servers = servers;
    b.n_servers = n_servers;
    b.random_seed = config_hash_text(c->data_dir) ^ (uint64_t)rt->io.wall_ms(rt) ^ c->id;
    if (has_snap) {
        /* Checked above: no identity check again. */
        if (fsm_worker_restore_file(rt->fsm, snap_path, NULL, msg, sizeof msg) != 0) {
            FAIL("%s", msg);
        }
        b.snapshot_path = snap_path;
    }
    if (st.first_index <= st.last_index) {
        int rv = store_read(rt->store, st.first_index, st.last_index, load_entry_cb, rt->n);
        if (rv != 0) {
            FAIL("cannot read the log: %s", store_strerror(rv));
        }
    }
    if (node_boot(rt->n, &b, msg, sizeof msg) != 0) {
        FAIL("%s", msg);
    }
    return 0;
}
