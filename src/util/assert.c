#include "util/assert.h"

#include <stdio.h>
#include <stdlib.h>

static const char *context;

void lr_assert_context(const char *text)
{
    context = text;
}

_Noreturn void lr_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "luaraft: assertion failed: %s (%s:%d)\n", expr, file, line);
    if (context != NULL) {
        fprintf(stderr, "luaraft: while running: %s\n", context);
    }
    fflush(stderr);
    abort();
}
