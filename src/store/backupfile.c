/*
 * Backup files (see backupfile.h for the layout and the contract).
 */
#include "store/backupfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/snapfile_internal.h"
#include "util/crc32c.h"

#define BACKUPFILE_MAGIC "LRBACKUP"

enum {
    backupfile_version = 1,
    backupfile_copy_chunk = 64 * 1024,
    backupfile_path_bytes = 1024,
};

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

__attribute__((format(printf, 3, 4))) static void say(char *errmsg,
                                                      size_t size,
                                                      const char *fmt,
                                                      ...)
{
    if (errmsg != NULL && size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, size, fmt, ap);
        va_end(ap);
    }
}

static void encode_header(unsigned char *h, raft_index index, raft_term term, uint64_t len)
{
    memcpy(h, BACKUPFILE_MAGIC, 8);
    put_be(h + 8, backupfile_version, 4);
    put_be(h + 12, index, 8);
    put_be(h + 20, term, 8);
    put_be(h + 28, len, 8);
    put_be(h + 36, crc32c(0, h, 36), 4);
}

/* Copies len bytes of in, from offset, to out. */
static int copy_bytes(int in, off_t offset, uint64_t len, int out)
{
    unsigned char chunk[backupfile_copy_chunk];
    while (len > 0) {
        size_t n = len < sizeof chunk ? (size_t)len : sizeof chunk;
        int rv = snapfile_read_all(in, chunk, n, offset);
        if (rv == 0) {
            rv = snapfile_write_all(out, chunk, n);
        }
        if (rv != 0) {
            return rv;
        }
        offset += (off_t)n;
        len -= n;
    }
    return 0;
}

/* The directory part of path ("." when it has none) into dir[size]. */
static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, size, ".");
    } else if (slash == path) {
        snprintf(dir, size, "/");
    } else {
        snprintf(dir, size, "%.*s", (int)(slash - path), path);
    }
}

/*
 * Writes head (if not NULL, BACKUPFILE_HEADER_BYTES) then len bytes of in from offset to
 * dst durably: a temporary name, fsync, rename, fsync of the directory.
 */
static int write_durably(const char *dst,
                         const unsigned char *head,
                         int in,
                         off_t offset,
                         uint64_t len,
                         char *errmsg,
                         size_t size)
{
    char tmp[backupfile_path_bytes], dir[backupfile_path_bytes];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        say(errmsg, size, "cannot write %s: %s", dst, strerror(errno));
        return SNAPFILE_EIO;
    }
    dir_of(dst, dir, sizeof dir);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        say(errmsg, size, "cannot create %s: %s", tmp, strerror(errno));
        return SNAPFILE_EIO;
    }
    int rv = head != NULL ? snapfile_write_all(out, head, BACKUPFILE_HEADER_BYTES) : 0;
    if (rv == 0) {
        rv = copy_bytes(in, offset, len, out);
    }
    if (rv == 0 && fsync(out) != 0) {
        rv = SNAPFILE_EIO;
    }
    int saved = errno;
    if (close(out) != 0 && rv == 0) {
        rv = SNAPFILE_EIO;
        saved = errno;
    }
    if (rv == 0 && rename(tmp, dst) != 0) {
        rv = SNAPFILE_EIO;
        saved = errno;
    }
    if (rv != 0) {
        unlink(tmp);
        errno = saved;
        say(errmsg, size, "cannot write %s: %s", dst, rv == SNAPFILE_EIO ? strerror(saved) : "");
        return rv;
    }
    if (snapfile_fsync_dir(dir) != 0) {
        say(errmsg, size, "cannot fsync the directory %s: %s", dir, strerror(errno));
        return SNAPFILE_EIO;
    }
    return 0;
}

int backupfile_write(const char *snap_path,
                     raft_index index,
                     raft_term term,
                     const char *dst,
                     uint64_t *bytes,
                     char *errmsg,
                     size_t errmsg_size)
{
    uint64_t body;
    int rv = snapfile_verify(snap_path, &body);
    if (rv != 0) {
        say(errmsg, errmsg_size, "the snapshot %s: %s", snap_path, snapfile_strerror(rv));
        return rv;
    }
    int in = open(snap_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0) {
        say(errmsg, errmsg_size, "cannot read %s: %s", snap_path, strerror(errno));
        if (in >= 0) {
            close(in);
        }
        return SNAPFILE_EIO;
    }
    unsigned char head[BACKUPFILE_HEADER_BYTES];
    encode_header(head, index, term, (uint64_t)st.st_size);
    rv = write_durably(dst, head, in, 0, (uint64_t)st.st_size, errmsg, errmsg_size);
    close(in);
    if (rv == 0 && bytes != NULL) {
        *bytes = BACKUPFILE_HEADER_BYTES + (uint64_t)st.st_size;
    }
    return rv;
}

/* Opens path and reads its header into out; the snapshot starts at the header's end. */
static int open_backup(const char *path, struct backupfile_info *out, char *errmsg, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        say(errmsg, size, "cannot open %s: %s", path, strerror(errno));
        return errno == ENOENT ? SNAPFILE_ENOENT : SNAPFILE_EIO;
    }
    unsigned char h[BACKUPFILE_HEADER_BYTES];
    struct stat st;
    int rv = fstat(fd, &st) != 0 ? SNAPFILE_EIO : snapfile_read_all(fd, h, sizeof h, 0);
    if (rv == 0 && (memcmp(h, BACKUPFILE_MAGIC, 8) != 0 || get_be(h + 36, 4) != crc32c(0, h, 36))) {
        rv = SNAPFILE_ECORRUPT;
    } else if (rv == 0 && get_be(h + 8, 4) != backupfile_version) {
        rv = SNAPFILE_EVERSION;
    }
    if (rv == 0) {
        out->index = get_be(h + 12, 8);
        out->term = get_be(h + 20, 8);
        out->snapshot_bytes = get_be(h + 28, 8);
        if (out->snapshot_bytes != (uint64_t)st.st_size - sizeof h || out->index == 0) {
            rv = SNAPFILE_ECORRUPT;
        }
    }
    if (rv != 0) {
        say(errmsg, size, "%s is not a luaraft backup: %s", path, snapfile_strerror(rv));
        close(fd);
        return rv;
    }
    return fd;
}

/* Puts the backup's snapshot at snap_path, durably, and checks it there. */
static int extract(int fd,
                   const char *path,
                   const char *snap_path,
                   struct backupfile_info *out,
                   char *errmsg,
                   size_t size)
{
    int rv = write_durably(snap_path, NULL, fd, BACKUPFILE_HEADER_BYTES, out->snapshot_bytes,
                           errmsg, size);
    if (rv != 0) {
        return rv;
    }
    uint64_t body;
    rv = snapfile_verify(snap_path, &body);
    if (rv == 0) {
        rv = snapfile_inspect(snap_path, &out->snap);
    }
    if (rv != 0) {
        say(errmsg, size, "the snapshot in %s: %s", path, snapfile_strerror(rv));
        unlink(snap_path);
    }
    return rv;
}

int backupfile_restore(const char *path,
                       const char *dir,
                       struct backupfile_info *out,
                       char *errmsg,
                       size_t errmsg_size)
{
    int fd = open_backup(path, out, errmsg, errmsg_size);
    if (fd < 0) {
        return fd;
    }
    char snap_path[backupfile_path_bytes];
    int rv = snapfile_path(dir, out->index, out->term, snap_path, sizeof snap_path);
    if (rv != 0) {
        say(errmsg, errmsg_size, "cannot name a snapshot in %s: %s", dir, strerror(errno));
    } else {
        rv = extract(fd, path, snap_path, out, errmsg, errmsg_size);
    }
    close(fd);
    return rv;
}
