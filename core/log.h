/*
 * log.h: levelled logging to stderr and syslog.
 *
 * As in OpenSMTPD, the *_warn/_fatal variants append strerror(errno) and the
 * *x variants do not.
 */
#ifndef SB_LOG_H
#define SB_LOG_H

enum sb_log_level {
	SB_LOG_ERR,
	SB_LOG_WARNING,
	SB_LOG_NOTICE,
	SB_LOG_INFO,
	SB_LOG_DEBUG,
};

#define SB_PRINTF(a, b) __attribute__((format(printf, a, b)))

void sb_log_init(const char *ident, int to_stderr, int to_syslog);
void sb_log_set_level(enum sb_log_level);
enum sb_log_level sb_log_get_level(void);
/* Parse "debug", "info", "notice", "warning", "error"; -1 if unknown. */
int  sb_log_level_parse(const char *);

/* A hook that sees every line logged (the console mirrors them). */
typedef void sb_log_hook_fn(enum sb_log_level, const char *line, void *ud);
void sb_log_set_hook(sb_log_hook_fn *, void *ud);

void sb_log(enum sb_log_level, const char *fmt, ...) SB_PRINTF(2, 3);
void sb_debug(const char *fmt, ...) SB_PRINTF(1, 2);
void sb_info(const char *fmt, ...) SB_PRINTF(1, 2);
void sb_notice(const char *fmt, ...) SB_PRINTF(1, 2);
void sb_warn(const char *fmt, ...) SB_PRINTF(1, 2);	/* + strerror(errno) */
void sb_warnx(const char *fmt, ...) SB_PRINTF(1, 2);
void sb_error(const char *fmt, ...) SB_PRINTF(1, 2);	/* + strerror(errno) */
void sb_errorx(const char *fmt, ...) SB_PRINTF(1, 2);
__attribute__((noreturn)) void sb_fatal(const char *fmt, ...) SB_PRINTF(1, 2);
__attribute__((noreturn)) void sb_fatalx(const char *fmt, ...) SB_PRINTF(1, 2);

#endif
