/*
 * test_acl.c: unit tests for the rules and the rate limit of core/acl.c:
 * every match field, first match wins, a rule's role raising and lowering
 * the command's own, allow = false, errors as file:line, the all-or-nothing
 * configure, and the token bucket with its one-notice spells.  Roles and
 * identity globs are tested in test_dispatch.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"
#include "conf.h"
#include "util.h"

/* R() below sets allow = 1 and a rule may set it again to 0. */
#pragma GCC diagnostic ignored "-Woverride-init"

static const struct sb_role_conf roles[] = {
	{ .name = "oncall", .inherits = "operator", .line = 3 },
};

static const struct sb_acl_rule idents[] = {
	{ .pattern = "xmpp:bob@*", .role = "viewer", .line = 5 },
	{ .pattern = "xmpp:olga@*", .role = "oncall", .line = 6 },
	{ .pattern = "*", .role = "admin", .line = 7 },
};

static int
setup(void **state)
{
	char err[256];

	(void)state;
	if (sb_acl_apply("sb.conf", idents, 3, roles, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sb_acl_clear();
	return 0;
}

#define R(...) { .allow = 1, .file = (char *)"sb.conf", __VA_ARGS__ }

static void
apply(const struct sb_rule_conf *rc, size_t n)
{
	char err[256] = "";

	if (sb_acl_rules_apply(rc, n, err, sizeof(err)) < 0)
		fail_msg("rules: %s", err);
}

static const struct sb_acl_who bob_direct = {
	.identity = "xmpp:bob@example.org", .level = SB_LEVEL_VIEWER, .channel = "xmpp",
};
static const struct sb_acl_who bob_room = {
	.identity = "xmpp:bob@example.org", .level = SB_LEVEL_VIEWER, .channel = "xmpp",
	.group = 1, .room = "ops@muc.example.org",
};
static const struct sb_acl_who olga_room = {
	.identity = "xmpp:olga@example.org", .level = SB_LEVEL_OPERATOR, .channel = "xmpp",
	.group = 1, .room = "ops@muc.example.org",
};
static const struct sb_acl_who olga_irc = {
	.identity = "irc:olga!~o@host", .level = SB_LEVEL_OPERATOR, .channel = "irc",
	.group = 1, .room = "#lobby",
};
static const struct sb_acl_who admin_direct = {
	.identity = "xmpp:root@example.org", .level = SB_LEVEL_ADMIN, .channel = "xmpp",
};

static int
check(const struct sb_acl_who *w, const char *cmd, const char *node, int own,
      struct sb_acl_verdict *v)
{
	return sb_acl_check(w, cmd, node ? &node : NULL, node ? 1 : 0, own, NULL, v);
}

/* No rules: the command's own role decides. */
static void
test_no_rules_own_role(void **state)
{
	struct sb_acl_verdict v;

	(void)state;
	assert_int_equal(check(&bob_direct, "status", NULL, SB_LEVEL_VIEWER, &v), SB_ACL_ALLOW);
	assert_null(v.rule);
	assert_int_equal(check(&bob_direct, "power", "web", SB_LEVEL_OPERATOR, &v), SB_ACL_ROLE);
	assert_int_equal(v.need, SB_LEVEL_OPERATOR);
	assert_string_equal(v.role, "operator");
	/* A role that depends on the arguments: unknown, allowed. */
	assert_int_equal(check(&bob_direct, "power", "web", -1, &v), SB_ACL_ALLOW);
}

/* The example: power refused in groups; on db* it needs admin;
 * in #lobby on irc everything needs admin. */
static const struct sb_rule_conf example[] = {
	R(.command = "power", .where = "group", .allow = 0, .line = 10),
	R(.command = "power", .node = "db*", .role = "admin", .line = 11),
	R(.command = "*", .channel = "irc", .room = "#lobby", .role = "admin", .line = 12),
};

static void
test_example_rules(void **state)
{
	struct sb_acl_verdict v;

	(void)state;
	apply(example, 3);
	/* In a room: refused outright, whatever the role. */
	assert_int_equal(check(&olga_room, "power", "web", SB_LEVEL_OPERATOR, &v), SB_ACL_DENY);
	assert_string_equal(v.rule, "sb.conf:10");
	assert_int_equal(check(&olga_irc, "power", "web", SB_LEVEL_OPERATOR, &v), SB_ACL_DENY);
	/* Directly: db needs admin, web the command's own operator. */
	struct sb_acl_who olga_direct = olga_room;

	olga_direct.group = 0;
	olga_direct.room = NULL;
	assert_int_equal(check(&olga_direct, "power", "db1", SB_LEVEL_OPERATOR, &v), SB_ACL_ROLE);
	assert_int_equal(v.need, SB_LEVEL_ADMIN);
	assert_string_equal(v.role, "admin");
	assert_string_equal(v.rule, "sb.conf:11");
	assert_int_equal(check(&olga_direct, "power", "web", SB_LEVEL_OPERATOR, &v), SB_ACL_ALLOW);
	assert_null(v.rule);
	assert_int_equal(check(&admin_direct, "power", "db1", SB_LEVEL_OPERATOR, &v), SB_ACL_ALLOW);
	/* #lobby on irc: even status needs admin; another room does not. */
	assert_int_equal(check(&olga_irc, "status", NULL, SB_LEVEL_VIEWER, &v), SB_ACL_ROLE);
	assert_string_equal(v.rule, "sb.conf:12");
	assert_int_equal(check(&olga_room, "status", NULL, SB_LEVEL_VIEWER, &v), SB_ACL_ALLOW);
}

/* First match wins: an exception before the general rule. */
static void
test_first_match_wins(void **state)
{
	static const struct sb_rule_conf rc[] = {
		R(.command = "power", .identity = "xmpp:olga@*", .line = 20),	/* allow = true */
		R(.command = "power", .allow = 0, .line = 21),
		R(.command = "power", .role = "viewer", .line = 22),	/* never reached */
	};
	struct sb_acl_verdict v;

	(void)state;
	apply(rc, 3);
	assert_int_equal(check(&olga_room, "power", "web", SB_LEVEL_OPERATOR, &v), SB_ACL_ALLOW);
	assert_string_equal(v.rule, "sb.conf:20");
	assert_int_equal(v.need, SB_LEVEL_OPERATOR);	/* allow = true keeps its own */
	assert_int_equal(check(&bob_direct, "power", "web", SB_LEVEL_OPERATOR, &v), SB_ACL_DENY);
	assert_string_equal(v.rule, "sb.conf:21");
	assert_int_equal(check(&admin_direct, "power", "web", SB_LEVEL_OPERATOR, &v), SB_ACL_DENY);
	/* Other commands: no rule. */
	assert_int_equal(check(&bob_direct, "sensors", "web", SB_LEVEL_VIEWER, &v), SB_ACL_ALLOW);
	assert_null(v.rule);
}

/* A rule's role lowers as well as raises; operator-defined roles count. */
static void
test_role_lowers_and_raises(void **state)
{
	static const struct sb_rule_conf rc[] = {
		R(.command = "power", .node = "lab*", .role = "viewer", .line = 30),
		R(.command = "events", .role = "oncall", .line = 31),
		R(.command = "core show *", .role = "operator", .line = 32),
	};
	struct sb_acl_verdict v;

	(void)state;
	apply(rc, 3);
	assert_int_equal(check(&bob_direct, "power", "lab3", SB_LEVEL_OPERATOR, &v), SB_ACL_ALLOW);
	assert_int_equal(v.need, SB_LEVEL_VIEWER);
	assert_int_equal(check(&bob_direct, "events", "web", SB_LEVEL_VIEWER, &v), SB_ACL_ROLE);
	assert_string_equal(v.role, "oncall");
	assert_int_equal(v.need, SB_LEVEL_OPERATOR);
	assert_int_equal(check(&olga_room, "events", "web", SB_LEVEL_VIEWER, &v), SB_ACL_ALLOW);
	/* A glob over built-in words. */
	assert_int_equal(check(&olga_room, "core show nodes", NULL, SB_LEVEL_ADMIN, &v),
	    SB_ACL_ALLOW);
	assert_int_equal(check(&olga_room, "core stop", NULL, SB_LEVEL_ADMIN, &v), SB_ACL_ROLE);
	/* A role that depends on the arguments is replaced by the rule's. */
	assert_int_equal(check(&bob_direct, "events", "web", -1, &v), SB_ACL_ROLE);
}

/* A node rule applies if any target matches, and not to commands with no
 * node at all. */
static void
test_node_any_target(void **state)
{
	static const struct sb_rule_conf rc[] = {
		R(.node = "db*", .allow = 0, .line = 40),
	};
	const char *some[] = { "web", "mail", "db2" }, *none[] = { "web", "mail" };

	(void)state;
	apply(rc, 1);
	assert_int_equal(sb_acl_check(&admin_direct, "power", some, 3, SB_LEVEL_OPERATOR, NULL,
	    NULL), SB_ACL_DENY);
	assert_int_equal(sb_acl_check(&admin_direct, "power", none, 2, SB_LEVEL_OPERATOR, NULL,
	    NULL), SB_ACL_ALLOW);
	assert_int_equal(sb_acl_check(&admin_direct, "nodes", NULL, 0, SB_LEVEL_VIEWER, NULL,
	    NULL), SB_ACL_ALLOW);
}

/* where, room and channel: a room rule never matches a direct message. */
static void
test_where_room_channel(void **state)
{
	static const struct sb_rule_conf rc[] = {
		R(.command = "sensors", .where = "direct", .allow = 0, .line = 50),
		R(.command = "inventory", .room = "ops@*", .allow = 0, .line = 51),
		R(.command = "events", .channel = "irc*", .allow = 0, .line = 52),
		R(.command = "nodes", .where = "any", .allow = 0, .line = 53),
	};

	(void)state;
	apply(rc, 4);
	assert_int_equal(check(&bob_direct, "sensors", "web", 10, NULL), SB_ACL_DENY);
	assert_int_equal(check(&bob_room, "sensors", "web", 10, NULL), SB_ACL_ALLOW);
	assert_int_equal(check(&bob_room, "inventory", "web", 10, NULL), SB_ACL_DENY);
	assert_int_equal(check(&bob_direct, "inventory", "web", 10, NULL), SB_ACL_ALLOW);
	assert_int_equal(check(&olga_irc, "inventory", "web", 10, NULL), SB_ACL_ALLOW);
	assert_int_equal(check(&olga_irc, "events", "web", 10, NULL), SB_ACL_DENY);
	assert_int_equal(check(&olga_room, "events", "web", 10, NULL), SB_ACL_ALLOW);
	assert_int_equal(check(&bob_direct, "nodes", NULL, 10, NULL), SB_ACL_DENY);
	assert_int_equal(check(&bob_room, "nodes", NULL, 10, NULL), SB_ACL_DENY);
}

/* Errors name file:line, and the rules in force stay. */
static void
test_rule_errors_keep_old(void **state)
{
	static const struct sb_rule_conf bad_role[] = {
		R(.command = "power", .allow = 0, .line = 60),
		R(.command = "power", .role = "wizard", .file = (char *)"inc/rules.conf", .line = 7),
	};
	static const struct sb_rule_conf bad_where[] = {
		R(.command = "power", .where = "sideways", .allow = 0, .line = 61),
	};
	char err[256] = "";

	(void)state;
	apply(example, 3);
	assert_int_equal(sb_acl_rules_apply(bad_role, 2, err, sizeof(err)), -1);
	assert_string_equal(err, "inc/rules.conf:7: rule: unknown role \"wizard\"");
	assert_int_equal(sb_acl_rules_apply(bad_where, 1, err, sizeof(err)), -1);
	assert_string_equal(err, "sb.conf:61: rule: where must be \"direct\", \"group\" or \"any\"");
	assert_int_equal(check(&olga_room, "power", "web", SB_LEVEL_OPERATOR, NULL), SB_ACL_DENY);
}

/* configure is all or nothing: a bad rule keeps the old roles as well. */
static void
test_configure_all_or_nothing(void **state)
{
	struct sb_rule_conf bad[] = {
		R(.command = "power", .role = "pager", .line = 70),
	};
	struct sb_role_conf pager[] = { { .name = "pager", .inherits = "viewer", .line = 2 } };
	struct sb_config conf = { 0 };
	char err[256] = "";
	double rate;
	int level, burst;

	(void)state;
	conf.path = (char *)"new.conf";
	conf.rules = bad;
	conf.nrules = 1;
	conf.rate = 3;
	conf.burst = 7;
	/* "pager" is unknown without its role. */
	assert_int_equal(sb_acl_configure(&conf, err, sizeof(err)), -1);
	assert_string_equal(err, "sb.conf:70: rule: unknown role \"pager\"");
	assert_string_equal(sb_acl_role("xmpp:olga@example.org", &level), "oncall");
	sb_acl_rate_get(&rate, &burst);
	assert_int_equal(burst, 0);
	/* With it, everything is replaced at once. */
	conf.roles = pager;
	conf.nroles = 1;
	assert_int_equal(sb_acl_configure(&conf, err, sizeof(err)), 0);
	assert_null(sb_acl_role("xmpp:olga@example.org", &level));
	assert_int_equal(sb_acl_level("pager"), SB_LEVEL_VIEWER);
	sb_acl_rate_get(&rate, &burst);
	assert_true(rate == 3.0 && burst == 7);
}

/* ---- the rate limit ---- */

static void
test_rate_burst_then_one_notice(void **state)
{
	int ok = 0, notices = 0, silent = 0;
	double wait;

	(void)state;
	sb_acl_rate_set(2.0, 10);
	/* 50 commands within one second. */
	for (int i = 0; i < 50; i++) {
		switch (sb_acl_rate("xmpp:bob@x", 100.0 + i * 0.02, &wait)) {
		case SB_RATE_OK:
			ok++;
			break;
		case SB_RATE_NOTICE:
			notices++;
			assert_int_equal(i, 10);
			assert_true(wait > 4.5 && wait <= 5.0);
			break;
		default:
			silent++;
		}
	}
	assert_int_equal(ok, 10);
	assert_int_equal(notices, 1);
	assert_int_equal(silent, 39);
	/* Others are not affected; the console never is. */
	assert_int_equal(sb_acl_rate("xmpp:olga@x", 101.0, NULL), SB_RATE_OK);
	for (int i = 0; i < 100; i++)
		assert_int_equal(sb_acl_rate("console:root", 101.0, NULL), SB_RATE_OK);
	/* Still over until the bucket is full again (10 tokens at 2/s). */
	assert_int_equal(sb_acl_rate("xmpp:bob@x", 104.0, &wait), SB_RATE_SILENT);
	assert_int_equal(sb_acl_rate("xmpp:bob@x", 106.0, &wait), SB_RATE_OK);
	/* A new spell gets a new notice. */
	for (int i = 0; i < 9; i++)
		assert_int_equal(sb_acl_rate("xmpp:bob@x", 106.0, NULL), SB_RATE_OK);
	assert_int_equal(sb_acl_rate("xmpp:bob@x", 106.0, NULL), SB_RATE_NOTICE);
	assert_int_equal(sb_acl_rate("xmpp:bob@x", 106.1, NULL), SB_RATE_SILENT);
}

static void
test_rate_steady_under_limit_and_off(void **state)
{
	(void)state;
	sb_acl_rate_set(2.0, 3);
	/* Two a second for a minute never trips it. */
	for (int i = 0; i < 120; i++)
		assert_int_equal(sb_acl_rate("irc:a!b@c", 10.0 + i * 0.5, NULL), SB_RATE_OK);
	/* Burst 0: no limit. */
	sb_acl_rate_set(2.0, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sb_acl_rate("irc:a!b@c", 10.0, NULL), SB_RATE_OK);
}

/* Many identities: idle full buckets are forgotten, limited ones kept. */
static void
test_rate_many_identities(void **state)
{
	char id[64];

	(void)state;
	sb_acl_rate_set(1.0, 2);
	assert_int_equal(sb_acl_rate("x:flood", 0.0, NULL), SB_RATE_OK);
	assert_int_equal(sb_acl_rate("x:flood", 0.0, NULL), SB_RATE_OK);
	assert_int_equal(sb_acl_rate("x:flood", 0.0, NULL), SB_RATE_NOTICE);
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "x:user%d", i);
		assert_int_equal(sb_acl_rate(id, 0.0001 * i, NULL), SB_RATE_OK);
	}
	/* Past 1024 the table was pruned, but flood is still in its spell
	 * (full again only at t = 2). */
	assert_int_equal(sb_acl_rate("x:flood", 1.0, NULL), SB_RATE_SILENT);
	assert_int_equal(sb_acl_rate("x:flood", 2.5, NULL), SB_RATE_OK);
	/* user0 spent a token; forgotten or not, it may go on. */
	assert_int_equal(sb_acl_rate("x:user0", 2.5, NULL), SB_RATE_OK);
	assert_int_equal(sb_acl_rate("x:user0", 2.5, NULL), SB_RATE_OK);
	assert_int_equal(sb_acl_rate("x:user0", 2.5, NULL), SB_RATE_NOTICE);
}

/* The index under the rate limit's table (util.c's sb_index): every name
 * found through growth and a rebuild, absent ones not. */
static char index_keys[300][16];

static const char *
index_key(size_t i)
{
	return index_keys[i];
}

static void
test_index_finds_every_name(void **state)
{
	struct sb_index x = { .key = index_key };

	(void)state;
	assert_int_equal(sb_index_find(&x, "k0"), SIZE_MAX);
	for (size_t i = 0; i < SB_ARRAY_LEN(index_keys); i++) {
		snprintf(index_keys[i], sizeof(index_keys[i]), "k%zu", i);
		sb_index_append(&x);
		assert_int_equal(sb_index_find(&x, index_keys[i]), i);
		assert_int_equal(sb_index_find(&x, index_keys[i / 2]), i / 2);
	}
	assert_int_equal(sb_index_find(&x, "k300"), SIZE_MAX);
	sb_index_build(&x, 100);	/* the table shrank to its first 100 */
	assert_int_equal(sb_index_find(&x, "k99"), 99);
	assert_int_equal(sb_index_find(&x, "k100"), SIZE_MAX);
	sb_index_free(&x);
	assert_int_equal(sb_index_find(&x, "k1"), SIZE_MAX);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_no_rules_own_role),
		T(test_example_rules),
		T(test_first_match_wins),
		T(test_role_lowers_and_raises),
		T(test_node_any_target),
		T(test_where_room_channel),
		T(test_rule_errors_keep_old),
		T(test_configure_all_or_nothing),
		T(test_rate_burst_then_one_notice),
		T(test_rate_steady_under_limit_and_off),
		T(test_rate_many_identities),
		T(test_index_finds_every_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
