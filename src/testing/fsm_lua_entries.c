/*
 * Part of luaraft.fsm (fsm_lua.c, which includes this file after its helpers: the build,
 * cmake/testing.cmake, compiles fsm_lua.c alone): entry payloads (command.h) built and
 * decoded from Lua, and entries applied as the node applies them (fsm/job.h). The API is
 * in fsm_lua.c's header.
 */

/* Appends the argv blob of cmd (a table of strings at idx) to b. [-0, +0, e] */
static void put_argv(lua_State *L, int idx, struct buf *b)
{
    const char **argv;
    size_t *argvlen;
    int argc = push_command(L, idx, &argv, &argvlen); /* ud */
    if (command_put_argv(b, argc, argv, argvlen) != 0) {
        luaL_error(L, "luaraft.fsm: out of memory");
    }
    lua_pop(L, 1); /* */
}

/* Appends a TRANSACTION payload of the commands in the list at idx. [-0, +0, e] */
static int put_transaction(lua_State *L, int idx, struct buf *b)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Unsigned n = lua_rawlen(L, idx);
    luaL_argcheck(L, n <= 100000, idx, "too many commands");
    size_t *lens = lua_newuserdatauv(L, (n + 1) * (sizeof(size_t) + sizeof(void *)), 0); /* ud */
    const void **blobs = (const void **)(lens + n + 1);
    struct buf all;
    buf_init(&all);
    for (lua_Unsigned i = 0; i < n; i++) {
        size_t start = all.len;
        lua_rawgeti(L, idx, (lua_Integer)i + 1); /* ud cmd */
        put_argv(L, lua_gettop(L), &all);
        lua_pop(L, 1); /* ud */
        lens[i] = all.len - start;
    }
    for (lua_Unsigned i = 0, at = 0; i < n; at += lens[i], i++) {
        blobs[i] = all.data + at;
    }
    int rv = command_put_transaction(b, (unsigned)n, blobs, lens);
    buf_free(&all);
    lua_pop(L, 1); /* */
    return rv;
}

/* fsm.payload(kind, ... [, time_ms]) -> bytes | nil: "command", cmd; "tick"; "transaction",
 * {cmd, ...}; "body", n, bytes (command_put_transaction_body; nil if malformed); "argv",
 * cmd (the argv blob alone, no time); "check"; "load", name, text (nil if malformed). */
static int fsm_lua_payload(lua_State *L)
{
    static const char *const kinds[] = {"command", "tick",  "transaction", "body",
                                        "argv",    "check", "load",        NULL};
    int kind = luaL_checkoption(L, 1, NULL, kinds);
    struct buf b, blob;
    buf_init(&b);
    buf_init(&blob);
    int rv = 0;
    int time_arg = kind == 1 || kind == 5 ? 2 : kind == 3 || kind == 6 ? 4 : 3;
    if (kind == 0 || kind == 4) {
        put_argv(L, 2, &blob);
        rv = kind == 0 ? command_put(&b, blob.data, blob.len) : buf_append(&b, blob.data, blob.len);
    } else if (kind == 1) {
        rv = command_put_tick(&b);
    } else if (kind == 5) {
        rv = command_put_check(&b);
    } else if (kind == 6) {
        size_t name_len, text_len;
        const char *name = luaL_checklstring(L, 2, &name_len);
        const char *text = luaL_checklstring(L, 3, &text_len);
        rv = command_put_load(&b, name, name_len, text, text_len);
    } else if (kind == 2) {
        rv = put_transaction(L, 2, &b);
    } else {
        size_t len;
        lua_Integer n = luaL_checkinteger(L, 2);
        const char *body = luaL_checklstring(L, 3, &len);
        luaL_argcheck(L, n >= 0 && n <= UINT32_MAX, 2, "count out of range");
        rv = command_put_transaction_body(&b, (unsigned)n, body, len);
    }
    buf_free(&blob);
    if (rv == 0 && kind != 4) {
        command_stamp(b.data, (int64_t)luaL_optinteger(L, time_arg, 0));
    }
    if (rv == 0) {
        lua_pushlstring(L, (const char *)b.data, b.len); /* bytes */
    } else {
        lua_pushnil(L); /* nil */
    }
    buf_free(&b);
    return 1;
}

/* Pushes the command of an argv blob as a table, or false if it is not one. */
static void push_argv(lua_State *L, const void *blob, size_t len)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get_argv(blob, len, &argc, &argv, &argvlen)) {
        lua_pushboolean(L, 0); /* false */
        return;
    }
    lua_createtable(L, argc, 0); /* cmd */
    for (int i = 0; i < argc; i++) {
        lua_pushlstring(L, argv[i], argvlen[i]); /* cmd arg */
        lua_rawseti(L, -2, i + 1);               /* cmd */
    }
    free(argv);
    free(argvlen);
}

/* fsm.payload_decode(bytes) -> {kind = "command" | "tick" | "transaction" | "check" | "load",
 * time_ms =, cmd = {...} | false (COMMAND), cmds = {{...}, ...} (TRANSACTION)} | nil
 * (command_get_kind refuses it). */
static int fsm_lua_payload_decode(lua_State *L)
{
    static const char *const names[] = {"command", "tick", "transaction", "check", "load"};
    _Static_assert(sizeof names / sizeof names[0] == COMMAND_KIND_LOAD + 1, "a name per kind");
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int64_t time_ms;
    enum command_kind kind;
    const void *body;
    size_t body_len;
    if (!command_get_kind(s, len, &time_ms, &kind, &body, &body_len)) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 3);       /* t */
    lua_pushstring(L, names[kind]); /* t kind */
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, (lua_Integer)time_ms); /* t time */
    lua_setfield(L, -2, "time_ms");
    if (kind == COMMAND_KIND_COMMAND) {
        push_argv(L, body, body_len); /* t cmd */
        lua_setfield(L, -2, "cmd");
    } else if (kind == COMMAND_KIND_TRANSACTION) {
        struct command_tx_iter it;
        command_tx_begin(&it, body, body_len);
        lua_createtable(L, (int)it.n, 0); /* t cmds */
        const void *blob;
        for (lua_Integer i = 1; command_tx_next(&it, &blob, &len); i++) {
            push_argv(L, blob, len); /* t cmds cmd */
            lua_rawseti(L, -2, i);
        }
        lua_setfield(L, -2, "cmds"); /* t */
    }
    return 1;
}

/* m:apply_entry(payload, {index=, term=} [, type]) -> RESP bytes: the entry applied as
 * the node applies it (fsm_job_apply_entry: its seed from index and term, its time from
 * the payload); type is a raft_entry_type number, default NORMAL. A LOAD entry that
 * switched scripts leaves m running the successor (fsm_job_adopt). */
static int machine_apply_entry(lua_State *L)
{
    struct machine *m = check_machine(L);
    size_t len;
    const char *payload = luaL_checklstring(L, 2, &len);
    struct fsm_ctx ctx = check_ctx(L, 3);
    struct fsm_job_entry e = {
        .index = ctx.index,
        .term = ctx.term,
        .type = (uint32_t)luaL_optinteger(L, 4, RAFT_ENTRY_NORMAL),
        .want_reply = true,
        .len = (uint32_t)len,
        .payload = (void *)payload, /* read only */
    };
    fsm_job_apply_entry(m->f, &e);
    m->f = fsm_job_adopt(m->f, &e);
    fsm_close(e.retired); /* no other thread reads its command table */
    lua_pushlstring(L, e.reply.data != NULL ? e.reply.data : "", e.reply.len); /* bytes */
    fsm_reply_free(&e.reply);
    return 1;
}

/* m:keyspace() -> RESP bytes: an FSM_QUERY_KEYSPACE query as the node runs one. */
static int machine_keyspace(lua_State *L)
{
    struct machine *m = check_machine(L);
    struct fsm_job_query q = {.kind = FSM_QUERY_KEYSPACE};
    fsm_job_run_query(m->f, &q);
    lua_pushlstring(L, q.reply.data != NULL ? q.reply.data : "", q.reply.len); /* bytes */
    fsm_reply_free(&q.reply);
    return 1;
}
