/*
 * `luaraft restore BACKUP --data DIR`: seeds a new node's data directory from a backup
 * that RAFT.BACKUP wrote (store/backupfile.h). Restore the same backup into the data
 * directory of every node of the new cluster, then start them as on a first start (with
 * --cluster): each begins at the backup's index, and any of them can lead.
 */
#ifndef LUARAFT_CLI_RESTORE_H
#define LUARAFT_CLI_RESTORE_H

/* argv[0] is "restore". Returns the exit code: 0 restored, 1 failed, 2 bad usage. */
int restore_main(int argc, char **argv);

#endif
