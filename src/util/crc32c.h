/*
 * CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of iSCSI
 * (RFC 3720, section 12.1 and appendix B.4), of the peer frames in src/peer/wire.c and of
 * the snapshot files in src/store/snapfile.c.
 *
 * Computed by Intel's ISA-L (Debian package libisal-dev, crc32_iscsi), which picks the
 * SSE4.2 / PCLMULQDQ / AVX-512 code the CPU supports at run time and falls back to plain
 * C on a CPU without them: a snapshot file is checksummed on every write and verified
 * whole after it, so the byte-wise table this replaced (about 450 MB/s) made the time of
 * both grow with the state at a rate the node noticed.
 *
 * Check value: crc32c(0, "123456789", 9) == 0xE3069283. spec/store/crc_spec.lua checks it,
 * the examples of RFC 3720 appendix B.4, and agreement with a pure-Lua bitwise reference.
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
