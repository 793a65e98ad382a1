/*
 * test_conf.c: unit tests for core/conf.c: loading a config file into
 * struct sb_config, the schema check and its "file:line: message" errors,
 * fingerprints, the helpers drivers use, and @include.
 *
 * Each test writes real files into a private mkdtemp folder, which its
 * teardown removes with everything in it.  The channel driver and HAL
 * backend tables are the compiled-in ones (console, sim).
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <libconfig.h>

#include "channel.h"
#include "conf.h"
#include "hal.h"
#include "log.h"

#define ERRLEN 1024

/* One test's private folder; *state points at it. */
struct fixture {
	char    dir[64];
	const void *param;	/* the case, for table-driven tests */
};

/* ---- helpers ------------------------------------------------------------ */

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	fx->param = *state;	/* the prestate, if any */
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/sb-test-conf-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

	free(fx);
	return rc;
}

/* Write text to DIR/name (creating one level of sub-folder if named);
 * the full path goes into path. */
static void
write_file(const struct fixture *fx, const char *name, const char *text,
           char *path, size_t pathlen)
{
	const char *slash = strchr(name, '/');
	FILE *f;

	if (slash) {
		char sub[PATH_MAX];

		snprintf(sub, sizeof(sub), "%s/%.*s", fx->dir, (int)(slash - name), name);
		assert_true(mkdir(sub, 0700) == 0 || errno == EEXIST);
	}
	snprintf(path, pathlen, "%s/%s", fx->dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Write text as DIR/switchboard.conf and load it. */
static struct sb_config *
load_text(const struct fixture *fx, const char *text, char *path, size_t pathlen,
          char *err)
{
	err[0] = '\0';
	write_file(fx, "switchboard.conf", text, path, pathlen);
	return sb_conf_load(path, err, ERRLEN);
}

/* text must fail to load with exactly "PATH:line: msg". */
static void
expect_error(const struct fixture *fx, const char *text, int line, const char *msg)
{
	char path[PATH_MAX], err[ERRLEN], want[ERRLEN + PATH_MAX];
	struct sb_config *conf = load_text(fx, text, path, sizeof(path), err);

	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	if (conf != NULL) {
		sb_conf_free(conf);
		fail_msg("loaded, but expected \"%s\"", want);
	}
	assert_string_equal(err, want);
}

/* text must load; returns the config (caller frees). */
static struct sb_config *
expect_ok(const struct fixture *fx, const char *text)
{
	char path[PATH_MAX], err[ERRLEN];
	struct sb_config *conf = load_text(fx, text, path, sizeof(path), err);

	if (conf == NULL)
		fail_msg("expected to load, got \"%s\"", err);
	assert_string_equal(conf->path, path);
	return conf;
}

/* ---- a full config ------------------------------------------------------ */

static const char full_conf[] =
	"# a comment on line 1\n"					/* 1 */
	"daemon = {\n"							/* 2 */
	"  socket = \"/tmp/sb-test.sock\";\n"				/* 3 */
	"  state_dir = \"/tmp/sb-test-state\";\n"			/* 4 */
	"  log_level = \"debug\";\n"					/* 5 */
	"  syslog = false;\n"						/* 6 */
	"  scripts = [ \"/a\", \"/b\", \"/c\" ];\n"			/* 7 */
	"  poll_interval = 2;\n"	/* an integer where a number goes */	/* 8 */
	"  confirm_timeout = 30;\n"					/* 9 */
	"  default_context = \"ops\";\n"				/* 10 */
	"};\n"								/* 11 */
	"channels = (\n"						/* 12 */
	"  { name = \"console\"; driver = \"console\"; context = \"admin\";\n"	/* 13 */
	"    group_context = \"rooms\"; },\n"				/* 14 */
	"  { name = \"local-2\"; driver = \"console\"; context = \"lab\"; }\n"	/* 15 */
	");\n"								/* 16 */
	"nodes = (\n"							/* 17 */
	"  { name = \"ftp\"; groups = [ \"rack1\", \"storage\" ]; poll_interval = 0.5;\n" /* 18 */
	"    hal = { backend = \"sim\"; model = \"SIM-2U\"; }; },\n"	/* 19 */
	"  { name = \"web_1.example\"; hal = { backend = \"sim\"; }; }\n"	/* 20 */
	");\n"								/* 21 */
	"acl = (\n"							/* 22 */
	"  { match = \"xmpp:admin@*\"; role = \"admin\"; },\n"		/* 23 */
	"  { match = \"xmpp:*@*\"; role = \"oncall\"; }\n"		/* 24 */
	");\n"								/* 25 */
	"roles = (\n"							/* 26 */
	"  { name = \"oncall\"; inherits = \"operator\"; }\n"		/* 27 */
	");\n";								/* 28 */

static void
test_full_config(void **state)
{
	struct sb_config *c = expect_ok(*state, full_conf);

	/* daemon */
	assert_string_equal(c->socket, "/tmp/sb-test.sock");
	assert_string_equal(c->state_dir, "/tmp/sb-test-state");
	assert_int_equal(c->log_level, SB_LOG_DEBUG);
	assert_int_equal(c->use_syslog, 0);
	assert_int_equal(c->nscripts, 3);
	assert_string_equal(c->scripts[0], "/a");
	assert_string_equal(c->scripts[1], "/b");
	assert_string_equal(c->scripts[2], "/c");
	assert_null(c->scripts[3]);
	assert_true(c->poll_interval == 2.0);
	assert_int_equal(c->confirm_timeout, 30);
	assert_string_equal(c->default_context, "ops");

	/* channels: group_context defaults to context */
	assert_int_equal(c->nchannels, 2);
	assert_string_equal(c->channels[0].name, "console");
	assert_string_equal(c->channels[0].driver, "console");
	assert_string_equal(c->channels[0].context, "admin");
	assert_string_equal(c->channels[0].group_context, "rooms");
	assert_int_equal(c->channels[0].line, 13);
	assert_non_null(c->channels[0].setting);
	assert_string_equal(sb_conf_str(c->channels[0].setting, "group_context", NULL), "rooms");
	assert_non_null(c->channels[0].fingerprint);
	assert_string_equal(c->channels[1].name, "local-2");
	assert_string_equal(c->channels[1].driver, "console");
	assert_string_equal(c->channels[1].context, "lab");
	assert_string_equal(c->channels[1].group_context, "lab");
	assert_int_equal(c->channels[1].line, 15);
	assert_string_not_equal(c->channels[0].fingerprint, c->channels[1].fingerprint);

	/* nodes: poll_interval defaults to the daemon's */
	assert_int_equal(c->nnodes, 2);
	assert_string_equal(c->nodes[0].name, "ftp");
	assert_int_equal(c->nodes[0].ngroups, 2);
	assert_string_equal(c->nodes[0].groups[0], "rack1");
	assert_string_equal(c->nodes[0].groups[1], "storage");
	assert_null(c->nodes[0].groups[2]);
	assert_true(c->nodes[0].poll_interval == 0.5);
	assert_ptr_equal(c->nodes[0].backend, &sb_hal_sim);
	assert_non_null(c->nodes[0].hal);
	assert_string_equal(sb_conf_str(c->nodes[0].hal, "model", NULL), "SIM-2U");
	assert_int_equal(c->nodes[0].line, 18);
	assert_string_equal(c->nodes[1].name, "web_1.example");
	assert_int_equal(c->nodes[1].ngroups, 0);
	assert_true(c->nodes[1].poll_interval == 2.0);
	assert_ptr_equal(c->nodes[1].backend, &sb_hal_sim);
	assert_int_equal(c->nodes[1].line, 20);
	assert_string_not_equal(c->nodes[0].hal_fingerprint, c->nodes[1].hal_fingerprint);

	/* acl and roles, in file order */
	assert_int_equal(c->nacl, 2);
	assert_string_equal(c->acl[0].pattern, "xmpp:admin@*");
	assert_string_equal(c->acl[0].role, "admin");
	assert_int_equal(c->acl[0].line, 23);
	assert_string_equal(c->acl[1].pattern, "xmpp:*@*");
	assert_string_equal(c->acl[1].role, "oncall");
	assert_int_equal(c->acl[1].line, 24);
	assert_int_equal(c->nroles, 1);
	assert_string_equal(c->roles[0].name, "oncall");
	assert_string_equal(c->roles[0].inherits, "operator");
	assert_int_equal(c->roles[0].line, 27);

	sb_conf_free(c);
}

static void
test_defaults(void **state)
{
	struct sb_config *c = expect_ok(*state, "# nothing but a comment\n");

	assert_string_equal(c->socket, "/run/switchboard/switchboard.sock");
	assert_string_equal(c->state_dir, "/var/lib/switchboard");
	assert_int_equal(c->log_level, SB_LOG_INFO);
	assert_int_equal(c->use_syslog, 1);
	assert_int_equal(c->nscripts, 2);
	assert_string_equal(c->scripts[0], SB_SYSCONFDIR "/scripts");
	assert_string_equal(c->scripts[1], SB_DATADIR "/scripts");
	assert_true(c->poll_interval == 5.0);
	assert_int_equal(c->confirm_timeout, 60);
	assert_string_equal(c->default_context, "default");
	assert_int_equal(c->nchannels, 0);
	assert_int_equal(c->nnodes, 0);
	assert_int_equal(c->nacl, 0);
	assert_int_equal(c->nroles, 0);
	sb_conf_free(c);

	/* A channel's contexts default to the daemon's default_context. */
	c = expect_ok(*state,
	    "daemon = { default_context = \"ops\"; };\n"
	    "channels = ( { name = \"console\"; driver = \"console\"; } );\n");
	assert_int_equal(c->nchannels, 1);
	assert_string_equal(c->channels[0].context, "ops");
	assert_string_equal(c->channels[0].group_context, "ops");
	sb_conf_free(c);

	/* An empty daemon group is the same as none. */
	c = expect_ok(*state, "daemon = { };\n");
	assert_string_equal(c->socket, "/run/switchboard/switchboard.sock");
	assert_int_equal(c->nscripts, 2);
	assert_true(c->poll_interval == 5.0);
	sb_conf_free(c);

	sb_conf_free(NULL);	/* NULL-safe */
}

/* The limits are inclusive, and names may use every allowed character. */
static void
test_boundaries_accepted(void **state)
{
	struct sb_config *c = expect_ok(*state,
	    "daemon = { poll_interval = 0.05; confirm_timeout = 1; log_level = \"error\"; };\n"
	    "nodes = (\n"
	    "  { name = \"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-\";\n"
	    "    poll_interval = 86400; hal = { backend = \"sim\"; }; },\n"
	    "  { name = \"a\"; groups = [ ]; hal = { backend = \"sim\"; }; }\n"
	    ");\n");

	assert_true(c->poll_interval == 0.05);
	assert_int_equal(c->confirm_timeout, 1);
	assert_int_equal(c->log_level, SB_LOG_ERR);
	assert_int_equal(c->nnodes, 2);
	assert_int_equal(strlen(c->nodes[0].name), 63);
	assert_true(c->nodes[0].poll_interval == 86400.0);
	assert_string_equal(c->nodes[1].name, "a");
	assert_int_equal(c->nodes[1].ngroups, 0);
	sb_conf_free(c);

	c = expect_ok(*state, "daemon = { confirm_timeout = 3600; poll_interval = 86400.0; };\n");
	assert_int_equal(c->confirm_timeout, 3600);
	assert_true(c->poll_interval == 86400.0);
	sb_conf_free(c);

	/* Level names are case-insensitive, with the short aliases. */
	c = expect_ok(*state, "daemon = { log_level = \"WARN\"; };\n");
	assert_int_equal(c->log_level, SB_LOG_WARNING);
	sb_conf_free(c);
}

/* ---- errors ------------------------------------------------------------- */

static void
test_missing_file(void **state)
{
	const struct fixture *fx = *state;
	char path[PATH_MAX], err[ERRLEN] = "", want[ERRLEN + PATH_MAX];

	snprintf(path, sizeof(path), "%s/none.conf", fx->dir);
	assert_null(sb_conf_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
}

/* One bad config: the line and message its error must carry. */
struct bad_case {
	const char *text;
	int     line;
	const char *msg;
};

static void
test_bad(void **state)
{
	const struct fixture *fx = *state;
	const struct bad_case *bc = fx->param;

	expect_error(fx, bc->text, bc->line, bc->msg);
}

#define NODE_OK "hal = { backend = \"sim\"; };"

static const struct bad_case bad_syntax = {
	"daemon = {\n"
	"  syslog = true;\n"
	"  log_level = ;\n"
	"};\n",
	3, "syntax error",
};

static const struct bad_case bad_top_key = {
	"daemon = { syslog = false; };\n"
	"\n"
	"frobs = 1;\n",
	3, "unknown key 'frobs' in the top level",
};

static const struct bad_case bad_daemon_key = {
	"daemon = {\n"
	"  syslog = true;\n"
	"  colour = \"blue\";\n"
	"};\n",
	3, "unknown key 'colour' in daemon",
};

static const struct bad_case bad_first_error_wins = {
	"daemon = {\n"
	"  colour = \"blue\";\n"
	"  poll_interval = \"fast\";\n"
	"};\n"
	"frobs = 1;\n",
	2, "unknown key 'colour' in daemon",
};

static const struct bad_case bad_type_number = {
	"daemon = {\n"
	"  poll_interval = \"fast\";\n"
	"};\n",
	2, "'poll_interval' must be a number",
};

static const struct bad_case bad_type_integer = {
	"daemon = {\n"
	"  confirm_timeout = 7.5;\n"
	"};\n",
	2, "'confirm_timeout' must be an integer",
};

static const struct bad_case bad_type_string = {
	"daemon = {\n"
	"\n"
	"  socket = 42;\n"
	"};\n",
	3, "'socket' must be a string",
};

static const struct bad_case bad_type_bool = {
	"daemon = {\n"
	"  syslog = \"yes\";\n"
	"};\n",
	2, "'syslog' must be true or false",
};

static const struct bad_case bad_type_strings = {
	"daemon = {\n"
	"  scripts = [ 1, 2 ];\n"
	"};\n",
	2, "'scripts' must be a list of strings [ \"...\", ... ]",
};

static const struct bad_case bad_type_group = {
	"daemon = 5;\n",
	1, "'daemon' must be a group { ... }",
};

static const struct bad_case bad_type_list = {
	"\n"
	"nodes = { name = \"a\"; };\n",
	2, "'nodes' must be a list ( { ... }, ... )",
};

/* libconfig dates a scalar list element by the token after it (here the
 * comma), so the test keeps both on one line. */
static const struct bad_case bad_list_entry = {
	"nodes = (\n"
	"  \"web\",\n"
	"  \"db\"\n"
	");\n",
	2, "each entry of 'nodes' must be a group { ... }",
};

static const struct bad_case bad_channel_driver = {
	"channels = (\n"
	"  { name = \"console\"; driver = \"console\"; },\n"
	"  { name = \"pager\";\n"
	"    driver = \"pigeon\"; }\n"
	");\n",
	4, "unknown channel driver \"pigeon\"",
};

static const struct bad_case bad_channel_dup = {
	"channels = (\n"
	"  { name = \"con\"; driver = \"console\"; },\n"
	"  { name = \"other\"; driver = \"console\"; },\n"
	"  { name = \"con\"; driver = \"console\"; }\n"
	");\n",
	4, "duplicate channel \"con\" (first at line 2)",
};

static const struct bad_case bad_channel_name = {
	"channels = (\n"
	"  { driver = \"console\";\n"
	"    name = \"my console\"; }\n"
	");\n",
	3, "channel name \"my console\" must be 1-63 letters, digits, '-', '_' or '.'",
};

static const struct bad_case bad_channel_no_driver = {
	"channels = (\n"
	"  { name = \"console\"; driver = \"console\"; },\n"
	"  { name = \"c2\"; }\n"
	");\n",
	3, "channels: missing required key 'driver'",
};

static const struct bad_case bad_channel_key = {
	"channels = (\n"
	"  { name = \"console\"; driver = \"console\";\n"
	"    port = 5222; }\n"
	");\n",
	3, "unknown key 'port' in channels",
};

static const struct bad_case bad_node_dup = {
	"nodes = (\n"
	"  { name = \"web\"; " NODE_OK " },\n"
	"  { name = \"db\"; " NODE_OK " },\n"
	"  {\n"
	"    name = \"web\";\n"
	"    " NODE_OK "\n"
	"  }\n"
	");\n",
	4, "duplicate node \"web\" (first at line 2)",
};

static const struct bad_case bad_node_no_name = {
	"nodes = (\n"
	"  { name = \"web\"; " NODE_OK " },\n"
	"  { groups = [ \"rack1\" ];\n"
	"    " NODE_OK " }\n"
	");\n",
	3, "nodes: missing required key 'name'",
};

static const struct bad_case bad_node_no_hal = {
	"nodes = (\n"
	"  { name = \"web\"; }\n"
	");\n",
	2, "nodes: missing required key 'hal'",
};

static const struct bad_case bad_hal_no_backend = {
	"nodes = (\n"
	"  { name = \"web\";\n"
	"    hal = {\n"
	"      model = \"X\";\n"
	"    };\n"
	"  }\n"
	");\n",
	3, "'hal' needs a string 'backend'",
};

static const struct bad_case bad_hal_backend = {
	"nodes = (\n"
	"  { name = \"web\";\n"
	"    hal = {\n"
	"      backend = \"redfish\";\n"
	"    };\n"
	"  }\n"
	");\n",
	4, "unknown HAL backend \"redfish\"",
};

static const struct bad_case bad_hal_key = {
	"nodes = (\n"
	"  { name = \"web\";\n"
	"    hal = { backend = \"sim\";\n"
	"      colour = \"red\"; };\n"
	"  }\n"
	");\n",
	4, "unknown key 'colour' in hal",
};

static const struct bad_case bad_node_key = {
	"nodes = (\n"
	"  { name = \"web\"; " NODE_OK "\n"
	"    rack = 3; }\n"
	");\n",
	3, "unknown key 'rack' in nodes",
};

static const struct bad_case bad_log_level = {
	"daemon = {\n"
	"  syslog = false;\n"
	"  log_level = \"loud\";\n"
	"};\n",
	3, "unknown log_level \"loud\" (debug, info, notice, warning, error)",
};

static const struct bad_case bad_poll_low = {
	"daemon = {\n"
	"  poll_interval = 0.01;\n"
	"};\n",
	2, "poll_interval must be between 0.05 and 86400 seconds",
};

static const struct bad_case bad_poll_high = {
	"daemon = {\n"
	"  poll_interval = 86401;\n"
	"};\n",
	2, "poll_interval must be between 0.05 and 86400 seconds",
};

static const struct bad_case bad_node_poll = {
	"nodes = (\n"
	"  { name = \"web\"; " NODE_OK "\n"
	"    poll_interval = 0; }\n"
	");\n",
	3, "poll_interval must be between 0.05 and 86400 seconds",
};

static const struct bad_case bad_confirm_low = {
	"daemon = {\n"
	"  confirm_timeout = 0;\n"
	"};\n",
	2, "confirm_timeout must be between 1 and 3600 seconds",
};

static const struct bad_case bad_confirm_high = {
	"daemon = {\n"
	"  confirm_timeout = 3601;\n"
	"};\n",
	2, "confirm_timeout must be between 1 and 3600 seconds",
};

static const struct bad_case bad_node_name = {
	"nodes = (\n"
	"  { " NODE_OK "\n"
	"    name = \"web/1\"; }\n"
	");\n",
	3, "node name \"web/1\" must be 1-63 letters, digits, '-', '_' or '.'",
};

static const struct bad_case bad_node_name_empty = {
	"nodes = (\n"
	"  { name = \"\"; " NODE_OK " }\n"
	");\n",
	2, "node name \"\" must be 1-63 letters, digits, '-', '_' or '.'",
};

static const struct bad_case bad_node_name_long = {
	"nodes = (\n"
	"  { name = \"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_\";\n"
	"    " NODE_OK " }\n"
	");\n",
	2, "node name \"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_\" "
	   "must be 1-63 letters, digits, '-', '_' or '.'",
};

static const struct bad_case bad_acl_no_role = {
	"acl = (\n"
	"  { match = \"xmpp:*\"; }\n"
	");\n",
	2, "acl: missing required key 'role'",
};

static const struct bad_case bad_role_no_inherits = {
	"roles = (\n"
	"  { name = \"oncall\"; inherits = \"operator\"; },\n"
	"  { name = \"pager\"; }\n"
	");\n",
	3, "roles: missing required key 'inherits'",
};

static const struct bad_case bad_include_missing = {
	"daemon = { };\n"
	"@include \"missing.conf\"\n",
	2, "cannot open include file",
};

/* ---- fingerprints ------------------------------------------------------- */

static const char fp_conf[] =
	"channels = ( { name = \"console\"; driver = \"console\"; context = \"ops\"; } );\n"
	"nodes = ( { name = \"web\"; hal = { backend = \"sim\"; model = \"A\";\n"
	"  sensors = ( { name = \"t\"; kind = \"temperature\"; value = 40.5; } ); }; } );\n";

/* Same values, other layout and comments. */
static const char fp_conf_relaid[] =
	"# the same, laid out differently\n"
	"channels = (\n"
	"  { name = \"console\";\n"
	"    driver = \"console\";   # the control socket\n"
	"    context = \"ops\"; }\n"
	");\n"
	"nodes = (\n"
	"  {\n"
	"    name = \"web\";\n"
	"    hal = {\n"
	"      backend = \"sim\";\n"
	"      model = \"A\";\n"
	"      sensors = ( { name = \"t\"; kind = \"temperature\"; value = 40.5; } );\n"
	"    };\n"
	"  }\n"
	");\n";

/* One value changed: the sensor's reading. */
static const char fp_conf_changed[] =
	"channels = ( { name = \"console\"; driver = \"console\"; context = \"ops\"; } );\n"
	"nodes = ( { name = \"web\"; hal = { backend = \"sim\"; model = \"A\";\n"
	"  sensors = ( { name = \"t\"; kind = \"temperature\"; value = 40.25; } ); }; } );\n";

static void
test_fingerprint_conf(void **state)
{
	struct sb_config *a = expect_ok(*state, fp_conf);
	struct sb_config *b = expect_ok(*state, fp_conf_relaid);
	struct sb_config *c = expect_ok(*state, fp_conf_changed);
	char *fa = sb_conf_fingerprint(config_root_setting(&a->cf));
	char *fb = sb_conf_fingerprint(config_root_setting(&b->cf));
	char *fc = sb_conf_fingerprint(config_root_setting(&c->cf));

	assert_string_equal(a->channels[0].fingerprint, b->channels[0].fingerprint);
	assert_string_equal(a->nodes[0].hal_fingerprint, b->nodes[0].hal_fingerprint);
	assert_string_equal(fa, fb);

	/* Only the node changed, so only its fingerprint does. */
	assert_string_equal(a->channels[0].fingerprint, c->channels[0].fingerprint);
	assert_string_not_equal(a->nodes[0].hal_fingerprint, c->nodes[0].hal_fingerprint);
	assert_string_not_equal(fa, fc);

	free(fa);
	free(fb);
	free(fc);
	sb_conf_free(a);
	sb_conf_free(b);
	sb_conf_free(c);
}

/* Fingerprint of the setting "g" in text (caller frees). */
static char *
fp_of(const char *text)
{
	config_t cf;
	char *fp;

	config_init(&cf);
	if (config_read_string(&cf, text) != CONFIG_TRUE)
		fail_msg("%s: %s", text, config_error_text(&cf));
	fp = sb_conf_fingerprint(config_lookup(&cf, "g"));
	config_destroy(&cf);
	return fp;
}

static void
assert_fp_differ(const char *x, const char *y)
{
	char *fx = fp_of(x), *fy = fp_of(y);

	if (strcmp(fx, fy) == 0)
		fail_msg("same fingerprint \"%s\" for\n  %s\n  %s", fx, x, y);
	free(fx);
	free(fy);
}

/* A value of one type or shape never imitates another. */
static void
test_fingerprint_distinguishes(void **state)
{
	char *e;

	(void)state;
	/* Strings are length-prefixed, so one cannot look like two. */
	assert_fp_differ("g = { a = \"x;b=y\"; };", "g = { a = \"x\"; b = \"y\"; };");
	assert_fp_differ("g = { a = 1; };", "g = { a = \"1\"; };");
	assert_fp_differ("g = { a = true; };", "g = { a = \"true\"; };");
	assert_fp_differ("g = { a = true; };", "g = { a = false; };");
	assert_fp_differ("g = { a = 1; b = 2; };", "g = { b = 2; a = 1; };");
	assert_fp_differ("g = { a = { b = 1; }; };", "g = { a = ( { b = 1; } ); };");
	assert_fp_differ("g = { a = [ \"x\" ]; };", "g = { a = [ \"x\", \"\" ]; };");
	assert_fp_differ("g = { a = 0.1; };", "g = { a = 0.10000000000000002; };");
	assert_fp_differ("g = { a = 10000000000L; };", "g = { a = 10000000001L; };");

	/* Equal text, equal fingerprint (and not by being empty). */
	e = fp_of("g = { a = 1; s = \"x\"; l = ( { b = 2.5; } ); };");
	{
		char *again = fp_of("g={a=1;s=\"x\";l=({b=2.5;});};");

		assert_true(strlen(e) > 0);
		assert_string_equal(e, again);
		free(again);
	}
	free(e);

	e = sb_conf_fingerprint(NULL);
	assert_string_equal(e, "");
	free(e);
}

/* ---- helpers for drivers ------------------------------------------------ */

static const char helper_conf[] =
	"g = {\n"
	"  s = \"text\";\n"
	"  i = 42;\n"
	"  neg = -7;\n"
	"  big = 10000000000L;\n"
	"  f = 2.75;\n"
	"  b = true;\n"
	"  off = false;\n"
	"};\n";

static void
test_helpers(void **state)
{
	config_t cf;
	config_setting_t *g;
	char where[64];

	(void)state;
	config_init(&cf);
	assert_int_equal(config_read_string(&cf, helper_conf), CONFIG_TRUE);
	g = config_lookup(&cf, "g");
	assert_non_null(g);

	assert_string_equal(sb_conf_str(g, "s", "def"), "text");
	assert_string_equal(sb_conf_str(g, "missing", "def"), "def");
	assert_string_equal(sb_conf_str(g, "i", "def"), "def");	/* wrong type */
	assert_null(sb_conf_str(g, "missing", NULL));
	assert_string_equal(sb_conf_str(NULL, "s", "def"), "def");

	assert_int_equal(sb_conf_int(g, "i", -1), 42);
	assert_int_equal(sb_conf_int(g, "neg", -1), -7);
	assert_true(sb_conf_int(g, "big", -1) == 10000000000LL);
	assert_int_equal(sb_conf_int(g, "f", -1), 2);	/* truncated */
	assert_int_equal(sb_conf_int(g, "s", -1), -1);
	assert_int_equal(sb_conf_int(g, "b", -1), -1);
	assert_int_equal(sb_conf_int(g, "missing", 99), 99);
	assert_int_equal(sb_conf_int(NULL, "i", 99), 99);

	assert_true(sb_conf_float(g, "f", -1) == 2.75);
	assert_true(sb_conf_float(g, "i", -1) == 42.0);
	assert_true(sb_conf_float(g, "big", -1) == 1e10);
	assert_true(sb_conf_float(g, "s", -1.5) == -1.5);
	assert_true(sb_conf_float(g, "missing", 0.25) == 0.25);
	assert_true(sb_conf_float(NULL, "f", 0.25) == 0.25);

	assert_int_equal(sb_conf_bool(g, "b", 0), 1);
	assert_int_equal(sb_conf_bool(g, "off", 1), 0);
	assert_int_equal(sb_conf_bool(g, "i", 7), 7);	/* an integer is not a bool */
	assert_int_equal(sb_conf_bool(g, "missing", 1), 1);
	assert_int_equal(sb_conf_bool(g, "missing", 0), 0);
	assert_int_equal(sb_conf_bool(NULL, "b", 0), 0);

	/* Read from a string there is no file to name. */
	sb_conf_where(config_setting_get_member(g, "f"), where, sizeof(where));
	assert_string_equal(where, "(config):6");

	config_destroy(&cf);
}

static void
test_where(void **state)
{
	struct sb_config *c = expect_ok(*state, full_conf);
	char where[PATH_MAX + 16], want[PATH_MAX + 16];

	sb_conf_where(config_setting_get_member(c->nodes[0].hal, "model"), where, sizeof(where));
	snprintf(want, sizeof(want), "%s:19", c->path);
	assert_string_equal(where, want);
	sb_conf_free(c);
}

/* ---- @include ----------------------------------------------------------- */

static const char inc_main[] =
	"daemon = { log_level = \"notice\"; };\n"
	"@include \"nodes.conf\"\n"
	"@include \"sub/acl.conf\"\n";

static const char inc_nodes[] =
	"nodes = (\n"
	"  { name = \"inc\"; hal = { backend = \"sim\"; }; }\n"
	");\n";

static const char inc_acl[] =
	"acl = ( { match = \"console:*\"; role = \"admin\"; } );\n";

static void
check_included(const struct sb_config *c)
{
	assert_int_equal(c->log_level, SB_LOG_NOTICE);
	assert_int_equal(c->nnodes, 1);
	assert_string_equal(c->nodes[0].name, "inc");
	assert_int_equal(c->nodes[0].line, 2);	/* its line in nodes.conf */
	assert_int_equal(c->nacl, 1);
	assert_string_equal(c->acl[0].pattern, "console:*");
}

/* Included files are found beside the config, not in the working folder. */
static void
test_include(void **state)
{
	const struct fixture *fx = *state;
	char path[PATH_MAX], err[ERRLEN] = "", cwd[PATH_MAX], rel[PATH_MAX];
	struct sb_config *c;

	write_file(fx, "nodes.conf", inc_nodes, path, sizeof(path));
	write_file(fx, "sub/acl.conf", inc_acl, path, sizeof(path));
	write_file(fx, "switchboard.conf", inc_main, path, sizeof(path));

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_string_not_equal(cwd, fx->dir);
	c = sb_conf_load(path, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	check_included(c);
	sb_conf_free(c);

	/* A relative config path: includes are relative to its folder. */
	assert_int_equal(chdir("/tmp"), 0);
	snprintf(rel, sizeof(rel), "%s/switchboard.conf", fx->dir + strlen("/tmp/"));
	c = sb_conf_load(rel, err, sizeof(err));
	assert_int_equal(chdir(cwd), 0);
	if (c == NULL)
		fail_msg("%s", err);
	check_included(c);
	sb_conf_free(c);
}

/*
 * An error in an included file names that file, as the @include line
 * wrote it (so relative to the including config's folder), and its line.
 */
static void
test_include_error(void **state)
{
	const struct fixture *fx = *state;
	char path[PATH_MAX], err[ERRLEN] = "";

	write_file(fx, "sub/bad.conf",
	    "# nodes\n"
	    "nodes = (\n"
	    "  { name = \"bad name\"; hal = { backend = \"sim\"; }; }\n"
	    ");\n", path, sizeof(path));
	write_file(fx, "switchboard.conf",
	    "daemon = { };\n"
	    "@include \"sub/bad.conf\"\n", path, sizeof(path));
	assert_null(sb_conf_load(path, err, sizeof(err)));
	assert_string_equal(err,
	    "sub/bad.conf:3: node name \"bad name\" must be 1-63 letters, digits, '-', '_' or '.'");

	write_file(fx, "sub/bad.conf", "nodes = (\n  { name = ; }\n);\n", path, sizeof(path));
	write_file(fx, "switchboard.conf", "@include \"sub/bad.conf\"\n", path, sizeof(path));
	assert_null(sb_conf_load(path, err, sizeof(err)));
	assert_string_equal(err, "sub/bad.conf:2: syntax error");
}

/* ---- main --------------------------------------------------------------- */

#define T(f)		{ #f, f, setup, teardown, NULL }
#define BAD(c)		{ #c, test_bad, setup, teardown, (void *)&c }

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_full_config),
		T(test_defaults),
		T(test_boundaries_accepted),
		T(test_missing_file),
		BAD(bad_syntax),
		BAD(bad_top_key),
		BAD(bad_daemon_key),
		BAD(bad_first_error_wins),
		BAD(bad_type_number),
		BAD(bad_type_integer),
		BAD(bad_type_string),
		BAD(bad_type_bool),
		BAD(bad_type_strings),
		BAD(bad_type_group),
		BAD(bad_type_list),
		BAD(bad_list_entry),
		BAD(bad_channel_driver),
		BAD(bad_channel_dup),
		BAD(bad_channel_name),
		BAD(bad_channel_no_driver),
		BAD(bad_channel_key),
		BAD(bad_node_dup),
		BAD(bad_node_no_name),
		BAD(bad_node_no_hal),
		BAD(bad_hal_no_backend),
		BAD(bad_hal_backend),
		BAD(bad_hal_key),
		BAD(bad_node_key),
		BAD(bad_log_level),
		BAD(bad_poll_low),
		BAD(bad_poll_high),
		BAD(bad_node_poll),
		BAD(bad_confirm_low),
		BAD(bad_confirm_high),
		BAD(bad_node_name),
		BAD(bad_node_name_empty),
		BAD(bad_node_name_long),
		BAD(bad_acl_no_role),
		BAD(bad_role_no_inherits),
		BAD(bad_include_missing),
		T(test_fingerprint_conf),
		T(test_fingerprint_distinguishes),
		T(test_helpers),
		T(test_where),
		T(test_include),
		T(test_include_error),
	};

	sb_log_set_level(SB_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
