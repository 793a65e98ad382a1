/*
 * fuzz_conf.c: the config loader (core/conf.c: libconfig and the schema
 * check) and everything a start would parse from it without starting
 * anything (sb_core_check: notify, each node's HAL section, roles, ACL and
 * rules, every channel's section), as "switchboard --check-config" does.
 * Each error must come back as text, never as a crash.
 *
 * Input: the config file's text, written to a private temporary file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "core.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char dir[64], path[128];

static void
cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sb_config *conf;
	char err[1024];
	FILE *f;

	if (size > 65536)
		return -1;
	if (dir[0] == '\0') {
		sb_log_init("fuzz", getenv("FUZZ_VERBOSE") != NULL, 0);
		snprintf(dir, sizeof(dir), "%s/sb-fuzz-conf-XXXXXX", getenv("SB_FUZZ_TMP") ?
		    getenv("SB_FUZZ_TMP") : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(path, sizeof(path), "%s/switchboard.conf", dir);
		atexit(cleanup);
	}
	if ((f = fopen(path, "w")) == NULL)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	err[0] = '\0';
	if ((conf = sb_conf_load(path, err, sizeof(err))) == NULL) {
		if (err[0] == '\0')
			abort();	/* a refusal says why */
		return 0;
	}
	err[0] = '\0';
	if (sb_core_check(conf, err, sizeof(err)) < 0 && err[0] == '\0')
		abort();
	sb_conf_free(conf);
	return 0;
}
