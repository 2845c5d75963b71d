/*
 * Backup files (RAFT.BACKUP, `luaraft restore`): one snapshot file (snapfile.h) behind a
 * small header that names the log index and term it covers, which a snapshot file keeps
 * only in its name, so that a backup can be renamed, copied and moved anywhere and still
 * restore to the same place in the log. The script's identity is in the snapshot's own
 * header.
 *
 * Layout (integers big-endian): magic "LRBACKUP" (8 bytes), version (u32, 1), index
 * (u64), term (u64), the snapshot file's length (u64), CRC-32C of the 36 bytes before it
 * (u32); then the snapshot file, byte for byte (with its own trailer and checksum).
 *
 * Pure POSIX file IO on the calling thread, for a worker thread or a command-line tool:
 * each function reads or writes whole files.
 */
#ifndef LUARAFT_STORE_BACKUPFILE_H
#define LUARAFT_STORE_BACKUPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"
#include "store/snapfile.h"

enum {
    BACKUPFILE_HEADER_BYTES = 8 + 4 + 8 + 8 + 8 + 4,
};

/* What a backup holds. */
struct backupfile_info
{
    raft_index index;
    raft_term term;
    uint64_t snapshot_bytes; /* the snapshot file's length */
    struct snapfile_info snap;
};

/*
 * Writes the snapshot file snap_path (of index and term) as a backup at dst: to a
 * temporary name beside it, fsynced, renamed, the directory fsynced. *bytes gets the
 * backup's length. Returns 0, or a SNAPFILE_E* code with the reason in errmsg (the
 * snapshot is verified first: a corrupt one is not backed up).
 */
int backupfile_write(const char *snap_path,
                     raft_index index,
                     raft_term term,
                     const char *dst,
                     uint64_t *bytes,
                     char *errmsg,
                     size_t errmsg_size);

/*
 * Puts the snapshot of the backup at path into the data directory dir under its
 * snapshot name (snap-<index>-<term>.lrs), durably, and checks it there whole (header,
 * trailer, checksum; a bad one is removed again). *out gets what the backup holds.
 * Returns 0, or a SNAPFILE_E* code with the reason in errmsg.
 */
int backupfile_restore(const char *path,
                       const char *dir,
                       struct backupfile_info *out,
                       char *errmsg,
                       size_t errmsg_size);

#endif
