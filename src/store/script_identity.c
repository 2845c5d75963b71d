/*
 * Script identities (snapfile.h): comparing, printing, and the byte encoding both the
 * snapshot file header (snapfile.c) and the store's "script" record (store_apply.c,
 * store_read.c) use: since u64 big-endian, hash length u8, hash, name length u8, name.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "store/snapfile.h"
#include "util/assert.h"

bool script_identity_same(const struct script_identity *a, const struct script_identity *b)
{
    lr_assert(a != NULL && b != NULL);
    return strcmp(a->name, b->name) == 0 && memcmp(a->hash, b->hash, SCRIPT_HASH_BYTES) == 0;
}

void script_identity_hex(const struct script_identity *id, char out[SCRIPT_HASH_HEX_BYTES])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SCRIPT_HASH_BYTES; i++) {
        out[2 * i] = digits[id->hash[i] >> 4];
        out[2 * i + 1] = digits[id->hash[i] & 0xf];
    }
    out[2 * SCRIPT_HASH_BYTES] = '\0';
}

size_t script_identity_encode(const struct script_identity *id, unsigned char *out)
{
    size_t name_len = strnlen(id->name, sizeof id->name);
    lr_assert(name_len <= SCRIPT_NAME_BYTES_MAX);
    size_t n = 0;
    for (int i = 7; i >= 0; i--) {
        out[n++] = (unsigned char)(id->since >> (8 * i));
    }
    out[n++] = SCRIPT_HASH_BYTES;
    memcpy(out + n, id->hash, SCRIPT_HASH_BYTES);
    n += SCRIPT_HASH_BYTES;
    out[n++] = (unsigned char)name_len;
    memcpy(out + n, id->name, name_len);
    return n + name_len;
}

int script_identity_decode(const unsigned char *p, size_t len, struct script_identity *out)
{
    memset(out, 0, sizeof *out);
    if (len < 8 + 1 + SCRIPT_HASH_BYTES + 1 || p[8] != SCRIPT_HASH_BYTES) {
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        out->since = (out->since << 8) | p[i];
    }
    memcpy(out->hash, p + 9, SCRIPT_HASH_BYTES);
    size_t at = 9 + SCRIPT_HASH_BYTES;
    size_t name_len = p[at++];
    if (name_len == 0 || at + name_len != len || memchr(p + at, '\0', name_len) != NULL) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    memcpy(out->name, p + at, name_len);
    return 0;
}
