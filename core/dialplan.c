/*
 * dialplan.c: the Lua dialplan's C half.
 *
 * A dialplan instance is one sandbox (script.c) holding the prelude
 * (prelude.lua: registration, matching, roles, confirmation, routes) and the
 * operator's scripts.  This file loads the scripts, swaps instances
 * atomically on reload, runs every command and timer in a coroutine of its
 * own, and gives the prelude its primitives: node snapshots, HAL requests
 * (which yield until the backend answers), replies, delivery, timers.
 *
 * It does not decide what a command means, what is healthy or who is told:
 * scripts do.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "acl.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dialplan.h"
#include "dispatch.h"
#include "hal.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "node.h"
#include "notify.h"
#include "script.h"
#include "util.h"

#define MAX_SCRIPT (1u << 20)	/* bytes in one script file */
#define MAX_FILES  256

/* build/gen/prelude.c (tools/luadump.c): the text and its bytecode */
extern const char sb_prelude[];
extern const unsigned char sb_prelude_bc[];
extern const size_t sb_prelude_bc_len;

struct dtimer;

struct dp {
	unsigned refs;
	int     retired;
	struct sb_lua *lua;
	int     ref_dispatch, ref_policy, ref_route, ref_begin, ref_commands, ref_presence;
	int     ref_export, ref_import;	/* pending confirmations across a reload */
	int     ref_runs;		/* registry: thread -> run */
	/* Threads whose run returned normally, kept for the next runs (a
	 * command would otherwise make a coroutine and leave it to the GC):
	 * their registry refs. */
	int     idle[8];
	size_t  nidle;
	struct dtimer *timers;
	long    next_timer_id;
	char    last_policy_err[256];
	time_t  last_policy_log;
	size_t  nfiles;
};

struct dtimer {
	struct dtimer *next;
	struct dp *dp;
	long    id;
	int     fn_ref;
	long    ms;
	int     repeat;
	struct sb_timer *t;
	int     busy;		/* its previous run has not finished */
};

/* A command or timer in its coroutine, possibly waiting for the HAL. */
struct run {
	struct run *next, *prev;
	struct dp *dp;
	lua_State *co;
	int     co_ref;
	struct sb_cmd *cmd;	/* NULL for a timer */
	struct dtimer *timer;
	/* the HAL request being waited for */
	int     waiting;
	enum sb_hal_op op;
	struct sb_node *node;
	int     status;
	char   *error;
	struct sb_readings *readings;
	enum sb_power power;
	char   *message;
	struct sb_hal_event *events;
	size_t  nevents;
	struct sb_inventory inv;
	struct sb_timer *resume;
	int     orphan;	/* released at stop; the backend's answer frees it */
};

static struct dp *cur;
static struct run *runs;
static int dp_key;		/* address used as a registry key */

/*
 * The field names of the tables made for every command (its ctx, node()'s
 * snapshot), interned once per state in a list in its registry: set with
 * lua_setfield, each name is looked up by its address at every field.
 */
enum { K_NAME = 1, K_STATE, K_REASON, K_SINCE, K_LAST_POLL, K_BACKEND, K_POLL_INTERVAL,
	K_GROUPS, K_IDENTITY, K_ROLE, K_LEVEL, K_CHANNEL, K_KIND, K_ROOM, K_NODE, K_REPLY,
	K_CONTEXT, K_END };
static const char *const key_names[K_END] = { NULL, "name", "state", "reason", "since",
	"last_poll", "backend", "poll_interval", "groups", "identity", "role", "level",
	"channel", "kind", "room", "node", "reply", "context" };
static int keys_key;		/* registry: that list */

static void dp_unref(struct dp *);
static void resume_run(struct run *, int nargs);

/* ---- helpers ---- */

static struct dp *
dp_of(lua_State *L)
{
	struct dp *dp;

	lua_rawgetp(L, LUA_REGISTRYINDEX, &dp_key);
	dp = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return dp;
}

/*
 * The runs being resumed, innermost last (a run's C call may resume
 * another): run_of answers for the innermost one's thread without the
 * registry.  A run released meanwhile is cleared from it.
 */
static struct run *resumed[16];
static size_t nresumed;

static struct run *
run_of(lua_State *L)
{
	struct dp *dp;
	struct run *r;

	if (nresumed > 0 && nresumed <= SB_ARRAY_LEN(resumed) &&
	    (r = resumed[nresumed - 1]) != NULL && r->co == L)
		return r;
	dp = dp_of(L);

	lua_rawgeti(L, LUA_REGISTRYINDEX, dp->ref_runs);
	lua_pushthread(L);
	lua_rawget(L, -2);
	r = lua_touserdata(L, -1);
	lua_pop(L, 2);
	return r;
}

/*
 * Push s (NULL: nil), a string made for this one command.  lua_pushstring
 * first looks the address up in Lua's small cache of C strings, which
 * suits constants (the field names) but never hits for such a string and
 * evicts a constant that would have.
 */
static void
push_fresh(lua_State *L, const char *s)
{
	if (s)
		lua_pushlstring(L, s, strlen(s));
	else
		lua_pushnil(L);
}

static void
push_strings(lua_State *L, char **v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		push_fresh(L, v[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

static void
setfield_num(lua_State *L, const char *k, double v)
{
	if (isnan(v))
		return;
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

/* Push the list of key_names; returns its index. */
static int
push_keys(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &keys_key);
	return lua_gettop(L);
}

static void
push_node(lua_State *L, const struct sb_node *n)
{
	int t, keys;

	lua_createtable(L, 0, 10);
	t = lua_gettop(L);
	keys = push_keys(L);
	lua_rawgeti(L, keys, K_NAME);
	lua_pushstring(L, n->name);
	lua_rawset(L, t);
	lua_rawgeti(L, keys, K_STATE);
	lua_pushstring(L, sb_state_name(n->state));
	lua_rawset(L, t);
	lua_rawgeti(L, keys, K_REASON);
	lua_pushstring(L, n->reason);
	lua_rawset(L, t);
	lua_rawgeti(L, keys, K_SINCE);
	lua_pushinteger(L, (lua_Integer)n->since);
	lua_rawset(L, t);
	lua_rawgeti(L, keys, K_LAST_POLL);
	lua_pushinteger(L, (lua_Integer)n->last_poll);
	lua_rawset(L, t);
	lua_rawgeti(L, keys, K_BACKEND);
	lua_pushstring(L, n->hal->be->name);
	lua_rawset(L, t);
	lua_rawgeti(L, keys, K_POLL_INTERVAL);
	lua_pushnumber(L, n->poll_interval);
	lua_rawset(L, t);
	lua_rawgeti(L, keys, K_GROUPS);
	push_strings(L, n->groups, n->ngroups);
	lua_rawset(L, t);
	lua_pop(L, 1);
}

static void
push_sensor(lua_State *L, const struct sb_sensor *s)
{
	lua_createtable(L, 0, 10);
	lua_pushstring(L, s->name);
	lua_setfield(L, -2, "name");
	lua_pushstring(L, sb_sensor_kind_name(s->kind));
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, s->unit);
	lua_setfield(L, -2, "unit");
	if (s->has_value)
		setfield_num(L, "value", s->value);
	lua_pushstring(L, sb_sensor_state_name(s->state));
	lua_setfield(L, -2, "state");
	setfield_num(L, "low_critical", s->low_crit);
	setfield_num(L, "low_warning", s->low_warn);
	setfield_num(L, "high_warning", s->high_warn);
	setfield_num(L, "high_critical", s->high_crit);
}

static void
push_readings(lua_State *L, const struct sb_readings *r)
{
	lua_createtable(L, 0, 3);
	lua_pushstring(L, sb_power_name(r->power));
	lua_setfield(L, -2, "power");
	lua_pushinteger(L, (lua_Integer)r->taken);
	lua_setfield(L, -2, "taken");
	lua_createtable(L, (int)r->nsensors, 0);
	for (size_t i = 0; i < r->nsensors; i++) {
		push_sensor(L, &r->sensors[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "sensors");
}

/* ---- primitives for the prelude (the table __sb) ---- */

static int
l_level(lua_State *L)
{
	lua_pushinteger(L, sb_acl_level(luaL_checkstring(L, 1)));
	return 1;
}

/* A node argument: a name, a glob, "group:NAME" or "all"; a list of names
 * or nil if nothing matches. */
static int
l_resolve(lua_State *L)
{
	const char *tok = luaL_checkstring(L, 1);
	int glob = strpbrk(tok, "*?[") != NULL, all = strcmp(tok, "all") == 0, n = 0;
	const char *group = strncmp(tok, "group:", 6) == 0 ? tok + 6 : NULL;
	struct sb_node *node;

	if (!glob && !all && group == NULL) {	/* a name: one node at most */
		if ((node = sb_node_find(tok)) == NULL) {
			lua_pushnil(L);
			return 1;
		}
		lua_createtable(L, 1, 0);
		lua_pushstring(L, node->name);
		lua_rawseti(L, -2, 1);
		return 1;
	}
	lua_newtable(L);
	for (size_t i = 0; i < sb_node_count(); i++) {
		int hit;

		node = sb_node_at(i);
		if (group)
			hit = sb_node_in_group(node, group);
		else if (all)
			hit = 1;
		else
			hit = sb_glob(tok, node->name);
		if (hit) {
			lua_pushstring(L, node->name);
			lua_rawseti(L, -2, ++n);
		}
	}
	if (n == 0)
		lua_pushnil(L);
	return 1;
}

static int
l_nodes(lua_State *L)
{
	lua_createtable(L, (int)sb_node_count(), 0);
	for (size_t i = 0; i < sb_node_count(); i++) {
		push_node(L, sb_node_at(i));
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int
l_node(lua_State *L)
{
	struct sb_node *n = sb_node_find(luaL_checkstring(L, 1));

	if (n == NULL)
		lua_pushnil(L);
	else
		push_node(L, n);
	return 1;
}

static int
l_in_group(lua_State *L)
{
	struct sb_node *n = sb_node_find(luaL_checkstring(L, 1));

	lua_pushboolean(L, n && sb_node_in_group(n, luaL_checkstring(L, 2)));
	return 1;
}

static int
l_glob(lua_State *L)
{
	lua_pushboolean(L, sb_glob(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
	return 1;
}

static int
l_reply(lua_State *L)
{
	struct run *r = run_of(L);
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);

	if (r == NULL || r->cmd == NULL)
		return luaL_error(L, "reply() works only while a command runs");
	sb_cmd_reply(r->cmd, text);
	return 0;
}

static int
l_log(lua_State *L)
{
	const char *lvl = luaL_checkstring(L, 1);
	const char *text = luaL_checkstring(L, 2);
	int l = sb_log_level_parse(lvl);

	sb_log(l < 0 ? SB_LOG_INFO : (enum sb_log_level)l, "script: %s", text);
	return 0;
}

static int
l_random_code(lua_State *L)
{
	/* Base32 without 0/1/I/O, so codes read back unambiguously. */
	static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char raw[6];
	char code[7];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return luaL_error(L, "no randomness available");
	for (size_t i = 0; i < sizeof(raw); i++)
		code[i] = alphabet[raw[i] & 31];
	code[6] = '\0';
	lua_pushstring(L, code);
	return 1;
}

/* Who asks, from a caller table { identity, level, channel, kind, room }
 * at idx (its strings stay borrowed from the table). */
static void
who_from(lua_State *L, int idx, struct sb_acl_who *who)
{
	const char *kind;

	luaL_checktype(L, idx, LUA_TTABLE);
	lua_getfield(L, idx, "identity");
	who->identity = lua_tostring(L, -1) ? lua_tostring(L, -1) : "";
	lua_getfield(L, idx, "level");
	who->level = (int)lua_tointeger(L, -1);
	lua_getfield(L, idx, "channel");
	who->channel = lua_tostring(L, -1);
	lua_getfield(L, idx, "kind");
	kind = lua_tostring(L, -1);
	who->group = kind && strcmp(kind, "group") == 0;
	lua_getfield(L, idx, "room");
	who->room = who->group ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 5);	/* the table still holds the strings */
}

/* May who run command anywhere: on some node if it takes nodes (any is
 * set), else with none? */
static int
may_anywhere(const struct sb_acl_who *who, const char *command, int any, int own)
{
	if (!any || sb_node_count() == 0)
		return sb_acl_check(who, command, NULL, 0, own, NULL, NULL) == SB_ACL_ALLOW;
	for (size_t i = 0; i < sb_node_count(); i++) {
		const char *name = sb_node_at(i)->name;

		if (sb_acl_check(who, command, &name, 1, own, NULL, NULL) == SB_ACL_ALLOW)
			return 1;
	}
	return 0;
}

/*
 * acl_check(who, command, nodes, role, record): may who (a caller table)
 * run command (its words) on nodes (a list of names; nil: none; true: any
 * one node, for lists), the command asking for role (a name; nil: it
 * depends on the arguments)?  true, or false and the refusal.  With record
 * set, inside a command's run: the command is checked as the dispatcher
 * sees it, a refusal is logged and its outcome kept for the audit log, and
 * the nodes are recorded.
 */
static int
l_acl_check(lua_State *L)
{
	struct sb_acl_who who;
	const char *command = luaL_checkstring(L, 2);
	const char *role = luaL_optstring(L, 4, NULL);
	int own = role ? sb_acl_level(role) : -1;
	int record = lua_toboolean(L, 5);
	struct run *r = record ? run_of(L) : NULL;
	const char *few[8], **nodes = NULL;	/* few: most commands name a node or two */
	size_t n = 0;
	char msg[512];
	int ok;

	luaL_checktype(L, 1, LUA_TTABLE);
	if (lua_isboolean(L, 3) || lua_isnoneornil(L, 3)) {
		if (!record) {
			who_from(L, 1, &who);
			lua_pushboolean(L, may_anywhere(&who, command, lua_toboolean(L, 3), own));
			return 1;
		}
	} else {
		luaL_checktype(L, 3, LUA_TTABLE);
		n = (size_t)luaL_len(L, 3);
		if (n > 100000)
			return luaL_error(L, "acl_check: too many nodes");
		nodes = n < SB_ARRAY_LEN(few) ? few : sb_calloc(n + 1, sizeof(*nodes));
		for (size_t i = 0; i < n; i++) {
			lua_rawgeti(L, 3, (lua_Integer)i + 1);
			nodes[i] = lua_tostring(L, -1);	/* borrowed from the table */
			lua_pop(L, 1);
			if (nodes[i] == NULL) {
				if (nodes != few)
					free(nodes);
				return luaL_error(L, "acl_check: nodes must be names");
			}
		}
	}
	if (r == NULL || r->cmd == NULL) {
		who_from(L, 1, &who);
		ok = sb_acl_check(&who, command, nodes, n, own, role, NULL) == SB_ACL_ALLOW;
	} else {
		/* A command's run: the command itself says who asks, as the
		 * dispatcher saw it; the table is not read. */
		if (n == 1)
			sb_cmd_set_nodes(r->cmd, nodes[0]);
		else if (n > 1) {
			struct sb_buf b = { 0 };

			for (size_t i = 0; i < n; i++) {
				if (i)
					sb_buf_add(&b, ",", 1);
				sb_buf_puts(&b, nodes[i]);
			}
			sb_cmd_set_nodes(r->cmd, b.buf);
			sb_buf_free(&b);
		}
		ok = sb_cmd_allowed(r->cmd, command, nodes, n, own, role, r->cmd->line, msg,
		    sizeof(msg)) == 0;
	}
	if (nodes != few)
		free(nodes);
	lua_pushboolean(L, ok);
	if (ok || r == NULL || r->cmd == NULL)
		return 1;
	lua_pushstring(L, msg);
	return 2;
}

/* builtins([who]): the built-in commands; with a caller table, only those
 * it may run there. */
static int
l_builtins(lua_State *L)
{
	struct sb_acl_who who;
	int filter = lua_istable(L, 1);
	lua_Integer k = 0;

	if (filter)
		who_from(L, 1, &who);
	lua_newtable(L);
	for (size_t i = 0; i < sb_builtin_count(); i++) {
		const struct sb_builtin *b = sb_builtin_at(i);

		if (filter && sb_acl_check(&who, b->words, NULL, 0, b->level, NULL, NULL) !=
		    SB_ACL_ALLOW)
			continue;
		lua_createtable(L, 0, 3);
		lua_pushstring(L, b->usage);
		lua_setfield(L, -2, "pattern");
		lua_pushstring(L, b->help);
		lua_setfield(L, -2, "help");
		lua_pushinteger(L, b->level);
		lua_setfield(L, -2, "level");
		lua_rawseti(L, -2, ++k);
	}
	return 1;
}

static int
l_hooks(lua_State *L)
{
	struct dp *dp = dp_of(L);

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "dispatch");
	dp->ref_dispatch = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, 1, "policy");
	dp->ref_policy = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, 1, "route");
	dp->ref_route = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, 1, "begin_file");
	dp->ref_begin = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, 1, "commands");
	dp->ref_commands = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, 1, "presence");
	dp->ref_presence = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, 1, "export_pending");
	dp->ref_export = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, 1, "import_pending");
	dp->ref_import = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* ---- HAL requests from scripts: yield until the backend answers ---- */

static void
answer_clear(struct run *r)
{
	free(r->error);
	free(r->message);
	free(r->events);
	sb_readings_free(r->readings);
	r->error = r->message = NULL;
	r->events = NULL;
	r->readings = NULL;
	r->nevents = 0;
}

static long
resume_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct run *r = ud;
	lua_State *co = r->co;
	int nres = 2;

	(void)loop;
	(void)t;
	r->resume = NULL;
	r->waiting = 0;
	lua_checkstack(co, 4);
	if (r->status < 0) {
		lua_pushnil(co);
		lua_pushstring(co, r->error ? r->error : "hardware request failed");
	} else {
		switch (r->op) {
		case SB_HAL_READ:
			push_readings(co, r->readings);
			break;
		case SB_HAL_POWER_ACT:
			lua_pushstring(co, r->message ? r->message : sb_power_name(r->power));
			break;
		case SB_HAL_EVENTS_GET:
			lua_createtable(co, (int)r->nevents, 0);
			for (size_t i = 0; i < r->nevents; i++) {
				lua_createtable(co, 0, 3);
				lua_pushinteger(co, (lua_Integer)r->events[i].when);
				lua_setfield(co, -2, "time");
				lua_pushstring(co, sb_event_severity_name(r->events[i].severity));
				lua_setfield(co, -2, "severity");
				lua_pushstring(co, r->events[i].text);
				lua_setfield(co, -2, "text");
				lua_rawseti(co, -2, (lua_Integer)i + 1);
			}
			break;
		case SB_HAL_INVENTORY_GET:
			lua_createtable(co, 0, 4);
			lua_pushstring(co, r->inv.vendor);
			lua_setfield(co, -2, "vendor");
			lua_pushstring(co, r->inv.model);
			lua_setfield(co, -2, "model");
			lua_pushstring(co, r->inv.serial);
			lua_setfield(co, -2, "serial");
			lua_pushstring(co, r->inv.firmware);
			lua_setfield(co, -2, "firmware");
			break;
		}
		nres = 1;	/* success is one value: "if err then" must work */
	}
	answer_clear(r);
	resume_run(r, nres);
	return SB_TIMER_STOP;
}

static void
hal_done(struct sb_hal *hal, const struct sb_hal_result *res, void *ud)
{
	struct run *r = ud;

	(void)hal;
	if (r->orphan) {	/* the daemon stopped while this waited */
		free(r);
		return;
	}
	r->status = res->status;
	r->error = sb_strdup(res->error);
	r->power = res->power;
	r->message = sb_strdup(res->message);
	if (res->readings)
		r->readings = sb_readings_dup(res->readings);
	if (res->nevents) {
		r->events = sb_calloc(res->nevents, sizeof(*r->events));
		memcpy(r->events, res->events, res->nevents * sizeof(*r->events));
		r->nevents = res->nevents;
	}
	if (res->inventory)
		r->inv = *res->inventory;
	sb_node_unref(r->node);
	r->node = NULL;
	/* Resume from the loop, not from inside the backend: the backend may
	 * answer before request() returns, i.e. before the script yielded. */
	r->resume = sb_loop_add_timer(sb_core.loop, 0, resume_timer, r);
}

static int
l_hal(lua_State *L)
{
	struct run *r = run_of(L);
	const char *name = luaL_checkstring(L, 1);
	const char *op = luaL_checkstring(L, 2);
	struct sb_hal_req req = { 0 };
	struct sb_node *n;
	int rc;

	if (r == NULL)
		return luaL_error(L, "hal.* works only in a command or a timer, "
		    "not in a policy, a route or a coroutine of your own");
	if ((n = sb_node_find(name)) == NULL) {
		lua_pushnil(L);
		lua_pushfstring(L, "no node \"%s\"", name);
		return 2;
	}
	if (strcmp(op, "read") == 0) {
		req.op = SB_HAL_READ;
	} else if (strcmp(op, "power") == 0) {
		req.op = SB_HAL_POWER_ACT;
		req.arg = luaL_optstring(L, 3, "status");
	} else if (strcmp(op, "events") == 0) {
		req.op = SB_HAL_EVENTS_GET;
		req.count = (int)luaL_optinteger(L, 4, 10);
		if (req.count < 1 || req.count > 1000)
			return luaL_error(L, "hal.events: count must be 1 to 1000");
	} else if (strcmp(op, "inventory") == 0) {
		req.op = SB_HAL_INVENTORY_GET;
	} else {
		return luaL_error(L, "unknown hal operation \"%s\"", op);
	}
	r->op = req.op;
	r->waiting = 1;
	r->node = sb_node_ref(n);
	if ((rc = sb_hal_request(n->hal, &req, hal_done, r)) < 0) {
		r->waiting = 0;
		sb_node_unref(r->node);
		r->node = NULL;
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", name, rc == -ENOTSUP ?
		    "this backend cannot do that" : strerror(-rc));
		return 2;
	}
	return lua_yield(L, 0);
}

/* ---- timers ---- */

static void run_function(struct dp *, int fn_ref, struct dtimer *);

static long
dtimer_fire(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct dtimer *dt = ud;
	long next = dt->repeat ? dt->ms : SB_TIMER_STOP;

	(void)loop;
	(void)t;
	if (dt->busy) {
		sb_debug("dialplan timer %ld: previous run still busy; skipped", dt->id);
		return next;
	}
	if (!dt->repeat)
		dt->t = NULL;	/* stops after this run */
	run_function(dt->dp, dt->fn_ref, dt);
	return next;
}

static int
l_timer(lua_State *L)
{
	struct dp *dp = dp_of(L);
	double secs = luaL_checknumber(L, 1);
	struct dtimer *dt;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!(secs >= 0.01 && secs <= 86400 * 365))
		return luaL_error(L, "timer period must be between 0.01 s and a year");
	dt = sb_calloc(1, sizeof(*dt));
	dt->dp = dp;
	dt->id = ++dp->next_timer_id;
	dt->ms = lround(secs * 1000);
	dt->repeat = lua_toboolean(L, 3);
	lua_pushvalue(L, 2);
	dt->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	dt->t = sb_loop_add_timer(sb_core.loop, dt->ms, dtimer_fire, dt);
	dt->next = dp->timers;
	dp->timers = dt;
	lua_pushinteger(L, dt->id);
	return 1;
}

/*
 * Free a timer that will not fire again (a one-shot that fired, a cancelled
 * one) once no run of it is in flight.  Without this, every after() and
 * cancel() kept its struct and its function, with all the function's
 * upvalues, until the next reload: a script scheduling one-shots ran the
 * whole dialplan into its memory ceiling.
 */
static void
dtimer_drop(struct dtimer *dt)
{
	struct dtimer **pp = &dt->dp->timers;

	while (*pp != dt)
		pp = &(*pp)->next;
	*pp = dt->next;
	luaL_unref(sb_lua_state(dt->dp->lua), LUA_REGISTRYINDEX, dt->fn_ref);
	free(dt);
}

static int
l_cancel(lua_State *L)
{
	struct dp *dp = dp_of(L);
	lua_Integer id = luaL_checkinteger(L, 1);

	for (struct dtimer *dt = dp->timers; dt; dt = dt->next)
		if (dt->id == id && dt->t) {
			sb_loop_del_timer(sb_core.loop, dt->t);
			dt->t = NULL;
			if (!dt->busy)
				dtimer_drop(dt);	/* else when its run ends */
			lua_pushboolean(L, 1);
			return 1;
		}
	lua_pushboolean(L, 0);
	return 1;
}

static void
timers_stop(struct dp *dp)
{
	for (struct dtimer *dt = dp->timers; dt; dt = dt->next)
		if (dt->t) {
			sb_loop_del_timer(sb_core.loop, dt->t);
			dt->t = NULL;
		}
}

static void
timers_free(struct dp *dp)
{
	struct dtimer *dt, *next;

	timers_stop(dp);
	for (dt = dp->timers; dt; dt = next) {
		next = dt->next;
		free(dt);
	}
	dp->timers = NULL;
}

/* ---- runs ---- */

/* A freed run kept for the next one: most commands make one and are done
 * with it before the next arrives. */
static struct run *spare_run;

static struct run *
run_new(struct dp *dp, struct sb_cmd *cmd)
{
	lua_State *L = sb_lua_state(dp->lua);
	struct run *r = spare_run;

	if (r != NULL) {
		spare_run = NULL;
		memset(r, 0, sizeof(*r));
	} else
		r = sb_calloc(1, sizeof(*r));

	r->dp = dp;
	dp->refs++;
	r->cmd = cmd;
	if (dp->nidle > 0) {
		r->co_ref = dp->idle[--dp->nidle];
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->co_ref);
		r->co = lua_tothread(L, -1);
	} else {
		r->co = lua_newthread(L);
		lua_pushvalue(L, -1);
		r->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, dp->ref_runs);
	lua_pushvalue(L, -2);
	lua_pushlightuserdata(L, r);
	lua_rawset(L, -3);
	lua_pop(L, 2);
	r->next = runs;
	if (runs)
		runs->prev = r;
	runs = r;
	return r;
}

/* Everything a run holds, but not the run itself. */
static void
run_release(struct run *r)
{
	lua_State *L = sb_lua_state(r->dp->lua);
	lua_Debug ar;

	for (size_t i = 0; i < nresumed && i < SB_ARRAY_LEN(resumed); i++)
		if (resumed[i] == r)
			resumed[i] = NULL;
	if (r->resume)
		sb_loop_del_timer(sb_core.loop, r->resume);
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->dp->ref_runs);
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->co_ref);
	lua_pushnil(L);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	/* A thread that returned (not one that failed, waits, or is still
	 * on its way out of a call: no frame left) is as good as new. */
	if (lua_status(r->co) == LUA_OK && lua_gettop(r->co) == 0 &&
	    !lua_getstack(r->co, 0, &ar) && r->dp->nidle < SB_ARRAY_LEN(r->dp->idle))
		r->dp->idle[r->dp->nidle++] = r->co_ref;
	else
		luaL_unref(L, LUA_REGISTRYINDEX, r->co_ref);
	if (r->timer) {
		r->timer->busy = 0;
		if (r->timer->t == NULL)
			dtimer_drop(r->timer);	/* fired for the last time */
	}
	if (r->node)
		sb_node_unref(r->node);
	answer_clear(r);
	if (r->prev)
		r->prev->next = r->next;
	else
		runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	dp_unref(r->dp);
	r->dp = NULL;
}

static void
run_free(struct run *r)
{
	run_release(r);
	if (spare_run == NULL)
		spare_run = r;
	else
		free(r);
}

static void
run_finish(struct run *r, int ok, const char *text)
{
	if (r->cmd)
		sb_cmd_done(r->cmd, ok, text);
	run_free(r);
}

static void
resume_run(struct run *r, int nargs)
{
	char err[1024];
	int nres = 0, rc;

	if (nresumed < SB_ARRAY_LEN(resumed))
		resumed[nresumed] = r;
	nresumed++;
	rc = sb_lua_resume(r->dp->lua, r->co, nargs, &nres, err, sizeof(err));
	nresumed--;
	if (rc == LUA_YIELD) {
		lua_pop(r->co, nres);
		if (r->waiting)
			return;	/* hal_done resumes it */
		sb_warnx("script yielded outside a coroutine of its own; stopped");
		run_finish(r, 0, "script error: coroutine.yield() outside a coroutine of its own");
		return;
	}
	if (rc != LUA_OK) {
		char *nl = strchr(err, '\n');

		sb_warnx("script error%s%s: %s", r->cmd ? " in " : "",
		    r->cmd ? r->cmd->line : "", err);
		if (nl)
			*nl = '\0';	/* the chat gets the first line */
		run_finish(r, 0, err);
		return;
	}
	if (r->cmd) {
		/* dispatch returns ok, text [, confirmation code] */
		int ok = nres >= 1 && lua_toboolean(r->co, -nres);
		const char *text = nres >= 2 ? lua_tostring(r->co, -nres + 1) : NULL;

		if (nres >= 3 && lua_type(r->co, -nres + 2) == LUA_TSTRING)
			sb_msg_set_confirm(r->cmd->msg, lua_tostring(r->co, -nres + 2));
		/* text lives on the thread's stack until the pop: no copy.  The
		 * pop comes before run_free, which keeps only an empty thread. */
		sb_cmd_done(r->cmd, ok, text);
		r->cmd = NULL;
		lua_pop(r->co, nres);
		run_free(r);
		return;
	}
	lua_pop(r->co, nres);
	run_finish(r, 1, NULL);
}

static void
run_function(struct dp *dp, int fn_ref, struct dtimer *dt)
{
	struct run *r = run_new(dp, NULL);

	r->timer = dt;
	if (dt)
		dt->busy = 1;
	lua_rawgeti(r->co, LUA_REGISTRYINDEX, fn_ref);
	resume_run(r, 0);
}

/* ---- hooks the core calls ---- */

static const char *
channel_context(const char *channel, int group)
{
	struct sb_channel *ch = channel ? sb_channel_find(channel) : NULL;

	if (ch == NULL)
		return "default";
	return group ? ch->group_context : ch->context;
}

/*
 * The first word in lower case as string.lower has it (tolower() byte by
 * byte), which the prelude looks commands up by: here it costs no call
 * from Lua.  nil for a long word: the prelude lowers that itself.
 */
static void
push_verb(lua_State *L, const char *w)
{
	char buf[64];
	size_t i;

	for (i = 0; w[i] != '\0' && i < sizeof(buf); i++)
		buf[i] = (char)tolower((unsigned char)w[i]);
	if (w[i] != '\0')
		lua_pushnil(L);
	else
		lua_pushlstring(L, buf, i);
}

/*
 * The prelude's dispatch(ctx, argv, text, session, verb).  ctx is the
 * table the command's run gets (doc/scripting.md lists its fields), made
 * here once: the prelude matches the line with it and hands it on as it is.
 */
static int
dp_dispatch(struct sb_cmd *cmd, void *ud)
{
	/* Where it counts as coming from ("as ... on ... in ..." may say
	 * otherwise than the message): for contexts and rules. */
	const char *channel = cmd->channel ? cmd->channel : cmd->msg->channel;
	struct run *r;
	lua_State *co;
	int t, keys;

	(void)ud;
	if (cur == NULL)
		return 0;
	r = run_new(cur, cmd);
	co = r->co;
	lua_rawgeti(co, LUA_REGISTRYINDEX, cur->ref_dispatch);
	lua_createtable(co, 0, 9);
	t = lua_gettop(co);
	keys = push_keys(co);
	lua_rawgeti(co, keys, K_IDENTITY);
	push_fresh(co, cmd->identity);
	lua_rawset(co, t);
	lua_rawgeti(co, keys, K_ROLE);
	push_fresh(co, cmd->role);
	lua_rawset(co, t);
	lua_rawgeti(co, keys, K_LEVEL);
	lua_pushinteger(co, cmd->level);
	lua_rawset(co, t);
	lua_rawgeti(co, keys, K_CHANNEL);
	push_fresh(co, channel);
	lua_rawset(co, t);
	lua_rawgeti(co, keys, K_KIND);
	lua_pushstring(co, cmd->group ? "group" : "direct");
	lua_rawset(co, t);
	if (cmd->room) {
		lua_rawgeti(co, keys, K_ROOM);
		push_fresh(co, cmd->room);
		lua_rawset(co, t);
	}
	if (cmd->msg->node) {
		lua_rawgeti(co, keys, K_NODE);
		push_fresh(co, cmd->msg->node);
		lua_rawset(co, t);
	}
	lua_rawgeti(co, keys, K_REPLY);
	lua_pushcfunction(co, l_reply);		/* the global reply */
	lua_rawset(co, t);
	lua_rawgeti(co, keys, K_CONTEXT);
	lua_pushstring(co, channel_context(channel, cmd->group));
	lua_rawset(co, t);
	lua_pop(co, 1);
	push_strings(co, cmd->argv, (size_t)cmd->argc);
	push_fresh(co, cmd->line);
	push_fresh(co, cmd->msg->session ? cmd->msg->session : cmd->msg->conv);
	push_verb(co, cmd->argv[0]);
	resume_run(r, 5);
	return 1;
}

static int
dp_policy(struct sb_node *n, const struct sb_hal_result *res, enum sb_state *state,
          char *reason, size_t len, void *ud)
{
	lua_State *L;
	char err[1024];
	const char *st, *why;
	int s;

	(void)ud;
	if (cur == NULL)
		return -1;
	L = sb_lua_state(cur->lua);
	lua_rawgeti(L, LUA_REGISTRYINDEX, cur->ref_policy);
	push_node(L, n);
	if (res->status < 0) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, res->error ? res->error : "no answer");
		lua_setfield(L, -2, "error");
		lua_newtable(L);
		lua_setfield(L, -2, "sensors");
		lua_pushstring(L, "unknown");
		lua_setfield(L, -2, "power");
	} else {
		push_readings(L, res->readings);
	}
	if (sb_lua_call(cur->lua, 2, 2, err, sizeof(err)) < 0) {
		/* Log a failing policy when the error changes, and at most once a
		 * minute while it repeats: not at every poll of every node, but
		 * never silenced for good either. */
		time_t now = time(NULL);

		if (strcmp(err, cur->last_policy_err) != 0 || now - cur->last_policy_log >= 60) {
			sb_warnx("status policy failed for %s (the built-in one applies): %s",
			    n->name, err);
			sb_strlcpy(cur->last_policy_err, err, sizeof(cur->last_policy_err));
			cur->last_policy_log = now;
		}
		return -1;
	}
	if (lua_isnil(L, -2)) {		/* no policy registered */
		lua_pop(L, 2);
		return -1;
	}
	st = lua_tostring(L, -2);
	why = lua_tostring(L, -1);
	s = st ? sb_state_parse(st) : -1;
	if (s < 0) {
		lua_pop(L, 2);
		return -1;
	}
	*state = (enum sb_state)s;
	snprintf(reason, len, "%s", why ? why : "");
	lua_pop(L, 2);
	return 0;
}

/* The prelude's route hook gives { {dest, tier, after}, ..., every = s }. */
static int
dp_route(const struct sb_event_view *ev, struct sb_route_plan *plan, void *ud)
{
	lua_State *L;
	char err[1024], id[32];
	int rc = 0;

	(void)ud;
	if (cur == NULL)
		return -1;
	L = sb_lua_state(cur->lua);
	lua_rawgeti(L, LUA_REGISTRYINDEX, cur->ref_route);
	lua_createtable(L, 0, 8);
	snprintf(id, sizeof(id), "E%lld", (long long)ev->id);
	lua_pushstring(L, id);
	lua_setfield(L, -2, "id");
	lua_pushstring(L, ev->source);
	lua_setfield(L, -2, "source");
	if (ev->node) {
		lua_pushstring(L, ev->node);
		lua_setfield(L, -2, "node");
	}
	lua_pushstring(L, ev->severity);
	lua_setfield(L, -2, "severity");
	lua_pushstring(L, ev->text);
	lua_setfield(L, -2, "text");
	lua_pushstring(L, ev->key);
	lua_setfield(L, -2, "key");
	if (ev->resolves) {
		snprintf(id, sizeof(id), "E%lld", (long long)ev->resolves);
		lua_pushstring(L, id);
		lua_setfield(L, -2, "resolves");
	}
	if (ev->resolves_severity) {
		lua_pushstring(L, ev->resolves_severity);
		lua_setfield(L, -2, "resolves_severity");
	}
	if (sb_lua_call(cur->lua, 1, 1, err, sizeof(err)) < 0) {
		sb_warnx("routing E%lld failed, sent to the console: %s", (long long)ev->id, err);
		return -1;
	}
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return -1;
	}
	for (lua_Integer i = 1;; i++) {
		const char *dest;

		if (lua_rawgeti(L, -1, i) != LUA_TTABLE) {
			lua_pop(L, 1);
			break;
		}
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		lua_rawgeti(L, -3, 3);
		dest = lua_tostring(L, -3);
		if (dest)
			sb_route_plan_add(plan, dest, (int)lua_tointeger(L, -2),
			    (double)lua_tonumber(L, -1));
		lua_pop(L, 4);
	}
	lua_getfield(L, -1, "every");
	plan->every = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : 0;
	lua_pop(L, 2);
	return rc;
}

static int
l_notify(lua_State *L)
{
	struct sb_event_in ev = { 0 };
	int64_t id;
	char buf[32];

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "source");
	lua_getfield(L, 1, "node");
	lua_getfield(L, 1, "severity");
	lua_getfield(L, 1, "text");
	lua_getfield(L, 1, "key");
	lua_getfield(L, 1, "resolved");
	ev.source = lua_tostring(L, -6);
	ev.node = lua_tostring(L, -5);
	ev.severity = lua_tostring(L, -4);
	ev.text = luaL_checkstring(L, -3);
	ev.key = lua_tostring(L, -2);
	ev.resolved = lua_toboolean(L, -1);
	id = sb_event_submit(&ev, NULL, NULL);
	lua_pop(L, 6);
	if (id < 0)
		return luaL_error(L, "notify: the store cannot take the event");
	if (id == 0) {
		lua_pushnil(L);
		return 1;
	}
	snprintf(buf, sizeof(buf), "E%lld", (long long)id);
	lua_pushstring(L, buf);
	return 1;
}

/* ---- webhook handlers: the HTTP channel's Lua handlers ---- */

/*
 * The prelude registers its webhook runner with __sb.webhooks(fn); the
 * HTTP channel calls sb_dialplan_webhook(), which calls the runner with
 * the handler's name, the payload and the request in one protected call
 * under the usual limits: the payload's conversion too, so that a payload
 * the sandbox cannot hold is a script error, not a Lua panic.  Handlers do
 * not yield: hal.* and reply() are not theirs.
 */
static int webhook_key;		/* registry: the prelude's webhook runner */

static int
l_webhooks(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_pushvalue(L, 1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &webhook_key);
	return 0;
}

struct whcall {
	const char *name;
	sb_dialplan_push_fn *push;
	void   *pud;
	sb_dialplan_event_fn *ev;
	void   *eud;
};

static const char *
wh_field(lua_State *L, int t, const char *k)
{
	lua_getfield(L, t, k);
	return lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
}

static int
webhook_call(lua_State *L)
{
	struct whcall *c = lua_touserdata(L, 1);
	lua_Integer n;

	lua_settop(L, 0);
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &webhook_key) != LUA_TFUNCTION)
		return luaL_error(L, "this dialplan has no webhook handlers");
	lua_pushstring(L, c->name);
	c->push(L, c->pud);
	lua_call(L, 3, 1);		/* the runner checks what the handler gave */
	luaL_checktype(L, 1, LUA_TTABLE);
	n = luaL_len(L, 1);
	for (lua_Integer i = 1; i <= n; i++) {
		struct sb_dialplan_event e = { 0 };

		lua_rawgeti(L, 1, i);
		e.node = wh_field(L, 2, "node");
		e.severity = wh_field(L, 2, "severity");
		e.text = wh_field(L, 2, "text");
		e.key = wh_field(L, 2, "key");
		lua_getfield(L, 2, "resolved");
		e.resolved = lua_toboolean(L, -1);
		if (e.text && e.severity)
			c->ev(c->eud, &e);
		lua_settop(L, 1);
	}
	return 0;
}

int
sb_dialplan_webhook(const char *name, sb_dialplan_push_fn *push, void *pud,
                    sb_dialplan_event_fn *ev, void *eud, char *err, size_t errlen)
{
	struct whcall c = { name, push, pud, ev, eud };
	lua_State *L;

	if (cur == NULL) {
		snprintf(err, errlen, "no dialplan is loaded");
		return -1;
	}
	L = sb_lua_state(cur->lua);
	if (!lua_checkstack(L, 4)) {
		snprintf(err, errlen, "Lua stack exhausted");
		return -1;
	}
	lua_pushcfunction(L, webhook_call);
	lua_pushlightuserdata(L, &c);
	return sb_lua_call(cur->lua, 1, 0, err, errlen);
}

/* ---- loading ---- */

static void
dp_unref(struct dp *dp)
{
	if (dp == NULL || --dp->refs > 0)
		return;
	timers_free(dp);
	sb_lua_free(dp->lua);
	free(dp);
}

struct file {
	char   *rel;	/* "power.lua", "commands/power.lua": the override key */
	char   *path;
};

static int
file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct file *)a)->rel, ((const struct file *)b)->rel);
}

static int
has_lua_suffix(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".lua") == 0 && name[0] != '.';
}

/* Add the .lua files in dir/sub (sub may be ""), unless an earlier folder
 * had one of the same name. */
static void
scan(const char *dir, const char *sub, struct file **files, size_t *n, int depth)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s%s%s", dir, *sub ? "/" : "", sub);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL && *n < MAX_FILES) {
		char rel[PATH_MAX], full[PATH_MAX * 2];
		struct stat st;
		int dup = 0;

		if (de->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "%s%s%s", sub, *sub ? "/" : "", de->d_name);
		snprintf(full, sizeof(full), "%s/%s", dir, rel);
		if (stat(full, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth == 0) {
			scan(dir, rel, files, n, 1);
			continue;
		}
		if (!S_ISREG(st.st_mode) || !has_lua_suffix(de->d_name))
			continue;
		for (size_t i = 0; i < *n && !dup; i++)
			dup = strcmp((*files)[i].rel, rel) == 0;
		if (dup)
			continue;	/* overridden by an earlier folder */
		*files = sb_realloc(*files, (*n + 1) * sizeof(**files));
		(*files)[*n].rel = sb_strdup(rel);
		(*files)[*n].path = sb_strdup(full);
		(*n)++;
	}
	closedir(d);
}

static char *
read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = sb_malloc(MAX_SCRIPT + 1);
	*len = fread(buf, 1, MAX_SCRIPT + 1, f);
	fclose(f);
	if (*len > MAX_SCRIPT) {
		snprintf(err, errlen, "%s: larger than %u bytes", path, MAX_SCRIPT);
		free(buf);
		return NULL;
	}
	buf[*len] = '\0';
	return buf;
}

/* Resolve a script folder named in the config relative to its folder. */
static char *
script_dir(const char *conf_path, const char *dir)
{
	char *copy, *slash, *res;

	if (dir[0] == '/' || conf_path == NULL)
		return sb_strdup(dir);
	copy = sb_strdup(conf_path);
	slash = strrchr(copy, '/');
	res = slash ? (*slash = '\0', sb_asprintf("%s/%s", copy, dir)) : sb_strdup(dir);
	free(copy);
	/* "config/../scripts" reads better in messages as its real path. */
	{
		char real[PATH_MAX];

		if (realpath(res, real)) {
			free(res);
			res = sb_strdup(real);
		}
	}
	return res;
}

static struct dp *
dp_load(const struct sb_config *conf, char *err, size_t errlen)
{
	struct sb_lua_limits lim = { 0 };
	struct dp *dp = sb_calloc(1, sizeof(*dp));
	struct file *files = NULL;
	size_t nfiles = 0;
	lua_State *L;
	static const luaL_Reg prims[] = {
		{ "level", l_level }, { "resolve", l_resolve }, { "nodes", l_nodes },
		{ "node", l_node }, { "in_group", l_in_group }, { "glob", l_glob },
		{ "reply", l_reply }, { "notify", l_notify }, { "log", l_log },
		{ "random_code", l_random_code }, { "builtins", l_builtins },
		{ "acl_check", l_acl_check },
		{ "hooks", l_hooks }, { "hal", l_hal }, { "timer", l_timer },
		{ "cancel", l_cancel }, { "webhooks", l_webhooks },	/* webhook handlers */
		{ NULL, NULL },
	};

	dp->refs = 1;
	dp->ref_dispatch = dp->ref_policy = dp->ref_route = dp->ref_begin = LUA_NOREF;
	dp->ref_commands = dp->ref_presence = LUA_NOREF;
	dp->ref_export = dp->ref_import = LUA_NOREF;
	if ((dp->lua = sb_lua_new(&lim)) == NULL) {
		snprintf(err, errlen, "cannot create a Lua state");
		free(dp);
		return NULL;
	}
	L = sb_lua_state(dp->lua);
	lua_pushlightuserdata(L, dp);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &dp_key);
	lua_newtable(L);
	dp->ref_runs = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_createtable(L, K_END - 1, 0);
	for (int k = 1; k < K_END; k++) {
		lua_pushstring(L, key_names[k]);
		lua_rawseti(L, -2, k);
	}
	lua_rawsetp(L, LUA_REGISTRYINDEX, &keys_key);

	/* The primitives go in the sandbox's globals as __sb; the prelude
	 * takes them and removes the name. */
	sb_lua_push_env(dp->lua);
	luaL_newlib(L, prims);
	lua_pushinteger(L, conf->confirm_timeout);
	lua_setfield(L, -2, "confirm_timeout");
	lua_pushstring(L, SB_VERSION);
	lua_setfield(L, -2, "version");
	lua_setfield(L, -2, "__sb");
	lua_pop(L, 1);
	if (sb_lua_dobuilt(dp->lua, "=prelude", sb_prelude_bc, sb_prelude_bc_len,
	    sb_prelude, strlen(sb_prelude), err, errlen) < 0)
		goto fail;
	if (dp->ref_dispatch == LUA_NOREF) {
		snprintf(err, errlen, "prelude registered no hooks");
		goto fail;
	}

	for (size_t i = 0; i < conf->nscripts; i++) {
		char *dir = script_dir(conf->path, conf->scripts[i]);

		scan(dir, "", &files, &nfiles, 0);
		free(dir);
	}
	if (nfiles > 1)
		qsort(files, nfiles, sizeof(*files), file_cmp);
	for (size_t i = 0; i < nfiles; i++) {
		char *chunk, *buf;
		size_t len;
		int rc;

		if ((buf = read_file(files[i].path, &len, err, errlen)) == NULL)
			goto fail_files;
		lua_rawgeti(L, LUA_REGISTRYINDEX, dp->ref_begin);
		lua_pushstring(L, files[i].path);
		if (sb_lua_call(dp->lua, 1, 0, err, errlen) < 0) {
			free(buf);
			goto fail_files;
		}
		chunk = sb_asprintf("@%s", files[i].path);
		rc = sb_lua_dostring(dp->lua, chunk, buf, len, err, errlen);
		free(chunk);
		free(buf);
		if (rc < 0) {
			/* A memory error has no location: name the file (Lua
			 * shortens long paths, so look for the base name). */
			const char *base = strrchr(files[i].path, '/');

			if (strstr(err, base ? base + 1 : files[i].path) == NULL) {
				char *why = sb_strdup(err);

				snprintf(err, errlen, "%s: %s", files[i].path, why);
				free(why);
			}
			goto fail_files;
		}
	}
	dp->nfiles = nfiles;
	for (size_t i = 0; i < nfiles; i++) {
		free(files[i].rel);
		free(files[i].path);
	}
	free(files);
	return dp;
fail_files:
	for (size_t i = 0; i < nfiles; i++) {
		free(files[i].rel);
		free(files[i].path);
	}
	free(files);
fail:
	{
		/* Keep the first line plus the traceback short for chat. */
		char *tb = strstr(err, "\nstack traceback");

		if (tb)
			*tb = '\0';
	}
	dp_unref(dp);
	return NULL;
}

static void
dp_retire(struct dp *dp)
{
	if (dp == NULL)
		return;
	dp->retired = 1;
	timers_stop(dp);
	dp_unref(dp);
}

int
sb_dialplan_start(char *err, size_t errlen)
{
	struct dp *dp = dp_load(sb_core.conf, err, errlen);

	if (dp == NULL)
		return -1;
	cur = dp;
	sb_dispatch_set_dialplan(dp_dispatch, NULL);
	sb_node_set_policy(dp_policy, NULL);
	sb_notify_set_router(dp_route, NULL);
	sb_info("dialplan loaded: %zu script files", dp->nfiles);
	return 0;
}

/* Copy the plain value at from's top (string, number, boolean, or a
 * table of those, depth levels deep at most) onto to's stack. */
static void
copy_plain(lua_State *from, lua_State *to, int depth)
{
	switch (lua_type(from, -1)) {
	case LUA_TSTRING: {
		size_t len;
		const char *v = lua_tolstring(from, -1, &len);

		lua_pushlstring(to, v, len);
		break;
	}
	case LUA_TNUMBER:
		if (lua_isinteger(from, -1))
			lua_pushinteger(to, lua_tointeger(from, -1));
		else
			lua_pushnumber(to, lua_tonumber(from, -1));
		break;
	case LUA_TBOOLEAN:
		lua_pushboolean(to, lua_toboolean(from, -1));
		break;
	case LUA_TTABLE:
		if (depth > 0) {
			lua_newtable(to);
			lua_pushnil(from);
			while (lua_next(from, -2)) {
				int kt = lua_type(from, -2);

				if (kt == LUA_TSTRING || kt == LUA_TNUMBER) {
					lua_pushvalue(from, -2);	/* the key, on top */
					copy_plain(from, to, 0);
					lua_pop(from, 1);
					copy_plain(from, to, depth - 1);
					lua_rawset(to, -3);
				}
				lua_pop(from, 1);
			}
			break;
		}
		/* FALLTHROUGH */
	default:
		lua_pushnil(to);
		break;
	}
}

/* Confirmation codes given by the old dialplan stay good in the new one
 * (matched again when confirmed).  Best effort: a failure is logged. */
static void
carry_pending(struct dp *old, struct dp *new)
{
	lua_State *from, *to;
	char err[512];
	size_t n;

	if (old == NULL || old->ref_export == LUA_NOREF || new->ref_import == LUA_NOREF)
		return;
	from = sb_lua_state(old->lua);
	to = sb_lua_state(new->lua);
	lua_rawgeti(from, LUA_REGISTRYINDEX, old->ref_export);
	if (sb_lua_call(old->lua, 0, 1, err, sizeof(err)) < 0) {
		sb_warnx("pending confirmations not carried over the reload: %s", err);
		return;
	}
	n = lua_istable(from, -1) ? lua_rawlen(from, -1) : 0;
	if (n > 0) {
		lua_rawgeti(to, LUA_REGISTRYINDEX, new->ref_import);
		copy_plain(from, to, 3);	/* list, record, argv */
		if (sb_lua_call(new->lua, 1, 0, err, sizeof(err)) < 0)
			sb_warnx("pending confirmations not carried over the reload: %s", err);
		else
			sb_info("dialplan reload: %zu pending confirmation%s carried over", n,
			    n == 1 ? "" : "s");
	}
	lua_pop(from, 1);
}

int
sb_dialplan_reload(char *err, size_t errlen)
{
	struct dp *dp = dp_load(sb_core.conf, err, errlen);

	if (dp == NULL) {
		sb_warnx("dialplan reload failed, the old dialplan stays: %s", err);
		return -1;
	}
	carry_pending(cur, dp);
	dp_retire(cur);
	cur = dp;
	sb_info("dialplan reloaded: %zu script files", dp->nfiles);
	return 0;
}

void
sb_dialplan_stop(void)
{
	/* Commands still waiting for hardware end here.  A run whose request
	 * a backend still holds is released but not freed: the backend
	 * answers when its node is closed (sb_nodes_clear), and hal_done
	 * frees it then. */
	while (runs) {
		struct run *r = runs;

		if (r->cmd) {
			sb_cmd_done(r->cmd, 0, "the daemon is stopping");
			r->cmd = NULL;
		}
		if (r->waiting && r->resume == NULL && r->node) {
			struct sb_node *n = r->node;

			/* The node last: dropping it may close its HAL, which
			 * answers (and so frees r) at once. */
			r->node = NULL;
			r->orphan = 1;
			run_release(r);
			sb_node_unref(n);
		} else
			run_free(r);
	}
	free(spare_run);
	spare_run = NULL;
	dp_retire(cur);
	cur = NULL;
	sb_dispatch_set_dialplan(NULL, NULL);
	sb_node_set_policy(NULL, NULL);
	sb_notify_set_router(NULL, NULL);
}

int
sb_dialplan_presence(const struct sb_node *n, char *show, size_t showlen, char *status,
                     size_t statuslen)
{
	lua_State *L;
	char err[512];
	int rc = -1;

	if (cur == NULL || cur->ref_presence == LUA_NOREF)
		return -1;
	L = sb_lua_state(cur->lua);
	lua_rawgeti(L, LUA_REGISTRYINDEX, cur->ref_presence);
	push_node(L, n);
	if (sb_lua_call(cur->lua, 1, 2, err, sizeof(err)) < 0) {
		sb_warnx("presence mapping failed for %s (the built-in one applies): %s",
		    n->name, err);
		return -1;
	}
	if (lua_type(L, -2) == LUA_TSTRING) {
		snprintf(show, showlen, "%s", lua_tostring(L, -2));
		snprintf(status, statuslen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
		rc = 0;
	}
	lua_pop(L, 2);
	return rc;
}

/* Call the commands hook with what the caller pushed after it (nargs)
 * and hand each command to fn. */
static int
list_call(lua_State *L, int nargs, sb_dialplan_cmd_fn *fn, void *ud)
{
	char err[512];
	lua_Integer n;

	if (sb_lua_call(cur->lua, nargs, 1, err, sizeof(err)) < 0) {
		sb_warnx("listing commands failed: %s", err);
		return -1;
	}
	n = luaL_len(L, -1);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		lua_getfield(L, -1, "pattern");
		lua_getfield(L, -2, "help");
		fn(lua_tostring(L, -2), lua_tostring(L, -1), ud);
		lua_pop(L, 3);
	}
	lua_pop(L, 1);
	return 0;
}

int
sb_dialplan_list_for(const struct sb_acl_who *who, const char *context,
                     sb_dialplan_cmd_fn *fn, void *ud)
{
	lua_State *L;

	if (cur == NULL || cur->ref_commands == LUA_NOREF)
		return -1;
	L = sb_lua_state(cur->lua);
	lua_rawgeti(L, LUA_REGISTRYINDEX, cur->ref_commands);
	lua_createtable(L, 0, 6);
	lua_pushstring(L, who->identity);
	lua_setfield(L, -2, "identity");
	lua_pushinteger(L, who->level);
	lua_setfield(L, -2, "level");
	if (who->channel) {
		lua_pushstring(L, who->channel);
		lua_setfield(L, -2, "channel");
	}
	lua_pushstring(L, who->group ? "group" : "direct");
	lua_setfield(L, -2, "kind");
	if (who->room) {
		lua_pushstring(L, who->room);
		lua_setfield(L, -2, "room");
	}
	lua_pushstring(L, context ? context : channel_context(who->channel, who->group));
	lua_setfield(L, -2, "context");
	return list_call(L, 1, fn, ud);
}

int
sb_dialplan_list(const char *context, int level, sb_dialplan_cmd_fn *fn, void *ud)
{
	lua_State *L;

	if (cur == NULL || cur->ref_commands == LUA_NOREF)
		return -1;
	L = sb_lua_state(cur->lua);
	lua_rawgeti(L, LUA_REGISTRYINDEX, cur->ref_commands);
	lua_pushstring(L, context);
	lua_pushinteger(L, level);
	return list_call(L, 2, fn, ud);
}

size_t
sb_dialplan_files(void)
{
	return cur ? cur->nfiles : 0;
}
