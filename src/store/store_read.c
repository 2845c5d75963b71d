/*
 * The store's reads, on the loop thread, each in a read transaction of its own:
 * store_load (the state a node boots from) and store_read (a range of log entries).
 * LMDB gives a thread one read transaction at a time, so the fn of store_read must not
 * call store_read or store_load.
 */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/assert.h"

static int store_load_script(struct store *s,
                             MDB_txn *txn,
                             struct store_state *out,
                             char *errmsg,
                             size_t errmsg_size)
{
    MDB_val v;
    int rv = store_get_meta(s, txn, "script", &v, errmsg, errmsg_size);
    if (rv != 0 || v.mv_size == 0) {
        return rv; /* an error, or none recorded */
    }
    if (script_identity_decode((const unsigned char *)v.mv_data + 1, v.mv_size - 1, &out->script) !=
        0) {
        snprintf(errmsg, errmsg_size, "store: the script record is malformed");
        return STORE_ECORRUPT;
    }
    out->has_script = true;
    return 0;
}

static int store_load_meta(struct store *s,
                           MDB_txn *txn,
                           struct store_state *out,
                           char *errmsg,
                           size_t errmsg_size)
{
    MDB_val v;
    int rv = store_get_meta(s, txn, "hard_state", &v, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (v.mv_size != 0) {
        if (v.mv_size != STORE_HARD_STATE_BYTES) {
            snprintf(errmsg, errmsg_size, "store: the hard state is %zu bytes", v.mv_size);
            return STORE_ECORRUPT;
        }
        out->term = store_get_u64((const unsigned char *)v.mv_data + 1);
        out->vote = store_get_u64((const unsigned char *)v.mv_data + 9);
    }

    rv = store_get_meta(s, txn, "config", &v, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (v.mv_size != 0) {
        const unsigned char *p = v.mv_data;
        if (v.mv_size < 2 || p[1] > RAFT_SERVERS_MAX || v.mv_size != 2 + (size_t)p[1] * 9) {
            snprintf(errmsg, errmsg_size, "store: the configuration record is malformed");
            return STORE_ECORRUPT;
        }
        out->has_config = true;
        out->n_servers = p[1];
        for (unsigned i = 0; i < out->n_servers; i++) {
            out->servers[i].id = store_get_u64(p + 2 + i * 9);
            out->servers[i].voter = p[2 + i * 9 + 8] != 0;
        }
    }

    rv = store_load_script(s, txn, out, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }

    rv = store_get_meta(s, txn, "snapshot", &v, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (v.mv_size != 0) {
        if (v.mv_size != STORE_SNAPSHOT_BYTES) {
            snprintf(errmsg, errmsg_size, "store: the snapshot record is %zu bytes", v.mv_size);
            return STORE_ECORRUPT;
        }
        out->snapshot_index = store_get_u64((const unsigned char *)v.mv_data + 1);
        out->snapshot_term = store_get_u64((const unsigned char *)v.mv_data + 9);
    }
    return 0;
}

static int store_load_log(struct store *s,
                          MDB_txn *txn,
                          struct store_state *out,
                          char *errmsg,
                          size_t errmsg_size)
{
    out->first_index = out->snapshot_index + 1;
    out->last_index = out->snapshot_index;

    MDB_stat st;
    int rv = mdb_stat(txn, s->log_dbi, &st);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_stat of the log", rv);
        return STORE_EIO;
    }
    if (st.ms_entries == 0) {
        return 0;
    }
    MDB_cursor *c;
    rv = mdb_cursor_open(txn, s->log_dbi, &c);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_cursor_open on the log", rv);
        return STORE_EIO;
    }
    MDB_val k, v;
    raft_index first = 0;
    raft_index last = 0;
    rv = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (rv == 0 && k.mv_size == 8) {
        first = store_get_u64(k.mv_data);
        rv = mdb_cursor_get(c, &k, &v, MDB_LAST);
        if (rv == 0 && k.mv_size == 8) {
            last = store_get_u64(k.mv_data);
        }
    }
    mdb_cursor_close(c);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_cursor_get on the log", rv);
        return STORE_EIO;
    }
    if (first == 0 || last < first || last - first + 1 != st.ms_entries) {
        snprintf(errmsg, errmsg_size,
                 "store: the log holds %zu entries between %llu and %llu: a gap or a bad key",
                 st.ms_entries, (unsigned long long)first, (unsigned long long)last);
        return STORE_ECORRUPT;
    }
    /* first > snapshot_index + 1 is not checked here: a compaction and the record of the
     * snapshot that allows it are separate requests when a node records snapshot_taken
     * after compacting. The node checks the start against the newest snapshot file
     * (snapfile_latest). */
    out->first_index = first;
    out->last_index = last;
    return 0;
}

int store_load(struct store *s, struct store_state *out, char *errmsg, size_t errmsg_size)
{
    lr_assert(s != NULL && out != NULL);
    memset(out, 0, sizeof *out);

    MDB_txn *txn;
    int rv = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_txn_begin (read) for store_load", rv);
        return STORE_EIO;
    }
    int result = store_load_meta(s, txn, out, errmsg, errmsg_size);
    if (result == 0) {
        result = store_load_log(s, txn, out, errmsg, errmsg_size);
    }
    mdb_txn_abort(txn);
    if (result != 0) {
        memset(out, 0, sizeof *out);
    }
    return result;
}

int store_read(struct store *s,
               raft_index first,
               raft_index last,
               int (*fn)(void *arg, raft_index index, const struct raft_entry *e),
               void *arg)
{
    lr_assert(s != NULL && fn != NULL);
    if (first > last) {
        return 0;
    }
    MDB_txn *txn;
    int rv = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rv != 0) {
        lr_log("store: mdb_txn_begin (read) for store_read: %s", mdb_strerror(rv));
        return STORE_EIO;
    }
    MDB_cursor *c;
    rv = mdb_cursor_open(txn, s->log_dbi, &c);
    if (rv != 0) {
        lr_log("store: mdb_cursor_open for store_read: %s", mdb_strerror(rv));
        mdb_txn_abort(txn);
        return STORE_EIO;
    }
    int result = 0;
    unsigned char key[8];
    store_put_u64(key, first);
    MDB_val k = {sizeof key, key};
    MDB_val v;
    MDB_cursor_op op = MDB_SET_KEY;
    for (raft_index i = first;; i++) {
        rv = mdb_cursor_get(c, &k, &v, op);
        op = MDB_NEXT;
        if (rv == MDB_NOTFOUND) {
            lr_log("store: store_read: entry %llu is missing", (unsigned long long)i);
            result = STORE_ECORRUPT;
            break;
        }
        if (rv != 0) {
            /* LMDB's own words for a damaged page: corruption, not an I/O error. */
            bool damaged = rv == MDB_CORRUPTED || rv == MDB_PAGE_NOTFOUND;
            lr_log("store: mdb_cursor_get in store_read: %s%s", mdb_strerror(rv),
                   damaged ? ": the data directory is damaged" : "");
            result = damaged ? STORE_ECORRUPT : STORE_EIO;
            break;
        }
        if (k.mv_size != 8 || store_get_u64(k.mv_data) != i) {
            lr_log("store: store_read: entry %llu is missing", (unsigned long long)i);
            result = STORE_ECORRUPT;
            break;
        }
        struct raft_entry e;
        if (store_log_record(s, &k, &v, &e) != 0) {
            lr_log(
                "store: log entry %llu fails its checksum or is malformed: the data "
                "directory is damaged",
                (unsigned long long)i);
            result = STORE_ECORRUPT;
            break;
        }
        result = fn(arg, i, &e);
        if (result != 0 || i == last) {
            break;
        }
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return result;
}
