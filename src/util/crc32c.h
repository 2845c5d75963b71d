/*
 * CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of iSCSI,
 * ext4 and the peer frames in src/peer/wire.c. Software, one table lookup per byte: peer
 * frames are checksummed once per send and receive, far from the hot loop's limits.
 *
 * Debian 12 packages no C library for CRC-32C (only Python, Go and Rust ones), so this is
 * our own. Check value: crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef LUARAFT_UTIL_CRC32C_H
#define LUARAFT_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns the CRC-32C of data[0, len) continued from crc: pass 0 to start, and the result of
 * the previous call to checksum a message given in pieces. data may be NULL when len is 0.
 */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
