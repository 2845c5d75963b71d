/*
 * Snapshot files in a directory (see snapfile.h for the contract): naming one, finding the
 * newest valid one, pruning older ones, cleaning up the temporaries a crash left. The
 * names are described in snapfile_internal.h.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/snapfile.h"
#include "store/snapfile_internal.h"
#include "util/assert.h"
#include "util/log.h"

/*
 * Parses a decimal number at *p as %llu prints it (no sign, no leading zero, no overflow)
 * and moves *p past it; false if there is none.
 */
static bool snapfile_parse_u64(const char **p, uint64_t *v)
{
    const char *s = *p;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9')) {
        return false;
    }
    uint64_t x = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10) {
            return false;
        }
        x = x * 10 + d;
    }
    *v = x;
    *p = s;
    return true;
}

/* Parses "<prefix><a>-<b><suffix>" exactly; false for any other name. */
static bool snapfile_parse_pair(const char *name,
                                const char *prefix,
                                const char *suffix,
                                uint64_t *a,
                                uint64_t *b)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0) {
        return false;
    }
    const char *p = name + n;
    if (!snapfile_parse_u64(&p, a) || *p != '-') {
        return false;
    }
    p++;
    return snapfile_parse_u64(&p, b) && strcmp(p, suffix) == 0;
}

/* Parses "snap-<index>-<term>.lrs"; false for any other name. */
static bool snapfile_parse_name(const char *name, raft_index *index, raft_term *term)
{
    return snapfile_parse_pair(name, SNAPFILE_PREFIX, SNAPFILE_SUFFIX, index, term);
}

bool snapfile_is_name(const char *name, raft_index *index, raft_term *term)
{
    return snapfile_parse_name(name, index, term);
}

/* True for the names of temporaries: a snapshot being written, or one being received. */
static bool snapfile_is_temporary(const char *name)
{
    uint64_t a, b;
    return snapfile_parse_pair(name, SNAPFILE_PREFIX, SNAPFILE_SUFFIX SNAPFILE_TMP_SUFFIX, &a,
                               &b) ||
           snapfile_parse_pair(name, SNAPFILE_INCOMING_PREFIX, SNAPFILE_INCOMING_SUFFIX, &a, &b);
}

int snapfile_path(const char *dir, raft_index index, raft_term term, char *out, size_t size)
{
    lr_assert(dir != NULL && out != NULL && size > 0);
    int n = snprintf(out, size, "%s/" SNAPFILE_PREFIX "%llu-%llu" SNAPFILE_SUFFIX, dir,
                     (unsigned long long)index, (unsigned long long)term);
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        errno = ENAMETOOLONG;
        return SNAPFILE_EIO;
    }
    return 0;
}
struct snapfile_candidate
{
    raft_index index;
    raft_term term;
};

static int snapfile_candidate_cmp(const void *a, const void *b)
{
    const struct snapfile_candidate *x = a;
    const struct snapfile_candidate *y = b;
    /* Newest first. */
    if (x->index != y->index) {
        return x->index < y->index ? 1 : -1;
    }
    if (x->term != y->term) {
        return x->term < y->term ? 1 : -1;
    }
    return 0;
}

int snapfile_latest(const char *dir,
                    raft_index *index,
                    raft_term *term,
                    char *path,
                    size_t path_size)
{
    lr_assert(dir != NULL && index != NULL && term != NULL && path != NULL);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? SNAPFILE_ENOENT : SNAPFILE_EIO;
    }
    struct snapfile_candidate *c = NULL;
    size_t n = 0;
    size_t cap = 0;
    int result = SNAPFILE_ENOENT;
    struct dirent *de;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                result = SNAPFILE_EIO;
                goto out;
            }
            break;
        }
        struct snapfile_candidate one;
        if (!snapfile_parse_name(de->d_name, &one.index, &one.term)) {
            continue;
        }
        if (n == cap) {
            size_t new_cap = cap == 0 ? 8 : cap * 2;
            struct snapfile_candidate *grown = realloc(c, new_cap * sizeof *c);
            if (grown == NULL) {
                errno = ENOMEM;
                result = SNAPFILE_EIO;
                goto out;
            }
            c = grown;
            cap = new_cap;
        }
        c[n++] = one;
    }
    if (n > 0) {
        qsort(c, n, sizeof *c, snapfile_candidate_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        /* A name too long for path must not make an older snapshot the latest. */
        if (snapfile_path(dir, c[i].index, c[i].term, path, path_size) != 0) {
            result = SNAPFILE_EIO;
            break;
        }
        int rv = snapfile_verify(path, NULL);
        if (rv != 0) {
            /* Torn or corrupt: fall back to the one before. Said, since a node whose log
             * no longer reaches back to that one cannot start, and why must be clear. */
            lr_log("snapshot file %s is damaged (%s): it is not used", path, snapfile_strerror(rv));
            path[0] = '\0';
            continue;
        }
        *index = c[i].index;
        *term = c[i].term;
        result = 0;
        break;
    }

out:
    free(c);
    closedir(d);
    return result;
}

/* Removes dir/name; 0 if it is gone (also when someone else removed it first). */
static int snapfile_unlink_in(const char *dir, const char *name)
{
    char p[1024];
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof p) {
        errno = ENAMETOOLONG;
        return SNAPFILE_EIO;
    }
    return unlink(p) == 0 || errno == ENOENT ? 0 : SNAPFILE_EIO;
}

/*
 * Neither prune nor cleanup fsyncs the directory: an unlink a crash undoes leaves only a
 * file the next prune or start-up removes again, never a snapshot that looks valid but
 * is not.
 */
void snapfile_prune(const char *dir, raft_index index)
{
    lr_assert(dir != NULL);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        raft_index i;
        raft_term t;
        if (snapfile_parse_name(de->d_name, &i, &t) && i < index) {
            (void)snapfile_unlink_in(dir, de->d_name); /* kept until the next prune */
        }
    }
    closedir(d);
}

int snapfile_cleanup(const char *dir)
{
    lr_assert(dir != NULL);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? 0 : SNAPFILE_EIO;
    }
    int removed = 0;
    int result = 0;
    int saved = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0 && result == 0) {
                result = SNAPFILE_EIO;
                saved = errno;
            }
            break;
        }
        if (!snapfile_is_temporary(de->d_name)) {
            continue;
        }
        if (snapfile_unlink_in(dir, de->d_name) == 0) {
            removed++;
        } else if (result == 0) {
            result = SNAPFILE_EIO; /* go on: remove what can be removed */
            saved = errno;
        }
    }
    closedir(d);
    errno = saved;
    return result != 0 ? result : removed;
}
