#include "util/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void lr_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "luaraft: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}
