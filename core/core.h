/*
 * core.h: the daemon's process-wide state and its life cycle: boot, reload,
 * stop.  The core is single-threaded; everything here runs on the loop.
 */
#ifndef SB_CORE_H
#define SB_CORE_H

#include <stddef.h>

struct sb_channel;
struct sb_config;
struct sb_loop;

struct sb_core {
	struct sb_loop *loop;
	struct sb_config *conf;
	const char *conf_path;
	const char *socket_override;	/* -s */
	const char *state_override;	/* -d */
	const char *socket;		/* in effect */
	const char *state_dir;		/* in effect */
	int     foreground;
	int     verbose;		/* -v: debug logging whatever the config says */
	int     will_drop;		/* main.c drops privileges after sb_core_start */
	int     stopping;
	/* The config whose channels are being opened (at start, reload or
	 * --check-config): drivers that need the rest of it look here. */
	const struct sb_config *opening;
};

extern struct sb_core sb_core;

/* Boot with a loaded config (taken): nodes, ACL, channels, dialplan. */
int  sb_core_start(struct sb_config *, char *err, size_t errlen);
/* Check what a start would parse (HAL and channel sections, roles)
 * without starting anything. */
int  sb_core_check(const struct sb_config *, char *err, size_t errlen);
/* Re-read the config file; the running one stays if the new one fails. */
int  sb_core_reload(char *err, size_t errlen);
void sb_core_stop(void);		/* ask the loop to stop */
void sb_core_shutdown(void);		/* stop channels, free everything */

/*
 * For tests and embedding: put a channel instance (borrowed) into the
 * registry sb_channel_find() searches, or take it out.  The core does not
 * own, start, stop or free a registered channel; unregister it before
 * sb_core_start(), sb_core_reload() or sb_core_shutdown().  Register
 * returns -1 if the name is taken.
 */
int  sb_channel_register(struct sb_channel *);
void sb_channel_unregister(struct sb_channel *);

/* An event (notify.h's sb_event_submit without a completion callback); if
 * the store cannot take it, the text goes to the console at least. */
void sb_core_event(const char *source, const char *node, const char *severity,
                   const char *text);

#endif
