/*
 * The trace ring: one compact line per event, kept as binary records and formatted only
 * when a failure report or c:trace() asks, so tracing costs almost nothing in random runs.
 *
 * Columns: virtual time in milliseconds, the node the event happened on, then what
 * happened. Messages read "<to> recv <TYPE> from <from> term <t> <fields>":
 *
 *   t=12.340 n2 recv APPEND from n1 term 3 prev 10/3 n 5 commit 9
 *   t=12.345 n1 recv APPEND_RESP from n2 term 3 ok 15
 *   t=13.002 n3 drop VOTE from n1 term 4 (cut) pre last 15/3
 *   t=20.100 n1 becomes leader term 4
 *   t=20.500 n3 CRASH
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

static size_t format_rec(const struct sim_trace_rec *r, char *buf, size_t size);

void sim_trace_add(struct sim *s,
                   uint8_t kind,
                   raft_id node,
                   raft_id peer,
                   uint8_t sub,
                   uint64_t a0,
                   uint64_t a1,
                   uint64_t a2,
                   uint64_t a3,
                   uint64_t a4,
                   uint64_t a5)
{
    struct sim_trace_rec *r = &s->trace[s->trace_count % sim_trace_ring_max];
    s->trace_count++;
    r->time_us = s->now_us;
    r->kind = kind;
    r->node = (uint8_t)node;
    r->peer = (uint8_t)peer;
    r->sub = sub;
    r->a[0] = a0;
    r->a[1] = a1;
    r->a[2] = a2;
    r->a[3] = a3;
    r->a[4] = a4;
    r->a[5] = a5;
    if (s->opt.trace_stderr) {
        char line[256];
        format_rec(r, line, sizeof line);
        fprintf(stderr, "%s\n", line);
    }
}

void sim_trace_msg(struct sim *s, uint8_t kind, uint8_t sub, const struct raft_message *m)
{
    uint64_t a2 = 0, a3 = 0, a4 = 0, a5 = 0;
    switch (m->type) {
        case RAFT_MSG_APPEND:
            a2 = m->append.prev_index;
            a3 = m->append.prev_term;
            a4 = m->append.n_entries;
            a5 = m->append.commit;
            break;
        case RAFT_MSG_APPEND_RESP:
            a2 = m->append_resp.success;
            a3 = m->append_resp.index;
            a4 = m->append_resp.conflict_term;
            a5 = m->append_resp.conflict_index;
            break;
        case RAFT_MSG_VOTE:
            a2 = (uint64_t)m->vote.prevote | (uint64_t)m->vote.transfer << 1;
            a3 = m->vote.last_index;
            a4 = m->vote.last_term;
            break;
        case RAFT_MSG_VOTE_RESP:
            a2 = m->vote_resp.prevote;
            a3 = m->vote_resp.granted;
            break;
        case RAFT_MSG_HEARTBEAT:
            a2 = m->heartbeat.commit;
            a3 = m->heartbeat.read_seq;
            break;
        case RAFT_MSG_HEARTBEAT_RESP:
            a2 = m->heartbeat_resp.read_seq;
            break;
        case RAFT_MSG_SNAPSHOT:
            a2 = m->snapshot.index;
            a3 = m->snapshot.term;
            break;
        case RAFT_MSG_READ_INDEX:
            a2 = m->read_index.id;
            break;
        case RAFT_MSG_READ_INDEX_RESP:
            a2 = m->read_index_resp.id;
            a3 = m->read_index_resp.index;
            break;
        default:
            break;
    }
    sim_trace_add(s, kind, m->to, m->from, sub, m->type, m->term, a2, a3, a4, a5);
}

/* Appends printf-style text at *pos, never past size. */
static void put(char *buf, size_t size, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
    if (*pos >= size) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, size - *pos, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *pos += (size_t)n;
        if (*pos >= size) {
            *pos = size - 1;
        }
    }
}

static void format_msg(const struct sim_trace_rec *r, char *buf, size_t size, size_t *pos)
{
    const uint64_t *a = r->a;
    const char *verb = r->kind == SIM_TR_RECV ? "recv" : "drop";
    put(buf, size, pos, "%s %s from n%u term %" PRIu64, verb, raft_msg_name((int)a[0]), r->peer,
        a[1]);
    if (r->kind == SIM_TR_DROP) {
        const char *why = r->sub == 'c' ? "cut" : r->sub == 'l' ? "lost" : "down";
        put(buf, size, pos, " (%s)", why);
    }
    switch (a[0]) {
        case RAFT_MSG_APPEND:
            put(buf, size, pos, " prev %" PRIu64 "/%" PRIu64 " n %" PRIu64 " commit %" PRIu64, a[2],
                a[3], a[4], a[5]);
            break;
        case RAFT_MSG_APPEND_RESP:
            if (a[2]) {
                put(buf, size, pos, " ok %" PRIu64, a[3]);
            } else {
                put(buf, size, pos, " reject %" PRIu64 " hint %" PRIu64 "/%" PRIu64, a[3], a[5],
                    a[4]);
            }
            break;
        case RAFT_MSG_VOTE:
            put(buf, size, pos, "%s%s last %" PRIu64 "/%" PRIu64, (a[2] & 1) ? " pre" : "",
                (a[2] & 2) ? " transfer" : "", a[3], a[4]);
            break;
        case RAFT_MSG_VOTE_RESP:
            put(buf, size, pos, "%s %s", a[2] ? " pre" : "", a[3] ? "granted" : "denied");
            break;
        case RAFT_MSG_HEARTBEAT:
            put(buf, size, pos, " commit %" PRIu64 " seq %" PRIu64, a[2], a[3]);
            break;
        case RAFT_MSG_HEARTBEAT_RESP:
            put(buf, size, pos, " seq %" PRIu64, a[2]);
            break;
        case RAFT_MSG_SNAPSHOT:
            put(buf, size, pos, " %" PRIu64 "/%" PRIu64, a[2], a[3]);
            break;
        case RAFT_MSG_READ_INDEX:
            put(buf, size, pos, " id %" PRIu64, a[2]);
            break;
        case RAFT_MSG_READ_INDEX_RESP:
            put(buf, size, pos, " id %" PRIu64 " index %" PRIu64, a[2], a[3]);
            break;
        default:
            break;
    }
}

/* What a core did: roles, durable writes, commits, snapshots. */
static void format_core(const struct sim_trace_rec *r, char *buf, size_t size, size_t *pos)
{
    const uint64_t *a = r->a;
    switch (r->kind) {
        case SIM_TR_ROLE:
            put(buf, size, pos, "becomes %s term %" PRIu64, raft_role_name(r->sub), a[0]);
            if (a[1] != 0 && r->sub != RAFT_LEADER) {
                put(buf, size, pos, " leader n%" PRIu64, a[1]);
            }
            break;
        case SIM_TR_PERSISTED:
            put(buf, size, pos, "persisted to %" PRIu64 " gen %" PRIu64, a[0], a[1]);
            if (a[2] != 0) {
                put(buf, size, pos, " (a later write in flight cuts from %" PRIu64 ")", a[2]);
            }
            break;
        case SIM_TR_COMMIT:
            put(buf, size, pos, "commit %" PRIu64 " (applied %" PRIu64 ")", a[0], a[1]);
            break;
        case SIM_TR_SNAP_TAKEN:
            put(buf, size, pos, "snapshot taken %" PRIu64 "/%" PRIu64 " compact to %" PRIu64, a[0],
                a[1], a[2]);
            break;
        case SIM_TR_SNAP_INSTALL:
            put(buf, size, pos, "installs snapshot %" PRIu64 "/%" PRIu64 " from n%u", a[0], a[1],
                r->peer);
            break;
        case SIM_TR_DISCARD:
            put(buf, size, pos,
                "discards durable entries %" PRIu64 "..%" PRIu64 " that do not follow its snapshot",
                a[0], a[1]);
            break;
        default:
            break;
    }
}

/* Faults of a node and its disk. */
static void format_node_fault(const struct sim_trace_rec *r, char *buf, size_t size, size_t *pos)
{
    const uint64_t *a = r->a;
    switch (r->kind) {
        case SIM_TR_CRASH:
            put(buf, size, pos, "CRASH (%" PRIu64 " writes lost)", a[0]);
            break;
        case SIM_TR_RESTART:
            put(buf, size, pos,
                "RESTART term %" PRIu64 " vote n%" PRIu64 " snapshot %" PRIu64 " last %" PRIu64,
                a[0], a[1], a[2], a[3]);
            break;
        case SIM_TR_WIPE:
            put(buf, size, pos, "WIPE (durable state erased)");
            break;
        case SIM_TR_DISK:
            if (r->sub == 0) {
                put(buf, size, pos, "DISK latency %" PRIu64 "-%" PRIu64 "us", a[0], a[1]);
            } else if (r->sub == 1) {
                put(buf, size, pos, "DISK HOLD");
            } else {
                put(buf, size, pos, "DISK RELEASE %" PRIu64 " of %" PRIu64 " completions", a[0],
                    a[1]);
            }
            break;
        case SIM_TR_PAUSE:
            put(buf, size, pos, "PAUSE");
            break;
        case SIM_TR_RESUME:
            put(buf, size, pos, "RESUME (%" PRIu64 " events held)", a[0]);
            break;
        case SIM_TR_RATE:
            put(buf, size, pos, "CLOCK rate %" PRIu64 "/1000", a[0]);
            break;
        default:
            break;
    }
}

/* Faults of the network. */
static void format_net_fault(const struct sim_trace_rec *r, char *buf, size_t size, size_t *pos)
{
    const uint64_t *a = r->a;
    switch (r->kind) {
        case SIM_TR_LINK:
            if (r->sub == 2) {
                put(buf, size, pos, "ISOLATE");
            } else {
                put(buf, size, pos, "link to n%u %s", r->peer, r->sub ? "UP" : "CUT");
            }
            break;
        case SIM_TR_PARTITION:
            put(buf, size, pos, "PARTITION groups");
            for (uint64_t i = 0; i < a[1]; i++) {
                put(buf, size, pos, " n%" PRIu64 ":%" PRIu64, i + 1, (a[0] >> (4 * i)) & 0xf);
            }
            break;
        case SIM_TR_HEAL:
            put(buf, size, pos, r->sub ? "HEAL ALL" : "HEAL links");
            break;
        case SIM_TR_NET:
            put(buf, size, pos,
                "NET loss %" PRIu64 "ppm dup %" PRIu64 "ppm delay %" PRIu64 "-%" PRIu64 "us", a[0],
                a[1], a[2], a[3]);
            break;
        default:
            break;
    }
}

/* What a spec asked of a node, and the answers. */
static void format_request(const struct sim_trace_rec *r, char *buf, size_t size, size_t *pos)
{
    const uint64_t *a = r->a;
    switch (r->kind) {
        case SIM_TR_PROPOSE:
            if ((int64_t)a[2] == 0) {
                put(buf, size, pos, "propose %" PRIu64 " at %" PRIu64 " value %" PRIu64, a[1], a[0],
                    a[3]);
            } else {
                put(buf, size, pos, "propose %" PRIu64 " refused: %s", a[1],
                    sim_strerror((int)(int64_t)a[2]));
            }
            break;
        case SIM_TR_READ:
            put(buf, size, pos, "read_index id %" PRIu64 " (committed anywhere: %" PRIu64 ")", a[0],
                a[1]);
            break;
        case SIM_TR_READ_DONE:
            if ((int64_t)a[1] == 0) {
                put(buf, size, pos, "read id %" PRIu64 " ready at %" PRIu64, a[0], a[2]);
            } else {
                put(buf, size, pos, "read id %" PRIu64 " failed: %s", a[0],
                    sim_strerror((int)(int64_t)a[1]));
            }
            break;
        case SIM_TR_TRANSFER:
            put(buf, size, pos, "transfer to n%u: %s", r->peer, sim_strerror((int)(int64_t)a[0]));
            break;
        case SIM_TR_CAMPAIGN:
            put(buf, size, pos, r->sub ? "campaign (forced)" : "campaign");
            break;
        case SIM_TR_CHANGE: {
            static const char *const kinds[] = {"?", "add", "promote", "demote", "remove"};
            put(buf, size, pos,
                "change %s n%u at %" PRIu64 " -> members %04" PRIx64 " voters %04" PRIx64 ": %s",
                kinds[r->sub <= 4 ? r->sub : 0], r->peer, a[0], a[2] & 0xffff,
                (a[2] >> 16) & 0xffff, sim_strerror((int)(int64_t)a[1]));
            break;
        }
        case SIM_TR_INJECT:
            put(buf, size, pos, "injected %s from n%u term %" PRIu64, raft_msg_name(r->sub),
                r->peer, a[0]);
            break;
        default:
            break;
    }
}

/* The text after the time and the node, by the group the event's kind is in. */
static void format_body(const struct sim_trace_rec *r, char *buf, size_t size, size_t *pos)
{
    switch (r->kind) {
        case SIM_TR_RECV:
        case SIM_TR_DROP:
            format_msg(r, buf, size, pos);
            break;
        case SIM_TR_ROLE:
        case SIM_TR_PERSISTED:
        case SIM_TR_COMMIT:
        case SIM_TR_SNAP_TAKEN:
        case SIM_TR_SNAP_INSTALL:
        case SIM_TR_DISCARD:
            format_core(r, buf, size, pos);
            break;
        case SIM_TR_CRASH:
        case SIM_TR_RESTART:
        case SIM_TR_WIPE:
        case SIM_TR_DISK:
        case SIM_TR_PAUSE:
        case SIM_TR_RESUME:
        case SIM_TR_RATE:
            format_node_fault(r, buf, size, pos);
            break;
        case SIM_TR_LINK:
        case SIM_TR_PARTITION:
        case SIM_TR_HEAL:
        case SIM_TR_NET:
            format_net_fault(r, buf, size, pos);
            break;
        case SIM_TR_PROPOSE:
        case SIM_TR_READ:
        case SIM_TR_READ_DONE:
        case SIM_TR_TRANSFER:
        case SIM_TR_CAMPAIGN:
        case SIM_TR_INJECT:
        case SIM_TR_CHANGE:
            format_request(r, buf, size, pos);
            break;
        default:
            put(buf, size, pos, "? kind %u", r->kind);
            break;
    }
}

static size_t format_rec(const struct sim_trace_rec *r, char *buf, size_t size)
{
    size_t pos = 0;
    lr_assert(size > 0);
    buf[0] = '\0';
    put(buf, size, &pos, "t=%" PRIu64 ".%03" PRIu64 " ", r->time_us / 1000, r->time_us % 1000);
    if (r->node != 0) {
        put(buf, size, &pos, "n%u ", r->node);
    } else {
        put(buf, size, &pos, "-- ");
    }
    format_body(r, buf, size, &pos);
    return pos;
}

size_t sim_trace(const struct sim *s, unsigned lines, char *buf, size_t size)
{
    lr_assert(size > 0);
    if (lines > sim_trace_ring_max) {
        lines = sim_trace_ring_max;
    }
    uint64_t n = s->trace_count < lines ? s->trace_count : lines;
    size_t pos = 0;
    buf[0] = '\0';
    for (uint64_t i = s->trace_count - n; i < s->trace_count; i++) {
        char line[256];
        format_rec(&s->trace[i % sim_trace_ring_max], line, sizeof line);
        put(buf, size, &pos, "%s\n", line);
    }
    return pos;
}
