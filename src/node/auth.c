/*
 * Client authentication (--requirepass): Redis's AUTH for its default user. Without a
 * password every connection is authenticated from the start and AUTH answers as Redis
 * does with none configured. With one, a connection runs nothing but AUTH, HELLO with
 * its AUTH option, QUIT and RESET until it authenticates (-NOAUTH otherwise), built-in
 * admin commands included, and the client port holds it to small argument limits
 * meanwhile (server_set_authenticated).
 *
 * Passwords are compared as BLAKE2b hashes with sodium_memcmp, so the time taken says
 * nothing of how much of a guess was right, nor of the password's length.
 */
#include <sodium.h>
#include <string.h>

#include "node/auth.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "node/session.h"

bool auth_required(const struct node *n)
{
    return n->c->requirepass != NULL;
}

static void hash(const void *s, size_t len, unsigned char out[crypto_generichash_BYTES])
{
    crypto_generichash(out, crypto_generichash_BYTES, s, len, NULL, 0);
}

bool auth_password_ok(const struct node *n, const char *pass, size_t len)
{
    if (!auth_required(n)) {
        return true;
    }
    unsigned char want[crypto_generichash_BYTES], got[crypto_generichash_BYTES];
    hash(n->c->requirepass, strlen(n->c->requirepass), want);
    hash(pass, len, got);
    return sodium_memcmp(want, got, sizeof want) == 0;
}

void auth_set(struct node *n, struct session *s, struct server_request *req, bool on)
{
    if (s == NULL || !auth_required(n)) {
        return;
    }
    s->authenticated = on;
    if (n->io->set_authenticated != NULL) {
        n->io->set_authenticated(n->io->arg, req, on);
    }
}

bool auth_gate(struct node *n,
               struct server_request *req,
               const struct session *s,
               const char *name,
               size_t len)
{
    if (s == NULL || s->authenticated || !auth_required(n)) {
        return false;
    }
    const struct conn_command *c = connection_find(name, len);
    if (c != NULL && strstr(c->flags, "no_auth") != NULL) {
        return false;
    }
    node_reply_text(n, req, "-NOAUTH Authentication required.\r\n");
    return true;
}
