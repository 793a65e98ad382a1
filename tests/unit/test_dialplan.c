/*
 * test_dialplan.c: unit tests for core/dialplan.c and core/prelude.lua:
 * pattern and argument matching, the implied node, node globs and groups,
 * fan-out, roles (inherited, or chosen by argument), confirmation, contexts,
 * the shipped hysteresis policy, timers, and reload.
 *
 * Each test runs the real dialplan in-process: a private folder holds a
 * config with three simulated nodes and the Lua scripts below; messages go
 * through the real sb_dispatch() from two fake channels whose reply() and
 * send() record what they get, and the loop runs until the command ends.
 * The sandbox's own limits are tested in test_script.c, not here.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "acl.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dialplan.h"
#include "dispatch.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "node.h"
#include "notify.h"
#include "world.h"

#define FAILED (SB_REPLY_DONE | SB_REPLY_FAIL)
#define DONE   SB_REPLY_DONE
#define DEADLINE_MS 30000	/* generous: sanitizer builds on a busy machine */

/* ---- the scripts ---------------------------------------------------------- */

/* Markers "-- @name" find the line numbers errors must name. */
static const char a_cmds[] =
	"-- a_cmds.lua: commands for test_dialplan.c\n"
	"command \"echo <word>\" { run = function(ctx, a) return 'word=' .. a.word end }\n"
	"command \"echo number <n:number>\" {\n"
	"	run = function(ctx, a) return 'number=' .. fmtnum(a.n) end }\n"
	"command \"paint <colour:red|green|blue> [<times:number>]\" {\n"
	"	run = function(ctx, a) return a.colour .. ' x' .. tostring(a.times) end }\n"
	"command \"say <text...>\" { run = function(ctx, a) return 'said: ' .. a.text end }\n"
	"command \"probe <node> [<what>]\" {\n"
	"	run = function(ctx, a)\n"
	"		return string.format('probe %s what=%s', a.node, tostring(a.what))\n"
	"	end }\n"
	"command \"count <node>\" { multi = true,\n"
	"	run = function(ctx, a) return #a.node .. ': ' .. table.concat(a.node, ',') end }\n"
	"command \"temp <node>\" {\n"
	"	run = function(ctx, a)\n"
	"		local r, err = hal.read(a.node)\n"
	"		if not r then return nil, err end\n"
	"		return a.node .. ' ' .. fmtnum(r:sensor('cpu_temp').value)\n"
	"	end }\n"
	"command \"fails <node>\" {\n"
	"	run = function(ctx, a)\n"
	"		if a.node == 'web2' then error('web2 broke') end -- @fails\n"
	"		if a.node == 'db' then return nil, 'db says no' end\n"
	"		return a.node .. ' fine'\n"
	"	end }\n"
	"command \"describe <node> <sensor> <state>\" {\n"
	"	run = function(ctx, a)\n"
	"		return hal.read(a.node):sensor(a.sensor):describe(a.state)\n"
	"	end }\n"
	"command \"boom\" { run = function() local t = nil; return t.x end } -- @boom\n"
	"command \"yield\" { run = function() coroutine.yield() end }\n"
	"restarts = 0\n"
	"command \"restarts\" { run = function() return tostring(restarts) end }\n"
	"command \"restart <node>\" { role = 'operator', confirm = true,\n"
	"	run = function(ctx, a)\n"
	"		restarts = restarts + 1\n"
	"		return 'restarted ' .. a.node .. ' #' .. restarts\n"
	"	end }\n"
	"command \"drain <node> [<force:force>]\" { role = 'operator',\n"
	"	confirm = function(a) return a.force ~= nil end,\n"
	"	run = function(ctx, a) return 'drained ' .. a.node end }\n"
	"command \"page <who:me|team>\" {\n"
	"	role = function(a) if a.who == 'team' then return 'oncall' end end,\n"
	"	run = function(ctx, a) return 'paged ' .. a.who .. ' as ' .. ctx.role end }\n"
	"command \"oncall-only\" { role = 'oncall',\n"
	"	run = function(ctx) return 'oncall ok for ' .. ctx.identity end }\n"
	"command \"nuke\" { role = 'admin', run = function() return 'nuked' end }\n"
	"command \"badrole\" { role = function() return 'wizard' end, run = function() end }\n";

static const char b_ctx[] =
	"context \"lab\"\n"
	"command \"experiment\" { run = function(ctx) return 'experiment in ' .. ctx.context end }\n"
	"context(\"ops\", { include = { \"lab\" } })\n"
	"command \"deploy\" { run = function(ctx) return 'deploy in ' .. ctx.context end }\n"
	"command \"list\" { context = { 'default', 'ops' },\n"
	"	run = function(ctx)\n"
	"		local t = {}\n"
	"		for _, c in ipairs(commands(ctx.context, ctx.level)) do\n"
	"			t[#t + 1] = c.pattern .. '@' .. c.file\n"
	"		end\n"
	"		return table.concat(t, ';')\n"
	"	end }\n";

static const char c_timers[] =
	"ticks, fired, stops = 0, 0, 0\n"
	"every(0.02, function() ticks = ticks + 1 end)\n"
	"command \"ticks\" { run = function() return tostring(ticks) end }\n"
	"command \"fired\" { run = function() return tostring(fired) end }\n"
	"command \"stops\" { run = function() return tostring(stops) end }\n"
	"command \"later\" { run = function()\n"
	"	after(0.02, function() fired = fired + 1 end)\n"
	"	return 'scheduled' end }\n"
	/* Each one-shot holds 1 MB until it has fired. */
	"command \"burst\" { run = function()\n"
	"	for i = 1, 4 do\n"
	"		local big = string.rep('x', 1000000)\n"
	"		after(0.01, function() fired = fired + #big // 1000000 end)\n"
	"	end\n"
	"	return 'scheduled 4' end }\n"
	/* Keeps the state busy (and alive past a reload) for 0.3 s of CPU, and
	 * says how often the ticker ran meanwhile. */
	"command \"hold\" { run = function()\n"
	"	local c0, t0 = os.clock(), ticks\n"
	"	while os.clock() < c0 + 0.3 do hal.read('web') end\n"
	"	return tostring(ticks - t0) end }\n"
	"command \"unfired\" { run = function()\n"
	"	local id = after(0.02, function() fired = fired + 100 end)\n"
	"	return tostring(cancel(id)) .. ' ' .. tostring(cancel(id)) end }\n"
	"command \"stopper\" { run = function()\n"
	"	local id\n"
	"	id = every(0.02, function()\n"
	"		stops = stops + 1\n"
	"		if stops == 3 then cancel(id) end\n"
	"	end)\n"
	"	return 'started' end }\n";

/* The ticker's generation letter is replaced on reload. */
static const char d_ticker_fmt[] =
	"route { to = { \"test:ops\" } }\n"
	"every(0.02, function() notify { text = \"tick %c\" } end)\n";

/* ---- the fake channels ---------------------------------------------------- */

#define MAX_REPLIES 64

struct reply {
	char   *chan;
	char   *text;		/* NULL if the reply had none */
	unsigned flags;
};

static struct reply replies[MAX_REPLIES];
static size_t nreplies, ndone;
static unsigned long ticks_a, ticks_b, sends_other;

static int
fake_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text,
           unsigned flags)
{
	assert_string_equal(ch->name, req->channel);
	if (nreplies == MAX_REPLIES)
		fail_msg("more than %d replies", MAX_REPLIES);
	replies[nreplies].chan = strdup(ch->name);
	replies[nreplies].text = text ? strdup(text) : NULL;
	replies[nreplies].flags = flags;
	nreplies++;
	if (flags & SB_REPLY_DONE)
		ndone++;
	return 0;
}

static int
fake_send(struct sb_channel *ch, const char *to, const char *text)
{
	assert_string_equal(ch->name, "test");
	assert_string_equal(to, "ops");
	/* Notifications carry their event id first: "[E12] tick A". */
	if (text[0] == '[' && strstr(text, "] "))
		text = strstr(text, "] ") + 2;
	if (strcmp(text, "tick A") == 0)
		ticks_a++;
	else if (strcmp(text, "tick B") == 0)
		ticks_b++;
	else
		sends_other++;
	return 0;
}

static const struct sb_channel_driver fake_driver = {
	.name = "fake",
	.abi = SB_CHANNEL_ABI,
	.reply = fake_reply,
	.send = fake_send,
};

static char test_name[] = "test", ops_name[] = "ops";
static char ctx_default[] = "default", ctx_ops[] = "ops";
/* "test": direct messages in context default, rooms in ops; "ops": ops. */
static struct sb_channel test_chan = {
	.drv = &fake_driver, .name = test_name,
	.context = ctx_default, .group_context = ctx_ops, .started = 1,
};
static struct sb_channel ops_chan = {
	.drv = &fake_driver, .name = ops_name,
	.context = ctx_ops, .group_context = ctx_ops, .started = 1,
};

static void
replies_clear(void)
{
	for (size_t i = 0; i < nreplies; i++) {
		free(replies[i].chan);
		free(replies[i].text);
	}
	memset(replies, 0, sizeof(replies));
	nreplies = 0;
}

/* ---- the fixture ---------------------------------------------------------- */

static char scripts[128];

static void
write_file(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", scripts, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
write_ticker(char gen)
{
	char text[256];

	snprintf(text, sizeof(text), d_ticker_fmt, gen);
	write_file("d_ticker.lua", text);
}

/* The shipped policy, from the source tree. */
static char *
read_shipped_policy(void)
{
	char path[PATH_MAX], *buf;
	size_t len;
	FILE *f;

	if (sb_world_source("scripts/policy.lua", path, sizeof(path)) < 0 ||
	    (f = fopen(path, "r")) == NULL)
		return NULL;
	buf = calloc(1, 1 << 16);
	len = fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* 1-based line of the script text holding marker. */
static int
line_of(const char *text, const char *marker)
{
	const char *at = strstr(text, marker);
	int line = 1;

	assert_non_null(at);
	for (const char *p = text; p < at; p++)
		line += *p == '\n';
	return line;
}

static const char conf_fmt[] =
	"daemon = {\n"
	"  scripts = [ \"%s\" ];\n"
	"  confirm_timeout = %d;\n"
	"  poll_interval = 3600.0;\n"
	"};\n"
	"acl = (\n"
	"  { match = \"test:viewer\"; role = \"viewer\"; },\n"
	"  { match = \"test:op\";     role = \"operator\"; },\n"
	"  { match = \"test:oncall*\"; role = \"oncall\"; },\n"
	"  { match = \"test:admin\";  role = \"admin\"; }\n"
	");\n"
	"roles = ( { name = \"oncall\"; inherits = \"operator\"; } );\n"
	"rate_limit = { burst = 0; };\n"	/* test_acl.c tests it */
	"notify = { group_wait = 0.0; };\n"
	SB_WORLD_NODES;

static int
start(int confirm_timeout)
{
	char conf[sizeof(conf_fmt) + PATH_MAX], err[1024] = "", *policy;
	const char *dir;

	if ((dir = sb_world_dir_new(NULL, "sb-dialplan")) == NULL)
		return -1;
	if ((size_t)snprintf(scripts, sizeof(scripts), "%s/scripts", dir) >= sizeof(scripts) ||
	    mkdir(scripts, 0700) < 0)
		return -1;
	if ((policy = read_shipped_policy()) == NULL) {
		fprintf(stderr, "setup: cannot find scripts/policy.lua\n");
		return -1;
	}
	write_file("a_cmds.lua", a_cmds);
	write_file("b_ctx.lua", b_ctx);
	write_file("c_timers.lua", c_timers);
	write_ticker('A');
	write_file("policy.lua", policy);
	free(policy);

	/* Notifications go through the store and the spool, as in the daemon. */
	snprintf(conf, sizeof(conf), conf_fmt, scripts, confirm_timeout);
	if (sb_world_start(conf, (struct sb_channel *[]){ &test_chan, &ops_chan }, 2, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "setup: %s\n", err);
		sb_world_stop();
		return -1;
	}
	ticks_a = ticks_b = sends_other = 0;
	ndone = 0;
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	return start(60);
}

static int
setup_short_confirm(void **state)
{
	(void)state;
	return start(1);
}

static int
teardown(void **state)
{
	(void)state;
	sb_world_stop();
	replies_clear();
	return 0;
}

/* ---- driving it ----------------------------------------------------------- */

/* Run the loop until pred() holds; fail after the deadline. */
static void
run_until(int (*pred)(void *), void *arg, const char *what)
{
	uint64_t deadline = sb_now_ms() + DEADLINE_MS;

	while (!pred(arg)) {
		if (sb_now_ms() > deadline)
			fail_msg("timed out waiting for %s", what);
		sb_loop_once(sb_core.loop, 20);
	}
}

static int
done_count_reached(void *arg)
{
	return ndone >= *(size_t *)arg;
}

struct send {
	const char *chan;	/* default "test" */
	const char *from;
	const char *session;	/* default "s1" */
	const char *node;	/* the implied node, or NULL */
	int     group;		/* a room message */
	const char *text;
};

/* Dispatch one message without running the loop. */
static void
post(const struct send *s)
{
	struct sb_msg *m = sb_msg_new(s->chan ? s->chan : "test", s->from, "conv-1", s->text);

	sb_msg_set_session(m, s->session ? s->session : "s1");
	if (s->node)
		sb_msg_set_node(m, s->node);
	if (s->group)
		m->kind = SB_MSG_GROUP;
	sb_dispatch(m);
}

/* Dispatch and run the loop until the command has ended. */
static void
send_wait(const struct send *s)
{
	size_t want = ndone + 1;

	post(s);
	run_until(done_count_reached, &want, s->text);
	assert_int_equal(ndone, want);
}

/* The command's only reply is its end: want (NULL: no text) with flags. */
static void
expect_s(const struct send *s, const char *want, unsigned flags)
{
	replies_clear();
	send_wait(s);
	if (nreplies != 1)
		fail_msg("'%s': %zu replies, the first \"%s\"", s->text, nreplies,
		    replies[0].text ? replies[0].text : "(null)");
	if (want == NULL)
		assert_null(replies[0].text);
	else
		assert_string_equal(replies[0].text, want);
	assert_int_equal(replies[0].flags, flags);
	assert_string_equal(replies[0].chan, s->chan ? s->chan : "test");
}

static void
expect(const char *from, const char *text, const char *want, unsigned flags)
{
	expect_s(&(struct send){ .from = from, .text = text }, want, flags);
}

/* Replies of the last command: n texts then the end (NULL text). */
static void
expect_fanout(const char *from, const char *text, unsigned flags, int n, ...)
{
	va_list ap;

	replies_clear();
	send_wait(&(struct send){ .from = from, .text = text });
	assert_int_equal(nreplies, n + 1);
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		assert_non_null(replies[i].text);
		assert_string_equal(replies[i].text, va_arg(ap, const char *));
		assert_int_equal(replies[i].flags, 0);
	}
	va_end(ap);
	assert_null(replies[n].text);
	assert_int_equal(replies[n].flags, flags);
}

/* A command that answers a number (a script's counter). */
static long
number(const char *text)
{
	char *end;
	long v;

	replies_clear();
	send_wait(&(struct send){ .from = "test:admin", .text = text });
	assert_int_equal(nreplies, 1);
	assert_int_equal(replies[0].flags, DONE);
	assert_non_null(replies[0].text);
	v = strtol(replies[0].text, &end, 10);
	assert_int_equal(*end, '\0');
	return v;
}

struct at_least {
	const char *cmd;
	long    min;
};

static int
number_reached(void *arg)
{
	struct at_least *a = arg;

	return number(a->cmd) >= a->min;
}

static void
wait_number(const char *cmd, long min)
{
	struct at_least a = { cmd, min };

	run_until(number_reached, &a, cmd);
}

static int
counter_reached(void *arg)
{
	struct { unsigned long *v, min; } *a = arg;

	return *a->v >= a->min;
}

static void
wait_counter(unsigned long *v, unsigned long min, const char *what)
{
	struct { unsigned long *v, min; } a = { v, min };

	run_until(counter_reached, &a, what);
}

/* "... Send 'confirm CODE' within ..." -> CODE */
static void
code_of(const char *text, char code[7])
{
	const char *p = strstr(text, "Send 'confirm ");

	assert_non_null(p);
	p += strlen("Send 'confirm ");
	assert_int_equal(strspn(p, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"), 6);
	assert_int_equal(p[6], '\'');
	memcpy(code, p, 6);
	code[6] = '\0';
}

/* Run s expecting a confirmation request: want is its text with the code
 * as XXXXXX; the code goes to code. */
static void
ask(const struct send *s, const char *want, char code[7])
{
	char buf[512], *at;

	replies_clear();
	send_wait(s);
	assert_int_equal(nreplies, 1);
	assert_int_equal(replies[0].flags, DONE);
	assert_non_null(replies[0].text);
	code_of(replies[0].text, code);
	snprintf(buf, sizeof(buf), "%s", replies[0].text);
	at = strstr(buf, code);
	memcpy(at, "XXXXXX", 6);
	assert_string_equal(buf, want);
}

static struct sb_node *
node(const char *name)
{
	struct sb_node *n = sb_node_find(name);

	assert_non_null(n);
	return n;
}

/* ---- matching ------------------------------------------------------------- */

static void
test_words_and_types(void **state)
{
	(void)state;
	expect("test:viewer", "echo hi", "word=hi", DONE);
	expect("test:viewer", "ECHO Hi", "word=Hi", DONE);	/* words ignore case, args not */
	/* The pattern with more literal words is tried first. */
	expect("test:viewer", "echo number 42", "number=42", DONE);
	expect("test:viewer", "echo number 2.5", "number=2.5", DONE);
	expect("test:viewer", "echo number 0x10", "number=16", DONE);
	expect("test:viewer", "echo number", "word=number", DONE);
	expect("test:viewer", "echo number x",
	    "usage: echo number <n:number> | echo <word>", FAILED);
	expect("test:viewer", "echo", "usage: echo number <n:number> | echo <word>", FAILED);
	expect("test:viewer", "echo a b", "usage: echo number <n:number> | echo <word>", FAILED);
	expect("test:viewer", "frobnicate now", "unknown command 'frobnicate'; try 'help'", FAILED);
}

static void
test_choices_optional_rest(void **state)
{
	const char *usage = "usage: paint <colour:red|green|blue> [<times:number>]";

	(void)state;
	expect("test:viewer", "paint red", "red xnil", DONE);
	expect("test:viewer", "paint BLUE 3", "blue x3", DONE);	/* a choice is lower-cased */
	expect("test:viewer", "paint purple", usage, FAILED);
	expect("test:viewer", "paint red many", usage, FAILED);
	expect("test:viewer", "paint", usage, FAILED);
	expect("test:viewer", "paint red 1 2", usage, FAILED);

	expect("test:viewer", "say hello   big world", "said: hello big world", DONE);
	expect("test:viewer", "say \"two  spaces\" kept", "said: two  spaces kept", DONE);
	expect("test:viewer", "say", "usage: say <text...>", FAILED);
}

static void
test_node_argument(void **state)
{
	const char *usage = "usage: probe <node> [<what>] (name the node)";

	(void)state;
	expect("test:viewer", "probe db", "probe db what=nil", DONE);
	expect("test:viewer", "probe db cpu", "probe db what=cpu", DONE);
	expect("test:viewer", "probe", usage, FAILED);
	/* A word in a node's place that names no node is called out. */
	expect("test:viewer", "probe nosuch", "no node matches 'nosuch'; try 'nodes'", FAILED);
	expect("test:viewer", "probe group:nothing",
	    "no node matches 'group:nothing'; try 'nodes'", FAILED);
	expect("test:viewer", "probe x*", "no node matches 'x*'; try 'nodes'", FAILED);
}

static void
test_implied_node(void **state)
{
	struct send s = { .from = "test:viewer", .node = "web" };

	(void)state;
	s.text = "probe";
	expect_s(&s, "probe web what=nil", DONE);
	s.text = "probe cpu";		/* not a node: the implied one, and <what> */
	expect_s(&s, "probe web what=cpu", DONE);
	s.text = "probe db";		/* a node named wins over the implied one */
	expect_s(&s, "probe db what=nil", DONE);
	s.text = "probe db cpu";
	expect_s(&s, "probe db what=cpu", DONE);
	s.text = "count";
	expect_s(&s, "1: web", DONE);
	s.text = "temp";
	expect_s(&s, "web 45", DONE);
	/* No "(name the node)" hint when a node was implied. */
	s.text = "probe a b c";
	expect_s(&s, "usage: probe <node> [<what>]", FAILED);
}

static void
test_globs_and_groups(void **state)
{
	(void)state;
	expect_fanout("test:viewer", "probe web*", DONE, 2,
	    "probe web what=nil", "probe web2 what=nil");
	expect_fanout("test:viewer", "probe group:rack1 x", DONE, 2,
	    "probe web what=x", "probe web2 what=x");
	expect_fanout("test:viewer", "probe all", DONE, 3,
	    "probe web what=nil", "probe web2 what=nil", "probe db what=nil");
	/* One node matched: an ordinary single answer. */
	expect("test:viewer", "probe group:rack2", "probe db what=nil", DONE);
	expect("test:viewer", "probe w?b", "probe web what=nil", DONE);
	expect("test:viewer", "probe group:frontend", "probe web what=nil", DONE);
	/* A multi command gets the whole list once. */
	expect("test:viewer", "count web*", "2: web,web2", DONE);
	expect("test:viewer", "count all", "3: web,web2,db", DONE);
	expect("test:viewer", "count group:rack2", "1: db", DONE);
	/* hal.* yields inside the fan-out, node after node. */
	expect_fanout("test:viewer", "temp all", DONE, 3, "web 45", "web2 20", "db 30");
}

static void
test_fanout_failures(void **state)
{
	char want[256];

	(void)state;
	snprintf(want, sizeof(want), "web2: error: %s/a_cmds.lua:%d: web2 broke",
	    scripts, line_of(a_cmds, "-- @fails"));
	expect_fanout("test:viewer", "fails all", FAILED, 3,
	    "web fine", want, "db: db says no");
	expect("test:viewer", "fails web", "web fine", DONE);
	expect("test:viewer", "fails db", "db says no", FAILED);
}

static void
test_script_error_names_file_and_line(void **state)
{
	char want[256];

	(void)state;
	snprintf(want, sizeof(want), "%s/a_cmds.lua:%d: attempt to index a nil value (local 't')",
	    scripts, line_of(a_cmds, "-- @boom"));
	expect("test:viewer", "boom", want, FAILED);
	expect("test:viewer", "yield",
	    "script error: coroutine.yield() outside a coroutine of its own", FAILED);
	/* And the dialplan goes on answering. */
	expect("test:viewer", "echo still", "word=still", DONE);
}

static void
test_contexts(void **state)
{
	char want[512];

	(void)state;
	/* Direct messages on "test" are in context default. */
	expect("test:viewer", "experiment", "unknown command 'experiment'; try 'help'", FAILED);
	expect("test:viewer", "deploy", "unknown command 'deploy'; try 'help'", FAILED);
	/* "ops" includes "lab"; default's commands are not there. */
	expect_s(&(struct send){ .chan = "ops", .from = "test:viewer", .text = "deploy" },
	    "deploy in ops", DONE);
	expect_s(&(struct send){ .chan = "ops", .from = "test:viewer", .text = "experiment" },
	    "experiment in ops", DONE);
	expect_s(&(struct send){ .chan = "ops", .from = "test:viewer", .text = "echo hi" },
	    "unknown command 'echo'; try 'help'", FAILED);
	/* A room on "test" uses its group context, ops. */
	expect_s(&(struct send){ .from = "test:viewer", .group = 1, .text = "deploy" },
	    "deploy in ops", DONE);

	/* commands(): what a context shows, with file:line. */
	snprintf(want, sizeof(want), "experiment@%s/b_ctx.lua:2;deploy@%s/b_ctx.lua:4;"
	    "list@%s/b_ctx.lua:5", scripts, scripts, scripts);
	expect_s(&(struct send){ .chan = "ops", .from = "test:viewer", .text = "list" },
	    want, DONE);
}

/* commands(context, level) hides what the level may not run. */
static void
test_commands_by_level(void **state)
{
	char want[256];

	(void)state;
	replies_clear();
	send_wait(&(struct send){ .from = "test:viewer", .text = "list" });
	assert_int_equal(nreplies, 1);
	snprintf(want, sizeof(want), "echo <word>@%s/a_cmds.lua:2;", scripts);
	assert_non_null(strstr(replies[0].text, want));
	assert_non_null(strstr(replies[0].text, ";page <who:me|team>@"));	/* depends */
	assert_null(strstr(replies[0].text, "restart <node>"));
	assert_null(strstr(replies[0].text, "oncall-only"));
	assert_null(strstr(replies[0].text, "nuke"));
	assert_null(strstr(replies[0].text, "deploy"));

	replies_clear();
	send_wait(&(struct send){ .from = "test:oncall1", .text = "list" });
	assert_non_null(strstr(replies[0].text, ";restart <node>@"));
	assert_non_null(strstr(replies[0].text, ";oncall-only@"));
	assert_null(strstr(replies[0].text, "nuke"));

	replies_clear();
	send_wait(&(struct send){ .from = "test:admin", .text = "list" });
	assert_non_null(strstr(replies[0].text, ";nuke@"));
}

/* The prelude keeps what it uses: a script reassigning the globals it
 * shares with the prelude does not change how confirmation codes are read
 * or sensors described. */
static void
test_prelude_ignores_script_globals(void **state)
{
	struct send op = { .from = "test:op", .text = "restart web" };
	char err[1024] = "", code[7], text[32];

	(void)state;
	expect("test:viewer", "describe db vcore critical", "vcore 1.2 V (critical <= 1)", DONE);
	write_file("zz_meddle.lua", "function string.upper(s) return 'nope' end\n"
	    "math.abs = nil\n");
	assert_int_equal(sb_dialplan_reload(err, sizeof(err)), 0);
	ask(&op, "'restart web' needs confirmation. Node: web. Send 'confirm XXXXXX' within 60 s.",
	    code);
	for (char *p = code; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	snprintf(text, sizeof(text), "confirm %s", code);
	expect("test:op", text, "restarted web #1", DONE);
	expect("test:viewer", "describe db vcore critical", "vcore 1.2 V (critical <= 1)", DONE);
	expect("test:viewer", "describe db vcore warning", "vcore 1.2 V (warning <= 1.1)", DONE);
}

/* A command registered once commands have run (here by a command) is
 * found; and the prelude's index of commands is its own, not a global of
 * the scripts'. */
static void
test_command_registered_late(void **state)
{
	char err[1024] = "";

	(void)state;
	write_file("zz_late.lua", "by_verb = 'mine'\n"
	    "command \"teach\" { run = function()\n"
	    "	command \"taught\" { run = function() return 'learnt' end }\n"
	    "	return by_verb end }\n");
	assert_int_equal(sb_dialplan_reload(err, sizeof(err)), 0);
	expect("test:viewer", "echo hi", "word=hi", DONE);
	expect("test:viewer", "teach", "mine", DONE);
	expect("test:viewer", "taught", "learnt", DONE);
}

/* ---- roles ---------------------------------------------------------------- */

static void
test_roles(void **state)
{
	char code[7];

	(void)state;
	expect("test:viewer", "restart web",
	    "permission denied: 'restart web' needs role operator (you are viewer)", FAILED);
	expect("test:viewer", "oncall-only",
	    "permission denied: 'oncall-only' needs role oncall (you are viewer)", FAILED);
	expect("test:viewer", "nuke", "permission denied: 'nuke' needs role admin (you are viewer)",
	    FAILED);

	/* oncall inherits operator (config roles). */
	ask(&(struct send){ .from = "test:oncall1", .text = "restart web" },
	    "'restart web' needs confirmation. Node: web. Send 'confirm XXXXXX' within 60 s.", code);
	expect("test:oncall1", "oncall-only", "oncall ok for test:oncall1", DONE);
	expect("test:oncall1", "nuke", "permission denied: 'nuke' needs role admin (you are oncall)",
	    FAILED);
	/* Roles are levels: an operator has oncall's level. */
	expect("test:op", "oncall-only", "oncall ok for test:op", DONE);
	expect("test:admin", "nuke", "nuked", DONE);

	/* "as" runs with the other identity's role. */
	expect("test:admin", "as test:viewer nuke",
	    "permission denied: 'nuke' needs role admin (you are viewer)", FAILED);
	/* Nothing ran. */
	assert_int_equal(number("restarts"), 0);
}

static void
test_role_by_argument(void **state)
{
	(void)state;
	expect("test:viewer", "page me", "paged me as viewer", DONE);
	expect("test:viewer", "page team",
	    "permission denied: 'page team' needs role oncall (you are viewer)", FAILED);
	expect("test:oncall2", "page team", "paged team as oncall", DONE);
	expect("test:op", "page team", "paged team as operator", DONE);
	expect("test:viewer", "badrole",
	    "command 'badrole': role function gave unknown role 'wizard'", FAILED);
}

/* ---- confirmation --------------------------------------------------------- */

static void
test_confirm_flow(void **state)
{
	struct send op = { .from = "test:op", .session = "s1" };
	char code[7], lower[16];

	(void)state;
	op.text = "restart web";
	ask(&op, "'restart web' needs confirmation. Node: web. Send 'confirm XXXXXX' within 60 s.",
	    code);
	assert_int_equal(number("restarts"), 0);

	op.text = lower;
	snprintf(lower, sizeof(lower), "confirm %s", code);
	/* Another identity in the same session, the same identity in another
	 * session or on another channel: refused, and the code stays good. */
	expect_s(&(struct send){ .from = "test:oncall1", .session = "s1", .text = lower },
	    "that code was issued to another conversation", FAILED);
	expect_s(&(struct send){ .from = "test:admin", .session = "s1", .text = lower },
	    "that code was issued to another conversation", FAILED);
	expect_s(&(struct send){ .from = "test:op", .session = "s2", .text = lower },
	    "that code was issued to another conversation", FAILED);
	expect_s(&(struct send){ .chan = "ops", .from = "test:op", .session = "s1", .text = lower },
	    "that code was issued to another conversation", FAILED);
	assert_int_equal(number("restarts"), 0);

	/* Codes are read back case-insensitively. */
	for (char *p = lower; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	expect_s(&op, "restarted web #1", DONE);
	/* Used once only. */
	expect_s(&op, "unknown or already used confirmation code", FAILED);
	assert_int_equal(number("restarts"), 1);

	op.text = "confirm";
	expect_s(&op, "usage: confirm <code>", FAILED);
	op.text = "confirm BADCODE";
	expect_s(&op, "unknown or already used confirmation code", FAILED);
}

static void
test_confirm_fanout(void **state)
{
	struct send op = { .from = "test:op" };
	char code[7], text[32];

	(void)state;
	op.text = "restart group:rack1";
	ask(&op, "'restart group:rack1' needs confirmation. It will touch 2 nodes: web, web2. "
	    "Send 'confirm XXXXXX' within 60 s.", code);
	snprintf(text, sizeof(text), "confirm %s", code);
	expect_fanout("test:op", text, DONE, 2, "restarted web #1", "restarted web2 #2");

	op.text = "restart all";
	ask(&op, "'restart all' needs confirmation. It will touch 3 nodes: web, web2, db. "
	    "Send 'confirm XXXXXX' within 60 s.", code);
	op.text = "restart web*";
	ask(&op, "'restart web*' needs confirmation. It will touch 2 nodes: web, web2. "
	    "Send 'confirm XXXXXX' within 60 s.", code);
	/* An implied node is the scope too. */
	ask(&(struct send){ .from = "test:op", .node = "db", .text = "restart" },
	    "'restart' needs confirmation. Node: db. Send 'confirm XXXXXX' within 60 s.", code);
	snprintf(text, sizeof(text), "confirm %s", code);
	expect("test:op", text, "restarted db #3", DONE);

	/* confirm = function(args): only some forms ask. */
	expect("test:op", "drain web", "drained web", DONE);
	op.text = "drain web force";
	ask(&op, "'drain web force' needs confirmation. Node: web. "
	    "Send 'confirm XXXXXX' within 60 s.", code);
	snprintf(text, sizeof(text), "confirm %s", code);
	expect("test:op", text, "drained web", DONE);
}

static int
clock_reached(void *arg)
{
	return time(NULL) >= *(time_t *)arg;
}

static void
test_confirm_expiry(void **state)
{
	struct send op = { .from = "test:op", .text = "restart web" };
	char code[7], text[32];
	time_t when;

	(void)state;
	ask(&op, "'restart web' needs confirmation. Node: web. Send 'confirm XXXXXX' within 1 s.",
	    code);
	/* Issued at or before now, good for 1 s: expired two seconds on. */
	when = time(NULL) + 2;
	run_until(clock_reached, &when, "the code to expire");
	snprintf(text, sizeof(text), "confirm %s", code);
	expect("test:op", text, "confirmation code expired; run the command again", FAILED);
	expect("test:op", text, "unknown or already used confirmation code", FAILED);
	assert_int_equal(number("restarts"), 0);

	/* A fresh code still works. */
	ask(&op, "'restart web' needs confirmation. Node: web. Send 'confirm XXXXXX' within 1 s.",
	    code);
	snprintf(text, sizeof(text), "confirm %s", code);
	expect("test:op", text, "restarted web #1", DONE);
}

/* ---- the shipped status policy -------------------------------------------- */

static void
set_poll(const char *node_name, const char *sensor, const char *value, enum sb_state st,
         const char *reason)
{
	char text[128];
	struct sb_node *n = node(node_name);

	snprintf(text, sizeof(text), "sim set %s %s %s", node_name, sensor, value);
	replies_clear();
	send_wait(&(struct send){ .from = "test:admin", .text = text });
	assert_int_equal(replies[0].flags, DONE);
	sb_node_poll(n);	/* the simulator answers at once */
	assert_string_equal(sb_state_name(n->state), sb_state_name(st));
	assert_string_equal(n->reason, reason);
}

static void
test_policy_hysteresis(void **state)
{
	struct sb_node *web = node("web");

	(void)state;
	sb_node_poll(web);
	assert_int_equal(web->state, SB_ST_OK);
	assert_string_equal(web->reason, "all 2 sensors normal");

	set_poll("web", "cpu_temp", "90", SB_ST_CRITICAL, "cpu_temp 90 C (critical >= 90)");
	/* Within 2 % of the limit: held critical (the sensor alone says warning). */
	set_poll("web", "cpu_temp", "89", SB_ST_CRITICAL, "cpu_temp 89 C (critical >= 90)");
	set_poll("web", "cpu_temp", "88.3", SB_ST_CRITICAL, "cpu_temp 88.3 C (critical >= 90)");
	set_poll("web", "cpu_temp", "88", SB_ST_WARNING, "cpu_temp 88 C (warning >= 85)");
	/* Warning is held the same way: 85 - 1.7. */
	set_poll("web", "cpu_temp", "84", SB_ST_WARNING, "cpu_temp 84 C (warning >= 85)");
	set_poll("web", "cpu_temp", "83", SB_ST_OK, "all 2 sensors normal");
	/* Rising, the plain limits apply. */
	set_poll("web", "cpu_temp", "84", SB_ST_OK, "all 2 sensors normal");
	set_poll("web", "cpu_temp", "89", SB_ST_WARNING, "cpu_temp 89 C (warning >= 85)");
	set_poll("web", "cpu_temp", "90", SB_ST_CRITICAL, "cpu_temp 90 C (critical >= 90)");
	set_poll("web", "cpu_temp", "40", SB_ST_OK, "all 2 sensors normal");

	/* A low limit: held until 2 % above it. */
	set_poll("web", "fan1", "400", SB_ST_CRITICAL, "fan1 400 RPM (critical <= 500)");
	set_poll("web", "fan1", "505", SB_ST_CRITICAL, "fan1 505 RPM (critical <= 500)");
	set_poll("web", "fan1", "515", SB_ST_WARNING, "fan1 515 RPM (warning <= 1000)");
	set_poll("web", "fan1", "7000", SB_ST_OK, "all 2 sensors normal");

	/* The worst sensor names the state. */
	set_poll("web", "cpu_temp", "86", SB_ST_WARNING, "cpu_temp 86 C (warning >= 85)");
	set_poll("web", "fan1", "450", SB_ST_CRITICAL, "fan1 450 RPM (critical <= 500)");
	set_poll("web", "fan1", "7000", SB_ST_WARNING, "cpu_temp 86 C (warning >= 85)");
	set_poll("web", "cpu_temp", "40", SB_ST_OK, "all 2 sensors normal");

	/* Power and failures. */
	replies_clear();
	send_wait(&(struct send){ .from = "test:admin", .text = "sim power web off" });
	sb_node_poll(web);
	assert_int_equal(web->state, SB_ST_OFF);
	assert_string_equal(web->reason, "powered off");
	send_wait(&(struct send){ .from = "test:admin", .text = "sim power web on" });
	send_wait(&(struct send){ .from = "test:admin", .text = "sim fail web on" });
	sb_node_poll(web);
	assert_int_equal(web->state, SB_ST_DOWN);
	assert_string_equal(web->reason, "simulated failure: node does not answer");
	send_wait(&(struct send){ .from = "test:admin", .text = "sim fail web off" });
	sb_node_poll(web);
	assert_int_equal(web->state, SB_ST_OK);
	assert_string_equal(web->reason, "all 2 sensors normal");
}

/* ---- timers --------------------------------------------------------------- */

static void
test_timers(void **state)
{
	long t;

	(void)state;
	wait_number("ticks", 3);
	expect("test:viewer", "later", "scheduled", DONE);
	wait_number("fired", 1);
	/* A one-shot fires once: ten more periods of the 20 ms ticker. */
	t = number("ticks");
	wait_number("ticks", t + 10);
	assert_int_equal(number("fired"), 1);

	/* A one-shot cancelled before it fired never fires. */
	expect("test:viewer", "unfired", "true false", DONE);
	t = number("ticks");
	wait_number("ticks", t + 10);
	assert_int_equal(number("fired"), 1);

	/* A timer that cancels itself on its third run. */
	expect("test:viewer", "stopper", "started", DONE);
	wait_number("stops", 3);
	t = number("ticks");
	wait_number("ticks", t + 10);
	assert_int_equal(number("stops"), 3);
}

/* One-shots that fired let go of their functions: four 1 MB upvalues a
 * run, 25 runs, would be 100 MB kept against the 64 MiB ceiling. */
static void
test_fired_timers_are_freed(void **state)
{
	(void)state;
	for (int i = 1; i <= 25; i++) {
		expect("test:viewer", "burst", "scheduled 4", DONE);
		wait_number("fired", 4L * i);
	}
}

/* ---- reload --------------------------------------------------------------- */

static void
test_reload_broken_keeps_old(void **state)
{
	char err[1024] = "", want[1024];
	long t;

	(void)state;
	wait_counter(&ticks_a, 2, "the ticker");

	write_file("zz_new.lua", "command \"fresh\" { run = function() return 'fresh' end }\n"
	    "local x = = 1\n");
	assert_int_equal(sb_dialplan_reload(err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s/zz_new.lua:2: unexpected symbol near '='", scripts);
	assert_string_equal(err, want);
	/* The same through the admin command. */
	snprintf(want, sizeof(want), "dialplan reload failed, the old dialplan stays: "
	    "%s/zz_new.lua:2: unexpected symbol near '='", scripts);
	expect("test:admin", "dialplan reload", want, FAILED);

	/* An error while running a script, and one while registering. */
	write_file("zz_new.lua", "\n\nerror('no good')\n");
	assert_int_equal(sb_dialplan_reload(err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s/zz_new.lua:3: no good", scripts);
	assert_string_equal(err, want);
	write_file("zz_new.lua", "command \"fresh\" { role = 'wizard', run = function() end }\n");
	assert_int_equal(sb_dialplan_reload(err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s/zz_new.lua:1: command 'fresh': unknown role 'wizard'",
	    scripts);
	assert_string_equal(err, want);

	/* The old dialplan answers, its timers run, its policy judges. */
	expect("test:viewer", "echo hi", "word=hi", DONE);
	expect("test:viewer", "fresh", "unknown command 'fresh'; try 'help'", FAILED);
	t = number("ticks");
	wait_number("ticks", t + 3);
	set_poll("web", "cpu_temp", "90", SB_ST_CRITICAL, "cpu_temp 90 C (critical >= 90)");
	set_poll("web", "cpu_temp", "89", SB_ST_CRITICAL, "cpu_temp 89 C (critical >= 90)");
}

static void
test_reload_replaces_timers(void **state)
{
	char err[1024] = "";
	unsigned long a;

	(void)state;
	wait_counter(&ticks_a, 3, "tick A");
	wait_number("ticks", 3);

	write_ticker('B');
	write_file("zz_new.lua", "command \"fresh\" { run = function() return 'fresh' end }\n");
	assert_int_equal(sb_dialplan_reload(err, sizeof(err)), 0);
	a = ticks_a;
	/* The new state started from scratch, with its own timers ... */
	assert_int_equal(number("ticks"), 0);
	expect("test:viewer", "fresh", "fresh", DONE);
	wait_counter(&ticks_b, 5, "tick B");
	/* ... and the old ones are gone (a tick the old state notified just
	 * before the reload is still delivered: accepted is never lost). */
	assert_true(ticks_a <= a + 1);
	assert_int_equal(sends_other, 0);

	expect("test:admin", "dialplan reload", "dialplan reloaded (6 script files)", DONE);
	/* From scratch again (the 20 ms ticker may have run once while the
	 * answer waited for the store's commit of its notifications). */
	assert_true(number("ticks") <= 1);
}

/* A retired state's timers stop at once, even while a command keeps the
 * state alive. */
static void
test_reload_stops_old_timers_at_once(void **state)
{
	char err[1024] = "";
	size_t want = ndone + 1;
	unsigned long a;

	(void)state;
	wait_counter(&ticks_a, 3, "tick A");
	replies_clear();
	post(&(struct send){ .from = "test:viewer", .text = "hold" });
	assert_int_equal(nreplies, 0);
	write_ticker('B');
	assert_int_equal(sb_dialplan_reload(err, sizeof(err)), 0);
	a = ticks_a;
	run_until(done_count_reached, &want, "hold");
	assert_int_equal(nreplies, 1);
	assert_string_equal(replies[0].text, "0");
	assert_int_equal(replies[0].flags, DONE);
	assert_true(ticks_a <= a + 1);	/* one accepted before the reload */
	assert_true(ticks_b >= 3);	/* the new ticker ran meanwhile */
}

/* A reload never cuts a command short: it finishes in the old state. */
static void
test_reload_while_command_waits(void **state)
{
	char err[1024] = "";
	size_t want = ndone + 1;

	(void)state;
	replies_clear();
	post(&(struct send){ .from = "test:viewer", .text = "temp all" });
	assert_int_equal(nreplies, 0);	/* waiting for the first reading */
	write_file("a_cmds.lua", "command \"temp <node>\" { run = function() return 'new' end }\n");
	assert_int_equal(sb_dialplan_reload(err, sizeof(err)), 0);
	run_until(done_count_reached, &want, "temp all");
	assert_int_equal(nreplies, 4);
	assert_string_equal(replies[0].text, "web 45");
	assert_string_equal(replies[1].text, "web2 20");
	assert_string_equal(replies[2].text, "db 30");
	assert_null(replies[3].text);
	assert_int_equal(replies[3].flags, DONE);
	/* New commands come from the new scripts. */
	expect("test:viewer", "temp web", "new", DONE);
	expect("test:viewer", "echo hi", "unknown command 'echo'; try 'help'", FAILED);
}

static void
test_stop_while_command_waits(void **state)
{
	(void)state;
	replies_clear();
	post(&(struct send){ .from = "test:viewer", .text = "temp web" });
	assert_int_equal(nreplies, 0);
	sb_dialplan_stop();
	assert_int_equal(nreplies, 1);
	assert_string_equal(replies[0].text, "the daemon is stopping");
	assert_int_equal(replies[0].flags, FAILED);
	/* With no dialplan, only the built-ins are left. */
	expect("test:viewer", "echo hi", "unknown command 'echo'; try 'help'", FAILED);
}

/* ---- main ----------------------------------------------------------------- */

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

/* With poll_interval = 3600, the nodes' polls are spread an hour apart
 * (slots at 0, 20 and 40 minutes); their first polls still come at once,
 * so a restarted daemon shows its farm without waiting for the slots. */
static int
all_polled(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < sb_node_count(); i++)
		if (sb_node_at(i)->state == SB_ST_UNKNOWN)
			return 0;
	return 1;
}

static void
test_first_polls_do_not_wait_for_their_slots(void **state)
{
	(void)state;
	assert_int_equal(sb_node_count(), 3);
	/* After its first poll, the third waits 40 minutes for its slot. */
	assert_int_equal(sb_node_find("db")->rephase_ms, 2400 * 1000);
	run_until(all_polled, NULL, "every node's first poll");
	assert_int_equal(sb_node_find("db")->state, SB_ST_OK);
	assert_int_equal(sb_node_find("db")->rephase_ms, 0);	/* taken by the first poll */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_words_and_types),
		T(test_choices_optional_rest),
		T(test_node_argument),
		T(test_implied_node),
		T(test_globs_and_groups),
		T(test_fanout_failures),
		T(test_script_error_names_file_and_line),
		T(test_contexts),
		T(test_commands_by_level),
		T(test_prelude_ignores_script_globals),
		T(test_command_registered_late),
		T(test_roles),
		T(test_role_by_argument),
		T(test_confirm_flow),
		T(test_confirm_fanout),
		cmocka_unit_test_setup_teardown(test_confirm_expiry, setup_short_confirm, teardown),
		T(test_policy_hysteresis),
		T(test_timers),
		T(test_fired_timers_are_freed),
		T(test_reload_broken_keeps_old),
		T(test_reload_replaces_timers),
		T(test_reload_stops_old_timers_at_once),
		T(test_reload_while_command_waits),
		T(test_stop_while_command_waits),
		T(test_first_polls_do_not_wait_for_their_slots),
	};

	sb_log_set_level(SB_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
