#include "peer/peer_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/assert.h"
#include "util/buf.h"

_Static_assert(PEER_KEY_BYTES == crypto_auth_KEYBYTES, "the key is crypto_auth's");
_Static_assert(WIRE_PROOF_BYTES == crypto_auth_BYTES, "the proof is crypto_auth's");
_Static_assert(PEER_KEY_BYTES <= crypto_hash_sha512_BYTES, "the key is cut from a SHA-512");

/* Names what the MAC is of, so that it can never pass for one made for another purpose. */
static const char proof_domain[] = "luaraft peer handshake v3";

/* The domain (with its NUL), the two strings with their u16 lengths, two ids, the lane,
 * the challenge. */
#define PROOF_MESSAGE_BYTES_MAX                                                               \
    (sizeof proof_domain + 2 + WIRE_CLUSTER_ID_BYTES_MAX + 8 + 1 + 8 + WIRE_NONCE_BYTES + 2 + \
     WIRE_CLIENT_ADDR_BYTES_MAX)

void peer_auth_key(const void *secret, size_t len, uint8_t key[PEER_KEY_BYTES])
{
    uint8_t digest[crypto_hash_sha512_BYTES];
    lr_assert(sodium_init() >= 0);
    crypto_hash_sha512(digest, secret, len);
    memcpy(key, digest, PEER_KEY_BYTES);
    sodium_memzero(digest, sizeof digest);
}

/* The file's bytes into buf (PEER_SECRET_BYTES_MAX + 1 bytes): how many, or -1. */
static ssize_t read_secret(int fd, const char *path, uint8_t *buf, char *errmsg, size_t size)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(errmsg, size, "cannot read it: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(errmsg, size, "%s", "it is not a regular file");
        return -1;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        snprintf(errmsg, size,
                 "group or others may read or change it (mode %03o); make it the owner's only: "
                 "chmod 600 %s",
                 (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        ssize_t got = read(fd, buf + n, PEER_SECRET_BYTES_MAX + 1 - n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            snprintf(errmsg, size, "cannot read it: %s", strerror(errno));
            return -1;
        }
        n += (size_t)got;
        if (got == 0 || n > PEER_SECRET_BYTES_MAX) {
            break;
        }
    }
    if (n < PEER_SECRET_BYTES_MIN || n > PEER_SECRET_BYTES_MAX) {
        snprintf(errmsg, size,
                 "it holds %s%zu bytes; a peer secret takes %d to %d (make one with: head -c 32 "
                 "/dev/urandom > FILE; chmod 600 FILE)",
                 n > PEER_SECRET_BYTES_MAX ? "over " : "", n > PEER_SECRET_BYTES_MAX ? n - 1 : n,
                 PEER_SECRET_BYTES_MIN, PEER_SECRET_BYTES_MAX);
        return -1;
    }
    return (ssize_t)n;
}

int peer_secret_load(const char *path, uint8_t key[PEER_KEY_BYTES], char *errmsg, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errmsg, size, "cannot read it: %s", strerror(errno));
        return -1;
    }
    static uint8_t buf[PEER_SECRET_BYTES_MAX + 1]; /* start-up only, one thread */
    ssize_t n = read_secret(fd, path, buf, errmsg, size);
    close(fd);
    if (n > 0) {
        peer_auth_key(buf, (size_t)n, key);
    }
    sodium_memzero(buf, sizeof buf);
    return n > 0 ? 0 : -1;
}

static uint8_t *put_str16(uint8_t *p, const char *s, uint16_t n)
{
    be_put_u16(p, n);
    if (n > 0) {
        memcpy(p + 2, s, n);
    }
    return p + 2 + n;
}

/* The bytes the proof is a MAC of; returns how many. */
static size_t proof_message(const struct wire_handshake *hs, raft_id acceptor, uint8_t *out)
{
    uint8_t *p = out;
    memcpy(p, proof_domain, sizeof proof_domain);
    p = put_str16(p + sizeof proof_domain, hs->cluster_id, hs->cluster_id_len);
    be_put_u64(p, hs->node_id);
    p[8] = hs->bulk ? 1 : 0;
    be_put_u64(p + 9, acceptor);
    memcpy(p + 17, hs->answer, WIRE_NONCE_BYTES);
    p = put_str16(p + 17 + WIRE_NONCE_BYTES, hs->client_addr, hs->client_addr_len);
    lr_assert((size_t)(p - out) <= PROOF_MESSAGE_BYTES_MAX);
    return (size_t)(p - out);
}

void peer_auth_proof(const uint8_t key[PEER_KEY_BYTES],
                     const struct wire_handshake *hs,
                     raft_id acceptor,
                     uint8_t proof[WIRE_PROOF_BYTES])
{
    uint8_t msg[PROOF_MESSAGE_BYTES_MAX];
    size_t n = proof_message(hs, acceptor, msg);
    crypto_auth(proof, msg, n, key);
}

bool peer_auth_verify(const uint8_t key[PEER_KEY_BYTES],
                      const struct wire_handshake *hs,
                      raft_id acceptor)
{
    if (!hs->has_proof) {
        return false;
    }
    uint8_t msg[PROOF_MESSAGE_BYTES_MAX];
    size_t n = proof_message(hs, acceptor, msg);
    return crypto_auth_verify(hs->proof, msg, n, key) == 0;
}
