/*
 * log.c: levelled logging to stderr and/or syslog, with an optional hook
 * through which the console mirrors log lines to attached operators.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int log_stderr = 1;
static int log_syslog;
static enum sb_log_level log_level = SB_LOG_INFO;
static sb_log_hook_fn *log_hook;
static void *log_hook_ud;
static int in_hook;

static const char *const level_names[] = {
	[SB_LOG_ERR] = "error",
	[SB_LOG_WARNING] = "warning",
	[SB_LOG_NOTICE] = "notice",
	[SB_LOG_INFO] = "info",
	[SB_LOG_DEBUG] = "debug",
};

static const int syslog_prio[] = {
	[SB_LOG_ERR] = LOG_ERR,
	[SB_LOG_WARNING] = LOG_WARNING,
	[SB_LOG_NOTICE] = LOG_NOTICE,
	[SB_LOG_INFO] = LOG_INFO,
	[SB_LOG_DEBUG] = LOG_DEBUG,
};

void
sb_log_init(const char *ident, int to_stderr, int to_syslog)
{
	log_stderr = to_stderr;
	if (log_syslog && !to_syslog)
		closelog();
	if (to_syslog && !log_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = to_syslog;
}

void
sb_log_set_level(enum sb_log_level l)
{
	log_level = l;
}

enum sb_log_level
sb_log_get_level(void)
{
	return log_level;
}

int
sb_log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "warn") == 0)
		return SB_LOG_WARNING;
	if (strcasecmp(s, "err") == 0)
		return SB_LOG_ERR;
	return -1;
}

void
sb_log_set_hook(sb_log_hook_fn *fn, void *ud)
{
	log_hook = fn;
	log_hook_ud = ud;
}

static void
vlog(enum sb_log_level l, int with_errno, const char *fmt, va_list ap)
{
	char line[2048];
	int saved = errno;
	size_t n;

	if (l > log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (with_errno) {
		n = strlen(line);
		snprintf(line + n, sizeof(line) - n, ": %s", strerror(saved));
	}
	if (log_stderr) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s: %s\n", stamp, ts.tv_nsec / 1000000,
		    level_names[l], line);
	}
	if (log_syslog)
		syslog(syslog_prio[l], "%s", line);
	/* A hook that logs must not recurse into itself. */
	if (log_hook && !in_hook) {
		in_hook = 1;
		log_hook(l, line, log_hook_ud);
		in_hook = 0;
	}
	errno = saved;
}

void
sb_log(enum sb_log_level l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(l, 0, fmt, ap);
	va_end(ap);
}

#define DEFINE_LOG(fn, level, with_errno)		\
	void						\
	fn(const char *fmt, ...)			\
	{						\
		va_list ap;				\
		va_start(ap, fmt);			\
		vlog(level, with_errno, fmt, ap);	\
		va_end(ap);				\
	}

DEFINE_LOG(sb_debug, SB_LOG_DEBUG, 0)
DEFINE_LOG(sb_info, SB_LOG_INFO, 0)
DEFINE_LOG(sb_notice, SB_LOG_NOTICE, 0)
DEFINE_LOG(sb_warn, SB_LOG_WARNING, 1)
DEFINE_LOG(sb_warnx, SB_LOG_WARNING, 0)
DEFINE_LOG(sb_error, SB_LOG_ERR, 1)
DEFINE_LOG(sb_errorx, SB_LOG_ERR, 0)

void
sb_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SB_LOG_ERR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
sb_fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SB_LOG_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
