/*
 * Snapshot files: snap-<index>-<term>.lrs in the data directory, each written to a
 * temporary name, fsynced, renamed, and the directory fsynced, so that a crash leaves
 * either the whole new file or none of it. The file ends in a trailer with the length and
 * a CRC-32C of the body, so a torn or corrupt file is recognised and skipped.
 *
 * Names in the data directory, all with <index>, <term>, <peer> and <seq> in plain
 * decimal (what %llu prints: no sign, no leading zero):
 *   snap-<index>-<term>.lrs       a snapshot (snapfile_commit, or a received file the
 *                                 node renamed to snapfile_path's name)
 *   snap-<index>-<term>.lrs.tmp   a snapshot being written (snapfile_begin)
 *   incoming-<peer>-<seq>.part    a snapshot being received from node <peer>, <seq>
 *                                 counting the transport's receptions since it started
 *                                 (src/peer/transport.c, conn_chunk)
 * The last two are temporaries: a crash may leave them behind, and snapfile_cleanup
 * removes them.
 *
 * Pure POSIX file IO on the calling thread (the node calls it from its snapshot child
 * process or its fsm thread); no libuv.
 */
#ifndef LUARAFT_STORE_SNAPFILE_H
#define LUARAFT_STORE_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

enum {
    SNAPFILE_EIO = -300,      /* errno says why; see errmsg */
    SNAPFILE_ECORRUPT = -301, /* bad trailer or checksum */
    SNAPFILE_ENOENT = -302,   /* no valid snapshot file */
};

struct snapfile_writer
{
    int fd;
    uint32_t crc;
    uint64_t bytes;
    raft_index index;
    raft_term term;
    char tmp_path[512];
    char path[512];
    char dir[512];
};

/* Starts writing the snapshot at (index, term) in dir, under a temporary name. */
int snapfile_begin(struct snapfile_writer *w,
                   const char *dir,
                   raft_index index,
                   raft_term term,
                   char *errmsg,
                   size_t errmsg_size);
int snapfile_write(struct snapfile_writer *w, const void *data, size_t len);
/*
 * Trailer, fsync, rename, fsync of the directory. Errors: SNAPFILE_EIO; when the directory
 * fsync is what failed, the whole file is already under its final name but the rename may
 * not survive a crash.
 */
int snapfile_commit(struct snapfile_writer *w, char *errmsg, size_t errmsg_size);
/* Removes the temporary file. */
void snapfile_abort(struct snapfile_writer *w);

/*
 * The newest valid snapshot in dir: its index, term and path. Errors: SNAPFILE_ENOENT;
 * SNAPFILE_EIO when dir cannot be read or a path does not fit path_size.
 */
int snapfile_latest(const char *dir,
                    raft_index *index,
                    raft_term *term,
                    char *path,
                    size_t path_size);

/*
 * The final path of the snapshot at (index, term) in dir, into out[0, size); creates and
 * checks nothing. Errors: SNAPFILE_EIO with errno ENAMETOOLONG when it does not fit.
 */
int snapfile_path(const char *dir, raft_index index, raft_term term, char *out, size_t size);

/*
 * Deletes the snapshot files whose index is below index, written here or received alike
 * (both go by the snap-<index>-<term>.lrs name), and keeps every other file: the caller
 * passes the index of a snapshot it has made durable, so the newest one stays. Temporaries
 * are left alone, because one may belong to a snapshot being written or received right
 * now; snapfile_cleanup removes the ones a crash left. A file that cannot be deleted stays
 * until the next prune.
 */
void snapfile_prune(const char *dir, raft_index index);

/*
 * Removes the temporaries (see the names above) a crash left in dir, and returns how many
 * it removed, or SNAPFILE_EIO (errno says why) when dir cannot be read or one of them
 * cannot be removed (the others are still removed). A directory that does not exist has
 * none: 0.
 *
 * It cannot tell a leftover from a file a live process is writing, so call it once at
 * node start-up, before the node takes, receives or installs any snapshot, and never
 * with a second process in the same directory.
 */
int snapfile_cleanup(const char *dir);

/* Verifies a whole file's trailer and checksum; *body_bytes gets the body length. */
int snapfile_verify(const char *path, uint64_t *body_bytes);

#endif
