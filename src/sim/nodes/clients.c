/* The whole-node simulator: clients with one operation in flight each, recorded for the
 * linearizability checker. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/nodes/internal.h"
#include "util/assert.h"

/* ------------------------------------------------------------------------------------ */
/* Clients: one operation in flight each, on a few keys, recorded for the checker. */

void ns_client_next(struct world *w, int c)
{
    ns_schedule(
        w, (struct event){.time = w->now + ns_rnd(w, 0, 20), .type = EV_CLIENT_SEND, .node = c});
}

void ns_client_unknown(struct world *w, int c)
{
    struct sim_client *cl = &w->clients[c];
    lincheck_unknown(w->h, cl->op);
    cl->op = -1;
    cl->uid = ++w->next_uid; /* an unknown operation never completes: a new client */
    cl->target = (int)ns_rnd(w, 0, (uint64_t)w->n_nodes - 1);
    w->st->ops_unknown++;
}

/* The client's connection to node s, opened on first use and after a crash of s. */
static struct session *client_session(struct world *w, struct sim_client *cl, struct sim_node *s)
{
    (void)w;
    if (cl->sess[s->idx] == NULL || cl->sess_inc[s->idx] != s->inc) {
        cl->sess[s->idx] = node_session_open(s->n);
        cl->sess_inc[s->idx] = s->inc;
    }
    return cl->sess[s->idx];
}

/* Hands node s one command of client c (op -1: a MULTI or a queued command). */
static struct server_request *submit(struct sim_node *s,
                                     int c,
                                     int64_t op,
                                     struct session *sess,
                                     int argc,
                                     const char *const *argv,
                                     const size_t *argvlen)
{
    struct server_request *r = calloc(1, sizeof *r);
    lr_assert(r != NULL);
    r->client = c;
    r->op = op;
    r->aux = op < 0;
    r->next = s->reqs;
    s->reqs = r;
    node_command(s->n, r, sess, argc, argv, argvlen);
    return r;
}

void ns_client_send(struct world *w, int c)
{
    struct sim_client *cl = &w->clients[c];
    if (cl->op >= 0 || w->st->ops >= w->o->steps || w->failed) {
        return;
    }
    char key[8], val[32], val2[32];
    snprintf(key, sizeof key, "k%u", (unsigned)ns_rnd(w, 0, sim_keys - 1));
    snprintf(val, sizeof val, "%" PRIu64, cl->uid * 1000 + cl->n++);
    snprintf(val2, sizeof val2, "%" PRIu64, ns_rnd(w, 0, 3) == 0 ? 0 : cl->uid * 1000 + cl->n++);
    static const char *names[] = {"GET", "SET", "DEL", "INCR", "CAS"};
    enum lincheck_op kinds[] = {LINCHECK_GET, LINCHECK_SET, LINCHECK_INCR, LINCHECK_CAS};
    cl->kind = kinds[ns_rnd(w, 0, 3)];
    const char *argv[4] = {names[cl->kind], key, val, val2};
    size_t argvlen[4] = {strlen(argv[0]), strlen(key), strlen(val), strlen(val2)};
    int argc = cl->kind == LINCHECK_SET ? 3 : cl->kind == LINCHECK_CAS ? 4 : 2;
    if (cl->kind == LINCHECK_CAS) { /* CAS key expected new: expect what was last set */
        argv[2] = val2, argv[3] = val;
        argvlen[2] = strlen(val2), argvlen[3] = strlen(val);
    }
    struct lincheck_call call = {.op = cl->kind, .key = {key, argvlen[1]}};
    if (argc >= 3) {
        call.arg = (struct lincheck_bytes){argv[2], argvlen[2]};
    }
    if (argc == 4) {
        call.arg2 = (struct lincheck_bytes){argv[3], argvlen[3]};
    }
    if (!w->nodes[cl->target].up) { /* connection refused: nothing was sent */
        cl->target = (cl->target + 1) % w->n_nodes;
        ns_client_next(w, c);
        return;
    }
    cl->op = lincheck_invoke(w->h, cl->uid, w->now, &call);
    lr_assert(cl->op >= 0);
    w->st->ops++;
    struct sim_node *s = &w->nodes[cl->target];
    struct session *sess = client_session(w, cl, s);
    /* Some writes go as MULTI, the command, EXEC: the same operation, one log entry of
     * the TRANSACTION kind, and the same checks. */
    bool multi = cl->kind != LINCHECK_GET && ns_chance(w, 15);
    if (multi) {
        static const char *multi_argv[] = {"MULTI"};
        static const size_t multi_len[] = {5};
        submit(s, c, -1, sess, 1, multi_argv, multi_len);
        submit(s, c, -1, sess, argc, argv, argvlen);
    }
    static const char *exec_argv[] = {"EXEC"};
    static const size_t exec_len[] = {4};
    struct server_request *r = multi ? submit(s, c, cl->op, sess, 1, exec_argv, exec_len)
                                     : submit(s, c, cl->op, sess, argc, argv, argvlen);
    node_turn(s->n);
    if (!r->answered && ns_chance(w, 2)) {
        r->lost = true; /* the connection drops: the client never learns the outcome */
        w->st->lost_connections++;
        node_session_close(s->n, sess);
        cl->sess[cl->target] = NULL;
        ns_client_unknown(w, c);
        ns_client_next(w, c);
        return;
    }
    ns_schedule(w, (struct event){.time = w->now + sim_client_timeout_ms,
                                  .type = EV_CLIENT_TIMEOUT,
                                  .node = c,
                                  .a = (uint64_t)cl->op});
}

/* Parses the reply; false if it proves nothing (an error whose outcome is unknown). */
static bool parse_reply(enum lincheck_op kind, const char *r, struct lincheck_output *out)
{
    if (r[0] == '+' && strncmp(r, "+OK\r\n", 5) == 0) {
        out->kind = LINCHECK_REPLY_OK;
    } else if (strncmp(r, "$-1\r\n", 5) == 0) {
        out->kind = LINCHECK_REPLY_NIL;
    } else if (r[0] == '$') {
        const char *p = strstr(r, "\r\n");
        out->kind = LINCHECK_REPLY_BULK;
        out->value = (struct lincheck_bytes){p + 2, (size_t)strtoull(r + 1, NULL, 10)};
    } else if (r[0] == ':') {
        out->kind = LINCHECK_REPLY_INT;
        out->n = strtoll(r + 1, NULL, 10);
    } else if (kind == LINCHECK_INCR && strstr(r, "not an integer") != NULL) {
        out->kind = LINCHECK_REPLY_ERR;
    } else {
        return false;
    }
    return true;
}

void ns_client_reply(struct world *w, struct event *ev)
{
    int c = ev->node;
    struct sim_client *cl = &w->clients[c];
    if (cl->op != (int64_t)ev->a) {
        return; /* an operation the client gave up on */
    }
    struct lincheck_output out = {0};
    const char *r = ev->p;
    if (strncmp(r, "*1\r\n", 4) == 0) {
        r += 4; /* EXEC's array of the one command's reply */
    }
    if (strncmp(r, "-TRYAGAIN ", 10) == 0) {
        /* The node promises that a -TRYAGAIN command was not proposed (src/node/): the
         * check holds it to that, so a node that broke the promise would be caught. */
        int rv = lincheck_failed(w->h, cl->op, w->now);
        lr_assert(rv == 0);
        cl->op = -1;
        cl->target = (int)ns_rnd(w, 0, (uint64_t)w->n_nodes - 1);
        w->st->ops_refused++;
    } else if (!parse_reply(cl->kind, r, &out)) {
        if (((char *)ev->p)[0] != '-') {
            ns_violation(w, "client %d: a reply no command gives: %.60s", c, (char *)ev->p);
        }
        ns_client_unknown(w, c);
    } else {
        int rv = lincheck_complete(w->h, cl->op, w->now, &out);
        lr_assert(rv == 0);
        cl->op = -1;
        w->st->ops_ok++;
    }
    ns_client_next(w, c);
}
