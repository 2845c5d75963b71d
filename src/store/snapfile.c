/*
 * Snapshot files (see snapfile.h for the contract).
 *
 * File layout, version 2 (all integers big-endian):
 *   header:  magic "LRSNAP02" (8 bytes), the length n of the record that follows (u32),
 *            the identity of the script whose state the body is (n bytes, the encoding
 *            of script_identity_encode: since u64, hash length u8, hash, name length u8,
 *            name)
 *   body:    the script's bytes as M.snapshot wrote them
 *   trailer: magic "LRSNAP02" (8 bytes), the length of header and body (u64), CRC-32C of
 *            header and body (u32)
 * Version 3 is version 2 with a second record in the header, after the identity: the
 * length m of the members record (u32) and its m bytes, which the node writes and reads
 * (the cluster's id and the configuration as of the snapshot's index, with every
 * member's addresses: src/node/members.c); the magics are "LRSNAP03". A file is written
 * as version 3 when it has a members record, as version 2 otherwise.
 * Version 4 is version 3 with a third record, after the members one (whose length may then
 * be 0): the length t of the script's text (u32, at least 1) and its t bytes, the text of
 * the script whose identity the header records; the magics are "LRSNAP04". A node writes
 * it once the script was upgraded (RAFT.LOAD: identity since > 0), so that a node that
 * restores the file runs the script its state belongs to, whatever --script says.
 * Version 1, written before scripts were recorded, had no header and "LRSNAP01" in its
 * trailer (length and CRC-32C of the body, i.e. of all before the trailer, as now); it is
 * still read, as a snapshot of no known script. A trailer magic "LRSNAPnn" with nn above
 * 02 is a newer format: SNAPFILE_EVERSION, so that an older build names the problem
 * instead of calling the file corrupt.
 *
 * The trailer sits at the end so the body can be streamed without knowing its length in
 * advance; a torn file has no valid trailer at its end and is rejected. The header's
 * length field lets a reader find the body without knowing every field of the record.
 *
 * File names, and finding the newest, pruning and cleaning up in a directory, are in
 * snapfile_dir.c; the identity record's encoding in script_identity.c.
 */
#include "store/snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/snapfile_internal.h"
#include "util/assert.h"
#include "util/crash_point.h"
#include "util/crc32c.h"

#define SNAPFILE_MAGIC_PREFIX "LRSNAP" /* then the version in two decimal digits */
#define SNAPFILE_MAGIC "LRSNAP02"
#define SNAPFILE_MAGIC_V3 "LRSNAP03"
#define SNAPFILE_MAGIC_V4 "LRSNAP04"

enum {
    SNAPFILE_VERSION = 4,
    SNAPFILE_VERSION_MEMBERS = 3,
    SNAPFILE_VERSION_SCRIPT = 2,
    SNAPFILE_VERSION_NO_SCRIPT = 1,
    SNAPFILE_MAGIC_BYTES = 8,
    SNAPFILE_TRAILER_BYTES = SNAPFILE_MAGIC_BYTES + 8 + 4,
    SNAPFILE_HEADER_FIXED_BYTES = SNAPFILE_MAGIC_BYTES + 4,
    SNAPFILE_HEADER_BYTES_MAX = SNAPFILE_HEADER_FIXED_BYTES + SCRIPT_IDENTITY_BYTES_MAX + 4 +
                                SNAPFILE_MEMBERS_BYTES_MAX + 4,
    SNAPFILE_READ_CHUNK_BYTES = 64 * 1024,
};

_Static_assert(sizeof(SNAPFILE_MAGIC) - 1 == SNAPFILE_MAGIC_BYTES, "magic is 8 bytes");
_Static_assert(sizeof(SNAPFILE_MAGIC_PREFIX) - 1 == SNAPFILE_MAGIC_BYTES - 2,
               "the version takes the magic's last two bytes");

const char *snapfile_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "success";
        case SNAPFILE_EIO:
            return "I/O error on a snapshot file";
        case SNAPFILE_ECORRUPT:
            return "the snapshot file is torn or corrupt";
        case SNAPFILE_ENOENT:
            return "no such snapshot file";
        case SNAPFILE_EVERSION:
            return "the snapshot file has a format newer than this luaraft reads";
        default:
            return "unknown snapshot file error";
    }
}

/* ------------------------------------------------------------------------------------ */
/* Writing. */

void snapfile_errmsg(char *errmsg, size_t errmsg_size, const char *what, const char *path)
{
    if (errmsg != NULL && errmsg_size > 0) {
        snprintf(errmsg, errmsg_size, "snapfile: %s %s: %s", what, path, strerror(errno));
    }
}

/* Writes all of data, retrying on EINTR and short writes. */
int snapfile_write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return SNAPFILE_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int snapfile_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return SNAPFILE_EIO;
    }
    int rv = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rv == 0 ? 0 : SNAPFILE_EIO;
}

static void put_be32(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (24 - 8 * i));
    }
}

static const char *const snapfile_magics[] = {SNAPFILE_MAGIC, SNAPFILE_MAGIC, SNAPFILE_MAGIC,
                                              SNAPFILE_MAGIC_V3, SNAPFILE_MAGIC_V4};

/* The header (see the top of this file), through snapfile_write so that the CRC and the
 * length in the trailer cover it: version 4 with a text, 3 with a members record, else 2. */
static int snapfile_write_header(struct snapfile_writer *w, const struct snapfile_header *hd)
{
    unsigned char h[SNAPFILE_HEADER_BYTES_MAX];
    w->version = hd->text_len > 0      ? SNAPFILE_VERSION
                 : hd->members_len > 0 ? SNAPFILE_VERSION_MEMBERS
                                       : SNAPFILE_VERSION_SCRIPT;
    memcpy(h, snapfile_magics[w->version], SNAPFILE_MAGIC_BYTES);
    size_t n = script_identity_encode(hd->script, h + SNAPFILE_HEADER_FIXED_BYTES);
    put_be32(h + SNAPFILE_MAGIC_BYTES, n);
    n += SNAPFILE_HEADER_FIXED_BYTES;
    if (w->version >= SNAPFILE_VERSION_MEMBERS) {
        put_be32(h + n, hd->members_len);
        if (hd->members_len > 0) { /* version 4 may have none (members NULL) */
            memcpy(h + n + 4, hd->members, hd->members_len);
        }
        n += 4 + hd->members_len;
    }
    if (w->version == SNAPFILE_VERSION) {
        put_be32(h + n, hd->text_len);
        n += 4;
    }
    int rv = snapfile_write(w, h, n);
    return rv != 0 || hd->text_len == 0 ? rv : snapfile_write(w, hd->text, hd->text_len);
}

int snapfile_begin(struct snapfile_writer *w,
                   const char *dir,
                   raft_index index,
                   raft_term term,
                   const struct script_identity *script,
                   char *errmsg,
                   size_t errmsg_size)
{
    struct snapfile_header h = {.script = script};
    return snapfile_begin_header(w, dir, index, term, &h, errmsg, errmsg_size);
}

int snapfile_begin_members(struct snapfile_writer *w,
                           const char *dir,
                           raft_index index,
                           raft_term term,
                           const struct script_identity *script,
                           const void *members,
                           size_t members_len,
                           char *errmsg,
                           size_t errmsg_size)
{
    struct snapfile_header h = {.script = script, .members = members, .members_len = members_len};
    return snapfile_begin_header(w, dir, index, term, &h, errmsg, errmsg_size);
}

int snapfile_begin_header(struct snapfile_writer *w,
                          const char *dir,
                          raft_index index,
                          raft_term term,
                          const struct snapfile_header *hd,
                          char *errmsg,
                          size_t errmsg_size)
{
    lr_assert(w != NULL && dir != NULL && hd != NULL && hd->script != NULL);
    lr_assert(hd->members_len <= SNAPFILE_MEMBERS_BYTES_MAX);
    lr_assert(hd->text_len <= SNAPFILE_TEXT_BYTES_MAX);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->index = index;
    w->term = term;
    int n1 = snprintf(w->dir, sizeof w->dir, "%s", dir);
    int named = snapfile_path(dir, index, term, w->path, sizeof w->path);
    int n3 = snprintf(w->tmp_path, sizeof w->tmp_path, "%s" SNAPFILE_TMP_SUFFIX, w->path);
    if (n1 < 0 || named != 0 || n3 < 0 || (size_t)n1 >= sizeof w->dir ||
        (size_t)n3 >= sizeof w->tmp_path) {
        w->tmp_path[0] = '\0'; /* maybe cut short: snapfile_abort must not unlink it */
        errno = ENAMETOOLONG;
        snapfile_errmsg(errmsg, errmsg_size, "cannot name a snapshot in", dir);
        return SNAPFILE_EIO;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (w->fd >= 0 || errno != EEXIST || attempt > 0) {
            break;
        }
        /* A temporary file left by a crash: it was never renamed, so it is garbage. */
        if (unlink(w->tmp_path) != 0) {
            break;
        }
    }
    if (w->fd < 0) {
        snapfile_errmsg(errmsg, errmsg_size, "cannot create", w->tmp_path);
        return SNAPFILE_EIO;
    }
    if (snapfile_write_header(w, hd) != 0) {
        snapfile_errmsg(errmsg, errmsg_size, "cannot write the header of", w->tmp_path);
        snapfile_abort(w);
        return SNAPFILE_EIO;
    }
    return 0;
}

int snapfile_write(struct snapfile_writer *w, const void *data, size_t len)
{
    lr_assert(w != NULL && w->fd >= 0);
    lr_assert(data != NULL || len == 0);
    crash_point("snapshot.mid_write");
    int rv = snapfile_write_all(w->fd, data, len);
    if (rv != 0) {
        return rv;
    }
    w->crc = crc32c(w->crc, data, len);
    w->bytes += len;
    return 0;
}

int snapfile_commit(struct snapfile_writer *w, char *errmsg, size_t errmsg_size)
{
    lr_assert(w != NULL && w->fd >= 0);
    unsigned char trailer[SNAPFILE_TRAILER_BYTES];
    memcpy(trailer, snapfile_magics[w->version], SNAPFILE_MAGIC_BYTES);
    for (int i = 0; i < 8; i++) {
        trailer[SNAPFILE_MAGIC_BYTES + i] = (unsigned char)(w->bytes >> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++) {
        trailer[SNAPFILE_MAGIC_BYTES + 8 + i] = (unsigned char)(w->crc >> (24 - 8 * i));
    }
    if (snapfile_write_all(w->fd, trailer, sizeof trailer) != 0) {
        snapfile_errmsg(errmsg, errmsg_size, "cannot write the trailer of", w->tmp_path);
        goto err;
    }
    if (fsync(w->fd) != 0) {
        snapfile_errmsg(errmsg, errmsg_size, "cannot fsync", w->tmp_path);
        goto err;
    }
    if (close(w->fd) != 0) {
        w->fd = -1;
        snapfile_errmsg(errmsg, errmsg_size, "cannot close", w->tmp_path);
        goto err;
    }
    w->fd = -1;
    if (rename(w->tmp_path, w->path) != 0) {
        snapfile_errmsg(errmsg, errmsg_size, "cannot rename to", w->path);
        goto err;
    }
    w->tmp_path[0] = '\0'; /* gone: a later snapfile_abort has nothing to remove */
    crash_point("snapshot.after_rename");
    if (snapfile_fsync_dir(w->dir) != 0) {
        /* The file is complete and renamed, but the rename may not survive a crash. */
        snapfile_errmsg(errmsg, errmsg_size, "cannot fsync the directory", w->dir);
        return SNAPFILE_EIO;
    }
    return 0;

err:
    snapfile_abort(w);
    return SNAPFILE_EIO;
}

void snapfile_abort(struct snapfile_writer *w)
{
    lr_assert(w != NULL);
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    if (w->tmp_path[0] != '\0') {
        unlink(w->tmp_path);
    }
}

static uint64_t snapfile_get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

int snapfile_read_all(int fd, void *buf, size_t len, off_t offset)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return SNAPFILE_EIO;
        }
        if (n == 0) {
            return SNAPFILE_ECORRUPT; /* the file shrank under us */
        }
        p += n;
        len -= (size_t)n;
        offset += n;
    }
    return 0;
}

/* The version a trailer's magic gives: 1 or 2, SNAPFILE_EVERSION for a newer one, or
 * SNAPFILE_ECORRUPT when it is no magic of ours. */
static int snapfile_version_of(const unsigned char *magic)
{
    size_t k = sizeof(SNAPFILE_MAGIC_PREFIX) - 1;
    unsigned char d1 = magic[k];
    unsigned char d2 = magic[k + 1];
    if (memcmp(magic, SNAPFILE_MAGIC_PREFIX, k) != 0 || d1 < '0' || d1 > '9' || d2 < '0' ||
        d2 > '9') {
        return SNAPFILE_ECORRUPT;
    }
    int version = (d1 - '0') * 10 + (d2 - '0');
    if (version > SNAPFILE_VERSION) {
        return SNAPFILE_EVERSION;
    }
    return version >= SNAPFILE_VERSION_NO_SCRIPT ? version : SNAPFILE_ECORRUPT;
}

/* The members record of a version 3 or 4 header, at h[at, want) (of version 4, maybe
 * empty). Returns its end, or 0. */
static size_t snapfile_read_members(const unsigned char *h,
                                    size_t at,
                                    size_t want,
                                    struct snapfile_info *out)
{
    if (at + 4 > want) {
        return 0;
    }
    uint64_t m = snapfile_get_be(h + at, 4);
    if ((m == 0 && out->version == SNAPFILE_VERSION_MEMBERS) || m > SNAPFILE_MEMBERS_BYTES_MAX ||
        at + 4 + m > want) {
        return 0;
    }
    if (m == 0) {
        return at + 4;
    }
    memcpy(out->members, h + at + 4, (size_t)m);
    out->members_len = (size_t)m;
    out->has_members = true;
    return at + 4 + (size_t)m;
}

/* The text record of a version 4 header: its length at h[at, want), its bytes after it,
 * before the body. Returns where the body starts, or 0. */
static uint64_t snapfile_read_text(const unsigned char *h,
                                   size_t at,
                                   size_t want,
                                   uint64_t covered,
                                   struct snapfile_info *out)
{
    if (at + 4 > want) {
        return 0;
    }
    uint64_t t = snapfile_get_be(h + at, 4);
    if (t == 0 || t > SNAPFILE_TEXT_BYTES_MAX || at + 4 + t > covered) {
        return 0;
    }
    out->has_text = true;
    out->text_offset = at + 4;
    out->text_len = (size_t)t;
    return at + 4 + t;
}

/* The header of a version 2, 3 or 4 file whose header and body take covered bytes. */
static int snapfile_read_header(int fd, uint64_t covered, struct snapfile_info *out)
{
    unsigned char h[SNAPFILE_HEADER_BYTES_MAX];
    size_t want = covered < sizeof h ? (size_t)covered : sizeof h;
    if (want < SNAPFILE_HEADER_FIXED_BYTES) {
        return SNAPFILE_ECORRUPT;
    }
    int rv = snapfile_read_all(fd, h, want, 0);
    if (rv != 0) {
        return rv;
    }
    uint64_t n = snapfile_get_be(h + SNAPFILE_MAGIC_BYTES, 4);
    bool v3 = out->version >= SNAPFILE_VERSION_MEMBERS;
    if (memcmp(h, snapfile_magics[out->version], SNAPFILE_MAGIC_BYTES) != 0 ||
        SNAPFILE_HEADER_FIXED_BYTES + n > want ||
        script_identity_decode(h + SNAPFILE_HEADER_FIXED_BYTES, (size_t)n, &out->script) != 0) {
        return SNAPFILE_ECORRUPT;
    }
    out->has_script = true;
    out->body_offset = SNAPFILE_HEADER_FIXED_BYTES + n;
    if (v3) {
        out->body_offset = snapfile_read_members(h, (size_t)out->body_offset, want, out);
        if (out->body_offset == 0) {
            return SNAPFILE_ECORRUPT;
        }
    }
    if (out->version == SNAPFILE_VERSION) {
        out->body_offset = snapfile_read_text(h, (size_t)out->body_offset, want, covered, out);
        if (out->body_offset == 0) {
            return SNAPFILE_ECORRUPT;
        }
    }
    out->body_bytes = covered - out->body_offset;
    return 0;
}

/* Reads the trailer and the header of the open file fd: *covered gets the length the
 * trailer covers (all before it), *crc the checksum it records. */
static int snapfile_inspect_fd(int fd, struct snapfile_info *out, uint64_t *covered, uint32_t *crc)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return SNAPFILE_EIO;
    }
    if (st.st_size < SNAPFILE_TRAILER_BYTES) {
        return SNAPFILE_ECORRUPT;
    }
    *covered = (uint64_t)st.st_size - SNAPFILE_TRAILER_BYTES;
    unsigned char trailer[SNAPFILE_TRAILER_BYTES];
    int rv = snapfile_read_all(fd, trailer, sizeof trailer, (off_t)*covered);
    if (rv != 0) {
        return rv;
    }
    int version = snapfile_version_of(trailer);
    if (version < 0) {
        return version;
    }
    if (snapfile_get_be(trailer + SNAPFILE_MAGIC_BYTES, 8) != *covered) {
        return SNAPFILE_ECORRUPT;
    }
    *crc = (uint32_t)snapfile_get_be(trailer + SNAPFILE_MAGIC_BYTES + 8, 4);
    out->version = version;
    if (version == SNAPFILE_VERSION_NO_SCRIPT) {
        out->body_offset = 0;
        out->body_bytes = *covered;
        return 0;
    }
    return snapfile_read_header(fd, *covered, out);
}

/* The CRC-32C of the file's first len bytes, read in chunks. */
static int snapfile_crc_of(int fd, uint64_t len, uint32_t *crc)
{
    unsigned char *chunk = malloc(SNAPFILE_READ_CHUNK_BYTES);
    if (chunk == NULL) {
        errno = ENOMEM;
        return SNAPFILE_EIO;
    }
    uint32_t c = 0;
    int rv = 0;
    for (uint64_t at = 0; at < len && rv == 0;) {
        size_t n =
            len - at < SNAPFILE_READ_CHUNK_BYTES ? (size_t)(len - at) : SNAPFILE_READ_CHUNK_BYTES;
        rv = snapfile_read_all(fd, chunk, n, (off_t)at);
        c = crc32c(c, chunk, n);
        at += n;
    }
    free(chunk);
    *crc = c;
    return rv;
}

int snapfile_inspect(const char *path, struct snapfile_info *out)
{
    lr_assert(path != NULL && out != NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        memset(out, 0, sizeof *out);
        return errno == ENOENT ? SNAPFILE_ENOENT : SNAPFILE_EIO;
    }
    uint64_t covered;
    uint32_t crc;
    int rv = snapfile_inspect_fd(fd, out, &covered, &crc);
    close(fd);
    return rv;
}

int snapfile_script_text(const char *path, const struct snapfile_info *info, char **text)
{
    lr_assert(path != NULL && info != NULL && info->has_text);
    *text = malloc(info->text_len);
    int fd = *text != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    int rv = fd < 0 ? SNAPFILE_EIO
                    : snapfile_read_all(fd, *text, info->text_len, (off_t)info->text_offset);
    if (fd >= 0) {
        close(fd);
    }
    if (rv != 0) {
        free(*text);
        *text = NULL;
    }
    return rv;
}

int snapfile_verify(const char *path, uint64_t *body_bytes)
{
    lr_assert(path != NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? SNAPFILE_ENOENT : SNAPFILE_EIO;
    }
    struct snapfile_info info;
    uint64_t covered = 0;
    uint32_t want = 0;
    uint32_t crc = 0;
    int rv = snapfile_inspect_fd(fd, &info, &covered, &want);
    if (rv == 0) {
        rv = snapfile_crc_of(fd, covered, &crc);
    }
    if (rv == 0 && crc != want) {
        rv = SNAPFILE_ECORRUPT;
    }
    if (rv == 0 && body_bytes != NULL) {
        *body_bytes = info.body_bytes;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rv;
}
