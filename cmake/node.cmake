# The luaraft executable: src/main.c, src/node.c, src/fsm_worker.c and src/cluster.c
# (`luaraft cluster`) on top of every layer's library. Each layer is guarded, so the
# tree configures while a layer is still missing; the executable appears once all of
# them build. Unlike the Lua test modules, an executable links the real liblua
# (PkgConfig::LUA).
set(LUARAFT_NODE_SOURCES
    ${PROJECT_SOURCE_DIR}/src/main.c
    ${PROJECT_SOURCE_DIR}/src/node.c
    ${PROJECT_SOURCE_DIR}/src/fsm_worker.c
    ${PROJECT_SOURCE_DIR}/src/cluster.c)
find_package(Threads REQUIRED)

# The node's own objects compile as soon as the headers exist, so they can be checked
# before the layers link.
add_library(luaraft_node_objs OBJECT ${LUARAFT_NODE_SOURCES})
target_include_directories(luaraft_node_objs PRIVATE
    ${PROJECT_SOURCE_DIR}/src ${LUA_INCLUDE_DIRS} ${LIBUV_INCLUDE_DIRS} ${LMDB_INCLUDE_DIRS})
target_link_libraries(luaraft_node_objs PRIVATE luaraft_flags)

# cmake/*.cmake are included in name order, so the layers after this file (server,
# store, transport) define their targets later: decide at the end of the directory.
function(luaraft_node_executable)
    set(LUARAFT_NODE_READY TRUE)
    foreach(dep raft_core luaraft_codec luaraft_fsm luaraft_store luaraft_transport luaraft_server)
        if(NOT TARGET ${dep})
            set(LUARAFT_NODE_READY FALSE)
            message(STATUS "luaraft executable: waiting for target ${dep}")
        endif()
    endforeach()
    if(LUARAFT_NODE_READY)
        add_executable(luaraft $<TARGET_OBJECTS:luaraft_node_objs>)
        target_link_libraries(luaraft PRIVATE
            luaraft_server luaraft_transport luaraft_store luaraft_fsm luaraft_codec raft_core
            PkgConfig::LUA PkgConfig::LIBUV PkgConfig::LMDB Threads::Threads luaraft_flags)
        set_target_properties(luaraft PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
    endif()
endfunction()
cmake_language(DEFER CALL luaraft_node_executable)
