/*
 * Throughput of the protocol core alone: a 3-node cluster in the simulator, no faults,
 * 16-byte entries proposed in batches. Reports entries committed per CPU-second of this
 * process (the simulator's own work, checker included, counts against the core).
 *
 * usage: bench_sim [entries] [batch]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sim/sim.h"

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
    uint32_t batch = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1024;
    if (batch == 0 || batch > sim_propose_batch_max) {
        fprintf(stderr, "batch must be in 1..%d\n", sim_propose_batch_max);
        return 2;
    }
    struct sim_options o;
    sim_options_default(&o);
    o.seed = 1;
    o.snapshot_threshold = 200000; /* keep the logs bounded, as a real node would */
    o.snapshot_trailing = 1000;
    o.fifo_links = true; /* no faults: links deliver in order, as TCP does */
    struct sim *s;
    int rv = sim_create(&s, &o);
    if (rv != 0) {
        fprintf(stderr, "sim_create: %s\n", sim_strerror(rv));
        return 1;
    }
    uint64_t *values = malloc(batch * sizeof *values);
    while (sim_leader(s) == 0) {
        sim_run_for(s, 1000);
    }
    raft_id leader = sim_leader(s);
    uint64_t proposed = 0;
    uint64_t base = sim_stats(s)->commits;
    double t0 = cpu_seconds();
    uint64_t v0 = sim_now_us(s);
    while (sim_stats(s)->commits - base < total) {
        if (sim_failure(s) != NULL) {
            fprintf(stderr, "%s\n", sim_failure(s));
            return 1;
        }
        /* Keep a few batches in flight, as a busy leader would. */
        while (proposed - (sim_stats(s)->commits - base) < 8ull * batch && proposed < total) {
            for (uint32_t i = 0; i < batch; i++) {
                values[i] = proposed + i + 1;
            }
            raft_index first;
            rv = sim_propose_many(s, leader, values, batch, &first);
            if (rv != 0) {
                fprintf(stderr, "propose: %s\n", sim_strerror(rv));
                return 1;
            }
            proposed += batch;
        }
        sim_run_for(s, 500);
    }
    double cpu = cpu_seconds() - t0;
    uint64_t committed = sim_stats(s)->commits - base;
    printf(
        "committed %llu entries of 16 bytes, batch %u, 3 nodes: %.2f CPU s, %.0f entries/CPU-s "
        "(%.1f virtual s, %llu steps)\n",
        (unsigned long long)committed, batch, cpu, (double)committed / cpu,
        (double)(sim_now_us(s) - v0) / 1e6, (unsigned long long)sim_stats(s)->steps);
    free(values);
    sim_destroy(s);
    return 0;
}
