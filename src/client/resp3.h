/*
 * RESP3 replies for RESP2 connections. The node and the script write replies in RESP3
 * where it has a richer type (maps, sets, doubles, nulls, booleans, verbatim strings); a
 * connection that has not said HELLO 3 gets them as Redis gives them to a RESP2 client:
 *
 *   %n map        -> *2n array of the keys and values in order
 *   ~n set, >n push -> *n array
 *   |n attribute  -> dropped (with its n pairs); the reply after it stays
 *   _ null        -> $-1 (inside an array too: Redis's RESP2 null bulk)
 *   #t / #f       -> :1 / :0
 *   ,d double     -> $ bulk string of d's text (",inf" -> "inf")
 *   (n big number -> $ bulk string of its digits
 *   =n verbatim   -> $ bulk string without its "txt:" format prefix
 *   !n blob error -> -line error (its text must not hold CR or LF)
 *
 * RESP2 types (+ - : $ *) pass through unchanged, so a reply that holds only those is
 * never copied. Threading: any; no state.
 */
#ifndef LUARAFT_CLIENT_RESP3_H
#define LUARAFT_CLIENT_RESP3_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Whether the well-formed reply in data holds a RESP3-only type anywhere. A malformed
 * reply answers false (it is passed on as it is). */
bool resp3_has_resp3(const void *data, size_t len);

/* Appends the RESP2 form of the reply in data to out. Returns 0, -1 if data is not one
 * well-formed reply, or BUF_ENOMEM. */
int resp3_to_resp2(const void *data, size_t len, struct buf *out);

#endif
