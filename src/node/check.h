/*
 * RAFT.CHECK's state and functions (check.c), apart from internal.h, which includes this.
 */
#ifndef LUARAFT_NODE_CHECK_H
#define LUARAFT_NODE_CHECK_H

#include <stdint.h>

#include "fsm/fsm.h"
#include "raft/raft.h"

struct node;
struct server_request;

/* RAFT.CHECK (check.c). */
enum { node_checks_kept = 8 };

struct check_record
{
    raft_index index; /* 0: empty */
    int rv;
    unsigned char hash[FSM_STATE_HASH_BYTES];
};

struct check_answer
{
    raft_id id;
    int state;
    unsigned char hash[FSM_STATE_HASH_BYTES];
};

struct checks
{
    struct check_record recent[node_checks_kept]; /* this node's last hashes */
    unsigned next;
    /* The leader's check in progress: its caller, the CHECK entry's index once applied
     * here, and what each member said. */
    struct server_request *req;
    raft_index index;
    uint64_t deadline_ms, asked_ms;
    struct check_answer answers[RAFT_SERVERS_MAX];
    int n;
};

void check_request(struct node *n, struct server_request *req);
/* A CHECK entry was applied here: the state's hash (rv 0), or M.snapshot's error. */
void check_applied(struct node *n, raft_index index, int rv, const unsigned char *hash);
void check_tick(struct node *n);
void check_frame(struct node *n, raft_id from, const void *body, size_t len);
void check_stop(struct node *n);

#endif
