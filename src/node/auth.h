/* Client authentication (auth.c): --requirepass and Redis's AUTH for its default user. */
#ifndef LUARAFT_NODE_AUTH_H
#define LUARAFT_NODE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct node;
struct session;
struct server_request;

bool auth_required(const struct node *n);
/* Whether pass is the password (constant time); true when none is set. */
bool auth_password_ok(const struct node *n, const char *pass, size_t len);

#endif
