/*
 * node_sim: runs the whole-node simulator (src/sim/nodes/) over a range of seeds and
 * prints one line per failing seed with the command that replays it.
 *
 * Usage: node_sim [--seeds N] [--first S] [--seed S] [--steps N] [--nodes N]
 *                 [--script PATH] [--stop-at-first]
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/nodes/nodesim.h"
#include "util/assert.h"

static uint64_t arg_u64(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "node_sim: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return strtoull(argv[++*i], NULL, 10);
}

int main(int argc, char **argv)
{
    uint64_t first = 1, count = 200, steps = 300; /* the default run */
    struct nodesim_options o = {.script = "examples/kv.lua", .nodes = 3};
    bool stop = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0) {
            count = arg_u64(argc, argv, &i);
        } else if (strcmp(argv[i], "--first") == 0) {
            first = arg_u64(argc, argv, &i);
        } else if (strcmp(argv[i], "--seed") == 0) {
            first = arg_u64(argc, argv, &i);
            count = 1;
        } else if (strcmp(argv[i], "--steps") == 0) {
            steps = arg_u64(argc, argv, &i);
        } else if (strcmp(argv[i], "--nodes") == 0) {
            o.nodes = (int)arg_u64(argc, argv, &i);
        } else if (strcmp(argv[i], "--script") == 0 && i + 1 < argc) {
            o.script = argv[++i];
        } else if (strcmp(argv[i], "--stop-at-first") == 0) {
            stop = true;
        } else {
            fprintf(stderr, "node_sim: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    o.steps = steps;
    static char msg[16384], replay[512];
    struct nodesim_stats sum = {0};
    uint64_t failures = 0;
    clock_t t0 = clock();
    for (uint64_t seed = first; seed < first + count; seed++) {
        snprintf(replay, sizeof replay,
                 "%s --seed %" PRIu64 " --steps %" PRIu64 " --nodes %d --script %s", argv[0], seed,
                 steps, o.nodes, o.script);
        lr_assert_context(replay);
        o.seed = seed;
        struct nodesim_stats st;
        if (nodesim_run(&o, &st, msg, sizeof msg) != 0) {
            failures++;
            printf("seed %" PRIu64 " failed: %s\n  replay: %s\n", seed, msg, replay);
            fflush(stdout);
            if (stop) {
                break;
            }
        }
        sum.events += st.events;
        sum.ops += st.ops;
        sum.ops_ok += st.ops_ok;
        sum.ops_unknown += st.ops_unknown;
        sum.ops_refused += st.ops_refused;
        sum.crashes += st.crashes;
        sum.disk_failures += st.disk_failures;
        sum.partitions += st.partitions;
        sum.lost_connections += st.lost_connections;
        sum.elections += st.elections;
        sum.snapshots += st.snapshots;
        sum.installs += st.installs;
        sum.entries_read += st.entries_read;
        sum.transfers += st.transfers;
        sum.transfers_ok += st.transfers_ok;
        sum.graceful_stops += st.graceful_stops;
    }
    lr_assert_context(NULL);
    double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("node_sim: %" PRIu64 " seeds x %" PRIu64 " ops, %d nodes, %.1f CPU s: %" PRIu64
           " events, ops %" PRIu64 " (%" PRIu64 " answered, %" PRIu64 " refused, %" PRIu64
           " unknown), %" PRIu64 " crashes, %" PRIu64 " disk failures, %" PRIu64
           " partitions, %" PRIu64 " lost connections, %" PRIu64 " leader changes, %" PRIu64
           " snapshots, %" PRIu64 " installed, %" PRIu64 " entries sent from the store, %" PRIu64
           " transfers (%" PRIu64 " +OK), %" PRIu64 " graceful stops\n",
           count, steps, o.nodes, cpu, sum.events, sum.ops, sum.ops_ok, sum.ops_refused,
           sum.ops_unknown, sum.crashes, sum.disk_failures, sum.partitions, sum.lost_connections,
           sum.elections, sum.snapshots, sum.installs, sum.entries_read, sum.transfers,
           sum.transfers_ok, sum.graceful_stops);
    printf("%" PRIu64 " passed, %" PRIu64 " failed\n", count - failures, failures);
    return failures == 0 ? 0 : 1;
}
