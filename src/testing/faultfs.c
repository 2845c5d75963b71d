/*
 * faultfs (test-only): a FUSE file system that loses, on command, every write not made
 * durable, as a power loss would, and fails fsyncs and writes on command (faultfs.h has
 * the model; spec/power/ drives it).
 *
 *   faultfs [--watch PID] BACKING MOUNTPOINT
 *
 * Runs in the foreground, every operation under one lock (so a command happens between two
 * operations, at one instant), until it is unmounted (fusermount3 -u MOUNTPOINT), gets SIGTERM, or
 * the process PID (the spec's) is gone; it mounts with auto_unmount, so a faultfs killed by any
 * signal leaves no mount behind. What counts as durable, as a careful program must assume of POSIX
 * (stricter than ext4's data=ordered):
 *   - a file's bytes and size once fsync or fdatasync returned (what the file holds when
 *     it returns: an fsync takes fsync-us, and a power loss meanwhile makes it fail), or
 *     written through an O_SYNC/O_DSYNC descriptor;
 *   - a directory entry (create, mkdir, unlink, rmdir, rename) once its directory was
 *     fsynced; fsync of a file does not make its name durable.
 * Renaming a directory, or a file into another directory, fails with EXDEV (nothing here
 * needs it and the model would not cover it). Links, symlinks and fallocate are not there.
 *
 * Commands: written to the control file MOUNTPOINT/.faultfs, one per write
 * (`printf 'powerloss' >MOUNTPOINT/.faultfs`); reading it gives counters, one
 * "name value" a line.
 *   powerloss      take back everything not durable (the backing directory then holds
 *                  exactly what was); from then on every operation fails with EIO until
 *                  the next mount. The kernel's page cache of this mount still holds what
 *                  was lost: kill every process that uses the mount, unmount it, and mount
 *                  again (what spec/power/support.lua does).
 *   fail-fsync N   the next N fsyncs (of files or directories) fail with EIO; what they
 *                  would have made durable stays unsynced
 *   full B         a write that would grow the files past B bytes in all (their sizes
 *                  added up) fails with ENOSPC: a full disk; "full +B": B bytes more
 *                  than they hold now
 *   fsync-us N     every fsync takes N microseconds (0 at the start), with the lock let
 *                  go: other operations, and a power loss, happen meanwhile, as on a disk
 *   clear          no failing fsyncs, no limit
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE /* RENAME_NOREPLACE, RENAME_EXCHANGE */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "testing/faultfs.h"

#define CTL_PATH "/.faultfs"
#define CTL_FH UINT64_MAX
#define SYNC_BIT (UINT64_C(1) << 32)

static struct faultfs fs_state = {.root = -1, .limit = -1};
static struct faultfs *const fs = &fs_state;
/* Held by every operation: they run one at a time, so a command falls between two. */
static pthread_mutex_t fs_lock = PTHREAD_MUTEX_INITIALIZER;

static int fh_fd(const struct fuse_file_info *fi)
{
    return (int)(fi->fh & 0xffffffffu);
}

static bool is_ctl(const char *path)
{
    return strcmp(path, CTL_PATH) == 0;
}

/* The grave is the daemon's, not the mount's. */
static bool hidden(const char *path)
{
    const char *rel = faultfs_rel(path);
    size_t n = strlen(FAULTFS_GRAVE);
    return strncmp(rel, FAULTFS_GRAVE, n) == 0 && (rel[n] == '\0' || rel[n] == '/');
}

static int ffs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        memset(st, 0, sizeof *st);
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        return 0;
    }
    if (fs->dead) {
        return -EIO;
    }
    if (fi != NULL && fi->fh != CTL_FH) {
        return fstat(fh_fd(fi), st) == 0 ? 0 : -errno;
    }
    if (hidden(path)) {
        return -ENOENT;
    }
    return fstatat(fs->root, faultfs_rel(path), st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int ffs_readdir(const char *path,
                       void *buf,
                       fuse_fill_dir_t fill,
                       off_t off,
                       struct fuse_file_info *fi,
                       enum fuse_readdir_flags flags)
{
    (void)off;
    (void)fi;
    (void)flags;
    if (fs->dead) {
        return -EIO;
    }
    int fd = openat(fs->root, faultfs_rel(path), O_RDONLY | O_DIRECTORY);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int err = errno;
        if (fd >= 0) {
            close(fd);
        }
        return -err;
    }
    bool top = strcmp(faultfs_rel(path), ".") == 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!(top && strcmp(de->d_name, FAULTFS_GRAVE) == 0)) {
            fill(buf, de->d_name, NULL, 0, 0);
        }
    }
    closedir(d);
    return 0;
}

static int ffs_mkdir(const char *path, mode_t mode)
{
    if (fs->dead) {
        return -EIO;
    }
    if (mkdirat(fs->root, faultfs_rel(path), mode) != 0) {
        return -errno;
    }
    return faultfs_journal(fs, FFS_MKDIR, faultfs_rel(path), NULL, NULL);
}

static int ffs_rmdir(const char *path)
{
    if (fs->dead) {
        return -EIO;
    }
    if (unlinkat(fs->root, faultfs_rel(path), AT_REMOVEDIR) != 0) {
        return -errno;
    }
    return faultfs_journal(fs, FFS_RMDIR, faultfs_rel(path), NULL, NULL);
}

static int64_t size_at(const char *rel)
{
    struct stat st;
    return fstatat(fs->root, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) ? st.st_size
                                                                                        : 0;
}

static int ffs_unlink(const char *path)
{
    if (fs->dead) {
        return -EIO;
    }
    const char *rel = faultfs_rel(path);
    int64_t bytes = size_at(rel);
    char grave[64];
    int rv = faultfs_bury(fs, rel, grave, sizeof grave);
    if (rv != 0) {
        return rv;
    }
    fs->total -= bytes;
    return faultfs_journal(fs, FFS_UNLINK, rel, NULL, grave);
}

/* Both in the same directory? */
static bool same_dir(const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    return sa - a == sb - b && strncmp(a, b, (size_t)(sa - a)) == 0;
}

static int ffs_rename(const char *from, const char *to, unsigned int flags)
{
    if (fs->dead) {
        return -EIO;
    }
    if (flags & RENAME_EXCHANGE) {
        return -EINVAL;
    }
    struct stat st;
    const char *rf = faultfs_rel(from), *rt = faultfs_rel(to);
    if (fstatat(fs->root, rf, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return -errno;
    }
    if (S_ISDIR(st.st_mode) || !same_dir(from, to)) {
        return -EXDEV; /* not modeled: see the top of this file */
    }
    char grave[64];
    bool replaces = fstatat(fs->root, rt, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (replaces) {
        if (flags & RENAME_NOREPLACE) {
            return -EEXIST;
        }
        if (S_ISDIR(st.st_mode)) {
            return -EISDIR;
        }
        fs->total -= st.st_size;
        int rv = faultfs_bury(fs, rt, grave, sizeof grave);
        if (rv != 0) {
            return rv;
        }
    }
    if (renameat(fs->root, rf, fs->root, rt) != 0) {
        return -errno;
    }
    return faultfs_journal(fs, FFS_RENAME, rf, rt, replaces ? grave : NULL);
}

/* The backing file is opened read-write whatever the caller asked (faultfs reads the
 * durable bytes back through it), never synchronously (faultfs decides what is durable),
 * never appending (FUSE gives every write its offset). */
static int backing_flags(int flags)
{
    return (flags &
            ~(O_ACCMODE | O_SYNC | O_DSYNC | O_APPEND | O_DIRECT | O_TRUNC | O_CREAT | O_EXCL)) |
           O_RDWR;
}

static uint64_t make_fh(int fd, int flags)
{
    return (uint64_t)fd | ((flags & (O_SYNC | O_DSYNC)) ? SYNC_BIT : 0);
}

static int ffs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fs->dead) {
        return -EIO;
    }
    const char *rel = faultfs_rel(path);
    struct stat st;
    bool fresh = fstatat(fs->root, rel, &st, AT_SYMLINK_NOFOLLOW) != 0;
    int fd = openat(fs->root, rel, backing_flags(fi->flags) | O_CREAT, mode);
    if (fd < 0) {
        return -errno;
    }
    int rv = fresh ? faultfs_journal(fs, FFS_CREATE, rel, NULL, NULL) : 0;
    if (rv != 0) {
        close(fd);
        return rv;
    }
    fi->fh = make_fh(fd, fi->flags);
    return 0;
}

static int do_truncate(int fd, off_t size)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    int rv = faultfs_before_write(fs, fd, size, -1);
    if (rv != 0) {
        return rv;
    }
    if (ftruncate(fd, size) != 0) {
        return -errno;
    }
    fs->total += size - st.st_size;
    return 0;
}

static int ffs_open(const char *path, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        fi->fh = CTL_FH;
        fi->direct_io = 1; /* its reads are made at each read, never cached */
        return 0;
    }
    if (fs->dead) {
        return -EIO;
    }
    int fd = openat(fs->root, faultfs_rel(path), backing_flags(fi->flags));
    if (fd < 0) {
        return -errno;
    }
    if (fi->flags & O_TRUNC) {
        int rv = do_truncate(fd, 0);
        if (rv != 0) {
            close(fd);
            return rv;
        }
    }
    fi->fh = make_fh(fd, fi->flags);
    return 0;
}

static int ffs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        return 0; /* `>` truncates before it writes a command */
    }
    if (fs->dead) {
        return -EIO;
    }
    if (fi != NULL) {
        return do_truncate(fh_fd(fi), size);
    }
    int fd = openat(fs->root, faultfs_rel(path), O_RDWR);
    if (fd < 0) {
        return -errno;
    }
    int rv = do_truncate(fd, size);
    close(fd);
    return rv;
}

static int ffs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    if (fi->fh == CTL_FH) {
        return faultfs_ctl_read(fs, buf, size, off);
    }
    if (fs->dead) {
        return -EIO;
    }
    ssize_t n = pread(fh_fd(fi), buf, size, off);
    return n >= 0 ? (int)n : -errno;
}

static int ffs_write(const char *path,
                     const char *buf,
                     size_t size,
                     off_t off,
                     struct fuse_file_info *fi)
{
    (void)path;
    if (fi->fh == CTL_FH) {
        return faultfs_ctl_write(fs, buf, size);
    }
    if (fs->dead) {
        return -EIO;
    }
    int fd = fh_fd(fi);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    int64_t growth = off + (off_t)size > st.st_size ? off + (off_t)size - st.st_size : 0;
    if (fs->limit >= 0 && growth > 0 && fs->total + growth > fs->limit) {
        fs->st.enospc++;
        return -ENOSPC;
    }
    int rv = faultfs_before_write(fs, fd, off, (off_t)size);
    if (rv != 0) {
        return rv;
    }
    ssize_t n = pwrite(fd, buf, size, off);
    if (n < 0) {
        return -errno;
    }
    if (fi->fh & SYNC_BIT) {
        faultfs_synced_write(fs, fd, buf, (size_t)n, off);
    }
    fs->total += growth;
    fs->st.writes++;
    return (int)n;
}

/* An fsync in two steps: it starts (a failure asked for by fail-fsync, or a dead file
 * system, ends it there), takes fs->fsync_us with the lock released (so that other
 * operations, and a power loss, go on meanwhile), and, unless the power was lost in
 * between, makes durable what the file or directory holds when it ends. */
static int fsync_begin(void)
{
    if (fs->dead) {
        return -EIO;
    }
    if (fs->fail_fsyncs > 0) {
        fs->fail_fsyncs--;
        fs->st.fsyncs_failed++;
        fprintf(stderr, "faultfs: an fsync fails with EIO (%u more to fail)\n", fs->fail_fsyncs);
        return -EIO;
    }
    return 0;
}

static int fsync_wait(void)
{
    unsigned us = fs->fsync_us;
    if (us > 0) {
        pthread_mutex_unlock(&fs_lock);
        usleep(us);
        pthread_mutex_lock(&fs_lock);
    }
    if (fs->dead) {
        return -EIO; /* the power went while it ran: nothing of it is durable */
    }
    fs->st.fsyncs++;
    return 0;
}

static int ffs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync; /* the size is data too: fdatasync makes it durable as well */
    if (fi->fh == CTL_FH) {
        return 0;
    }
    int rv = fsync_begin();
    rv = rv != 0 ? rv : fsync_wait();
    if (rv == 0) {
        faultfs_file_synced(fs, fh_fd(fi));
    }
    return rv;
}

static int ffs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    (void)fi;
    int rv = fsync_begin();
    rv = rv != 0 ? rv : fsync_wait();
    return rv != 0 ? rv : faultfs_dir_synced(fs, faultfs_rel(path));
}

static int ffs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    if (fi->fh != CTL_FH) {
        close(fh_fd(fi));
    }
    return 0;
}

static int ffs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    if (fs->dead) {
        return -EIO;
    }
    if (fstatvfs(fs->root, sv) != 0) {
        return -errno;
    }
    if (fs->limit >= 0) {
        int64_t room = fs->limit > fs->total ? fs->limit - fs->total : 0;
        sv->f_bfree = sv->f_bavail = (fsblkcnt_t)room / sv->f_bsize;
    }
    return 0;
}

static int ffs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    (void)fi;
    if (fs->dead) {
        return -EIO;
    }
    return fchmodat(fs->root, faultfs_rel(path), mode, 0) == 0 ? 0 : -errno;
}

static int ffs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if (fs->dead) {
        return -EIO;
    }
    if (fi != NULL && fi->fh != CTL_FH) {
        return futimens(fh_fd(fi), tv) == 0 ? 0 : -errno;
    }
    return utimensat(fs->root, faultfs_rel(path), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static void *ffs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->hard_remove = 1; /* unlink is ours to model: no .fuse_hidden files */
    cfg->direct_io = 0;   /* LMDB reads its data file through mmap */
    cfg->kernel_cache = 0;
    return NULL;
}

/* Every operation under fs_lock (fsync and fsyncdir let it go while they take time). */
#define LOCKED(name, params, ...)         \
    static int locked_##name params       \
    {                                     \
        pthread_mutex_lock(&fs_lock);     \
        int rv = ffs_##name(__VA_ARGS__); \
        pthread_mutex_unlock(&fs_lock);   \
        return rv;                        \
    }
LOCKED(getattr, (const char *p, struct stat *st, struct fuse_file_info *fi), p, st, fi)
LOCKED(readdir,
       (const char *p,
        void *b,
        fuse_fill_dir_t f,
        off_t o,
        struct fuse_file_info *fi,
        enum fuse_readdir_flags fl),
       p,
       b,
       f,
       o,
       fi,
       fl)
LOCKED(mkdir, (const char *p, mode_t m), p, m)
LOCKED(rmdir, (const char *p), p)
LOCKED(unlink, (const char *p), p)
LOCKED(rename, (const char *a, const char *b, unsigned int fl), a, b, fl)
LOCKED(create, (const char *p, mode_t m, struct fuse_file_info *fi), p, m, fi)
LOCKED(open, (const char *p, struct fuse_file_info *fi), p, fi)
LOCKED(truncate, (const char *p, off_t o, struct fuse_file_info *fi), p, o, fi)
LOCKED(read, (const char *p, char *b, size_t n, off_t o, struct fuse_file_info *fi), p, b, n, o, fi)
LOCKED(write,
       (const char *p, const char *b, size_t n, off_t o, struct fuse_file_info *fi),
       p,
       b,
       n,
       o,
       fi)
LOCKED(fsync, (const char *p, int d, struct fuse_file_info *fi), p, d, fi)
LOCKED(fsyncdir, (const char *p, int d, struct fuse_file_info *fi), p, d, fi)
LOCKED(release, (const char *p, struct fuse_file_info *fi), p, fi)
LOCKED(statfs, (const char *p, struct statvfs *sv), p, sv)
LOCKED(chmod, (const char *p, mode_t m, struct fuse_file_info *fi), p, m, fi)
LOCKED(utimens, (const char *p, const struct timespec tv[2], struct fuse_file_info *fi), p, tv, fi)

static const struct fuse_operations ops = {
    .init = ffs_init,
    .getattr = locked_getattr,
    .readdir = locked_readdir,
    .mkdir = locked_mkdir,
    .rmdir = locked_rmdir,
    .unlink = locked_unlink,
    .rename = locked_rename,
    .create = locked_create,
    .open = locked_open,
    .truncate = locked_truncate,
    .read = locked_read,
    .write = locked_write,
    .fsync = locked_fsync,
    .fsyncdir = locked_fsyncdir,
    .release = locked_release,
    .statfs = locked_statfs,
    .chmod = locked_chmod,
    .utimens = locked_utimens,
};

/* --watch: once the spec's process is gone, faultfs ends (and so unmounts) by itself. */
static void *watch_main(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;
    while (kill(pid, 0) == 0 || errno == EPERM) {
        usleep(200 * 1000);
    }
    fprintf(stderr, "faultfs: process %ld is gone: unmounting\n", (long)pid);
    kill(getpid(), SIGTERM);
    return NULL;
}

int main(int argc, char **argv)
{
    pid_t watch = 0;
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "--watch") == 0) {
        watch = (pid_t)atol(argv[2]);
        a = 3;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: faultfs [--watch PID] BACKING MOUNTPOINT\n");
        return 2;
    }
    fs->root = open(argv[a], O_RDONLY | O_DIRECTORY);
    if (fs->root < 0) {
        fprintf(stderr, "faultfs: %s: %s\n", argv[a], strerror(errno));
        return 1;
    }
    faultfs_clear_grave(fs);
    pthread_t t;
    if (watch > 0 && pthread_create(&t, NULL, watch_main, (void *)(intptr_t)watch) != 0) {
        fprintf(stderr, "faultfs: cannot start the watcher\n");
        return 1;
    }
    static char foreground[] = "-f", opt[] = "-o",
                options[] = "fsname=faultfs,subtype=faultfs,auto_unmount,max_idle_threads=8";
    char *fargv[] = {argv[0], foreground, opt, options, argv[a + 1], NULL};
    return fuse_main(5, fargv, &ops, NULL);
}
