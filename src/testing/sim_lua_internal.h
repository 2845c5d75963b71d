/*
 * What the files of the luaraft.sim module share (sim_lua.c has the module's interface):
 *
 *   sim_lua.c          the helpers below, sim.cluster{}, time, registration
 *   sim_lua_inspect.c  roles, indexes, logs and peers of the nodes
 *   sim_lua_client.c   proposals, reads, transfers, campaigns, injected messages, snapshots
 *   sim_lua_fault.c    network, node and disk faults
 *   sim_lua_report.c   the trace, the failure, the statistics
 *   sim_lua_random.c   sim.random_run{} and sim.random_runs{}
 *
 * Each file lists its methods (or module functions) in a table that luaopen_luaraft_sim()
 * registers.
 */
#ifndef LUARAFT_TESTING_SIM_LUA_INTERNAL_H
#define LUARAFT_TESTING_SIM_LUA_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>

#include "sim/sim.h"

#define CLUSTER_MT "luaraft.sim.cluster"

struct cluster
{
    struct sim *s;
    uint64_t next_value; /* propose_many's default values */
};

/* The cluster at argument 1; raises if it is closed. */
struct cluster *sim_lua_check_cluster(lua_State *L);
/* Raises the checker's violation, if there is one. Call only between steps. */
void sim_lua_raise_failure(lua_State *L, const struct cluster *c);
/* The node id at argument arg; raises unless the node exists. */
raft_id sim_lua_check_node(lua_State *L, const struct cluster *c, int arg);
/* Pushes nil, error name, message (and raises first if the error is a violation). */
int sim_lua_push_error(lua_State *L, const struct cluster *c, int rv);
/* Operations answering true | nil, err. */
int sim_lua_push_result(lua_State *L, const struct cluster *c, int rv);
/* Milliseconds (argument arg, for the error) as microseconds. */
uint64_t sim_lua_ms_to_us(lua_State *L, int arg, double ms);
/* Field key of the table at t: a non-negative integer, def when absent. */
lua_Integer sim_lua_opt_int(lua_State *L, int t, const char *key, lua_Integer def);
/* Pushes a table of the counters in st. */
void sim_lua_push_stats(lua_State *L, const struct sim_stats *st);

extern const luaL_Reg sim_lua_inspect_methods[];
extern const luaL_Reg sim_lua_client_methods[];
extern const luaL_Reg sim_lua_fault_methods[];
extern const luaL_Reg sim_lua_report_methods[];
extern const luaL_Reg sim_lua_random_funcs[];

#endif
