/*
 * Replies for a connection's protocol. The node and the script write replies in RESP3
 * where it has a richer type (maps, sets, doubles, nulls, booleans, verbatim strings); a
 * connection that has not said HELLO 3 gets them as Redis gives them to a RESP2 client:
 *
 *   %n map        -> *2n array of the keys and values in order
 *   ~n set, >n push -> *n array
 *   _ null        -> $-1 (inside an array too: Redis's RESP2 null bulk)
 *   #t / #f       -> :1 / :0
 *   ,d double     -> $ bulk string of d's text (",inf" -> "inf")
 *   (n big number -> $ bulk string of its digits
 *   =n verbatim   -> $ bulk string without its "txt:" format prefix
 *   !n blob error -> -line error (its text must not hold CR or LF)
 *
 * Where Redis's two forms differ in shape, not in type, the fsm puts a RESP3 attribute
 * before the reply as a hint, and no connection ever gets an attribute (|n and its n pairs
 * are dropped, for RESP3 too). The hints, as simple-string keys (any value):
 *
 *   RESP3_HINT_PAIRS       before *n of *2 pairs (ZRANGE WITHSCORES): RESP2 gets them
 *                          flattened, *2n
 *   RESP3_HINT_NULL_ARRAY  before _ (LPOP key count of a missing key): RESP2 gets *-1
 *
 * RESP2 types (+ - : $ *) pass through unchanged, so a reply that holds only those is
 * never copied, nor one for a RESP3 connection without an attribute. Threading: any; no
 * state.
 */
#ifndef LUARAFT_CLIENT_RESP3_H
#define LUARAFT_CLIENT_RESP3_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define RESP3_HINT_PAIRS "luaraft:pairs"
#define RESP3_HINT_NULL_ARRAY "luaraft:null-array"

/* Whether the well-formed reply in data must be edited for a connection speaking proto
 * (2 or 3): for 2, it holds a RESP3-only type anywhere; for 3, an attribute. A malformed
 * reply answers false (it is passed on as it is). */
bool resp3_needs_edit(const void *data, size_t len, int proto);

/* Appends the form of the reply in data for a connection speaking proto to out. Returns
 * 0, -1 if data is not one well-formed reply (or a hint's reply has not its shape), or
 * BUF_ENOMEM. */
int resp3_edit(const void *data, size_t len, int proto, struct buf *out);

#endif
