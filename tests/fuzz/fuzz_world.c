/*
 * fuzz_world.c: the running switchboard the dispatching harnesses share
 * (fuzz_world.h): tests/lib/world.c's, with the shipped scripts (scripts/)
 * rather than test scripts, so a fuzzed line meets the commands an
 * operator really has.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "core.h"
#include "log.h"
#include "loop.h"

#include "fuzz_world.h"
#include "world.h"

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

static char conf_path[PATH_MAX];
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
	SB_WORLD_NODES
	"%s\n";

static void
cleanup(void)
{
	sb_world_stop();
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
	char scripts[PATH_MAX], err[1024] = "", *text;
	const char *dir, *tmp = getenv("SB_FUZZ_TMP");

	if (started)
		return;
	started = 1;
	sb_log_init("fuzz", getenv("FUZZ_VERBOSE") != NULL, 0);
	sb_log_set_level(getenv("FUZZ_VERBOSE") ? SB_LOG_DEBUG : SB_LOG_ERR);
	sb_world_source("scripts", scripts, sizeof(scripts));
	/* tmpfs when there is one: the store commits each turn, and an fsync
	 * on a disk would bound the fuzzer to a few dozen inputs a second. */
	if ((dir = sb_world_dir_new(tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
	    "/tmp", "sb-fuzz")) == NULL)
		die("mkdtemp", "failed");
	atexit(cleanup);
	snprintf(conf_path, sizeof(conf_path), "%s/switchboard.conf", dir);
	if (asprintf(&text, conf_fmt, scripts, extra ? extra : "") < 0)
		die("config", "out of memory");
	if (sb_world_start(text, (struct sb_channel *[]){ &sb_fuzz_chan }, 1, err,
	    sizeof(err)) < 0)
		die("start", err);
	free(text);
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
