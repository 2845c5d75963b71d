/*
 * Crash points: TEST ONLY. A named place in the node where a test can make the process
 * die at once, as kill -9 would at that instruction (spec/power/crash_points_spec.lua).
 *
 *   LUARAFT_CRASH_POINT=NAME      the first time the node passes NAME, it dies
 *   LUARAFT_CRASH_POINT=NAME:N    the N-th time (N >= 1)
 *
 * The variable is read once, by crash_point_init() at the start of `luaraft node`. When
 * it is unset, crash_point() costs one load and one predictable branch, and logs nothing.
 * When it is set, the node logs once that it is armed, and at the N-th hit writes one
 * line "crash point NAME: hit N, killing the node" to stderr and raises SIGKILL: no
 * atexit handler, no buffered output, no LMDB close runs, and the page cache keeps every
 * write(2) already made (what kill -9 keeps). Hits are counted across every thread and
 * across the forked snapshot child (the counter is in shared memory); a hit in the child
 * kills the node first, then the child, so that a crash in the middle of a snapshot file
 * is the node's crash, as it would be if the node wrote the file itself.
 *
 * The points (NAME: where; what a crash there models):
 *
 *   store.before_commit       store_writer.c, a batch's LMDB transaction is built, not
 *                             committed: the batch's entries and hard state never reached
 *                             the disk; nothing of it was acknowledged.
 *   store.after_commit        store_writer.c, the transaction is committed (fsynced), its
 *                             completion not yet handed to the loop: durable, but no peer
 *                             or client was told.
 *   node.after_hard_state     durability.c, a persist holding a new term or vote is
 *                             durable; the core has not learned it, so the vote reply or
 *                             the campaign it allows was not sent.
 *   snapshot.mid_write        snapfile.c, each write into a snapshot's temporary file
 *                             (the header is the first): a half-written file is left.
 *   snapshot.after_rename     snapfile.c, the complete file renamed into place, the
 *                             directory not yet fsynced; the store does not know it yet.
 *   snapshot.before_compact   snapshots.c, the core has taken the snapshot; the store has
 *                             neither recorded it nor compacted the log behind it.
 *   recv.mid_chunk            snapshot_recv.c, each chunk of an InstallSnapshot written
 *                             to its .part file: a partial received file is left.
 *   recv.before_install       snapshot_recv.c, the received file is complete, fsynced and
 *                             verified, not yet renamed into place nor recorded.
 *   recv.after_rename         runtime_io.c, the received file renamed into place, the
 *                             directory not fsynced, the install not recorded in the store.
 *   members.after_propose     members_change.c, the leader appended a membership change
 *                             (RAFT.ADD / RAFT.REMOVE) and sent it; not committed.
 *   apply.before_reply        apply.c, a write is applied on the node that holds its
 *                             client; its reply not yet sent.
 *
 * A kill -9 keeps the page cache, so these points find ordering and atomicity bugs (a
 * torn or half-installed snapshot, a vote sent before it was recorded, a log compacted
 * before its snapshot was recorded); a missing fsync is for the power-loss spec
 * (spec/power/power_loss_spec.lua) to find.
 */
#ifndef LUARAFT_UTIL_CRASH_POINT_H
#define LUARAFT_UTIL_CRASH_POINT_H

#include <stdbool.h>

/* The armed point's name, or NULL (unset: every crash_point() does nothing). */
extern const char *crash_point_armed;

/* Reads LUARAFT_CRASH_POINT (once, before any thread starts). Returns false, with a line
 * on stderr, when it is set but malformed. */
bool crash_point_init(void);

/* Counts a hit of the armed point name; dies at its N-th. Any thread, or the snapshot
 * child. */
void crash_point_hit(const char *name);

#define crash_point(name)                                     \
    do {                                                      \
        if (__builtin_expect(crash_point_armed != NULL, 0)) { \
            crash_point_hit(name);                            \
        }                                                     \
    } while (0)

#endif
