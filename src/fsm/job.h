/*
 * A job for the fsm thread (src/fsm/worker.c) and its result: a batch of committed
 * entries to apply, a batch of queries, a snapshot to take or a snapshot file to restore.
 * Defined apart from the thread so that a simulator can run the same jobs in-process.
 */
#ifndef LUARAFT_FSM_JOB_H
#define LUARAFT_FSM_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fsm/fsm.h"

enum {
    fsm_job_path_bytes_max = 512, /* a snapshot file's path */
};

enum fsm_job_type {
    FSM_JOB_APPLY = 1,
    FSM_JOB_QUERY = 2,
    FSM_JOB_SNAPSHOT = 3,
    FSM_JOB_RESTORE = 4,
    FSM_JOB_STOP = 5,
    FSM_JOB_CHECK_SCRIPT = 6, /* RAFT.LOAD: does the script load and keep the contract? */
};

/* A committed entry, with a copy of its payload that the job owns. */
struct fsm_job_entry
{
    uint64_t index;
    uint64_t term;
    uint32_t type; /* enum raft_entry_type: only NORMAL entries reach the script */
    bool want_reply;
    uint32_t reply_headroom; /* in: bytes left free before the reply (at most 64), so the
                                node can send it in a frame without copying it */
    uint32_t len;
    void *payload;
    struct fsm_reply reply; /* out: the script's reply when want_reply */
    /* out: a COMMAND entry whose reply is an error (a Lua error, an exceeded budget, the
     * script's {err = ...}), on every replica whether or not it keeps the reply */
    bool error_reply;
    /* out, for a CHECK entry: the hash of the state there (fsm_state_hash), or hash_rv
     * its error (FSM_E*, the same on every replica). */
    bool checked;
    int hash_rv;
    unsigned char state_hash[FSM_STATE_HASH_BYTES];
    /* out, for a LOAD entry that switched scripts: the successor (fsm_upgrade), which the
     * thread that applied the entry now runs (fsm_job_adopt), and the fsm it replaced,
     * its Lua state closed, whose command table the loop thread reads until it adopts
     * loaded's; fsm_job_free frees retired. */
    struct fsm *loaded;
    struct fsm *retired;
};

enum fsm_query_kind {
    FSM_QUERY_COMMAND = 0,  /* M.query(cmd, ctx) of the blob's command */
    FSM_QUERY_KEYSPACE = 1, /* fsm_keyspace: [keys, expires] or null; the blob is not read */
};

/* A read: an argv blob the job owns, and the loop's tag for the waiting client. */
struct fsm_job_query
{
    void *tag;
    uint8_t kind; /* enum fsm_query_kind; 0 (zeroed) is a command */
    void *blob;
    size_t len;
    struct fsm_reply reply; /* out */
};

struct fsm_job
{
    struct fsm_job *next;
    enum fsm_job_type type;

    struct fsm_job_entry *entries; /* APPLY */
    unsigned n_entries;

    struct fsm_job_query *queries; /* QUERY */
    unsigned n_queries;

    char path[fsm_job_path_bytes_max]; /* RESTORE: the file; SNAPSHOT: the directory */
    _Static_assert(fsm_job_path_bytes_max > 255, "a script's name fits in path");
    uint64_t index; /* RESTORE: the snapshot's; SNAPSHOT out: what the child writes */
    uint64_t term;
    /* SNAPSHOT: the members record for the file's header (snapfile_begin_members), owned
     * by the job (malloc'd), or NULL */
    void *members;
    size_t members_len;

    /* RESTORE out: the snapshot brought another script (fsm_worker_restore_file): the fsm
     * that now runs it, the one it replaced (freed with the job), and the index that
     * script runs from */
    struct fsm *loaded;
    struct fsm *retired;
    uint64_t since;

    /* CHECK_SCRIPT: the script's text (owned by the job); its name is in path */
    void *text;
    size_t text_len;

    int status; /* out: 0 or an FSM_E* / SNAPFILE_E* / -errno code */
    pid_t pid;  /* SNAPSHOT out: the child writing the file */
    char errmsg[256];
};

/* Allocates a zeroed job of the type. Returns NULL when out of memory. */
struct fsm_job *fsm_job_new(enum fsm_job_type type);

/* Frees a job with its entries, queries and replies. */
void fsm_job_free(struct fsm_job *job);

/*
 * Applies one committed entry: decodes its payload (command.h) and runs it, with the ctx
 * {index, term, time_ms = the payload's time, seed = a hash of index and term}:
 *   COMMAND      M.apply(cmd, ctx); its reply is the entry's.
 *   TICK         fsm_tick: the clock moves to the entry's time and M.tick(ctx) runs if the
 *                script has it, its reply and error dropped; the entry's reply is +OK.
 *   TRANSACTION  its commands back to back (fsm_apply_command: a read through M.query, a
 *                write through M.apply), each with the entry's ctx and a budget of its own;
 *                a command's error is its reply and the rest still run (Redis's EXEC); the
 *                entry's reply is the RESP array of theirs.
 *   CHECK        the state's hash (fsm_state_hash) into the entry; the reply is +OK.
 *   LOAD         fsm_upgrade to the entry's script: on success e->loaded is the successor
 *                (the caller switches with fsm_job_adopt) and the reply is +OK; else the
 *                reply is the error, the same on every replica, and f goes on.
 * A payload that does not decode gets the same error reply on every replica (the bytes
 * are the same everywhere), so replicas cannot diverge. Only NORMAL entries reach the
 * script; every entry moves the fsm's applied index (fsm_applied).
 */
void fsm_job_apply_entry(struct fsm *f, struct fsm_job_entry *e);

/* After fsm_job_apply_entry(f, e): the fsm to run from now on. For an entry that loaded a
 * successor, closes f's Lua state, keeps f in e->retired and returns e->loaded; else f. */
struct fsm *fsm_job_adopt(struct fsm *f, struct fsm_job_entry *e);

/* Runs one query: an argv blob through M.query, or the keyspace (by q->kind). */
void fsm_job_run_query(struct fsm *f, struct fsm_job_query *q);

#endif
