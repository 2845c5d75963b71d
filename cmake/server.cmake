# src/server/: the client port (RESP over libuv TCP).
#
# luaraft_server: server.c as a static library; the RESP codec comes from luaraft_codec.
# server_test: a tiny node stand-in (PING, ECHO, SLOW, COUNT) that spec/server/ drives with
# redis-cli, so the server is tested as a real process before the node exists.
if(EXISTS ${PROJECT_SOURCE_DIR}/src/server/server.c)
    if(NOT TARGET luaraft_codec)
        message(FATAL_ERROR "src/server/server.c needs luaraft_codec (see cmake/codec.cmake)")
    endif()
    add_library(luaraft_server STATIC ${PROJECT_SOURCE_DIR}/src/server/server.c)
    set_target_properties(luaraft_server PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_include_directories(luaraft_server PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(luaraft_server PUBLIC luaraft_codec PkgConfig::LIBUV
                          PRIVATE luaraft_flags)

    if(EXISTS ${PROJECT_SOURCE_DIR}/src/server/server_test_main.c)
        add_executable(server_test ${PROJECT_SOURCE_DIR}/src/server/server_test_main.c)
        target_link_libraries(server_test PRIVATE luaraft_server luaraft_flags)
    endif()
endif()
