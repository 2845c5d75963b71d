/*
 * The fsm thread (see fsm/worker.h). Jobs run strictly in the order they were queued;
 * results go back in that order too.
 */
#define _GNU_SOURCE /* close_range (glibc 2.34, Linux 5.9) in <unistd.h> */

#include "fsm/worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "store/snapfile.h"
#include "raft/raft.h"
#include "util/assert.h"
#include "util/log.h"

/* Applies one committed entry (fsm/job.h), keeping where the state is for snapshots. */
static void run_entry(struct fsm_worker *w, struct fsm_job_entry *e)
{
    w->applied_index = e->index;
    w->applied_term = e->term;
    fsm_job_apply_entry(w->fsm, e);
    if (e->loaded != NULL) {
        w->fsm = fsm_job_adopt(w->fsm, e);
        fsm_worker_identity(w->fsm, e->index, &w->script);
    }
}

/* Tells the fsm where its state is after a restore (its clock stays: fsm.h). */
static void set_applied(struct fsm_worker *w)
{
    struct fsm_ctx at = fsm_applied(w->fsm);
    at.index = w->applied_index;
    at.term = w->applied_term;
    fsm_set_applied(w->fsm, &at);
}

static void run_query(struct fsm_worker *w, struct fsm_job_query *q)
{
    fsm_job_run_query(w->fsm, q);
}

static int child_write(void *arg, const void *data, size_t len)
{
    return snapfile_write(arg, data, len);
}

/*
 * The snapshot child's exit statuses, one per way it can fail, so that the node's
 * waitpid tells them apart (each also writes one "snapshot child: ..." line to stderr).
 */
enum {
    child_exit_ok = 0,
    child_exit_file = 1,   /* the temporary file could not be created */
    child_exit_script = 2, /* M.snapshot raised an error (FSM_ESCRIPT, FSM_ENOTSUP) */
    child_exit_write = 3,  /* writing the file failed (FSM_ESTREAM, or out of memory) */
    child_exit_commit = 4, /* the trailer, fsync or rename failed */
    child_exit_orphan = 5, /* the node was gone before the child could tie itself to it */
};

const char *fsm_worker_child_exit_text(int exit_status)
{
    switch (exit_status) {
        case child_exit_ok:
            return "the snapshot was written";
        case child_exit_file:
            return "the temporary snapshot file could not be created";
        case child_exit_script:
            return "M.snapshot raised an error";
        case child_exit_write:
            return "writing the snapshot file failed";
        case child_exit_commit:
            return "the snapshot file could not be completed (trailer, fsync or rename)";
        case child_exit_orphan:
            return "the node was gone before the child could tie itself to it";
        default:
            return "not a status of the snapshot child";
    }
}

/* Closes every descriptor above stderr, reading /proc/self/fd: for kernels before 5.9,
 * which have no close_range. Returns -1 when /proc is not mounted. */
static int close_listed_fds(void)
{
    int closed;
    do {
        DIR *dir = opendir("/proc/self/fd");
        if (dir == NULL) {
            return -1;
        }
        closed = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            int fd = atoi(e->d_name);
            if (fd > 2 && fd != dirfd(dir)) {
                close(fd);
                closed++;
            }
        }
        closedir(dir);
    } while (closed > 0); /* closing while listing may skip entries: list again */
    return 0;
}

/*
 * Leaves the child only stderr (for its messages) and /dev/null as stdin and stdout.
 * Everything else it inherited is the node's: the client and peer listening sockets,
 * every connection, LMDB's file and lock, libuv's epoll and signal pipes. A child holding
 * a listening socket keeps the port bound after the node dies, so a restarted node could
 * not listen (issue 7). Nothing the child uses later holds a descriptor: the Lua state
 * does no IO, and the snapshot file is opened afterwards.
 */
static void close_inherited_fds(void)
{
    if (close_range(3, ~0U, 0) != 0 && close_listed_fds() != 0) {
        struct rlimit rl;
        int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1048576 ? (int)rl.rlim_cur
                                                                              : 1048576;
        for (int fd = 3; fd < max; fd++) {
            close(fd);
        }
    }
    int null = open("/dev/null", O_RDWR); /* 3, the lowest free descriptor */
    if (null < 0) {
        close(0);
        close(1);
        return;
    }
    dup2(null, 0);
    dup2(null, 1);
    if (null > 2) {
        close(null);
    }
}

/* A signal the process raises on itself for a fault: a sanitizer's handler for it only
 * prints a report to stderr, so it may stay. */
static bool is_fault_signal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGABRT ||
           sig == SIGTRAP;
}

/*
 * The child inherits the node's signal handlers (libuv's write into its signal pipe,
 * whose descriptor number the snapshot file may take once close_inherited_fds has run)
 * and the fsm thread's signal mask: back to the defaults, so that SIGINT or SIGTERM to
 * the process group just end it. Ignored signals (SIGPIPE) stay ignored.
 */
static void reset_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (!is_fault_signal(sig) && sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_IGN &&
            sa.sa_handler != SIG_DFL) {
            signal(sig, SIG_DFL);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * First thing in the child: tie its life to the node's. PR_SET_PDEATHSIG (prctl(2))
 * sends SIGKILL when the thread that forked, the fsm thread, ends; that thread lives as
 * long as the node (fsm_worker_stop joins it only after the node has killed its child),
 * so a kill -9 of the node ends the child too. The node may have died before prctl ran:
 * then the child already has another parent, and leaves.
 */
static void child_detach(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(child_exit_orphan);
    }
    reset_signals();
    close_inherited_fds();
}

/* The child's work: the file, the script's bytes, the commit. Returns its exit status. */
static int child_write_snapshot(struct fsm_worker *w, const struct fsm_job *job)
{
    struct snapfile_writer sw;
    char msg[256];
    struct snapfile_header h = {
        .script = &w->script, .members = job->members, .members_len = job->members_len};
    if (w->script.since > 0) {
        h.text = fsm_source(w->fsm, &h.text_len); /* an upgraded script travels with its state */
    }
    int rv = snapfile_begin_header(&sw, job->path, job->index, job->term, &h, msg, sizeof msg);
    if (rv != 0) {
        lr_log("snapshot child: cannot create the snapshot file: %s", msg);
        return child_exit_file;
    }
    rv = fsm_snapshot(w->fsm, child_write, &sw);
    if (rv != 0) {
        lr_log("snapshot child: M.snapshot failed: %s: %s", fsm_strerror(rv),
               fsm_last_error(w->fsm));
        snapfile_abort(&sw);
        return rv == FSM_ESCRIPT || rv == FSM_ENOTSUP ? child_exit_script : child_exit_write;
    }
    rv = snapfile_commit(&sw, msg, sizeof msg);
    if (rv != 0) {
        lr_log("snapshot child: cannot commit the snapshot file: %s", msg);
        snapfile_abort(&sw);
        return child_exit_commit;
    }
    return child_exit_ok;
}

/*
 * Forks a child that writes the script's snapshot of the state as of the last applied
 * entry, as Redis does for background saves: the child sees a copy-on-write image of the
 * Lua heap, so the parent goes on applying at once. The child touches neither LMDB nor
 * libuv, holds none of the node's descriptors, dies with the node, and leaves with
 * _exit() so that no atexit handler or stdio buffer of the parent runs twice.
 *
 * A failure before the fork is the job's: job->status (-EINVAL: nothing applied yet;
 * -errno: fork failed) and job->errmsg, with job->pid 0. A failure in the child is its
 * exit status (child_exit_*, above) and its line on stderr.
 */
static void run_snapshot(struct fsm_worker *w, struct fsm_job *job)
{
    job->index = w->applied_index;
    job->term = w->applied_term;
    job->pid = 0;
    if (job->index == 0) {
        job->status = -EINVAL;
        snprintf(job->errmsg, sizeof job->errmsg, "nothing applied yet");
        return;
    }
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        job->status = -errno;
        snprintf(job->errmsg, sizeof job->errmsg, "fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        child_detach(parent);
        fsm_gc_pause_child(w->fsm); /* its marking would copy the pages just the same */
        _exit(child_write_snapshot(w, job));
    }
    job->status = 0;
    job->pid = pid;
    fsm_gc_pause(w->fsm);
    w->gc_paused_for = pid;
}

/* The collector runs again once the snapshot child has exited (WNOWAIT: the loop thread
 * reaps it; a child already reaped is ECHILD) or the heap has grown too much meanwhile. */
static void maybe_resume_gc(struct fsm_worker *w)
{
    if (w->gc_paused_for == 0) {
        return;
    }
    siginfo_t si = {0};
    if (waitid(P_PID, (id_t)w->gc_paused_for, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        si.si_pid == w->gc_paused_for || fsm_gc_grown(w->fsm)) {
        fsm_gc_resume(w->fsm);
        w->gc_paused_for = 0;
    }
}

struct restore_reader
{
    int fd;
    uint64_t left;
    char buf[fsm_worker_chunk_bytes];
};

static int restore_read(void *arg, const void **data, size_t *len)
{
    struct restore_reader *r = arg;
    size_t want = r->left < sizeof r->buf ? (size_t)r->left : sizeof r->buf;
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(r->fd, r->buf + got, want - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    r->left -= got;
    *data = r->buf;
    *len = got;
    return 0;
}

void fsm_worker_identity(const struct fsm *f, uint64_t since, struct script_identity *out)
{
    memset(out, 0, sizeof *out);
    out->since = since;
    snprintf(out->name, sizeof out->name, "%s", fsm_name(f));
    fsm_source_hash(f, out->hash);
}

/*
 * Verifies the file whole and reads its header into info. A file with a script text
 * (version 4, written after an upgrade) brings its own script: the text, into *text, must
 * hash to the identity the header records. A file without one holds the state of the
 * script it names, which must be expect's (when expect is not NULL). 0, or an error with
 * errmsg.
 */
static int restore_check(const char *path,
                         const struct script_identity *expect,
                         struct snapfile_info *info,
                         char **text,
                         char *errmsg,
                         size_t errmsg_size)
{
    *text = NULL;
    int rv = snapfile_verify(path, NULL);
    if (rv == 0) {
        rv = snapfile_inspect(path, info);
    }
    if (rv == 0 && info->has_text) {
        rv = snapfile_script_text(path, info, text);
        unsigned char h[SCRIPT_HASH_BYTES];
        crypto_generichash(h, sizeof h, (const unsigned char *)*text,
                           *text != NULL ? info->text_len : 0, NULL, 0);
        rv = rv != 0 || memcmp(h, info->script.hash, sizeof h) == 0 ? rv : SNAPFILE_ECORRUPT;
    }
    if (rv != 0) {
        free(*text);
        *text = NULL;
        snprintf(errmsg, errmsg_size, "snapshot file %s does not verify: %s", path,
                 snapfile_strerror(rv));
        return rv;
    }
    if (!info->has_text && expect != NULL && info->has_script &&
        !script_identity_same(expect, &info->script)) {
        char want[SCRIPT_HASH_HEX_BYTES], got[SCRIPT_HASH_HEX_BYTES];
        script_identity_hex(expect, want);
        script_identity_hex(&info->script, got);
        snprintf(errmsg, errmsg_size,
                 "snapshot file %s is of script %s (content %.16s...), not of %s (content "
                 "%.16s...): refusing to restore another script's state",
                 path, info->script.name, got, expect->name, want);
        return FSM_WORKER_EFOREIGN;
    }
    return 0;
}

/* M.restore of f from the body of the verified file at path. */
static int restore_body(struct fsm *f,
                        const char *path,
                        const struct snapfile_info *info,
                        char *errmsg,
                        size_t errmsg_size)
{
    struct restore_reader *r = malloc(sizeof *r);
    if (r == NULL) {
        snprintf(errmsg, errmsg_size, "out of memory");
        return FSM_ENOMEM;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0 || lseek(r->fd, (off_t)info->body_offset, SEEK_SET) < 0) {
        int rv = -errno;
        snprintf(errmsg, errmsg_size, "open or seek %s: %s", path, strerror(errno));
        if (r->fd >= 0) {
            close(r->fd);
        }
        free(r);
        return rv;
    }
    r->left = info->body_bytes;
    int rv = fsm_restore(f, restore_read, r);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "restore from %s: %s: %s", path, fsm_strerror(rv),
                 fsm_last_error(f));
    }
    close(r->fd);
    free(r);
    return rv;
}

int fsm_worker_restore_file(struct fsm **fp,
                            const char *path,
                            const struct script_identity *expect,
                            struct script_identity *runs,
                            struct fsm **retired,
                            char *errmsg,
                            size_t errmsg_size)
{
    struct snapfile_info info;
    char *text;
    *retired = NULL;
    int rv = restore_check(path, expect, &info, &text, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    struct script_identity current;
    fsm_worker_identity(*fp, 0, &current);
    struct fsm *f = *fp;
    if (text != NULL && !script_identity_same(&current, &info.script)) {
        /* Another version of the script (an upgrade this node has not applied): the
         * state goes into a new fsm of the file's script, and *fp stays whole if that
         * fails. */
        rv =
            fsm_open_successor(*fp, info.script.name, text, info.text_len, &f, errmsg, errmsg_size);
    }
    free(text);
    rv = rv != 0 ? rv : restore_body(f, path, &info, errmsg, errmsg_size);
    if (f != *fp && rv != 0) {
        fsm_close(f);
    } else if (f != *fp) {
        fsm_close_state(*fp);
        *retired = *fp;
        *fp = f;
    }
    if (rv == 0 && runs != NULL) {
        if (info.has_script) {
            *runs = info.script;
        } else if (expect != NULL) {
            *runs = *expect;
        }
    }
    return rv;
}

static void run_job(struct fsm_worker *w, struct fsm_job *job)
{
    maybe_resume_gc(w);
    switch (job->type) {
        case FSM_JOB_APPLY:
            for (unsigned i = 0; i < job->n_entries; i++) {
                run_entry(w, &job->entries[i]);
            }
            break;
        case FSM_JOB_QUERY:
            for (unsigned i = 0; i < job->n_queries; i++) {
                run_query(w, &job->queries[i]);
            }
            break;
        case FSM_JOB_SNAPSHOT:
            run_snapshot(w, job);
            break;
        case FSM_JOB_RESTORE:
            job->status = fsm_worker_restore_file(&w->fsm, job->path, &w->script, &w->script,
                                                  &job->retired, job->errmsg, sizeof job->errmsg);
            job->loaded = job->retired != NULL ? w->fsm : NULL;
            job->since = w->script.since;
            if (job->status == 0) {
                w->applied_index = job->index;
                w->applied_term = job->term;
                set_applied(w);
            }
            break;
        case FSM_JOB_CHECK_SCRIPT: {
            struct fsm *f;
            job->status = fsm_open_successor(w->fsm, job->path, job->text, job->text_len, &f,
                                             job->errmsg, sizeof job->errmsg);
            if (job->status == 0) {
                fsm_close(f); /* it loads; the LOAD entry opens it again on every replica */
            }
            break;
        }
        case FSM_JOB_STOP:
            break;
    }
    atomic_store(&w->lua_bytes, fsm_lua_bytes(w->fsm));
}

/* A FIFO of jobs (the caller holds the mutex, or is the only thread left). */
static void queue_push(struct fsm_job **head, struct fsm_job **tail, struct fsm_job *job)
{
    job->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = job;
    } else {
        *head = job;
    }
    *tail = job;
}

static struct fsm_job *queue_pop(struct fsm_job **head, struct fsm_job **tail)
{
    struct fsm_job *job = *head;
    if (job != NULL) {
        *head = job->next;
        if (*head == NULL) {
            *tail = NULL;
        }
        job->next = NULL;
    }
    return job;
}

static void *worker_main(void *arg)
{
    struct fsm_worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mutex);
        while (w->in_head == NULL) {
            pthread_cond_wait(&w->cond, &w->mutex);
        }
        struct fsm_job *job = queue_pop(&w->in_head, &w->in_tail);
        pthread_mutex_unlock(&w->mutex);

        if (job->type == FSM_JOB_STOP) {
            fsm_job_free(job);
            return NULL;
        }
        run_job(w, job);

        pthread_mutex_lock(&w->mutex);
        queue_push(&w->out_head, &w->out_tail, job);
        pthread_mutex_unlock(&w->mutex);
        uv_async_send(&w->async);
    }
}

static void worker_async_cb(uv_async_t *handle)
{
    struct fsm_worker *w = handle->data;
    pthread_mutex_lock(&w->mutex);
    struct fsm_job *job = w->out_head;
    w->out_head = w->out_tail = NULL;
    pthread_mutex_unlock(&w->mutex);
    while (job != NULL) {
        struct fsm_job *next = job->next;
        job->next = NULL;
        w->done(w->arg, job);
        job = next;
    }
}

int fsm_worker_start(struct fsm_worker *w,
                     uv_loop_t *loop,
                     struct fsm *f,
                     const struct script_identity *script,
                     uint64_t applied_index,
                     uint64_t applied_term,
                     fsm_worker_done_cb done,
                     void *arg)
{
    lr_assert(script != NULL);
    memset(w, 0, sizeof *w);
    w->fsm = f;
    w->script = *script;
    w->done = done;
    w->arg = arg;
    w->applied_index = applied_index;
    w->applied_term = applied_term;
    set_applied(w);
    atomic_store(&w->lua_bytes, fsm_lua_bytes(f));
    pthread_mutex_init(&w->mutex, NULL);
    pthread_cond_init(&w->cond, NULL);
    int rv = uv_async_init(loop, &w->async, worker_async_cb);
    if (rv != 0) {
        return rv;
    }
    w->async.data = w;
    rv = pthread_create(&w->thread, NULL, worker_main, w);
    if (rv != 0) {
        uv_close((uv_handle_t *)&w->async, NULL);
        return -rv;
    }
    return 0;
}

void fsm_worker_submit(struct fsm_worker *w, struct fsm_job *job)
{
    lr_assert(job != NULL);
    lr_assert(w->fsm != NULL); /* not after fsm_worker_stop */
    pthread_mutex_lock(&w->mutex);
    queue_push(&w->in_head, &w->in_tail, job);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mutex);
}

/* A job submitted once the thread was gone (fsm_worker_stop): run here, except that no
 * snapshot child is forked any more, since the node is going away. */
static void run_late_job(struct fsm_worker *w, struct fsm_job *job)
{
    if (job->type == FSM_JOB_SNAPSHOT) {
        job->status = -ECANCELED;
        job->pid = 0;
        snprintf(job->errmsg, sizeof job->errmsg, "the node is stopping");
        return;
    }
    run_job(w, job);
}

void fsm_worker_stop(struct fsm_worker *w)
{
    struct fsm_job *stop = fsm_job_new(FSM_JOB_STOP);
    lr_assert(stop != NULL);
    fsm_worker_submit(w, stop);
    pthread_join(w->thread, NULL);
    /* Only this thread is left to touch the queues and f. Finished results go to done
     * first, in order; what done submits meanwhile runs after them, in order too. */
    for (;;) {
        struct fsm_job *job = queue_pop(&w->out_head, &w->out_tail);
        if (job != NULL) {
            w->done(w->arg, job);
            continue;
        }
        job = queue_pop(&w->in_head, &w->in_tail);
        if (job == NULL) {
            break;
        }
        if (job->type == FSM_JOB_STOP) {
            fsm_job_free(job);
            continue;
        }
        run_late_job(w, job);
        queue_push(&w->out_head, &w->out_tail, job);
    }
    fsm_close(w->fsm);
    w->fsm = NULL;
    uv_close((uv_handle_t *)&w->async, NULL);
}
