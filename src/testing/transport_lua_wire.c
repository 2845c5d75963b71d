/*
 * luaraft.transport's wire functions, for spec/codec and spec/transport:
 * transport.wire_encode{type = "HANDSHAKE" | "CHALLENGE" | "ACCEPTED" | "REFUSED" | "CHUNK"
 * | "HAVE" | "NODE", ...} -> frame bytes, and transport.wire_decode(bytes [, limits]) ->
 * table, frame_bytes | nil, message. They cover the frames of src/peer/wire.h that
 * luaraft.codec does not know (HANDSHAKE: node_id, cluster_id, client_addr, bulk, answer
 * (32 bytes, zeros if absent), proof (32 bytes, or absent); CHALLENGE: node_id, required,
 * nonce; REFUSED: reason; CHUNK: index, snapshot_term, offset, last, data; HAVE: index,
 * snapshot_term; NODE: frame_type, body); wire_decode takes raft messages too.
 * transport.peer_proof{secret =, node_id =, cluster_id =, client_addr =, bulk =, answer =,
 * acceptor_id =} -> the 32-byte proof (src/peer/peer_auth.c) a handshake carries.
 * Apart from transport_lua.c, which drives live transports, as these need none.
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "peer/peer_auth.h"
#include "peer/wire.h"
#include "testing/msg_lua.h"
#include "util/buf.h"

/* Called by luaopen_luaraft_transport (transport_lua.c). */
void transport_lua_open_wire(lua_State *L);

static void set_int(lua_State *L, const char *name, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v); /* t, v */
    lua_setfield(L, -2, name);          /* t */
}

static void set_bool(lua_State *L, const char *name, bool v)
{
    lua_pushboolean(L, v);     /* t, v */
    lua_setfield(L, -2, name); /* t */
}

static void set_str(lua_State *L, const char *name, const char *v)
{
    lua_pushstring(L, v);      /* t, v */
    lua_setfield(L, -2, name); /* t */
}

static const char *opt_string(lua_State *L, int idx, const char *name, const char *dflt)
{
    lua_getfield(L, idx, name); /* v; stays: the string must outlive its encoding */
    return lua_isnil(L, -1) ? dflt : luaL_checkstring(L, -1);
}

/* The field name of the table at idx: a string of n bytes into out; zeros when absent and
 * not required. Returns whether it was there. */
static bool get_fixed(lua_State *L, int idx, const char *name, uint8_t *out, size_t n, bool need)
{
    lua_getfield(L, idx, name); /* v */
    bool there = !lua_isnil(L, -1);
    memset(out, 0, n);
    if (there || need) {
        size_t len = 0;
        const char *s = luaL_checklstring(L, -1, &len);
        luaL_argcheck(L, len == n, idx, name);
        memcpy(out, s, n);
    }
    lua_pop(L, 1); /* */
    return there;
}

/* A handshake from the table at idx; its strings stay on the stack. */
static void get_handshake(lua_State *L, int idx, struct wire_handshake *hs)
{
    memset(hs, 0, sizeof *hs);
    hs->node_id = msg_lua_get_u64(L, idx, "node_id", 0);
    size_t n = 0, a = 0;
    lua_getfield(L, idx, "cluster_id"); /* ..., id: stays, as the handshake points into it */
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, idx, "cluster_id");
    hs->cluster_id = lua_tolstring(L, -1, &n);
    hs->client_addr = opt_string(L, idx, "client_addr", ""); /* ..., id, addr */
    a = strlen(hs->client_addr);
    luaL_argcheck(L, n >= 1 && n <= WIRE_CLUSTER_ID_BYTES_MAX, idx, "cluster_id length");
    luaL_argcheck(L, a <= WIRE_CLIENT_ADDR_BYTES_MAX, idx, "client_addr length");
    hs->cluster_id_len = (uint16_t)n;
    hs->client_addr_len = (uint16_t)a;
    hs->bulk = msg_lua_get_bool(L, idx, "bulk");
    get_fixed(L, idx, "answer", hs->answer, sizeof hs->answer, false);
    hs->has_proof = get_fixed(L, idx, "proof", hs->proof, sizeof hs->proof, false);
}

/* transport.peer_proof{secret =, acceptor_id =, <handshake fields>} -> 32 bytes. */
static int lt_peer_proof(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct wire_handshake hs;
    get_handshake(L, 1, &hs);
    lua_getfield(L, 1, "secret"); /* ..., secret */
    size_t len = 0;
    const char *secret = luaL_checklstring(L, -1, &len);
    uint8_t key[PEER_KEY_BYTES], proof[WIRE_PROOF_BYTES];
    peer_auth_key(secret, len, key);
    peer_auth_proof(key, &hs, msg_lua_get_u64(L, 1, "acceptor_id", 0), proof);
    lua_pushlstring(L, (const char *)proof, sizeof proof); /* ..., proof */
    return 1;
}

static int lt_wire_encode(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);           /* f */
    lua_getfield(L, 1, "type"); /* f, type */
    const char *type = luaL_checkstring(L, -1);
    struct buf b;
    buf_init(&b);
    int rv = 0;
    if (strcmp(type, "HANDSHAKE") == 0) {
        struct wire_handshake hs;
        get_handshake(L, 1, &hs);
        rv = wire_encode_handshake_addr(&b, &hs);
    } else if (strcmp(type, "CHALLENGE") == 0) {
        struct wire_challenge c = {.node_id = msg_lua_get_u64(L, 1, "node_id", 0),
                                   .required = msg_lua_get_bool(L, 1, "required")};
        get_fixed(L, 1, "nonce", c.nonce, sizeof c.nonce, false);
        rv = wire_encode_challenge(&b, &c);
    } else if (strcmp(type, "ACCEPTED") == 0) {
        rv = wire_encode_accepted(&b);
    } else if (strcmp(type, "REFUSED") == 0) {
        rv = wire_encode_refused(&b, opt_string(L, 1, "reason", ""));
    } else if (strcmp(type, "CHUNK") == 0) {
        struct wire_chunk c = {
            .index = msg_lua_get_u64(L, 1, "index", 0),
            .term = msg_lua_get_u64(L, 1, "snapshot_term", 0),
            .offset = msg_lua_get_u64(L, 1, "offset", 0),
            .last = msg_lua_get_bool(L, 1, "last"),
        };
        lua_getfield(L, 1, "data"); /* f, type, data */
        size_t n = 0;
        c.data = (const uint8_t *)luaL_checklstring(L, -1, &n);
        luaL_argcheck(L, n <= UINT32_MAX - WIRE_CHUNK_HEADER_BYTES, 1, "data too long");
        c.len = (uint32_t)n;
        rv = wire_encode_chunk(&b, &c);
    } else if (strcmp(type, "HAVE") == 0) {
        struct wire_have h = {
            .index = msg_lua_get_u64(L, 1, "index", 0),
            .term = msg_lua_get_u64(L, 1, "snapshot_term", 0),
        };
        rv = wire_encode_have(&b, &h);
    } else if (strcmp(type, "NODE") == 0) {
        lua_Integer ft = (lua_Integer)msg_lua_get_u64(L, 1, "frame_type", 0);
        luaL_argcheck(L, ft >= WIRE_NODE_FRAME_MIN && ft <= 255, 1, "frame_type");
        lua_getfield(L, 1, "body"); /* f, type, body */
        size_t n = 0;
        const char *body = luaL_checklstring(L, -1, &n);
        rv = wire_encode_node_frame(&b, (uint8_t)ft, body, n);
    } else {
        return luaL_error(L,
                          "luaraft.transport: wire_encode knows HANDSHAKE, CHALLENGE, "
                          "ACCEPTED, REFUSED, CHUNK, HAVE, NODE");
    }
    if (rv != 0) {
        buf_free(&b);
        return luaL_error(L, "luaraft.transport: %s", wire_strerror(rv));
    }
    lua_pushlstring(L, (const char *)b.data, b.len); /* ..., bytes */
    buf_free(&b);
    return 1;
}

/* Decodes a frame of any type: -> table, frame_bytes | nil, "incomplete" or error. */
static int lt_wire_decode(lua_State *L)
{
    size_t n = 0;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    struct wire_limits l;
    wire_limits_default(&l);
    if (!lua_isnoneornil(L, 2)) {
        l.chunk_bytes_max = (uint32_t)msg_lua_get_u64(L, 2, "chunk_bytes_max", l.chunk_bytes_max);
        l.frame_bytes_max = (uint32_t)msg_lua_get_u64(L, 2, "frame_bytes_max", l.frame_bytes_max);
    }
    struct wire_frame f;
    int64_t rv = wire_decode(p, n, &l, &f);
    if (rv <= 0) {
        lua_pushnil(L);                                                     /* nil */
        lua_pushstring(L, rv == 0 ? "incomplete" : wire_strerror((int)rv)); /* nil, msg */
        return 2;
    }
    lua_createtable(L, 0, 8); /* t */
    if (f.type == WIRE_HANDSHAKE) {
        set_str(L, "type", "HANDSHAKE");
        set_int(L, "node_id", f.handshake.node_id);
        lua_pushlstring(L, f.handshake.cluster_id, f.handshake.cluster_id_len); /* t, id */
        lua_setfield(L, -2, "cluster_id");                                      /* t */
        lua_pushlstring(L, f.handshake.client_addr != NULL ? f.handshake.client_addr : "",
                        f.handshake.client_addr_len); /* t, addr */
        lua_setfield(L, -2, "client_addr");           /* t */
        set_bool(L, "bulk", f.handshake.bulk);
        lua_pushlstring(L, (const char *)f.handshake.answer, WIRE_NONCE_BYTES); /* t, answer */
        lua_setfield(L, -2, "answer");                                          /* t */
        if (f.handshake.has_proof) {
            lua_pushlstring(L, (const char *)f.handshake.proof, WIRE_PROOF_BYTES); /* t, p */
            lua_setfield(L, -2, "proof");                                          /* t */
        }
    } else if (f.type == WIRE_CHALLENGE) {
        set_str(L, "type", "CHALLENGE");
        set_int(L, "node_id", f.challenge.node_id);
        set_bool(L, "required", f.challenge.required);
        lua_pushlstring(L, (const char *)f.challenge.nonce, WIRE_NONCE_BYTES); /* t, nonce */
        lua_setfield(L, -2, "nonce");                                          /* t */
    } else if (f.type == WIRE_ACCEPTED) {
        set_str(L, "type", "ACCEPTED");
    } else if (f.type == WIRE_REFUSED) {
        set_str(L, "type", "REFUSED");
        lua_pushlstring(L, f.refused.reason != NULL ? f.refused.reason : "",
                        f.refused.len); /* t, reason */
        lua_setfield(L, -2, "reason");  /* t */
    } else if (f.type == WIRE_SNAPSHOT_HAVE) {
        set_str(L, "type", "HAVE");
        set_int(L, "index", f.have.index);
        set_int(L, "snapshot_term", f.have.term);
    } else if (f.type == WIRE_SNAPSHOT_CHUNK) {
        set_str(L, "type", "CHUNK");
        set_int(L, "index", f.chunk.index);
        set_int(L, "snapshot_term", f.chunk.term);
        set_int(L, "offset", f.chunk.offset);
        set_bool(L, "last", f.chunk.last);
        lua_pushlstring(L, f.chunk.data != NULL ? (const char *)f.chunk.data : "",
                        f.chunk.len); /* t, data */
        lua_setfield(L, -2, "data");  /* t */
    } else if (f.type >= WIRE_NODE_FRAME_MIN) {
        set_str(L, "type", "NODE");
        set_int(L, "frame_type", f.type);
        lua_pushlstring(L, f.node.body != NULL ? (const char *)f.node.body : "",
                        f.node.len); /* t, body */
        lua_setfield(L, -2, "body"); /* t */
    } else {
        msg_lua_set_fields(L, &f.msg); /* may raise on memory: the entry array would leak */
    }
    wire_frame_free(&f);
    lua_pushinteger(L, rv); /* t, frame_bytes */
    return 2;
}

/* Adds wire_encode and wire_decode to the module table on top of the stack. */
void transport_lua_open_wire(lua_State *L)
{
    lua_pushcfunction(L, lt_wire_encode); /* module, f */
    lua_setfield(L, -2, "wire_encode");   /* module */
    lua_pushcfunction(L, lt_wire_decode); /* module, f */
    lua_setfield(L, -2, "wire_decode");   /* module */
    lua_pushcfunction(L, lt_peer_proof);  /* module, f */
    lua_setfield(L, -2, "peer_proof");    /* module */
}
