#ifndef LUARAFT_FUZZ_H
#define LUARAFT_FUZZ_H
/* The libFuzzer entry point each fuzz/fuzz_TARGET.c defines; fuzz/replay.c calls it. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
