# The codecs: RESP (src/server/resp.c) and the peer wire format (src/io/wire.c), plus
# require("luaraft.codec") for specs. Both codecs are pure; buf and crc32c come from
# src/util/, which is compiled into raft_core, so the library links raft_core rather than
# compiling those files a second time (two copies would clash once the node links both).

if(EXISTS ${PROJECT_SOURCE_DIR}/src/server/resp.c AND EXISTS ${PROJECT_SOURCE_DIR}/src/io/wire.c)
    if(NOT TARGET raft_core)
        message(FATAL_ERROR "the codecs need src/util/ (buf, crc32c), built into raft_core")
    endif()
    add_library(luaraft_codec STATIC
        ${PROJECT_SOURCE_DIR}/src/server/resp.c
        ${PROJECT_SOURCE_DIR}/src/io/wire.c)
    set_target_properties(luaraft_codec PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_include_directories(luaraft_codec PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(luaraft_codec PUBLIC raft_core PRIVATE luaraft_flags)

    # luaraft_codec_module: require("luaraft.codec") -> ${CMAKE_BINARY_DIR}/lua/luaraft/codec.so.
    # Lua include directories only, never liblua (see luaraft_sim_module).
    if(EXISTS ${PROJECT_SOURCE_DIR}/src/codec/codec_lua.c)
        add_library(luaraft_codec_module MODULE ${PROJECT_SOURCE_DIR}/src/codec/codec_lua.c
            ${PROJECT_SOURCE_DIR}/src/codec/msg_lua.c)
        target_include_directories(luaraft_codec_module PRIVATE ${LUA_INCLUDE_DIRS})
        target_link_libraries(luaraft_codec_module PRIVATE luaraft_codec luaraft_flags)
        set_target_properties(luaraft_codec_module PROPERTIES
            PREFIX ""
            OUTPUT_NAME codec
            LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lua/luaraft)
    endif()
endif()
