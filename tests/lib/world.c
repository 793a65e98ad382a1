/*
 * world.c: an in-process switchboard for tests and benchmarks (world.h).
 * The steps and their order are the daemon's own (core.c's start-up):
 * a world that skipped one (the ACL rules, say) would test less than it
 * claims.
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
#include "loop.h"
#include "node.h"
#include "notify.h"

#include "world.h"

#define MAX_CHANS 8

static char dir[PATH_MAX];
static struct sb_channel *chans[MAX_CHANS];
static size_t nchans;
static int running;

const char *
sb_world_dir_new(const char *base, const char *prefix)
{
	if (dir[0])
		return dir;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s-XXXXXX", base ? base : "/tmp",
	    prefix ? prefix : "sb-world") >= sizeof(dir) || mkdtemp(dir) == NULL) {
		dir[0] = '\0';
		return NULL;
	}
	return dir;
}

const char *
sb_world_dir(void)
{
	return dir[0] ? dir : NULL;
}

int
sb_world_source(const char *rel, char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		for (int up = 0; up < 5; up++) {
			char *slash = strrchr(exe, '/');

			if (slash == NULL)
				break;
			*slash = '\0';
			if ((size_t)snprintf(out, len, "%s/%s", exe, rel) < len &&
			    access(out, F_OK) == 0)
				return 0;
		}
	}
	if (access(rel, F_OK) == 0 && realpath(rel, exe) != NULL) {
		snprintf(out, len, "%s", exe);
		return 0;
	}
	snprintf(out, len, "%s", rel);
	return -1;
}

int
sb_world_start(const char *conf_text, struct sb_channel *const *chv, size_t n,
               char *err, size_t errlen)
{
	char path[PATH_MAX + 32];
	struct sb_config *conf;
	FILE *f;

	if (n > MAX_CHANS) {
		snprintf(err, errlen, "at most %d channels", MAX_CHANS);
		return -1;
	}
	if (sb_world_dir_new(NULL, NULL) == NULL) {
		snprintf(err, errlen, "cannot make a private folder");
		return -1;
	}
	running = 1;
	snprintf(path, sizeof(path), "%s/switchboard.conf", dir);
	if ((f = fopen(path, "w")) == NULL || fputs(conf_text, f) < 0 || fclose(f) != 0) {
		snprintf(err, errlen, "%s: cannot write", path);
		return -1;
	}
	sb_core.loop = sb_loop_new();
	sb_core.state_dir = dir;
	if ((conf = sb_conf_load(path, err, errlen)) == NULL)
		return -1;
	sb_core.conf = conf;
	if (sb_acl_configure(conf, err, errlen) < 0 ||
	    sb_nodes_apply(conf->nodes, conf->nnodes, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (sb_channel_register(chv[i]) < 0) {
			snprintf(err, errlen, "channel name \"%s\" taken", chv[i]->name);
			return -1;
		}
		chans[nchans++] = chv[i];
	}
	if (sb_notify_apply(config_lookup(&conf->cf, "notify"), err, errlen) < 0 ||
	    sb_notify_start(dir, err, errlen) < 0 || sb_dialplan_start(err, errlen) < 0)
		return -1;
	sb_notify_go();
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
sb_world_stop(void)
{
	if (running) {
		sb_dialplan_stop();
		sb_notify_stop();
		while (nchans > 0)
			sb_channel_unregister(chans[--nchans]);
		sb_nodes_clear();
		sb_acl_clear();
		sb_conf_free(sb_core.conf);
		sb_core.conf = NULL;
		if (sb_core.loop)
			sb_loop_free(sb_core.loop);
		sb_core.loop = NULL;
		sb_core.state_dir = NULL;
		running = 0;
	}
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = '\0';
}
