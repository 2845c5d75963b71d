/*
 * Peer authentication (src/peer/wire.h, the opening exchange): every node of a cluster
 * holds the same secret (--peer-secret-file); a dialer proves it holds it by an HMAC
 * (libsodium's crypto_auth, HMAC-SHA-512-256) over a fresh challenge of the acceptor and
 * every field of its handshake that says who talks to whom. The key is the first
 * PEER_KEY_BYTES of the SHA-512 of the secret file's bytes, whatever their length.
 *
 * What it protects: nobody without the secret gets a frame past an acceptor, so nobody
 * without it can append, vote, forward a write, force an election, stream a snapshot or
 * change a peer's client address; a handshake recorded on one connection is refused on
 * any other (each challenge is 32 random bytes). What it does not: the frames after the
 * handshake carry no MAC and are not encrypted, so someone on the network path can read
 * them, or inject into (or cut) an established TCP stream; TLS would be needed for that.
 */
#ifndef LUARAFT_PEER_PEER_AUTH_H
#define LUARAFT_PEER_PEER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer/wire.h"
#include "raft/raft.h"

enum {
    PEER_KEY_BYTES = 32,           /* crypto_auth_KEYBYTES */
    PEER_SECRET_BYTES_MIN = 32,    /* a secret file holds at least this many bytes... */
    PEER_SECRET_BYTES_MAX = 65536, /* ...and at most this many */
};

/* The key of a secret's bytes. */
void peer_auth_key(const void *secret, size_t len, uint8_t key[PEER_KEY_BYTES]);

/*
 * Reads the secret file at path into its key. Refuses a file that cannot be read, is not
 * a regular file, that group or others may read or change (mode & 077), or that holds
 * fewer than PEER_SECRET_BYTES_MIN or more than PEER_SECRET_BYTES_MAX bytes. Returns 0, or
 * -1 with why in errmsg (a sentence about the file, without its path).
 */
int peer_secret_load(const char *path, uint8_t key[PEER_KEY_BYTES], char *errmsg, size_t size);

/* The proof of hs (node_id, cluster_id, client_addr, bulk, answer) for the acceptor node
 * acceptor, under key. */
void peer_auth_proof(const uint8_t key[PEER_KEY_BYTES],
                     const struct wire_handshake *hs,
                     raft_id acceptor,
                     uint8_t proof[WIRE_PROOF_BYTES]);

/* Whether hs carries the right proof for this acceptor under key; constant time. */
bool peer_auth_verify(const uint8_t key[PEER_KEY_BYTES],
                      const struct wire_handshake *hs,
                      raft_id acceptor);

#endif
