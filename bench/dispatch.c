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
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
#include "store.h"

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

static char dir[PATH_MAX];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

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
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	exit(1);
}

int
main(int argc, char **argv)
{
	static const char *nodes[] = { "ftp", "web", "mail", "db" };
	char path[PATH_MAX + 32], err[1024] = "", ids[NIDS][32];
	struct sb_store_stats st0, st1;
	struct sb_config *conf;
	double seconds, t0, t;
	uint64_t sent = 0;
	int batch;
	FILE *f;

	if (argc < 3) {
		fprintf(stderr, "usage: dispatch SCRIPTS_DIR SECONDS [BATCH]\n");
		return 2;
	}
	seconds = atof(argv[2]);
	batch = argc > 3 ? atoi(argv[3]) : 32;
	sb_log_init("bench", 1, 0);
	sb_log_set_level(SB_LOG_WARNING);
	snprintf(dir, sizeof(dir), "/tmp/sb-bench-XXXXXX");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", "failed");
	snprintf(path, sizeof(path), "%s/switchboard.conf", dir);
	if ((f = fopen(path, "w")) == NULL)
		die(path, "cannot write");
	fprintf(f, conf_fmt, argv[1]);
	fclose(f);

	sb_core.loop = sb_loop_new();
	if ((conf = sb_conf_load(path, err, sizeof(err))) == NULL)
		die("config", err);
	sb_core.conf = conf;
	if (sb_acl_configure(conf, err, sizeof(err)) < 0)	/* roles, rules, rate limit */
		die("acl", err);
	if (sb_nodes_apply(conf->nodes, conf->nnodes, err, sizeof(err)) < 0)
		die("nodes", err);
	if (sb_channel_register(&bench_chan) < 0)
		die("channel", "cannot register");
	if (sb_notify_apply(config_lookup(&conf->cf, "notify"), err, sizeof(err)) < 0 ||
	    sb_notify_start(dir, err, sizeof(err)) < 0)
		die("store", err);
	if (sb_dialplan_start(err, sizeof(err)) < 0)
		die("dialplan", err);
	sb_notify_go();
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

	sb_dialplan_stop();
	sb_notify_stop();
	sb_channel_unregister(&bench_chan);
	sb_nodes_clear();
	sb_acl_clear();
	sb_conf_free(sb_core.conf);
	sb_loop_free(sb_core.loop);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return nbad != 0 || ndone != sent;
}
