/*
 * A verification pass over a closed store (store_verify.c): every record read and its
 * checksum checked in a child process, so that a damaged LMDB page kills the child, not
 * the node. Run before store_open, on the loop thread, while no other process uses the
 * directory.
 */
#ifndef LUARAFT_STORE_STORE_VERIFY_H
#define LUARAFT_STORE_STORE_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"

enum store_verdict {
    STORE_VERIFY_OK = 0,      /* every record read and verified */
    STORE_VERIFY_ABSENT = 1,  /* no data.mdb (or an empty one): a fresh directory */
    STORE_VERIFY_DAMAGED = 2, /* a record failed its checksum, or LMDB reported damage */
    STORE_VERIFY_CRASHED = 3, /* reading it killed the child (a damaged LMDB page) */
};

struct store_verify_report
{
    int verdict; /* enum store_verdict */
    /* The hard state record was read and verified, or it is absent and every other meta
     * record verified (so that its name was not what a flip damaged). */
    bool has_hard_state;
    raft_term term; /* has_hard_state: the stored term and vote */
    raft_id vote;
    uint64_t records; /* records verified */
    char what[256];   /* DAMAGED, CRASHED: a sentence for the log */
};

/* Verifies the store in dir, opened with map_bytes. Returns 0 with *out filled, or a
 * negative errno when the child cannot be started (pipe, fork). */
int store_verify(const char *dir, uint64_t map_bytes, struct store_verify_report *out);

#endif
