/*
 * The checksums of the store's records (the layout is in store_internal.h): computed by
 * the writer thread as it writes a record, verified by every read. A store created with
 * them ("format" record) accepts no record without one.
 */
#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/crc32c.h"

enum {
    STORE_FORMAT_CHECKED = 2,
};

static const char format_name[] = "format";

uint32_t store_log_crc(const unsigned char key[8], const unsigned char *value, size_t len)
{
    static const unsigned char zero[4];
    uint32_t crc = crc32c(0, key, 8);
    crc = crc32c(crc, value, 12);
    crc = crc32c(crc, zero, sizeof zero);
    return crc32c(crc, value + STORE_LOG_HEADER_BYTES, len - STORE_LOG_HEADER_BYTES);
}

static uint32_t store_meta_crc(const char *name, const unsigned char *value, size_t len)
{
    return crc32c(crc32c(0, name, strlen(name)), value, len);
}

int store_log_record(const struct store *s,
                     const MDB_val *k,
                     const MDB_val *v,
                     struct raft_entry *out)
{
    const unsigned char *p = v->mv_data;
    if (k->mv_size != 8 || v->mv_size < STORE_LOG_HEADER_BYTES_UNCHECKED) {
        return STORE_ECORRUPT;
    }
    uint32_t type = store_get_u32(p + 8);
    size_t header = STORE_LOG_HEADER_BYTES_UNCHECKED;
    if (type & STORE_LOG_CHECKED) {
        header = STORE_LOG_HEADER_BYTES;
        if (v->mv_size < header ||
            store_get_u32(p + 12) != store_log_crc(k->mv_data, p, v->mv_size)) {
            return STORE_ECORRUPT;
        }
        type &= ~STORE_LOG_CHECKED;
    } else if (s->checked) {
        return STORE_ECORRUPT; /* its flag bit flipped, or worse */
    }
    if (v->mv_size - header > UINT32_MAX) {
        return STORE_ECORRUPT;
    }
    *out = (struct raft_entry){
        .term = store_get_u64(p),
        .type = type,
        .len = (uint32_t)(v->mv_size - header),
        .buf = p + header,
    };
    return 0;
}

int store_put_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, const void *data, size_t len)
{
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {len + STORE_META_CRC_BYTES, NULL};
    int rv = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);
    if (rv != 0) {
        return store_write_fail("mdb_put of a meta record", rv);
    }
    unsigned char *p = v.mv_data;
    memcpy(p, data, len);
    store_put_u32(p + len, store_meta_crc(name, p, len));
    return 0;
}

static int meta_corrupt(const char *name, char *errmsg, size_t errmsg_size)
{
    snprintf(errmsg, errmsg_size,
             "store: meta record %s fails its checksum: the data directory is damaged", name);
    return STORE_ECORRUPT;
}

int store_get_meta(const struct store *s,
                   MDB_txn *txn,
                   const char *name,
                   MDB_val *v,
                   char *errmsg,
                   size_t errmsg_size)
{
    MDB_val k = {strlen(name), (void *)name};
    int rv = mdb_get(txn, s->meta_dbi, &k, v);
    if (rv == MDB_NOTFOUND) {
        v->mv_size = 0;
        v->mv_data = NULL;
        return 0;
    }
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_get of a meta record", rv);
        return STORE_EIO;
    }
    const unsigned char *p = v->mv_data;
    if (v->mv_size >= 1 && p[0] == STORE_META_VERSION_UNCHECKED && !s->checked) {
        return 0;
    }
    if (v->mv_size < 1 + STORE_META_CRC_BYTES || p[0] != STORE_META_VERSION) {
        return meta_corrupt(name, errmsg, errmsg_size);
    }
    size_t len = v->mv_size - STORE_META_CRC_BYTES;
    if (store_get_u32(p + len) != store_meta_crc(name, p, len)) {
        return meta_corrupt(name, errmsg, errmsg_size);
    }
    v->mv_size = len; /* the callers see the fields only */
    return 0;
}

int store_open_format(struct store *s, MDB_txn *txn, char *errmsg, size_t errmsg_size)
{
    s->checked = true; /* a format record must be checked whatever it says */
    MDB_val v;
    int rv = store_get_meta(s, txn, format_name, &v, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (v.mv_size == 2) {
        if (((const unsigned char *)v.mv_data)[1] != STORE_FORMAT_CHECKED) {
            snprintf(errmsg, errmsg_size, "store: the data directory's format %u is unknown",
                     ((const unsigned char *)v.mv_data)[1]);
            return STORE_ECORRUPT;
        }
        return 0;
    }
    if (v.mv_size != 0) {
        return meta_corrupt(format_name, errmsg, errmsg_size);
    }
    MDB_stat log_st, meta_st;
    rv = mdb_stat(txn, s->log_dbi, &log_st);
    if (rv == 0) {
        rv = mdb_stat(txn, s->meta_dbi, &meta_st);
    }
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_stat at open", rv);
        return STORE_EIO;
    }
    if (log_st.ms_entries > 0 || meta_st.ms_entries > 0) {
        s->checked = false; /* made before checksums: see the top of store_internal.h */
        return 0;
    }
    const unsigned char rec[2] = {STORE_META_VERSION, STORE_FORMAT_CHECKED};
    rv = store_put_meta(txn, s->meta_dbi, format_name, rec, sizeof rec);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "store: cannot write the format record");
    }
    return rv;
}
