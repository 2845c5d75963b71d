/* `luaraft restore` (see restore.h). */
#include "cli/restore.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cluster.h"
#include "store/backupfile.h"

static const char usage[] =
    "Usage: luaraft restore BACKUP --data DIR\n"
    "\n"
    "Seeds the data directory DIR (new or empty) from BACKUP, a file that RAFT.BACKUP\n"
    "wrote: its snapshot goes into DIR, checked whole. Restore the same backup into the\n"
    "data directory of every node of the new cluster, then start each node as on a first\n"
    "start (with --cluster and the script the backup was made with). Every node starts\n"
    "at the backup's log index, and any of them can lead.\n";

/* Whether dir holds nothing (or does not exist); false with errno when it cannot tell. */
static bool empty_dir(const char *dir, bool *exists)
{
    DIR *d = opendir(dir);
    *exists = d != NULL;
    if (d == NULL) {
        return errno == ENOENT;
    }
    bool empty = true;
    struct dirent *e;
    while (empty && (e = readdir(d)) != NULL) {
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    }
    closedir(d);
    return empty;
}

int restore_main(int argc, char **argv)
{
    const char *backup = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] != '-' && backup == NULL) {
            backup = argv[i];
        } else {
            fprintf(stderr, "luaraft restore: unexpected argument '%s'\n\n%s", argv[i], usage);
            return 2;
        }
    }
    if (backup == NULL || dir == NULL) {
        fprintf(stderr, "luaraft restore: needs BACKUP and --data DIR\n\n%s", usage);
        return 2;
    }
    bool exists;
    if (!empty_dir(dir, &exists)) {
        fprintf(stderr, "luaraft restore: %s %s: restore into a new or empty data directory\n", dir,
                exists ? "is not empty" : strerror(errno));
        return 1;
    }
    if (cli_make_dirs(dir) != 0) {
        fprintf(stderr, "luaraft restore: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct backupfile_info info;
    char msg[1024];
    if (backupfile_restore(backup, dir, &info, msg, sizeof msg) != 0) {
        fprintf(stderr, "luaraft restore: %s\n", msg);
        return 1;
    }
    char hash[SCRIPT_HASH_HEX_BYTES];
    script_identity_hex(&info.snap.script, hash);
    printf("restored index %" PRIu64 " (term %" PRIu64
           ") of script %s (blake2b %.16s...) "
           "into %s\n",
           info.index, info.term, info.snap.has_script ? info.snap.script.name : "(unrecorded)",
           info.snap.has_script ? hash : "-", dir);
    return 0;
}
