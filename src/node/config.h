/* The cluster's configuration as text and as the file DIR/cluster (see config.c). */
#ifndef LUARAFT_NODE_CONFIG_H
#define LUARAFT_NODE_CONFIG_H

#include <stdint.h>

#include "node/node.h"

/* Writes text to DIR/cluster durably (temporary name, fsync, rename, fsync of the
 * directory). Returns 0 or a negative errno. */
int config_write_file(const char *dir, const char *text);

/* The first line of DIR/cluster (malloc'd, the caller frees it), or NULL if there is none. */
char *config_read_file(const char *dir);

/* fsync of a directory, so a rename in it is durable. Returns 0 or a negative errno. */
int config_fsync_dir(const char *dir);

/* A 64-bit hash of a text (FNV-1a), for ids derived from configuration text. */
uint64_t config_hash_text(const char *s);

/* 64 random bits from the kernel, or from the clock and pid if that fails. */
uint64_t config_random_u64(void);

#endif
