/*
 * Recording a history (lincheck.h has the contract; lincheck_internal.h the map of the
 * checker's files). Operations are kept in call order of lincheck_invoke(), each with
 * copies of its bytes; a small hash table of clients enforces the recording discipline.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/lincheck.h"
#include "sim/lincheck_internal.h"
#include "util/assert.h"

/* A client as recording sees it: one operation in flight at most, and retired once one
 * ends unknown. */
struct client
{
    uint64_t id;
    int64_t pending;      /* the operation in flight, or -1 */
    uint64_t last_return; /* of its last completed operation */
    bool used, retired;
};

struct lincheck *lincheck_new(void)
{
    return calloc(1, sizeof(struct lincheck));
}

void lincheck_free(struct lincheck *h)
{
    if (h == NULL) return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->ops[i].bytes);
        free(h->ops[i].value);
    }
    free(h->ops);
    free(h->clients);
    free(h);
}

size_t lincheck_size(const struct lincheck *h)
{
    return h->n;
}

static struct client *client_find(const struct lincheck *h, uint64_t id)
{
    if (h->clients_cap == 0) return NULL;
    size_t mask = h->clients_cap - 1;
    for (size_t i = mix64(id) & mask;; i = (i + 1) & mask) {
        struct client *c = &h->clients[i];
        if (!c->used) return NULL;
        if (c->id == id) return c;
    }
}

/* Rehashes into a table twice as large (or the first one). */
static int clients_grow(struct lincheck *h)
{
    size_t cap = h->clients_cap ? h->clients_cap * 2 : 16;
    struct client *t = calloc(cap, sizeof *t);
    if (t == NULL) return LINCHECK_ENOMEM;
    for (size_t i = 0; i < h->clients_cap; i++) {
        if (!h->clients[i].used) continue;
        size_t j = mix64(h->clients[i].id) & (cap - 1);
        while (t[j].used)
            j = (j + 1) & (cap - 1);
        t[j] = h->clients[i];
    }
    free(h->clients);
    h->clients = t;
    h->clients_cap = cap;
    return 0;
}

/* The entry for a new client id (not in the table), or NULL when out of memory. */
static struct client *client_add(struct lincheck *h, uint64_t id)
{
    if ((h->clients_n + 1) * 2 > h->clients_cap && clients_grow(h) != 0) return NULL;
    size_t mask = h->clients_cap - 1;
    size_t i = mix64(id) & mask;
    while (h->clients[i].used)
        i = (i + 1) & mask;
    h->clients_n++;
    h->clients[i] = (struct client){.id = id, .pending = -1, .used = true};
    return &h->clients[i];
}

static int ops_reserve(struct lincheck *h)
{
    if (h->n < h->cap) return 0;
    if (h->n >= lincheck_ops_max) return LINCHECK_ELIMIT;
    size_t cap = h->cap ? h->cap * 2 : 64;
    struct rec *ops = realloc(h->ops, cap * sizeof *ops);
    if (ops == NULL) return LINCHECK_ENOMEM;
    h->ops = ops;
    h->cap = cap;
    return 0;
}

static int call_check(const struct lincheck *h,
                      uint64_t client,
                      uint64_t time,
                      const struct lincheck_call *call)
{
    if ((unsigned)call->op > LINCHECK_CAS || time == LINCHECK_TIME_INFINITY) {
        return LINCHECK_EINVAL;
    }
    if (call->key.len > lincheck_key_bytes_max || call->arg.len > lincheck_value_bytes_max ||
        call->arg2.len > lincheck_value_bytes_max) {
        return LINCHECK_ELIMIT;
    }
    const struct client *c = client_find(h, client);
    if (c != NULL && (c->pending >= 0 || c->retired)) return LINCHECK_ECLIENT;
    if (c != NULL && time < c->last_return) return LINCHECK_EINVAL;
    return 0;
}

static void copy_bytes(uint8_t *dst, struct lincheck_bytes b)
{
    if (b.len > 0) memcpy(dst, b.data, b.len);
}

int64_t lincheck_invoke(struct lincheck *h,
                        uint64_t client,
                        uint64_t time,
                        const struct lincheck_call *call)
{
    int rv = call_check(h, client, time, call);
    if (rv != 0) return rv;
    rv = ops_reserve(h);
    if (rv != 0) return rv;
    /* SET has one argument, CAS two, the others none. */
    size_t arg_len = call->op == LINCHECK_SET || call->op == LINCHECK_CAS ? call->arg.len : 0;
    size_t arg2_len = call->op == LINCHECK_CAS ? call->arg2.len : 0;
    uint8_t *bytes = malloc(call->key.len + arg_len + arg2_len + 1);
    if (bytes == NULL) return LINCHECK_ENOMEM;
    struct client *c = client_find(h, client);
    if (c == NULL) c = client_add(h, client);
    if (c == NULL) {
        free(bytes);
        return LINCHECK_ENOMEM;
    }
    copy_bytes(bytes, call->key);
    if (arg_len > 0) copy_bytes(bytes + call->key.len, call->arg);
    if (arg2_len > 0) copy_bytes(bytes + call->key.len + arg_len, call->arg2);
    struct rec *r = &h->ops[h->n];
    *r = (struct rec){
        .client = client,
        .call = time,
        .ret = LINCHECK_TIME_INFINITY,
        .bytes = bytes,
        .key_len = call->key.len,
        .arg_len = arg_len,
        .arg2_len = arg2_len,
        .id = (uint32_t)h->n,
        .op = (uint8_t)call->op,
        .status = STATUS_PENDING,
    };
    c->pending = (int64_t)h->n;
    return (int64_t)h->n++;
}

static struct rec *pending_op(struct lincheck *h, int64_t id)
{
    if (id < 0 || (uint64_t)id >= h->n) return NULL;
    struct rec *r = &h->ops[id];
    return r->status == STATUS_PENDING ? r : NULL;
}

int lincheck_complete(struct lincheck *h,
                      int64_t id,
                      uint64_t time,
                      const struct lincheck_output *out)
{
    struct rec *r = pending_op(h, id);
    if (r == NULL || time < r->call || time == LINCHECK_TIME_INFINITY) return LINCHECK_EINVAL;
    if ((unsigned)out->kind > LINCHECK_REPLY_ERR) return LINCHECK_EINVAL;
    if (out->kind == LINCHECK_REPLY_BULK) {
        if (out->value.len > lincheck_value_bytes_max) return LINCHECK_ELIMIT;
        r->value = malloc(out->value.len + 1);
        if (r->value == NULL) return LINCHECK_ENOMEM;
        copy_bytes(r->value, out->value);
        r->value_len = out->value.len;
    }
    r->reply = (uint8_t)out->kind;
    r->n = out->kind == LINCHECK_REPLY_INT ? out->n : 0;
    r->ret = time;
    r->status = STATUS_DONE;
    struct client *c = client_find(h, r->client);
    lr_assert(c != NULL && c->pending == id);
    c->pending = -1;
    c->last_return = time;
    return 0;
}

int lincheck_unknown(struct lincheck *h, int64_t id)
{
    struct rec *r = pending_op(h, id);
    if (r == NULL) return LINCHECK_EINVAL;
    r->status = STATUS_UNKNOWN;
    struct client *c = client_find(h, r->client);
    lr_assert(c != NULL && c->pending == id);
    c->pending = -1;
    c->retired = true; /* its next call could overlap the unknown one: a new id must */
    return 0;
}

int lincheck_failed(struct lincheck *h, int64_t id, uint64_t time)
{
    struct rec *r = pending_op(h, id);
    if (r == NULL || time < r->call || time == LINCHECK_TIME_INFINITY) return LINCHECK_EINVAL;
    r->status = STATUS_FAILED;
    r->ret = time;
    struct client *c = client_find(h, r->client);
    lr_assert(c != NULL && c->pending == id);
    c->pending = -1;
    c->last_return = time;
    return 0;
}

const char *lincheck_strerror(int rv)
{
    switch (rv) {
        case LINCHECK_OK:
            return "ok";
        case LINCHECK_VIOLATION:
            return "violation";
        case LINCHECK_UNDECIDED:
            return "undecided";
        case LINCHECK_EINVAL:
            return "EINVAL";
        case LINCHECK_ENOMEM:
            return "ENOMEM";
        case LINCHECK_ELIMIT:
            return "ELIMIT";
        case LINCHECK_ECLIENT:
            return "ECLIENT";
        default:
            return "unknown error";
    }
}
