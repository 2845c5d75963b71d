# Fuzzing (fuzz/, scripts/fuzz.sh). The regression inputs in fuzz/regressions/TARGET/ and the
# seed corpora replay on every build through fuzz/replay.c (any compiler, no libFuzzer):
# ctest fuzz_replay_TARGET. The libFuzzer smoke run (clang, ASan+UBSan) is ctest fuzz_smoke.
set(LUARAFT_FUZZ_TARGETS resp wire core snapfile decode pattern script)
set(LUARAFT_FUZZ_LINK_resp luaraft_codec)
set(LUARAFT_FUZZ_LINK_wire luaraft_codec)
set(LUARAFT_FUZZ_LINK_core raft_core)
set(LUARAFT_FUZZ_LINK_snapfile luaraft_store)
set(LUARAFT_FUZZ_LINK_decode luaraft_fsm PkgConfig::LUA)
# pattern: src/fsm/pattern.c, checked against stock Lua's string.find
set(LUARAFT_FUZZ_LINK_pattern luaraft_fsm PkgConfig::LUA)
# script: bytes loaded as a state-machine script, run as code, loaded as a successor
set(LUARAFT_FUZZ_LINK_script luaraft_fsm PkgConfig::LUA)

foreach(target IN LISTS LUARAFT_FUZZ_TARGETS)
    add_executable(fuzz_replay_${target}
        ${PROJECT_SOURCE_DIR}/fuzz/fuzz_${target}.c ${PROJECT_SOURCE_DIR}/fuzz/replay.c)
    target_include_directories(fuzz_replay_${target} PRIVATE ${PROJECT_SOURCE_DIR}/fuzz)
    target_link_libraries(fuzz_replay_${target} PRIVATE ${LUARAFT_FUZZ_LINK_${target}} luaraft_flags)
    add_test(NAME fuzz_replay_${target}
        COMMAND fuzz_replay_${target} ${PROJECT_SOURCE_DIR}/fuzz/corpus/${target}
                ${PROJECT_SOURCE_DIR}/fuzz/regressions/${target})
    set_tests_properties(fuzz_replay_${target} PROPERTIES LABELS fuzz)
endforeach()

find_program(LUARAFT_FUZZ_CLANG clang)
if(LUARAFT_FUZZ_CLANG)
    add_test(NAME fuzz_smoke
        COMMAND ${PROJECT_SOURCE_DIR}/scripts/fuzz.sh --smoke
        WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(fuzz_smoke PROPERTIES LABELS fuzz
        ENVIRONMENT "LUARAFT_FUZZ_DIR=${PROJECT_BINARY_DIR}/fuzz")
endif()
