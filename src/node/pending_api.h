/* TEMPORARY (removed once src/fsm/job.h has it): the keyspace query kind. */
#ifndef LUARAFT_NODE_PENDING_API_H
#define LUARAFT_NODE_PENDING_API_H
enum { FSM_QUERY_KEYSPACE = 1 };
#define PENDING_QUERY_KIND(q) 0
#endif
