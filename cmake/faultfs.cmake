# faultfs (src/testing/faultfs*.c): the test-only FUSE file system that spec/power/ puts
# the nodes' data directories on, to lose what was not fsynced (a power loss) and to fail
# fsyncs and writes (disk faults). It needs libfuse3 (Debian's libfuse3-dev; fusermount3
# from fuse3 mounts it); without it the build goes on and spec_power fails, never skips.
pkg_check_modules(FUSE3 IMPORTED_TARGET fuse3)
if(FUSE3_FOUND)
    add_executable(faultfs ${PROJECT_SOURCE_DIR}/src/testing/faultfs.c
        ${PROJECT_SOURCE_DIR}/src/testing/faultfs_undo.c ${PROJECT_SOURCE_DIR}/src/testing/faultfs_ctl.c)
    target_include_directories(faultfs PRIVATE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(faultfs PRIVATE PkgConfig::FUSE3 Threads::Threads luaraft_flags)
    set_target_properties(faultfs PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
else()
    message(STATUS "fuse3 not found (Debian package libfuse3-dev): spec_power will fail")
endif()
