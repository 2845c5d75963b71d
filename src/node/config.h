/* The cluster's configuration as text and as the file DIR/cluster (see config.c). */
#ifndef LUARAFT_NODE_CONFIG_H
#define LUARAFT_NODE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "node/node.h"

enum {
    config_name_bytes_max = 256, /* a host as given, NUL included (DNS names: 253) */
};

/*
 * Splits "HOST:PORT" ("[HOST]:PORT" for IPv6) and resolves HOST, once, into a numeric
 * address in host: a numeric IPv4 or IPv6 address stays as it is; a name goes through
 * getaddrinfo and gives its first IPv4 address, or its first IPv6 one if it has none.
 * Returns 0; -1 when text is not HOST:PORT, -2 when HOST does not resolve; either with the
 * reason in errmsg. node_parse_addr is this without the reason (0 or -1).
 */
int config_resolve_addr(const char *text,
                        char *host,
                        size_t host_size,
                        int *port,
                        char *errmsg,
                        size_t errmsg_size);

/* Checks the syntax of "ID=HOST:PORT,..." as node_parse_cluster reads it, without
 * resolving any host. Returns the number of members, or -1 with a message in errmsg. */
int config_check_cluster(const char *text, char *errmsg, size_t errmsg_size);

/* Writes text to DIR/cluster durably (temporary name, fsync, rename, fsync of the
 * directory). Returns 0 or a negative errno. */
int config_write_file(const char *dir, const char *text);

/* The first line of DIR/cluster (malloc'd, the caller frees it), or NULL if there is none. */
char *config_read_file(const char *dir);

/* The same for DIR/name, and its first line. */
int config_write_named(const char *dir, const char *name, const char *text);
char *config_read_named(const char *dir, const char *name);

/* fsync of a directory, so a rename in it is durable. Returns 0 or a negative errno. */
int config_fsync_dir(const char *dir);

/* A 64-bit hash of a text (FNV-1a), for ids derived from configuration text. */
uint64_t config_hash_text(const char *s);

/* 64 random bits from the kernel, or from the clock and pid if that fails. */
uint64_t config_random_u64(void);

#endif
