/*
 * RAFT.BACKUP PATH: a consistent copy of the state machine at a log index, written where
 * the operator says (store/backupfile.h: a snapshot file behind a header with its index
 * and term). The backup holds every write this node knew committed when the command
 * arrived: the newest snapshot if it covers them, else one taken for it. The copy is made
 * off the loop thread (node_io.backup); while one runs, older snapshot files are kept,
 * since the copy may not have opened its file yet. `luaraft restore` seeds a data
 * directory from a backup.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/internal.h"
#include "util/assert.h"

struct backup_job
{
    struct backup_job *next;
    struct server_request *req;
    raft_index want; /* the commit index when asked: the snapshot must cover it */
    raft_index index;
    raft_term term;
    char path[node_snap_path_bytes_max];
};

static void start_copy(struct node *n, struct backup_job *job)
{
    job->index = n->snap.index;
    job->term = n->snap.term;
    n->bk.copying++;
    n->io->backup(n->io->arg, n->snap.path, job->index, job->term, job->path, job);
}

void backup_request(struct node *n, struct server_request *req, const char *path, size_t len)
{
    if (n->io->backup == NULL) {
        node_reply_text(n, req, "-ERR backups are not supported by this node\r\n");
        return;
    }
    if (len == 0 || len >= node_snap_path_bytes_max || memchr(path, '\0', len) != NULL) {
        node_reply_text(n, req, "-ERR RAFT.BACKUP needs the path of the file to write\r\n");
        return;
    }
    raft_index want = raft_commit_index(n->raft);
    if (want == 0) {
        node_reply_text(n, req, "-ERR nothing to back up yet: no entry is committed\r\n");
        return;
    }
    struct backup_job *job = calloc(1, sizeof *job);
    lr_assert(job != NULL);
    job->req = req;
    job->want = want;
    memcpy(job->path, path, len);
    if (!n->snap.running && n->snap.index >= want && n->snap.path[0] != '\0') {
        start_copy(n, job);
        return;
    }
    job->next = n->bk.waiting;
    n->bk.waiting = job;
    snapshots_want(n);
}

void backups_snapshot_done(struct node *n, bool ok)
{
    struct backup_job *job = n->bk.waiting, *later = NULL;
    n->bk.waiting = NULL;
    while (job != NULL) {
        struct backup_job *next = job->next;
        if (!ok) {
            node_reply_text(n, job->req,
                            "-ERR backup failed: the snapshot failed; see the "
                            "node's log\r\n");
            free(job);
        } else if (n->snap.index >= job->want) {
            start_copy(n, job);
        } else {
            job->next = later; /* taken before the command came: one more */
            later = job;
        }
        job = next;
    }
    n->bk.waiting = later;
    if (later != NULL) {
        snapshots_want(n);
    }
}

void node_backup_done(struct node *n, void *ctx, int status, uint64_t bytes, const char *errmsg)
{
    struct backup_job *job = ctx;
    lr_assert(n->bk.copying > 0);
    n->bk.copying--;
    if (!n->stopping) {
        char text[node_snap_path_bytes_max + node_errmsg_bytes + 128];
        if (status == 0) {
            snprintf(text, sizeof text,
                     "+OK backup of index %" PRIu64 " (term %" PRIu64 "), %" PRIu64
                     " bytes, in %s\r\n",
                     job->index, job->term, bytes, job->path);
            node_log(n, "backup of index %" PRIu64 " written to %s", job->index, job->path);
        } else {
            snprintf(text, sizeof text, "-ERR backup failed: %s\r\n", errmsg);
            node_log(n, "backup to %s failed: %s", job->path, errmsg);
        }
        node_reply_text(n, job->req, text);
    }
    free(job);
    if (n->bk.copying == 0 && !n->stopping) {
        snapshots_prune(n); /* what was kept for the copies */
    }
}

static void drop_waiting(struct node *n, bool answer)
{
    struct backup_job *job = n->bk.waiting;
    while (job != NULL) {
        struct backup_job *next = job->next;
        if (answer) {
            node_reply_text(n, job->req, "-ERR backup failed: the node is stopping\r\n");
        }
        free(job);
        job = next;
    }
    n->bk.waiting = NULL;
}

void backups_stop(struct node *n)
{
    drop_waiting(n, true);
}

void backups_free(struct node *n)
{
    drop_waiting(n, false);
}
