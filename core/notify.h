/*
 * notify.h: events and their delivery.
 *
 * An event (a node's state change, a webhook alert, a script's notify())
 * is written to the store, then routed by the dialplan's routes to
 * destinations ("xmpp:oncall@example.org", "irc:#ops", "http:pager",
 * "console").  Per destination, events arriving within the group window
 * become one message; each message goes through the durable spool and is
 * retried with backoff until its channel confirms it.  Open critical
 * events escalate until acknowledged or resolved.  Silences and
 * maintenance mute a node's notifications.
 */
#ifndef SB_NOTIFY_H
#define SB_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"		/* struct sb_conf_key, for sb_notify_keys */


/* The "notify" config section's keys (conf.c declares it). */
extern const struct sb_conf_key sb_notify_keys[];

struct sb_event_in {
	const char *source;	/* "state", a webhook's name, "script" */
	const char *node;	/* or NULL */
	const char *severity;	/* info, warning, critical */
	const char *text;
	const char *key;	/* dedup key; NULL: source/node */
	int         resolved;	/* resolves the open event with this key */
};

typedef void sb_event_done_fn(void *ud, int ok);

/* The severity of the open event with this key (warning or critical, not
 * resolved), or NULL if none is open. */
const char *sb_notify_open_severity(const char *key);

/*
 * Accept an event.  Returns its id (> 0), 0 if it was a duplicate of an
 * open event with the same key (dropped: nothing new to say), or -1 (store
 * failure, logged).  done (may be NULL) runs once the event is durable
 * (ok = 1) or could not be made so (ok = 0); a webhook answers 2xx only
 * then.  A duplicate or failure calls done at once.
 */
int64_t sb_event_submit(const struct sb_event_in *, sb_event_done_fn *done, void *ud);

/*
 * Routing: the dialplan's routes turn an event into a plan: destinations by
 * tier (0 at once; tier N after its delay if the event is still open,
 * critical and unacknowledged) and a repeat interval.
 */
struct sb_event_view {
	int64_t     id;
	const char *source, *node, *severity, *text, *key;
	int64_t     resolves;		/* the event this one resolves, or 0 */
	const char *resolves_severity;	/* and its severity, or NULL */
};
struct sb_route_target {
	char   *dest;		/* "channel:address" */
	int     tier;
	double  after;		/* seconds after the first notification */
};
struct sb_route_plan {
	struct sb_route_target *v;
	size_t  n, cap;
	double  every;		/* repeat to the tiers reached; 0: never */
};
void sb_route_plan_add(struct sb_route_plan *, const char *dest, int tier, double after);
/* Fill plan; return 0, or -1 to fall back to the console. */
typedef int sb_route_fn(const struct sb_event_view *, struct sb_route_plan *, void *ud);
void sb_notify_set_router(sb_route_fn *, void *ud);

/* "90s", "30m", "2h", "1d", "1h30m", "45" (seconds): 0 or -1. */
int  sb_parse_duration(const char *, long long *seconds);

/* The built-in commands: ack, alerts, silence, unsilence, maint
 * (NULL-terminated; dispatch finds them with the others). */
struct sb_builtin;
extern const struct sb_builtin *const sb_notify_builtin_table;

/* Life cycle: sb_notify_start() opens the store in the state folder and
 * queues what an earlier run left undelivered; apply takes the "notify"
 * section (NULL: defaults) at start and reload. */
int  sb_notify_start(const char *state_dir, char *err, size_t errlen);
int  sb_notify_apply(const struct config_setting_t *, char *err, size_t errlen);
/* Channels are up: start delivering (and apply maintenance windows). */
void sb_notify_go(void);
/* Shutting down: deliver nothing more (what is in flight stays spooled). */
void sb_notify_hold(void);
void sb_notify_stop(void);

/* A channel came up: retry what waits for it now, not after its backoff. */
void sb_notify_kick(const char *channel);

/* maint.c: a node in maintenance is in state maint (xa presence with the
 * reason, *reason borrowed) and its notifications are muted, as are those
 * of a silenced node (NULL node: never muted). */
int  sb_notify_in_maint(const char *node, const char **reason);
int  sb_notify_muted(const char *node);
/* A silence or window ended: open events it muted are sent now. */
void sb_notify_unmute(void);
int  sb_maint_load(void);		/* from the open store; 0 or -1 */
void sb_maint_apply(void);		/* enter or leave maint as the windows say */
void sb_maint_stop(void);
extern const struct sb_builtin *const sb_maint_builtin_table;

struct sb_notify_stats {
	uint64_t events;	/* accepted */
	uint64_t deduplicated;
	uint64_t muted;		/* by a silence or maintenance */
	uint64_t messages;	/* spooled */
	uint64_t delivered;
	uint64_t retries;
	uint64_t failed;	/* dropped: permanent failure */
	uint64_t dropped;	/* dropped: past the spool's cap or age */
	uint64_t escalations;
	size_t   spool_depth;	/* waiting for delivery now */
	size_t   open_events;
};
void sb_notify_stats(struct sb_notify_stats *);

#endif
