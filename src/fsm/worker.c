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

#include "store/snapfile.h"
#include "raft/raft.h"
#include "util/assert.h"

int fsm_worker_put_argv(struct buf *b, int argc, const char *const *argv, const size_t *argvlen)
{
    lr_assert(argc >= 0);
    int rv = buf_put_u32(b, (uint32_t)argc);
    for (int i = 0; rv == 0 && i < argc; i++) {
        rv = buf_put_u32(b, (uint32_t)argvlen[i]);
        if (rv == 0) {
            rv = buf_append(b, argv[i], argvlen[i]);
        }
    }
    return rv;
}

bool fsm_worker_get_argv(const void *data,
                         size_t len,
                         int *argc,
                         const char ***argv,
                         size_t **argvlen)
{
    struct cursor c = cursor_make(data, len);
    uint32_t n;
    if (!cursor_get_u32(&c, &n) || n == 0 || n > fsm_worker_argc_max || n > c.left / 4) {
        return false;
    }
    const char **v = malloc(n * sizeof *v);
    size_t *l = malloc(n * sizeof *l);
    if (v == NULL || l == NULL) {
        goto err;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        if (!cursor_get_u32(&c, &k) || k > c.left) {
            goto err;
        }
        v[i] = (const char *)c.p;
        l[i] = k;
        c.p += k;
        c.left -= k;
    }
    if (c.left != 0) {
        goto err;
    }
    *argc = (int)n;
    *argv = v;
    *argvlen = l;
    return true;
err:
    free(v);
    free(l);
    return false;
}

struct fsm_job *fsm_job_new(enum fsm_job_type type)
{
    struct fsm_job *job = calloc(1, sizeof *job);
    if (job != NULL) {
        job->type = type;
    }
    return job;
}

void fsm_job_free(struct fsm_job *job)
{
    if (job == NULL) {
        return;
    }
    for (unsigned i = 0; i < job->n_entries; i++) {
        free(job->entries[i].payload);
        fsm_reply_free(&job->entries[i].reply);
    }
    free(job->entries);
    for (unsigned i = 0; i < job->n_queries; i++) {
        free(job->queries[i].blob);
        fsm_reply_free(&job->queries[i].reply);
    }
    free(job->queries);
    free(job);
}

/* The seed of math.random for one entry: a hash of its index and term, so every replica
 * draws the same numbers and consecutive entries draw different ones. */
static uint64_t entry_seed(uint64_t index, uint64_t term)
{
    uint64_t z = index * 0x9e3779b97f4a7c15ULL ^ (term + 0x632be59bd9b4e019ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char malformed_reply[] = "-ERR malformed log entry\r\n";

static void append_raw(struct fsm_reply *r, const char *s, size_t n)
{
    if (r->cap - r->len < n) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        while (cap - r->len < n) {
            cap *= 2;
        }
        char *d = realloc(r->data, cap);
        if (d == NULL) {
            return;
        }
        r->data = d;
        r->cap = cap;
    }
    memcpy(r->data + r->len, s, n);
    r->len += n;
}

/* Applies one committed entry. A payload that does not decode gets the same error reply
 * on every replica (the bytes are the same everywhere), so replicas cannot diverge. */
static void run_entry(struct fsm_worker *w, struct fsm_job_entry *e)
{
    w->applied_index = e->index;
    w->applied_term = e->term;
    if (e->type != RAFT_ENTRY_NORMAL) {
        return;
    }
    struct cursor c = cursor_make(e->payload, e->len);
    uint8_t version;
    uint64_t time_ms;
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!cursor_get_u8(&c, &version) || version != fsm_worker_payload_version ||
        !cursor_get_u64(&c, &time_ms) ||
        !fsm_worker_get_argv(c.p, c.left, &argc, &argv, &argvlen)) {
        append_raw(&e->reply, malformed_reply, sizeof malformed_reply - 1);
        return;
    }
    struct fsm_ctx ctx = {
        .index = e->index,
        .term = e->term,
        .time_ms = (int64_t)time_ms,
        .seed = entry_seed(e->index, e->term),
    };
    struct fsm_reply scratch = {0};
    struct fsm_reply *out = e->want_reply ? &e->reply : &scratch;
    int rv = fsm_apply(w->fsm, &ctx, argc, argv, argvlen, out);
    if (rv != 0 && e->want_reply) {
        static const char oom[] = "-ERR out of memory while applying\r\n";
        append_raw(out, oom, sizeof oom - 1);
    }
    fsm_reply_free(&scratch);
    free(argv);
    free(argvlen);
}

static void run_query(struct fsm_worker *w, struct fsm_job_query *q)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!fsm_worker_get_argv(q->blob, q->len, &argc, &argv, &argvlen)) {
        append_raw(&q->reply, malformed_reply, sizeof malformed_reply - 1);
        return;
    }
    int rv = fsm_query(w->fsm, argc, argv, argvlen, &q->reply);
    if (rv == FSM_ENOTSUP) {
        static const char e[] = "-ERR the script has no query function\r\n";
        append_raw(&q->reply, e, sizeof e - 1);
    } else if (rv != 0) {
        static const char e[] = "-ERR out of memory while querying\r\n";
        append_raw(&q->reply, e, sizeof e - 1);
    }
    free(argv);
    free(argvlen);
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
    int rv = snapfile_begin(&sw, job->path, job->index, job->term, msg, sizeof msg);
    if (rv != 0) {
        dprintf(2, "snapshot child: cannot create the snapshot file: %s\n", msg);
        return child_exit_file;
    }
    rv = fsm_snapshot(w->fsm, child_write, &sw);
    if (rv != 0) {
        dprintf(2, "snapshot child: M.snapshot failed: %s: %s\n", fsm_strerror(rv),
                fsm_last_error(w->fsm));
        snapfile_abort(&sw);
        return rv == FSM_ESCRIPT || rv == FSM_ENOTSUP ? child_exit_script : child_exit_write;
    }
    rv = snapfile_commit(&sw, msg, sizeof msg);
    if (rv != 0) {
        dprintf(2, "snapshot child: cannot commit the snapshot file: %s\n", msg);
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
        _exit(child_write_snapshot(w, job));
    }
    job->status = 0;
    job->pid = pid;
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

int fsm_worker_restore_file(struct fsm *f, const char *path, char *errmsg, size_t errmsg_size)
{
    uint64_t body;
    int rv = snapfile_verify(path, &body);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "snapshot file %s does not verify (%d)", path, rv);
        return rv;
    }
    struct restore_reader *r = malloc(sizeof *r);
    if (r == NULL) {
        snprintf(errmsg, errmsg_size, "out of memory");
        return FSM_ENOMEM;
    }
    r->fd = open(path, O_RDONLY);
    if (r->fd < 0) {
        rv = -errno;
        snprintf(errmsg, errmsg_size, "open %s: %s", path, strerror(errno));
        free(r);
        return rv;
    }
    r->left = body;
    rv = fsm_restore(f, restore_read, r);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "restore from %s: %s: %s", path, fsm_strerror(rv),
                 fsm_last_error(f));
    }
    close(r->fd);
    free(r);
    return rv;
}

static void run_job(struct fsm_worker *w, struct fsm_job *job)
{
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
            job->status =
                fsm_worker_restore_file(w->fsm, job->path, job->errmsg, sizeof job->errmsg);
            if (job->status == 0) {
                w->applied_index = job->index;
                w->applied_term = job->term;
            }
            break;
        case FSM_JOB_STOP:
            break;
    }
}

static void *worker_main(void *arg)
{
    struct fsm_worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mutex);
        while (w->in_head == NULL) {
            pthread_cond_wait(&w->cond, &w->mutex);
        }
        struct fsm_job *job = w->in_head;
        w->in_head = job->next;
        if (w->in_head == NULL) {
            w->in_tail = NULL;
        }
        pthread_mutex_unlock(&w->mutex);

        job->next = NULL;
        if (job->type == FSM_JOB_STOP) {
            fsm_job_free(job);
            return NULL;
        }
        run_job(w, job);

        pthread_mutex_lock(&w->mutex);
        if (w->out_tail != NULL) {
            w->out_tail->next = job;
        } else {
            w->out_head = job;
        }
        w->out_tail = job;
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
                     uint64_t applied_index,
                     uint64_t applied_term,
                     fsm_worker_done_cb done,
                     void *arg)
{
    memset(w, 0, sizeof *w);
    w->fsm = f;
    w->done = done;
    w->arg = arg;
    w->applied_index = applied_index;
    w->applied_term = applied_term;
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
    job->next = NULL;
    pthread_mutex_lock(&w->mutex);
    if (w->in_tail != NULL) {
        w->in_tail->next = job;
    } else {
        w->in_head = job;
    }
    w->in_tail = job;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mutex);
}

void fsm_worker_stop(struct fsm_worker *w)
{
    struct fsm_job *stop = fsm_job_new(FSM_JOB_STOP);
    lr_assert(stop != NULL);
    fsm_worker_submit(w, stop);
    pthread_join(w->thread, NULL);
    /* Results that were never delivered are dropped: the loop is going away. */
    struct fsm_job *job = w->out_head;
    while (job != NULL) {
        struct fsm_job *next = job->next;
        fsm_job_free(job);
        job = next;
    }
    w->out_head = w->out_tail = NULL;
    fsm_close(w->fsm);
    w->fsm = NULL;
    uv_close((uv_handle_t *)&w->async, NULL);
}
