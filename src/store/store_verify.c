/*
 * The verification pass a node runs over its store before opening it (store_verify.h):
 * every record of both databases read and its checksum checked, in a child process of
 * its own, because LMDB does not checksum its own pages and a flipped bit in a branch
 * page or a page number can make it read outside the map (SIGSEGV, SIGBUS) rather than
 * return MDB_CORRUPTED or MDB_PAGE_NOTFOUND (issue 11: 200 random flips killed the node
 * with SIGSEGV). The child dies instead of the node, and the parent learns what it read
 * before dying: the hard state goes up the pipe first, so that a node whose log is
 * unreadable still knows its term and vote.
 *
 * The child is forked before the parent opens the environment and opens its own, read
 * only and without the lock file (nothing else uses the directory yet), so it shares no
 * MDB_env with the parent (LMDB's documentation of mdb_env_open: "Use an MDB_env* in the
 * process which opened it, not after fork()"). It only reads.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "store/store_verify.h"

/* The child's side. */

static void send_report(int fd, const struct store_verify_report *r)
{
    const char *p = (const char *)r;
    size_t left = sizeof *r;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        p += n;
        left -= (size_t)n;
    }
}

static int damaged(struct store_verify_report *r, const char *what, int rv)
{
    r->verdict = STORE_VERIFY_DAMAGED;
    snprintf(r->what, sizeof r->what, "%s: %s", what, rv != 0 ? mdb_strerror(rv) : "");
    return -1;
}

static int walk_meta(struct store *s, MDB_txn *txn, struct store_verify_report *r)
{
    MDB_cursor *cur;
    int rv = mdb_cursor_open(txn, s->meta_dbi, &cur);
    if (rv != 0) {
        return damaged(r, "opening a cursor on the meta records", rv);
    }
    MDB_val k, v;
    char name[64];
    int result = 0;
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0 && result == 0) {
        if (k.mv_size == 0 || k.mv_size >= sizeof name) {
            result = damaged(r, "a meta record with a malformed name", 0);
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        MDB_val got;
        if (store_get_meta(s, txn, name, &got, r->what, sizeof r->what) != 0) {
            r->verdict = STORE_VERIFY_DAMAGED;
            result = -1;
        }
        r->records++;
    }
    mdb_cursor_close(cur);
    if (result == 0 && rv != MDB_NOTFOUND) {
        result = damaged(r, "reading the meta records", rv);
    }
    r->has_hard_state = r->has_hard_state || result == 0; /* absent, truly: term 0 */
    return result;
}

static int walk_log(struct store *s, MDB_txn *txn, struct store_verify_report *r)
{
    MDB_cursor *cur;
    int rv = mdb_cursor_open(txn, s->log_dbi, &cur);
    if (rv != 0) {
        return damaged(r, "opening a cursor on the log", rv);
    }
    MDB_val k, v;
    raft_index prev = 0;
    int result = 0;
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct raft_entry e;
        raft_index index = k.mv_size == 8 ? store_get_u64(k.mv_data) : 0;
        if (store_log_record(s, &k, &v, &e) != 0 || (prev != 0 && index != prev + 1)) {
            r->verdict = STORE_VERIFY_DAMAGED;
            snprintf(r->what, sizeof r->what,
                     "store: log entry %llu fails its checksum, or the log has a gap",
                     (unsigned long long)index);
            result = -1;
            break;
        }
        prev = index;
        r->records++;
    }
    mdb_cursor_close(cur);
    if (result == 0 && rv != MDB_NOTFOUND) {
        result = damaged(r, "reading the log", rv);
    }
    return result;
}

/* The hard state, reported as soon as it verifies. */
static int read_hard_state(struct store *s, MDB_txn *txn, struct store_verify_report *r, int fd)
{
    MDB_val v;
    if (store_get_meta(s, txn, "hard_state", &v, r->what, sizeof r->what) != 0 ||
        (v.mv_size != 0 && v.mv_size != STORE_HARD_STATE_BYTES)) {
        r->verdict = STORE_VERIFY_DAMAGED;
        return -1;
    }
    if (v.mv_size == 0) {
        return 0; /* known to be term 0 only once every meta record verified (walk_meta):
                   * a flip in its name would make it look absent */
    }
    r->term = store_get_u64((const unsigned char *)v.mv_data + 1);
    r->vote = store_get_u64((const unsigned char *)v.mv_data + 9);
    r->has_hard_state = true;
    send_report(fd, r);
    return 0;
}

static void verify_child(const char *dir, uint64_t map_bytes, int fd)
{
    /* A damaged page is to kill this process with its signal, for the parent to name,
     * whatever handlers the parent had (a sanitizer's, say). */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    struct store_verify_report r = {.verdict = STORE_VERIFY_OK};
    struct store s = {.map_bytes = map_bytes};
    MDB_txn *txn = NULL;
    int rv = mdb_env_create(&s.env);
    if (rv == 0) {
        rv = mdb_env_set_mapsize(s.env, (size_t)map_bytes);
    }
    if (rv == 0) {
        rv = mdb_env_set_maxdbs(s.env, 2);
    }
    if (rv == 0) {
        rv = mdb_env_open(s.env, dir, MDB_RDONLY | MDB_NOLOCK, 0644);
    }
    if (rv == 0) {
        rv = mdb_txn_begin(s.env, NULL, MDB_RDONLY, &txn);
    }
    if (rv == 0) {
        rv = mdb_dbi_open(txn, "log", 0, &s.log_dbi);
    }
    if (rv == 0) {
        rv = mdb_dbi_open(txn, "meta", 0, &s.meta_dbi);
    }
    if (rv != 0) {
        damaged(&r, "opening the environment read-only", rv);
    } else {
        MDB_val fmt;
        s.checked = true; /* what store_open_format decides, read only */
        if (store_get_meta(&s, txn, "format", &fmt, r.what, sizeof r.what) != 0) {
            r.verdict = STORE_VERIFY_DAMAGED;
        } else {
            s.checked = fmt.mv_size != 0;
            if (read_hard_state(&s, txn, &r, fd) == 0 && walk_meta(&s, txn, &r) == 0) {
                send_report(fd, &r); /* an absent hard state is known now to be absent */
                walk_log(&s, txn, &r);
            }
        }
    }
    send_report(fd, &r);
    _exit(0); /* no atexit handlers, no stdio flush: they belong to the parent */
}

/* The parent's side. */

static void describe_death(struct store_verify_report *r, int status)
{
    r->verdict = STORE_VERIFY_CRASHED;
    if (WIFSIGNALED(status)) {
        snprintf(r->what, sizeof r->what,
                 "store: reading data.mdb killed the verification process (signal %d, %s): "
                 "LMDB's own pages are damaged",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        snprintf(r->what, sizeof r->what,
                 "store: the verification process exited with status %d without a verdict",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
}

int store_verify(const char *dir, uint64_t map_bytes, struct store_verify_report *out)
{
    *out = (struct store_verify_report){.verdict = STORE_VERIFY_ABSENT};
    char path[4096];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path ||
        stat(path, &st) != 0 || st.st_size == 0) {
        return 0; /* nothing to verify: a fresh directory (store_open says why if not) */
    }
    int fds[2];
    if (pipe(fds) != 0) {
        return -errno;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        return -err;
    }
    if (pid == 0) {
        close(fds[0]);
        verify_child(dir, map_bytes, fds[1]);
    }
    close(fds[1]);
    /* The child writes the report after the hard state, then the final one: the last
     * whole one read is what it found (a child that died leaves the first, if it got
     * that far). */
    struct store_verify_report got;
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fds[0], (char *)&got + have, sizeof got - have);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        have += (size_t)n;
        if (have == sizeof got) {
            *out = got;
            have = 0;
        }
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        describe_death(out, status);
    }
    return 0;
}
