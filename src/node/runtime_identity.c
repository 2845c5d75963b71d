/* The script's identity (see runtime.h): computed at start-up, recorded in the data
 * directory, checked against the store and every snapshot. */
#include "node/runtime.h"

/*
 * Whether a snapshot received from the leader holds the state of this node's script. All
 * nodes of a cluster run the same script, so another script's snapshot means a node was
 * started with the wrong one: restoring it would replace this state machine's state with
 * bytes its M.restore cannot read, or worse, can. Refused loudly; the node goes on, and
 * the leader keeps offering the snapshot until the misconfiguration is fixed.
 */
bool runtime_snapshot_ours(struct runtime *rt, const struct raft_message *m, const char *path)
{
    struct snapfile_info info;
    int rv = snapfile_inspect(path, &info);
    if (rv != 0) {
        node_log(rt->n, "refused the snapshot at index %" PRIu64 " from node %" PRIu64 ": %s",
                 m->snapshot.index, m->from, snapfile_strerror(rv));
        return false;
    }
    if (!info.has_script) {
        node_log(rt->n,
                 "the snapshot at index %" PRIu64 " from node %" PRIu64
                 " records no script (an older luaraft wrote it): installed unchecked",
                 m->snapshot.index, m->from);
        return true;
    }
    if (info.has_text || script_identity_same(&info.script, &rt->script)) {
        return true; /* an upgraded script's file brings its script (checked at restore) */
    }
    uint64_t now = uv_now(&rt->loop);
    if (rt->refused_logged_ms != 0 && now - rt->refused_logged_ms < runtime_refused_log_ms) {
        rt->refused_unlogged++;
        return false;
    }
    char theirs[SCRIPT_HASH_HEX_BYTES], ours[SCRIPT_HASH_HEX_BYTES];
    script_identity_hex(&info.script, theirs);
    script_identity_hex(&rt->script, ours);
    node_log(rt->n,
             "REFUSED the snapshot at index %" PRIu64 " from node %" PRIu64
             ": it holds the state of script %s (content %.*s...), but this node runs %s "
             "(content %.*s...); every node of a cluster must run the same script: restart "
             "this node with the cluster's script (RAFT.INFO shows each node's script); "
             "%" PRIu64 " more refused since the last such line",
             m->snapshot.index, m->from, info.script.name, runtime_hash_hex_shown, theirs,
             rt->script.name, runtime_hash_hex_shown, ours, rt->refused_unlogged);
    rt->refused_logged_ms = now != 0 ? now : 1;
    rt->refused_unlogged = 0;
    return false;
}

/* The identity of the script at path: its file name and the BLAKE2b-256 hash of its
 * content (libsodium's crypto_generichash). Returns 0, or -1 with a message in errmsg. */
int runtime_identity_of(const char *path, struct script_identity *out, char *errmsg, size_t size)
{
    memset(out, 0, sizeof *out);
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;
    size_t len = strlen(name);
    if (len == 0 || len > SCRIPT_NAME_BYTES_MAX) {
        snprintf(errmsg, size, "the script's file name is empty or over %d bytes",
                 SCRIPT_NAME_BYTES_MAX);
        return -1;
    }
    memcpy(out->name, name, len + 1);
    FILE *f = sodium_init() >= 0 ? fopen(path, "rb") : NULL;
    if (f == NULL) {
        snprintf(errmsg, size, "cannot hash %s: %s", path, strerror(errno));
        return -1;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, SCRIPT_HASH_BYTES);
    unsigned char buf[runtime_hash_chunk_bytes];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        crypto_generichash_update(&st, buf, n);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        snprintf(errmsg, size, "cannot read %s to hash it", path);
        return -1;
    }
    crypto_generichash_final(&st, out->hash, SCRIPT_HASH_BYTES);
    return 0;
}

/* "kv.lua (content 3f2a...)" into out: the name and the start of the hash. */
static const char *identity_text(const struct script_identity *id, char *out, size_t size)
{
    char hex[SCRIPT_HASH_HEX_BYTES];
    script_identity_hex(id, hex);
    snprintf(out, size, "%s (content %.*s...)", id->name, runtime_hash_hex_shown, hex);
    return out;
}

/*
 * A data directory belongs to the script that made it: its log holds that script's
 * commands and its snapshots that script's state, and another script would replay them
 * into a state machine they were never meant for (or fail in M.restore on every node).
 * These two refuse a store, or a newest snapshot, that records another script, and say
 * what to do.
 */
int runtime_check_store_identity(struct runtime *rt,
                                 const struct store_state *st,
                                 const char *snap_path)
{
    char mine[SCRIPT_NAME_BYTES_MAX + 64], theirs[SCRIPT_NAME_BYTES_MAX + 64];
    struct snapfile_info info;
    if (st->has_script && !script_identity_same(&st->script, &rt->script) && snap_path != NULL &&
        snapfile_inspect(snap_path, &info) == 0 && info.has_text &&
        script_identity_same(&info.script, &rt->script)) {
        /* Upgraded by RAFT.LOAD, and the newest snapshot holds the upgrade: the log after
         * it is all of this script's, so the one the directory was made with is not needed. */
        node_log(rt->n,
                 "%s was made by script %s and upgraded to %s at index %" PRIu64
                 ", which its newest snapshot holds: starting with %s",
                 rt->c->data_dir, identity_text(&st->script, theirs, sizeof theirs),
                 rt->script.name, info.script.since, rt->script.name);
        return 0;
    }
    if (st->has_script && !script_identity_same(&st->script, &rt->script)) {
        FAIL(
            "%s was made by script %s, not by %s: start with the script that made it, or "
            "use a new --data directory",
            rt->c->data_dir, identity_text(&st->script, theirs, sizeof theirs),
            identity_text(&rt->script, mine, sizeof mine));
    }
    return 0;
}

/* The script's identity (issue 7; struct script_identity in store/snapfile.h). */

int runtime_check_snapshot_identity(struct runtime *rt, const char *snap_path)
{
    char mine[SCRIPT_NAME_BYTES_MAX + 64], theirs[SCRIPT_NAME_BYTES_MAX + 64];
    identity_text(&rt->script, mine, sizeof mine);
    struct snapfile_info info;
    int rv = snapfile_inspect(snap_path, &info);
    if (rv != 0) {
        FAIL("cannot read the snapshot %s: %s", snap_path, snapfile_strerror(rv));
    }
    if (!info.has_script) {
        node_log(rt->n,
                 "snapshot %s records no script (an older luaraft wrote it): restored into %s "
                 "unchecked",
                 snap_path, mine);
    } else if (info.has_text) {
        node_log(rt->n,
                 "snapshot %s holds the state of script %s, upgraded at index %" PRIu64
                 " (RAFT.LOAD), and its text: this node runs that script",
                 snap_path, identity_text(&info.script, theirs, sizeof theirs), info.script.since);
    } else if (!script_identity_same(&info.script, &rt->script)) {
        FAIL(
            "%s holds a snapshot of script %s (%s), not of %s: start with the script that "
            "made it, or use a new --data directory",
            rt->c->data_dir, identity_text(&info.script, theirs, sizeof theirs), snap_path, mine);
    }
    return 0;
}

/* The first start (with this build) records the script in the store. Submitted before
 * anything the node persists, so every later write implies it (requests finish in
 * order). */
int runtime_record_identity(struct runtime *rt, const struct store_state *st)
{
    if (st->has_script) {
        return 0;
    }
    char mine[SCRIPT_NAME_BYTES_MAX + 64];
    identity_text(&rt->script, mine, sizeof mine);
    if (st->has_config || st->term > 0 || st->last_index > 0) {
        node_log(rt->n, "%s recorded no script (an older luaraft made it): recording %s",
                 rt->c->data_dir, mine);
    } else {
        node_log(rt->n, "recording script %s in %s", mine, rt->c->data_dir);
    }
    struct store_write w;
    memset(&w, 0, sizeof w);
    w.script = &rt->script;
    int rv = durability_submit_plain(rt->n, &w);
    if (rv != 0) {
        FAIL("cannot record the script in the store: %s", store_strerror(rv));
    }
    return 0;
}
