/*
 * Script upgrades (RAFT.LOAD, README.md "Upgrading the script"): the successor of a
 * running fsm. The new script is opened in a Lua state of its own, under the limits the
 * old one was opened with; the state moves across as bytes, through the old script's
 * M.snapshot and the new script's M.restore (the one format both already agree on, since
 * a snapshot of the old version must restore into the new one anyway); then the new
 * module's optional M.upgrade(old_version, ctx) runs with the entry's ctx, under the
 * instruction budget, so it can reshape the state. Every replica does this at the same
 * log index with the same bytes, so every replica gets the same successor, or the same
 * error and keeps the old script.
 */
#include <lauxlib.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm_internal.h"
#include "util/buf.h"

enum { upgrade_chunk_bytes = 64 * 1024 }; /* as M.restore reads a snapshot file */

struct state_bytes
{
    struct buf b;
    size_t at; /* read so far */
};

static int state_write(void *arg, const void *data, size_t len)
{
    struct state_bytes *s = arg;
    return buf_append(&s->b, data, len) == 0 ? 0 : -1;
}

static int state_read(void *arg, const void **data, size_t *len)
{
    struct state_bytes *s = arg;
    size_t left = s->b.len - s->at;
    *len = left < upgrade_chunk_bytes ? left : upgrade_chunk_bytes;
    *data = s->b.data + s->at;
    s->at += *len;
    return 0;
}

/* "ERR RAFT.LOAD: <what>: <why>" as the reply. */
static int refuse(struct fsm_reply *out, const char *what, const char *why)
{
    char text[fsm_error_bytes_max];
    snprintf(text, sizeof text, "ERR RAFT.LOAD: %.100s: %.900s", what, why);
    if (out != NULL) {
        out->len = 0;
        reply_append_error(out, text, strlen(text));
    }
    return FSM_ELOAD;
}

/* Moves old's state into f: old's M.snapshot, f's M.restore. */
static int hand_over(struct fsm *old, struct fsm *f, struct fsm_reply *out)
{
    struct state_bytes s = {.at = 0};
    buf_init(&s.b);
    int rv = fsm_snapshot(old, state_write, &s);
    if (rv != 0) {
        buf_free(&s.b);
        return refuse(out, "M.snapshot of the running script failed",
                      rv == FSM_ESTREAM ? "out of memory" : fsm_last_error(old));
    }
    rv = fsm_restore(f, state_read, &s);
    buf_free(&s.b);
    if (rv != 0) {
        return refuse(out, "M.restore of the new script failed", fsm_last_error(f));
    }
    return 0;
}

int fsm_open_successor(const struct fsm *old,
                       const char *name,
                       const char *source,
                       size_t len,
                       struct fsm **out,
                       char *errmsg,
                       size_t errmsg_size)
{
    int rv = fsm_open_source(out, name, source, len, &old->limits, errmsg, errmsg_size);
    if (rv == 0) {
        memcpy((*out)->test_diverge_key, old->test_diverge_key, sizeof old->test_diverge_key);
    }
    return rv;
}

int fsm_upgrade(struct fsm *old,
                const char *name,
                const char *source,
                size_t len,
                const struct fsm_ctx *ctx,
                struct fsm **out,
                struct fsm_reply *reply)
{
    char msg[fsm_error_bytes_max];
    struct fsm *f;
    int rv = fsm_open_successor(old, name, source, len, &f, msg, sizeof msg);
    if (rv != 0) {
        return refuse(reply, "the new script does not load", msg);
    }
    rv = hand_over(old, f, reply);
    if (rv == 0) {
        f->applied = old->applied;
        f->time_ms = old->time_ms;
        struct fsm_reply scratch = {0};
        rv = fsm_call_upgrade(f, ctx, old->has_version ? old->version : NULL, &scratch);
        if (rv != 0 || (scratch.len > 0 && scratch.data[0] == '-')) { /* an error reply */
            char why[fsm_error_bytes_max];
            /* the error reply's text, without its "-" and CRLF */
            size_t n = scratch.len > 3 ? scratch.len - 3 : 0;
            n = n < sizeof why - 1 ? n : sizeof why - 1;
            memcpy(why, scratch.data + (scratch.len > 3 ? 1 : 0), n);
            why[n] = '\0';
            rv = refuse(reply, "M.upgrade failed", why);
        }
        fsm_reply_free(&scratch);
    }
    if (rv != 0) {
        fsm_close(f);
        return FSM_ELOAD;
    }
    *out = f;
    return 0;
}

const char *fsm_source(const struct fsm *f, size_t *len)
{
    *len = f->source_len;
    return f->source;
}

const char *fsm_name(const struct fsm *f)
{
    return f->chunk_name;
}

void fsm_source_hash(const struct fsm *f, unsigned char out[FSM_SOURCE_HASH_BYTES])
{
    crypto_generichash(out, FSM_SOURCE_HASH_BYTES, (const unsigned char *)f->source, f->source_len,
                       NULL, 0);
}
