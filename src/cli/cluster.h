/*
 * `luaraft cluster`: runs a local cluster of `luaraft node` processes on loopback in the
 * foreground, forwards and records their logs, reports leader changes and stops every
 * node on SIGINT/SIGTERM.
 */
#ifndef LUARAFT_CLI_CLUSTER_H
#define LUARAFT_CLI_CLUSTER_H

/* argv[0] is "cluster". Returns the process exit code: 0 after a clean stop, 1 when the
 * cluster could not start or every node exited on its own, 2 for bad usage. */
int cluster_main(int argc, char **argv);

/* argv[0] is "add", "remove" or "restart" (cluster_ctl.c): a change of a running
 * `luaraft cluster`. Returns 0, 1 when it failed (said on stderr), 2 for bad usage. */
int cluster_ctl_main(int argc, char **argv);

/* mkdir -p path: 0, or -1 with errno (ENOTDIR when path exists and is no directory). */
int cli_make_dirs(const char *path);

#endif
