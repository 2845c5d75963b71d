/*
 * /status and /health of the HTTP port (status.c): the node as JSON, for the status page
 * and for scripts, and whether it is fit to serve.
 */
#ifndef LUARAFT_NODE_STATUS_H
#define LUARAFT_NODE_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct node;

/*
 * Whether the node is fit to serve: it knows a leader (it may be the leader), its store
 * has not failed, it is not stopping, and it has applied all but at most
 * health_lag_max of the entries it knows committed. When not, why, in reason (one line).
 */
bool status_healthy(struct node *n, char *reason, size_t reason_size);

/* Appends the node's status as one JSON object to out (its fields: status.c). */
void status_json(struct node *n, struct buf *out);

#endif
