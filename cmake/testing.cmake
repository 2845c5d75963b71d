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
luaraft_lua_module(sim SOURCES ${T}/sim_lua.c LINK luaraft_simlib)
luaraft_lua_module(codec SOURCES ${T}/codec_lua.c ${T}/msg_lua.c LINK luaraft_codec)
luaraft_lua_module(fsm SOURCES ${T}/fsm_lua.c LINK luaraft_fsm)
luaraft_lua_module(store SOURCES ${T}/store_lua.c LINK luaraft_store)
luaraft_lua_module(transport SOURCES ${T}/transport_lua.c ${T}/msg_lua.c LINK luaraft_peer)

# server_test: the client port with a toy node behind it (PING, ECHO, SLOW, COUNT), which
# spec/server/ drives with redis-cli.
add_executable(server_test ${T}/server_stub.c)
target_link_libraries(server_test PRIVATE luaraft_client luaraft_flags)
