/*
 * One store request inside a write transaction: the meta records, a snapshot install's
 * drop of the log, appended entries (after truncating any conflicting suffix), and
 * compaction. Runs on the writer thread only (store_writer.c owns the transaction).
 */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/assert.h"

/* Deletes every log entry at index >= first (from the end, the cheap direction). */
static int store_truncate_from(MDB_txn *txn, MDB_dbi dbi, raft_index first)
{
    MDB_cursor *c;
    int rv = mdb_cursor_open(txn, dbi, &c);
    if (rv != 0) {
        return store_write_fail("mdb_cursor_open on the log for truncation", rv);
    }
    int result = 0;
    for (;;) {
        MDB_val k, v;
        rv = mdb_cursor_get(c, &k, &v, MDB_LAST);
        if (rv == MDB_NOTFOUND) {
            break;
        }
        if (rv != 0) {
            result = store_write_fail("mdb_cursor_get(MDB_LAST) on the log", rv);
            break;
        }
        if (k.mv_size != 8) {
            lr_log("store: a log key is %zu bytes, not 8", k.mv_size);
            result = STORE_ECORRUPT;
            break;
        }
        if (store_get_u64(k.mv_data) < first) {
            break;
        }
        rv = mdb_cursor_del(c, 0);
        if (rv != 0) {
            result = store_write_fail("mdb_cursor_del while truncating the log", rv);
            break;
        }
    }
    mdb_cursor_close(c);
    return result;
}

/* Deletes every log entry at index <= last (from the start). */
static int store_compact_to(MDB_txn *txn, MDB_dbi dbi, raft_index last)
{
    MDB_cursor *c;
    int rv = mdb_cursor_open(txn, dbi, &c);
    if (rv != 0) {
        return store_write_fail("mdb_cursor_open on the log for compaction", rv);
    }
    int result = 0;
    for (;;) {
        MDB_val k, v;
        rv = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        if (rv == MDB_NOTFOUND) {
            break;
        }
        if (rv != 0) {
            result = store_write_fail("mdb_cursor_get(MDB_FIRST) on the log", rv);
            break;
        }
        if (k.mv_size != 8) {
            lr_log("store: a log key is %zu bytes, not 8", k.mv_size);
            result = STORE_ECORRUPT;
            break;
        }
        if (store_get_u64(k.mv_data) > last) {
            break;
        }
        rv = mdb_cursor_del(c, 0);
        if (rv != 0) {
            result = store_write_fail("mdb_cursor_del while compacting the log", rv);
            break;
        }
    }
    mdb_cursor_close(c);
    return result;
}

/* The index of the last log entry, 0 if the log is empty. */
static int store_last_key(MDB_txn *txn, MDB_dbi dbi, raft_index *last)
{
    MDB_cursor *c;
    int rv = mdb_cursor_open(txn, dbi, &c);
    if (rv != 0) {
        return store_write_fail("mdb_cursor_open on the log", rv);
    }
    MDB_val k, v;
    rv = mdb_cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);
    *last = 0;
    if (rv == MDB_NOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return store_write_fail("mdb_cursor_get(MDB_LAST) on the log", rv);
    }
    if (k.mv_size != 8) {
        lr_log("store: a log key is %zu bytes, not 8", k.mv_size);
        return STORE_ECORRUPT;
    }
    *last = store_get_u64(k.mv_data);
    return 0;
}

static int store_write_entries(MDB_txn *txn, MDB_dbi dbi, const struct store_req *r)
{
    int rv = store_truncate_from(txn, dbi, r->w.first);
    if (rv != 0) {
        return rv;
    }
    raft_index last = 0;
    rv = store_last_key(txn, dbi, &last);
    if (rv != 0) {
        return rv;
    }
    if (last != 0 && last != r->w.first - 1) {
        lr_log("store: entries from %llu would leave a gap after the log's last entry %llu",
               (unsigned long long)r->w.first, (unsigned long long)last);
        return STORE_EINVAL;
    }
    for (uint32_t i = 0; i < r->w.n; i++) {
        const struct raft_entry *e = &r->entries[i];
        unsigned char key[8];
        store_put_u64(key, r->w.first + i);
        MDB_val k = {sizeof key, key};
        MDB_val v = {STORE_LOG_HEADER_BYTES + (size_t)e->len, NULL};
        /* The keys now end below first, so every put is an append. */
        rv = mdb_put(txn, dbi, &k, &v, MDB_APPEND | MDB_RESERVE);
        if (rv != 0) {
            return store_write_fail("mdb_put(MDB_APPEND) of a log entry", rv);
        }
        unsigned char *p = v.mv_data;
        lr_assert((e->type & STORE_LOG_CHECKED) == 0);
        store_put_u64(p, e->term);
        store_put_u32(p + 8, e->type | STORE_LOG_CHECKED);
        if (e->len > 0) {
            memcpy(p + STORE_LOG_HEADER_BYTES, e->buf, e->len);
        }
        store_put_u32(p + 12, store_log_crc(key, p, v.mv_size));
    }
    return 0;
}

/* In the order store.h gives: hard state, config, script, snapshot, entries, compaction. */
int store_apply_request(struct store *s, MDB_txn *txn, const struct store_req *r)
{
    int rv;
    if (r->w.hard_state) {
        unsigned char buf[STORE_HARD_STATE_BYTES];
        buf[0] = STORE_META_VERSION;
        store_put_u64(buf + 1, r->w.term);
        store_put_u64(buf + 9, r->w.vote);
        rv = store_put_meta(txn, s->meta_dbi, "hard_state", buf, sizeof buf);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.config) {
        unsigned char buf[STORE_CONFIG_BYTES_MAX];
        size_t len = 0;
        buf[len++] = STORE_META_VERSION;
        buf[len++] = (unsigned char)r->w.n_servers;
        for (unsigned i = 0; i < r->w.n_servers; i++) {
            store_put_u64(buf + len, r->servers[i].id);
            buf[len + 8] = r->servers[i].voter ? 1 : 0;
            len += 9;
        }
        rv = store_put_meta(txn, s->meta_dbi, "config", buf, len);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.script != NULL) {
        unsigned char buf[STORE_SCRIPT_BYTES_MAX];
        buf[0] = STORE_META_VERSION;
        size_t len = 1 + script_identity_encode(r->w.script, buf + 1);
        rv = store_put_meta(txn, s->meta_dbi, "script", buf, len);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.snapshot || r->w.snapshot_taken) {
        if (r->w.snapshot) {
            rv = mdb_drop(txn, s->log_dbi, 0);
            if (rv != 0) {
                return store_write_fail("mdb_drop of the log for a snapshot install", rv);
            }
        }
        unsigned char buf[STORE_SNAPSHOT_BYTES];
        buf[0] = STORE_META_VERSION;
        store_put_u64(buf + 1, r->w.snapshot_index);
        store_put_u64(buf + 9, r->w.snapshot_term);
        rv = store_put_meta(txn, s->meta_dbi, "snapshot", buf, sizeof buf);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.entries) {
        rv = store_write_entries(txn, s->log_dbi, r);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.compact_to > 0) {
        rv = store_compact_to(txn, s->log_dbi, r->w.compact_to);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}
