/*
 * faultfs (test-only): a FUSE file system over a backing directory that forgets, on
 * command, everything that was not made durable. See faultfs.c for what it models and how
 * it is driven; this header is what its two halves share.
 *
 * The model: every operation is carried out on the backing directory at once (so reads,
 * mmap and directory listings see it), and what a power loss would take back is kept in
 * this process's memory as an undo record:
 *   - per file (by inode): its durable size and the durable bytes of every page written
 *     since its last fsync/fdatasync, saved before the first such write;
 *   - per directory: the create, mkdir, unlink, rmdir and rename done in it since its last
 *     fsync (an unlinked or overwritten file is moved into a grave, so it can come back).
 * A power loss undoes all of it at one instant (under the lock that every operation
 * holds): directory changes newest first, then every file's pages and size.
 * What is left in the backing directory is exactly what was durable.
 */
#ifndef LUARAFT_TESTING_FAULTFS_H
#define LUARAFT_TESTING_FAULTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FAULTFS_PAGE 4096
/* Hidden in the backing root: where unlinked and overwritten files wait. */
#define FAULTFS_GRAVE ".faultfs-grave"

enum faultfs_op { FFS_CREATE, FFS_MKDIR, FFS_UNLINK, FFS_RMDIR, FFS_RENAME };

struct faultfs_stats
{
    uint64_t writes, fsyncs, fsyncs_failed, enospc;
    uint64_t lost_pages, lost_files, lost_entries; /* what the last power loss took back */
};

struct faultfs
{
    int root;             /* the backing directory */
    bool dead;            /* after a power loss: every operation fails with EIO */
    unsigned fail_fsyncs; /* the next this many fsyncs fail with EIO */
    unsigned fsync_us;    /* how long each fsync takes (fsync-us) */
    int64_t limit;        /* writes that grow the files past this many bytes: ENOSPC */
    int64_t total;        /* the files' sizes added up, kept while limit >= 0 */
    uint64_t grave_seq;
    struct faultfs_file *files; /* files with unsynced writes */
    struct faultfs_entry *journal;
    size_t journal_n, journal_cap;
    struct faultfs_stats st;
};

/* The backing path of a FUSE path ("/" -> ".", "/a/b" -> "a/b"). */
const char *faultfs_rel(const char *path);

/* Called before fd's file is changed over [off, off + len) (a write, or len < 0: a
 * truncate to off): saves the durable bytes that change. 0 or -errno. */
int faultfs_before_write(struct faultfs *fs, int fd, off_t off, off_t len);
/* After a write of buf through an O_SYNC/O_DSYNC descriptor: those bytes are durable. */
void faultfs_synced_write(struct faultfs *fs, int fd, const char *buf, size_t len, off_t off);
/* fsync/fdatasync of a file: everything written to it is durable. */
void faultfs_file_synced(struct faultfs *fs, int fd);
/* fsync of the directory rel: its entries are durable. 0 or -errno. */
int faultfs_dir_synced(struct faultfs *fs, const char *rel);

/* Records a directory change done on the backing directory (rel, and rel2 for a rename;
 * grave: where the unlinked or overwritten file now is, or NULL). 0 or -errno. */
int faultfs_journal(struct faultfs *fs,
                    enum faultfs_op op,
                    const char *rel,
                    const char *rel2,
                    const char *grave);
/* Moves rel into the grave; its grave name into out. 0 or -errno. */
int faultfs_bury(struct faultfs *fs, const char *rel, char *out, size_t out_size);

/* The control file: a command written (size, or -errno), the counters read. */
int faultfs_ctl_write(struct faultfs *fs, const char *buf, size_t size);
int faultfs_ctl_read(struct faultfs *fs, char *buf, size_t size, off_t off);

/* Takes back everything not durable, then the file system is dead. */
void faultfs_power_loss(struct faultfs *fs);
/* The files' sizes added up (the grave's not counted). */
int64_t faultfs_total_bytes(struct faultfs *fs);
/* Empties the grave (at start: a grave left by a killed daemon holds nothing durable). */
void faultfs_clear_grave(struct faultfs *fs);

#endif
