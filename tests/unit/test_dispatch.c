/*
 * test_dispatch.c: unit tests for core/dispatch.c (tokenizer, ACL checks,
 * "as", built-ins, the dialplan hook, asynchronous replies, rules on
 * built-ins, the rate limit, the counters) and core/acl.c (roles,
 * inheritance, first-match identity globs).
 *
 * Messages go through the real sb_dispatch() to a fake channel driver
 * registered with the core as "test" (sb_channel_register); its reply()
 * records every text and flag.  No loop, socket or script is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dispatch.h"
#include "log.h"
#include "msg.h"

#define FAILED (SB_REPLY_DONE | SB_REPLY_FAIL)
#define VERSION_REPLY "switchboard " SB_VERSION

/* ---- the fake channel --------------------------------------------------- */

#define MAX_REPLIES 64

struct reply {
	char   *text;		/* NULL if the reply had none */
	unsigned flags;
	char   *conv;
};

static struct reply replies[MAX_REPLIES];
static size_t nreplies;

static int
fake_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text,
           unsigned flags)
{
	assert_string_equal(ch->name, "test");
	assert_string_equal(req->channel, "test");
	if (nreplies == MAX_REPLIES)
		fail_msg("more than %d replies", MAX_REPLIES);
	replies[nreplies].text = text ? strdup(text) : NULL;
	replies[nreplies].flags = flags;
	replies[nreplies].conv = strdup(req->conv);
	nreplies++;
	return 0;
}

static const struct sb_channel_driver fake_driver = {
	.name = "fake",
	.abi = SB_CHANNEL_ABI,
	.reply = fake_reply,
};

static char chan_name[] = "test", chan_context[] = "default";
static struct sb_channel test_chan = {
	.drv = &fake_driver,
	.name = chan_name,
	.context = chan_context,
	.group_context = chan_context,
	.started = 1,
};

static void
replies_clear(void)
{
	for (size_t i = 0; i < nreplies; i++) {
		free(replies[i].text);
		free(replies[i].conv);
	}
	memset(replies, 0, sizeof(replies));
	nreplies = 0;
}

/* Send text from identity on channel "test". */
static void
send_msg(const char *from, const char *text)
{
	sb_dispatch(sb_msg_new("test", from, "conv-1", text));
}

/* Exactly one reply arrived: text (NULL for none) with flags. */
static void
expect_one(const char *text, unsigned flags)
{
	assert_int_equal(nreplies, 1);
	if (text == NULL)
		assert_null(replies[0].text);
	else
		assert_string_equal(replies[0].text, text);
	assert_int_equal(replies[0].flags, flags);
	assert_string_equal(replies[0].conv, "conv-1");
}

/* ---- the dialplan hook -------------------------------------------------- */

/* What the hook saw, copied, and the command it kept. */
struct seen {
	int     calls;
	int     take;		/* return value: 1 took it, 0 did not */
	int     argc;
	char    argv[4][64];
	char    rest[128];
	char    identity[64];
	char    role[32];
	int     level;
	struct sb_cmd *kept;
};

static int
hook(struct sb_cmd *cmd, void *ud)
{
	struct seen *s = ud;

	s->calls++;
	s->argc = cmd->argc;
	for (int i = 0; i < cmd->argc && i < 4; i++)
		snprintf(s->argv[i], sizeof(s->argv[i]), "%s", cmd->argv[i]);
	snprintf(s->rest, sizeof(s->rest), "%s", cmd->rest);
	snprintf(s->identity, sizeof(s->identity), "%s", cmd->identity);
	snprintf(s->role, sizeof(s->role), "%s", cmd->role);
	s->level = cmd->level;
	if (s->take)
		s->kept = cmd;	/* completes later */
	return s->take;
}

/* ---- fixtures ----------------------------------------------------------- */

static const struct sb_role_conf base_roles[] = {
	/* pager first: resolving it needs oncall, which comes after */
	{ .name = "pager", .inherits = "oncall", .line = 10 },
	{ .name = "oncall", .inherits = "operator", .line = 11 },
};

static const struct sb_acl_rule base_rules[] = {
	{ .pattern = "test:alice", .role = "viewer", .line = 20 },
	{ .pattern = "test:pat", .role = "pager", .line = 21 },
	{ .pattern = "test:olga", .role = "operator", .line = 22 },
};

static int
setup(void **state)
{
	char err[256] = "";

	(void)state;
	if (sb_channel_register(&test_chan) < 0)
		return -1;
	if (sb_acl_apply("acl.conf", base_rules, 3, base_roles, 2, err, sizeof(err)) < 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	sb_dispatch_set_dialplan(NULL, NULL);
	test_chan.started = 1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sb_channel_unregister(&test_chan);
	sb_dispatch_set_dialplan(NULL, NULL);
	sb_acl_clear();
	replies_clear();
	return 0;
}

/* ---- sb_tokenize -------------------------------------------------------- */

/* text must split into exactly the n words given. */
static void
expect_words(const char *text, int n, ...)
{
	char **argv = NULL, *store = NULL;
	int argc = sb_tokenize(text, &argv, &store);
	va_list ap;

	assert_int_equal(argc, n);
	assert_non_null(argv);
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		assert_string_equal(argv[i], va_arg(ap, const char *));
	va_end(ap);
	assert_null(argv[n]);
	free(argv);
	free(store);
}

static void
expect_tokenize_fails(const char *text)
{
	char **argv = NULL, *store = NULL;

	assert_int_equal(sb_tokenize(text, &argv, &store), -1);
	assert_null(argv);	/* nothing handed out */
	assert_null(store);
}

static void
test_tokenize_words(void **state)
{
	(void)state;
	expect_words("core show nodes", 3, "core", "show", "nodes");
	expect_words("  core \t show\tnodes  \t", 3, "core", "show", "nodes");
	expect_words("x", 1, "x");
	expect_words("c:\\path a\\b", 2, "c:\\path", "a\\b");	/* no escapes outside quotes */
}

static void
test_tokenize_quotes(void **state)
{
	(void)state;
	expect_words("say \"hello world\" now", 3, "say", "hello world", "now");
	expect_words("a\"b c\"d e", 2, "ab cd", "e");	/* quotes join inside a word */
	expect_words("\"\" x", 2, "", "x");
	expect_words("\"\\\"quoted\\\" word\"", 1, "\"quoted\" word");
	expect_words("\"back\\\\slash\"", 1, "back\\slash");
	expect_words("\"keep \\n and \\x\"", 1, "keep \\n and \\x");
	expect_words("\"tab\tinside\"", 1, "tab\tinside");
}

static void
test_tokenize_unbalanced(void **state)
{
	(void)state;
	expect_tokenize_fails("say \"hello");
	expect_tokenize_fails("\"");
	expect_tokenize_fails("a \"b\" \"c");
	expect_tokenize_fails("\"ends in an escaped quote\\\"");
}

static void
test_tokenize_too_many(void **state)
{
	char text[SB_MAX_ARGS * 3 + 8] = "", **argv = NULL, *store = NULL;

	(void)state;
	for (int i = 0; i < SB_MAX_ARGS; i++)
		strcat(text, "w ");
	assert_int_equal(sb_tokenize(text, &argv, &store), SB_MAX_ARGS);
	assert_string_equal(argv[SB_MAX_ARGS - 1], "w");
	assert_null(argv[SB_MAX_ARGS]);
	free(argv);
	free(store);

	strcat(text, "one-too-many");
	expect_tokenize_fails(text);
}

static void
test_tokenize_empty(void **state)
{
	(void)state;
	expect_words("", 0);
	expect_words(" \t  ", 0);
}

/* ---- the dispatcher ----------------------------------------------------- */

static void
test_unknown_sender(void **state)
{
	(void)state;
	send_msg("test:mallory", "core show version");
	expect_one("not authorized", FAILED);
	replies_clear();

	/* Refused before the line is even looked at. */
	send_msg("test:mallory", "");
	expect_one("not authorized", FAILED);
}

static void
test_viewer_refused_admin_command(void **state)
{
	(void)state;
	send_msg("test:alice", "core show version");
	expect_one("permission denied: 'core show version' needs role admin", FAILED);
	replies_clear();

	/* An inherited operator level is not admin either. */
	send_msg("test:pat", "core show version");
	expect_one("permission denied: 'core show version' needs role admin", FAILED);
}

static void
test_console_is_admin(void **state)
{
	(void)state;
	send_msg("console:x", "core show version");
	expect_one(VERSION_REPLY, SB_REPLY_DONE);
	replies_clear();

	/* Chat clients' trailing blanks and line ends are dropped. */
	send_msg("console:x", "core show version \r\n");
	expect_one(VERSION_REPLY, SB_REPLY_DONE);
	replies_clear();

	/* The longest built-in wins; extra words are its arguments. */
	send_msg("console:x", "  core   show  version extra");
	expect_one(VERSION_REPLY, SB_REPLY_DONE);
}

static void
test_as_other_identity(void **state)
{
	(void)state;
	send_msg("console:x", "as test:alice core show version");
	expect_one("permission denied: 'core show version' needs role admin", FAILED);
	replies_clear();

	send_msg("console:x", "as test:nobody core show version");
	expect_one("test:nobody is not authorized: it would be refused", FAILED);
	replies_clear();

	/* Only an admin may ask. */
	send_msg("test:alice", "as console:x core show version");
	expect_one("permission denied: 'as' needs role admin", FAILED);
	replies_clear();

	/* An admin as an admin runs the command. */
	send_msg("console:x", "as console:y core show version");
	expect_one(VERSION_REPLY, SB_REPLY_DONE);
}

static void
test_too_long(void **state)
{
	char *text = malloc(SB_MAX_LINE + 2);
	const char cmd[] = "core show version";

	(void)state;
	assert_non_null(text);
	/* Exactly the limit passes (trailing blanks are trimmed after). */
	memset(text, ' ', SB_MAX_LINE);
	memcpy(text, cmd, strlen(cmd));
	text[SB_MAX_LINE] = '\0';
	send_msg("console:x", text);
	expect_one(VERSION_REPLY, SB_REPLY_DONE);
	replies_clear();

	/* One byte more is refused, whoever sends it. */
	text[SB_MAX_LINE] = ' ';
	text[SB_MAX_LINE + 1] = '\0';
	send_msg("console:x", text);
	expect_one("message too long (4097 bytes; the limit is 4096)", FAILED);
	replies_clear();

	send_msg("test:mallory", text);
	expect_one("message too long (4097 bytes; the limit is 4096)", FAILED);
	free(text);
}

static void
test_unknown_command(void **state)
{
	struct seen s = { .take = 0 };

	(void)state;
	send_msg("test:alice", "frobnicate now");
	expect_one("unknown command 'frobnicate'; try 'help'", FAILED);
	replies_clear();

	/* Built-in words match whole words only. */
	send_msg("console:x", "core show versions");
	expect_one("unknown command 'core'; try 'help'", FAILED);
	replies_clear();

	/* A dialplan that declines leaves the same answer. */
	sb_dispatch_set_dialplan(hook, &s);
	send_msg("test:alice", "frobnicate now");
	assert_int_equal(s.calls, 1);
	expect_one("unknown command 'frobnicate'; try 'help'", FAILED);
}

static void
test_empty_and_bad_lines(void **state)
{
	struct seen s = { .take = 1 };

	(void)state;
	sb_dispatch_set_dialplan(hook, &s);
	send_msg("test:alice", "  \r\n");
	expect_one(NULL, SB_REPLY_DONE);	/* nothing to do: done, quietly */
	replies_clear();

	send_msg("test:alice", "say \"hello");
	expect_one("unbalanced quote or too many words", FAILED);
	assert_int_equal(s.calls, 0);
}

static void
test_unknown_channel_dropped(void **state)
{
	(void)state;
	sb_dispatch(sb_msg_new("elsewhere", "console:x", "conv-1", "core show version"));
	assert_int_equal(nreplies, 0);	/* and the message was freed (ASan) */
}

static void
test_dialplan_async(void **state)
{
	struct seen s = { .take = 1 };

	(void)state;
	sb_dispatch_set_dialplan(hook, &s);
	send_msg("test:alice", "  reboot  web \"right now\" ");
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.argc, 3);
	assert_string_equal(s.argv[0], "reboot");
	assert_string_equal(s.argv[1], "web");
	assert_string_equal(s.argv[2], "right now");
	assert_string_equal(s.rest, "web \"right now\"");
	assert_string_equal(s.identity, "test:alice");
	assert_string_equal(s.role, "viewer");
	assert_int_equal(s.level, SB_LEVEL_VIEWER);
	assert_non_null(s.kept);
	assert_int_equal(nreplies, 0);	/* nothing until the hook answers */

	sb_cmd_reply(s.kept, "step 1");
	sb_cmd_replyf(s.kept, "step %d of %d", 2, 2);
	assert_int_equal(nreplies, 2);
	sb_cmd_done(s.kept, 1, "rebooted");

	assert_int_equal(nreplies, 3);
	assert_string_equal(replies[0].text, "step 1");
	assert_int_equal(replies[0].flags, 0);
	assert_string_equal(replies[1].text, "step 2 of 2");
	assert_int_equal(replies[1].flags, 0);
	assert_string_equal(replies[2].text, "rebooted");
	assert_int_equal(replies[2].flags, SB_REPLY_DONE);
	for (size_t i = 0; i < nreplies; i++)
		assert_string_equal(replies[i].conv, "conv-1");
}

static void
test_dialplan_failure_and_format(void **state)
{
	struct seen s = { .take = 1 };

	(void)state;
	sb_dispatch_set_dialplan(hook, &s);
	send_msg("test:olga", "power web off");
	assert_non_null(s.kept);
	assert_string_equal(s.role, "operator");
	assert_int_equal(s.level, SB_LEVEL_OPERATOR);
	sb_cmd_donef(s.kept, 0, "no node \"%s\"", "web");
	expect_one("no node \"web\"", FAILED);
}

static void
test_dialplan_as(void **state)
{
	struct seen s = { .take = 1 };

	(void)state;
	sb_dispatch_set_dialplan(hook, &s);
	send_msg("console:x", "as test:pat status  web");
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.argc, 2);
	assert_string_equal(s.argv[0], "status");
	assert_string_equal(s.argv[1], "web");
	assert_string_equal(s.rest, "web");
	assert_string_equal(s.identity, "test:pat");
	assert_string_equal(s.role, "pager");
	assert_int_equal(s.level, SB_LEVEL_OPERATOR);
	sb_cmd_done(s.kept, 1, NULL);
	expect_one(NULL, SB_REPLY_DONE);
}

/* Built-ins come first; the dialplan never sees them, allowed or not. */
static void
test_builtins_before_dialplan(void **state)
{
	struct seen s = { .take = 1 };

	(void)state;
	sb_dispatch_set_dialplan(hook, &s);
	send_msg("console:x", "core show version");
	expect_one(VERSION_REPLY, SB_REPLY_DONE);
	replies_clear();
	send_msg("test:alice", "core show version");
	expect_one("permission denied: 'core show version' needs role admin", FAILED);
	assert_int_equal(s.calls, 0);
}

/* A reply to a channel that went away or stopped is dropped, not sent. */
static void
test_reply_after_channel_gone(void **state)
{
	struct seen s = { .take = 1 };

	(void)state;
	sb_dispatch_set_dialplan(hook, &s);
	send_msg("test:alice", "long job");
	assert_non_null(s.kept);

	test_chan.started = 0;
	sb_cmd_reply(s.kept, "while stopped");
	test_chan.started = 1;
	sb_cmd_reply(s.kept, "while up");
	sb_channel_unregister(&test_chan);
	assert_null(sb_channel_find("test"));
	sb_cmd_done(s.kept, 1, "after it left");	/* frees the command (ASan) */

	expect_one("while up", 0);
}

static void
test_register(void **state)
{
	static char other_name[] = "test";
	struct sb_channel other = { .drv = &fake_driver, .name = other_name };
	size_t n = sb_channel_count();

	(void)state;
	assert_ptr_equal(sb_channel_find("test"), &test_chan);
	assert_int_equal(sb_channel_register(&other), -1);	/* name taken */
	assert_int_equal(sb_channel_count(), n);
	sb_channel_unregister(&other);		/* not registered: no-op */
	assert_ptr_equal(sb_channel_find("test"), &test_chan);
	assert_int_equal(sb_channel_count(), n);
}

/* ---- sb_acl_apply and roles --------------------------------------------- */

static void
test_acl_inheritance(void **state)
{
	int level = -1;

	(void)state;
	assert_int_equal(sb_acl_level("oncall"), SB_LEVEL_OPERATOR);
	assert_int_equal(sb_acl_level("pager"), SB_LEVEL_OPERATOR);
	assert_int_equal(sb_acl_level("viewer"), SB_LEVEL_VIEWER);
	assert_int_equal(sb_acl_level("operator"), SB_LEVEL_OPERATOR);
	assert_int_equal(sb_acl_level("admin"), SB_LEVEL_ADMIN);
	assert_int_equal(sb_acl_level("nobody"), SB_LEVEL_NONE);

	assert_string_equal(sb_acl_role("test:pat", &level), "pager");
	assert_int_equal(level, SB_LEVEL_OPERATOR);
	assert_string_equal(sb_acl_role("test:alice", &level), "viewer");
	assert_int_equal(level, SB_LEVEL_VIEWER);
	assert_null(sb_acl_role("test:mallory", &level));
	assert_int_equal(level, SB_LEVEL_NONE);
}

/* apply must fail with exactly want, and leave the base rules in force. */
static void
expect_apply_fails(const struct sb_acl_rule *acl, size_t nacl,
                   const struct sb_role_conf *rc, size_t nrc, const char *want)
{
	char err[256] = "";
	int level = -1;

	assert_int_equal(sb_acl_apply("acl.conf", acl, nacl, rc, nrc, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_string_equal(sb_acl_role("test:pat", &level), "pager");
	assert_int_equal(level, SB_LEVEL_OPERATOR);
	assert_int_equal(sb_acl_level("oncall"), SB_LEVEL_OPERATOR);
}

static void
test_acl_circular(void **state)
{
	const struct sb_role_conf two[] = {
		{ .name = "ok", .inherits = "viewer", .line = 4 },
		{ .name = "a", .inherits = "b", .line = 5 },
		{ .name = "b", .inherits = "a", .line = 6 },
	};
	const struct sb_role_conf self[] = {
		{ .name = "narcissus", .inherits = "narcissus", .line = 7 },
	};
	const struct sb_role_conf ghost[] = {
		{ .name = "haunted", .inherits = "ghost", .line = 8 },
	};

	(void)state;
	expect_apply_fails(NULL, 0, two, 3,
	    "acl.conf:5: role \"a\" inherits \"b\", which is unknown or circular");
	expect_apply_fails(NULL, 0, self, 1,
	    "acl.conf:7: role \"narcissus\" inherits \"narcissus\", which is unknown or circular");
	expect_apply_fails(NULL, 0, ghost, 1,
	    "acl.conf:8: role \"haunted\" inherits \"ghost\", which is unknown or circular");
}

static void
test_acl_builtin_role_redefined(void **state)
{
	const struct sb_role_conf rc[] = {
		{ .name = "oncall", .inherits = "operator", .line = 2 },
		{ .name = "admin", .inherits = "viewer", .line = 3 },
	};

	(void)state;
	expect_apply_fails(NULL, 0, rc, 2, "acl.conf:3: role \"admin\" is built in");
}

static void
test_acl_unknown_role_in_rule(void **state)
{
	const struct sb_acl_rule acl[] = {
		{ .pattern = "test:*", .role = "viewer", .line = 8 },
		{ .pattern = "test:merlin", .role = "wizard", .line = 9 },
		{ .pattern = "test:x", .role = "admin", .line = 10 },
	};
	const struct sb_role_conf rc[] = {
		{ .name = "oncall", .inherits = "operator", .line = 2 },
	};

	(void)state;
	expect_apply_fails(acl, 3, rc, 1, "acl.conf:9: unknown role \"wizard\"");
	/* A rule may not name a role of the old, replaced set either. */
	expect_apply_fails(acl + 1, 1, NULL, 0, "acl.conf:9: unknown role \"wizard\"");
}

static void
test_acl_first_match_wins(void **state)
{
	const struct sb_acl_rule acl[] = {
		{ .pattern = "test:a*", .role = "viewer", .line = 1 },
		{ .pattern = "test:alice", .role = "admin", .line = 2 },
		{ .pattern = "test:*", .role = "operator", .line = 3 },
		{ .pattern = "console:*", .role = "viewer", .line = 4 },
	};
	char err[256] = "";
	int level = -1;

	(void)state;
	assert_int_equal(sb_acl_apply("acl.conf", acl, 4, NULL, 0, err, sizeof(err)), 0);
	assert_string_equal(sb_acl_role("test:alice", &level), "viewer");
	assert_int_equal(level, SB_LEVEL_VIEWER);
	assert_string_equal(sb_acl_role("test:bob", &level), "operator");
	assert_int_equal(level, SB_LEVEL_OPERATOR);
	assert_null(sb_acl_role("irc:alice", &level));
	assert_int_equal(level, SB_LEVEL_NONE);
	/* The old set is gone. */
	assert_int_equal(sb_acl_level("oncall"), SB_LEVEL_NONE);
	/* The local console is admin whatever the rules say. */
	assert_string_equal(sb_acl_role("console:x", &level), "admin");
	assert_int_equal(level, SB_LEVEL_ADMIN);

	/* And the dispatcher follows the new rules. */
	send_msg("test:alice", "core show version");
	expect_one("permission denied: 'core show version' needs role admin", FAILED);
	replies_clear();

	sb_acl_clear();
	assert_null(sb_acl_role("test:bob", &level));
	assert_int_equal(level, SB_LEVEL_NONE);
	send_msg("test:bob", "core show version");
	expect_one("not authorized", FAILED);
}

/* ---- rules, the rate limit, counters ------------------------------------ */

static const struct sb_rule_conf version_rules[] = {
	{ .command = "core show version", .where = (char *)"group", .allow = 0,
	  .file = (char *)"sb.conf", .line = 40 },
	{ .command = "core show version", .identity = (char *)"test:olga", .role = (char *)"operator",
	  .allow = 1, .file = (char *)"sb.conf", .line = 41 },
};

/* A rule lowers a built-in's role for one identity, and refuses it in
 * group chat for everyone; the hook sees where the message came from. */
static void
test_rules_on_builtins(void **state)
{
	struct sb_msg *m;
	char err[128];

	(void)state;
	assert_int_equal(sb_acl_rules_apply(version_rules, 2, err, sizeof(err)), 0);
	send_msg("test:olga", "core show version");
	expect_one(VERSION_REPLY, SB_REPLY_DONE);
	replies_clear();
	send_msg("test:alice", "core show version");
	expect_one("permission denied: 'core show version' needs role admin", FAILED);
	replies_clear();

	m = sb_msg_new("test", "console:x", "conv-1", "core show version");
	m->kind = SB_MSG_GROUP;
	sb_dispatch(m);
	expect_one("permission denied: a rule forbids 'core show version' here "
	    "(group chat in conv-1 on test)", FAILED);
	replies_clear();

	/* "as ... in ROOM" counts as group chat there; "in direct" not. */
	send_msg("console:x", "as test:olga in room@muc core show version");
	expect_one("permission denied: a rule forbids 'core show version' here "
	    "(group chat in room@muc on test)", FAILED);
	replies_clear();
	send_msg("console:x", "as test:olga in direct core show version");
	expect_one(VERSION_REPLY, SB_REPLY_DONE);
	replies_clear();
	send_msg("console:x", "as test:olga on irc in #lobby core show version");
	expect_one("permission denied: a rule forbids 'core show version' here "
	    "(group chat in #lobby on irc)", FAILED);
}

static void
test_as_sets_where_for_dialplan(void **state)
{
	struct seen s = { .take = 0 };

	(void)state;
	sb_dispatch_set_dialplan(hook, &s);
	send_msg("console:x", "as test:olga on xmpp in ops@muc power web cycle");
	assert_int_equal(s.calls, 1);
	assert_string_equal(s.identity, "test:olga");
	assert_string_equal(s.argv[0], "power");
	assert_string_equal(s.rest, "web cycle");
	expect_one("unknown command 'power'; try 'help'", FAILED);
}

/* Over the limit: one notice, then silence, and nothing runs; counted. */
static void
test_rate_limit_one_notice(void **state)
{
	struct seen s = { .take = 0 };
	struct sb_dispatch_stats before, after;
	size_t done = 0, texts = 0;
	uint64_t in0 = test_chan.msgs_in, out0 = test_chan.msgs_out;

	(void)state;
	sb_acl_rate_set(0.001, 5);	/* no refill within the test */
	sb_dispatch_set_dialplan(hook, &s);
	sb_dispatch_stats(&before);
	for (int i = 0; i < 50; i++)
		send_msg("test:alice", "status");
	assert_int_equal(s.calls, 5);		/* only the first five ran */
	assert_int_equal(nreplies, 50);		/* each ended ... */
	for (size_t i = 0; i < nreplies; i++) {
		done += (replies[i].flags & SB_REPLY_DONE) != 0;
		if (replies[i].text) {
			texts++;
			if (i >= 5)
				assert_true(strncmp(replies[i].text, "rate limit: 5 commands in ", 26) == 0);
		}
	}
	assert_int_equal(done, 50);
	assert_int_equal(texts, 6);		/* 5 "unknown command" + 1 notice */
	assert_non_null(replies[5].text);
	assert_int_equal(replies[5].flags, FAILED);
	assert_null(replies[6].text);
	sb_dispatch_stats(&after);
	assert_int_equal(after.failed - before.failed, 5);
	assert_int_equal(after.refused - before.refused, 45);
	assert_int_equal(after.rate_limited - before.rate_limited, 45);
	assert_int_equal(test_chan.msgs_in - in0, 50);
	assert_int_equal(test_chan.msgs_out - out0, 6);
	replies_clear();

	/* The console is exempt; others have their own bucket. */
	for (int i = 0; i < 20; i++)
		send_msg("console:x", "core show version");
	assert_int_equal(nreplies, 20);
	assert_string_equal(replies[19].text, VERSION_REPLY);
	replies_clear();
	send_msg("test:olga", "status");
	expect_one("unknown command 'status'; try 'help'", FAILED);
	sb_acl_rate_set(0, 0);
}

/* Every command is counted by outcome. */
static void
test_stats_outcomes(void **state)
{
	struct sb_dispatch_stats a, b;

	(void)state;
	sb_dispatch_stats(&a);
	send_msg("console:x", "core show version");	/* ok */
	send_msg("test:mallory", "status");		/* refused: unknown */
	send_msg("test:alice", "core stop");		/* refused: role */
	send_msg("test:alice", "nosuch");		/* failed */
	sb_dispatch_stats(&b);
	assert_int_equal(b.ok - a.ok, 1);
	assert_int_equal(b.refused - a.refused, 2);
	assert_int_equal(b.failed - a.failed, 1);
	assert_int_equal(b.rate_limited - a.rate_limited, 0);
}

/* ---- main --------------------------------------------------------------- */

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokenize_words),
		cmocka_unit_test(test_tokenize_quotes),
		cmocka_unit_test(test_tokenize_unbalanced),
		cmocka_unit_test(test_tokenize_too_many),
		cmocka_unit_test(test_tokenize_empty),
		T(test_unknown_sender),
		T(test_viewer_refused_admin_command),
		T(test_console_is_admin),
		T(test_as_other_identity),
		T(test_too_long),
		T(test_unknown_command),
		T(test_empty_and_bad_lines),
		T(test_unknown_channel_dropped),
		T(test_dialplan_async),
		T(test_dialplan_failure_and_format),
		T(test_dialplan_as),
		T(test_builtins_before_dialplan),
		T(test_reply_after_channel_gone),
		T(test_register),
		T(test_acl_inheritance),
		T(test_acl_circular),
		T(test_acl_builtin_role_redefined),
		T(test_acl_unknown_role_in_rule),
		T(test_acl_first_match_wins),
		T(test_rules_on_builtins),
		T(test_as_sets_where_for_dialplan),
		T(test_rate_limit_one_notice),
		T(test_stats_outcomes),
	};

	sb_log_set_level(SB_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
