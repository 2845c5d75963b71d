# src/io/transport.c: peer links on libuv TCP, plus require("luaraft.transport") for specs.
#
# luaraft_transport: a static PIC library. It encodes with luaraft_codec (src/io/wire.c)
# and verifies received snapshot files with snapfile_verify() from luaraft_store
# (cmake/store.cmake, included before this file), so it is defined only once both exist.

if(EXISTS ${PROJECT_SOURCE_DIR}/src/io/transport.c AND TARGET luaraft_codec
   AND TARGET luaraft_store)
    add_library(luaraft_transport STATIC ${PROJECT_SOURCE_DIR}/src/io/transport.c)
    set_target_properties(luaraft_transport PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_include_directories(luaraft_transport PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(luaraft_transport
        PUBLIC luaraft_codec luaraft_store PkgConfig::LIBUV
        PRIVATE luaraft_flags)

    # luaraft_transport_module: require("luaraft.transport") ->
    # ${CMAKE_BINARY_DIR}/lua/luaraft/transport.so. Lua include directories only, never
    # liblua (see luaraft_sim_module).
    if(EXISTS ${PROJECT_SOURCE_DIR}/src/io/transport_lua.c)
        add_library(luaraft_transport_module MODULE ${PROJECT_SOURCE_DIR}/src/io/transport_lua.c
            ${PROJECT_SOURCE_DIR}/src/codec/msg_lua.c)
        target_include_directories(luaraft_transport_module PRIVATE ${LUA_INCLUDE_DIRS})
        target_link_libraries(luaraft_transport_module PRIVATE luaraft_transport luaraft_flags)
        set_target_properties(luaraft_transport_module PROPERTIES
            PREFIX ""
            OUTPUT_NAME transport
            LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lua/luaraft)
    endif()
elseif(EXISTS ${PROJECT_SOURCE_DIR}/src/io/transport.c)
    message(STATUS "luaraft_transport not built: it needs luaraft_codec and luaraft_store")
endif()
