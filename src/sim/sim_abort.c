/*
 * Reporting a core assertion: the trace of the simulation whose core aborted, printed
 * from a SIGABRT handler before the process dies.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "sim/sim_internal.h"

/*
 * A core assertion aborts the process, and with it busted. So that the failure still
 * names its seed and shows what led to it, a SIGABRT handler prints the trace of the
 * simulation whose core was being stepped, then lets the abort go on (the previous
 * handler is restored and abort() raises the signal again).
 */
static struct sim *abort_sim;
static void (*abort_previous)(int);

static void on_abort(int sig)
{
    (void)sig;
    struct sim *s = abort_sim;
    abort_sim = NULL;
    if (s != NULL) {
        static char buf[16384];
        int n;
        if (s->random_steps != 0) {
            n = snprintf(buf, sizeof buf,
                         "luaraft sim: abort in random run seed %" PRIu64 " (steps %" PRIu64
                         ") at step %" PRIu64
                         "; replay with LUARAFT_TRACE=1 and "
                         "sim.random_run{seed=%" PRIu64 ", steps=%" PRIu64 "}\ntrace:\n",
                         s->opt.seed, s->random_steps, s->steps, s->opt.seed, s->random_steps);
        } else {
            n = snprintf(buf, sizeof buf,
                         "luaraft sim: abort at step %" PRIu64 " (cluster seed %" PRIu64
                         ")\ntrace:\n",
                         s->steps, s->opt.seed);
        }
        size_t pos = n > 0 ? (size_t)n : 0;
        if (pos < sizeof buf) {
            pos += sim_trace(s, sim_failure_trace_lines, buf + pos, sizeof buf - pos);
        }
        ssize_t w = write(STDERR_FILENO, buf, pos < sizeof buf ? pos : sizeof buf - 1);
        (void)w;
    }
    signal(SIGABRT, abort_previous == SIG_ERR ? SIG_DFL : abort_previous);
}

void sim_abort_install(void)
{
    static bool installed;
    if (!installed) {
        installed = true;
        abort_previous = signal(SIGABRT, on_abort);
    }
}

/* Called before every core step: that simulation is the one an abort reports. */
void sim_abort_watch(struct sim *s)
{
    abort_sim = s;
}

/* A destroyed simulation is never reported. */
void sim_abort_forget(const struct sim *s)
{
    if (abort_sim == s) {
        abort_sim = NULL;
    }
}
