/*
 * A data directory found damaged at start-up, recovered from the leader (issue 11, part
 * 4): a stored log entry or meta record that fails its checksum, LMDB pages that LMDB
 * reports damaged or that crash it, a snapshot file newer than any valid one.
 *
 * What happens. Before the store is opened, store_verify() reads every record in a child
 * process (a damaged page kills the child, not the node) and reports the hard state (term
 * and vote) if it verifies. When anything is damaged:
 *   1. the marker DIR/recovering is written (fsynced) with that term and vote;
 *   2. data.mdb, lock.mdb and every snapshot file move to DIR/corrupt-<ms>/ (evidence is
 *      never deleted);
 *   3. the node opens a fresh store, records the term and vote from the marker, and boots
 *      as a member with an empty log and raft_boot.recover_term = that term. The leader
 *      finds its log empty and sends entries or a snapshot (InstallSnapshot);
 *   4. once the core says it holds the leader's log again, node.c removes the marker.
 * A restart during recovery finds the marker and the fresh store: it keeps recovering
 * (recover_term from the marker), and takes the marker's term and vote if the fresh store
 * had not recorded them yet.
 *
 * Why it is safe. Election safety: the node keeps its term and vote, so it never votes
 * twice in a term; if the hard state itself does not verify, it cannot know which vote
 * it gave, and it refuses to start (the one case left to the operator: replace the node).
 * Commitment: the danger of a node that lost entries it acknowledged is that those
 * acknowledgments helped commit entries now held by one node fewer; if it then voted on
 * its shorter log, a candidate missing a committed entry could win with its vote. So a
 * recovering node grants no vote and no pre-vote and never campaigns, exactly as if it
 * were down, until it holds, durably, an entry of a leader of a later term than the one
 * it lost its log in, up to that leader's commit index (raft.h, raft_boot.recover_term).
 * That leader was elected without this node's vote, so by leader completeness (paper
 * 5.4.3) its log held every entry committed before its term, this node's old
 * acknowledgments included, and those entries come before its own. Acknowledgments the
 * node sends while it recovers are of entries it holds durably, as always.
 * What it cannot undo: entries committed with its help had one copy fewer from the moment
 * the disk lost them; a second failure before it catches up can lose them (the same as
 * losing a disk in any Raft cluster; etcd makes the operator re-add such a member).
 * The cost: while the leader stays the one of the term it lost its log in, the node does
 * not vote (the next election ends it, and so does RAFT.TRANSFER to another node); until
 * then the cluster tolerates one failure fewer. A damaged snapshot file whose log still
 * reaches back to index 1 could be replayed instead; it is recovered the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/runtime.h"
#include "store/store_verify.h"
#include "util/log.h"

static const char marker_name[] = "recovering";

/* The marker's term and vote; *has false when there is none. */
static void read_marker(const char *dir, bool *has, raft_term *term, raft_id *vote)
{
    char *text = config_read_named(dir, marker_name);
    unsigned long long t = 0, v = 0;
    *has = text != NULL && sscanf(text, "term %llu vote %llu", &t, &v) == 2;
    free(text);
    *term = t;
    *vote = v;
}

/* A snapshot file in dir with an index above `above`: one snapfile_latest passed over as
 * damaged (it logged why). */
static bool damaged_snapshot(const char *dir, raft_index above, char *path, size_t size)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return false;
    }
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        raft_index index;
        raft_term term;
        if (snapfile_is_name(de->d_name, &index, &term) && index > above) {
            snprintf(path, size, "%s/%s", dir, de->d_name);
            found = true;
        }
    }
    closedir(d);
    return found;
}

/* data.mdb, lock.mdb and every snapshot file into dir/corrupt-<ms>/, named in where. */
static int move_aside(struct runtime *rt, char *where, size_t size)
{
    const char *dir = rt->c->data_dir;
    snprintf(where, size, "%s/corrupt-%" PRIu64, dir, rt->io.wall_ms(rt));
    if (mkdir(where, 0755) != 0 && errno != EEXIST) {
        return -errno;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    int rv = 0;
    struct dirent *de;
    while (rv == 0 && (de = readdir(d)) != NULL) {
        raft_index index;
        raft_term term;
        if (strcmp(de->d_name, "data.mdb") != 0 && strcmp(de->d_name, "lock.mdb") != 0 &&
            !snapfile_is_name(de->d_name, &index, &term)) {
            continue;
        }
        char from[node_path_bytes_max + 320], to[node_path_bytes_max + 640];
        snprintf(from, sizeof from, "%s/%s", dir, de->d_name);
        snprintf(to, sizeof to, "%s/%s", where, de->d_name);
        rv = rename(from, to) == 0 ? 0 : -errno;
    }
    closedir(d);
    if (rv == 0) {
        rv = config_fsync_dir(where);
    }
    return rv != 0 ? rv : config_fsync_dir(dir);
}

/* The marker first: a crash after the move would otherwise leave a fresh store that has
 * forgotten the term and the vote. */
static int start_recovery(struct runtime *rt, struct runtime_recovery *out, const char *what)
{
    const char *dir = rt->c->data_dir;
    char text[96], where[node_path_bytes_max + 64];
    snprintf(text, sizeof text, "term %" PRIu64 " vote %" PRIu64, out->term, out->vote);
    int rv = config_write_named(dir, marker_name, text);
    if (rv != 0) {
        FAIL("cannot write %s/%s: %s", dir, marker_name, strerror(-rv));
    }
    rv = move_aside(rt, where, sizeof where);
    if (rv != 0) {
        FAIL("cannot move the damaged files of %s aside: %s", dir, strerror(-rv));
    }
    out->recover_term = out->term;
    lr_log(
        "the data directory %s is damaged (%s): its store and snapshot files are moved to "
        "%s; recovering from the leader: starting with an empty log in term %" PRIu64
        ", and neither voting nor campaigning until it holds the leader's log again",
        dir, what, where, out->term);
    return 0;
}

/* The verification reads the store without LMDB's lock file, and damage moves files: a
 * second process started on a directory a node runs from must stop before either. The
 * lock lives as long as the process: its descriptor stays open (not across exec; the
 * snapshot child closes its copy, src/fsm/worker.c, close_inherited_fds). */
static int lock_directory(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return 0; /* store_open says why it cannot make it */
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return 0;
}

int runtime_recover(struct runtime *rt, struct runtime_recovery *out)
{
    const char *dir = rt->c->data_dir;
    *out = (struct runtime_recovery){0};
    int locked = lock_directory(dir);
    if (locked != 0) {
        FAIL("cannot start on %s: %s", dir,
             locked == -EWOULDBLOCK ? "another process runs a node on it" : strerror(-locked));
    }
    bool has_marker;
    raft_term marker_term;
    raft_id marker_vote;
    read_marker(dir, &has_marker, &marker_term, &marker_vote);
    struct store_verify_report rep;
    uint64_t t0 = uv_hrtime();
    int rv;
    rv = store_verify(dir, rt->c->map_bytes, &rep);
    if (rv != 0) {
        FAIL("cannot verify the store in %s: %s", dir, strerror(-rv));
    }
    if (rep.verdict == STORE_VERIFY_OK) {
        lr_log("store: verified %" PRIu64 " records in %s in %.0f ms", rep.records, dir,
               (double)(uv_hrtime() - t0) / 1e6);
    }
    raft_index si = 0;
    raft_term st;
    char path[node_snap_path_bytes_max];
    bool valid = snapfile_latest(dir, &si, &st, path, sizeof path) == 0;
    bool snap_damaged = damaged_snapshot(dir, valid ? si : 0, path, sizeof path);
    bool store_damaged = rep.verdict == STORE_VERIFY_DAMAGED || rep.verdict == STORE_VERIFY_CRASHED;
    if (store_damaged) {
        lr_log("%s", rep.what);
    }
    if (store_damaged && !rep.has_hard_state) {
        FAIL(
            "the hard state (term and vote) in %s cannot be read, so this node cannot know "
            "which vote it gave and must not start: replace it (RAFT.REMOVE %" PRIu64
            " on the leader, move %s away, start it empty with --join, RAFT.ADD it)",
            dir, rt->c->id, dir);
    }
    out->term = rep.term;
    out->vote = rep.vote;
    if (has_marker && marker_term > out->term) {
        out->term = marker_term;
        out->vote = marker_vote;
    }
    if (store_damaged || (snap_damaged && rep.verdict != STORE_VERIFY_ABSENT)) {
        char what[sizeof rep.what + node_snap_path_bytes_max + 64];
        snprintf(what, sizeof what, "%s", store_damaged ? rep.what : "");
        if (snap_damaged) {
            snprintf(what + strlen(what), sizeof what - strlen(what),
                     "%ssnapshot file %s fails its checksum", store_damaged ? "; " : "", path);
        }
        return start_recovery(rt, out, what);
    }
    if (has_marker) {
        out->recover_term = marker_term;
        lr_log("still recovering from the leader (%s/%s, since term %" PRIu64
               "): not voting until it holds the leader's log again",
               dir, marker_name, marker_term);
    }
    return 0;
}
