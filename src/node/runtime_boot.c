/* Loading the durable state and booting the node (see runtime.h). */
#include "node/runtime.h"
#include "util/log.h"

/* The first start records the configuration: DIR/cluster (a joiner's is written already)
 * and the store's (empty for a joiner, which learns it from the leader). */
static int record_config(struct runtime *rt,
                         const char *text,
                         bool joining,
                         struct raft_server *servers,
                         unsigned *n_servers)
{
    const struct node_config *c = rt->c;
    struct node *n = rt->n;
    for (int i = 0; i < n->n_members && !joining; i++) {
        servers[(*n_servers)++] = (struct raft_server){n->members[i].id, true};
    }
    int rv = joining ? 0 : config_write_file(c->data_dir, text);
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

/* The configuration: --cluster on first start (or what --join learns), the stored one
 * afterwards; the cluster id (runtime_join.c). */
static int load_config(struct runtime *rt,
                       const struct store_state *st,
                       struct raft_server *servers,
                       unsigned *n_servers)
{
    const struct node_config *c = rt->c;
    struct node *n = rt->n;
    char msg[node_errmsg_bytes];
    bool joining = !st->has_config && c->join != NULL;
    if (joining && runtime_join(rt) != 0) {
        return 1;
    }
    char *stored = config_read_file(c->data_dir);
    bool use_stored = (st->has_config || joining) && stored != NULL && stored[0] != '\0';
    const char *text = use_stored ? stored : c->cluster;
    int rv = 0;
    if (text == NULL) {
        lr_log("%s holds no configuration: give --cluster (or --join) on first start", c->data_dir);
        rv = 1;
    } else if ((n->n_members = node_parse_cluster(text, n->members, msg, sizeof msg)) < 0) {
        /* The hosts are resolved here, once per start (config.c). */
        lr_log("cannot start: the cluster configuration '%s': %s", text, msg);
        rv = 1;
    }
    if (rv == 0 && st->has_config && c->cluster != NULL && strcmp(text, c->cluster) != 0) {
        node_log(n, "the stored configuration wins over --cluster: %s", text);
    }
    rv = rv != 0 ? rv : runtime_cluster_id(rt, text);
    *n_servers = 0;
    if (rv == 0 && st->has_config) {
        memcpy(servers, st->servers, st->n_servers * sizeof *servers);
        *n_servers = st->n_servers;
    } else if (rv == 0) {
        rv = record_config(rt, text, joining, servers, n_servers);
    }
    free(stored);
    return rv;
}

/* The configuration as of the snapshot, from its file (a version 3 snapshot of this
 * cluster), instead of the store's; its addresses go to the address book. */
static void snapshot_config(struct runtime *rt,
                            const char *snap_path,
                            struct raft_server *servers,
                            unsigned *n_servers)
{
    struct snapfile_info info;
    struct raft_members m;
    const void *payload;
    size_t len;
    if (snapfile_inspect(snap_path, &info) != 0 || !info.has_members ||
        !members_record_take(rt->n, info.members, info.members_len, &m, &payload, &len)) {
        return;
    }
    memcpy(servers, m.servers, m.n * sizeof *servers);
    *n_servers = m.n;
    lr_assert(buf_append(&rt->n->mb.applied, payload, len) == 0);
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

/* A store made fresh by runtime_recover records the term and vote the damaged one had. */
static int keep_hard_state(struct runtime *rt,
                           struct store_state *st,
                           const struct runtime_recovery *rec)
{
    struct store_write w;
    memset(&w, 0, sizeof w);
    w.hard_state = true;
    w.term = rec->term;
    w.vote = rec->vote;
    int rv = durability_submit_plain(rt->n, &w);
    if (rv != 0) {
        FAIL("cannot store the term and vote: %s", store_strerror(rv));
    }
    st->term = rec->term;
    st->vote = rec->vote;
    return 0;
}

/* The store, the script's identity, the configuration, the newest valid snapshot and the
 * log after it. */
int runtime_load_and_boot(struct runtime *rt)
{
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    remove_temporaries(rt);
    struct runtime_recovery rec;
    if (runtime_recover(rt, &rec) != 0) {
        return 1;
    }
    struct node_boot_state b = {.recover_term = rec.recover_term};
    char snap_path[node_snap_path_bytes_max];
    bool has_snap = snapfile_latest(c->data_dir, &b.snapshot_index, &b.snapshot_term, snap_path,
                                    sizeof snap_path) == 0;
    /* Both before anything is recorded: a refused directory keeps what it had (a fresh
     * one gets an empty store, which records nothing). */
    struct store_state st;
    if (open_store(rt, &st) != 0 ||
        runtime_check_store_identity(rt, &st, has_snap ? snap_path : NULL) != 0 ||
        (has_snap && runtime_check_snapshot_identity(rt, snap_path) != 0)) {
        return 1;
    }
    if (rec.recover_term != 0 && st.term < rec.term && keep_hard_state(rt, &st, &rec) != 0) {
        return 1;
    }
    b.term = st.term;
    b.vote = st.vote;
    struct raft_server servers[RAFT_SERVERS_MAX];
    unsigned n_servers;
    if (runtime_record_identity(rt, &st) != 0 || load_config(rt, &st, servers, &n_servers) != 0) {
        return 1;
    }
    /* What the directory was made with (a fresh one: --script, just recorded). */
    script_check_set_base(rt->n, st.has_script ? &st.script : &rt->script);
    bool member = c->join != NULL || st.has_config;
    for (int i = 0; i < rt->n->n_members; i++) {
        member = member || rt->n->members[i].id == c->id;
    }
    if (!member) {
        FAIL("node %" PRIu64 " is not in the cluster configuration", c->id);
    }
    if (has_snap && st.has_config) {
        snapshot_config(rt, snap_path, servers, &n_servers);
    }
    b.stored_snapshot_index = st.snapshot_index;
    b.servers = servers;
    b.n_servers = n_servers;
    b.random_seed = config_hash_text(c->data_dir) ^ (uint64_t)rt->io.wall_ms(rt) ^ c->id;
    if (has_snap) {
        /* Checked above: no identity check again. An upgraded script's snapshot brings
         * that script, which replaces the one --script named. */
        struct fsm *retired;
        if (fsm_worker_restore_file(&rt->fsm, snap_path, NULL, &rt->script, &retired, msg,
                                    sizeof msg) != 0) {
            FAIL("%s", msg);
        }
        fsm_close(retired);
        if (rt->script.since > 0) {
            load_adopt(rt->n, rt->fsm, rt->script.since, true);
        }
        b.snapshot_path = snap_path;
    }
    if (st.first_index <= st.last_index) {
        int rv = store_read(rt->store, st.first_index, st.last_index, load_entry_cb, rt->n);
        if (rv != 0) {
            FAIL("cannot read the log: %s%s", store_strerror(rv),
                 rv == STORE_ECORRUPT
                     ? " (the data directory is damaged: remove this node from the cluster "
                       "with RAFT.REMOVE, move the directory away, and add it back empty "
                       "with --join)"
                     : "");
        }
    }
    if (node_boot(rt->n, &b, msg, sizeof msg) != 0) {
        FAIL(
            "%s: this data directory cannot be started from; if a damaged file is named "
            "above, replace the node (RAFT.REMOVE on the others, move the directory away, "
            "start it empty with --join, RAFT.ADD it)",
            msg);
    }
    return 0;
}
