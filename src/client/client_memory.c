/*
 * What the clients hold, and the cap on it. Each client's held bytes are its parser's
 * allocation (unparsed input, argument arrays) and its answered replies not yet written;
 * the server keeps their sum up to date at every point where one of them changes
 * (client_account). Per-client limits (query_bytes_max, bulk_bytes_max, out_bytes_max)
 * bound one client; this bounds all of them together, so that many clients each within
 * its own limit cannot take the node's memory (four clients each sending a 500 MB value
 * once held 2 GB). Past clients_bytes_max the client holding the most is evicted, and the
 * next, until the sum is below the cap again: the one that grows the sum is usually the one
 * that goes, and a client with little in its buffers is never the victim while a bigger
 * one exists.
 */
#include <stdio.h>

#include "client/resp.h"
#include "client/server_internal.h"
#include "util/assert.h"

static const char evicted_text[] =
    "ERR client evicted: the node's client buffers passed their limit (--client-memory)";

void client_account(struct server_client *c)
{
    struct server *s = c->server;
    uint64_t held = 0;
    if (!c->closing) {
        held = resp_parser_bytes(&c->parser) + c->out_bytes;
    }
    lr_assert(s->held_bytes >= c->held_bytes);
    s->held_bytes = s->held_bytes - c->held_bytes + held;
    c->held_bytes = held;
}

/* The open client holding the most that has not been given up on already, or NULL. */
static struct server_client *largest_client(struct server *s)
{
    struct server_client *best = NULL;
    for (struct server_client *c = s->clients; c != NULL; c = c->next) {
        if (!c->closing && !c->close_after_flush &&
            (best == NULL || c->held_bytes > best->held_bytes)) {
            best = c;
        }
    }
    return best;
}

/*
 * Gives up on c: its input goes at once. A client with replies still to send is closed
 * (they cannot wait: they are what must be freed, and an error would come after them);
 * one that only holds input gets the error and is closed once it is written.
 */
static void client_evict(struct server_client *c)
{
    struct server *s = c->server;
    s->evicted++;
    resp_parser_discard(&c->parser, "client evicted");
    if (c->out_bytes > 0 || c->in_process) {
        client_close(c);
    } else {
        client_fail(c, evicted_text);
    }
    client_account(c);
}

void server_enforce_memory(struct server *s)
{
    uint64_t max = s->options.clients_bytes_max;
    while (max != 0 && s->held_bytes > max) {
        struct server_client *c = largest_client(s);
        if (c == NULL) {
            return;
        }
        client_evict(c);
    }
}

void server_memory(const struct server *s, struct server_memory *m)
{
    m->held_bytes = s->held_bytes;
    m->largest_bytes = 0;
    for (const struct server_client *c = s->clients; c != NULL; c = c->next) {
        if (c->held_bytes > m->largest_bytes) {
            m->largest_bytes = c->held_bytes;
        }
    }
    m->evicted = s->evicted;
}
