/*
 * Snapshot files (see snapfile.h for the contract).
 *
 * File layout: the body as the caller wrote it, then a 20-byte trailer:
 *   magic "LRSNAP01" (8 bytes), body length (u64 big-endian), CRC-32C of the body (u32
 *   big-endian).
 * The trailer sits at the end so the body can be streamed without knowing its length in
 * advance; a torn file has no valid trailer at its end and is rejected.
 *
 * Names: snap-<index>-<term>.lrs in decimal; the temporary name adds ".tmp". Only names
 * that print back exactly the same are taken as snapshots, so "snap-01-2.lrs" is ignored.
 */
#include "store/snapfile.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/assert.h"
#include "util/crc32c.h"

#define SNAPFILE_MAGIC "LRSNAP01"
#define SNAPFILE_TMP_SUFFIX ".tmp"

enum {
    SNAPFILE_MAGIC_BYTES = 8,
    SNAPFILE_TRAILER_BYTES = SNAPFILE_MAGIC_BYTES + 8 + 4,
    SNAPFILE_READ_CHUNK_BYTES = 64 * 1024,
};

_Static_assert(sizeof(SNAPFILE_MAGIC) - 1 == SNAPFILE_MAGIC_BYTES, "magic is 8 bytes");

static void snapfile_errmsg(char *errmsg, size_t errmsg_size, const char *what, const char *path)
{
    if (errmsg != NULL && errmsg_size > 0) {
        snprintf(errmsg, errmsg_size, "snapfile: %s %s: %s", what, path, strerror(errno));
    }
}

/* Writes all of data, retrying on EINTR and short writes. */
static int snapfile_write_all(int fd, const void *data, size_t len)
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

static int snapfile_fsync_dir(const char *dir)
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

/* Parses "snap-<index>-<term>.lrs"; false for any other name. */
static bool snapfile_parse_name(const char *name, raft_index *index, raft_term *term)
{
    unsigned long long i, t;
    char tail;
    if (sscanf(name, "snap-%llu-%llu.lr%c", &i, &t, &tail) != 3 || tail != 's') {
        return false;
    }
    char again[64];
    int n = snprintf(again, sizeof again, "snap-%llu-%llu.lrs", i, t);
    if (n < 0 || (size_t)n >= sizeof again || strcmp(again, name) != 0) {
        return false;
    }
    *index = i;
    *term = t;
    return true;
}

int snapfile_begin(struct snapfile_writer *w,
                   const char *dir,
                   raft_index index,
                   raft_term term,
                   char *errmsg,
                   size_t errmsg_size)
{
    lr_assert(w != NULL && dir != NULL);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->index = index;
    w->term = term;
    int n1 = snprintf(w->dir, sizeof w->dir, "%s", dir);
    int n2 = snprintf(w->path, sizeof w->path, "%s/snap-%llu-%llu.lrs", dir,
                      (unsigned long long)index, (unsigned long long)term);
    int n3 = snprintf(w->tmp_path, sizeof w->tmp_path, "%s" SNAPFILE_TMP_SUFFIX, w->path);
    if (n1 < 0 || n2 < 0 || n3 < 0 || (size_t)n1 >= sizeof w->dir || (size_t)n2 >= sizeof w->path ||
        (size_t)n3 >= sizeof w->tmp_path) {
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
    return 0;
}

int snapfile_write(struct snapfile_writer *w, const void *data, size_t len)
{
    lr_assert(w != NULL && w->fd >= 0);
    lr_assert(data != NULL || len == 0);
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
    memcpy(trailer, SNAPFILE_MAGIC, SNAPFILE_MAGIC_BYTES);
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

static int snapfile_read_all(int fd, void *buf, size_t len, off_t offset)
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

int snapfile_verify(const char *path, uint64_t *body_bytes)
{
    lr_assert(path != NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? SNAPFILE_ENOENT : SNAPFILE_EIO;
    }
    int result;
    unsigned char *chunk = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        result = SNAPFILE_EIO;
        goto out;
    }
    if (st.st_size < SNAPFILE_TRAILER_BYTES) {
        result = SNAPFILE_ECORRUPT;
        goto out;
    }
    uint64_t body = (uint64_t)st.st_size - SNAPFILE_TRAILER_BYTES;
    unsigned char trailer[SNAPFILE_TRAILER_BYTES];
    result = snapfile_read_all(fd, trailer, sizeof trailer, (off_t)body);
    if (result != 0) {
        goto out;
    }
    if (memcmp(trailer, SNAPFILE_MAGIC, SNAPFILE_MAGIC_BYTES) != 0 ||
        snapfile_get_be(trailer + SNAPFILE_MAGIC_BYTES, 8) != body) {
        result = SNAPFILE_ECORRUPT;
        goto out;
    }
    uint32_t want = (uint32_t)snapfile_get_be(trailer + SNAPFILE_MAGIC_BYTES + 8, 4);
    chunk = malloc(SNAPFILE_READ_CHUNK_BYTES);
    if (chunk == NULL) {
        errno = ENOMEM;
        result = SNAPFILE_EIO;
        goto out;
    }
    uint32_t crc = 0;
    for (uint64_t at = 0; at < body;) {
        size_t n =
            body - at < SNAPFILE_READ_CHUNK_BYTES ? (size_t)(body - at) : SNAPFILE_READ_CHUNK_BYTES;
        result = snapfile_read_all(fd, chunk, n, (off_t)at);
        if (result != 0) {
            goto out;
        }
        crc = crc32c(crc, chunk, n);
        at += n;
    }
    if (crc != want) {
        result = SNAPFILE_ECORRUPT;
        goto out;
    }
    if (body_bytes != NULL) {
        *body_bytes = body;
    }
    result = 0;

out:
    free(chunk);
    close(fd);
    return result;
}

struct snapfile_candidate
{
    raft_index index;
    raft_term term;
};

static int snapfile_candidate_cmp(const void *a, const void *b)
{
    const struct snapfile_candidate *x = a;
    const struct snapfile_candidate *y = b;
    /* Newest first. */
    if (x->index != y->index) {
        return x->index < y->index ? 1 : -1;
    }
    if (x->term != y->term) {
        return x->term < y->term ? 1 : -1;
    }
    return 0;
}

int snapfile_latest(const char *dir,
                    raft_index *index,
                    raft_term *term,
                    char *path,
                    size_t path_size)
{
    lr_assert(dir != NULL && index != NULL && term != NULL && path != NULL);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? SNAPFILE_ENOENT : SNAPFILE_EIO;
    }
    struct snapfile_candidate *c = NULL;
    size_t n = 0;
    size_t cap = 0;
    int result = SNAPFILE_ENOENT;
    struct dirent *de;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                result = SNAPFILE_EIO;
                goto out;
            }
            break;
        }
        struct snapfile_candidate one;
        if (!snapfile_parse_name(de->d_name, &one.index, &one.term)) {
            continue;
        }
        if (n == cap) {
            size_t new_cap = cap == 0 ? 8 : cap * 2;
            struct snapfile_candidate *grown = realloc(c, new_cap * sizeof *c);
            if (grown == NULL) {
                errno = ENOMEM;
                result = SNAPFILE_EIO;
                goto out;
            }
            c = grown;
            cap = new_cap;
        }
        c[n++] = one;
    }
    if (n > 0) {
        qsort(c, n, sizeof *c, snapfile_candidate_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        char p[1024];
        int len = snprintf(p, sizeof p, "%s/snap-%llu-%llu.lrs", dir,
                           (unsigned long long)c[i].index, (unsigned long long)c[i].term);
        if (len < 0 || (size_t)len >= sizeof p || (size_t)len >= path_size) {
            continue;
        }
        if (snapfile_verify(p, NULL) != 0) {
            continue; /* torn or corrupt: fall back to the one before */
        }
        memcpy(path, p, (size_t)len + 1);
        *index = c[i].index;
        *term = c[i].term;
        result = 0;
        break;
    }

out:
    free(c);
    closedir(d);
    return result;
}

void snapfile_prune(const char *dir, raft_index index)
{
    lr_assert(dir != NULL);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        raft_index i;
        raft_term t;
        const char *name = de->d_name;
        size_t len = strlen(name);
        size_t suffix = sizeof(SNAPFILE_TMP_SUFFIX) - 1;
        bool stray_tmp = strncmp(name, "snap-", 5) == 0 && len > suffix &&
                         strcmp(name + len - suffix, SNAPFILE_TMP_SUFFIX) == 0;
        bool older = snapfile_parse_name(name, &i, &t) && i < index;
        if (!stray_tmp && !older) {
            continue;
        }
        char p[1024];
        int n = snprintf(p, sizeof p, "%s/%s", dir, name);
        if (n > 0 && (size_t)n < sizeof p) {
            unlink(p);
        }
    }
    closedir(d);
}
