/* Crash points (TEST ONLY; crash_point.h lists them and says what each models). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "util/crash_point.h"

#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"

const char *crash_point_armed = NULL;

enum { crash_point_name_max = 64 };

static char armed_name[crash_point_name_max];
static uint64_t armed_hit;
static pid_t armed_pid;
/* Shared with the forked snapshot child (MAP_SHARED survives fork(2)), so that its hits
 * count toward the same N as the node's. */
static _Atomic uint64_t *hits;

bool crash_point_init(void)
{
    const char *v = getenv("LUARAFT_CRASH_POINT");
    if (v == NULL || v[0] == '\0') {
        return true;
    }
    const char *colon = strchr(v, ':');
    size_t len = colon != NULL ? (size_t)(colon - v) : strlen(v);
    uint64_t n = 1;
    if (colon != NULL) {
        char *end;
        n = strtoull(colon + 1, &end, 10);
        if (*end != '\0' || colon[1] == '\0') {
            n = 0;
        }
    }
    if (len == 0 || len >= sizeof armed_name || n == 0) {
        lr_log("LUARAFT_CRASH_POINT=%s: expected NAME or NAME:N with N >= 1", v);
        return false;
    }
    void *shared =
        mmap(NULL, sizeof *hits, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        lr_log("LUARAFT_CRASH_POINT: mmap failed");
        return false;
    }
    hits = shared;
    atomic_init(hits, 0);
    memcpy(armed_name, v, len);
    armed_name[len] = '\0';
    armed_hit = n;
    armed_pid = getpid();
    crash_point_armed = armed_name;
    lr_log("LUARAFT_CRASH_POINT: TEST ONLY: this node kills itself at hit %" PRIu64
           " of crash point %s",
           n, armed_name);
    return true;
}

void crash_point_hit(const char *name)
{
    if (strcmp(name, armed_name) != 0) {
        return;
    }
    uint64_t k = atomic_fetch_add(hits, 1) + 1;
    if (k != armed_hit) {
        return;
    }
    lr_log("crash point %s: hit %" PRIu64 ", killing the node", name, k);
    if (getpid() != armed_pid) {
        kill(armed_pid, SIGKILL); /* the snapshot child: the node dies, not only the child */
    }
    raise(SIGKILL);
}
