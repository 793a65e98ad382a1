/*
 * dispatch.c: commands per second through the daemon's whole command path,
 * in process, on one thread and no network: a message from a registered
 * fake channel goes through sb_dispatch() (identity -> role, ACL rules,
 * the rate limit), the dialplan (the shipped scripts' "status <node>" runs
 * in a Lua coroutine), the reply back to the channel, and the audit row
 * appended to the store, which commits once per loop turn as the daemon
 * does.  BATCH commands arrive per loop turn, as from a busy socket.
 *
 * usage: dispatch SCRIPTS_DIR SECONDS [BATCH]
 * Prints one JSON line: commands, seconds, per_s, commits.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "core.h"
#include "dialplan.h"
#include "dispatch.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "store.h"
#include "world.h"

#define NIDS	64	/* senders, each with its own rate-limit bucket */

static uint64_t ndone, nbad;

static int
bench_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text,
            unsigned flags)
{
	(void)ch;
	(void)req;
	if (flags & SB_REPLY_DONE) {
		ndone++;
		if ((flags & SB_REPLY_FAIL) || text == NULL || strstr(text, "since") == NULL)
			nbad++;
	} else if (text == NULL || strstr(text, "since") == NULL) {
		nbad++;
	}
	if (nbad == 1 && getenv("BENCH_DEBUG"))
		fprintf(stderr, "bench: first bad reply (flags %u): %s\n", flags,
		    text ? text : "(none)");
	return 0;
}

static const struct sb_channel_driver bench_driver = {
	.name = "bench",
	.abi = SB_CHANNEL_ABI,
	.reply = bench_reply,
};

static char chan_name[] = "bench", chan_ctx[] = "default";
static struct sb_channel bench_chan = {
	.drv = &bench_driver,
	.name = chan_name,
	.context = chan_ctx,
	.group_context = chan_ctx,
	.started = 1,
};

static const char conf_fmt[] =
	"daemon = { scripts = [ \"%s\" ]; poll_interval = 3600.0; };\n"
	"acl = ( { match = \"bench:op*\"; role = \"operator\"; } );\n"
	"rate_limit = { rate = 1000.0; burst = 100000; };\n"
	"nodes = (\n"
	"  { name = \"ftp\"; hal = { backend = \"sim\"; sensors = (\n"
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 45.0;\n"
	"        high_warning = 85.0; high_critical = 90.0; } ); }; },\n"
	"  { name = \"web\"; hal = { backend = \"sim\"; sensors = (\n"
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 45.0; } ); }; },\n"
	"  { name = \"mail\"; hal = { backend = \"sim\"; sensors = (\n"
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 45.0; } ); }; },\n"
	"  { name = \"db\"; hal = { backend = \"sim\"; sensors = (\n"
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 45.0; } ); }; }\n"
	");\n";

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *what, const char *err)
{
	fprintf(stderr, "dispatch: %s: %s\n", what, err);
	sb_world_stop();
	exit(1);
}

int
main(int argc, char **argv)
{
	static const char *nodes[] = { "ftp", "web", "mail", "db" };
	char conf[sizeof(conf_fmt) + PATH_MAX], err[1024] = "", ids[NIDS][32];
	struct sb_store_stats st0, st1;
	double seconds, t0, t;
	uint64_t sent = 0;
	int batch;

	if (argc < 3) {
		fprintf(stderr, "usage: dispatch SCRIPTS_DIR SECONDS [BATCH]\n");
		return 2;
	}
	seconds = atof(argv[2]);
	batch = argc > 3 ? atoi(argv[3]) : 32;
	sb_log_init("bench", 1, 0);
	sb_log_set_level(SB_LOG_WARNING);
	/* The store on the disk /tmp is on, as the daemon's state folder. */
	if (sb_world_dir_new("/tmp", "sb-bench") == NULL)
		die("mkdtemp", "failed");
	snprintf(conf, sizeof(conf), conf_fmt, argv[1]);
	if (sb_world_start(conf, (struct sb_channel *[]){ &bench_chan }, 1, err,
	    sizeof(err)) < 0)
		die("start", err);
	for (int i = 0; i < NIDS; i++)
		snprintf(ids[i], sizeof(ids[i]), "bench:op%02d", i);

	/* Warm up (the Lua state, the statements), then measure. */
	for (int i = 0; i < 1000; i++) {
		sb_dispatch(sb_msg_new("bench", ids[i % NIDS], "c", "status web"));
		if (i % batch == batch - 1)
			sb_loop_once(sb_core.loop, 0);
	}
	sb_loop_once(sb_core.loop, 0);
	ndone = nbad = 0;
	sb_store_stats(&st0);
	t0 = now();
	do {
		for (int i = 0; i < batch; i++, sent++) {
			char line[32];

			snprintf(line, sizeof(line), "status %s", nodes[sent % 4]);
			sb_dispatch(sb_msg_new("bench", ids[sent % NIDS], "c", line));
		}
		sb_loop_once(sb_core.loop, 0);	/* before-sleep: the grouped commit */
	} while ((t = now()) - t0 < seconds);
	sb_store_stats(&st1);
	printf("{\"commands\":%llu,\"done\":%llu,\"bad\":%llu,\"seconds\":%.3f,\"per_s\":%.0f,"
	    "\"batch\":%d,\"commits\":%llu}\n", (unsigned long long)sent,
	    (unsigned long long)ndone, (unsigned long long)nbad, t - t0, ndone / (t - t0), batch,
	    (unsigned long long)(st1.commits - st0.commits));

	sb_world_stop();
	return nbad != 0 || ndone != sent;
}
