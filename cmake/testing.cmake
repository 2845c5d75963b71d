# Test-only code, apart from what ships: the Lua modules that specs require
# (require("luaraft.X") -> ${CMAKE_BINARY_DIR}/lua/luaraft/X.so) and the programs specs
# launch. The modules get Lua's include directories only and never link liblua5.4:
# Debian's lua5.4 binary is statically linked and exports the Lua API.

function(luaraft_lua_module name)
    cmake_parse_arguments(PARSE_ARGV 1 M "" "" "SOURCES;LINK")
    add_library(luaraft_${name}_module MODULE ${M_SOURCES})
    target_include_directories(luaraft_${name}_module PRIVATE
        ${PROJECT_SOURCE_DIR}/src ${LUA_INCLUDE_DIRS})
    target_link_libraries(luaraft_${name}_module PRIVATE ${M_LINK} luaraft_flags)
    set_target_properties(luaraft_${name}_module PROPERTIES
        PREFIX ""
        OUTPUT_NAME ${name}
        LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lua/luaraft)
endfunction()

set(T ${PROJECT_SOURCE_DIR}/src/testing)
file(GLOB SIM_LUA_SOURCES CONFIGURE_DEPENDS ${T}/sim_lua*.c)
luaraft_lua_module(sim SOURCES ${SIM_LUA_SOURCES} LINK luaraft_simlib)
luaraft_lua_module(codec SOURCES ${T}/codec_lua.c ${T}/msg_lua.c LINK luaraft_codec)
luaraft_lua_module(fsm SOURCES ${T}/fsm_lua.c LINK luaraft_fsm)
luaraft_lua_module(store SOURCES ${T}/store_lua.c LINK luaraft_store)
luaraft_lua_module(transport SOURCES ${T}/transport_lua.c ${T}/transport_lua_wire.c
    ${T}/transport_lua_raw.c ${T}/msg_lua.c LINK luaraft_peer)

# server_test: the client port with a toy node behind it (PING, ECHO, SLOW, COUNT), which
# spec/server/ drives with redis-cli.
add_executable(server_test ${T}/server_stub.c)
target_link_libraries(server_test PRIVATE luaraft_client luaraft_flags)

# node_sim: whole nodes (src/node/ rooms, a real Lua script) under the simulator. It
# links the store only for store_strerror(): the simulated store is in memory.
file(GLOB NODESIM_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/sim/nodes/*.c)
add_executable(node_sim ${T}/node_sim_main.c ${NODESIM_SOURCES})
target_include_directories(node_sim PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(node_sim PRIVATE luaraft_node_rooms luaraft_store luaraft_simlib luaraft_fsm
    PkgConfig::LUA luaraft_flags)

# The whole-node simulation: its default seeds in every build (a failing seed prints its
# replay command, also when an assertion aborts the run).
add_test(NAME node_sim
    COMMAND node_sim --script ${PROJECT_SOURCE_DIR}/examples/kv.lua
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
add_test(NAME node_sim_5
    COMMAND node_sim --nodes 5 --seeds 100 --script ${PROJECT_SOURCE_DIR}/examples/kv.lua
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# LeakSanitizer stays on: a crashed node frees everything it held (node_free).
set_tests_properties(node_sim node_sim_5 PROPERTIES LABELS sim)
