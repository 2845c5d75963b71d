/* libFuzzer target: the RESP request parser (src/client/resp.c). The first input byte picks
 * the split size and whether small limits apply; the rest is fed in pieces and parsed with
 * resp_parser_next() until it wants more bytes or reports an error. */
#include <stddef.h>
#include <stdint.h>

#include "client/resp.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    struct resp_limits lim;
    resp_limits_default(&lim);
    if (data[0] & 0x80) {
        lim.args_max = 4;
        lim.bulk_bytes_max = 16;
        lim.inline_bytes_max = 32;
        lim.line_bytes_max = 8;
        lim.query_bytes_max = 64;
    }
    size_t step = (size_t)(data[0] & 0x7f) + 1;
    data++, size--;
    struct resp_parser p;
    resp_parser_init(&p, &lim);
    int failed = 0;
    for (size_t off = 0; off < size && !failed; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (resp_parser_feed(&p, data + off, n) != 0) break;
        struct resp_command cmd;
        int rv;
        while ((rv = resp_parser_next(&p, &cmd)) == 1)
            for (size_t i = 0; i < cmd.argc; i++)
                if (cmd.argvlen[i] > 0)
                    (void)*(volatile const char *)&cmd.argv[i][cmd.argvlen[i] - 1];
        if (rv < 0) failed = 1;
    }
    resp_parser_close(&p);
    return 0;
}
