/* The log's one line format (see log.h). */
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic uint64_t log_id;

void lr_log_set_id(uint64_t id)
{
    atomic_store(&log_id, id);
}

uint64_t lr_log_id(void)
{
    return atomic_load(&log_id);
}

uint64_t lr_log_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * The civil date of a day count since 1970-01-01 (the proleptic Gregorian calendar, in
 * eras of 400 years that start on March 1st). gmtime_r would do, but glibc's takes the
 * time zone lock, which a child forked while another thread held it would wait on
 * forever.
 */
static void civil_date(int64_t days, int64_t *year, unsigned *month, unsigned *day)
{
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                                    /* March is 0 */
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int64_t)yoe + era * 400 + (*month <= 2);
}

/* v's last n decimal digits at p. */
static void put_digits(char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void lr_log_time(uint64_t unix_ms, char out[lr_log_time_bytes])
{
    uint64_t secs = unix_ms / 1000;
    int64_t year;
    unsigned month, day;
    civil_date((int64_t)(secs / 86400), &year, &month, &day);
    unsigned s = (unsigned)(secs % 86400);
    memcpy(out, "0000-00-00T00:00:00.000Z", lr_log_time_bytes);
    /* A year beyond 9999 would take more than the 4 digits the format has: clamped. */
    put_digits(out, (uint64_t)(year > 9999 ? 9999 : year), 4);
    put_digits(out + 5, month, 2);
    put_digits(out + 8, day, 2);
    put_digits(out + 11, s / 3600, 2);
    put_digits(out + 14, s / 60 % 60, 2);
    put_digits(out + 17, s % 60, 2);
    put_digits(out + 20, unix_ms % 1000, 3);
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* nowhere to say that the log failed */
        }
        p += w;
        n -= (size_t)w;
    }
}

void lr_vlog(uint64_t id, uint64_t term, const char *fmt, va_list ap)
{
    char line[lr_log_line_bytes_max];
    char now[lr_log_time_bytes];
    lr_log_time(lr_log_now_ms(), now);
    if (id == 0) {
        id = lr_log_id();
    }
    int head;
    if (id == 0) {
        head = snprintf(line, sizeof line, "%s luaraft: ", now);
    } else if (term == LR_LOG_NO_TERM) {
        head = snprintf(line, sizeof line, "%s luaraft[%" PRIu64 "]: ", now, id);
    } else {
        head = snprintf(line, sizeof line, "%s luaraft[%" PRIu64 "] term %" PRIu64 ": ", now, id,
                        term);
    }
    size_t room = sizeof line - (size_t)head - 1; /* the newline's byte */
    int n = vsnprintf(line + head, room + 1, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len > room) {
        len = room;
        memcpy(line + head + len - 3, "...", 3);
    }
    for (size_t i = (size_t)head; i < (size_t)head + len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch < 0x20 || ch == 0x7f) {
            line[i] = ' ';
        }
    }
    line[(size_t)head + len] = '\n';
    write_all(line, (size_t)head + len + 1);
}

void lr_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lr_vlog(0, LR_LOG_NO_TERM, fmt, ap);
    va_end(ap);
}

void lr_log_term(uint64_t term, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lr_vlog(0, term, fmt, ap);
    va_end(ap);
}

void lr_log_as(uint64_t id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lr_vlog(id, LR_LOG_NO_TERM, fmt, ap);
    va_end(ap);
}

/* Through a va_list, so that every line is written by lr_vlog. */
__attribute__((format(printf, 3, 4))) static void log_msg(uint64_t id,
                                                          uint64_t term,
                                                          const char *fmt,
                                                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    lr_vlog(id, term, fmt, ap);
    va_end(ap);
}

void lr_log_msg(uint64_t id, uint64_t term, const char *msg)
{
    log_msg(id, term, "%s", msg);
}

/* Reads the decimal number at line[*at] (at least one digit, no more than fit). */
static bool parse_u64(const char *line, size_t len, size_t *at, uint64_t *out)
{
    uint64_t v = 0;
    size_t start = *at;
    while (*at < len && line[*at] >= '0' && line[*at] <= '9' && *at - start < 19) {
        v = v * 10 + (uint64_t)(line[*at] - '0');
        (*at)++;
    }
    *out = v;
    return *at > start;
}

static bool skip(const char *line, size_t len, size_t *at, const char *text)
{
    size_t n = strlen(text);
    if (len - *at < n || memcmp(line + *at, text, n) != 0) {
        return false;
    }
    *at += n;
    return true;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ": digits where lr_log_time puts them. */
static bool is_time(const char *s)
{
    static const char shape[] = "0000-00-00T00:00:00.000Z";
    for (size_t i = 0; i + 1 < sizeof shape; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        if (shape[i] == '0' ? !digit : s[i] != shape[i]) {
            return false;
        }
    }
    return true;
}

bool lr_log_parse(const char *line, size_t len, struct lr_log_fields *f)
{
    size_t at = lr_log_time_bytes - 1;
    f->id = 0;
    f->term = LR_LOG_NO_TERM;
    if (len < at || !is_time(line) || !skip(line, len, &at, " luaraft")) {
        return false;
    }
    if (skip(line, len, &at, "[")) {
        if (!parse_u64(line, len, &at, &f->id) || !skip(line, len, &at, "]")) {
            return false;
        }
        if (skip(line, len, &at, " term ") && !parse_u64(line, len, &at, &f->term)) {
            return false;
        }
    }
    if (!skip(line, len, &at, ": ")) {
        return false;
    }
    f->msg = at;
    return true;
}
