# luaraft.lincheck: the linearizability checker (src/sim/lincheck.c, part of luaraft_simlib)
# as a Lua module, for spec/check and for tests that record histories from Lua clients.
#
# The part files are included in sorted order, and this one sorts before testing.cmake,
# which defines luaraft_lua_module(): when it is not defined yet, the call is deferred to
# the end of the top directory, by when testing.cmake has been included.
if(COMMAND luaraft_lua_module)
    luaraft_lua_module(lincheck SOURCES ${PROJECT_SOURCE_DIR}/src/testing/lincheck_lua.c
        LINK luaraft_simlib)
else()
    cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL luaraft_lua_module lincheck
        SOURCES ${PROJECT_SOURCE_DIR}/src/testing/lincheck_lua.c LINK luaraft_simlib)
endif()
