/*
 * RAFT.LOAD: a replicated script upgrade (README.md, "Upgrading the script").
 *
 *   RAFT.LOAD FILE path          the leader reads the script at path (on its machine)
 *   RAFT.LOAD SCRIPT name text   the script's text, under the file name name
 *
 * On any node; a follower forwards it to the leader. The leader first has the fsm thread
 * open the script in a Lua state of its own (FSM_JOB_CHECK_SCRIPT): a script that does
 * not compile, raises an error, exceeds a limit or breaks the contract is refused there,
 * and nothing is logged. Then a LOAD entry with the name and the text goes into the log
 * like a write. Every replica applies it at its index (fsm/job.c, fsm_upgrade): the new
 * script gets the old one's state through M.snapshot and M.restore and runs its
 * M.upgrade(old_version, ctx); from the next entry on it is the script. The caller's
 * reply is the entry's: +OK, or the error every replica met (then all keep the old one).
 *
 * The identity of the script in force follows (RAFT.INFO script, script_hash, and
 * script_since: the index it runs from), and snapshots taken afterwards carry the text
 * (snapfile.h, version 4), so a node restored from one, or joining later, runs it too.
 * The data directory's "script" record stays the script it was made with: a node
 * restarts with that one as --script (its log replays the upgrade), or with the new one
 * once a snapshot holds the upgrade (runtime_identity.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "command.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "store/snapfile.h"
#include "util/assert.h"

#define SYNTAX_REPLY "ERR syntax error: RAFT.LOAD FILE path | RAFT.LOAD SCRIPT name text"

/* "-ERR RAFT.LOAD: <text>" to whoever waits. */
__attribute__((format(printf, 3, 4))) static void reply_error(struct node *n,
                                                              const struct origin *o,
                                                              const char *fmt,
                                                              ...)
{
    char text[node_errmsg_bytes];
    int k = snprintf(text, sizeof text, "-ERR RAFT.LOAD: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + k, sizeof text - (size_t)k - 2, fmt, ap);
    va_end(ap);
    char *trace = strstr(text, "\nstack traceback:"); /* for the log, not the reply */
    if (trace != NULL) {
        *trace = '\0';
    }
    for (char *p = text; *p != '\0'; p++) {
        *p = *p == '\r' || *p == '\n' ? ' ' : *p;
    }
    strcat(text, "\r\n");
    origin_reply(n, o, text, strlen(text));
}

static void reply_text(struct node *n, const struct origin *o, const char *resp)
{
    origin_reply(n, o, resp, strlen(resp));
}

static bool is_word(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

static bool is_ours(int argc, const char *const *argv, const size_t *len)
{
    return argc >= 1 && is_word(argv[0], len[0], "RAFT.LOAD");
}

static bool well_formed(int argc, const char *const *argv, const size_t *len)
{
    return (argc == 3 && is_word(argv[1], len[1], "FILE")) ||
           (argc == 4 && is_word(argv[1], len[1], "SCRIPT"));
}

/* The file at path[0, len) into *text (malloc'd), on the loop thread: a script is at most
 * fsm_script_bytes_max bytes, read once per upgrade. The error's text into msg. */
static int read_file(const char *path,
                     size_t len,
                     char **text,
                     size_t *text_len,
                     char *msg,
                     size_t size)
{
    char p[node_snap_path_bytes_max];
    if (len == 0 || len >= sizeof p || memchr(path, '\0', len) != NULL) {
        snprintf(msg, size, "the path is empty, too long or holds a NUL");
        return -1;
    }
    memcpy(p, path, len);
    p[len] = '\0';
    /* Sized by the file, not by the most a script may be: one read of what is there. */
    FILE *fp = fopen(p, "rb");
    struct stat st;
    bool sized = fp != NULL && fstat(fileno(fp), &st) == 0;
    bool big = sized && (uint64_t)st.st_size > fsm_script_bytes_max;
    size_t want = sized && !big ? (size_t)st.st_size : 0;
    char *buf = sized && !big ? malloc(want + 1) : NULL;
    size_t n = buf != NULL ? fread(buf, 1, want + 1, fp) : 0;
    int failed = !sized || (!big && buf == NULL) || (fp != NULL && ferror(fp));
    int err = errno;
    if (fp != NULL) {
        fclose(fp);
    }
    if (failed || big || n > want) {
        free(buf);
        snprintf(msg, size, "cannot read %.300s: %s", p,
                 failed ? strerror(err)
                 : big  ? "larger than the most a script may be (16 MiB)"
                        : "it grew while it was read");
        return -1;
    }
    *text = buf;
    *text_len = n;
    return 0;
}

/* On the leader: reads or takes the script and has the fsm thread check it. */
static void run(struct node *n, const struct origin *o, int argc, const char **argv, size_t *len)
{
    char msg[node_errmsg_bytes];
    if (n->stopping || raft_role_of(n->raft) != RAFT_LEADER) {
        reply_text(n, o, "-TRYAGAIN not the leader; retry\r\n");
        return;
    }
    if (n->ld.checking) {
        reply_error(n, o, "another script is being checked; retry");
        return;
    }
    bool file = argc == 3;
    const char *name = argv[2];
    size_t name_len = len[2];
    if (file) {
        for (size_t i = 0; i < len[2]; i++) {
            name = argv[2][i] == '/' ? argv[2] + i + 1 : name;
        }
        name_len = len[2] - (size_t)(name - argv[2]);
    }
    if (name_len == 0 || name_len > SCRIPT_NAME_BYTES_MAX || memchr(name, '/', name_len) != NULL ||
        memchr(name, '\0', name_len) != NULL) {
        reply_error(n, o, "the script's name must be a file name of 1 to 255 bytes");
        return;
    }
    char *text;
    size_t text_len;
    if (file && read_file(argv[2], len[2], &text, &text_len, msg, sizeof msg) != 0) {
        reply_error(n, o, "%s", msg);
        return;
    }
    if (!file) {
        if (len[3] > fsm_script_bytes_max) {
            reply_error(n, o, "the script is larger than 16 MiB");
            return;
        }
        text = malloc(len[3] > 0 ? len[3] : 1);
        lr_assert(text != NULL);
        memcpy(text, argv[3], len[3]);
        text_len = len[3];
    }
    struct fsm_job *job = fsm_job_new(FSM_JOB_CHECK_SCRIPT);
    lr_assert(job != NULL);
    memcpy(job->path, name, name_len);
    job->path[name_len] = '\0';
    job->text = text;
    job->text_len = text_len;
    n->ld.checking = true;
    n->ld.o = *o;
    n->io->fsm_submit(n->io->arg, job);
}

void load_command(const struct conn_call *c)
{
    if (!well_formed(c->argc, c->argv, c->argvlen)) {
        conn_reply_error(c->n, c->req, SYNTAX_REPLY);
        return;
    }
    struct origin o = {c->req, 0, 0};
    if (!writes_to_leader(c->n, c->req, c->argc, c->argv, c->argvlen)) {
        run(c->n, &o, c->argc, (const char **)c->argv, (size_t *)c->argvlen);
    }
}

bool load_forwarded(struct node *n, const struct origin *o, const void *blob, size_t len)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get_argv(blob, len, &argc, &argv, &argvlen)) {
        return false;
    }
    bool ours = is_ours(argc, argv, argvlen);
    if (ours && !well_formed(argc, argv, argvlen)) {
        reply_text(n, o, "-" SYNTAX_REPLY "\r\n");
    } else if (ours) {
        run(n, o, argc, argv, argvlen);
    }
    free(argv);
    free(argvlen);
    return ours;
}

void load_checked(struct node *n, struct fsm_job *job)
{
    struct loads *ld = &n->ld;
    ld->checking = false;
    if (ld->stopped) {
        return;
    }
    if (job->status != 0) {
        node_log(n, "RAFT.LOAD refused %s: %s", job->path, job->errmsg);
        reply_error(n, &ld->o, "the script is refused: %s", job->errmsg);
        return;
    }
    if (raft_role_of(n->raft) != RAFT_LEADER || n->stopping) {
        reply_text(n, &ld->o,
                   "-TRYAGAIN leadership changed while the script was checked; retry\r\n");
        return;
    }
    struct buf payload;
    buf_init(&payload);
    lr_assert(command_put_load(&payload, job->path, strlen(job->path), job->text, job->text_len) ==
              0);
    writes_push(n, &payload, &ld->o);
    writes_propose(n);
}

void load_adopt(struct node *n, struct fsm *f, raft_index index, bool restored)
{
    lr_assert(f != NULL);
    n->fsm = f;
    unsigned char h[FSM_SOURCE_HASH_BYTES];
    fsm_source_hash(f, h);
    struct script_identity id = {.since = index};
    memcpy(id.hash, h, sizeof h);
    snprintf(n->script_name, sizeof n->script_name, "%s", fsm_name(f));
    script_identity_hex(&id, n->script_hash);
    n->script_since = index;
    node_log(n, "%s: this node runs script %s (content %.16s...) from index %" PRIu64,
             restored ? "restored a snapshot of an upgraded script" : "script upgraded (RAFT.LOAD)",
             n->script_name, n->script_hash, index);
}

void load_stop(struct node *n)
{
    struct loads *ld = &n->ld;
    if (ld->checking && !ld->stopped) {
        reply_text(n, &ld->o, node_down_reply);
    }
    ld->stopped = true;
}
