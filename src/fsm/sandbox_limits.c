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
/*
 * The per-command memory budget counts the bytes of the new objects a call asks for:
 * tables (the object, not its parts), closures, upvalues, userdata, prototypes and long
 * strings, whose sizes follow from what the script does alone. It leaves out what depends
 * on the heap's history, which differs between replicas (a replayed one, a restored one,
 * another string-hash seed): short strings (interned: created or found), the arrays and
 * hash parts of tables (resized when their layout says so), stacks and the string table.
 * So the same command crosses the budget at the same allocation on every replica. That
 * allocation fails and the count hook then raises at every instruction, as for the
 * instruction budget, so pcall cannot carry on. The bytes counted are also charged to the
 * instruction budget, one per 64 (a 128 MiB concatenation costs work, not one instruction).
 */
enum {
    tag_last = LUA_NUMTYPES + 1, /* LUA_TPROTO (lobject.h): the last object tag */
    short_string_alloc_max = 65, /* offsetof(TString, contents) + LUAI_MAXSHORTLEN + 1 */
};

static bool counted_object(const void *ptr, size_t osize, size_t nsize)
{
    if (ptr != NULL || osize < LUA_TSTRING || osize > tag_last) {
        return false; /* growth of a block, or a vector (tag 0) */
    }
    return osize != LUA_TSTRING || nsize > short_string_alloc_max;
}

static void sandbox_raise_hook(lua_State *L, lua_Debug *ar);

/* Marks the call as aborted: the count hook raises at the next instruction. */
static void sandbox_arm_abort(struct fsm *f)
{
    lua_sethook(f->L, sandbox_raise_hook, LUA_MASKCOUNT, 1);
}

static bool sandbox_count_object(struct fsm *f, size_t nsize)
{
    if (f->memory.command_exceeded) {
        return false;
    }
    if (f->memory.command_max > 0 && nsize > f->memory.command_max - f->memory.command_used) {
        f->memory.command_exceeded = true;
        sandbox_arm_abort(f);
        return false;
    }
    f->memory.command_used += nsize;
    if (f->budget.active) {
        f->budget.used += nsize / 64;
        if (f->budget.used > f->budget.max) {
            f->budget.exceeded = true;
            sandbox_arm_abort(f);
        }
    }
    return true;
}

/*
 * The per-state limit: a growing allocation that would take the heap past it fails. Lua
 * then runs an emergency full collection and retries the same allocation once (lmem.c);
 * if the retry fails too, the limit is truly exceeded, and every growing allocation fails
 * until the call returns (sandbox_end). The live size is not the same on every replica to
 * the byte (table layouts differ with history): keep the limit well above the state, as a
 * guard; the per-command budget is the exact one. Shrinking and freeing never fail.
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
    if (f->memory.counting && !f->host_alloc && counted_object(ptr, osize, nsize) &&
        !sandbox_count_object(f, nsize)) {
        return NULL;
    }
    if (nsize > old && f->memory.max > 0 && f->memory.enforced && !f->host_alloc) {
        size_t grow = nsize - old;
        size_t max = f->memory.max + f->memory.slack;
        if (f->memory.exceeded || grow > max - f->memory.used || f->memory.used > max) {
            if (f->memory.failed_once) {
                f->memory.exceeded = true;
                sandbox_arm_abort(f);
            }
            f->memory.failed_once = true;
            return NULL;
        }
    }
    if (f->gc_in_child && nsize > old) {
        if (f->gc_valve_failed) { /* the retry after the collection: a new bound */
            f->gc_valve_failed = false;
            f->gc_paused_kb = (int)(f->memory.used / 1024) + 1;
        } else if (fsm_gc_past_bound(f, (int)(f->memory.used / 1024))) {
            f->gc_valve_failed = true;
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) {
        return NULL;
    }
    if (ptr == NULL && f->readonly && !f->host_alloc && !sandbox_readonly_note(f, p, osize)) {
        free(p); /* a query's new object, which it could not note: out of memory */
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

void sandbox_limits_hook(lua_State *L, lua_Debug *ar)
{
    if (ar->event == LUA_HOOKCALL || ar->event == LUA_HOOKTAILCALL) {
        sandbox_readonly_called(L, ar); /* a query's call: M.query reads only */
        return;
    }
    sandbox_charge(L, (uint64_t)lua_gethookcount(L));
}

/* Armed once a limit is exceeded: raises at every instruction until the call returns. */
static void sandbox_raise_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct fsm *f = fsm_from_state(L);
    if (f->budget.exceeded) {
        sandbox_charge(L, 0);
    }
    if (f->memory.command_exceeded || f->memory.exceeded) {
        luaL_error(L, "%s",
                   f->memory.command_exceeded ? "script exceeded its memory budget"
                                              : "script exceeded the state's memory limit");
    }
}

/*
 * Once the budget is spent, the hook is re-armed to fire on every instruction and raises
 * each time: a pcall in the script catches one error, but its very next instruction
 * raises again, so the call unwinds to the host after at most one instruction per frame.
 */
void sandbox_charge(lua_State *L, uint64_t n)
{
    if (!sandbox_charge_quiet(L, n)) {
        luaL_error(L, "script exceeded its instruction budget");
    }
}

bool sandbox_charge_quiet(lua_State *L, uint64_t n)
{
    struct fsm *f = fsm_from_state(L);
    if (!f->budget.active) {
        return true;
    }
    f->budget.used = n > UINT64_MAX - f->budget.used ? UINT64_MAX : f->budget.used + n;
    if (f->budget.exceeded || f->budget.used > f->budget.max) {
        f->budget.exceeded = true;
        lua_sethook(L, sandbox_limits_hook, LUA_MASKCOUNT, 1);
        return false;
    }
    return true;
}

/* Refuses up front a result of bytes that would not fit the per-command memory budget,
 * before a C function builds it (its buffer is not an object the allocator counts). */
void sandbox_charge_memory(lua_State *L, uint64_t bytes)
{
    struct fsm *f = fsm_from_state(L);
    if (f->memory.counting && f->memory.command_max > 0 &&
        bytes > f->memory.command_max - f->memory.command_used) {
        f->memory.command_exceeded = true;
        sandbox_arm_abort(f);
        luaL_error(L, "script exceeded its memory budget");
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
    f->memory.command_used = 0;
    f->memory.command_exceeded = false;
    f->memory.counting = with_limits;
    if (f->budget.active) {
        uint64_t step = f->budget.max < sandbox_hook_step ? f->budget.max : sandbox_hook_step;
        lua_sethook(f->L, sandbox_limits_hook, LUA_MASKCOUNT, (int)step);
    }
}

void sandbox_end(struct fsm *f)
{
    f->budget.active = false;
    lua_sethook(f->L, NULL, 0, 0);
    f->memory.enforced = true;
    f->memory.failed_once = false;
    f->memory.exceeded = false;
    f->memory.command_exceeded = false;
    f->memory.counting = false;
}
