# src/fsm/: the Lua host.
#
# luaraft_fsm: every src/fsm/*.c but the Lua module, as a static PIC library with Lua's
# include directories only. Whoever links it into an executable (the node) also links
# PkgConfig::LUA; the test module below gets the Lua API from the lua5.4 binary instead.
file(GLOB FSM_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/fsm/*.c)
list(FILTER FSM_SOURCES EXCLUDE REGEX "/src/fsm/fsm_lua\\.c$")
if(FSM_SOURCES)
    add_library(luaraft_fsm STATIC ${FSM_SOURCES})
    set_target_properties(luaraft_fsm PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_include_directories(luaraft_fsm PUBLIC ${PROJECT_SOURCE_DIR}/src ${LUA_INCLUDE_DIRS})
    target_link_libraries(luaraft_fsm PUBLIC m PRIVATE luaraft_flags) # reply.c uses floor()
endif()

# luaraft_fsm_module: require("luaraft.fsm") -> ${CMAKE_BINARY_DIR}/lua/luaraft/fsm.so.
# Like the sim module, it must not link liblua5.4: Debian's lua5.4 binary is statically
# linked and exports the Lua API.
if(EXISTS ${PROJECT_SOURCE_DIR}/src/fsm/fsm_lua.c)
    if(NOT TARGET luaraft_fsm)
        message(FATAL_ERROR "src/fsm/fsm_lua.c exists but the rest of src/fsm/ does not")
    endif()
    add_library(luaraft_fsm_module MODULE ${PROJECT_SOURCE_DIR}/src/fsm/fsm_lua.c)
    target_include_directories(luaraft_fsm_module PRIVATE ${LUA_INCLUDE_DIRS})
    target_link_libraries(luaraft_fsm_module PRIVATE luaraft_fsm luaraft_flags)
    set_target_properties(luaraft_fsm_module PROPERTIES
        PREFIX ""
        OUTPUT_NAME fsm
        LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lua/luaraft)
endif()
