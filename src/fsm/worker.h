/*
 * The fsm thread: the one thread that runs Lua. The loop thread hands it jobs (apply a
 * batch of committed entries, run a batch of queries, fork a snapshot child, restore a
 * snapshot file) through one FIFO queue, so queries run after every apply queued before
 * them; each finished job comes back to the loop thread through a uv_async_t and the
 * done callback. Lua never runs on the loop thread, so a long apply delays no heartbeat.
 *
 * The jobs themselves are fsm/job.h; the entry payload they decode is command.h.
 */
#ifndef LUARAFT_FSM_WORKER_H
#define LUARAFT_FSM_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "fsm/fsm.h"
#include "fsm/job.h"
#include "store/snapfile.h"
#include "util/buf.h"

enum {
    fsm_worker_path_bytes_max = fsm_job_path_bytes_max,
    fsm_worker_chunk_bytes = 64 * 1024, /* read size when restoring a snapshot file */
    FSM_WORKER_EFOREIGN = -400,         /* the snapshot file is of another script */
};

typedef void (*fsm_worker_done_cb)(void *arg, struct fsm_job *job);

struct fsm_worker
{
    struct fsm *fsm;
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    struct fsm_job *in_head, *in_tail;   /* guarded by mutex */
    struct fsm_job *out_head, *out_tail; /* guarded by mutex */
    uv_async_t async;
    fsm_worker_done_cb done;
    void *arg;
    /* The script fsm runs: written into every snapshot, checked on every restore; a LOAD
     * entry (RAFT.LOAD) and the restore of an upgraded script's snapshot change it. */
    struct script_identity script;
    /* Owned by the worker thread once started. */
    uint64_t applied_index;
    uint64_t applied_term;
    pid_t gc_paused_for; /* the snapshot child the collector waits for (fsm_gc_pause), or 0 */
    _Atomic uint64_t lua_bytes; /* the Lua heap after the last job (INFO used_memory_lua) */
};

/*
 * Restores *fp from the snapshot file at path, on the calling thread (used at start-up,
 * before the worker runs, and by RESTORE jobs). A file of an upgraded script carries that
 * script's text (snapfile.h, version 4): when it is not the script *fp runs, the state is
 * restored into a new fsm of that script (fsm_open_successor), which replaces *fp, and
 * the old one, its Lua state closed, goes to *retired for the caller to fsm_close once
 * nothing reads its command table; on failure *fp is untouched. A file without a text
 * holds the state of the script it names: with expect not NULL, another one than expect
 * is refused (FSM_WORKER_EFOREIGN) before anything is touched; a file of the first
 * format, which records none, is restored. runs (may be NULL) gets the identity of the
 * script *fp runs afterwards. Errors: SNAPFILE_E* (a bad file), FSM_WORKER_EFOREIGN,
 * -errno, FSM_E*; errmsg says why.
 */
int fsm_worker_restore_file(struct fsm **fp,
                            const char *path,
                            const struct script_identity *expect,
                            struct script_identity *runs,
                            struct fsm **retired,
                            char *errmsg,
                            size_t errmsg_size);

/* The identity of the script f runs, from the log index since (0: the first one). */
void fsm_worker_identity(const struct fsm *f, uint64_t since, struct script_identity *out);

/*
 * Starts the thread, which owns f from now on; applied_index/term are where f's state is,
 * script the identity of the script f runs. done runs on the loop thread for every
 * finished job except STOP, and owns the job. Errors: -errno.
 */
int fsm_worker_start(struct fsm_worker *w,
                     uv_loop_t *loop,
                     struct fsm *f,
                     const struct script_identity *script,
                     uint64_t applied_index,
                     uint64_t applied_term,
                     fsm_worker_done_cb done,
                     void *arg);

/*
 * What the snapshot child's exit status means (each failure has its own, see worker.c):
 * a phrase for the log, e.g. "M.snapshot raised an error".
 */
const char *fsm_worker_child_exit_text(int exit_status);

/* Queues a job (loop thread). The worker owns it until done hands it back. */
void fsm_worker_submit(struct fsm_worker *w, struct fsm_job *job);

/*
 * Finishes the queued jobs, joins the thread, and hands every finished job that was not
 * delivered yet to done, in order, so that their clients are answered (issue 7: shutdown
 * dropped finished query results). Jobs that done submits meanwhile (a read that the last
 * apply made servable) run here too, on the calling thread, which owns f once the thread
 * is gone; a snapshot job among them is not started (status -ECANCELED). Then closes f
 * and the async handle (loop thread; the handle is closed with uv_close, so run the loop
 * once more afterwards). Submitting after fsm_worker_stop returned is a bug.
 */
void fsm_worker_stop(struct fsm_worker *w);

#endif
