/*
 * script.c: the Lua sandbox (see script.h).
 *
 * Owns one lua_State per struct sb_lua and everything that keeps scripts in
 * their box: the allocator (a ceiling for the state, a budget per call), the
 * count hook (an instruction budget per call), the curated global table, and
 * stand-ins for the standard functions that can do unbounded work in C, out
 * of the hook's sight: pattern matching, string.rep, table shifts.  It does
 * not know what scripts are for; dialplan.c builds the API on top.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "script.h"

#define HOOK_STEP	1000	/* instructions between two hook calls */
#define MAX_DEPTH	8	/* nested calls (script -> C -> script ...) */
#define TB_FRAMES	5	/* traceback lines kept in error messages */
#define DATE_FMT_MAX	256	/* longest os.date format */
#define PM_DEPTH	200	/* lstrlib.c's MAXCCALLS */
#define PM_CAPTURES	32	/* lstrlib.c's LUA_MAXCAPTURES */
#define PM_OPEN		(-1)	/* capture not closed yet */
#define PM_POS		(-2)	/* position capture "()" */
#define UC(c)		((unsigned char)(c))

/* The allocator's pools (see alloc): blocks up to POOL_MAX bytes in
 * classes POOL_GRAIN apart, at most POOL_KEEP bytes kept free per state.
 * Under AddressSanitizer every block goes to malloc, so that it still
 * sees a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_ON		0
#else
#define POOL_ON		1
#endif
#define POOL_MAX	512
#define POOL_GRAIN	16
#define POOL_KEEP	((size_t)1 << 20)
#define POOL_CLASS(n)	(((n) - 1) / POOL_GRAIN)	/* n in 1..POOL_MAX */
#define POOL_SIZE(c)	(((size_t)(c) + 1) * POOL_GRAIN)

struct sb_lua {
	lua_State		*L;
	struct sb_lua_limits	 lim;
	size_t			 used;		/* bytes the state holds */
	size_t			 call_used;	/* bytes allocated by this call */
	size_t			 mem_hit;	/* the limit that refused memory */
	long			 instr;		/* instructions run by this call */
	int			 step;		/* hook interval within budget */
	int			 depth;		/* calls in progress (nested) */
	int			 instr_hit;	/* budget spent: raise at every hook */
	int			 relaxed;	/* in msgh: call budget waived */
	void			*pool[POOL_MAX / POOL_GRAIN + 1];	/* free blocks by class */
	size_t			 pooled;	/* bytes in them */
};

static void hook(lua_State *, lua_Debug *);

/*
 * Blocks of Lua's objects.  A command makes and drops a few dozen small
 * objects (tables, their parts, strings, closures), and the collector
 * frees them in bursts that overflow malloc's per-thread cache, where a
 * free costs several times what it costs here: blocks up to POOL_MAX bytes
 * are kept on free lists by size class instead and handed out again.  A
 * block of a class is always at least that class's size, so a block can
 * go back to the list of the size Lua gives when it frees it.
 */
static void *
block_get(struct sb_lua *sb, size_t n)
{
	void *p;

	if (!POOL_ON || n > POOL_MAX)
		return malloc(n);
	if ((p = sb->pool[POOL_CLASS(n)]) == NULL)
		return malloc(POOL_SIZE(POOL_CLASS(n)));
	sb->pool[POOL_CLASS(n)] = *(void **)p;
	sb->pooled -= POOL_SIZE(POOL_CLASS(n));
	return p;
}

static void
block_put(struct sb_lua *sb, void *p, size_t n)
{
	if (p == NULL)
		return;
	if (!POOL_ON || n > POOL_MAX || sb->pooled + POOL_SIZE(POOL_CLASS(n)) > POOL_KEEP) {
		free(p);
		return;
	}
	*(void **)p = sb->pool[POOL_CLASS(n)];
	sb->pool[POOL_CLASS(n)] = p;
	sb->pooled += POOL_SIZE(POOL_CLASS(n));
}

/* Resize block p of old bytes (0: none) to n; NULL if that failed. */
static void *
block_resize(struct sb_lua *sb, void *p, size_t old, size_t n)
{
	void *q;

	if (old == 0)
		return block_get(sb, n);
	if (!POOL_ON || (old > POOL_MAX && n > POOL_MAX))
		return realloc(p, n);
	if (old <= POOL_MAX && n <= POOL_MAX && POOL_CLASS(old) == POOL_CLASS(n))
		return p;
	if ((q = block_get(sb, n)) == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	block_put(sb, p, old);
	return q;
}

static void
pool_free(struct sb_lua *sb)
{
	for (size_t c = 0; c < sizeof(sb->pool) / sizeof(sb->pool[0]); c++)
		while (sb->pool[c]) {
			void *p = sb->pool[c];

			sb->pool[c] = *(void **)p;
			free(p);
		}
	sb->pooled = 0;
}

/*
 * The allocator.  Growth is refused past the state's ceiling and, during a
 * call, past the call's budget; frees do not refund the budget, so a script
 * cannot churn through gigabytes a little at a time.  Shrinking and freeing
 * always succeed, as Lua requires.  A refusal makes Lua raise its
 * preallocated "not enough memory", which report() translates.
 */
static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct sb_lua *sb = ud;
	size_t old = ptr ? osize : 0, grow;
	void *p;

	if (nsize == 0) {
		block_put(sb, ptr, old);
		sb->used -= old;
		return NULL;
	}
	if (nsize <= old) {
		sb->used -= old - nsize;
		p = block_resize(sb, ptr, old, nsize);
		return p ? p : ptr;	/* a failed shrink keeps the block */
	}
	grow = nsize - old;
	if (grow > sb->lim.mem_max || sb->used > sb->lim.mem_max - grow) {
		sb->mem_hit = sb->lim.mem_max;
		return NULL;
	}
	if (sb->depth > 0 && !sb->relaxed && (sb->call_used >= sb->lim.call_alloc ||
	    grow > sb->lim.call_alloc - sb->call_used)) {
		sb->mem_hit = sb->lim.call_alloc;
		return NULL;
	}
	if ((p = block_resize(sb, ptr, old, nsize)) == NULL)
		return NULL;
	sb->used += grow;
	if (sb->depth > 0)
		sb->call_used += grow;
	return p;
}

/*
 * Raise the instruction-limit error, located at stack level `level'.  From
 * then on this thread's hook fires at every instruction and raises again, so
 * a script that catches the error with pcall is unwound at its very next
 * instruction; with a coarser step the hook could keep firing inside the
 * pcall'd function, and the loop around the pcall would never end.
 */
static int instr_error(lua_State *L, struct sb_lua *sb, int level)
{
	lua_Debug ar;
	char where[128] = "";

	if (sb->depth > 0) {
		sb->instr_hit = 1;
		lua_sethook(L, hook, LUA_MASKCOUNT, 1);
	}
	if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
		snprintf(where, sizeof(where), "%s:%d: ", ar.short_src, ar.currentline);
	lua_pushfstring(L, "%sscript exceeded its instruction limit (%I instructions)",
	    where, (lua_Integer)sb->lim.call_instr);
	return lua_error(L);
}

/*
 * The count hook.  Every thread has it: sb_lua_new sets it on the main thread
 * and lua_newthread copies the creator's hook into a new thread, so the
 * coroutines scripts create are counted too (the tests check both
 * coroutine.create and coroutine.wrap).  Outside a call it does nothing.
 */
static void hook(lua_State *L, lua_Debug *ar)
{
	struct sb_lua *sb = sb_lua_from(L);
	int step = lua_gethookcount(L);

	(void)ar;
	if (sb->depth == 0 || !sb->instr_hit) {
		if (step != sb->step)
			lua_sethook(L, hook, LUA_MASKCOUNT, sb->step);
		if (sb->depth == 0 || (sb->instr += step) <= sb->lim.call_instr)
			return;
	}
	instr_error(L, sb, 0);
}

/* Instructions left to this call (outside a call: to one C operation). */
static long budget(const struct sb_lua *sb)
{
	if (sb->depth == 0)
		return sb->lim.call_instr;
	return sb->instr_hit ? 0 : sb->lim.call_instr - sb->instr;
}

/* Count `work' to be done in C against the budget, before doing it. */
static void charge(lua_State *L, double work)
{
	struct sb_lua *sb = sb_lua_from(L);

	if (work > (double)budget(sb))
		instr_error(L, sb, 1);
	if (work > 0 && sb->depth > 0)
		sb->instr += (long)work;
}

/* Does msg start with a position, "chunk:line: "? */
static int located(const char *msg)
{
	const char *p = strstr(msg, ": "), *d = p;

	while (d != NULL && d > msg && isdigit(UC(d[-1])))
		d--;
	return d != NULL && d < p && d > msg && d[-1] == ':';
}

/*
 * Call upvalue 1, the wrapped original, with our arguments; return its
 * results.  Its own errors get the script's position, as they would have had
 * the script called it directly.
 */
static int orig(lua_State *L)
{
	const char *msg;
	int st;

	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	if ((st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0)) == LUA_OK)
		return lua_gettop(L);
	if (st == LUA_ERRRUN && (msg = lua_tostring(L, -1)) != NULL && !located(msg)) {
		luaL_where(L, 1);
		lua_insert(L, -2);
		lua_concat(L, 2);
	}
	return lua_error(L);
}

/*
 * Pattern matching runs in C and Lua's backtracking matcher is exponential:
 * ("a"):rep(30):match(("a*"):rep(20).."b") would run for ages, and no bound
 * on the subject's length prevents that.  So before each find, match, gmatch
 * and gsub we dry-run the same search with a step counter (the pm_* functions
 * follow lstrlib.c's matcher step for step, so they do the same work) and
 * charge the steps to the instruction budget; only a search that fits is
 * handed to the real function.  On a malformed pattern the dry run just
 * stops, and the real function raises Lua's own message.
 */
struct pm {
	const char	*s0, *se, *pe;	/* subject start and end, pattern end */
	long		 left;		/* steps left */
	int		 depth, level, stop;
	struct { const char *init; ptrdiff_t len; } cap[PM_CAPTURES];
};

static const char *pm_match(struct pm *, const char *, const char *);

static const char *pm_fail(struct pm *m)
{
	m->stop = 1;
	return NULL;
}

static int pm_class(int c, int cl)
{
	int r;

	switch (tolower(cl)) {
	case 'a': r = isalpha(c); break;
	case 'c': r = iscntrl(c); break;
	case 'd': r = isdigit(c); break;
	case 'g': r = isgraph(c); break;
	case 'l': r = islower(c); break;
	case 'p': r = ispunct(c); break;
	case 's': r = isspace(c); break;
	case 'u': r = isupper(c); break;
	case 'w': r = isalnum(c); break;
	case 'x': r = isxdigit(c); break;
	case 'z': r = c == 0; break;
	default: return cl == c;
	}
	return islower(cl) ? r : !r;
}

static const char *pm_class_end(struct pm *m, const char *p)
{
	if (*p == '%')
		return p + 1 >= m->pe ? pm_fail(m) : p + 2;
	if (*p++ != '[')
		return p;
	if (*p == '^')
		p++;
	do {
		if (p >= m->pe)
			return pm_fail(m);
		if (*p++ == '%' && p < m->pe)
			p++;
	} while (*p != ']');
	return p + 1;
}

static int pm_bracket(int c, const char *p, const char *ec)
{
	int sig = 1;

	if (p[1] == '^') {
		sig = 0;
		p++;
	}
	while (++p < ec) {
		if (*p == '%') {
			if (pm_class(c, UC(*++p)))
				return sig;
		} else if (p[1] == '-' && p + 2 < ec) {
			p += 2;
			if (UC(p[-2]) <= c && c <= UC(*p))
				return sig;
		} else if (UC(*p) == c)
			return sig;
	}
	return !sig;
}

static int pm_single(struct pm *m, const char *s, const char *p, const char *ep)
{
	if (s >= m->se)
		return 0;
	switch (*p) {
	case '.': return 1;
	case '%': return pm_class(UC(*s), UC(p[1]));
	case '[': return pm_bracket(UC(*s), p, ep - 1);
	default: return UC(*p) == UC(*s);
	}
}

static const char *pm_balance(struct pm *m, const char *s, const char *p)
{
	int cont = 1;

	if (p >= m->pe - 1)
		return pm_fail(m);
	if (*s != *p)
		return NULL;
	while (++s < m->se) {
		m->left--;
		if (*s == p[1]) {
			if (--cont == 0)
				return s + 1;
		} else if (*s == *p)
			cont++;
	}
	return NULL;
}

static const char *pm_max(struct pm *m, const char *s, const char *p, const char *ep)
{
	ptrdiff_t i = 0;
	const char *r;

	while (pm_single(m, s + i, p, ep))
		i++;
	m->left -= (long)i;
	for (; i >= 0 && !m->stop; i--)
		if ((r = pm_match(m, s + i, ep + 1)) != NULL)
			return r;
	return NULL;
}

static const char *pm_min(struct pm *m, const char *s, const char *p, const char *ep)
{
	const char *r;

	for (;; s++)
		if ((r = pm_match(m, s, ep + 1)) != NULL || m->stop || !pm_single(m, s, p, ep))
			return r;
}

static const char *pm_capture(struct pm *m, const char *s, const char *p, ptrdiff_t what)
{
	const char *r;

	if (m->level >= PM_CAPTURES)
		return pm_fail(m);
	m->cap[m->level].init = s;
	m->cap[m->level++].len = what;
	if ((r = pm_match(m, s, p)) == NULL)
		m->level--;
	return r;
}

static const char *pm_close(struct pm *m, const char *s, const char *p)
{
	const char *r;
	int l = m->level - 1;

	while (l >= 0 && m->cap[l].len != PM_OPEN)
		l--;
	if (l < 0)
		return pm_fail(m);
	m->cap[l].len = s - m->cap[l].init;
	if ((r = pm_match(m, s, p)) == NULL)
		m->cap[l].len = PM_OPEN;
	return r;
}

/* A back reference %1-%9 at p (lstrlib's match_capture). */
static const char *pm_backref(struct pm *m, const char *s, const char *p)
{
	int l = p[1] - '1';
	size_t len;

	if (l < 0 || l >= m->level || m->cap[l].len == PM_OPEN)
		return pm_fail(m);
	if (m->cap[l].len < 0)
		return NULL;		/* a position never matches text */
	len = (size_t)m->cap[l].len;
	m->left -= (long)(len / 16);
	if ((size_t)(m->se - s) >= len && memcmp(m->cap[l].init, s, len) == 0)
		return s + len;
	return NULL;
}

static const char *pm_match(struct pm *m, const char *s, const char *p)
{
	const char *ep, *r;

	if (m->depth-- == 0)
		return pm_fail(m);	/* the real one says "pattern too complex" */
again:
	if (--m->left < 0 || m->stop) {
		s = pm_fail(m);
	} else if (p == m->pe) {
		;			/* the whole pattern matched */
	} else if (*p == '(') {
		s = pm_capture(m, s, p + 1 + (p[1] == ')'), p[1] == ')' ? PM_POS : PM_OPEN);
	} else if (*p == ')') {
		s = pm_close(m, s, p + 1);
	} else if (*p == '$' && p + 1 == m->pe) {
		s = s == m->se ? s : NULL;
	} else if (*p == '%' && p[1] == 'b') {
		if ((s = pm_balance(m, s, p + 2)) != NULL) {
			p += 4;
			goto again;
		}
	} else if (*p == '%' && p[1] == 'f') {
		p += 2;
		if (*p != '[' || (ep = pm_class_end(m, p)) == NULL)
			s = pm_fail(m);
		else if (pm_bracket(s == m->s0 ? 0 : UC(s[-1]), p, ep - 1) ||
		    !pm_bracket(UC(*s), p, ep - 1))
			s = NULL;
		else {
			p = ep;
			goto again;
		}
	} else if (*p == '%' && isdigit(UC(p[1]))) {
		if ((s = pm_backref(m, s, p)) != NULL) {
			p += 2;
			goto again;
		}
	} else if ((ep = pm_class_end(m, p)) == NULL) {
		s = NULL;
	} else if (!pm_single(m, s, p, ep)) {
		if (*ep == '*' || *ep == '?' || *ep == '-') {
			p = ep + 1;
			goto again;
		}
		s = NULL;
	} else if (*ep == '?') {
		if ((r = pm_match(m, s + 1, ep + 1)) == NULL) {
			p = ep + 1;
			goto again;
		}
		s = r;
	} else if (*ep == '+' || *ep == '*') {
		s = pm_max(m, *ep == '+' ? s + 1 : s, p, ep);
	} else if (*ep == '-') {
		s = pm_min(m, s, p, ep);
	} else {
		s++;
		p = ep;
		goto again;
	}
	m->depth++;
	return s;
}

/*
 * Dry-run the search loop of find/match ('f'), gmatch ('g') or gsub ('s')
 * from src, as lstrlib.c's str_find_aux, gmatch_aux and str_gsub run it.
 */
static void pm_search(struct pm *m, const char *src, const char *p, int kind,
                      lua_Integer max_s)
{
	const char *e, *last = NULL;
	int anchor = kind != 'g' && *p == '^';
	lua_Integer n = 0;

	for (p += anchor; src <= m->se && !m->stop && n < max_s; ) {
		m->level = 0;
		m->depth = PM_DEPTH;
		e = pm_match(m, src, p);
		if (kind == 'f' && (e != NULL || anchor))
			return;
		if (kind != 'f' && e != NULL && e != last) {
			n += kind == 's';
			src = last = e;
		} else if (kind != 's' || src < m->se)
			src++;
		else
			return;
		if (kind == 's' && anchor)
			return;
	}
}

/* find, match, gmatch, gsub: check the subject's size and the search's cost. */
static int pattern_call(lua_State *L, int kind)
{
	struct sb_lua *sb = sb_lua_from(L);
	size_t ls, lp, init = 0, i, l1;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	lua_Integer pos, max_s = LUA_MAXINTEGER;
	int plain = kind == 'f' && lua_toboolean(L, 4);
	struct pm m;

	if (ls > sb->lim.str_max)
		return luaL_error(L, "subject too long for pattern matching (%I bytes, "
		    "limit %I)", (lua_Integer)ls, (lua_Integer)sb->lim.str_max);
	if (kind == 's')
		max_s = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
	else {			/* lstrlib's posrelatI */
		pos = luaL_optinteger(L, 3, 1);
		init = pos > 0 ? (size_t)pos - 1 : pos == 0 || pos < -(lua_Integer)ls ? 0 :
		    ls + (size_t)pos;
		init = init > ls ? ls + 1 : init;
	}
	for (i = 0; kind == 'f' && !plain && i < lp; i++)
		if (p[i] != '\0' && strchr("^$*+?.([%-", p[i]))
			break;
	if (kind == 'f' && (plain || i == lp)) {
		/* a plain search: memchr, and memcmp at each candidate */
		l1 = init > ls ? 0 : ls - init;
		if (lp > 0 && lp <= l1)
			charge(L, ((double)(l1 - lp + 1) * (double)lp + (double)l1) / 64);
	} else {
		memset(&m, 0, sizeof(m));
		m.s0 = s;
		m.se = s + ls;
		m.pe = p + lp;
		m.left = budget(sb);
		pm_search(&m, s + init, p, kind == 'm' ? 'f' : kind, max_s);
		if (m.left < 0)
			instr_error(L, sb, 1);
		charge(L, (double)(budget(sb) - m.left));
	}
	orig(L);
	if (kind == 's' && lua_rawlen(L, 1) > sb->lim.str_max)
		return luaL_error(L, "string.gsub: result longer than %I bytes",
		    (lua_Integer)sb->lim.str_max);
	return lua_gettop(L);
}

static int s_find(lua_State *L) { return pattern_call(L, 'f'); }
static int s_match(lua_State *L) { return pattern_call(L, 'm'); }
static int s_gmatch(lua_State *L) { return pattern_call(L, 'g'); }
static int s_gsub(lua_State *L) { return pattern_call(L, 's'); }

static int s_rep(lua_State *L)
{
	size_t l, lsep, max = sb_lua_from(L)->lim.str_max;
	lua_Integer n;

	luaL_checklstring(L, 1, &l);
	n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	if (n <= 0 || l + lsep == 0) {	/* Lua 5.4.4 would loop n times */
		lua_pushliteral(L, "");
		return 1;
	}
	/* n*l + (n-1)*lsep <= max, without overflow */
	if (l + lsep < l || (lua_Unsigned)n > (max + lsep) / (l + lsep))
		return luaL_error(L, "string.rep: result longer than %I bytes", (lua_Integer)max);
	return orig(L);
}

/*
 * string.format's plain cases, "%s" of a string and "%d" of an integer
 * (what nearly every reply is made of), built here: the same bytes as
 * lstrlib's str_format, without the protected call orig makes, the
 * metamethod look-up per "%s" and a printf per "%d".  0 (the stack
 * untouched) for anything else: flags, widths, other conversions, other
 * types, a missing argument; the real function does those and says what
 * is wrong.
 */
/* Decimal v, ending at end; returns its start. */
static char *fmt_int(char *end, lua_Integer v)
{
	lua_Unsigned u = v < 0 ? 0u - (lua_Unsigned)v : (lua_Unsigned)v;

	do
		*--end = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--end = '-';
	return end;
}

/*
 * format_plain's conversions, checked and done in one pass into a buffer
 * on the C stack, as most results fit: no luaL_Buffer, one string made at
 * the end.  1: done (pushed); 0: a format that is not ours (lstrlib's
 * then); -1: ours, but longer than the buffer.  Nothing pushed but for 1.
 */
static int format_short(lua_State *L, const char *f, const char *fe, int top)
{
	char buf[256], *o = buf, *end = buf + sizeof(buf), num[24], *n;
	const char *s;
	size_t ls;
	int arg = 1, fits = 1;

	while (f < fe) {
		if (*f != '%' || (f + 1 < fe && f[1] == '%')) {
			if (fits && o < end)
				*o++ = *f;
			else
				fits = 0;
			f += *f == '%' ? 2 : 1;
			continue;
		}
		if (f + 1 == fe || ++arg > top)
			return 0;
		if (f[1] == 's' && lua_type(L, arg) == LUA_TSTRING)
			s = lua_tolstring(L, arg, &ls);
		else if (f[1] == 'd' && lua_isinteger(L, arg)) {
			s = n = fmt_int(num + sizeof(num), lua_tointeger(L, arg));
			ls = (size_t)(num + sizeof(num) - n);
		} else
			return 0;
		if (fits && ls <= (size_t)(end - o)) {
			memcpy(o, s, ls);
			o += ls;
		} else
			fits = 0;
		f += 2;
	}
	if (!fits)
		return -1;
	lua_pushlstring(L, buf, (size_t)(o - buf));
	return 1;
}

static int format_plain(lua_State *L)
{
	size_t lf, ls;
	const char *f, *fe, *p, *s;
	int arg;
	luaL_Buffer b;

	if (lua_type(L, 1) != LUA_TSTRING)
		return 0;
	f = lua_tolstring(L, 1, &lf);
	fe = f + lf;
	if ((arg = format_short(L, f, fe, lua_gettop(L))) >= 0)
		return arg;
	/* Ours, and checked: the long way, through a luaL_Buffer. */
	luaL_buffinit(L, &b);
	for (p = f, arg = 1; p < fe; ) {
		const char *q = memchr(p, '%', (size_t)(fe - p));
		char num[24], *n = num + sizeof(num);

		if (q == NULL) {
			luaL_addlstring(&b, p, (size_t)(fe - p));
			break;
		}
		luaL_addlstring(&b, p, (size_t)(q - p));
		p = q + 2;
		if (q[1] == '%') {
			luaL_addchar(&b, '%');
		} else if (q[1] == 's') {
			s = lua_tolstring(L, ++arg, &ls);
			luaL_addlstring(&b, s, ls);
		} else {
			n = fmt_int(n, lua_tointeger(L, ++arg));
			luaL_addlstring(&b, n, (size_t)(num + sizeof(num) - n));
		}
	}
	luaL_pushresult(&b);
	return 1;
}

static int s_format(lua_State *L)
{
	size_t max = sb_lua_from(L)->lim.str_max;

	if (!format_plain(L))
		orig(L);
	if (lua_rawlen(L, -1) > max)
		return luaL_error(L, "string.format: result longer than %I bytes", (lua_Integer)max);
	return 1;
}

/*
 * table.insert, remove, move, sort and concat loop in C, and a table whose
 * __len claims 2^60 elements would keep them busy for ever: charge the loop
 * to the budget first (so __len runs twice).  concat is also bounded by
 * str_max.
 */
static int t_bounded(lua_State *L)
{
	int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
	size_t max = sb_lua_from(L)->lim.str_max;
	double n, bits = 1, x;

	if (kind == 'm')
		charge(L, (double)luaL_checkinteger(L, 3) - (double)luaL_checkinteger(L, 2) + 1);
	else if (lua_type(L, 1) == LUA_TTABLE) {	/* else the original complains */
		n = (double)luaL_len(L, 1);
		if (kind == 'i' && lua_gettop(L) == 3)
			charge(L, n + 1 - (double)luaL_checkinteger(L, 2));
		else if (kind == 'r' && !lua_isnoneornil(L, 2))
			charge(L, n - (double)luaL_checkinteger(L, 2));
		else if (kind == 'c')
			charge(L, (double)luaL_optinteger(L, 4, (lua_Integer)n) -
			    (double)luaL_optinteger(L, 3, 1) + 1);
		else if (kind == 's') {
			for (x = n; x > 1; x /= 2)
				bits++;
			charge(L, n * bits);
		}
	}
	orig(L);
	if (kind == 'c' && lua_rawlen(L, -1) > max)
		return luaL_error(L, "table.concat: result longer than %I bytes", (lua_Integer)max);
	return lua_gettop(L);
}

static int os_date(lua_State *L)
{
	size_t l = 0;

	luaL_optlstring(L, 1, "%c", &l);
	if (l > DATE_FMT_MAX)
		return luaL_error(L, "os.date: format longer than %d bytes", DATE_FMT_MAX);
	return orig(L);
}

/*
 * The limit error is raised inside the count hook, and Lua turns hooks back
 * on only where the error is caught.  Until then, script code would run
 * unhooked: an xpcall message handler, and the __close handlers of a
 * coroutine the error killed (a dead coroutine is never "caught").  So
 * xpcall skips the script's handler once the budget is spent, and a
 * coroutine killed that way (recognised by the step-1 hook instr_error gave
 * it) is never closed: its to-be-closed values become plain garbage.
 */
static int doomed(lua_State *co)
{
	int st = lua_status(co);

	return st != LUA_OK && st != LUA_YIELD && lua_gethookcount(co) == 1;
}

static int xp_handler(lua_State *L)
{
	if (sb_lua_from(L)->instr_hit)
		return 1;
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static int xp_finish(lua_State *L, int st, lua_KContext extra)
{
	if (st == LUA_OK || st == LUA_YIELD)
		return lua_gettop(L) - (int)extra;
	lua_pushboolean(L, 0);
	lua_pushvalue(L, -2);
	return 2;
}

static int b_xpcall(lua_State *L)	/* lbaselib's, with xp_handler */
{
	int n = lua_gettop(L);

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, xp_handler, 1);
	lua_replace(L, 2);
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2);
	return xp_finish(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xp_finish), 2);
}

static int co_close(lua_State *L)
{
	lua_State *co = lua_tothread(L, 1);

	if (co == NULL || !doomed(co))
		return orig(L);
	lua_pushboolean(L, 0);
	if (lua_gettop(co) > 0)
		lua_xmove(co, L, 1);	/* its error, as close would return it */
	else
		lua_pushnil(L);
	return 2;
}

/* What coroutine.wrap returns: lcorolib's auxwrap, over coroutine.resume. */
static int co_wrapped(lua_State *L)
{
	lua_State *co = lua_tothread(L, lua_upvalueindex(1));
	int st;

	lua_pushvalue(L, lua_upvalueindex(2));
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_rotate(L, 1, 2);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	if (lua_toboolean(L, 1))
		return lua_gettop(L) - 1;
	st = lua_status(co);
	if (st != LUA_OK && st != LUA_YIELD && !doomed(co)) {
		st = lua_resetthread(co);	/* close its to-be-closed variables */
		lua_xmove(co, L, 1);
	}
	if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
		luaL_where(L, 1);
		lua_insert(L, -2);
		lua_concat(L, 2);
	}
	return lua_error(L);
}

static int co_wrap(lua_State *L)
{
	lua_State *co;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	co = lua_newthread(L);
	lua_pushvalue(L, 1);
	lua_xmove(L, co, 1);
	lua_pushvalue(L, lua_upvalueindex(1));	/* coroutine.resume */
	lua_pushcclosure(L, co_wrapped, 2);
	return 1;
}

static int b_print(lua_State *L)
{
	(void)L;		/* scripts have nowhere to print to */
	return 0;
}

static int b_refuse(lua_State *L)
{
	return luaL_error(L, "attempt to modify a read-only table");
}

/* setmetatable, refusing __gc: Lua runs finalizers with hooks off. */
static int b_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_pushliteral(L, "__gc");
	if (t == LUA_TTABLE && lua_rawget(L, 2) != LUA_TNIL)
		return luaL_error(L, "__gc metamethods are not allowed");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/*
 * getmetatable.  For a string it returns fresh tables each time, {__index =
 * a read-only view of the string methods} (upvalue 1 is the view's
 * metatable), so what a script does to them, even with rawset, reaches no
 * other string.  The real string metatable stays out of reach.
 */
static int b_getmetatable(lua_State *L)
{
	luaL_checkany(L, 1);
	if (lua_type(L, 1) == LUA_TSTRING) {
		lua_newtable(L);
		lua_newtable(L);
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_setmetatable(L, -2);
		lua_setfield(L, -2, "__index");
	} else if (!lua_getmetatable(L, 1))
		lua_pushnil(L);
	else
		luaL_getmetafield(L, 1, "__metatable");
	return 1;
}

/* load: text only, and _ENV is the sandbox unless the caller gives one. */
static int b_load(lua_State *L)
{
	int n = lua_gettop(L);

	if (lua_type(L, 1) == LUA_TSTRING && *lua_tostring(L, 1) == LUA_SIGNATURE[0]) {
		luaL_pushfail(L);
		lua_pushliteral(L, "binary chunks are not allowed");
		return 2;
	}
	lua_settop(L, 4);
	lua_pushliteral(L, "t");
	lua_replace(L, 3);
	if (n < 4) {
		lua_pushglobaltable(L);
		lua_replace(L, 4);
	}
	return orig(L);
}

/* Replace t[name] (t on top) with fn, with upvalues the old value and up2. */
static void wrap(lua_State *L, const char *name, lua_CFunction fn, int up2)
{
	lua_getfield(L, -1, name);
	lua_pushinteger(L, up2);
	lua_pushcclosure(L, fn, 2);
	lua_setfield(L, -2, name);
}

/* Copy every field of the table at `from' into the table at `to'. */
static void merge(lua_State *L, int from, int to)
{
	from = lua_absindex(L, from);
	to = lua_absindex(L, to);
	for (lua_pushnil(L); lua_next(L, from); lua_rawset(L, to)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
	}
}

/*
 * Open a library and put a copy of it (only the names in keep, if given) in
 * the sandbox, at index 1; leave the copy on top.  The original stays in the
 * registry's LOADED table, out of reach (no debug library), where it also
 * gives Lua's argument errors their names ("bad argument #1 to 'insert'").
 */
static void lib(lua_State *L, const char *name, lua_CFunction open, const char *const *keep)
{
	luaL_requiref(L, name, open, 0);
	lua_newtable(L);
	for (; keep && *keep; keep++) {
		lua_getfield(L, -2, *keep);
		lua_setfield(L, -2, *keep);
	}
	if (keep == NULL)
		merge(L, -2, -1);
	lua_remove(L, -2);
	lua_pushvalue(L, -1);
	lua_setfield(L, 1, name);
}

/*
 * Build the sandbox's global table and make it the state's global table, so
 * that every chunk loaded in this state, by us or by C code, has it as _ENV.
 */
static int build(lua_State *L)
{
	static const char *const base[] = { "assert", "error", "ipairs", "next",
	    "pairs", "pcall", "rawequal", "rawlen", "rawget", "rawset", "select",
	    "tonumber", "tostring", "type", "_VERSION", "load", NULL };
	static const char *const os[] = { "time", "date", "clock", "difftime", NULL };

	lua_settop(L, 0);
	lua_newtable(L);					/* 1 */
	lib(L, "_G", luaopen_base, base);
	wrap(L, "load", b_load, 0);
	merge(L, 2, 1);
	lua_settop(L, 1);
	lua_pushvalue(L, 1);
	lua_setfield(L, 1, "_G");
	lua_pushcfunction(L, b_xpcall);
	lua_setfield(L, 1, "xpcall");
	lua_pushcfunction(L, b_print);
	lua_setfield(L, 1, "print");
	lua_pushcfunction(L, b_setmetatable);
	lua_setfield(L, 1, "setmetatable");

	lib(L, "string", luaopen_string, NULL);			/* 2 */
	lua_pushnil(L);
	lua_setfield(L, 2, "dump");
	wrap(L, "rep", s_rep, 0);
	wrap(L, "format", s_format, 0);
	wrap(L, "find", s_find, 0);
	wrap(L, "match", s_match, 0);
	wrap(L, "gmatch", s_gmatch, 0);
	wrap(L, "gsub", s_gsub, 0);
	/* String methods come from a private copy: `string.upper = f' stays local. */
	lua_newtable(L);					/* 3 */
	merge(L, 2, 3);
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);				/* 5 */
	lua_pushvalue(L, 3);
	lua_setfield(L, 5, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, 5, "__metatable");
	lua_createtable(L, 0, 3);		/* b_getmetatable's view */
	lua_pushvalue(L, 3);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, b_refuse);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pushcclosure(L, b_getmetatable, 1);
	lua_setfield(L, 1, "getmetatable");
	lua_settop(L, 1);

	lib(L, "table", luaopen_table, NULL);
	wrap(L, "concat", t_bounded, 'c');
	wrap(L, "insert", t_bounded, 'i');
	wrap(L, "remove", t_bounded, 'r');
	wrap(L, "move", t_bounded, 'm');
	wrap(L, "sort", t_bounded, 's');
	lib(L, "os", luaopen_os, os);
	wrap(L, "date", os_date, 0);
	lib(L, "coroutine", luaopen_coroutine, NULL);
	wrap(L, "close", co_close, 0);
	lua_getfield(L, -1, "resume");
	lua_pushcclosure(L, co_wrap, 1);
	lua_setfield(L, -2, "wrap");
	lib(L, "math", luaopen_math, NULL);
	lib(L, "utf8", luaopen_utf8, NULL);
	lua_settop(L, 1);
	lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	return 0;
}

struct sb_lua *sb_lua_new(const struct sb_lua_limits *lim)
{
	struct sb_lua *sb = calloc(1, sizeof(*sb));

	if (sb == NULL)
		return NULL;
	if (lim != NULL)
		sb->lim = *lim;
	if (sb->lim.mem_max == 0)
		sb->lim.mem_max = (size_t)64 << 20;
	if (sb->lim.call_alloc == 0)
		sb->lim.call_alloc = (size_t)16 << 20;
	if (sb->lim.call_instr <= 0)
		sb->lim.call_instr = 10000000;
	if (sb->lim.str_max == 0)
		sb->lim.str_max = (size_t)1 << 20;
	sb->step = sb->lim.call_instr < HOOK_STEP ? (int)sb->lim.call_instr : HOOK_STEP;
	if ((sb->L = lua_newstate(alloc, sb)) == NULL) {
		pool_free(sb);
		free(sb);
		return NULL;
	}
	*(struct sb_lua **)lua_getextraspace(sb->L) = sb;
	lua_pushcfunction(sb->L, build);
	if (lua_pcall(sb->L, 0, 0, 0) != LUA_OK) {
		sb_lua_free(sb);
		return NULL;
	}
	lua_sethook(sb->L, hook, LUA_MASKCOUNT, sb->step);
	/* Most of what a command allocates (its request, arguments, context,
	 * node snapshots, strings) is garbage when it returns: a generational
	 * collector frees that young and seldom walks the old dialplan. */
	lua_gc(sb->L, LUA_GCGEN, 0, 0);
	return sb;
}

void sb_lua_free(struct sb_lua *sb)
{
	if (sb == NULL)
		return;
	lua_close(sb->L);
	pool_free(sb);
	free(sb);
}

lua_State *sb_lua_state(struct sb_lua *sb)
{
	return sb->L;
}

/* lua_newthread copies the main thread's extra space into every coroutine. */
struct sb_lua *sb_lua_from(lua_State *L)
{
	return *(struct sb_lua **)lua_getextraspace(L);
}

void sb_lua_push_env(struct sb_lua *sb)
{
	lua_pushglobaltable(sb->L);
}

size_t sb_lua_mem_used(const struct sb_lua *sb)
{
	return sb->used;
}

/*
 * Message handler: Lua has already put "file:line: " in front of a string
 * error; add a traceback, which put_err trims.  The call's allocation budget
 * is waived here so that the report can be built even after a memory error;
 * the state's ceiling still holds.
 */
static int msgh(lua_State *L)
{
	struct sb_lua *sb = sb_lua_from(L);
	int t = lua_type(L, 1);
	const char *msg;

	sb->relaxed = 1;
	if (t == LUA_TSTRING || t == LUA_TNUMBER)
		msg = lua_tostring(L, 1);
	else
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	sb->relaxed = 0;
	return 1;
}

/* Protected helper of sb_lua_resume: traceback of thread 1 with message 2. */
static int co_traceback(lua_State *L)
{
	luaL_traceback(L, lua_touserdata(L, 1), lua_touserdata(L, 2), 0);
	return 1;
}

/* Copy msg to err, keeping at most TB_FRAMES lines of its traceback. */
static void put_err(char *err, size_t errlen, const char *msg)
{
	const char *q = strstr(msg, "\nstack traceback:");
	int frames = 0;

	while (q != NULL && (q = strstr(q + 1, "\n\t")) != NULL)
		if (++frames > TB_FRAMES) {
			snprintf(err, errlen, "%.*s\n\t...", (int)(q - msg), msg);
			return;
		}
	snprintf(err, errlen, "%s", msg);
}

/*
 * Fill err for a call that failed with status st, whose error object (or what
 * msgh made of it) is on top of L, or absent if st is LUA_OK or LUA_YIELD.
 * A spent budget overrides whatever the script made of it afterwards.
 */
static int report(struct sb_lua *sb, lua_State *L, int st, char *err, size_t errlen)
{
	int ok = st == LUA_OK || st == LUA_YIELD;
	const char *msg = !ok && lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;

	if (err == NULL || errlen == 0)
		return -1;
	if (sb->instr_hit && (msg == NULL || strstr(msg, "instruction limit") == NULL))
		snprintf(err, errlen, "script exceeded its instruction limit (%ld instructions)",
		    sb->lim.call_instr);
	else if (sb->mem_hit && !sb->instr_hit && (st == LUA_ERRMEM || st == LUA_ERRERR ||
	    (msg != NULL && strstr(msg, "not enough memory") != NULL)))
		snprintf(err, errlen, "script exceeded its memory limit (%zu KiB)",
		    sb->mem_hit / 1024);
	else if (msg != NULL)
		put_err(err, errlen, msg);
	else
		snprintf(err, errlen, "(error object is a %s value)", luaL_typename(L, -1));
	return -1;
}

static int seterr(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
	return -1;
}

/*
 * Open a limited call on thread L.  Nested calls (a script calling C that
 * calls back into Lua) share the outermost call's budgets; their depth is
 * capped because each level may use a full Lua C-stack allowance.
 */
static int call_begin(struct sb_lua *sb, lua_State *L, char *err, size_t errlen)
{
	if (sb->depth >= MAX_DEPTH)
		return seterr(err, errlen, "script calls nested too deeply");
	if (!lua_checkstack(sb->L, 4))
		return seterr(err, errlen, "Lua stack exhausted");
	if (sb->depth++ == 0) {
		sb->call_used = 0;
		sb->instr = 0;
		sb->instr_hit = 0;
		sb->mem_hit = 0;
	}
	lua_sethook(L, hook, LUA_MASKCOUNT, sb->instr_hit ? 1 : sb->step);
	return 0;
}

/* Close it; after a memory failure, collect the garbage it left at once. */
static void call_end(struct sb_lua *sb)
{
	sb->relaxed = 0;
	if (--sb->depth > 0)
		return;
	if (sb->mem_hit)
		lua_gc(sb->L, LUA_GCCOLLECT);
	sb->instr_hit = 0;
}

int sb_lua_call(struct sb_lua *sb, int nargs, int nresults, char *err, size_t errlen)
{
	lua_State *L = sb->L;
	int base = lua_gettop(L) - nargs, st;

	if (call_begin(sb, L, err, errlen) < 0) {
		lua_settop(L, base - 1);
		return -1;
	}
	lua_pushcfunction(L, msgh);
	lua_insert(L, base);
	st = lua_pcall(L, nargs, nresults, base);
	lua_remove(L, base);
	if (st != LUA_OK || sb->instr_hit) {	/* finished, but only by swallowing it */
		report(sb, L, st, err, errlen);
		lua_settop(L, base - 1);
		st = -1;
	}
	call_end(sb);
	return st == LUA_OK ? 0 : -1;
}

static int
dochunk(struct sb_lua *sb, const char *chunkname, const void *bc, size_t bclen,
        const char *text, size_t textlen, char *err, size_t errlen)
{
	lua_State *L = sb->L;
	int top = lua_gettop(L), st = LUA_ERRSYNTAX;

	if (chunkname == NULL)
		chunkname = "=?";
	if (call_begin(sb, L, err, errlen) < 0)
		return -1;
	lua_pushcfunction(L, msgh);
	if (bc != NULL) {
		st = luaL_loadbufferx(L, bc, bclen, chunkname, "b");
		if (st != LUA_OK)
			lua_pop(L, 1);
	}
	if (st != LUA_OK)
		st = luaL_loadbufferx(L, text, textlen, chunkname, "t");
	if (st == LUA_OK)
		st = lua_pcall(L, 0, 0, top + 1);
	if (st != LUA_OK || sb->instr_hit)
		st = report(sb, L, st, err, errlen);
	lua_settop(L, top);
	call_end(sb);
	return st == LUA_OK ? 0 : -1;
}

int sb_lua_dostring(struct sb_lua *sb, const char *chunkname, const char *buf,
                    size_t len, char *err, size_t errlen)
{
	if (len > 0 && buf[0] == LUA_SIGNATURE[0])
		return seterr(err, errlen, "binary chunks are not allowed");
	return dochunk(sb, chunkname, NULL, 0, buf, len, err, errlen);
}

int sb_lua_dobuilt(struct sb_lua *sb, const char *chunkname, const void *bc,
                   size_t bclen, const char *text, size_t textlen, char *err,
                   size_t errlen)
{
	return dochunk(sb, chunkname, bc, bclen, text, textlen, err, errlen);
}

int sb_lua_resume(struct sb_lua *sb, lua_State *co, int nargs, int *nres,
                  char *err, size_t errlen)
{
	lua_State *L = sb->L;
	char what[64];
	const char *msg = what;
	int st, n = 0;

	if (call_begin(sb, co, err, errlen) < 0)
		return -1;
	st = lua_resume(co, L, nargs, &n);
	if ((st == LUA_OK || st == LUA_YIELD) && !sb->instr_hit) {
		call_end(sb);
		if (nres != NULL)
			*nres = n;
		return st;
	}
	if (st == LUA_OK || st == LUA_YIELD) {	/* it swallowed the limit error */
		lua_pop(co, n);
		report(sb, co, st, err, errlen);
	} else {
		if (lua_type(co, -1) == LUA_TSTRING)
			msg = lua_tostring(co, -1);
		else
			snprintf(what, sizeof(what), "(error object is a %s value)",
			    luaL_typename(co, -1));
		sb->relaxed = 1;
		lua_pushcfunction(L, co_traceback);
		lua_pushlightuserdata(L, co);
		lua_pushlightuserdata(L, (void *)msg);
		report(sb, lua_pcall(L, 2, 1, 0) == LUA_OK ? L : co, st, err, errlen);
		lua_settop(L, lua_gettop(L) - 1);
		sb->relaxed = 0;
	}
	if (lua_status(co) == LUA_OK && st != LUA_OK)
		lua_pop(co, 1);		/* "cannot resume": it did not run */
	else if (!doomed(co)) {
		lua_resetthread(co);	/* run its __close handlers, under limits */
		lua_settop(co, 0);
	}
	call_end(sb);
	return -1;
}
