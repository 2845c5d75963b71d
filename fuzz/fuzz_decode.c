/* libFuzzer target: luaraft.decode (src/fsm/decode.c), which scripts call on bytes they
 * stored (snapshots) and on bytes clients sent. It runs inside a real sandboxed fsm, as a
 * script sees it, under the instruction and memory budgets. The input is the bytes; the
 * script decodes them and, when decode accepts, encodes the value again: decode is the
 * strict inverse of encode (encode.c), so the bytes must come back unchanged. Refusals are
 * error replies; a crash, a budget that does not hold, or a round trip that changes the
 * bytes aborts. */
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm.h"
#include "fuzz.h"

static const char script[] =
    "local M = {}\n"
    "function M.apply(cmd)\n"
    "    local ok, v = pcall(luaraft.decode, cmd[2])\n"
    "    if ok and luaraft.encode(v) ~= cmd[2] then return { err = 'ROUNDTRIP' } end\n"
    "    return ok and 'accepted' or 'refused'\n"
    "end\n"
    "function M.snapshot(w) end\n"
    "function M.restore(r) end\n"
    "return M\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fsm *f;
    if (f == NULL) {
        struct fsm_limits lim = {.instructions_max = 1000000,
                                 .memory_bytes_max = 256u << 20,
                                 .command_memory_bytes_max = 64u << 20};
        char msg[256];
        if (fsm_open_source(&f, "fuzz.lua", script, sizeof script - 1, &lim, msg, sizeof msg) != 0)
            abort();
    }
    const char *argv[2] = {"DECODE", (const char *)data};
    size_t argvlen[2] = {6, size};
    struct fsm_ctx ctx = {.index = 1, .term = 1, .time_ms = 0, .seed = 1};
    struct fsm_reply r;
    fsm_reply_init(&r);
    fsm_apply(f, &ctx, 2, argv, argvlen, &r);
    if (r.len >= 10 && memcmp(r.data, "-ROUNDTRIP", 10) == 0) abort();
    fsm_reply_free(&r);
    return 0;
}
