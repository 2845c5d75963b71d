/*
 * The Lua host: runs the replicated state machine, a Lua script, in a sandbox that makes
 * it deterministic. It knows Lua, not Raft: the node feeds it committed entries in log
 * order (fsm/job.h: commands, transactions, ticks), reads (fsm_query), and asks it for
 * snapshots; its loop thread reads the command table (below) to route commands.
 *
 * The script is a module that returns a table:
 *
 *   local M = {}
 *   function M.apply(cmd, ctx) ... return reply end  -- cmd = {"SET", "k", "v"}
 *   function M.query(cmd, ctx) ... return reply end  -- optional; read-only commands
 *   function M.snapshot(w) w:write(bytes) end        -- stream the state out
 *   function M.restore(r) ... r:read() ... end       -- r:read() -> chunk | nil
 *   M.commands = { ... }                             -- optional: the command table
 *   M.reads = { GET = true }                         -- optional, or { "GET", ... };
 *                                                    --   case-insensitive; needs M.query
 *   function M.tick(ctx) ... end                     -- optional: at every TICK entry
 *   M.tick_ms = 1000                                 -- optional: log a TICK when idle
 *   function M.keyspace(ctx) return {keys = n, expires = m} end  -- optional: for INFO
 *   return M
 *
 * Entries (fsm_job_apply_entry): a COMMAND runs M.apply(cmd, ctx). A TRANSACTION (MULTI
 * ... EXEC) runs its commands back to back, each with the entry's ctx and a budget of its
 * own, reads (read = true, or M.reads) through M.query, the others through M.apply; a
 * command's error is its reply and the rest still run (Redis's EXEC semantics, no
 * rollback); the entry's reply is the array of theirs. A TICK moves the clock to its time
 * and runs M.tick(ctx) like an apply, its reply dropped and its error swallowed (the same
 * on every replica): a place to expire keys while no one writes. M.tick_ms (an integer,
 * 1 to fsm_tick_ms_max) makes the leader log a TICK whenever nothing was logged for that
 * many milliseconds, so the log's clock, and what readers see of it, moves while idle.
 * M.keyspace(ctx) (query ctx) tells INFO how many keys there are and how many expire.
 *
 * M.commands, optional, tells the node which commands exist and how to route them:
 *
 *   M.commands = {
 *     GET    = { read = true, arity = 2, keys = {1, 1, 1} },  -- served by M.query
 *     SET    = { arity = -3, keys = {1, 1, 1} },               -- a write: logged, M.apply
 *     MSET   = { arity = -3, keys = {1, -1, 2}, flags = {"denyoom"} },
 *     DBSIZE = { read = true, arity = 1 },                      -- no key arguments
 *   }
 *
 * Names are case-insensitive (1 to 63 letters, digits and _ . : -; each once). arity as in
 * Redis's command table: N, exactly N words counting the name; -N, at least N. keys =
 * {first, last, step} as Redis's COMMAND gives them (first >= 1, step >= 1, last >= first
 * or negative: -1 the last argument, -2 the one before); a fixed arity must hold every
 * key, and so must the fewest arguments of an at-least arity when last counts from the
 * front; absent: no key arguments. read = true marks a read (it needs M.query); flags, a
 * list of at most 16 flag names ([a-z0-9_]), shown by COMMAND INFO after the default
 * "write" or "readonly" (listing the default again is allowed, the other one refused).
 * No other fields. With a table, the node refuses a command it does not list, or one with
 * the wrong number of arguments, with Redis's errors (fsm_command_check). Without one,
 * M.reads names the reads and every other command is a write; giving both is refused.
 *
 * apply's (and tick's) ctx is a fresh table {index=, term=, time_ms=, time= (time_ms //
 * 1000), seed=} of the entry being applied. query's (and keyspace's) ctx is {index=,
 * term=, time_ms=, time=} of the last applied entry (no seed), or of the transaction
 * entry a read is part of, so that a script decides expiry for readers by the same clock
 * as for writers (ctx.time_ms, never the machine's).
 *
 * Replies are encoded straight to RESP2: string -> bulk string; integer -> integer; a
 * float with an integral value -> integer, other floats -> bulk string ("%.17g"); nil and
 * false -> null bulk ($-1); true -> integer 1; {ok = "s"} -> status +s; {err = "s"} ->
 * error -s; and RESP3 forms where the script asks for them (the node turns them into
 * Redis's RESP2 forms for a RESP2 connection, client/resp3.h): {map = {k1, v1, k2, v2,
 * ...}} -> map %n of n pairs (an odd count is an error), {set = {...}} -> set ~n,
 * {double = x} -> double ",x" as Redis 7.0 writes it ("%.17g", inf and -inf; every NaN
 * "nan"), {pairs = {a1, b1, a2, b2, ...}} -> an array of n two-element arrays, which a
 * RESP2 connection gets flat (*2n, as Redis's ZRANGE WITHSCORES), {null_array = true} ->
 * null _, which a RESP2 connection gets as *-1. Any other table -> array of t[1], t[2],
 * ... up to the first nil (never #t, whose border depends on the table's layout). The
 * fields are looked at in the order err, ok, map, set, double, pairs, null_array (so a
 * table with a map field is a map, whatever else it holds). Nesting: at most
 * fsm_reply_depth_max levels.
 *
 * A Lua error inside apply or query becomes an error reply and the fsm stays usable:
 * error("msg") -> "-ERR msg" with the "chunk:line: " prefix removed, error({err = "X y"})
 * -> "-X y". The reply is the same on every replica. The script's effects up to the
 * error are kept (there is no rollback), which is deterministic too.
 *
 * The sandbox (sandbox.c), in force while the script loads and in every call:
 *  - libraries: base (without dofile, loadfile, print, warn; load accepts text only),
 *    string (without dump), table, math, utf8, and os with only time and clock. No io,
 *    package/require, debug, coroutine.
 *  - os.time() is the time of the entry being applied in seconds (time_ms // 1000; a
 *    query's ctx.time outside an entry), os.clock() the same as a float.
 *  - math.randomseed(ctx.seed) runs before each apply, tick, and read inside a
 *    transaction; math.randomseed() without an argument is refused.
 *  - pairs visits keys in sorted order (numbers ascending, then strings by bytes, then
 *    false, true); next(t, k) returns the sorted successor. A key of another type raises
 *    "non-deterministic key type". Both charge the table size to the instruction budget.
 *  - table.sort is a stable merge sort written in Lua (the C one picks random pivots).
 *  - Length. `#t` is defined only on sequences (tables whose positive integer keys are
 *    1..n): on a table with holes Lua answers any border, chosen by the table's layout
 *    (Lua 5.4 manual §3.4.7), and the layout depends on the table's history, which a
 *    replica that restored a snapshot does not share ({1, nil, 3}: 3 where it was built,
 *    1 after a restore). The operator cannot be intercepted for plain tables, so this is
 *    the script's rule to keep, and fsm_snapshot warns about state tables that break it
 *    (fsm_snapshot_holes). table.insert, remove, unpack, concat and sort do not use `#`:
 *    they use __len when the value has one, else a border read from the keys alone
 *    (sandbox_border, sandbox_charge.c: on a sequence, its length; on {1, nil, 3}, 1),
 *    the same on every replica. ipairs and reply arrays stop at the first nil.
 *  - tostring of tables, functions and userdata gives the type name (or __name), never
 *    an address; string.format refuses %p and formats such values the same way.
 *  - collectgarbage accepts only "collect", and does nothing (sandbox.c says why);
 *    setmetatable refuses __gc and __mode, and the metatable refuses them afterwards
 *    (sandbox_meta.c), so a metatable cannot have a metatable of its own.
 *  - M.query (and M.keyspace) read the state through read-only proxies: a write into a
 *    table of the state is an error "M.query must not change state", and the variables
 *    the query assigns get their values back when it ends (sandbox_query.c).
 *  - after the script has loaded, globals are locked: creating or assigning one is an
 *    error, and so is assigning a field of string, table, math, utf8, os or luaraft
 *    (sandbox_frozen.c: such a change would outlive the command without being in the
 *    state, so a replica restored from a snapshot would not have it).
 *  - C functions that do work in proportion to string sizes in one instruction charge
 *    one instruction per 64 bytes: string.rep and string.format (output), string.upper,
 *    lower, reverse (input and output). The others are charged by their work as
 *    sandbox_charge.c says (elements moved, values pushed, bytes decoded or compiled),
 *    before the work where its size follows from the arguments. Encoding the reply is
 *    charged too (reply.c), and a reply that contains itself is an error.
 *  - string.find, match, gmatch and gsub run on the sandbox's own matcher (pattern.c,
 *    with stock Lua 5.4's results and error messages), which charges one instruction per
 *    2 steps (a character tested, a backtracking move, a byte scanned by a set, %b or a
 *    back-reference) as it goes: a pattern that backtracks for ever stops with the
 *    instruction budget's error, at the same step on every replica. gsub's result is
 *    checked against the per-command memory budget before it is built, and charged one
 *    instruction per 64 bytes added or of replacement string scanned.
 *  - instruction budget (limits.instructions_max, VM instructions per call, counted by a
 *    count hook; also while the script loads): once spent, every further instruction
 *    raises again, so pcall inside the script cannot swallow it; the reply is
 *    "-ERR script exceeded its instruction budget".
 *  - memory cap (limits.memory_bytes_max, bytes the Lua heap may hold): an allocation
 *    that still does not fit after Lua's emergency collection fails, and so does every
 *    later one until the call unwinds; the reply is "-ERR script exceeded its memory
 *    budget". It is deterministic as far as the heap's live size after a full collection
 *    is, which can differ a little between a replayed and a restored state: keep the cap
 *    well above the state's size, as a guard against runaway commands.
 *  - neither limit applies to fsm_snapshot and fsm_restore.
 *
 * Helpers, in the global table luaraft (encode.c has the byte-level format):
 *  - luaraft.encode(v) -> string: a canonical encoding of nil, booleans, integers, floats,
 *    strings and tables of those, nested up to luaraft.encode_depth_max (64) tables: the
 *    same value gives the same bytes on every replica, whatever order its tables were
 *    filled in. The format is MessagePack with one encoding per value: shortest integer
 *    and length forms, floats always 8-byte (1.0 stays a float, -0.0 keeps its sign,
 *    every NaN the same bytes), strings as str, a table with keys exactly 1..n as an
 *    array, any other table as a map with its keys in pairs order. Metatables are
 *    ignored. Errors: functions, userdata, cycles, deeper nesting, keys of other types.
 *  - luaraft.decode(s) -> v: the inverse, strict: it accepts only what encode produces
 *    (no trailing bytes, unknown tags, truncation, non-shortest forms, unsorted or
 *    repeated keys, nesting over the limit), so encode(decode(s)) == s.
 *  - both charge the instruction budget: encode one per table entry and per 64 bytes
 *    out, decode one per 64 bytes in and per table entry. In M.snapshot and M.restore
 *    nothing is charged. For a state of many keys, one luaraft.encode of the whole state
 *    in M.snapshot is much faster than a Lua loop that writes each entry.
 *  - luaraft.keys(t) -> {k1, k2, ...}: t's keys in pairs order.
 *  - luaraft.sorted_pairs is pairs itself: pairs already visits keys in sorted order.
 *
 * Thread confinement: an fsm and everything it returns belong to the thread that uses
 * it; there is no shared or global state, so one fsm per thread needs no locks. The one
 * exception is what the module declared at load time and never changes afterwards, read
 * without touching the Lua state: the command table (fsm_has_commands, fsm_commands_count,
 * fsm_command_at/find/check/keys), fsm_is_read and fsm_tick_ms may be called from the
 * node's loop thread while the fsm thread runs Lua.
 */
#ifndef LUARAFT_FSM_FSM_H
#define LUARAFT_FSM_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes: every function returns 0 or one of these. */
enum {
    FSM_ENOMEM = -1,  /* C-side allocation failed, or the Lua state could not be made */
    FSM_ELOAD = -2,   /* the script could not be read, compiled, run or checked */
    FSM_ENOTSUP = -3, /* the script has no query, snapshot or restore function */
    FSM_ESCRIPT = -4, /* the script raised an error in snapshot or restore */
    FSM_ESTREAM = -5, /* the write or read callback returned an error */
    FSM_EINVAL = -6,  /* bad arguments (argc < 1, ...) */
};

enum {
    fsm_reply_depth_max = 32,                /* nesting of array replies */
    fsm_script_bytes_max = 16 * 1024 * 1024, /* size of the script file */
    fsm_holes_path_bytes = 160,              /* fsm_snapshot_holes's key path */
    fsm_error_bytes_max = 1024,              /* an error reply's text, and fsm_last_error */
};

/* A short, static description of an FSM_E* code. */
const char *fsm_strerror(int rv);

/* Zero means "no limit" for both. */
struct fsm_limits
{
    uint64_t instructions_max;       /* Lua VM instructions per apply/query/load */
    size_t memory_bytes_max;         /* bytes the Lua heap may hold */
    size_t command_memory_bytes_max; /* bytes of new objects one call may ask for */
};

/* What the leader assigned to the entry: the same on every replica. */
struct fsm_ctx
{
    uint64_t index;
    uint64_t term;
    int64_t time_ms; /* leader's clock when it appended the entry */
    uint64_t seed;   /* seeds math.random for this entry */
};

/* A growable buffer of RESP bytes. Zero-initialized or fsm_reply_init() is empty. */
struct fsm_reply
{
    char *data;
    size_t len;
    size_t cap;
};

void fsm_reply_init(struct fsm_reply *r);
void fsm_reply_reset(struct fsm_reply *r); /* len = 0, keeps the memory */
void fsm_reply_free(struct fsm_reply *r);

struct fsm;

/*
 * Creates a Lua state, opens the sandbox, and runs the script at script_path (text only,
 * at most fsm_script_bytes_max bytes) under the limits. The script must return a table
 * with apply, snapshot and restore functions; query, tick and keyspace (functions),
 * reads (a table of command names, which then needs query), commands (the command table,
 * checked field by field; a read in it needs query; not with reads) and tick_ms are
 * optional. limits may be NULL (no limits). On
 * success *out is the new fsm.
 *
 * Errors (errmsg, when not NULL, gets a NUL-terminated message; *out is untouched):
 *   FSM_ENOMEM  the Lua state or the fsm could not be allocated;
 *   FSM_ELOAD   the file could not be read, the script did not compile, raised an error
 *               (the Lua message with a traceback), exceeded a limit, or returned a
 *               module that breaks the contract above: "<path>: M.snapshot is missing:
 *               a script must define M.apply(cmd, ctx), M.snapshot(w) and M.restore(r)
 *               (see README.md, Writing a state machine)", naming each missing or
 *               mistyped field.
 */
int fsm_open(struct fsm **out,
             const char *script_path,
             const struct fsm_limits *limits,
             char *errmsg,
             size_t errmsg_size);

/* fsm_open for a script given as text: name is its file name (as in its errors and its
 * identity), source[0, len) its text, which the fsm keeps a copy of (fsm_source). Errors
 * as fsm_open's, "<name>: ..." in errmsg. */
int fsm_open_source(struct fsm **out,
                    const char *name,
                    const char *source,
                    size_t len,
                    const struct fsm_limits *limits,
                    char *errmsg,
                    size_t errmsg_size);

/* Closes the Lua state and frees the fsm. f may be NULL. */
void fsm_close(struct fsm *f);

/* Closes only the Lua state, on the thread that runs it, and keeps the command table
 * (fsm_is_read, fsm_command_find, fsm_tick_ms), which the loop thread may still be reading
 * until it adopts a successor; fsm_close then frees the rest. */
void fsm_close_state(struct fsm *f);

/* fsm_open_source with the limits old was opened with (and its test switches): a new
 * version of old's script, or the script of a snapshot of one. Its state is empty. */
int fsm_open_successor(const struct fsm *old,
                       const char *name,
                       const char *source,
                       size_t len,
                       struct fsm **out,
                       char *errmsg,
                       size_t errmsg_size);

/*
 * Script upgrades (fsm_upgrade.c): opens the script name with text source[0, len) as the
 * successor of old, with old's limits; moves old's state into it through old's M.snapshot
 * and its M.restore; then runs its M.upgrade(old_version, ctx) if it has one, old_version
 * being old's M.version as a string (nil without one), under the budget. On success *out
 * is the successor and old is untouched (the caller retires it). On failure, FSM_ELOAD
 * with "-ERR RAFT.LOAD: ..." in reply (the same on every replica), and old goes on.
 */
int fsm_upgrade(struct fsm *old,
                const char *name,
                const char *source,
                size_t len,
                const struct fsm_ctx *ctx,
                struct fsm **out,
                struct fsm_reply *reply);

/* Runs M.upgrade(old_version, ctx) (fsm.c); 0 when the module has none. Errors as
 * fsm_apply's, the error reply in out. */
int fsm_call_upgrade(struct fsm *f,
                     const struct fsm_ctx *ctx,
                     const char *old_version,
                     struct fsm_reply *out);

/* The script's text, file name (its identity's name) and the BLAKE2b-256 hash of its text
 * (its identity's hash: the same as hashing the file). */
enum { FSM_SOURCE_HASH_BYTES = 32 };
const char *fsm_source(const struct fsm *f, size_t *len);
const char *fsm_name(const struct fsm *f);
void fsm_source_hash(const struct fsm *f, unsigned char out[FSM_SOURCE_HASH_BYTES]);

/*
 * Whether the command is a read: marked read = true in M.commands when the script has a
 * command table, else listed in M.reads (read at load time). ASCII case-insensitive.
 * Never fails and does not touch the Lua state (see the command table below).
 */
bool fsm_is_read(struct fsm *f, const char *name, size_t len);

/* ------------------------------------------------------------------------------------
 * The command table (M.commands), for the node's loop thread: it is built at load time
 * and never changes afterwards, and these functions read only it, never the Lua state,
 * so the loop thread may call them while the fsm thread runs Lua.
 * ------------------------------------------------------------------------------------ */

enum {
    fsm_command_name_bytes_max = 63, /* a command's name */
    fsm_command_flags_max = 16,      /* flags a script may list for one command */
    fsm_command_flag_bytes_max = 32, /* one flag */
    fsm_command_err_bytes_max = 320, /* fsm_command_check's longest error text, NUL included */
    fsm_tick_ms_max = 86400000,      /* M.tick_ms: one day */
};

/* One command of the table. */
struct fsm_command
{
    const char *name; /* lowercase */
    int arity;        /* N: exactly N words counting the name; -N: at least N */
    int first_key;    /* 0 when the command has no key arguments (then last_key, step 0) */
    int last_key;     /* -1: the last argument, -2 the one before, ... */
    int step;
    bool read;                /* served by M.query, not logged */
    const char *const *flags; /* "write" or "readonly" first, then the script's flags */
    size_t n_flags;
};

/* Whether the script gave M.commands. */
bool fsm_has_commands(const struct fsm *f);

/* The number of commands in the table (0 without one). */
size_t fsm_commands_count(const struct fsm *f);

/* The i-th command (i < fsm_commands_count), in name order. */
const struct fsm_command *fsm_command_at(const struct fsm *f, size_t i);

/* The command named name[0, len), ASCII case-insensitively, or NULL. */
const struct fsm_command *fsm_command_find(const struct fsm *f, const char *name, size_t len);

/*
 * Checks a command against the table as Redis 7.0 does before it runs one (server.c,
 * commandCheckExistence and commandCheckArity): returns it, or NULL with the error text
 * in err (NUL-terminated, cut to err_size; without "-" and CRLF), e.g.
 *   ERR unknown command 'foo', with args beginning with: 'a' 'b'
 *   ERR wrong number of arguments for 'get' command
 * In the first, the name is cut at 128 bytes, the arguments are quoted ('a' and a space
 * each, so the text ends in a space) while the quoted text is under 128 bytes, each cut
 * to what is left of those 128, each string is cut at a NUL byte (Redis prints them as C
 * strings), and CR and LF anywhere become spaces. err_size of
 * fsm_command_err_bytes_max holds the longest. Without a table: NULL with err "" (no
 * table: every command goes to the script). argc < 1: NULL, "ERR empty command".
 */
const struct fsm_command *fsm_command_check(const struct fsm *f,
                                            int argc,
                                            const char *const *argv,
                                            const size_t *argvlen,
                                            char *err,
                                            size_t err_size);

/*
 * Calls fn(arg, key, len) for each key argument of argv as c names them (Redis's legacy
 * first/last/step: last < 0 counts from argc), in order; none when c has no keys, or when
 * argv is too short for c's last key (as Redis, which then leaves the error to the
 * command).
 */
void fsm_command_keys(const struct fsm_command *c,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen,
                      void (*fn)(void *arg, const char *key, size_t len),
                      void *arg);

/*
 * Runs M.apply(cmd, ctx) with cmd = {argv[0], ..., argv[argc - 1]} and appends the
 * reply to out (RESP bytes, above). A script error, an exceeded budget or an unencodable
 * reply value is an error reply, still with return value 0: the caller sends out's
 * bytes either way. After the call, out holds exactly one more reply, or is unchanged.
 *
 * Errors: FSM_EINVAL (argc < 1); FSM_ENOMEM (out could not grow).
 */
int fsm_apply(struct fsm *f,
              const struct fsm_ctx *ctx,
              int argc,
              const char *const *argv,
              const size_t *argvlen,
              struct fsm_reply *out);

/*
 * Runs M.query(cmd, ctx) like fsm_apply, with ctx the last applied entry's index, term
 * and time (fsm_applied): os.time() is that time, and math.random continues from where
 * the last call left it. The sandbox does not stop a query from writing state; the
 * script's query must not.
 *
 * Errors: FSM_ENOTSUP (the script has no query function; out unchanged); FSM_EINVAL;
 * FSM_ENOMEM.
 */
int fsm_query(struct fsm *f,
              int argc,
              const char *const *argv,
              const size_t *argvlen,
              struct fsm_reply *out);

/* fsm_query with the given ctx instead (its seed is ignored; os.time() is ctx->time_ms
 * during the call only). For tests, and reads inside a transaction entry. */
int fsm_query_at(struct fsm *f,
                 const struct fsm_ctx *ctx,
                 int argc,
                 const char *const *argv,
                 const size_t *argvlen,
                 struct fsm_reply *out);

/*
 * Runs one command of a TRANSACTION entry (fsm/job.c): a read (fsm_is_read) through
 * M.query(cmd, ctx) with ctx the entry's {index, term, time_ms, time}, anything else
 * through M.apply(cmd, ctx) with the whole ctx; both with math.random seeded by
 * ctx->seed, under a budget of their own, and with the clock at ctx->time_ms. Replies and
 * errors as fsm_apply.
 *
 * Errors: FSM_EINVAL; FSM_ENOTSUP (a read, and the script has no query); FSM_ENOMEM.
 */
int fsm_apply_command(struct fsm *f,
                      const struct fsm_ctx *ctx,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen,
                      struct fsm_reply *out);

/*
 * Applies a TICK entry: moves the clock to ctx->time_ms (and the applied index, as every
 * entry) and, if the script defines M.tick, runs M.tick(ctx) like an apply (seeded, under
 * the limits). Its reply is dropped, and so is its error (fsm_last_error has it), which
 * is the same on every replica. Returns 0, or FSM_ESCRIPT when M.tick failed.
 */
int fsm_tick(struct fsm *f, const struct fsm_ctx *ctx);

/* M.tick_ms, the idle milliseconds after which the leader logs a TICK entry; 0 when the
 * script does not declare it. Read at load time, like the command table: any thread. */
int64_t fsm_tick_ms(const struct fsm *f);

/*
 * For INFO's keyspace: runs M.keyspace(ctx) (ctx as a query's, under the limits) and
 * appends its {keys = n, expires = m} as the RESP array [n, m] of two integers, or a RESP
 * null ($-1) when the script has no M.keyspace, it raised an error, or returned anything
 * else (n and m must be integers >= 0). Errors: FSM_ENOMEM.
 */
int fsm_keyspace(struct fsm *f, struct fsm_reply *out);

/*
 * Where the state is: the index, term and time of the last entry applied (seed 0), which
 * every fsm_apply (and fsm_job_apply_entry, for every entry) moves. fsm_set_applied sets
 * it (seed ignored): after a restore, to the snapshot's index and term. A snapshot does
 * not carry the time of its last entry, so after a restore the clock stays where it was
 * (0 in a fresh fsm) until the next entry is applied.
 */
/*
 * The collector paused while a forked snapshot child shares the heap copy-on-write: a
 * marking step writes to every object it reaches, and one step traverses a table whole,
 * so on a state of a million keys a step would copy most of the heap's pages in one go
 * (about 0.4 s for 400 MiB here) while writes wait. Nothing a script sees depends on when
 * garbage is collected (no __gc, no weak tables, no collectgarbage; the memory cap still
 * runs an emergency full collection before it refuses). fsm_gc_pause records the heap's
 * size; fsm_gc_grown says when it has grown so much that collecting is cheaper than
 * waiting for the child; fsm_gc_resume starts the collector again.
 */
void fsm_gc_pause(struct fsm *f);
/* The same in the snapshot child, which runs one long call: past the bound, the next
 * growing allocation fails once, so that Lua runs its emergency full collection and
 * retries it (lmem.c); the bound then starts again from the heap's size. */
void fsm_gc_pause_child(struct fsm *f);
bool fsm_gc_grown(struct fsm *f);
void fsm_gc_resume(struct fsm *f);
/* Bytes the Lua state holds now, garbage not yet collected included. */
uint64_t fsm_lua_bytes(struct fsm *f);

struct fsm_ctx fsm_applied(const struct fsm *f);
void fsm_set_applied(struct fsm *f, const struct fsm_ctx *ctx);

/*
 * Snapshot streaming callbacks. A write callback takes the next len bytes. A read
 * callback sets *data and *len to the next chunk (valid until the next call), *len = 0
 * at the end. Both return 0, or a negative value to abort (fsm_snapshot/fsm_restore then
 * return FSM_ESTREAM).
 */
typedef int (*fsm_write_fn)(void *arg, const void *data, size_t len);
typedef int (*fsm_read_fn)(void *arg, const void **data, size_t *len);

/*
 * Runs M.snapshot(w); each w:write(s, ...) hands its strings to write_fn. Neither the
 * instruction budget nor the memory cap applies: a snapshot's work grows with the state,
 * and the host must be able to take one however full the heap is.
 *
 * Errors: FSM_ENOTSUP (no M.snapshot: fsm_open refuses such a script, so only if the script
 * removed it from its module later); FSM_ESTREAM (write_fn failed); FSM_ESCRIPT (the
 * script raised an error; see fsm_last_error).
 */
int fsm_snapshot(struct fsm *f, fsm_write_fn write_fn, void *arg);

/* The BLAKE2b-256 hash of the bytes M.snapshot writes: the state, canonically (pairs and
 * next visit keys in a fixed order), so equal states hash equal on every replica. For
 * RAFT.CHECK. Errors: as fsm_snapshot. */
enum { FSM_STATE_HASH_BYTES = 32 };
int fsm_state_hash(struct fsm *f, unsigned char out[FSM_STATE_HASH_BYTES]);

/* How many tables the last fsm_snapshot (or fsm_state_hash) encoded with luaraft.encode
 * whose positive integer keys are not a sequence 1..n, and in *path the key path of the
 * first (as "h", "users.7.tags": keys from the encoded value down, "" for the value
 * itself). `#` on such a table may answer differently on a replica that restores the
 * snapshot (the "Length" rule above); fsm_snapshot logs a warning naming it, at most one
 * a minute. */
size_t fsm_snapshot_holes(const struct fsm *f, const char **path);

/*
 * TEST ONLY, for the specs of RAFT.CHECK: from now on this replica applies no command
 * whose first argument is key (it answers +OK and changes nothing), so its state drifts
 * from the others'. NULL or "" turns it off. The node sets it from the environment
 * variable LUARAFT_TEST_DIVERGE_KEY; nothing else does.
 */
void fsm_test_diverge(struct fsm *f, const char *key);

/*
 * Runs M.restore(r); each r:read() returns read_fn's next chunk, or nil at the end. The
 * script replaces its state with the snapshot's. No limits apply, as for fsm_snapshot.
 *
 * Errors: as fsm_snapshot. After a failed restore the state is whatever the script left:
 * close the fsm and open a new one.
 */
int fsm_restore(struct fsm *f, fsm_read_fn read_fn, void *arg);

/*
 * The message of the last failed Lua call (script error with its traceback, or the
 * budget or memory message); "" when there was none. Valid until the next call on f.
 */
const char *fsm_last_error(struct fsm *f);

#endif
