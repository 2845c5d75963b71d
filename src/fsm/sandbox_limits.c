/*
 * The sandbox's limits: the memory cap (the lua_Alloc, whose userdata is the fsm) and the
 * instruction budget (a count hook, cf. lua.c's lstop and Redis's luaMaskCountHook).
 * sandbox_begin and sandbox_end frame every call of the script.
 */
#include <lauxlib.h>
#include <stdlib.h>

#include "fsm/fsm_internal.h"

struct fsm *fsm_from_state(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/* ------------------------------------------------------------------------------------
 * Memory cap
 * ------------------------------------------------------------------------------------ */

/*
 * A growing allocation that would take the heap past the cap fails. Lua then runs an
 * emergency full collection and retries the same allocation once (lmem.c); if the retry
 * fails too, the cap is truly exceeded, and every growing allocation fails until the call
 * returns (sandbox_end), so a pcall inside the script cannot carry on past it. Shrinking
 * and freeing never fail: Lua relies on that.
 */
void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct fsm *f = ud;
    size_t old = ptr != NULL ? osize : 0; /* with ptr NULL, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        f->memory.used -= old;
        return NULL;
    }
    if (nsize > old && f->memory.max > 0 && f->memory.enforced) {
        size_t grow = nsize - old;
        if (f->memory.exceeded || grow > f->memory.max - f->memory.used ||
            f->memory.used > f->memory.max) {
            if (f->memory.failed_once) {
                f->memory.exceeded = true;
            }
            f->memory.failed_once = true;
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) {
        return NULL;
    }
    if (nsize > old) {
        f->memory.failed_once = false;
    }
    f->memory.used = f->memory.used - old + nsize;
    return p;
}

/* ------------------------------------------------------------------------------------
 * Instruction budget
 * ------------------------------------------------------------------------------------ */

static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    sandbox_charge(L, (uint64_t)lua_gethookcount(L));
}

/*
 * Once the budget is spent, the hook is re-armed to fire on every instruction and raises
 * each time: a pcall in the script catches one error, but its very next instruction
 * raises again, so the call unwinds to the host after at most one instruction per frame.
 */
void sandbox_charge(lua_State *L, uint64_t n)
{
    struct fsm *f = fsm_from_state(L);
    if (!f->budget.active) {
        return;
    }
    f->budget.used = n > UINT64_MAX - f->budget.used ? UINT64_MAX : f->budget.used + n;
    if (f->budget.exceeded || f->budget.used > f->budget.max) {
        f->budget.exceeded = true;
        lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "script exceeded its instruction budget");
    }
}

/* Charges a string's size, one instruction per 64 bytes. [-0, +0, v] */
void sandbox_charge_string(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len = 0;
        lua_tolstring(L, idx, &len);
        sandbox_charge(L, (uint64_t)len / 64);
    }
}

void sandbox_begin(struct fsm *f, bool with_limits)
{
    f->budget.used = 0;
    f->budget.exceeded = false;
    f->budget.active = with_limits && f->budget.max > 0;
    f->memory.enforced = with_limits;
    f->memory.failed_once = false;
    f->memory.exceeded = false;
    if (f->budget.active) {
        uint64_t step = f->budget.max < sandbox_hook_step ? f->budget.max : sandbox_hook_step;
        lua_sethook(f->L, sandbox_hook, LUA_MASKCOUNT, (int)step);
    }
}

void sandbox_end(struct fsm *f)
{
    f->budget.active = false;
    lua_sethook(f->L, NULL, 0, 0);
    f->memory.enforced = true;
    f->memory.failed_once = false;
    f->memory.exceeded = false;
}
