/* One blocking RESP call to a node's client port, with timeouts. */
#ifndef LUARAFT_CLIENT_RESP_CALL_H
#define LUARAFT_CLIENT_RESP_CALL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Sends the command argv (argc words) to host:port (a numeric address) and reads one
 * reply: a status, an error, an integer or a bulk string (nothing longer than size - 1
 * bytes). out gets its text: the status, the error (without the '-'), the integer, or the
 * bulk string's bytes. Returns 0, 1 for an error reply, or -1 when no reply came (out says
 * why). Each connect, write and read waits at most timeout_s seconds.
 */
int resp_call(const char *host,
              int port,
              int argc,
              const char *const *argv,
              int timeout_s,
              char *out,
              size_t size);

#endif
