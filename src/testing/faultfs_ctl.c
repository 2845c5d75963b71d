/*
 * faultfs's control file (the commands are listed at the top of faultfs.c): its writes
 * are commands, its reads the counters. Called with the file system's lock held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "testing/faultfs.h"

int faultfs_ctl_write(struct faultfs *fs, const char *buf, size_t size)
{
    char cmd[128];
    size_t n = size < sizeof cmd - 1 ? size : sizeof cmd - 1;
    memcpy(cmd, buf, n);
    cmd[n] = '\0';
    long long arg;
    if (strncmp(cmd, "powerloss", 9) == 0) {
        if (!fs->dead) {
            faultfs_power_loss(fs);
        }
    } else if (sscanf(cmd, "fail-fsync %lld", &arg) == 1 && arg >= 0) {
        fs->fail_fsyncs = (unsigned)arg;
    } else if (sscanf(cmd, "full +%lld", &arg) == 1 && arg >= 0) {
        fs->total = faultfs_total_bytes(fs);
        fs->limit = fs->total + arg;
    } else if (sscanf(cmd, "full %lld", &arg) == 1 && arg >= 0) {
        fs->limit = arg;
        fs->total = faultfs_total_bytes(fs);
    } else if (sscanf(cmd, "fsync-us %lld", &arg) == 1 && arg >= 0 && arg <= 1000000) {
        fs->fsync_us = (unsigned)arg;
    } else if (strncmp(cmd, "clear", 5) == 0) {
        fs->fail_fsyncs = 0;
        fs->limit = -1;
    } else {
        fprintf(stderr, "faultfs: unknown command '%s'\n", cmd);
        return -EINVAL;
    }
    fprintf(stderr, "faultfs: %s%s", cmd, n > 0 && cmd[n - 1] == '\n' ? "" : "\n");
    return (int)size;
}

int faultfs_ctl_read(struct faultfs *fs, char *buf, size_t size, off_t off)
{
    char text[1024];
    const struct faultfs_stats *s = &fs->st;
    int n = snprintf(
        text, sizeof text,
        "dead %d\nwrites %" PRIu64 "\nfsyncs %" PRIu64 "\nfsyncs_failed %" PRIu64
        "\nenospc %" PRIu64 "\nfsync_us %u\nunsynced_changes %zu\nlimit %" PRId64 "\ntotal %" PRId64
        "\nlost_pages %" PRIu64 "\nlost_files %" PRIu64 "\nlost_entries %" PRIu64 "\n",
        fs->dead ? 1 : 0, s->writes, s->fsyncs, s->fsyncs_failed, s->enospc, fs->fsync_us,
        fs->journal_n, fs->limit, fs->total, s->lost_pages, s->lost_files, s->lost_entries);
    if (off >= n) {
        return 0;
    }
    size_t len = (size_t)(n - off) < size ? (size_t)(n - off) : size;
    memcpy(buf, text + off, len);
    return (int)len;
}
