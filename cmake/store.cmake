# src/io/store.c and src/io/snapfile.c: the node's durable state (LMDB behind a writer
# thread) and its snapshot files, plus require("luaraft.store") for specs.
#
# luaraft_store: a static PIC library. crc32c and the asserts come from src/util/, which is
# compiled into raft_core, so it links raft_core (see cmake/codec.cmake).

if(EXISTS ${PROJECT_SOURCE_DIR}/src/io/store.c AND EXISTS ${PROJECT_SOURCE_DIR}/src/io/snapfile.c)
    if(NOT TARGET raft_core)
        message(FATAL_ERROR "the store needs src/util/ (crc32c, assert), built into raft_core")
    endif()
    find_package(Threads REQUIRED)
    add_library(luaraft_store STATIC
        ${PROJECT_SOURCE_DIR}/src/io/store.c
        ${PROJECT_SOURCE_DIR}/src/io/snapfile.c)
    set_target_properties(luaraft_store PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_include_directories(luaraft_store PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(luaraft_store
        PUBLIC raft_core PkgConfig::LMDB PkgConfig::LIBUV Threads::Threads
        PRIVATE luaraft_flags)

    # luaraft_store_module: require("luaraft.store") -> ${CMAKE_BINARY_DIR}/lua/luaraft/store.so.
    # Lua include directories only, never liblua (see luaraft_sim_module).
    if(EXISTS ${PROJECT_SOURCE_DIR}/src/io/store_lua.c)
        add_library(luaraft_store_module MODULE ${PROJECT_SOURCE_DIR}/src/io/store_lua.c)
        target_include_directories(luaraft_store_module PRIVATE ${LUA_INCLUDE_DIRS})
        target_link_libraries(luaraft_store_module PRIVATE luaraft_store luaraft_flags)
        set_target_properties(luaraft_store_module PROPERTIES
            PREFIX ""
            OUTPUT_NAME store
            LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lua/luaraft)
    endif()
endif()
