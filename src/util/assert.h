/*
 * Always-on assertions.
 *
 * Assertions catch programmer errors, never operating errors (a full disk, a peer gone,
 * bad bytes from a client get error handling). They stay on in every build, as in Redis
 * and TigerBeetle: a broken invariant in a consensus protocol must stop the process
 * before it writes something wrong, not after.
 */
#ifndef LUARAFT_UTIL_ASSERT_H
#define LUARAFT_UTIL_ASSERT_H

/* Reports the failed expression with its place and aborts. Never returns. */
_Noreturn void lr_assert_fail(const char *expr, const char *file, int line);

#define lr_assert(expr) ((expr) ? (void)0 : lr_assert_fail(#expr, __FILE__, __LINE__))

/* Names what the process is doing, for the report of a failed assertion: a simulator
 * sets the command that replays the current seed, so an abort still names it. text must
 * live until the next call; NULL clears it. */
void lr_assert_context(const char *text);

/* "a implies b": when a holds, b must hold too. */
#define lr_implies(a, b) lr_assert(!(a) || (b))

#endif
