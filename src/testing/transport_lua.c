/*
 * luaraft.transport: src/peer/transport.c as a Lua module, for busted specs.
 *
 * Every transport the module starts lives on one private uv loop, so that two or three of
 * them in one process can talk to each other over loopback; t:run() and t:run_until() drive
 * that loop, and so every transport's events, but each returns only its own.
 *
 *   transport.start{self =, listen_port =, listen_host = "127.0.0.1", cluster_id =, dir =,
 *                   client_addr =, peers = {{id =, host =, port =}, ...},
 *                   send_queue_bytes_max =, reconnect_ms_min =, reconnect_ms_max =,
 *                   secret = (the bytes of a peer secret file; none without it)}
 *       -> t | nil, message, code (transport.ELISTEN, ...)
 *   t:send{type = "APPEND", to =, term =, ..., entries = {{term =, type =, data =}}}
 *       -> true | nil, message          (from defaults to self; fields as luaraft.codec)
 *   t:send_snapshot(msg, path), t:send_frame(to, type, body),
 *   t:send_frame_buf(to, type, body) (through transport_send_frame_buf)
 *                                                              -> true | nil, message
 *   t:run(ms) -> events;  t:run_until(n, ms) -> events (stops once n messages are in)
 *       events: {event = "recv", <message fields>}, {event = "snapshot", path =,
 *       <message fields>}, {event = "frame", from =, frame_type =, body =},
 *       {event = "peer", id =, up =}; "messages" are recv, snapshot and frame events.
 *   t:connected(id), t:client_addr(id), t:close()
 *   t:stats() -> {control_frames =, bulk_frames =, snapshot_bytes_sent =, snapshots_held =,
 *                 appends_coalesced =}
 *   transport.raw_send(port, bytes) sends bytes on a plain connection, then closes it;
 *   transport.raw_open(port): a connection driven by hand (transport_lua_raw.c).
 *   transport.loop_handles() -> handles still open on the module's loop (after running
 *       pending close callbacks), besides its own run timer.
 *   transport.wire_encode{...}, transport.wire_decode(bytes [, limits]),
 *       transport.peer_proof{...}: frames and handshake proofs by hand, in
 *       transport_lua_wire.c.
 *
 * Callbacks push their events straight into Lua tables, so they need a lua_State: every
 * function that may run them (the run functions, send functions) sets current_L first.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "peer/peer_auth.h"
#include "peer/transport.h"
#include "peer/wire.h"
#include "testing/msg_lua.h"
#include "util/buf.h"

#define TRANSPORT_MT "luaraft.transport"

static uv_loop_t module_loop;
static bool module_loop_ready;
static uv_timer_t run_timer;
static bool run_timer_fired;
static lua_State *current_L;

struct lt
{
    struct transport *t; /* NULL once closed */
    raft_id self;
    int events_ref;   /* registry: this transport's events not yet returned */
    int n_events;     /* entries in that table */
    int n_messages;   /* recv, snapshot and frame events among them */
    bool *close_done; /* set by the closed callback */
};

uv_loop_t *transport_lua_loop(void);

static uv_loop_t *loop_get(void)
{
    if (!module_loop_ready) {
        int rv = uv_loop_init(&module_loop);
        if (rv != 0) {
            return NULL;
        }
        uv_timer_init(&module_loop, &run_timer);
        module_loop_ready = true;
    }
    return &module_loop;
}

/* For transport_lua_raw.c: its connections live on the same loop. */
uv_loop_t *transport_lua_loop(void)
{
    return loop_get();
}

static struct lt *check_lt(lua_State *L)
{
    return luaL_checkudata(L, 1, TRANSPORT_MT);
}

static struct lt *check_open(lua_State *L)
{
    struct lt *u = check_lt(L);
    luaL_argcheck(L, u->t != NULL, 1, "transport closed");
    return u;
}

/* ---- Lua tables <-> raft messages ---- */

/* Fills *m from the table at idx (from defaults to self); leaves one value on the stack. */
static void get_message(lua_State *L, int idx, raft_id self, struct raft_message *m)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(m, 0, sizeof(*m));
    lua_getfield(L, idx, "type"); /* type */
    m->type = (uint8_t)msg_lua_name_index(msg_lua_type_names, RAFT_MSG_TYPE_MAX + 1,
                                          luaL_checkstring(L, -1));
    luaL_argcheck(L, m->type != 0, idx, "unknown message type");
    lua_pop(L, 1); /* */
    m->from = self;
    msg_lua_get_fields(L, idx, m); /* value */
}

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

/* Adds the message's fields to the table on top of the stack. */
static void set_message(lua_State *L, const struct raft_message *m)
{
    msg_lua_set_fields(L, m);
}

/* ---- callbacks: each appends one event table to the transport's list ---- */

/* Pushes a new event table for u, to be filled and then stored by event_end(). */
static lua_State *event_begin(struct lt *u, const char *kind)
{
    lua_State *L = current_L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->events_ref); /* events */
    lua_createtable(L, 0, 8);                         /* events, e */
    set_str(L, "event", kind);
    return L;
}

static void event_end(lua_State *L, struct lt *u, bool message)
{
    lua_rawseti(L, -2, ++u->n_events); /* events */
    lua_pop(L, 1);                     /* */
    if (message) {
        u->n_messages++;
    }
}

static void on_recv(void *arg, struct raft_message *m)
{
    struct lt *u = arg;
    lua_State *L = event_begin(u, "recv");
    set_message(L, m);
    event_end(L, u, true);
}

static void on_snapshot(void *arg, struct raft_message *m, const char *path)
{
    struct lt *u = arg;
    lua_State *L = event_begin(u, "snapshot");
    set_message(L, m);
    set_str(L, "path", path);
    event_end(L, u, true);
}

static void on_frame(void *arg, raft_id from, uint8_t type, const void *body, size_t len)
{
    struct lt *u = arg;
    lua_State *L = event_begin(u, "frame");
    set_int(L, "from", from);
    set_int(L, "frame_type", type);
    lua_pushlstring(L, body != NULL ? body : "", len); /* events, e, body */
    lua_setfield(L, -2, "body");                       /* events, e */
    event_end(L, u, true);
}

static void on_peer(void *arg, raft_id id, bool up)
{
    struct lt *u = arg;
    lua_State *L = event_begin(u, "peer");
    set_int(L, "id", id);
    set_bool(L, "up", up);
    event_end(L, u, false);
}

/* ---- module functions ---- */

static const char *opt_string(lua_State *L, int idx, const char *name, const char *dflt)
{
    lua_getfield(L, idx, name); /* v; stays: the string must outlive transport_start */
    return lua_isnil(L, -1) ? dflt : luaL_checkstring(L, -1);
}

static int lt_start(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1); /* opts */
    uv_loop_t *loop = loop_get();
    if (loop == NULL) {
        return luaL_error(L, "luaraft.transport: cannot start the loop");
    }
    struct transport_options o;
    memset(&o, 0, sizeof(o));
    o.self = msg_lua_get_u64(L, 1, "self", 0);
    o.listen_port = (int)msg_lua_get_u64(L, 1, "listen_port", 0);
    o.listen_host = opt_string(L, 1, "listen_host", "127.0.0.1");
    o.cluster_id = opt_string(L, 1, "cluster_id", NULL);
    o.client_addr = opt_string(L, 1, "client_addr", "");
    o.dir = opt_string(L, 1, "dir", NULL);
    o.send_queue_bytes_max = msg_lua_get_u64(L, 1, "send_queue_bytes_max", 0);
    o.reconnect_ms_min = (uint32_t)msg_lua_get_u64(L, 1, "reconnect_ms_min", 0);
    o.reconnect_ms_max = (uint32_t)msg_lua_get_u64(L, 1, "reconnect_ms_max", 0);
    luaL_argcheck(L, o.cluster_id != NULL && o.dir != NULL, 1, "cluster_id and dir");
    uint8_t key[PEER_KEY_BYTES];
    lua_getfield(L, 1, "secret"); /* opts, ..., secret */
    if (!lua_isnil(L, -1)) {
        size_t len = 0;
        const char *secret = luaL_checklstring(L, -1, &len);
        peer_auth_key(secret, len, key);
        o.peer_key = key;
    }
    lua_pop(L, 1); /* opts, ... */

    lua_getfield(L, 1, "peers"); /* opts, ..., peers */
    luaL_checktype(L, -1, LUA_TTABLE);
    int at = lua_gettop(L);
    lua_Integer n = luaL_len(L, at);
    luaL_argcheck(L, n >= 0 && n <= 64, 1, "peers");
    struct transport_peer *peers = lua_newuserdatauv(L, (size_t)n * sizeof(*peers) + 1, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_rawgeti(L, at, i + 1); /* ..., peers, ud, peer */
        luaL_checktype(L, -1, LUA_TTABLE);
        int p = lua_gettop(L);
        peers[i].id = msg_lua_get_u64(L, p, "id", 0);
        peers[i].port = (int)msg_lua_get_u64(L, p, "port", 0);
        const char *host = opt_string(L, p, "host", "127.0.0.1"); /* ..., peer, host */
        luaL_argcheck(L, strlen(host) < sizeof(peers[i].host), 1, "peer host");
        memcpy(peers[i].host, host, strlen(host) + 1);
        lua_pop(L, 2); /* ..., peers, ud */
    }

    struct lt *u = lua_newuserdatauv(L, sizeof(*u), 0); /* ..., ud, lt */
    memset(u, 0, sizeof(*u));
    u->events_ref = LUA_NOREF;
    u->self = o.self;
    luaL_setmetatable(L, TRANSPORT_MT);
    lua_newtable(L);                                /* ..., lt, events */
    u->events_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* ..., lt */
    struct transport_callbacks cb = {
        .arg = u,
        .recv = on_recv,
        .snapshot = on_snapshot,
        .frame = on_frame,
        .peer = on_peer,
    };
    char errmsg[256] = "";
    current_L = L;
    int rv = transport_start(&u->t, loop, &o, peers, (unsigned)n, &cb, errmsg, sizeof(errmsg));
    if (rv != 0) {
        u->t = NULL;
        lua_pushnil(L);            /* ..., lt, nil */
        lua_pushstring(L, errmsg); /* ..., lt, nil, msg */
        lua_pushinteger(L, rv);    /* ..., lt, nil, msg, code */
        return 3;
    }
    return 1;
}

static int send_result(lua_State *L, int rv)
{
    if (rv == 0) {
        lua_pushboolean(L, 1); /* true */
        return 1;
    }
    lua_pushnil(L);                            /* nil */
    lua_pushstring(L, transport_strerror(rv)); /* nil, msg */
    return 2;
}

static int lt_send(lua_State *L)
{
    struct lt *u = check_open(L);
    struct raft_message m;
    get_message(L, 2, u->self, &m);
    current_L = L;
    return send_result(L, transport_send(u->t, &m));
}

static int lt_send_snapshot(lua_State *L)
{
    struct lt *u = check_open(L);
    struct raft_message m;
    get_message(L, 2, u->self, &m);
    luaL_argcheck(L, m.type == RAFT_MSG_SNAPSHOT, 2, "a SNAPSHOT message");
    const char *path = luaL_checkstring(L, 3);
    current_L = L;
    return send_result(L, transport_send_snapshot(u->t, &m, path));
}

static int lt_send_frame(lua_State *L)
{
    struct lt *u = check_open(L);
    raft_id to = (raft_id)luaL_checkinteger(L, 2);
    lua_Integer type = luaL_checkinteger(L, 3);
    luaL_argcheck(L, type >= 0 && type <= 255, 3, "frame type");
    size_t len = 0;
    const char *body = luaL_checklstring(L, 4, &len);
    current_L = L;
    return send_result(L, transport_send_frame(u->t, to, (uint8_t)type, body, len));
}

static int lt_send_frame_buf(lua_State *L)
{
    struct lt *u = check_open(L);
    raft_id to = (raft_id)luaL_checkinteger(L, 2);
    lua_Integer type = luaL_checkinteger(L, 3);
    luaL_argcheck(L, type >= 0 && type <= 255, 3, "frame type");
    size_t len = 0;
    const char *body = luaL_checklstring(L, 4, &len);
    struct buf b;
    buf_init(&b);
    if (buf_reserve(&b, TRANSPORT_FRAME_HEADROOM + len) != 0) {
        return luaL_error(L, "luaraft.transport: out of memory");
    }
    b.len = TRANSPORT_FRAME_HEADROOM;
    buf_append(&b, body, len); /* cannot fail: room reserved */
    current_L = L;
    return send_result(L, transport_send_frame_buf(u->t, to, (uint8_t)type, &b));
}

static void run_timer_cb(uv_timer_t *timer)
{
    (void)timer;
    run_timer_fired = true;
}

/* Runs the loop for up to ms, or until u holds n messages (n > 0); returns u's events. */
static int run_loop(lua_State *L, struct lt *u, lua_Integer n, lua_Integer ms)
{
    luaL_argcheck(L, ms >= 0, 2, "ms");
    lua_State *saved = current_L;
    current_L = L;
    run_timer_fired = false;
    uv_timer_start(&run_timer, run_timer_cb, (uint64_t)ms, 0);
    while (!run_timer_fired && (n <= 0 || u->n_messages < n)) {
        uv_run(&module_loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&run_timer);
    current_L = saved;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->events_ref); /* events */
    luaL_unref(L, LUA_REGISTRYINDEX, u->events_ref);
    lua_newtable(L);                                /* events, new */
    u->events_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* events */
    u->n_events = 0;
    u->n_messages = 0;
    return 1;
}

static int lt_run(lua_State *L)
{
    struct lt *u = check_lt(L);
    return run_loop(L, u, 0, luaL_checkinteger(L, 2));
}

static int lt_run_until(lua_State *L)
{
    struct lt *u = check_lt(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    return run_loop(L, u, n, luaL_checkinteger(L, 3));
}

static int lt_connected(lua_State *L)
{
    struct lt *u = check_open(L);
    lua_pushboolean(L, transport_connected(u->t, (raft_id)luaL_checkinteger(L, 2))); /* b */
    return 1;
}

static int lt_client_addr(lua_State *L)
{
    struct lt *u = check_open(L);
    const char *a = transport_client_addr(u->t, (raft_id)luaL_checkinteger(L, 2));
    lua_pushstring(L, a); /* addr or nil */
    return 1;
}

static int lt_stats(lua_State *L)
{
    struct lt *u = check_open(L);
    struct transport_stats st;
    transport_get_stats(u->t, &st);
    lua_createtable(L, 0, 4); /* t */
    set_int(L, "control_frames", st.frames_queued[0]);
    set_int(L, "bulk_frames", st.frames_queued[1]);
    set_int(L, "snapshot_bytes_sent", st.snapshot_bytes_sent);
    set_int(L, "snapshots_held", st.snapshots_held);
    set_int(L, "appends_coalesced", st.appends_coalesced);
    return 1;
}

static void lt_closed_cb(void *arg)
{
    *(bool *)arg = true;
}

/* Closes the transport and runs the loop until every one of its handles has closed. */
static int lt_close(lua_State *L)
{
    struct lt *u = check_lt(L);
    if (u->t == NULL) {
        return 0;
    }
    bool done = false;
    transport_close(u->t, lt_closed_cb, &done);
    u->t = NULL;
    lua_State *saved = current_L;
    current_L = L;
    while (!done) {
        uv_run(&module_loop, UV_RUN_ONCE);
    }
    current_L = saved;
    return 0;
}

/* Collected without close(): close without waiting; a later run finishes the job. */
static int lt_gc(lua_State *L)
{
    struct lt *u = check_lt(L);
    if (u->t != NULL) {
        transport_close(u->t, NULL, NULL);
        u->t = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, u->events_ref);
    u->events_ref = LUA_NOREF;
    return 0;
}

/* ---- raw connections, for sending garbage ---- */

struct raw
{
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    size_t len;
    char data[];
};

static void raw_close_cb(uv_handle_t *h)
{
    free(h->data);
}

static void raw_write_cb(uv_write_t *req, int status)
{
    struct raw *r = req->data;
    (void)status;
    uv_close((uv_handle_t *)&r->tcp, raw_close_cb);
}

static void raw_connect_cb(uv_connect_t *req, int status)
{
    struct raw *r = req->data;
    uv_buf_t b = uv_buf_init(r->data, (unsigned)r->len);
    if (status < 0 || uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, raw_write_cb) != 0) {
        uv_close((uv_handle_t *)&r->tcp, raw_close_cb);
    }
}

static int lt_raw_send(lua_State *L)
{
    lua_Integer port = luaL_checkinteger(L, 1);
    size_t len = 0;
    const char *bytes = luaL_checklstring(L, 2, &len);
    uv_loop_t *loop = loop_get();
    struct sockaddr_in addr;
    if (loop == NULL || uv_ip4_addr("127.0.0.1", (int)port, &addr) != 0) {
        return luaL_error(L, "luaraft.transport: bad port");
    }
    struct raw *r = malloc(sizeof(*r) + len + 1);
    if (r == NULL) {
        return luaL_error(L, "luaraft.transport: out of memory");
    }
    memcpy(r->data, bytes, len);
    r->len = len;
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    r->connect.data = r;
    r->write.data = r;
    if (uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&addr, raw_connect_cb)) {
        uv_close((uv_handle_t *)&r->tcp, raw_close_cb);
    }
    return 0;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    if (h != (uv_handle_t *)&run_timer) {
        (*(int *)arg)++;
    }
}

/* Runs pending close callbacks, then counts the handles left besides the run timer. */
static int lt_loop_handles(lua_State *L)
{
    int n = 0;
    if (module_loop_ready) {
        uv_run(&module_loop, UV_RUN_NOWAIT);
        uv_walk(&module_loop, count_handle, &n);
    }
    lua_pushinteger(L, n); /* n */
    return 1;
}

static const luaL_Reg methods[] = {
    {"send", lt_send},
    {"send_snapshot", lt_send_snapshot},
    {"send_frame", lt_send_frame},
    {"send_frame_buf", lt_send_frame_buf},
    {"run", lt_run},
    {"run_until", lt_run_until},
    {"connected", lt_connected},
    {"client_addr", lt_client_addr},
    {"stats", lt_stats},
    {"close", lt_close},
    {NULL, NULL},
};

static const luaL_Reg meta[] = {
    {"__gc", lt_gc},
    {"__close", lt_close},
    {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"start", lt_start},
    {"raw_send", lt_raw_send},
    {"loop_handles", lt_loop_handles},
    {NULL, NULL},
};

/* At lua_close(): closes the module's loop, if every transport on it has closed. */
static int module_gc(lua_State *L)
{
    (void)L;
    if (module_loop_ready) {
        uv_close((uv_handle_t *)&run_timer, NULL);
        uv_run(&module_loop, UV_RUN_NOWAIT);
        if (uv_loop_close(&module_loop) == 0) {
            module_loop_ready = false;
        }
    }
    return 0;
}

int luaopen_luaraft_transport(lua_State *L);
/* transport_lua_wire.c: adds wire_encode and wire_decode to the module table on top. */
void transport_lua_open_wire(lua_State *L);
/* transport_lua_raw.c: adds raw_open. */
void transport_lua_open_raw(lua_State *L);

int luaopen_luaraft_transport(lua_State *L)
{
    luaL_newmetatable(L, TRANSPORT_MT); /* mt */
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);         /* mt, methods */
    lua_setfield(L, -2, "__index");  /* mt */
    lua_pop(L, 1);                   /* */
    lua_newuserdatauv(L, 1, 0);      /* sentinel */
    lua_createtable(L, 0, 1);        /* sentinel, mt */
    lua_pushcfunction(L, module_gc); /* sentinel, mt, gc */
    lua_setfield(L, -2, "__gc");     /* sentinel, mt */
    lua_setmetatable(L, -2);         /* sentinel */
    luaL_ref(L, LUA_REGISTRYINDEX);  /* */
    luaL_newlib(L, module_funcs);    /* module */
    transport_lua_open_wire(L);
    transport_lua_open_raw(L);
    lua_pushinteger(L, TRANSPORT_ELISTEN);
    lua_setfield(L, -2, "ELISTEN");
    lua_pushinteger(L, WIRE_NODE_FRAME_MIN);
    lua_setfield(L, -2, "NODE_FRAME_MIN");
    return 1;
}
