/*
 * fuzz_world.c: the running switchboard the dispatching harnesses share
 * (fuzz_world.h).  It is set up as tests/unit/test_dialplan.c sets up its
 * own, but with the shipped scripts (scripts/) rather than test scripts,
 * so a fuzzed line meets the commands an operator really has.
 */
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

#include "fuzz_world.h"

unsigned long sb_fuzz_replies, sb_fuzz_done;

static int
fake_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text,
           unsigned flags)
{
	(void)ch;
	(void)req;
	(void)text;
	sb_fuzz_replies++;
	if (flags & SB_REPLY_DONE)
		sb_fuzz_done++;
	return 0;
}

static int
fake_send(struct sb_channel *ch, const char *to, const char *text)
{
	(void)ch;
	(void)to;
	(void)text;
	return 0;
}

static const struct sb_channel_driver fake_driver = {
	.name = "fuzz",
	.abi = SB_CHANNEL_ABI,
	.reply = fake_reply,
	.send = fake_send,
};

static char fuzz_name[] = "fuzz", ctx_default[] = "default";
struct sb_channel sb_fuzz_chan = {
	.drv = &fake_driver, .name = fuzz_name,
	.context = ctx_default, .group_context = ctx_default, .started = 1,
};

static char dir[64], conf_path[PATH_MAX];
static int started;

static const char conf_fmt[] =
	"daemon = {\n"
	"  scripts = [ \"%s\" ];\n"
	"  confirm_timeout = 60;\n"
	"  poll_interval = 3600.0;\n"
	"};\n"
	"acl = (\n"
	"  { match = \"fuzz:viewer*\"; role = \"viewer\"; },\n"
	"  { match = \"fuzz:op*\";     role = \"operator\"; },\n"
	"  { match = \"fuzz:oncall*\"; role = \"oncall\"; },\n"
	"  { match = \"xmpp:admin@example.org\"; role = \"operator\"; },\n"
	"  { match = \"http:ci\"; role = \"operator\"; },\n"
	"  { match = \"xmpp:*@example.org\"; role = \"viewer\"; }\n"
	");\n"
	"roles = ( { name = \"oncall\"; inherits = \"operator\"; } );\n"
	"rules = (\n"
	"  { command = \"power\"; where = \"group\"; allow = false; },\n"
	"  { command = \"power\"; node = \"db*\"; role = \"admin\"; }\n"
	");\n"
	"rate_limit = { burst = 0; };\n"
	"notify = { group_wait = 0.0; };\n"
	"nodes = (\n"
	"  { name = \"web\"; groups = [ \"rack1\", \"frontend\" ];\n"
	"    hal = { backend = \"sim\"; sensors = (\n"
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 45.0;\n"
	"        high_warning = 85.0; high_critical = 90.0; },\n"
	"      { name = \"fan1\"; kind = \"fan\"; unit = \"RPM\"; value = 7200.0;\n"
	"        low_critical = 500.0; low_warning = 1000.0; } ); }; },\n"
	"  { name = \"web2\"; groups = [ \"rack1\" ];\n"
	"    hal = { backend = \"sim\"; sensors = (\n"
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 20.0; } ); }; },\n"
	"  { name = \"db\"; groups = [ \"rack2\" ];\n"
	"    hal = { backend = \"sim\"; sensors = (\n"
	"      { name = \"vcore\"; kind = \"voltage\"; unit = \"V\"; value = 1.2;\n"
	"        low_critical = 1.0; low_warning = 1.1; high_warning = 1.35; high_critical = 1.45; }\n"
	"    ); }; }\n"
	");\n"
	"%s\n";

/* The source tree: this binary is BUILD/tests/fuzz/NAME. */
static void
find_scripts(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		for (int up = 0; up < 4; up++) {
			char *slash = strrchr(exe, '/');

			if (slash)
				*slash = '\0';
		}
		snprintf(out, len, "%s/scripts", exe);
		if (access(out, R_OK) == 0)
			return;
	}
	if (realpath("scripts", out) == NULL)
		snprintf(out, len, "scripts");
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
cleanup(void)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
die(const char *what, const char *err)
{
	fprintf(stderr, "fuzz world: %s: %s\n", what, err);
	exit(1);
}

void
sb_fuzz_world_start(const char *extra)
{
	char scripts[PATH_MAX], err[1024] = "";
	struct sb_config *conf;
	FILE *f;

	if (started)
		return;
	started = 1;
	sb_log_init("fuzz", getenv("FUZZ_VERBOSE") != NULL, 0);
	sb_log_set_level(getenv("FUZZ_VERBOSE") ? SB_LOG_DEBUG : SB_LOG_ERR);
	find_scripts(scripts, sizeof(scripts));
	/* tmpfs when there is one: the store commits each turn, and an fsync
	 * on a disk would bound the fuzzer to a few dozen inputs a second. */
	snprintf(dir, sizeof(dir), "%s/sb-fuzz-XXXXXX", getenv("SB_FUZZ_TMP") ?
	    getenv("SB_FUZZ_TMP") : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", "failed");
	atexit(cleanup);
	snprintf(conf_path, sizeof(conf_path), "%s/switchboard.conf", dir);
	if ((f = fopen(conf_path, "w")) == NULL)
		die(conf_path, "cannot write");
	fprintf(f, conf_fmt, scripts, extra ? extra : "");
	fclose(f);
	sb_core.loop = sb_loop_new();
	sb_core.state_dir = dir;
	if ((conf = sb_conf_load(conf_path, err, sizeof(err))) == NULL)
		die("config", err);
	sb_core.conf = conf;
	if (sb_acl_apply(conf->path, conf->acl, conf->nacl, conf->roles, conf->nroles,
	    err, sizeof(err)) < 0)
		die("acl", err);
	if (sb_nodes_apply(conf->nodes, conf->nnodes, err, sizeof(err)) < 0)
		die("nodes", err);
	if (sb_channel_register(&sb_fuzz_chan) < 0)
		die("channel", "name taken");
	if (sb_notify_apply(config_lookup(&conf->cf, "notify"), err, sizeof(err)) < 0 ||
	    sb_notify_start(dir, err, sizeof(err)) < 0)
		die("notify", err);
	if (sb_dialplan_start(err, sizeof(err)) < 0)
		die("dialplan", err);
	sb_notify_go();
}

const char *
sb_fuzz_world_conf(void)
{
	return conf_path;
}

void
sb_fuzz_world_settle(void)
{
	for (int i = 0; i < 4; i++)
		sb_loop_once(sb_core.loop, 0);
}

void
sb_fuzz_world_run(unsigned long want)
{
	uint64_t deadline = sb_now_ms() + 10000;

	while (sb_fuzz_done < want) {
		if (sb_now_ms() > deadline) {
			fprintf(stderr, "fuzz world: a command did not end within 10 s\n");
			abort();
		}
		sb_loop_once(sb_core.loop, 1);
	}
	sb_fuzz_world_settle();
}

char *
sb_fuzz_strndup(const uint8_t *data, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}
