/*
 * luaraft.codec: the RESP and peer wire codecs as a Lua module, for busted specs (round
 * trips, every split point, limits, fuzzing).
 *
 *   local codec = require("luaraft.codec")
 *
 * RESP:  codec.resp_parser([limits]) -> parser; limits = {args_max=, bulk_bytes_max=,
 *          inline_bytes_max=, line_bytes_max=, query_bytes_max=} (defaults: Redis's)
 *        parser:feed(bytes) -> {{"SET", "k", "v"}, ...} (every command completed so far;
 *          possibly empty) | nil, message, commands_before_the_error. An error is sticky.
 *        parser:close() (also __gc and __close)
 *        codec.resp_encode(value) -> bytes: string -> bulk, integer -> integer, true -> 1,
 *          nil/false -> null bulk, {ok = s} -> status, {err = s} -> error, any other table
 *          -> array of t[1..#t] (nested up to reply_depth_max)
 *        codec.resp_limits() -> the default limits table
 * Wire:  codec.wire_encode(msg) -> frame bytes. msg = {type = "APPEND", from =, to =, term =,
 *          prev_index =, prev_term =, commit =, entries = {{term =, type = "NORMAL", data =},
 *          ...}}, or the fields of another struct raft_message member by type name
 *          ("APPEND_RESP", "VOTE", ... as in raft.h), or {type = "HANDSHAKE", node_id =,
 *          cluster_id =}. Missing integers are 0, missing booleans false. u64 fields map
 *          bit for bit to Lua integers. One name differs from raft.h: SNAPSHOT's term is
 *          snapshot_term, since term is the message's own term.
 *        codec.wire_decode(bytes [, limits]) -> msg, frame_bytes | nil, message; the message
 *          is "incomplete" when bytes hold too little of the frame. limits =
 *          {frame_bytes_max=, handshake_bytes_max=, entries_max=}
 *        codec.wire_header_bytes, codec.wire_magic, codec.wire_version
 *        codec.resp3_edit(bytes, proto) -> bytes | nil (not one well-formed reply);
 *          codec.resp3_needs_edit(bytes, proto) -> boolean (client/resp3.h; proto 2 or 3)
 * Misc:  codec.crc32c(bytes [, crc]) -> integer
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "testing/msg_lua.h"
#include "peer/wire.h"
#include "client/resp.h"
#include "client/resp3.h"
#include "util/crc32c.h"

#define PARSER_MT "luaraft.codec.resp_parser"
#define BUF_MT "luaraft.codec.buf"

enum {
    reply_depth_max = 128, /* nesting of resp_encode arrays */
};

/* A struct buf owned by a userdata, so that a Lua error cannot leak it. */
static struct buf *buf_new(lua_State *L)
{
    struct buf *b = lua_newuserdatauv(L, sizeof(*b), 0); /* ud */
    buf_init(b);
    luaL_setmetatable(L, BUF_MT); /* ud */
    return b;
}

static int buf_gc(lua_State *L)
{
    buf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

/* Reads an optional non-negative integer field of the table at idx. */
static lua_Integer opt_field(lua_State *L,
                             int idx,
                             const char *name,
                             lua_Integer dflt,
                             lua_Integer max)
{
    lua_Integer v = dflt;
    if (lua_getfield(L, idx, name) != LUA_TNIL) { /* value */
        int ok = 0;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v > max) {
            luaL_error(L, "luaraft.codec: %s must be an integer in [0, %I]", name, max);
        }
    }
    lua_pop(L, 1); /* */
    return v;
}

/* ---- RESP parser ---- */

struct parser_ud
{
    struct resp_parser p;
    int open;
};

static int codec_resp_parser(lua_State *L)
{
    struct resp_limits l;
    resp_limits_default(&l);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        l.args_max = (size_t)opt_field(L, 1, "args_max", (lua_Integer)l.args_max, LUA_MAXINTEGER);
        l.bulk_bytes_max = (size_t)opt_field(L, 1, "bulk_bytes_max", (lua_Integer)l.bulk_bytes_max,
                                             LUA_MAXINTEGER);
        l.inline_bytes_max = (size_t)opt_field(L, 1, "inline_bytes_max",
                                               (lua_Integer)l.inline_bytes_max, LUA_MAXINTEGER);
        l.line_bytes_max = (size_t)opt_field(L, 1, "line_bytes_max", (lua_Integer)l.line_bytes_max,
                                             LUA_MAXINTEGER);
        l.query_bytes_max = (size_t)opt_field(L, 1, "query_bytes_max",
                                              (lua_Integer)l.query_bytes_max, LUA_MAXINTEGER);
    }
    struct parser_ud *u = lua_newuserdatauv(L, sizeof(*u), 0); /* ud */
    resp_parser_init(&u->p, &l);
    u->open = 1;
    luaL_setmetatable(L, PARSER_MT); /* ud */
    return 1;
}

static struct parser_ud *check_parser(lua_State *L)
{
    struct parser_ud *u = luaL_checkudata(L, 1, PARSER_MT);
    if (!u->open) {
        luaL_error(L, "luaraft.codec: parser is closed");
    }
    return u;
}

static void push_command(lua_State *L, const struct resp_command *cmd)
{
    lua_createtable(L, (int)cmd->argc, 0); /* cmd */
    for (size_t i = 0; i < cmd->argc; i++) {
        lua_pushlstring(L, cmd->argv[i], cmd->argvlen[i]); /* cmd, arg */
        lua_rawseti(L, -2, (lua_Integer)i + 1);            /* cmd */
    }
}

static int parser_feed(lua_State *L)
{
    struct parser_ud *u = check_parser(L);
    size_t n = 0;
    const char *data = luaL_checklstring(L, 2, &n);
    lua_newtable(L); /* cmds */
    int rv = resp_parser_feed(&u->p, data, n);
    lua_Integer count = 0;
    while (rv == 0) {
        struct resp_command cmd;
        rv = resp_parser_next(&u->p, &cmd);
        if (rv != 1) {
            break;
        }
        push_command(L, &cmd);       /* cmds, cmd */
        lua_rawseti(L, -2, ++count); /* cmds */
        rv = 0;
    }
    if (rv < 0) {
        lua_pushnil(L);                              /* cmds, nil */
        lua_pushstring(L, resp_parser_error(&u->p)); /* cmds, nil, msg */
        lua_rotate(L, -3, -1);                       /* nil, msg, cmds */
        return 3;
    }
    return 1;
}

static int parser_close(lua_State *L)
{
    struct parser_ud *u = luaL_checkudata(L, 1, PARSER_MT);
    if (u->open) {
        resp_parser_close(&u->p);
        u->open = 0;
    }
    return 0;
}

static int codec_resp_limits(lua_State *L)
{
    struct resp_limits l;
    resp_limits_default(&l);
    lua_createtable(L, 0, 5);                    /* t */
    lua_pushinteger(L, (lua_Integer)l.args_max); /* t, v */
    lua_setfield(L, -2, "args_max");             /* t */
    lua_pushinteger(L, (lua_Integer)l.bulk_bytes_max);
    lua_setfield(L, -2, "bulk_bytes_max");
    lua_pushinteger(L, (lua_Integer)l.inline_bytes_max);
    lua_setfield(L, -2, "inline_bytes_max");
    lua_pushinteger(L, (lua_Integer)l.line_bytes_max);
    lua_setfield(L, -2, "line_bytes_max");
    lua_pushinteger(L, (lua_Integer)l.query_bytes_max);
    lua_setfield(L, -2, "query_bytes_max");
    return 1;
}

/* ---- RESP encoder ---- */

static void check_put(lua_State *L, int rv)
{
    if (rv != 0) {
        luaL_error(L, "luaraft.codec: out of memory");
    }
}

/* Encodes the value at idx (absolute) into b. */
static void encode_reply(lua_State *L, struct buf *b, int idx, int depth)
{
    luaL_checkstack(L, 4, "reply too deep");
    switch (lua_type(L, idx)) {
        case LUA_TNIL:
        case LUA_TNONE:
            check_put(L, resp_put_null(b));
            return;
        case LUA_TBOOLEAN:
            check_put(L, lua_toboolean(L, idx) ? resp_put_integer(b, 1) : resp_put_null(b));
            return;
        case LUA_TNUMBER: {
            int ok = 0;
            lua_Integer v = lua_tointegerx(L, idx, &ok);
            if (!ok) {
                luaL_error(L, "luaraft.codec: reply number has no integer representation");
            }
            check_put(L, resp_put_integer(b, v));
            return;
        }
        case LUA_TSTRING: {
            size_t n = 0;
            const char *s = lua_tolstring(L, idx, &n);
            check_put(L, resp_put_bulk(b, s, n));
            return;
        }
        case LUA_TTABLE:
            break;
        default:
            luaL_error(L, "luaraft.codec: cannot encode a %s as a reply", luaL_typename(L, idx));
    }
    if (depth >= reply_depth_max) {
        luaL_error(L, "luaraft.codec: reply nested deeper than %d", reply_depth_max);
    }
    size_t n = 0;
    if (lua_getfield(L, idx, "ok") == LUA_TSTRING) { /* ok */
        const char *s = lua_tolstring(L, -1, &n);
        check_put(L, resp_put_status(b, s, n));
        lua_pop(L, 1); /* */
        return;
    }
    lua_pop(L, 1);                                    /* */
    if (lua_getfield(L, idx, "err") == LUA_TSTRING) { /* err */
        const char *s = lua_tolstring(L, -1, &n);
        check_put(L, resp_put_error(b, s, n));
        lua_pop(L, 1); /* */
        return;
    }
    lua_pop(L, 1); /* */
    lua_Integer len = luaL_len(L, idx);
    check_put(L, resp_put_array(b, (size_t)len));
    for (lua_Integer i = 1; i <= len; i++) {
        lua_geti(L, idx, i); /* elem */
        encode_reply(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1); /* */
    }
}

static int codec_resp_encode(lua_State *L)
{
    lua_settop(L, 1);           /* v */
    struct buf *b = buf_new(L); /* v, ud */
    encode_reply(L, b, 1, 0);
    lua_pushlstring(L, (const char *)b->data, b->len); /* v, ud, bytes */
    buf_free(b);
    return 1;
}

/* ---- Wire ---- */

static int encode_handshake(lua_State *L)
{
    struct wire_handshake hs;
    hs.node_id = msg_lua_get_u64(L, 1, "node_id", 0);
    lua_getfield(L, 1, "cluster_id"); /* msg, id */
    size_t n = 0;
    hs.cluster_id = luaL_checklstring(L, -1, &n);
    luaL_argcheck(L, n >= 1 && n <= WIRE_CLUSTER_ID_BYTES_MAX, 1, "cluster_id length");
    hs.cluster_id_len = (uint16_t)n;
    struct buf *b = buf_new(L); /* msg, id, ud */
    if (wire_encode_handshake(b, &hs) != 0) {
        luaL_error(L, "luaraft.codec: out of memory");
    }
    lua_pushlstring(L, (const char *)b->data, b->len); /* msg, id, ud, bytes */
    buf_free(b);
    return 1;
}

static int codec_wire_encode(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);           /* msg */
    lua_getfield(L, 1, "type"); /* msg, type */
    const char *type = luaL_checkstring(L, -1);
    if (strcmp(type, "HANDSHAKE") == 0) {
        return encode_handshake(L);
    }
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = (uint8_t)msg_lua_name_index(msg_lua_type_names, RAFT_MSG_TYPE_MAX + 1, type);
    if (m.type == 0) {
        return luaL_error(L, "luaraft.codec: unknown message type %s", type);
    }
    msg_lua_get_fields(L, 1, &m);
    size_t n = wire_message_bytes(&m);
    luaL_Buffer lb;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &lb, n);
    if (wire_encode_message_into(&m, out) != 0) {
        return luaL_error(L, "luaraft.codec: message too big for one frame");
    }
    luaL_pushresultsize(&lb, n); /* ..., bytes */
    return 1;
}

/* Pushes the decoded message as a table. */
static void push_message(lua_State *L, const struct raft_message *m)
{
    lua_createtable(L, 0, 8); /* t */
    msg_lua_set_fields(L, m);
}

/* Holds a decoded frame, so that its entry array is freed even if building the table
 * raises a memory error. */
static int frame_gc(lua_State *L)
{
    wire_frame_free(luaL_checkudata(L, 1, "luaraft.codec.frame"));
    return 0;
}

static int codec_wire_decode(lua_State *L)
{
    size_t n = 0;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    struct wire_limits l;
    wire_limits_default(&l);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        l.frame_bytes_max =
            (uint32_t)opt_field(L, 2, "frame_bytes_max", l.frame_bytes_max, UINT32_MAX);
        l.handshake_bytes_max =
            (uint32_t)opt_field(L, 2, "handshake_bytes_max", l.handshake_bytes_max, UINT32_MAX);
        l.entries_max = (uint32_t)opt_field(L, 2, "entries_max", l.entries_max, UINT32_MAX);
    }
    struct wire_frame *f = lua_newuserdatauv(L, sizeof(*f), 0); /* ..., ud */
    memset(f, 0, sizeof(*f));
    luaL_setmetatable(L, "luaraft.codec.frame");
    int64_t rv = wire_decode(p, n, &l, f);
    if (rv <= 0) {
        lua_pushnil(L);                                                     /* ..., ud, nil */
        lua_pushstring(L, rv == 0 ? "incomplete" : wire_strerror((int)rv)); /* ..., nil, msg */
        return 2;
    }
    if (f->type == WIRE_HANDSHAKE) {
        lua_createtable(L, 0, 3);                              /* ..., ud, t */
        lua_pushstring(L, "HANDSHAKE");                        /* ..., ud, t, type */
        lua_setfield(L, -2, "type");                           /* ..., ud, t */
        lua_pushinteger(L, (lua_Integer)f->handshake.node_id); /* ..., ud, t, id */
        lua_setfield(L, -2, "node_id");                        /* ..., ud, t */
        lua_pushlstring(L, f->handshake.cluster_id, f->handshake.cluster_id_len);
        lua_setfield(L, -2, "cluster_id"); /* ..., ud, t */
    } else {
        push_message(L, &f->msg); /* ..., ud, t */
    }
    wire_frame_free(f);
    lua_pushinteger(L, rv); /* ..., ud, t, frame_bytes */
    return 2;
}

static int codec_crc32c(lua_State *L)
{
    size_t n = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    uint32_t crc = (uint32_t)luaL_optinteger(L, 2, 0);
    lua_pushinteger(L, (lua_Integer)crc32c(crc, s, n)); /* crc */
    return 1;
}

static int resp3_proto_arg(lua_State *L, int arg)
{
    lua_Integer proto = luaL_checkinteger(L, arg);
    luaL_argcheck(L, proto == 2 || proto == 3, arg, "the protocol is 2 or 3");
    return (int)proto;
}

static int codec_resp3_edit(lua_State *L)
{
    size_t n = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    int proto = resp3_proto_arg(L, 2);
    struct buf b;
    buf_init(&b);
    int rv = resp3_edit(s, n, proto, &b);
    if (rv == 0) {
        lua_pushlstring(L, (const char *)b.data, b.len);
    } else {
        lua_pushnil(L);
    }
    buf_free(&b);
    return 1;
}

static int codec_resp3_needs_edit(lua_State *L)
{
    size_t n = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, resp3_needs_edit(s, n, resp3_proto_arg(L, 2)));
    return 1;
}

static const luaL_Reg parser_methods[] = {
    {"feed", parser_feed},
    {"close", parser_close},
    {NULL, NULL},
};

static const luaL_Reg parser_meta[] = {
    {"__gc", parser_close},
    {"__close", parser_close},
    {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"resp_parser", codec_resp_parser},
    {"resp_encode", codec_resp_encode},
    {"resp_limits", codec_resp_limits},
    {"wire_encode", codec_wire_encode},
    {"wire_decode", codec_wire_decode},
    {"crc32c", codec_crc32c},
    {"resp3_edit", codec_resp3_edit},
    {"resp3_needs_edit", codec_resp3_needs_edit},
    {NULL, NULL},
};

int luaopen_luaraft_codec(lua_State *L);

int luaopen_luaraft_codec(lua_State *L)
{
    luaL_newmetatable(L, PARSER_MT);             /* mt */
    luaL_setfuncs(L, parser_meta, 0);            /* mt */
    luaL_newlibtable(L, parser_methods);         /* mt, methods */
    luaL_setfuncs(L, parser_methods, 0);         /* mt, methods */
    lua_setfield(L, -2, "__index");              /* mt */
    lua_pop(L, 1);                               /* */
    luaL_newmetatable(L, BUF_MT);                /* mt */
    lua_pushcfunction(L, buf_gc);                /* mt, gc */
    lua_setfield(L, -2, "__gc");                 /* mt */
    lua_pop(L, 1);                               /* */
    luaL_newmetatable(L, "luaraft.codec.frame"); /* mt */
    lua_pushcfunction(L, frame_gc);              /* mt, gc */
    lua_setfield(L, -2, "__gc");                 /* mt */
    lua_pop(L, 1);                               /* */
    luaL_newlib(L, module_funcs);                /* module */
    lua_pushinteger(L, WIRE_HEADER_BYTES);       /* module, v */
    lua_setfield(L, -2, "wire_header_bytes");    /* module */
    lua_pushinteger(L, WIRE_MAGIC);
    lua_setfield(L, -2, "wire_magic");
    lua_pushinteger(L, WIRE_VERSION);
    lua_setfield(L, -2, "wire_version");
    return 1;
}
