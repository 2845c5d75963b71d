/*
 * What the snapshot file code shares between its files: the names of the files in a
 * snapshot directory, and the file IO helpers. snapfile.c writes and reads one file; snapfile_dir.c
 * names files and finds, prunes and cleans them up in a directory; script_identity.c encodes the
 * identity the header records.
 *
 * Names (listed in snapfile.h): snap-<index>-<term>.lrs in decimal; the temporary name adds
 * ".tmp". Only names that print back exactly the same are taken as ours, so "snap-01-2.lrs"
 * is ignored, and snapfile_cleanup never removes a file it does not know.
 */
#ifndef LUARAFT_STORE_SNAPFILE_INTERNAL_H
#define LUARAFT_STORE_SNAPFILE_INTERNAL_H

#define SNAPFILE_PREFIX "snap-"
#define SNAPFILE_SUFFIX ".lrs"
#define SNAPFILE_TMP_SUFFIX ".tmp"
/* The transport's name for a snapshot being received (src/peer/snapshot_recv.c,
 * snap_recv_begin). */
#define SNAPFILE_INCOMING_PREFIX "incoming-"
#define SNAPFILE_INCOMING_SUFFIX ".part"

#include <stddef.h>
#include <sys/types.h>

/* Helpers snapfile.c shares with backupfile.c. Each returns 0 or SNAPFILE_EIO (errno says
 * why); snapfile_read_all also SNAPFILE_ECORRUPT when the file ends early. */
void snapfile_errmsg(char *errmsg, size_t errmsg_size, const char *what, const char *path);
int snapfile_write_all(int fd, const void *data, size_t len);
int snapfile_read_all(int fd, void *buf, size_t len, off_t offset);
int snapfile_fsync_dir(const char *dir);

#endif
