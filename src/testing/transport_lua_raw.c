/*
 * luaraft.transport's raw connections, for spec/transport: a plain TCP connection on the
 * module's loop that a spec drives by hand, to speak the opening exchange as a forger
 * would (read the challenge, answer it or not, replay a recorded handshake).
 *
 *   transport.raw_open(port) -> r      connects to 127.0.0.1:port
 *   r:write(bytes)                     queued until connected, then written in order
 *   r:received() -> bytes              everything the other side sent so far
 *   r:state() -> "connecting" | "open" | "closed" (the other side closed, or an error)
 *   r:close()                          also when collected
 *
 * Nothing here runs the loop: a transport's run() does (every handle is on one loop).
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "util/buf.h"

#define RAW_MT "luaraft.transport.raw"

/* transport_lua.c: the module's loop. */
uv_loop_t *transport_lua_loop(void);
/* Called by luaopen_luaraft_transport: adds raw_open to the module table on top. */
void transport_lua_open_raw(lua_State *L);

struct rawc
{
    uv_tcp_t tcp;
    uv_connect_t connect;
    bool open, closed, closing;
    bool orphan;      /* the Lua side let go: free at the close callback */
    struct buf in;    /* received */
    struct buf queue; /* written before the connection was open */
};

struct raw_write
{
    uv_write_t req;
    size_t len;
    char data[];
};

static void raw_free_cb(uv_handle_t *h)
{
    struct rawc *r = h->data;
    r->closing = false;
    r->closed = true;
    if (r->orphan) {
        buf_free(&r->in);
        buf_free(&r->queue);
        free(r);
    }
}

static void raw_end(struct rawc *r)
{
    r->open = false;
    if (!r->closing && !uv_is_closing((uv_handle_t *)&r->tcp)) {
        r->closing = true;
        uv_close((uv_handle_t *)&r->tcp, raw_free_cb);
    }
}

static void raw_write_cb(uv_write_t *req, int status)
{
    struct rawc *r = req->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED) {
        raw_end(r);
    }
}

static void raw_write(struct rawc *r, const void *data, size_t len)
{
    struct raw_write *w = malloc(sizeof *w + len);
    if (w == NULL) {
        raw_end(r);
        return;
    }
    memcpy(w->data, data, len);
    w->len = len;
    w->req.data = r;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&r->tcp, &b, 1, raw_write_cb) != 0) {
        free(w);
        raw_end(r);
    }
}

static void raw_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct rawc *r = h->data;
    (void)suggested;
    if (buf_reserve(&r->in, 64 * 1024) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)r->in.data + r->in.len, (unsigned)(r->in.cap - r->in.len));
}

static void raw_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rawc *r = s->data;
    (void)buf;
    if (nread < 0) {
        raw_end(r);
    } else {
        r->in.len += (size_t)nread;
    }
}

static void raw_connect_cb(uv_connect_t *req, int status)
{
    struct rawc *r = req->data;
    if (status < 0 || r->closing) {
        raw_end(r);
        return;
    }
    r->open = true;
    if (uv_read_start((uv_stream_t *)&r->tcp, raw_alloc_cb, raw_read_cb) != 0) {
        raw_end(r);
        return;
    }
    if (r->queue.len > 0) {
        raw_write(r, r->queue.data, r->queue.len);
        r->queue.len = 0;
    }
}

static struct rawc *check_raw(lua_State *L)
{
    struct rawc **u = luaL_checkudata(L, 1, RAW_MT);
    return *u;
}

static int raw_open(lua_State *L)
{
    lua_Integer port = luaL_checkinteger(L, 1);
    struct sockaddr_in addr;
    uv_loop_t *loop = transport_lua_loop();
    if (loop == NULL || uv_ip4_addr("127.0.0.1", (int)port, &addr) != 0) {
        return luaL_error(L, "luaraft.transport: bad port");
    }
    struct rawc **u = lua_newuserdatauv(L, sizeof *u, 0); /* u */
    *u = NULL;
    luaL_setmetatable(L, RAW_MT);
    struct rawc *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return luaL_error(L, "luaraft.transport: out of memory");
    }
    buf_init(&r->in);
    buf_init(&r->queue);
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    r->connect.data = r;
    *u = r;
    if (uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&addr, raw_connect_cb)) {
        raw_end(r);
    }
    return 1;
}

static int raw_m_write(lua_State *L)
{
    struct rawc *r = check_raw(L);
    size_t len = 0;
    const char *bytes = luaL_checklstring(L, 2, &len);
    if (r->open) {
        raw_write(r, bytes, len);
    } else if (!r->closed && !r->closing && buf_append(&r->queue, bytes, len) != 0) {
        return luaL_error(L, "luaraft.transport: out of memory");
    }
    return 0;
}

static int raw_m_received(lua_State *L)
{
    struct rawc *r = check_raw(L);
    lua_pushlstring(L, r->in.len > 0 ? (const char *)r->in.data : "", r->in.len); /* bytes */
    return 1;
}

static int raw_m_state(lua_State *L)
{
    struct rawc *r = check_raw(L);
    lua_pushstring(L, r->open ? "open" : r->closed || r->closing ? "closed" : "connecting");
    return 1;
}

static int raw_m_close(lua_State *L)
{
    struct rawc **u = luaL_checkudata(L, 1, RAW_MT);
    struct rawc *r = *u;
    if (r == NULL) {
        return 0;
    }
    *u = NULL;
    r->orphan = true;
    if (r->closed) {
        raw_free_cb((uv_handle_t *)&r->tcp);
    } else {
        raw_end(r);
    }
    return 0;
}

void transport_lua_open_raw(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"write", raw_m_write}, {"received", raw_m_received},
        {"state", raw_m_state}, {"close", raw_m_close},
        {NULL, NULL},
    };
    luaL_newmetatable(L, RAW_MT); /* module, mt */
    lua_pushcfunction(L, raw_m_close);
    lua_setfield(L, -2, "__gc");     /* module, mt */
    luaL_newlib(L, methods);         /* module, mt, methods */
    lua_setfield(L, -2, "__index");  /* module, mt */
    lua_pop(L, 1);                   /* module */
    lua_pushcfunction(L, raw_open);  /* module, f */
    lua_setfield(L, -2, "raw_open"); /* module */
}
