/*
 * test_script.c: unit tests for core/script.c, the Lua sandbox.
 *
 * Every failing case names the error it expects by a piece of its message,
 * so a limit that stops a script for the wrong reason fails the test.  Most
 * checks of the sandbox's contents are Lua asserts run through the sandbox.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>

#include "script.h"

#define EXPECT_OK(sb, code) do {					\
	char e_[2048];							\
	if (run((sb), (code), e_, sizeof(e_)) != 0)			\
		fail_msg("unexpected error: %s", e_);			\
} while (0)

#define EXPECT_FAIL(sb, code, needle) do {				\
	char e_[2048];							\
	if (run((sb), (code), e_, sizeof(e_)) != -1)			\
		fail_msg("no error, expected '%s'", (needle));		\
	if (strstr(e_, (needle)) == NULL)				\
		fail_msg("expected '%s' in: %s", (needle), e_);		\
} while (0)

static int run(struct sb_lua *sb, const char *code, char *err, size_t errlen)
{
	err[0] = '\0';
	return sb_lua_dostring(sb, "@t.lua", code, strlen(code), err, errlen);
}

static struct sb_lua *new_sb(size_t mem, size_t call_alloc, long instr, size_t str)
{
	struct sb_lua_limits lim = { mem, call_alloc, instr, str };
	struct sb_lua *sb = sb_lua_new(&lim);

	assert_non_null(sb);
	return sb;
}

static int setup(void **state)
{
	*state = new_sb(0, 0, 1000000, 0);
	return 0;
}

static int teardown(void **state)
{
	sb_lua_free(*state);
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Push global `name' of the sandbox onto the main stack. */
static void push_global(struct sb_lua *sb, const char *name)
{
	lua_State *L = sb_lua_state(sb);

	sb_lua_push_env(sb);
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
}

static void test_call_returns_values(void **state)
{
	struct sb_lua *sb = *state;
	lua_State *L = sb_lua_state(sb);
	char err[512];

	EXPECT_OK(sb, "function add(a, b) return a + b, a * b end");
	push_global(sb, "add");
	lua_pushinteger(L, 3);
	lua_pushinteger(L, 4);
	assert_int_equal(sb_lua_call(sb, 2, 2, err, sizeof(err)), 0);
	assert_int_equal(lua_tointeger(L, -2), 7);
	assert_int_equal(lua_tointeger(L, -1), 12);
	lua_pop(L, 2);
	assert_int_equal(lua_gettop(L), 0);
	assert_ptr_equal(sb_lua_from(L), sb);
	assert_true(sb_lua_mem_used(sb) > 0);
}

static void test_syntax_error(void **state)
{
	struct sb_lua *sb = *state;
	const char *code = "local a = 1\nlocal b = = 2\n";
	char err[512];

	assert_int_equal(sb_lua_dostring(sb, "@scripts/power.lua", code, strlen(code),
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "scripts/power.lua:2:"));
	assert_non_null(strstr(err, "unexpected symbol"));
}

static void test_runtime_error_location(void **state)
{
	struct sb_lua *sb = *state;
	lua_State *L = sb_lua_state(sb);
	char err[2048];
	int frames = 0;
	const char *p;

	EXPECT_FAIL(sb, "local t = nil\nreturn t.x", "t.lua:2: attempt to index a nil value");
	EXPECT_FAIL(sb, "error('boom')", "t.lua:1: boom\nstack traceback:");
	EXPECT_FAIL(sb, "error({})", "(error object is a table value)");

	/* Through sb_lua_call, and with a traceback trimmed to a few frames. */
	EXPECT_OK(sb, "function deep(n)\n if n == 0 then error('bottom') end\n"
	    " return deep(n - 1) + 1\nend");
	push_global(sb, "deep");
	lua_pushinteger(L, 30);
	assert_int_equal(sb_lua_call(sb, 1, 1, err, sizeof(err)), -1);
	assert_int_equal(lua_gettop(L), 0);
	assert_non_null(strstr(err, "t.lua:2: bottom"));
	for (p = err; (p = strstr(p, "\n\t")) != NULL; p++)
		frames++;
	assert_in_range(frames, 2, 6);
}

static void test_infinite_loop(void **state)
{
	struct sb_lua *sb = *state;

	EXPECT_FAIL(sb, "while true do end", "t.lua:1: script exceeded its instruction limit");
	EXPECT_FAIL(sb, "local function f() return f() end f()", "instruction limit");
	EXPECT_OK(sb, "x = 1");
}

static void test_pcall_cannot_swallow_limit(void **state)
{
	struct sb_lua *sb = *state;

	EXPECT_FAIL(sb, "while true do pcall(function() while true do end end) end",
	    "instruction limit");
	EXPECT_FAIL(sb, "while true do pcall(pcall, pcall, function() while true do end end) end",
	    "instruction limit");
	/* Returning normally after catching it still fails the call. */
	EXPECT_FAIL(sb, "return pcall(function() while true do end end)", "instruction limit");
	EXPECT_OK(sb, "x = 2");
}

static void test_memory_bomb(void **state)
{
	struct sb_lua *sb = new_sb(0, 0, 100000000, 0);
	size_t before = sb_lua_mem_used(sb);

	(void)state;
	EXPECT_FAIL(sb, "local t = {} while true do t[#t + 1] = ('x'):rep(1000) end",
	    "script exceeded its memory limit (16384 KiB)");
	EXPECT_OK(sb, "local s = ('y'):rep(100) assert(#s == 100)");
	EXPECT_FAIL(sb, "local t, i = {}, 0 while true do i = i + 1 t[i] = {i} end",
	    "memory limit");
	EXPECT_FAIL(sb, "local s = 'x' while true do s = s .. s end", "memory limit");
	/* Caught by pcall, it is the script's business; the garbage goes. */
	EXPECT_OK(sb, "local ok, e = pcall(function() local t = {} while true do"
	    " t[#t + 1] = {} end end) assert(not ok and e == 'not enough memory')");
	EXPECT_OK(sb, "x = {1, 2, 3}");
	assert_true(sb_lua_mem_used(sb) < before + 64 * 1024);
	sb_lua_free(sb);
}

static void test_memory_ceiling(void **state)
{
	struct sb_lua *sb = new_sb(2 << 20, 64 << 20, 0, 0);

	(void)state;
	EXPECT_FAIL(sb, "big = {} for i = 1, 1e7 do big[i] = i end",
	    "script exceeded its memory limit (2048 KiB)");
	EXPECT_FAIL(sb, "big[#big + 1] = ('x'):rep(100000)", "memory limit");
	EXPECT_OK(sb, "big = nil");
	EXPECT_OK(sb, "t = {} for i = 1, 1000 do t[i] = i end");
	assert_true(sb_lua_mem_used(sb) <= 2 << 20);
	sb_lua_free(sb);
}

static void test_string_rep_bomb(void **state)
{
	struct sb_lua *sb = *state;

	EXPECT_FAIL(sb, "return ('x'):rep(1e9)", "string.rep: result longer than 1048576 bytes");
	EXPECT_FAIL(sb, "return string.rep('ab', 400000, ',')", "string.rep: result longer");
	EXPECT_OK(sb, "assert(('x'):rep(3, ',') == 'x,x,x')");
	/* Lua 5.4.4 itself would loop 10^15 times building this "". */
	EXPECT_OK(sb, "assert((''):rep(1e15) == '')");
}

static void test_catastrophic_pattern(void **state)
{
	static const char *const bombs[] = {
		"return string.find(('a'):rep(100000), ('a*'):rep(20) .. 'b')",
		"return ('a'):rep(30):match(('a*'):rep(20) .. 'b')",
		"for w in ('a'):rep(40):gmatch(('a-'):rep(15) .. 'b') do end",
		"return (('a'):rep(40)):gsub(('a?'):rep(30) .. 'b', '')",
		"return pcall(string.find, ('a'):rep(30), ('a*'):rep(20) .. 'b')",
	};
	struct sb_lua *sb = new_sb(0, 0, 0, 0);	/* default limits */
	struct sb_lua *small = new_sb(0, 0, 0, 1000);
	double t0;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
		t0 = now();
		EXPECT_FAIL(sb, bombs[i], "script exceeded its instruction limit");
		if (now() - t0 >= 2.0)
			fail_msg("%s took %.1f s", bombs[i], now() - t0);
	}
	EXPECT_FAIL(small, "return string.find(('a'):rep(1000) .. ('a'):rep(1000), 'a')",
	    "subject too long for pattern matching");
	EXPECT_OK(small, "assert(string.find(('a'):rep(1000), 'a') == 1)");
	sb_lua_free(sb);
	sb_lua_free(small);
}

static void test_patterns_still_work(void **state)
{
	EXPECT_OK(*state,
	    "assert(('hello world'):find('o w') == 5)\n"
	    "assert(('a+b'):find('+', 1, true) == 2)\n"
	    "local k, v = ('key = value  '):match('^(%w+)%s*=%s*(.-)%s*$')\n"
	    "assert(k == 'key' and v == 'value')\n"
	    "assert(select(2, ('a,b,,c'):gsub(',', ';')) == 3)\n"
	    "assert(('f(a(b)c)d'):match('%b()') == '(a(b)c)')\n"
	    "assert(('THE (quick) fox'):gsub('%f[%a]%a+', 'X') == 'X (X) X')\n"
	    "assert(('hello hello'):match('(h%a+) %1') == 'hello')\n"
	    "assert(('abc'):match('()b()') == 2)\n"
	    "assert(('abc'):gsub('', '-') == '-a-b-c-')\n"
	    "assert(('x=1, y=22'):gsub('(%w+)=(%w+)', '%2=%1') == '1=x, 22=y')\n"
	    "local n = 0 for a, b in ('a=1, b=2'):gmatch('(%w+)=(%w+)') do n = n + b end\n"
	    "assert(n == 3)\n"
	    "assert(('[x]'):match('^%[(.)%]$') == 'x')\n"
	    "assert(('abc'):find('b', -2) == 2 and ('abc'):find('b', 10) == nil)\n"
	    "assert(('hello'):gsub('l', {l = 'L'}) == 'heLLo')\n"
	    "assert(string.format('%d-%s', 5, 'z') == '5-z')\n"
	    "local ok, e = pcall(string.find, 'x', '[a')\n"
	    "assert(not ok and e:find('malformed pattern'))\n"
	    "ok, e = pcall(string.match, 'x', '%')\n"
	    "assert(not ok and e:find('malformed pattern'))\n"
	    "ok, e = pcall(string.find, 'x', '(x')\n"
	    "assert(not ok and e:find('unfinished capture'))\n");
}

/*
 * string.format builds "%s" of strings and "%d" of integers itself
 * (script.c's format_plain) and leaves the rest to lstrlib: either way the
 * bytes must be lstrlib's, and so must what fails.  The reference is a
 * plain Lua state's string.format.
 */
static void test_format_as_lstrlib(void **state)
{
	static const char *const cases[] = {
		"'%s: %s since %s ago - %s', 'web', 'ok', '5s', ''",
		"'%d nodes: %s', 4, 'ok'", "'%d', math.mininteger", "'%d', math.maxinteger",
		"'%d|%d', 0, -42", "'%d', 3.0", "'%d', 3.5", "'%d', '7'", "'%s', 12",
		"'%s', 1.5", "'%s', -0.0", "'100%%'", "'%s%%%s', 'a', 'b'", "'a\\0b%s', 'c\\0d'",
		"'%5s|%-3d', 'x', 7", "'%s'", "'%'", "'%d %s', 1", "'%s', 'x', 'extra'", "''",
		"'no conversions'", "'%q', 'x\\n'", "'%x', 255", "'%i', 5", "'%s', true",
		"'%s', nil", "'%d', nil", "('x'):rep(3000) .. '%s%d', ('y'):rep(3000), 12",
		"'%s', setmetatable({}, { __tostring = function() return 'T' end })",
		"'%s %d', 'a'", "42, 1", "'%%%'",
		/* around format_short's 256-byte buffer */
		"('x'):rep(250) .. '%s%d', 'abc', 12", "('x'):rep(250) .. '%s%d', 'abc', 123456",
		"('x'):rep(255) .. '%%'", "('x'):rep(256) .. '%%'", "'%s', ('y'):rep(257)",
	};
	lua_State *ref = luaL_newstate();
	char code[8192];

	luaL_openlibs(ref);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(code, sizeof(code), "return string.format('%%q', string.format(%s))",
		    cases[i]);
		if (luaL_dostring(ref, code) == LUA_OK)
			snprintf(code, sizeof(code), "assert(string.format(%s) == %s, %d)", cases[i],
			    lua_tostring(ref, -1), (int)i);
		else
			snprintf(code, sizeof(code), "assert(not pcall(string.format, %s), %d)",
			    cases[i], (int)i);
		lua_settop(ref, 0);
		EXPECT_OK(*state, code);
	}
	lua_close(ref);
}

static void test_deep_recursion(void **state)
{
	struct sb_lua *big = new_sb(512 << 20, 512 << 20, 100000000, 0);

	EXPECT_FAIL(big, "local function f(n) return 1 + f(n + 1) end return f(1)",
	    "stack overflow");
	EXPECT_FAIL(big, "local t = setmetatable({}, {__index = function(t, k) return t[k] end})"
	    " return t.x", "stack overflow");
	EXPECT_OK(big, "x = 1");
	sb_lua_free(big);
	/* With the default 16 MiB call budget the Lua stack runs out of memory first. */
	EXPECT_FAIL(*state, "local function f(n) return 1 + f(n + 1) end return f(1)",
	    "memory limit");
	EXPECT_FAIL(*state, "local function f() return tostring(setmetatable({},"
	    " {__tostring = f})) end return f()", "stack overflow");
	EXPECT_OK(*state, "x = 1");
}

static void test_forbidden_globals(void **state)
{
	struct sb_lua *sb = *state;

	EXPECT_OK(sb,
	    "for _, n in ipairs{'io', 'require', 'dofile', 'loadfile', 'debug',\n"
	    "    'collectgarbage', 'package', 'loadstring', 'module', 'setfenv',\n"
	    "    'getfenv', 'unpack', 'warn', 'newproxy'} do\n"
	    "  assert(_ENV[n] == nil, n)\n"
	    "end\n"
	    "for _, n in ipairs{'execute', 'exit', 'remove', 'rename', 'getenv',\n"
	    "    'tmpname', 'setlocale'} do\n"
	    "  assert(os[n] == nil, 'os.' .. n)\n"
	    "end\n"
	    "assert(string.dump == nil)\n"
	    "for _, n in ipairs{'assert', 'error', 'ipairs', 'next', 'pairs', 'pcall',\n"
	    "    'xpcall', 'rawequal', 'rawlen', 'rawget', 'rawset', 'select',\n"
	    "    'tonumber', 'tostring', 'type', 'setmetatable', 'getmetatable',\n"
	    "    'print', 'load'} do\n"
	    "  assert(type(_ENV[n]) == 'function', n)\n"
	    "end\n"
	    "assert(_VERSION == 'Lua 5.4' and _G == _ENV)\n"
	    "assert(os.time() and os.date('%Y') and os.clock() and math.random(3) <= 3)\n"
	    "assert(utf8.char(72) == 'H' and coroutine.running() and table.unpack{1})\n"
	    "print('to nowhere')\n");
	EXPECT_FAIL(sb, "io.open('/etc/passwd')", "attempt to index a nil value (global 'io')");
	EXPECT_FAIL(sb, "os.execute('true')", "attempt to call a nil value (field 'execute')");
	EXPECT_FAIL(sb, "require('os')", "attempt to call a nil value (global 'require')");
	EXPECT_FAIL(sb, "dofile('/etc/passwd')", "attempt to call a nil value (global 'dofile')");
	EXPECT_FAIL(sb, "loadfile('/etc/passwd')", "attempt to call a nil value (global 'loadfile')");
	EXPECT_FAIL(sb, "debug.getregistry()", "attempt to index a nil value (global 'debug')");
	EXPECT_FAIL(sb, "collectgarbage()", "attempt to call a nil value (global 'collectgarbage')");
	EXPECT_FAIL(sb, "package.loadlib('x', 'y')", "attempt to index a nil value (global 'package')");
	EXPECT_FAIL(sb, "string.dump(print)", "attempt to call a nil value (field 'dump')");
	EXPECT_FAIL(sb, "setmetatable({}, {__gc = function() while true do end end})",
	    "__gc metamethods are not allowed");
}

struct dump {
	char	buf[4096];
	size_t	len;
};

static int writer(lua_State *L, const void *p, size_t sz, void *ud)
{
	struct dump *d = ud;

	(void)L;
	if (sz > sizeof(d->buf) - d->len)
		return 1;
	memcpy(d->buf + d->len, p, sz);
	d->len += sz;
	return 0;
}

static size_t dump_of(const char *code, struct dump *d)
{
	lua_State *plain = luaL_newstate();

	d->len = 0;
	assert_int_equal(luaL_loadstring(plain, code), LUA_OK);
	assert_int_equal(lua_dump(plain, writer, d, 0), 0);
	lua_close(plain);
	return d->len;
}

/* The daemon's own chunks: the build's bytecode runs in the sandbox; a
 * bytecode this Lua cannot load (another release's) falls back to the
 * text; a bytecode that loads but fails is reported, not run again as
 * text. */
static void test_built_chunk(void **state)
{
	static const char text[] = "RAN = 'text'";
	struct sb_lua *sb = *state;
	static struct dump d;
	char err[512];
	size_t len;

	len = dump_of("RAN = 'bytecode'", &d);
	assert_int_equal(sb_lua_dobuilt(sb, "=b", d.buf, len, text, strlen(text),
	    err, sizeof(err)), 0);
	EXPECT_OK(sb, "assert(RAN == 'bytecode', RAN)");

	d.buf[4] ^= 0x01;	/* the header's version byte: another Lua */
	assert_int_equal(sb_lua_dobuilt(sb, "=b", d.buf, len, text, strlen(text),
	    err, sizeof(err)), 0);
	EXPECT_OK(sb, "assert(RAN == 'text', RAN)");
	EXPECT_OK(sb, "RAN = nil");
	assert_int_equal(sb_lua_dobuilt(sb, "=b", NULL, 0, text, strlen(text),
	    err, sizeof(err)), 0);
	EXPECT_OK(sb, "assert(RAN == 'text', RAN)");

	len = dump_of("RAN = 'failing bytecode'; error('boom')", &d);
	assert_int_equal(sb_lua_dobuilt(sb, "=b", d.buf, len, text, strlen(text),
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "boom"));
	EXPECT_OK(sb, "assert(RAN == 'failing bytecode', RAN)");
}

/* This build's prelude bytecode loads in the Lua it runs with, so the
 * daemon takes the fast path (build/gen/prelude.c). */
extern const unsigned char sb_prelude_bc[];
extern const size_t sb_prelude_bc_len;

static void test_prelude_bytecode_loads(void **state)
{
	lua_State *plain = luaL_newstate();

	(void)state;
	assert_int_equal(luaL_loadbufferx(plain, (const char *)sb_prelude_bc,
	    sb_prelude_bc_len, "=prelude", "b"), LUA_OK);
	lua_close(plain);
}

static void test_binary_chunk_refused(void **state)
{
	struct sb_lua *sb = *state;
	lua_State *L = sb_lua_state(sb), *plain = luaL_newstate();
	static struct dump d;
	const char *bin = d.buf;
	size_t len;
	char err[512];

	/* A real binary chunk, dumped from a plain state. */
	assert_int_equal(luaL_loadstring(plain, "return 42"), LUA_OK);
	assert_int_equal(lua_dump(plain, writer, &d, 0), 0);
	lua_close(plain);
	len = d.len;
	assert_true(len > 4 && bin[0] == '\033');

	assert_int_equal(sb_lua_dostring(sb, "=bin", bin, len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "binary chunks are not allowed"));
	sb_lua_push_env(sb);
	lua_pushlstring(L, bin, len);
	lua_setfield(L, -2, "BIN");
	lua_pop(L, 1);
	EXPECT_OK(sb,
	    "local f, e = load(BIN)\n"
	    "assert(f == nil and e == 'binary chunks are not allowed', e)\n"
	    "f, e = load(BIN, 'x', 'b')\n"
	    "assert(f == nil and e == 'binary chunks are not allowed', e)\n"
	    "local done\n"
	    "f, e = load(function() if not done then done = true return BIN end end, 'r', 'bt')\n"
	    "assert(f == nil and e:find('binary chunk'), e)\n");
}

static void test_load_text_is_sandboxed(void **state)
{
	struct sb_lua *sb = *state;

	EXPECT_OK(sb,
	    "local f = assert(load('return io, os.execute, require, x'))\n"
	    "x = 5\n"
	    "local a, b, c, d = f()\n"
	    "assert(a == nil and b == nil and c == nil and d == 5)\n"
	    "assert(load('return y', 'c', 't', {y = 7})() == 7)\n"
	    "local g, e = load('x = = 1', '=chunk')\n"
	    "assert(g == nil and e:find('chunk:1:'))\n");
	EXPECT_FAIL(sb, "load('while true do end')()", "instruction limit");
	EXPECT_FAIL(sb, "load('local t = {} while true do t[#t + 1] = (\\'x\\'):rep(1000) end')()",
	    "memory limit");
}

static void test_string_metatable_protected(void **state)
{
	struct sb_lua *sb = *state;

	EXPECT_OK(sb,
	    "local mt = getmetatable('')\n"
	    "assert(type(mt) == 'table' and mt.__index.upper('b') == 'B')\n"
	    "mt.__index = {upper = function() return 'pwned' end}\n"
	    "local ok, e = pcall(function()\n"
	    "  getmetatable('').__index.upper = function() return 'pwned' end\n"
	    "end)\n"
	    "assert(not ok and e:find('read%-only'))\n"
	    "rawset(getmetatable('').__index, 'upper', function() return 'pwned' end)\n"
	    "string.upper = function() return 'pwned' end\n"
	    "string.rep = function() return 'pwned' end\n"
	    "assert(('a'):upper() == 'A')\n"
	    "assert(getmetatable('').__index.upper('c') == 'C')\n"
	    "assert(not pcall(setmetatable, '', {}))\n");
	/* Another script of the same state: string methods are intact. */
	EXPECT_OK(sb, "assert(('a'):upper() == 'A' and ('x'):rep(2) == 'xx')");
	EXPECT_FAIL(sb, "return ('x'):rep(1e9)", "string.rep: result longer");
}

static void test_coroutine_resume(void **state)
{
	struct sb_lua *sb = *state;
	lua_State *L = sb_lua_state(sb), *co;
	char err[1024];
	int n = -1;

	EXPECT_OK(sb, "function gen(a)\n"
	    "  local b = coroutine.yield(a + 1)\n"
	    "  local c = coroutine.yield(b * 2)\n"
	    "  return c .. '!'\n"
	    "end\n"
	    "function bad() coroutine.yield(1)\n error('late') end\n"
	    "function spin() coroutine.yield(1) while true do end end\n");
	co = lua_newthread(L);
	assert_ptr_equal(sb_lua_from(co), sb);
	push_global(sb, "gen");
	lua_xmove(L, co, 1);
	lua_pushinteger(co, 1);
	assert_int_equal(sb_lua_resume(sb, co, 1, &n, err, sizeof(err)), LUA_YIELD);
	assert_int_equal(n, 1);
	assert_int_equal(lua_tointeger(co, -1), 2);
	lua_pop(co, n);
	lua_pushinteger(co, 5);
	assert_int_equal(sb_lua_resume(sb, co, 1, &n, err, sizeof(err)), LUA_YIELD);
	assert_int_equal(lua_tointeger(co, -1), 10);
	lua_pop(co, n);
	lua_pushstring(co, "end");
	assert_int_equal(sb_lua_resume(sb, co, 1, &n, err, sizeof(err)), LUA_OK);
	assert_int_equal(n, 1);
	assert_string_equal(lua_tostring(co, -1), "end!");
	lua_pop(co, n);
	assert_int_equal(sb_lua_resume(sb, co, 0, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot resume dead coroutine"));
	lua_pop(L, 1);

	/* An error after a yield: location and the coroutine's traceback. */
	co = lua_newthread(L);
	push_global(sb, "bad");
	lua_xmove(L, co, 1);
	assert_int_equal(sb_lua_resume(sb, co, 0, &n, err, sizeof(err)), LUA_YIELD);
	lua_pop(co, n);
	assert_int_equal(sb_lua_resume(sb, co, 0, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.lua:7: late\nstack traceback:"));
	assert_int_equal(lua_status(co), LUA_OK);	/* dead, reset */
	lua_pop(L, 1);

	/* The budget applies per resume, and overrunning it kills the coroutine. */
	co = lua_newthread(L);
	push_global(sb, "spin");
	lua_xmove(L, co, 1);
	assert_int_equal(sb_lua_resume(sb, co, 0, &n, err, sizeof(err)), LUA_YIELD);
	lua_pop(co, n);
	assert_int_equal(sb_lua_resume(sb, co, 0, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.lua:8: script exceeded its instruction limit"));
	lua_pop(L, 1);
	EXPECT_OK(sb, "x = 1");
}

static void test_script_coroutine_loop_stopped(void **state)
{
	struct sb_lua *sb = *state;

	EXPECT_FAIL(sb, "coroutine.wrap(function() while true do end end)()",
	    "instruction limit");
	EXPECT_FAIL(sb, "local co = coroutine.create(function() while true do end end)\n"
	    "return coroutine.resume(co)", "instruction limit");
	EXPECT_FAIL(sb, "while true do\n"
	    "  coroutine.resume(coroutine.create(function() while true do end end))\n"
	    "end", "instruction limit");
	EXPECT_FAIL(sb, "local co = coroutine.wrap(function()\n"
	    "  local inner = coroutine.wrap(function() while true do end end)\n"
	    "  while true do pcall(inner) end\n"
	    "end)\n"
	    "while true do pcall(co) end", "instruction limit");
	/* A coroutine made in one call and resumed in the next one. */
	EXPECT_OK(sb, "saved = coroutine.create(function() coroutine.yield() while true do end end)\n"
	    "coroutine.resume(saved)");
	EXPECT_FAIL(sb, "coroutine.resume(saved)", "instruction limit");
	EXPECT_OK(sb, "assert(coroutine.wrap(function() coroutine.yield(1) end)() == 1)");
}

/*
 * The limit error is raised inside the count hook, and Lua keeps hooks off
 * until the error is caught: script code it would run before that (an xpcall
 * handler, the __close handlers of a coroutine the error killed) must not run
 * unhooked, or it could loop for ever.
 */
static void test_no_unhooked_code_after_limit(void **state)
{
	struct sb_lua *sb = *state;
	lua_State *L = sb_lua_state(sb), *co;
	char err[512];
	int n;

	EXPECT_FAIL(sb, "local spin = function() while true do end end\n"
	    "while true do xpcall(spin, spin) end", "instruction limit");
	EXPECT_OK(sb, "bad = setmetatable({}, {__close = function() while true do end end})\n"
	    "function closer() local x <close> = bad while true do end end");
	EXPECT_FAIL(sb, "coroutine.wrap(closer)()", "instruction limit");
	EXPECT_FAIL(sb, "local co = coroutine.create(closer)\n"
	    "coroutine.resume(co) coroutine.close(co)", "instruction limit");
	EXPECT_FAIL(sb, "saved = coroutine.create(closer) coroutine.resume(saved)",
	    "instruction limit");
	EXPECT_OK(sb, "assert(not coroutine.close(saved))");
	co = lua_newthread(L);
	push_global(sb, "closer");
	lua_xmove(L, co, 1);
	assert_int_equal(sb_lua_resume(sb, co, 0, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "instruction limit"));
	lua_pop(L, 1);

	/* Outside that case, xpcall, wrap and close behave as Lua's own. */
	EXPECT_OK(sb, "local closed = 0\n"
	    "local mark = setmetatable({}, {__close = function() closed = closed + 1 end})\n"
	    "local ok, e = pcall(coroutine.wrap(function() local x <close> = mark error('x') end))\n"
	    "assert(not ok and e == 't.lua:3: x' and closed == 1)\n"
	    "local co = coroutine.create(function() local x <close> = mark coroutine.yield() end)\n"
	    "coroutine.resume(co) assert(coroutine.close(co) and closed == 2)\n"
	    "local ok2, m = xpcall(function() error('boom') end, function(m) return 'got ' .. m end)\n"
	    "assert(not ok2 and m == 'got t.lua:7: boom')\n"
	    "assert(select('#', xpcall(function() return 1, 2 end, print)) == 3)\n"
	    "local w = coroutine.wrap(function()\n"
	    "  return xpcall(function() coroutine.yield(1) return 2 end, print)\n"
	    "end)\n"
	    "assert(w() == 1) local a, b = w() assert(a == true and b == 2)\n");
}

static void test_budget_resets_per_call(void **state)
{
	struct sb_lua *sb = *state;	/* 1,000,000 instructions per call */
	lua_State *L = sb_lua_state(sb);
	char err[512];
	int i;

	/* An empty numeric for runs one instruction per iteration. */
	EXPECT_OK(sb, "function spin(n) for i = 1, n do end end");
	for (i = 0; i < 2; i++) {
		push_global(sb, "spin");
		lua_pushinteger(L, 600000);
		if (sb_lua_call(sb, 1, 0, err, sizeof(err)) != 0)
			fail_msg("call %d: %s", i, err);
	}
	push_global(sb, "spin");
	lua_pushinteger(L, 1200000);
	assert_int_equal(sb_lua_call(sb, 1, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "instruction limit (1000000 instructions)"));
	assert_int_equal(lua_gettop(L), 0);
}

static void test_bounded_helpers(void **state)
{
	struct sb_lua *sb = new_sb(0, 0, 1000000, 1000);

	(void)state;
	EXPECT_FAIL(sb, "return (('x'):rep(600)):gsub('x', 'yy')", "string.gsub: result longer");
	EXPECT_FAIL(sb, "return string.format('%s%s', ('x'):rep(600), ('x'):rep(600))",
	    "string.format: result longer");
	EXPECT_FAIL(sb, "return table.concat({('x'):rep(600), ('x'):rep(600)})",
	    "table.concat: result longer");
	EXPECT_FAIL(sb, "return os.date(('%c'):rep(200))", "os.date: format longer");
	EXPECT_OK(sb, "assert(table.concat({1, 'a', 2.5}, ',') == '1,a,2.5')\n"
	    "assert(table.concat({}, ',') == '' and table.concat({'a', 'b'}, '', 2) == 'b')\n"
	    "assert(not pcall(table.concat, {{}}))\n"
	    "local t = {1, 2, 3} table.insert(t, 1, 0) table.remove(t, 2)\n"
	    "table.sort(t, function(a, b) return a > b end)\n"
	    "assert(table.concat(t) == '320')\n"
	    "assert(table.concat(table.move({1, 2}, 1, 2, 2), '') == '112')\n");

	/* A __len that lies would keep table functions shifting in C for ever. */
	EXPECT_FAIL(sb, "local t = setmetatable({}, {__len = function() return 1 << 60 end,\n"
	    "  __index = rawlen, __newindex = rawlen})\n"
	    "table.insert(t, 1, 0)", "t.lua:3: script exceeded its instruction limit");
	EXPECT_FAIL(sb, "local t = setmetatable({}, {__len = function() return 1 << 60 end,\n"
	    "  __index = rawlen, __newindex = rawlen})\n"
	    "table.remove(t, 1)", "instruction limit");
	EXPECT_FAIL(sb, "table.move({}, 1, 1 << 60, 2)", "instruction limit");
	EXPECT_FAIL(sb, "local t = setmetatable({}, {__len = function() return 1 << 30 end,\n"
	    "  __index = rawlen}) table.sort(t)", "instruction limit");
	sb_lua_free(sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_call_returns_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime_error_location, setup, teardown),
		cmocka_unit_test_setup_teardown(test_infinite_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pcall_cannot_swallow_limit, setup, teardown),
		cmocka_unit_test(test_memory_bomb),
		cmocka_unit_test(test_memory_ceiling),
		cmocka_unit_test_setup_teardown(test_string_rep_bomb, setup, teardown),
		cmocka_unit_test(test_catastrophic_pattern),
		cmocka_unit_test_setup_teardown(test_patterns_still_work, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_as_lstrlib, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_recursion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forbidden_globals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_chunk_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_built_chunk, setup, teardown),
		cmocka_unit_test(test_prelude_bytecode_loads),
		cmocka_unit_test_setup_teardown(test_load_text_is_sandboxed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_string_metatable_protected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coroutine_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_script_coroutine_loop_stopped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_unhooked_code_after_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_resets_per_call, setup, teardown),
		cmocka_unit_test(test_bounded_helpers),
	};

	alarm(120);		/* a sandbox that fails to stop a script hangs */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
