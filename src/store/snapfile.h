/*
 * Snapshot files: snap-<index>-<term>.lrs in the data directory, each written to a
 * temporary name, fsynced, renamed, and the directory fsynced, so that a crash leaves
 * either the whole new file or none of it. The file starts with a header naming the
 * script whose state it holds (struct script_identity) and ends in a trailer with the
 * length and a CRC-32C of all before it, so a torn or corrupt file is recognised and
 * skipped (the layout is at the top of snapfile.c).
 *
 * Names in the data directory, all with <index>, <term>, <peer> and <seq> in plain
 * decimal (what %llu prints: no sign, no leading zero):
 *   snap-<index>-<term>.lrs       a snapshot (snapfile_commit, or a received file the
 *                                 node renamed to snapfile_path's name)
 *   snap-<index>-<term>.lrs.tmp   a snapshot being written (snapfile_begin)
 *   incoming-<peer>-<seq>.part    a snapshot being received from node <peer>, <seq>
 *                                 counting the transport's receptions since it started
 *                                 (src/peer/snapshot_recv.c, snap_recv_begin)
 * The last two are temporaries: a crash may leave them behind, and snapfile_cleanup
 * removes them.
 *
 * Pure POSIX file IO on the calling thread (the node calls it from its snapshot child
 * process or its fsm thread); no libuv.
 */
#ifndef LUARAFT_STORE_SNAPFILE_H
#define LUARAFT_STORE_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

enum {
    SNAPFILE_EIO = -300,      /* errno says why; see errmsg */
    SNAPFILE_ECORRUPT = -301, /* bad header, trailer or checksum */
    SNAPFILE_ENOENT = -302,   /* no valid snapshot file */
    SNAPFILE_EVERSION = -303, /* a format newer than this build reads */
};

/*
 * A script's identity (issue 7): the file name it was started with, without its
 * directory, and the BLAKE2b-256 hash of its content. The data directory records it
 * (store.h, the "script" meta record) and every snapshot file carries the identity of
 * the script whose state it holds, so that a node started with another script, or sent
 * another script's snapshot, refuses instead of replaying foreign state into it.
 *
 * It is defined here, with its encoding, because the snapshot format carries it; the
 * store records the same encoding.
 *
 * since: the log index from which this script runs, 0 for the script the data directory
 * was made with. Replicated script upgrades (issue 9) change the script at a log index:
 * the upgrade then records the new identity with since = that index (one store_write of
 * the same record, and the snapshots after it carry it), so an upgrade is an update of
 * this record, not a new layout. Two identities are the same script when name and hash
 * match; since says only from when.
 */
enum {
    SCRIPT_NAME_BYTES_MAX = 255, /* a file name (NAME_MAX), NUL not included */
    SCRIPT_HASH_BYTES = 32,      /* BLAKE2b-256 */
    SCRIPT_HASH_HEX_BYTES = 2 * SCRIPT_HASH_BYTES + 1,
    /* since u64, hash length u8 and hash, name length u8 and name */
    SCRIPT_IDENTITY_BYTES_MAX = 8 + 1 + SCRIPT_HASH_BYTES + 1 + SCRIPT_NAME_BYTES_MAX,
};

struct script_identity
{
    raft_index since;
    char name[SCRIPT_NAME_BYTES_MAX + 1];
    unsigned char hash[SCRIPT_HASH_BYTES];
};

/* True when a and b name the same script: the same name and the same hash. */
bool script_identity_same(const struct script_identity *a, const struct script_identity *b);

/* The hash in lower-case hex, NUL-terminated. */
void script_identity_hex(const struct script_identity *id, char out[SCRIPT_HASH_HEX_BYTES]);

/* Encodes id (big-endian, as laid out above) into out, which holds at least
 * SCRIPT_IDENTITY_BYTES_MAX bytes; returns the length. */
size_t script_identity_encode(const struct script_identity *id, unsigned char *out);

/* Decodes exactly len bytes of that encoding. Returns 0, or -1 when they are not one. */
int script_identity_decode(const unsigned char *p, size_t len, struct script_identity *out);

/* The most bytes of a version 3 file's members record (see snapfile_begin_members), and of
 * a version 4 file's script text (fsm_script_bytes_max). */
enum { SNAPFILE_MEMBERS_BYTES_MAX = 4096, SNAPFILE_TEXT_BYTES_MAX = 16 * 1024 * 1024 };

struct snapfile_writer
{
    int fd;
    int version; /* 2; 3: the header has a members record; 4: and a script text */
    uint32_t crc;
    uint64_t bytes; /* written so far, the header included */
    raft_index index;
    raft_term term;
    char tmp_path[512];
    char path[512];
    char dir[512];
};

/*
 * Starts writing the snapshot at (index, term) in dir, under a temporary name, with the
 * header that records script (the identity of the script whose state follows).
 */
int snapfile_begin(struct snapfile_writer *w,
                   const char *dir,
                   raft_index index,
                   raft_term term,
                   const struct script_identity *script,
                   char *errmsg,
                   size_t errmsg_size);
/*
 * snapfile_begin, with a members record in the header (format version 3): at most
 * SNAPFILE_MEMBERS_BYTES_MAX bytes that the node reads back with snapfile_inspect (the
 * cluster's configuration as of index, with addresses). members_len 0: version 2.
 */
int snapfile_begin_members(struct snapfile_writer *w,
                           const char *dir,
                           raft_index index,
                           raft_term term,
                           const struct script_identity *script,
                           const void *members,
                           size_t members_len,
                           char *errmsg,
                           size_t errmsg_size);
/* What a header records: the script (always), members (members_len 0: none) and, once the
 * script was upgraded, its text (text_len 0: none), which makes the file version 4. */
struct snapfile_header
{
    const struct script_identity *script;
    const void *members;
    size_t members_len;
    const void *text;
    size_t text_len; /* at most SNAPFILE_TEXT_BYTES_MAX */
};

/* snapfile_begin with every record of h. */
int snapfile_begin_header(struct snapfile_writer *w,
                          const char *dir,
                          raft_index index,
                          raft_term term,
                          const struct snapfile_header *h,
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

/* Whether name is a snapshot file's ("snap-<index>-<term>.lrs"), with its index and term. */
bool snapfile_is_name(const char *name, raft_index *index, raft_term *term);

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

/*
 * Verifies a whole file's header, trailer and checksum; *body_bytes gets the length of
 * the body (the script's bytes, after the header). Reads the whole file: not for the
 * loop thread. Errors: SNAPFILE_ENOENT, SNAPFILE_EIO, SNAPFILE_ECORRUPT, SNAPFILE_EVERSION.
 */
int snapfile_verify(const char *path, uint64_t *body_bytes);

/* What a snapshot file's header and trailer say. */
struct snapfile_info
{
    int version;     /* 1: written before scripts were recorded (no identity); 2; 3; 4 */
    bool has_script; /* version 2 and later */
    struct script_identity script;
    bool has_members; /* version 3: the members record */
    size_t members_len;
    unsigned char members[SNAPFILE_MEMBERS_BYTES_MAX];
    bool has_text; /* version 4: the script's text, text_len bytes at text_offset */
    size_t text_len;
    uint64_t text_offset;
    uint64_t body_offset; /* where the script's bytes start */
    uint64_t body_bytes;
};

/*
 * Reads a file's header and trailer, not its body: a few hundred bytes, so the loop
 * thread may call it, but it checks no checksum (snapfile_verify does). Errors as
 * snapfile_verify's.
 */
int snapfile_inspect(const char *path, struct snapfile_info *out);

/* The script text of a version 4 file (info from snapfile_inspect, has_text) into a
 * malloc'd *text of info->text_len bytes, checked by nothing but the caller (hash it
 * against info->script, or snapfile_verify the file first). Errors: SNAPFILE_EIO,
 * SNAPFILE_ECORRUPT. */
int snapfile_script_text(const char *path, const struct snapfile_info *info, char **text);

/* A sentence for a SNAPFILE_E* code. */
const char *snapfile_strerror(int rv);

#endif
