/*
 * CLUSTER's subcommands over the Raft configuration (cluster_view.h). Each reply is built
 * from one view of the cluster: the members with their client addresses, which of them
 * leads, and which this node can reach.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client/resp.h"
#include "node/cluster_view.h"
#include "node/info.h"
#include "node/internal.h"
#include "util/assert.h"

/* ------------------------------------------------------------------------------------ */
/* Slots and ids. */

static uint16_t crc16_xmodem(const uint8_t *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? (uint16_t)(crc << 1 ^ 0x1021) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint16_t cluster_keyslot(const void *key, size_t len)
{
    const uint8_t *k = key;
    const uint8_t *open = len > 0 ? memchr(k, '{', len) : NULL;
    if (open != NULL) {
        size_t from = (size_t)(open - k) + 1;
        const uint8_t *close = memchr(k + from, '}', len - from);
        if (close != NULL && close > k + from) {
            return crc16_xmodem(k + from, (size_t)(close - (k + from))) & (CLUSTER_SLOTS - 1);
        }
    }
    return crc16_xmodem(k, len) & (CLUSTER_SLOTS - 1);
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cluster_hex_id(uint64_t seed, char out[CLUSTER_NODE_ID_HEX + 1])
{
    char hex[3 * 16 + 1];
    uint64_t a = splitmix64(&seed), b = splitmix64(&seed), c = splitmix64(&seed);
    snprintf(hex, sizeof hex, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, a, b, c);
    memcpy(out, hex, CLUSTER_NODE_ID_HEX);
    out[CLUSTER_NODE_ID_HEX] = '\0';
}

void cluster_node_id(uint64_t id, char out[CLUSTER_NODE_ID_HEX + 1])
{
    cluster_hex_id(id ^ 0x6c75617261667400ULL, out); /* "luaraft" */
}

/* ------------------------------------------------------------------------------------ */
/* The view. */

struct view_node
{
    raft_id id;
    char node_id[CLUSTER_NODE_ID_HEX + 1];
    char host[node_host_bytes_max]; /* "" when its client address is not known */
    int port, bus_port;
    bool master, myself, connected;
    uint64_t offset; /* replication offset: the applied or matched index */
};

struct view
{
    struct view_node nodes[RAFT_SERVERS_MAX];
    int n;
    int master; /* index into nodes, -1 when no leader (with an address) is known */
    raft_term term;
};

static void view_node_fill(struct node *n,
                           const struct node_member *m,
                           raft_id leader,
                           struct view_node *v)
{
    memset(v, 0, sizeof *v);
    v->id = m->id;
    cluster_node_id(m->id, v->node_id);
    v->bus_port = m->port;
    v->myself = m->id == n->c->id;
    v->master = m->id == leader;
    v->connected = v->myself || n->io->peer_connected(n->io->arg, m->id);
    const char *addr = v->myself ? n->client_addr : n->io->peer_client_addr(n->io->arg, m->id);
    if (addr == NULL || node_parse_addr(addr, v->host, sizeof v->host, &v->port) != 0) {
        v->host[0] = '\0';
        v->port = 0;
    }
    struct raft_peer_info pi;
    if (v->myself) {
        v->offset = n->applied;
    } else if (raft_role_of(n->raft) == RAFT_LEADER && raft_peer_info(n->raft, m->id, &pi)) {
        v->offset = pi.match;
    }
}

static void view_make(struct node *n, struct view *v)
{
    raft_id leader = raft_leader_of(n->raft);
    v->n = 0;
    v->master = -1;
    v->term = raft_current_term(n->raft);
    for (int i = 0; i < n->n_members && v->n < RAFT_SERVERS_MAX; i++) {
        struct view_node *vn = &v->nodes[v->n];
        view_node_fill(n, &n->members[i], leader, vn);
        if (vn->master && vn->host[0] != '\0') {
            v->master = v->n;
        }
        v->n++;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Replies. */

static void put_error(struct buf *out, const char *text)
{
    lr_assert(resp_put_error(out, text, strlen(text)) == 0);
}

static void reply_slots(const struct view *v, struct buf *out)
{
    size_t k = 1;
    for (int i = 0; i < v->n; i++) {
        k += i != v->master && v->nodes[i].host[0] != '\0' && v->nodes[i].connected;
    }
    resp_put_array(out, 1);
    resp_put_array(out, 2 + k);
    resp_put_integer(out, 0);
    resp_put_integer(out, CLUSTER_SLOTS - 1);
    for (int pass = 0; pass < 2; pass++) { /* the master first, then its replicas */
        for (int i = 0; i < v->n; i++) {
            const struct view_node *vn = &v->nodes[i];
            bool want =
                pass == 0 ? i == v->master : i != v->master && vn->host[0] != '\0' && vn->connected;
            if (!want) {
                continue;
            }
            resp_put_array(out, 4);
            resp_put_cstr(out, vn->host);
            resp_put_integer(out, vn->port);
            resp_put_cstr(out, vn->node_id);
            resp_put_map(out, 0); /* networking metadata */
        }
    }
}

static void put_shard_node(const struct view_node *vn, struct buf *out)
{
    resp_put_map(out, 7);
    resp_put_cstr(out, "id");
    resp_put_cstr(out, vn->node_id);
    resp_put_cstr(out, "port");
    resp_put_integer(out, vn->port);
    resp_put_cstr(out, "ip");
    resp_put_cstr(out, vn->host);
    resp_put_cstr(out, "endpoint");
    resp_put_cstr(out, vn->host);
    resp_put_cstr(out, "role");
    resp_put_cstr(out, vn->master ? "master" : "replica");
    resp_put_cstr(out, "replication-offset");
    resp_put_integer(out, (int64_t)vn->offset);
    resp_put_cstr(out, "health");
    resp_put_cstr(out, vn->connected ? "online" : "failed");
}

static void reply_shards(const struct view *v, struct buf *out)
{
    size_t k = 0;
    for (int i = 0; i < v->n; i++) {
        k += v->nodes[i].host[0] != '\0';
    }
    resp_put_array(out, 1);
    resp_put_map(out, 2);
    resp_put_cstr(out, "slots");
    resp_put_array(out, 2);
    resp_put_integer(out, 0);
    resp_put_integer(out, CLUSTER_SLOTS - 1);
    resp_put_cstr(out, "nodes");
    resp_put_array(out, k);
    put_shard_node(&v->nodes[v->master], out);
    for (int i = 0; i < v->n; i++) {
        if (i != v->master && v->nodes[i].host[0] != '\0') {
            put_shard_node(&v->nodes[i], out);
        }
    }
}

/* One line of CLUSTER NODES, without its end. */
static void put_nodes_line(const struct view *v, const struct view_node *vn, struct buf *text)
{
    const struct view_node *m = &v->nodes[v->master];
    info_printf(text, "%s %s:%d@%d %s%s%s%s %s 0 0 %" PRIu64 " %s", vn->node_id, vn->host, vn->port,
                vn->bus_port, vn->myself ? "myself," : "", vn->master ? "master" : "slave",
                vn->connected ? "" : ",fail?", vn->host[0] == '\0' ? ",noaddr" : "",
                vn->master ? "-" : m->node_id, v->term,
                vn->connected ? "connected" : "disconnected");
    if (vn->master) {
        info_printf(text, " 0-%d", CLUSTER_SLOTS - 1);
    }
}

static void reply_nodes(const struct view *v, struct buf *out)
{
    struct buf text;
    buf_init(&text);
    for (int i = 0; i < v->n; i++) {
        put_nodes_line(v, &v->nodes[i], &text);
        info_printf(&text, "\n");
    }
    lr_assert(resp_put_verbatim(out, text.data, text.len) == 0);
    buf_free(&text);
}

static void reply_replicas(const struct view *v, const char *id, size_t len, struct buf *out)
{
    int which = -1;
    for (int i = 0; i < v->n; i++) {
        if (len == CLUSTER_NODE_ID_HEX && strncasecmp(v->nodes[i].node_id, id, len) == 0) {
            which = i;
        }
    }
    if (which < 0) {
        char text[200];
        snprintf(text, sizeof text, "ERR Unknown node %.*s", (int)(len > 128 ? 128 : len), id);
        put_error(out, text);
        return;
    }
    if (which != v->master) {
        put_error(out, "ERR The specified node is not a master");
        return;
    }
    resp_put_array(out, (size_t)v->n - 1);
    for (int i = 0; i < v->n; i++) {
        if (i != v->master) {
            struct buf line;
            buf_init(&line);
            put_nodes_line(v, &v->nodes[i], &line);
            resp_put_bulk(out, line.data, line.len);
            buf_free(&line);
        }
    }
}

static void reply_info(const struct view *v, struct buf *out)
{
    bool ok = v->master >= 0;
    struct buf text;
    buf_init(&text);
    info_printf(&text, "cluster_state:%s\r\n", ok ? "ok" : "fail");
    info_printf(&text, "cluster_slots_assigned:%d\r\n", CLUSTER_SLOTS);
    info_printf(&text, "cluster_slots_ok:%d\r\n", ok ? CLUSTER_SLOTS : 0);
    info_printf(&text, "cluster_slots_pfail:0\r\n");
    info_printf(&text, "cluster_slots_fail:%d\r\n", ok ? 0 : CLUSTER_SLOTS);
    info_printf(&text, "cluster_known_nodes:%d\r\n", v->n);
    info_printf(&text, "cluster_size:1\r\n");
    info_printf(&text, "cluster_current_epoch:%" PRIu64 "\r\n", v->term);
    info_printf(&text, "cluster_my_epoch:%" PRIu64 "\r\n", v->term);
    lr_assert(resp_put_verbatim(out, text.data, text.len) == 0);
    buf_free(&text);
}

static void reply_help(struct buf *out)
{
    static const char *const lines[] = {
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "INFO",
        "    Return information about the cluster.",
        "KEYSLOT <key>",
        "    Return the hash slot for <key>.",
        "MYID",
        "    Return the node id.",
        "NODES",
        "    Return cluster configuration seen by node. Output format:",
        "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
        "REPLICAS <node-id>",
        "    Return <node-id> replicas.",
        "SHARDS",
        "    Return information about slot range mappings and the nodes associated with them.",
        "SLOTS",
        "    Return information about slots range mappings. Each range is made of:",
        "    start, end, master and replicas IP addresses, ports and ids",
        "HELP",
        "    Print this help.",
    };
    size_t k = sizeof lines / sizeof lines[0];
    resp_put_array(out, k);
    for (size_t i = 0; i < k; i++) {
        resp_put_status(out, lines[i], strlen(lines[i]));
    }
}

static bool word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* The subcommands and their arity (Redis's convention: N exactly, -N at least N). */
static const struct
{
    const char *name;
    int arity;
} subcommands[] = {
    {"help", 2},     {"info", 2},   {"keyslot", 3}, {"myid", 2},  {"nodes", 2},
    {"replicas", 3}, {"shards", 2}, {"slaves", 3},  {"slots", 2},
};

static void dispatch(struct node *n,
                     const char *sub,
                     const char *const *argv,
                     const size_t *argvlen,
                     struct buf *out)
{
    struct view v;
    view_make(n, &v);
    if (strcmp(sub, "help") == 0) {
        reply_help(out);
    } else if (strcmp(sub, "info") == 0) {
        reply_info(&v, out);
    } else if (strcmp(sub, "keyslot") == 0) {
        resp_put_integer(out, cluster_keyslot(argv[2], argvlen[2]));
    } else if (strcmp(sub, "myid") == 0) {
        char id[CLUSTER_NODE_ID_HEX + 1];
        cluster_node_id(n->c->id, id);
        resp_put_cstr(out, id);
    } else if (v.master < 0) {
        put_error(out, "CLUSTERDOWN The cluster is down");
    } else if (strcmp(sub, "nodes") == 0) {
        reply_nodes(&v, out);
    } else if (strcmp(sub, "replicas") == 0 || strcmp(sub, "slaves") == 0) {
        reply_replicas(&v, argv[2], argvlen[2], out);
    } else if (strcmp(sub, "shards") == 0) {
        reply_shards(&v, out);
    } else {
        reply_slots(&v, out);
    }
}

void cluster_view_reply(struct node *n,
                        int argc,
                        const char *const *argv,
                        const size_t *argvlen,
                        struct buf *out)
{
    char text[256];
    if (argc < 2) {
        put_error(out, "ERR wrong number of arguments for 'cluster' command");
        return;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        const char *name = subcommands[i].name;
        int arity = subcommands[i].arity;
        if (!word_is(argv[1], argvlen[1], name)) {
            continue;
        }
        if ((arity > 0 && argc != arity) || (arity < 0 && argc < -arity)) {
            snprintf(text, sizeof text, "ERR wrong number of arguments for 'cluster|%s' command",
                     name);
            put_error(out, text);
            return;
        }
        dispatch(n, name, argv, argvlen, out);
        return;
    }
    snprintf(text, sizeof text, "ERR unknown subcommand '%.*s'. Try CLUSTER HELP.",
             (int)(argvlen[1] > 128 ? 128 : argvlen[1]), argv[1]);
    put_error(out, text);
}
