/*
 * Lua 5.4 patterns (the reference manual, §6.4.1) matched with a step count: every
 * single-character test, every entry into the matcher, every backtracking move and every
 * byte a set, a %b or a back-reference scans is a step, and every pattern_charge_every
 * steps the charge callback is told, and may stop the match. Stock Lua's matcher
 * (lstrlib.c) does all of its work inside one VM instruction, so a backtracking pattern
 * such as ("a*"):rep(40) .. "b" never reaches the count hook; this one reaches the
 * sandbox's budget (src/fsm/sandbox_pattern.c) as often as Lua code would.
 *
 * Results, errors and their messages are stock Lua's, errors included as lazily as there:
 * a malformed part of a pattern is an error only once the matcher gets to it. The
 * recursion is stock's too, and so is its depth limit ("pattern too complex"). Bytes are
 * classified as in the C locale, whatever the process's locale, so every replica agrees.
 *
 * Pure C: no Lua, no allocation; the state lives wherever the caller puts it.
 */
#ifndef LUARAFT_FSM_PATTERN_H
#define LUARAFT_FSM_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    pattern_captures_max = 32,   /* LUA_MAXCAPTURES */
    pattern_depth_max = 200,     /* MAXCCALLS in lstrlib.c */
    pattern_charge_every = 1024, /* steps between two calls of the charge callback */
    pattern_error_bytes = 64,
};

/* What pattern_find and pattern_match_at return. */
enum pattern_status {
    PATTERN_NOMATCH = 0,
    PATTERN_MATCH = 1,
    PATTERN_ERROR = -1,   /* malformed pattern and the like: see error */
    PATTERN_STOPPED = -2, /* the charge callback asked to stop */
};

/* A capture's len while it is open, and for a position capture "()". */
enum { PATTERN_CAP_UNFINISHED = -1, PATTERN_CAP_POSITION = -2 };

/* Told of steps in batches; returns nonzero to stop the match (the budget is spent). */
typedef int (*pattern_charge_fn)(void *arg, uint64_t steps);

struct pattern_capture
{
    size_t start;  /* offset in the subject */
    ptrdiff_t len; /* bytes, or PATTERN_CAP_UNFINISHED or PATTERN_CAP_POSITION */
};

struct pattern_state
{
    const char *src; /* the subject */
    size_t src_len;
    const char *pat; /* the pattern, after any '^' anchor the caller took off */
    size_t pat_len;
    int level; /* captures open or closed so far */
    int depth; /* recursion left before "pattern too complex" */
    struct pattern_capture capture[pattern_captures_max];
    uint64_t pending;         /* steps not yet told to charge */
    uint64_t total;           /* steps told to charge so far */
    pattern_charge_fn charge; /* NULL: count only */
    void *arg;
    int status; /* 0, PATTERN_ERROR or PATTERN_STOPPED: sticky */
    char error[pattern_error_bytes];
};

void pattern_init(struct pattern_state *ms,
                  const char *src,
                  size_t src_len,
                  const char *pat,
                  size_t pat_len,
                  pattern_charge_fn charge,
                  void *arg);

/* Tells charge of the steps still pending; returns the state's status. */
int pattern_flush(struct pattern_state *ms);

/* Whether the pattern has none of the characters ^$*+?.([%- (so a plain search will do),
 * charging a step per 32 bytes looked at. */
bool pattern_is_plain(struct pattern_state *ms);

/* Matches the pattern at offset at of the subject, captures reset first. With
 * PATTERN_MATCH, *end is the offset after the match. */
int pattern_match_at(struct pattern_state *ms, size_t at, size_t *end);

/*
 * string.find's and string.match's search: tries at init, init + 1, ... up to the
 * subject's end (only at init when anchored); nothing when init is past the end. With
 * PATTERN_MATCH the match is [*start, *end) and the captures are in ms.
 */
int pattern_find(struct pattern_state *ms, size_t init, bool anchor, size_t *start, size_t *end);

/* The pattern's bytes as a plain string from init: returns PATTERN_MATCH with its offset
 * in *start, or PATTERN_NOMATCH; a step per 32 bytes scanned or compared. */
int pattern_find_plain(struct pattern_state *ms, size_t init, size_t *start);

/* How many values a successful match gives: its captures, or with whole the match
 * itself when there are none (string.match, gmatch, gsub's function). */
int pattern_capture_count(const struct pattern_state *ms, bool whole);

/*
 * Capture i (0-based) of the match [start, end): with i == 0 and no captures, the whole
 * match. Returns PATTERN_MATCH with *out filled, or PATTERN_ERROR ("invalid capture index
 * %N", "unfinished capture").
 */
int pattern_capture_get(struct pattern_state *ms,
                        int i,
                        size_t start,
                        size_t end,
                        struct pattern_capture *out);

#endif
