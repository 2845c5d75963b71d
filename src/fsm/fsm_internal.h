/*
 * Shared between the fsm's files (fsm*.c, sandbox*.c, encode.c, decode.c, reply.c); not
 * part of the fsm's interface.
 */
#ifndef LUARAFT_FSM_INTERNAL_H
#define LUARAFT_FSM_INTERNAL_H

#include <lua.h>

#include "fsm/fsm.h"

/*
 * A query may pass the per-state memory limit by this much, so that a state that fills
 * the limit can still be read: its command table, and the C calls of its read-only
 * proxies (sandbox_query.c), need memory that a collection may have freed since.
 */
enum { sandbox_readonly_slack = 1024 * 1024 };

/* Instructions between two calls of the count hook while a budget runs. */
enum { sandbox_hook_step = 1000 };

struct fsm_budget
{
    uint64_t max;  /* 0: no budget */
    uint64_t used; /* instructions charged to the current call */
    bool active;   /* a budgeted call is running */
    bool exceeded; /* sticky until the call returns */
};

struct fsm_memory
{
    size_t max;            /* 0: no cap */
    bool enforced;         /* the cap applies now (not during snapshot and restore) */
    size_t used;           /* bytes the Lua heap holds now */
    bool failed_once;      /* the last growing allocation failed (Lua retries after a GC) */
    bool exceeded;         /* a retry failed too: sticky until the call returns */
    size_t command_max;    /* 0: no per-command budget */
    size_t command_used;   /* bytes of new objects the current call asked for */
    bool command_exceeded; /* sticky until the call returns */
    bool counting;         /* a call with limits runs: command_used counts */
    size_t slack;          /* bytes a query may go past max (sandbox_readonly_slack) */
};

/* The state behind w:write()/r:read() during fsm_snapshot/fsm_restore. */
struct fsm_stream
{
    fsm_write_fn write; /* NULL when reading */
    fsm_read_fn read;   /* NULL when writing */
    void *arg;
    bool eof;
    bool failed; /* a callback returned an error */
};

/* The userdata the script sees as w or r: s is NULL outside snapshot/restore. */
struct fsm_stream_box
{
    struct fsm_stream *s;
};

/* A set of addresses (sandbox_query.c). */
struct fsm_ptrset
{
    uintptr_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t count;
};

struct fsm
{
    lua_State *L;
    char *source; /* the script's text (fsm_source), owned */
    size_t source_len;
    struct fsm_limits limits; /* as opened with: a successor (fsm_upgrade.c) gets the same */
    struct fsm_budget budget;
    struct fsm_memory memory;
    int64_t time_ms;                   /* os.time() source: the entry being (or last) applied */
    struct fsm_ctx applied;            /* the last applied entry (seed unused): a query's ctx */
    int module_ref;                    /* registry: the script's module table */
    int randomseed_ref;                /* registry: the real math.randomseed */
    int traceback_ref;                 /* registry: traceback of the last error, or false */
    int stream_ref;                    /* registry: the w/r stream userdata */
    char chunk_name[256];              /* the script's file name (its identity), as in its errors */
    bool has_query;                    /* M.query is a function (checked at load) */
    bool has_tick;                     /* M.tick is a function */
    bool has_keyspace;                 /* M.keyspace is a function */
    bool has_upgrade;                  /* M.upgrade is a function */
    bool has_version;                  /* M.version was a string or an integer */
    char version[64];                  /* M.version's text, "" without one */
    int64_t tick_ms;                   /* M.tick_ms, 0 when not given */
    bool globals_locked;               /* sandbox_lock_globals has run */
    bool readonly;                     /* a query runs: the state behind proxies */
    struct fsm_ptrset fresh;           /* tables, closures, upvalues the query made */
    struct fsm_ptrset scanned;         /* functions the query has looked at */
    struct fsm_ptrset seen;            /* upvalues the query has recorded */
    size_t records_count;              /* slots used in sandbox_query.c's records */
    bool host_alloc;                   /* a query's proxy or record: not counted, not noted,
                                          not capped (it is the host's bookkeeping) */
    struct fsm_stream_box *stream_box; /* the w/r userdata, anchored by stream_ref */
    char **reads;                      /* M.reads, upper-cased, sorted */
    size_t reads_count;                /* entries in reads */
    bool has_commands;                 /* M.commands given */
    struct fsm_command *commands;      /* M.commands, sorted by name; each entry's memory is */
    size_t commands_count;             /*   one block at its flags (fsm_contract.c) */
    char last_error[fsm_error_bytes_max];
    char test_diverge_key[64]; /* test only (fsm_test_diverge): "" when off */
    int gc_paused_kb;          /* heap size at fsm_gc_pause, in KiB; 0: the collector runs */
    bool gc_in_child;          /* fsm_gc_pause_child: sandbox_alloc collects past the bound */
    bool gc_valve_failed;      /* it refused the last growing allocation (Lua collects, retries) */
    size_t holes_count;        /* tables not sequences that the last fsm_snapshot met */
    char holes_path[fsm_holes_path_bytes]; /* the first one's key path ("" for none) */
};

/* The heap (in KiB) has grown past the bound of a pause (fsm_gc_pause). */
bool fsm_gc_past_bound(const struct fsm *f, int heap_kb);

/* luaraft.encode, inside fsm_snapshot, met a table whose positive integer keys are not
 * 1..k (encode.c): counts it, and keeps the first one's key path, up to depth keys. */
void fsm_note_holes(struct fsm *f, const char *path);

/* The error replies of a call that ran out of budget (fsm.c). fsm_take_error knows them
 * by address: their traceback is only a hint in parentheses. */
extern const char fsm_budget_text[];
extern const char fsm_memory_text[];
extern const char fsm_command_memory_text[];

/*
 * The message handler of every lua_pcall: keeps the traceback in the registry for
 * fsm_take_error and returns the error reply's text (fsm.c).
 */
int fsm_msghandler(lua_State *L);

/* Copies the traceback of the last error (or text) into f->last_error and clears it. */
void fsm_take_error(struct fsm *f, const char *text);

/* What is wrong with the module: "" while it keeps the contract. */
struct fsm_contract
{
    char why[fsm_error_bytes_max];
    size_t len;
};

/* Appends one problem to c->why (after "; " when there is one already), and ends the
 * list with what the contract says (after ": "). */
__attribute__((format(printf, 2, 3))) void fsm_contract_add(struct fsm_contract *c,
                                                            const char *fmt,
                                                            ...);
void fsm_contract_explain(struct fsm_contract *c, const char *text);

/*
 * Checks the module table at idx against the contract (fsm_contract.c), loading M.reads
 * and M.commands into f; returns false with c->why saying what is missing and what it
 * must be. [-0, +0, e]
 */
bool fsm_check_module(lua_State *L, struct fsm *f, int idx, struct fsm_contract *c);

/* Checks M.commands of the module at idx (fsm_contract_commands.c) and loads it into f;
 * with M.reads too, or a read but no M.query, notes that. [-0, +0, e] */
void fsm_check_commands(lua_State *L, struct fsm *f, int idx, struct fsm_contract *c);

/* Creates the w/r userdata and its metatable, anchored by f->stream_ref (fsm_snapshot.c).
 * [-0, +0, m] */
void fsm_stream_install(lua_State *L, struct fsm *f);

/* The fsm that owns L (it is the allocator's userdata). */
struct fsm *fsm_from_state(lua_State *L);

/* The allocator given to lua_newstate, with ud = the fsm: enforces the memory cap. */
void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/*
 * Opens the libraries and installs the replacements. Runs in protected mode (may raise).
 * [-0, +0, m]
 */
void sandbox_open(lua_State *L);

/* Locks the globals table: creating a global raises an error. [-0, +0, m] */
void sandbox_lock_globals(lua_State *L);

/* Whole seconds in ms, rounded down (os.time() and ctx.time). */
int64_t sandbox_seconds(int64_t ms);

/*
 * Starts and stops a call's limits. with_limits: the instruction budget and the memory
 * cap (apply, query, load); without: neither (snapshot and restore are the host's own
 * work, which grows with the state and must not fail where a command would). Never raise.
 */
void sandbox_begin(struct fsm *f, bool with_limits);
void sandbox_end(struct fsm *f);

/*
 * The one key order of the project: pairs, next, luaraft.keys and luaraft.encode all use
 * it. Numbers ascending (an integer before an equal float), then strings by bytes (a
 * prefix first), then false, true.
 */
struct sort_key
{
    int rank; /* 0 number, 1 string, 2 boolean */
    bool is_int;
    lua_Integer i; /* integer value, or the boolean */
    lua_Number n;
    const char *s;
    size_t len;
    lua_Integer pos; /* free for the caller: index in the collected keys */
};

/* Describes the key at idx; raises for a key type whose order would depend on addresses
 * (tables, functions, ...). s points into the Lua string: keep it alive. [-0, +0, v] */
void sort_key_init(lua_State *L, int idx, struct sort_key *k);

/* <0, 0, >0 as a sorts before, with, after b. */
int sort_key_compare(const struct sort_key *a, const struct sort_key *b);

/* Pushes a sequence of the keys of the table at t in sort_key order; charges the table
 * size to the budget. [-0, +1, e] */
void sandbox_push_sorted_keys(lua_State *L, int t);

/* Charges n instructions to the running budget; raises once it is spent. [-0, +0, v] */
void sandbox_charge(lua_State *L, uint64_t n);

/* Charges n like sandbox_charge, but returns false instead of raising once the budget is
 * spent: for C code that must unwind its own frames first (pattern.c's matcher), then
 * calls sandbox_charge(L, 0), which raises. [-0, +0, -] */
bool sandbox_charge_quiet(lua_State *L, uint64_t n);

/* Raises the memory budget's error when bytes more would not fit it. [-0, +0, v] */
void sandbox_charge_memory(lua_State *L, uint64_t bytes);

/* Charges the size of the string at idx, one instruction per 64 bytes; nothing for
 * another type. [-0, +0, v] */
void sandbox_charge_string(lua_State *L, int idx);

/* Installs the C functions charged by their work (sandbox_charge.c) over the libraries
 * sandbox_open has opened. [-0, +0, m] */
void sandbox_charge_open(lua_State *L);

/* The length table.insert, remove, unpack, concat and sort use (sandbox_charge.c): __len's
 * answer, else a border of the table read from its keys alone, charged. [-0, +0, e] */
lua_Integer sandbox_border(lua_State *L, int idx);
int sandbox_border_lua(lua_State *L);

/* Charges string.format's conversions (sandbox_charge.c): fmt is argument 1, the values
 * follow. [-0, +0, v] */
void sandbox_charge_format(lua_State *L, const char *fmt, size_t len);

/*
 * Metatables that cannot gain __gc or __mode later (sandbox_meta.c): setmetatable gives
 * the metatable a guard as its own metatable; rawset and the guard refuse those keys.
 * sandbox_meta_open installs setmetatable, getmetatable and rawset's checks. [-0, +0, m]
 */
void sandbox_meta_open(lua_State *L);

/* Raises unless the table at idx may take key (a string) by rawset. [-0, +0, v] */
void sandbox_meta_check_rawset(lua_State *L, int idx, int key);

/*
 * M.query read-only (sandbox_query.c, which says how). begin: a query is about to run;
 * the call hook then shows it the state through read-only proxies. end: puts back what
 * the query changed of the variables it reached; never raises. unwrap: replaces a proxy
 * at idx by the table it shows (for the raw readers: the reply encoder, luaraft.encode,
 * next), returning whether it was one. wrap: replaces a table read from the state at idx
 * by its proxy while a query runs. check_write: raises "M.query must not change state"
 * if the table at idx is a proxy. called: the call hook's part. note: the allocator's
 * part, false when out of memory. free: at fsm_close.
 */
void sandbox_readonly_open(lua_State *L);
void sandbox_readonly_begin(lua_State *L);
void sandbox_readonly_end(lua_State *L);
bool sandbox_readonly_unwrap(lua_State *L, int idx);
void sandbox_readonly_wrap(lua_State *L, int idx);
void sandbox_readonly_check_write(lua_State *L, int idx);
void sandbox_readonly_called(lua_State *L, lua_Debug *ar);
bool sandbox_readonly_note(struct fsm *f, const void *block, size_t tag);
/* Makes the table at proxy stand for the one at target, as a query's proxies do, for the
 * raw readers (sandbox_frozen.c's stand-ins). [-0, +0, m] */
void sandbox_readonly_mark(lua_State *L, int proxy, int target);

/* After load: the library tables and the globals read-only (sandbox_frozen.c), with
 * global_newindex the globals' __newindex. [-0, +0, m] */
void sandbox_freeze(lua_State *L, lua_CFunction global_newindex);
extern const char sandbox_frozen_text[];
void sandbox_readonly_free(struct fsm *f);

/* The count hook of the limits (sandbox_limits.c), which also passes call events to
 * sandbox_readonly_called. */
void sandbox_limits_hook(lua_State *L, lua_Debug *ar);
extern const char sandbox_readonly_text[];

/* pairs(t) and next(t, k) in sort_key order (sandbox_order.c), for sandbox_open. */
int sandbox_pairs(lua_State *L);
int sandbox_next(lua_State *L);

/* string.find, match, gmatch and gsub on pattern.c's matcher, charged by its steps
 * (sandbox_pattern.c): installs them in the string table at idx. [-0, +0, m] */
void sandbox_pattern_open(lua_State *L, int idx);

/*
 * Encodes the value at idx as one RESP reply (fsm.h's mapping) appended to out. Raises a Lua error
 * for a value that cannot be encoded (a function, nesting too deep); returns FSM_ENOMEM if out
 * could not grow (out then holds a partial reply: the caller truncates). [-0, +0, v]
 */
int reply_encode(lua_State *L, int idx, struct fsm_reply *out);

/* Makes room for extra more bytes; appends len bytes. Return 0 or FSM_ENOMEM. */
int reply_reserve(struct fsm_reply *r, size_t extra);
int reply_append(struct fsm_reply *r, const void *data, size_t len);

/* Appends "-<text>\r\n", with CR and LF in text replaced by spaces and text cut to
 * fsm_error_bytes_max. Returns 0 or FSM_ENOMEM. */
int reply_append_error(struct fsm_reply *out, const char *text, size_t len);

#endif
