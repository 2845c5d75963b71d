/*
 * C library functions charged by the work they do inside one VM instruction (issue 10):
 * elements moved, values pushed, bytes decoded or compiled. The count hook sees only VM
 * instructions, so without this `table.move(t, 1, 1 << 27, 2)` ran for seconds between two
 * hook calls. Where the size of the work follows from the arguments it is charged before
 * the work starts, so a move of 2^27 elements is refused at once; otherwise (utf8.offset)
 * just after. The charge goes to the same budget as instructions, with its error.
 *
 * Two ways of doing it. Functions whose work depends on #t (table.insert, remove, unpack,
 * concat) are written here, as the Lua 5.4 manual (§6.6) specifies them, except that
 * they take sandbox_border's length instead of `#`'s (a wrapper would also have to take
 * the length twice, calling a __len metamethod twice). The others are wrapped:
 * the wrapper charges, then calls the library's C function directly (not through
 * lua_call), so that it runs in the wrapper's frame and its argument errors name the
 * function as the script called it ("bad argument #1 to 'byte'").
 *
 * The rates follow what each costs against the VM's own speed, about 2.5 ns an
 * instruction on the development machine (a loop of 10^8 instructions: 0.25 s), so that
 * a spent budget means about the same time whatever the script spent it on
 * (spec/fsm/charge_spec.lua lists every function): an element moved or a value pushed or
 * compared 2 (about 5 ns each), a piece of table.concat 8 (20 ns), a character of
 * utf8.char 8 (30 ns), a conversion of string.format 16 (40-60 ns), one per 2 bytes
 * decoded by utf8 (1.6 ns a byte), one per 16 bytes scanned by tonumber and one per 64
 * copied (memcpy-like), 2 per byte compiled by load (15 ns a byte: the one rate below
 * the VM's, by 3 times, so that a script's EVAL-style chunks stay cheap). string.format
 * also charges a float conversion by the square of its digits over 64, which is how the
 * C library's exact conversion grows (%99.99f of 1e300 takes about 6 us).
 */
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <math.h>
#include <string.h>

#include "fsm/fsm_internal.h"

enum {
    per_element = 2,     /* an element moved, a value pushed or compared */
    per_piece = 8,       /* a piece of table.concat */
    per_utf8_char = 8,   /* a character utf8.char encodes */
    per_conversion = 16, /* a conversion of string.format */
    copy_bytes = 64,     /* bytes copied per instruction */
    scan_bytes = 16,     /* bytes tonumber scans per instruction */
    decode_bytes = 2,    /* bytes decoded one by one (utf8) per instruction */
    load_per_byte = 2    /* instructions per byte of source load compiles */
};

enum { tab_r = 1, tab_w = 2, tab_l = 4 };

static bool has_metafield(lua_State *L, int mt, const char *key)
{
    lua_pushstring(L, key);                     /* ... key */
    bool found = lua_rawget(L, mt) != LUA_TNIL; /* ... value */
    lua_pop(L, 1);                              /* ... */
    return found;
}

/* A table, or a value whose metatable has what the access needs (as ltablib.c accepts);
 * else the stock "table expected" error. */
static void tab_check(lua_State *L, int arg, int what)
{
    if (lua_type(L, arg) == LUA_TTABLE) {
        return;
    }
    bool ok = false;
    if (lua_getmetatable(L, arg)) { /* ... mt */
        int mt = lua_gettop(L);
        ok = (!(what & tab_r) || has_metafield(L, mt, "__index")) &&
             (!(what & tab_w) || has_metafield(L, mt, "__newindex")) &&
             (!(what & tab_l) || has_metafield(L, mt, "__len"));
        lua_pop(L, 1); /* ... */
    }
    if (!ok) {
        luaL_checktype(L, arg, LUA_TTABLE);
    }
}

static uint64_t span_count(lua_Integer first, lua_Integer last)
{
    return last >= first ? (uint64_t)((lua_Unsigned)last - (lua_Unsigned)first) + 1 : 0;
}

/*
 * The length the table library uses (fsm.h, "Length"): __len's answer when the value has
 * one (lua_len, as luaL_len), else a border found from the keys alone. `#` on a table
 * with several borders (a table with holes) answers from the table's layout (the size
 * of its array part, Lua 5.4 manual §3.4.7 leaves the choice open), and the layout
 * depends on the table's history: a replica that built {1, nil, 3} with a constructor
 * says 3, one that restored it from a snapshot says 1. This border reads only whether
 * t[j] is nil: j doubles from 1 while t[j] is not nil, then the last non-nil and the
 * first nil one are bisected (the unbound search of ltable.c's hash_search, started
 * from 0 rather than from the array part's size). On a sequence it is #t; it costs
 * about 2 log2(n) raw reads, each charged, where the smallest border would cost n and
 * turn an append loop quadratic (10^5 table.insert(t, v) calls: 5 * 10^9 reads).
 * A query's read-only view of a state table is searched in the table behind it.
 */
lua_Integer sandbox_border(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_pushvalue(L, idx);          /* ... v */
    sandbox_readonly_unwrap(L, -1); /* ... t */
    int t = lua_gettop(L);
    if (lua_type(L, t) != LUA_TTABLE || luaL_getmetafield(L, t, "__len") != LUA_TNIL) {
        lua_settop(L, t - 1); /* ... */
        return luaL_len(L, idx);
    }
    lua_Integer i = 0; /* t[i] is not nil (or i == 0) */
    lua_Integer j = 1; /* the candidate: t[j] nil ends the doubling */
    uint64_t probes = 1;
    while (lua_rawgeti(L, t, j) != LUA_TNIL) { /* ... t v */
        lua_pop(L, 1);
        i = j;
        if (j > LUA_MAXINTEGER / 2) {
            j = LUA_MAXINTEGER;
            probes++;
            if (lua_rawgeti(L, t, j) != LUA_TNIL) { /* keys up to maxinteger */
                lua_settop(L, t - 1);
                sandbox_charge(L, probes * per_element);
                return j;
            }
            break;
        }
        j *= 2;
        probes++;
    }
    lua_pop(L, 1); /* ... t */
    while (j - i > 1) {
        lua_Integer m = i + (j - i) / 2;
        if (lua_rawgeti(L, t, m) == LUA_TNIL) {
            j = m;
        } else {
            i = m;
        }
        lua_pop(L, 1);
        probes++;
    }
    lua_settop(L, t - 1); /* ... */
    sandbox_charge(L, probes * per_element);
    return i;
}

/* The border as a function, for the sort written in Lua (sandbox.c). */
int sandbox_border_lua(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushinteger(L, sandbox_border(L, 1));
    return 1;
}

/* table.insert(t, [pos,] v): charges the elements it shifts up. */
static int charged_insert(lua_State *L)
{
    tab_check(L, 1, tab_r | tab_w | tab_l);
    lua_Integer e = (lua_Integer)((lua_Unsigned)sandbox_border(L, 1) + 1u); /* first empty */
    lua_Integer pos = e;
    if (lua_gettop(L) == 3) {
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        sandbox_charge(L, span_count(pos + 1, e) * per_element);
        for (lua_Integer i = e; i > pos; i--) {
            lua_geti(L, 1, i - 1); /* t pos v t[i-1] */
            lua_seti(L, 1, i);     /* t pos v */
        }
    } else if (lua_gettop(L) != 2) {
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos); /* t[pos] = v */
    return 0;
}

/* table.remove(t [, pos]): charges the elements it shifts down. */
static int charged_remove(lua_State *L)
{
    tab_check(L, 1, tab_r | tab_w | tab_l);
    lua_Integer size = sandbox_border(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size) { /* Lua 5.4.4 names argument 1 here (later versions 2) */
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1, "position out of bounds");
    }
    sandbox_charge(L, span_count(pos + 1, size) * per_element);
    lua_geti(L, 1, pos); /* ... t[pos] */
    for (; pos < size; pos++) {
        lua_geti(L, 1, pos + 1); /* ... t[pos] t[pos+1] */
        lua_seti(L, 1, pos);     /* ... t[pos] */
    }
    lua_pushnil(L);      /* ... t[pos] nil */
    lua_seti(L, 1, pos); /* ... t[pos] */
    return 1;
}

/* table.unpack(t [, i [, j]]): charges the values it pushes. */
static int charged_unpack(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer e = lua_isnoneornil(L, 3) ? sandbox_border(L, 1) : luaL_checkinteger(L, 3);
    if (i > e) {
        return 0;
    }
    lua_Unsigned n = (lua_Unsigned)e - (lua_Unsigned)i;
    if (n >= (lua_Unsigned)INT_MAX || !lua_checkstack(L, (int)(n + 1))) {
        return luaL_error(L, "too many results to unpack");
    }
    n++;
    sandbox_charge(L, (uint64_t)n * per_element);
    for (; i < e; i++) { /* up to e - 1 first: e may be maxinteger */
        lua_geti(L, 1, i);
    }
    lua_geti(L, 1, e);
    return (int)n;
}

/* Appends t[i] to b, charging its bytes, refusing a result the memory budget cannot
 * hold before the buffer grows past it. */
static void concat_piece(lua_State *L, luaL_Buffer *b, lua_Integer i, uint64_t *bytes)
{
    lua_geti(L, 1, i); /* ... b v */
    if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1),
                   (LUAI_UACINT)i);
    }
    size_t len = 0;
    lua_tolstring(L, -1, &len);
    *bytes += len;
    sandbox_charge(L, len / copy_bytes);
    sandbox_charge_memory(L, *bytes);
    luaL_addvalue(b);
}

/* table.concat(t [, sep [, i [, j]]]): one instruction a piece, before, and its bytes. */
static int charged_concat(lua_State *L)
{
    tab_check(L, 1, tab_r | tab_l);
    lua_Integer last = sandbox_border(L, 1);
    size_t lsep = 0;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    uint64_t pieces = span_count(i, last);
    sandbox_charge(L, pieces > UINT32_MAX ? pieces : pieces * (per_piece + lsep / copy_bytes));
    uint64_t bytes = pieces * lsep;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        concat_piece(L, &b, i, &bytes);
        luaL_addlstring(&b, sep, lsep);
    }
    if (i == last) {
        concat_piece(L, &b, i, &bytes);
    }
    luaL_pushresult(&b);
    return 1;
}

/* select(n, ...): charges the values it returns. */
static int charged_select(lua_State *L)
{
    int n = lua_gettop(L);
    if (lua_type(L, 1) == LUA_TSTRING && *lua_tostring(L, 1) == '#') {
        lua_pushinteger(L, n - 1);
        return 1;
    }
    lua_Integer i = luaL_checkinteger(L, 1);
    if (i < 0) {
        i = n + i;
    } else if (i > n) {
        i = n;
    }
    luaL_argcheck(L, 1 <= i, 1, "index out of range");
    sandbox_charge(L, (uint64_t)(n - i));
    return n - (int)i;
}

/* assert(v, ...): returns its arguments, charged; else raises its message (or the stock
 * one) as it is, without a position. */
static int charged_assert(lua_State *L)
{
    if (lua_toboolean(L, 1)) {
        sandbox_charge(L, (uint64_t)lua_gettop(L));
        return lua_gettop(L);
    }
    luaL_checkany(L, 1);
    lua_remove(L, 1);
    lua_pushliteral(L, "assertion failed!");
    lua_settop(L, 1);
    return lua_error(L);
}

/* The library function a wrapper stands for: its upvalue 1, called in the wrapper's
 * frame. */
static int call_real(lua_State *L)
{
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* math.max, math.min, table.pack, string.char, utf8.char: upvalue 2 instructions an
 * argument. */
static int charged_per_argument(lua_State *L)
{
    sandbox_charge(L, (uint64_t)lua_gettop(L) * (uint64_t)lua_tointeger(L, lua_upvalueindex(2)));
    return call_real(L);
}

/* table.move(a1, f, e, t [, a2]): the elements it moves, before (arguments that are not
 * integers are the library's to refuse). */
static int charged_move(lua_State *L)
{
    int okf = 0;
    int oke = 0;
    lua_Integer f = lua_tointegerx(L, 2, &okf);
    lua_Integer e = lua_tointegerx(L, 3, &oke);
    if (okf && oke && (f > 0 || e < LUA_MAXINTEGER + f)) { /* else the library refuses */
        uint64_t n = span_count(f, e);
        sandbox_charge(L, n > UINT32_MAX ? n : n * per_element);
    }
    return call_real(L);
}

/* The bytes of s[i..j] with Lua's negative and out-of-range positions (string.sub's). */
static uint64_t string_span(size_t len, lua_Integer i, lua_Integer j)
{
    lua_Integer n = (lua_Integer)len;
    lua_Integer first = i > 0 ? i : (i == 0 || i < -n ? 1 : n + i + 1);
    lua_Integer last = j > n ? n : (j >= 0 ? j : (j < -n ? 0 : n + j + 1));
    return span_count(first, last);
}

/* string.byte(s [, i [, j]]) and utf8.codepoint(s [, i [, j]]): a value pushed for at
 * most every byte in the range, charged before. */
static int charged_byte_range(lua_State *L)
{
    size_t len = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer j = luaL_optinteger(L, 3, i);
    sandbox_charge(L, string_span(len, i, j));
    return call_real(L);
}

/* utf8.len(s [, i [, j [, lax]]]): the bytes it decodes, before. */
static int charged_utf8_len(lua_State *L)
{
    size_t len = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer j = luaL_optinteger(L, 3, -1);
    sandbox_charge(L, string_span(len, i, j) / decode_bytes);
    return call_real(L);
}

/* utf8.offset(s, n [, i]): the bytes it walked, after (the walk's length depends on the
 * bytes it meets). */
static int charged_utf8_offset(lua_State *L)
{
    size_t len = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    lua_Integer from = luaL_optinteger(L, 3, n >= 0 ? 1 : (lua_Integer)len + 1);
    int results = call_real(L);
    lua_Integer at = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (n >= 0 ? (lua_Integer)len : 1);
    sandbox_charge(L, (uint64_t)(at > from ? at - from : from - at) / decode_bytes);
    return results;
}

/* utf8.codes's iterator (upvalue 1) steps over the continuation bytes after position n
 * before it decodes: charged, by counting them here first. */
static int charged_codes_step(lua_State *L)
{
    size_t len = 0;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    lua_Integer n = lua_tointeger(L, 2);
    uint64_t skipped = 0;
    if (n >= 0) {
        for (size_t k = (size_t)n; k < len && (s[k] & 0xc0) == 0x80; k++) {
            skipped++;
        }
    }
    sandbox_charge(L, skipped / decode_bytes);
    return call_real(L);
}

/* utf8.codes(s [, lax]): the library's iterator, wrapped. */
static int charged_utf8_codes(lua_State *L)
{
    int results = call_real(L);                 /* ... iter s 0 */
    lua_pushvalue(L, -results);                 /* ... iter s 0 iter */
    lua_pushcclosure(L, charged_codes_step, 1); /* ... iter s 0 step */
    lua_replace(L, -results - 1);               /* ... step s 0 */
    return results;
}

/* tonumber(v [, base]): a string's bytes, before. */
static int charged_tonumber(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        sandbox_charge(L, lua_rawlen(L, 1) / scan_bytes);
    }
    return call_real(L);
}

/* string.pack, unpack and packsize: one instruction a byte of the format (each is an
 * option, or part of one) and an argument, before; string.unpack with a 'z' option also
 * the bytes it may scan for the terminating zero. The output is a new string, which the
 * allocator counts. */
static int charged_pack(lua_State *L)
{
    size_t len = 0;
    const char *fmt = luaL_checklstring(L, 1, &len);
    uint64_t work = (uint64_t)len + (uint64_t)lua_gettop(L);
    if (lua_type(L, 2) == LUA_TSTRING && memchr(fmt, 'z', len) != NULL) {
        work += lua_rawlen(L, 2) / copy_bytes;
    }
    sandbox_charge(L, work);
    return call_real(L);
}

/*
 * string.format's work besides its output (which sandbox.c's wrapper charges): one
 * instruction a conversion, its width and precision, and for a float conversion the
 * square of its digits over 64, since the C library converts floats exactly, in time
 * that grows with the square of the digits. Reads the format the way lstrlib.c does:
 * flags, up to two digits of width, '.', up to two of precision, the conversion.
 */
void sandbox_charge_format(lua_State *L, const char *fmt, size_t len)
{
    uint64_t work = len / copy_bytes;
    int arg = 1;
    for (size_t i = 0; i < len; i++) {
        if (fmt[i] != '%' || ++i >= len || fmt[i] == '%') {
            continue;
        }
        while (i < len && strchr("-+ #0", fmt[i]) != NULL) {
            i++;
        }
        uint64_t width = 0;
        uint64_t precision = 6;
        for (; i < len && fmt[i] >= '0' && fmt[i] <= '9'; i++) {
            width = width * 10 + (uint64_t)(fmt[i] - '0');
        }
        if (i < len && fmt[i] == '.') {
            precision = 0;
            for (i++; i < len && fmt[i] >= '0' && fmt[i] <= '9'; i++) {
                precision = precision * 10 + (uint64_t)(fmt[i] - '0');
            }
        }
        arg++;
        work += per_conversion + width / copy_bytes;
        if (i < len && strchr("aAeEfFgG", fmt[i]) != NULL && lua_type(L, arg) == LUA_TNUMBER) {
            double x = fabs((double)lua_tonumber(L, arg));
            uint64_t digits = precision + (x >= 10 && isfinite(x) ? (uint64_t)log10(x) : 0);
            work += digits * digits / 64;
        }
    }
    sandbox_charge(L, work);
}

/* Upvalue 1: load's reader function. Each piece it returns is compiled: charged. */
static int charged_reader(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1)); /* reader */
    lua_call(L, 0, 1);                     /* piece */
    if (lua_type(L, -1) == LUA_TSTRING) {
        sandbox_charge(L, (uint64_t)lua_rawlen(L, -1) * load_per_byte);
    }
    return 1;
}

/* Upvalue 1: the sandbox's load (sandbox.c, text only). Charges the source it compiles:
 * a string before, a reader's pieces as they come. */
static int charged_load(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        sandbox_charge(L, (uint64_t)lua_rawlen(L, 1) * load_per_byte);
    } else if (lua_type(L, 1) == LUA_TFUNCTION) {
        lua_pushvalue(L, 1);                    /* f ... f */
        lua_pushcclosure(L, charged_reader, 1); /* f ... reader */
        lua_replace(L, 1);                      /* reader ... */
    }
    if (fsm_from_state(L)->readonly && lua_gettop(L) < 4) {
        lua_settop(L, 3);             /* chunk name mode */
        lua_pushglobaltable(L);       /* chunk name mode G */
        sandbox_readonly_wrap(L, -1); /* chunk name mode env: a query's chunk reads only */
    }
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* ... load */
    lua_insert(L, 1);                      /* load ... */
    lua_call(L, n, LUA_MULTRET);           /* results */
    return lua_gettop(L);
}

static void set_function(lua_State *L, int t, const char *name, lua_CFunction fn)
{
    t = lua_absindex(L, t);
    lua_pushcfunction(L, fn); /* ... fn */
    lua_setfield(L, t, name); /* ... */
}

/* t[name] = fn with upvalues the old t[name] and rate (charged_per_argument's). */
static void wrap_rate(lua_State *L, int t, const char *name, lua_CFunction fn, int rate)
{
    t = lua_absindex(L, t);
    lua_getfield(L, t, name);   /* ... real */
    lua_pushinteger(L, rate);   /* ... real rate */
    lua_pushcclosure(L, fn, 2); /* ... wrapper */
    lua_setfield(L, t, name);   /* ... */
}

static void wrap_function(lua_State *L, int t, const char *name, lua_CFunction fn)
{
    wrap_rate(L, t, name, fn, 0);
}

void sandbox_charge_open(lua_State *L)
{
    lua_pushglobaltable(L); /* G */
    int g = lua_gettop(L);
    set_function(L, g, "select", charged_select);
    set_function(L, g, "assert", charged_assert);
    wrap_function(L, g, "tonumber", charged_tonumber);
    wrap_function(L, g, "load", charged_load);

    lua_getfield(L, g, LUA_TABLIBNAME); /* G table */
    int t = lua_gettop(L);
    set_function(L, t, "insert", charged_insert);
    set_function(L, t, "remove", charged_remove);
    set_function(L, t, "unpack", charged_unpack);
    set_function(L, t, "concat", charged_concat);
    wrap_function(L, t, "move", charged_move);
    wrap_rate(L, t, "pack", charged_per_argument, per_element);

    lua_getfield(L, g, LUA_STRLIBNAME); /* G table string */
    int s = lua_gettop(L);
    wrap_function(L, s, "byte", charged_byte_range);
    wrap_rate(L, s, "char", charged_per_argument, per_element);
    static const char *const packs[] = {"pack", "unpack", "packsize"};
    for (size_t i = 0; i < sizeof packs / sizeof packs[0]; i++) {
        wrap_function(L, s, packs[i], charged_pack);
    }

    lua_getfield(L, g, LUA_MATHLIBNAME); /* G table string math */
    wrap_rate(L, -1, "max", charged_per_argument, per_element);
    wrap_rate(L, -1, "min", charged_per_argument, per_element);

    lua_getfield(L, g, LUA_UTF8LIBNAME); /* G table string math utf8 */
    wrap_rate(L, -1, "char", charged_per_argument, per_utf8_char);
    wrap_function(L, -1, "codepoint", charged_byte_range);
    wrap_function(L, -1, "len", charged_utf8_len);
    wrap_function(L, -1, "offset", charged_utf8_offset);
    wrap_function(L, -1, "codes", charged_utf8_codes);
    lua_pop(L, 5); /* */
}
