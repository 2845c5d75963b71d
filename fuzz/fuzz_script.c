/*
 * libFuzzer target: the script-load path (Redis's CVE-2025-46819 and CVE-2022-24736
 * class: a crafted script that makes the lexer read out of bounds or the loader
 * dereference NULL; spec/fsm/cve_spec.lua). Arbitrary bytes go through the sandboxed fsm
 * as a state-machine script and as code a loaded script runs, under the budgets. The
 * first byte chooses what is done with the rest:
 *   0  opened as a script (fsm_open_source, which compiles, runs and checks the module);
 *      if it opens, one command, a snapshot and a restore run through it too
 *   1  a chunk run by M.apply of a script that loads its command as code (the EVAL shape
 *      of spec/fsm/support.lua), then a snapshot and a restore of what it left
 *   2  the same chunk through M.query, read-only
 *   3  loaded as the successor of a loaded script (fsm_open_successor, RAFT.LOAD's path),
 *      and if it opens, as an upgrade of that script's state (fsm_upgrade)
 * Every fsm is fresh, so an input replays alone. A refusal or a script error must be an
 * error message or a reply; a crash, a sanitizer report, a reply that is not one RESP
 * value's first byte, or a budget that does not hold (libFuzzer's -timeout) is a finding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm.h"
#include "fuzz.h"

static const char eval_script[] =
    "local M = { state = {} }\n"
    "local eval_load = load\n"
    "local function run(cmd, ctx)\n"
    "    local chunk, err = eval_load(cmd[2], '=eval')\n"
    "    if not chunk then return { err = 'ERR ' .. err } end\n"
    "    return chunk(M, cmd, ctx)\n"
    "end\n"
    "M.apply = run\n"
    "function M.query(cmd, ctx) return run(cmd, ctx) end\n"
    "function M.snapshot(w) w:write(luaraft.encode(M.state)) end\n"
    "function M.restore(r)\n"
    "    local parts = {}\n"
    "    for chunk in function() return r:read() end do parts[#parts + 1] = chunk end\n"
    "    M.state = luaraft.decode(table.concat(parts))\n"
    "end\n"
    "function M.upgrade(old) M.state.upgraded_from = old end\n"
    "M.version = 1\n"
    "return M\n";

static const struct fsm_limits limits = {.instructions_max = 200000,
                                         .memory_bytes_max = 128u << 20,
                                         .command_memory_bytes_max = 32u << 20};

/* The snapshot bytes, for the restore. */
struct bytes
{
    char *data;
    size_t len;
    size_t read; /* 0 before the one chunk is handed out */
};

static int collect(void *arg, const void *data, size_t len)
{
    struct bytes *b = arg;
    char *n = realloc(b->data, b->len + len);
    if (n == NULL) {
        return -1;
    }
    memcpy(n + b->len, data, len);
    b->data = n;
    b->len += len;
    return 0;
}

static int hand_out(void *arg, const void **data, size_t *len)
{
    struct bytes *b = arg;
    *data = b->data;
    *len = b->read++ == 0 ? b->len : 0;
    return 0;
}

/* The first byte of one RESP reply (client/resp3.h's types, RESP2 and RESP3). */
static void check_reply(const struct fsm_reply *r, size_t before)
{
    if (r->len == before) {
        return; /* fsm_query's FSM_ENOTSUP leaves it unchanged; the callers check */
    }
    if (strchr("+-:$*%~,_#(=>|", r->data[before]) == NULL) {
        abort();
    }
}

/* A snapshot of f restored into a fresh fsm of the same script. */
static void round_trip(struct fsm *f)
{
    struct bytes b = {0};
    if (fsm_snapshot(f, collect, &b) == 0) {
        struct fsm *g = NULL;
        char msg[256];
        size_t len = 0;
        const char *source = fsm_source(f, &len);
        if (fsm_open_successor(f, fsm_name(f), source, len, &g, msg, sizeof msg) == 0) {
            fsm_restore(g, hand_out, &b);
            fsm_close(g);
        }
    }
    free(b.data);
}

static void run_command(struct fsm *f, int mode, const char *code, size_t len)
{
    const char *argv[2] = {"EVAL", code};
    size_t argvlen[2] = {4, len};
    struct fsm_ctx ctx = {.index = 1, .term = 1, .time_ms = 1000, .seed = 7};
    struct fsm_reply r;
    fsm_reply_init(&r);
    int rv =
        mode == 2 ? fsm_query(f, 2, argv, argvlen, &r) : fsm_apply(f, &ctx, 2, argv, argvlen, &r);
    if (rv != 0 && !(mode == 2 && rv == FSM_ENOTSUP)) {
        abort();
    }
    check_reply(&r, 0);
    fsm_reply_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int mode = data[0] % 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char msg[512];
    struct fsm *f = NULL;
    if (mode == 0) {
        if (fsm_open_source(&f, "fuzz.lua", text, len, &limits, msg, sizeof msg) == 0) {
            run_command(f, 1, "return 1", 8);
            round_trip(f);
            fsm_close(f);
        } else if (msg[0] == '\0') {
            abort(); /* a refusal says why */
        }
        return 0;
    }
    if (fsm_open_source(&f, "eval.lua", eval_script, sizeof eval_script - 1, &limits, msg,
                        sizeof msg) != 0) {
        abort();
    }
    if (mode == 1 || mode == 2) {
        run_command(f, mode, text, len);
        round_trip(f);
    } else {
        struct fsm *g = NULL;
        if (fsm_open_successor(f, "next.lua", text, len, &g, msg, sizeof msg) == 0) {
            fsm_close(g);
            struct fsm_ctx ctx = {.index = 2, .term = 1, .time_ms = 2000, .seed = 9};
            struct fsm_reply r;
            fsm_reply_init(&r);
            if (fsm_upgrade(f, "next.lua", text, len, &ctx, &g, &r) == 0) {
                run_command(g, 1, "return 1", 8);
                fsm_close(g);
            }
            check_reply(&r, 0);
            fsm_reply_free(&r);
        } else if (msg[0] == '\0') {
            abort();
        }
    }
    fsm_close(f);
    return 0;
}
