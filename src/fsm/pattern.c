/*
 * The Lua 5.4 pattern matcher of pattern.h. Positions are offsets into the subject and
 * the pattern; PM_NONE is "no match". Once ms->status is set (an error, or the charge
 * callback said stop) every call returns PM_NONE at once, so the recursion unwinds
 * without trying alternatives. Every loop takes a step per turn, so nothing the matcher
 * does escapes the count (pattern.h).
 */
#include "fsm/pattern.h"

#include <stdio.h>
#include <string.h>

#define PM_NONE SIZE_MAX

static int uc(char c)
{
    return (unsigned char)c;
}

void pattern_init(struct pattern_state *ms,
                  const char *src,
                  size_t src_len,
                  const char *pat,
                  size_t pat_len,
                  pattern_charge_fn charge,
                  void *arg)
{
    /* capture[] is left as it is: only the first level entries are ever read, and each
     * is written when its capture opens (clearing it would cost more than a short find) */
    ms->src = src;
    ms->src_len = src_len;
    ms->pat = pat;
    ms->pat_len = pat_len;
    ms->level = 0;
    ms->depth = pattern_depth_max;
    ms->pending = 0;
    ms->total = 0;
    ms->charge = charge;
    ms->arg = arg;
    ms->status = 0;
    ms->error[0] = '\0';
}

int pattern_flush(struct pattern_state *ms)
{
    uint64_t n = ms->pending;
    ms->pending = 0;
    ms->total += n;
    if (ms->charge != NULL && n > 0 && ms->charge(ms->arg, n) != 0 && ms->status == 0) {
        ms->status = PATTERN_STOPPED;
    }
    return ms->status;
}

/* The matcher's own step count, inline: it runs for every character tested. n stays far
 * below 2^63 (at most a subject's or pattern's size), so pending cannot overflow. */
static inline void pm_step(struct pattern_state *ms, uint64_t n)
{
    ms->pending += n;
    if (ms->pending >= pattern_charge_every) {
        pattern_flush(ms);
    }
}

/* Records the first error; the matcher then unwinds. Returns PM_NONE for the caller. */
static size_t pm_error(struct pattern_state *ms, const char *text)
{
    if (ms->status == 0) {
        ms->status = PATTERN_ERROR;
        snprintf(ms->error, sizeof ms->error, "%s", text);
    }
    return PM_NONE;
}

/* ------------------------------------------------------------------------------------
 * Character classes, in the C locale (the manual's %a, %c, ... are its isalpha, ...)
 * ------------------------------------------------------------------------------------ */

static bool is_upper(int c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_lower(int c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return is_upper(c) || is_lower(c);
}

static bool is_graph(int c)
{
    return c > ' ' && c < 0x7f;
}

/* Whether byte c is in class cl (the letter after '%'): a lower-case class letter names
 * the class, its upper case the complement, and any other character stands for itself.
 * %z (NUL), deprecated since 5.2, is still one in stock 5.4 (lstrlib.c match_class). */
static bool pm_class(int c, int cl)
{
    bool in;
    switch (is_upper(cl) ? cl - 'A' + 'a' : cl) {
        case 'a':
            in = is_alpha(c);
            break;
        case 'c':
            in = c < ' ' || c == 0x7f;
            break;
        case 'd':
            in = is_digit(c);
            break;
        case 'g':
            in = is_graph(c);
            break;
        case 'l':
            in = is_lower(c);
            break;
        case 'p':
            in = is_graph(c) && !is_alpha(c) && !is_digit(c);
            break;
        case 's':
            in = c == ' ' || (c >= '\t' && c <= '\r');
            break;
        case 'u':
            in = is_upper(c);
            break;
        case 'w':
            in = is_alpha(c) || is_digit(c);
            break;
        case 'x':
            in = is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            break;
        case 'z':
            in = c == 0;
            break;
        default:
            return cl == c;
    }
    return is_upper(cl) ? !in : in;
}

/*
 * The offset after the single-character class that starts at p: x, %x or a set [...].
 * In a set the first character (after any '^') is a member even when it is ']', and
 * %x inside takes the x as escaped, so "[]]" and "[%]]" are the set of ']'.
 */
static size_t pm_class_end(struct pattern_state *ms, size_t p)
{
    const char *pat = ms->pat;
    size_t n = ms->pat_len;
    char c = pat[p++];
    if (c == '%') {
        if (p >= n) {
            return pm_error(ms, "malformed pattern (ends with '%')");
        }
        return p + 1;
    }
    if (c != '[') {
        return p;
    }
    if (p < n && pat[p] == '^') {
        p++;
    }
    do {
        if (p >= n) {
            return pm_error(ms, "malformed pattern (missing ']')");
        }
        pm_step(ms, 1);
        if (pat[p++] == '%' && p < n) {
            p++;
        }
    } while (p >= n || pat[p] != ']');
    return p + 1;
}

/* Whether byte c is in the set from '[' at p to its ']' at close: members, ranges x-y,
 * %x classes, all complemented by a leading '^'. A step per member looked at. */
static bool pm_set(struct pattern_state *ms, int c, size_t p, size_t close)
{
    const char *pat = ms->pat;
    bool want = true;
    size_t i = p + 1;
    if (pat[i] == '^') {
        want = false;
        i++;
    }
    for (; i < close; i++) {
        pm_step(ms, 1);
        if (pat[i] == '%') {
            i++;
            if (pm_class(c, uc(pat[i]))) {
                return want;
            }
        } else if (pat[i + 1] == '-' && i + 2 < close) {
            if (uc(pat[i]) <= c && c <= uc(pat[i + 2])) {
                return want;
            }
            i += 2;
        } else if (uc(pat[i]) == c) {
            return want;
        }
    }
    return !want;
}

/* Whether the subject's byte at s matches the class [p, ep). A step. */
static bool pm_single(struct pattern_state *ms, size_t s, size_t p, size_t ep)
{
    pm_step(ms, 1);
    if (s >= ms->src_len) {
        return false;
    }
    int c = uc(ms->src[s]);
    switch (ms->pat[p]) {
        case '.':
            return true;
        case '%':
            return pm_class(c, uc(ms->pat[p + 1]));
        case '[':
            return pm_set(ms, c, p, ep - 1);
        default:
            return uc(ms->pat[p]) == c;
    }
}

/* ------------------------------------------------------------------------------------
 * The matcher
 * ------------------------------------------------------------------------------------ */

static size_t pm_match(struct pattern_state *ms, size_t s, size_t p);

/* x* and x+ (s already past the one x+ needs): as many x as there are, then gives them
 * back one by one until the rest of the pattern matches. */
static size_t pm_max_expand(struct pattern_state *ms, size_t s, size_t p, size_t ep)
{
    size_t i = 0;
    while (ms->status == 0 && pm_single(ms, s + i, p, ep)) {
        i++;
    }
    for (;;) {
        size_t r = pm_match(ms, s + i, ep + 1);
        if (r != PM_NONE || ms->status != 0 || i == 0) {
            return r;
        }
        i--;
    }
}

/* x-: as few x as will let the rest of the pattern match. */
static size_t pm_min_expand(struct pattern_state *ms, size_t s, size_t p, size_t ep)
{
    for (;;) {
        size_t r = pm_match(ms, s, ep + 1);
        if (r != PM_NONE || ms->status != 0) {
            return r;
        }
        if (!pm_single(ms, s, p, ep)) {
            return PM_NONE;
        }
        s++;
    }
}

/* "(" (or "()", a position capture): opens capture number level, matches the rest. */
static size_t pm_open(struct pattern_state *ms, size_t s, size_t p, ptrdiff_t what)
{
    if (ms->level >= pattern_captures_max) {
        return pm_error(ms, "too many captures");
    }
    ms->capture[ms->level].start = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    size_t r = pm_match(ms, s, p);
    if (r == PM_NONE) {
        ms->level--;
    }
    return r;
}

/* ")": closes the innermost open capture, matches the rest. */
static size_t pm_close(struct pattern_state *ms, size_t s, size_t p)
{
    int l = ms->level - 1;
    while (l >= 0 && ms->capture[l].len != PATTERN_CAP_UNFINISHED) {
        l--;
    }
    if (l < 0) {
        return pm_error(ms, "invalid pattern capture");
    }
    ms->capture[l].len = (ptrdiff_t)(s - ms->capture[l].start);
    size_t r = pm_match(ms, s, p);
    if (r == PM_NONE) {
        ms->capture[l].len = PATTERN_CAP_UNFINISHED;
    }
    return r;
}

/* %bxy with p at x: from an x at s to the y that balances it. A step per byte. */
static size_t pm_balance(struct pattern_state *ms, size_t s, size_t p)
{
    if (p + 1 >= ms->pat_len) {
        return pm_error(ms, "malformed pattern (missing arguments to '%b')");
    }
    if (s >= ms->src_len || ms->src[s] != ms->pat[p]) {
        return PM_NONE;
    }
    char open = ms->pat[p];
    char close = ms->pat[p + 1];
    size_t depth = 1;
    for (size_t i = s + 1; i < ms->src_len && ms->status == 0; i++) {
        pm_step(ms, 1);
        if (ms->src[i] == close) {
            if (--depth == 0) {
                return i + 1;
            }
        } else if (ms->src[i] == open) {
            depth++;
        }
    }
    return PM_NONE;
}

/* %1-%9 (digit is the character after '%'): the text capture digit matched, again. */
static size_t pm_backref(struct pattern_state *ms, size_t s, char digit)
{
    int l = digit - '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == PATTERN_CAP_UNFINISHED) {
        char text[pattern_error_bytes];
        snprintf(text, sizeof text, "invalid capture index %%%d", l + 1);
        return pm_error(ms, text);
    }
    if (ms->capture[l].len == PATTERN_CAP_POSITION) {
        return PM_NONE; /* as stock: a position has no text to match */
    }
    size_t len = (size_t)ms->capture[l].len;
    pm_step(ms, 1 + len / 32);
    if (ms->src_len - s >= len && memcmp(ms->src + ms->capture[l].start, ms->src + s, len) == 0) {
        return s + len;
    }
    return PM_NONE;
}

/* %f[set] with p at the '[': matches the empty string where the byte before s (NUL at the
 * subject's start) is not in the set and the byte at s (NUL at its end) is. Returns the
 * offset after the set, or PM_NONE. */
static size_t pm_frontier(struct pattern_state *ms, size_t s, size_t p)
{
    if (p >= ms->pat_len || ms->pat[p] != '[') {
        return pm_error(ms, "missing '[' after '%f' in pattern");
    }
    size_t ep = pm_class_end(ms, p);
    if (ep == PM_NONE) {
        return PM_NONE;
    }
    int before = s == 0 ? 0 : uc(ms->src[s - 1]);
    int at = s < ms->src_len ? uc(ms->src[s]) : 0;
    if (!pm_set(ms, before, p, ep - 1) && pm_set(ms, at, p, ep - 1)) {
        return ep;
    }
    return PM_NONE;
}

/*
 * The matcher takes one pattern item at a time. An item that leaves the rest of the
 * pattern to be matched from a new place returns false with *s and *p moved there (stock's
 * "goto init": no recursion, so a long plain pattern costs no depth); one that settles
 * the outcome returns true with it in *r.
 */

/* A single-character class at *p, with its quantifier if it has one. */
static bool pm_item(struct pattern_state *ms, size_t *s, size_t *p, size_t *r)
{
    size_t ep = pm_class_end(ms, *p);
    *r = PM_NONE;
    if (ep == PM_NONE) {
        return true;
    }
    char q = ep < ms->pat_len ? ms->pat[ep] : '\0';
    if (!pm_single(ms, *s, *p, ep)) {
        if (ms->status != 0 || (q != '*' && q != '?' && q != '-')) {
            return true;
        }
        *p = ep + 1; /* none of them */
        return false;
    }
    switch (q) {
        case '?':
            *r = pm_match(ms, *s + 1, ep + 1);
            if (*r != PM_NONE || ms->status != 0) {
                return true;
            }
            *p = ep + 1;
            return false;
        case '+':
            *r = pm_max_expand(ms, *s + 1, *p, ep);
            return true;
        case '*':
            *r = pm_max_expand(ms, *s, *p, ep);
            return true;
        case '-':
            *r = pm_min_expand(ms, *s, *p, ep);
            return true;
        default:
            (*s)++;
            *p = ep;
            return false;
    }
}

/* %b, %f and %1-%9 (*p at the '%'), and anything else after a '%' as a class. */
static bool pm_escape(struct pattern_state *ms, size_t *s, size_t *p, size_t *r)
{
    char c = *p + 1 < ms->pat_len ? ms->pat[*p + 1] : '\0';
    size_t next = PM_NONE;
    *r = PM_NONE;
    if (c == 'b') {
        next = pm_balance(ms, *s, *p + 2);
        if (next != PM_NONE) {
            *s = next;
            *p += 4;
        }
    } else if (c == 'f') {
        next = pm_frontier(ms, *s, *p + 2);
        *p = next;
    } else if (*p + 1 < ms->pat_len && is_digit(uc(c))) {
        next = pm_backref(ms, *s, c);
        if (next != PM_NONE) {
            *s = next;
            *p += 2;
        }
    } else {
        return pm_item(ms, s, p, r);
    }
    return next == PM_NONE;
}

static bool pm_advance(struct pattern_state *ms, size_t *s, size_t *p, size_t *r)
{
    const char *pat = ms->pat;
    size_t n = ms->pat_len;
    if (*p == n) {
        *r = *s;
        return true;
    }
    switch (pat[*p]) {
        case '(':
            if (*p + 1 < n && pat[*p + 1] == ')') {
                *r = pm_open(ms, *s, *p + 2, PATTERN_CAP_POSITION);
            } else {
                *r = pm_open(ms, *s, *p + 1, PATTERN_CAP_UNFINISHED);
            }
            return true;
        case ')':
            *r = pm_close(ms, *s, *p + 1);
            return true;
        case '$':
            if (*p + 1 == n) {
                *r = *s == ms->src_len ? *s : PM_NONE;
                return true;
            }
            return pm_item(ms, s, p, r);
        case '%':
            return pm_escape(ms, s, p, r);
        default:
            return pm_item(ms, s, p, r);
    }
}

/* Matches pattern offset p onwards at subject offset s: the offset after the match, or
 * PM_NONE. Each call is one level of recursion; each item a step. */
static size_t pm_match(struct pattern_state *ms, size_t s, size_t p)
{
    if (ms->status != 0) {
        return PM_NONE;
    }
    if (ms->depth == 0) {
        return pm_error(ms, "pattern too complex");
    }
    ms->depth--;
    size_t r = PM_NONE;
    do {
        pm_step(ms, 1);
    } while (ms->status == 0 && !pm_advance(ms, &s, &p, &r));
    ms->depth++;
    return ms->status != 0 ? PM_NONE : r;
}

/* ------------------------------------------------------------------------------------
 * Searches and captures
 * ------------------------------------------------------------------------------------ */

int pattern_match_at(struct pattern_state *ms, size_t at, size_t *end)
{
    if (ms->status != 0) {
        return ms->status;
    }
    ms->level = 0;
    ms->depth = pattern_depth_max;
    size_t r = pm_match(ms, at, 0);
    if (ms->status != 0) {
        return ms->status;
    }
    if (r == PM_NONE) {
        return PATTERN_NOMATCH;
    }
    *end = r;
    return PATTERN_MATCH;
}

int pattern_find(struct pattern_state *ms, size_t init, bool anchor, size_t *start, size_t *end)
{
    if (init > ms->src_len) {
        return PATTERN_NOMATCH; /* as stock: nothing starts after the end */
    }
    size_t at = init;
    for (;;) {
        int rv = pattern_match_at(ms, at, end);
        if (rv != PATTERN_NOMATCH) {
            *start = at;
            return rv;
        }
        if (anchor || at >= ms->src_len) {
            return PATTERN_NOMATCH;
        }
        at++;
    }
}

bool pattern_is_plain(struct pattern_state *ms)
{
    static const char specials[] = "^$*+?.([%-";
    pm_step(ms, ms->pat_len / 32);
    for (size_t i = 0; i < ms->pat_len; i++) {
        if (ms->pat[i] != '\0' && strchr(specials, ms->pat[i]) != NULL) {
            return false;
        }
    }
    return true;
}

int pattern_find_plain(struct pattern_state *ms, size_t init, size_t *start)
{
    const char *needle = ms->pat;
    size_t n = ms->pat_len;
    if (init > ms->src_len) {
        return PATTERN_NOMATCH;
    }
    if (n == 0) {
        *start = init;
        return PATTERN_MATCH;
    }
    size_t at = init;
    while (n <= ms->src_len - at && ms->status == 0) {
        /* the last place it could start is src_len - n */
        const char *hit = memchr(ms->src + at, needle[0], ms->src_len - n - at + 1);
        size_t found = hit != NULL ? (size_t)(hit - ms->src) : ms->src_len;
        pm_step(ms, 1 + (found - at) / 32);
        if (hit == NULL) {
            break;
        }
        pm_step(ms, n / 32);
        if (memcmp(hit + 1, needle + 1, n - 1) == 0) {
            *start = found;
            return ms->status != 0 ? ms->status : PATTERN_MATCH;
        }
        at = found + 1;
    }
    return ms->status != 0 ? ms->status : PATTERN_NOMATCH;
}

int pattern_capture_count(const struct pattern_state *ms, bool whole)
{
    return ms->level == 0 && whole ? 1 : ms->level;
}

int pattern_capture_get(struct pattern_state *ms,
                        int i,
                        size_t start,
                        size_t end,
                        struct pattern_capture *out)
{
    if (i >= ms->level) {
        if (i != 0) {
            char text[pattern_error_bytes];
            snprintf(text, sizeof text, "invalid capture index %%%d", i + 1);
            pm_error(ms, text);
            return PATTERN_ERROR;
        }
        out->start = start;
        out->len = (ptrdiff_t)(end - start);
        return PATTERN_MATCH;
    }
    if (ms->capture[i].len == PATTERN_CAP_UNFINISHED) {
        pm_error(ms, "unfinished capture");
        return PATTERN_ERROR;
    }
    *out = ms->capture[i];
    return PATTERN_MATCH;
}
