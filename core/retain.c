/*
 * retain.c: the store's history is kept for a while, not for ever (see
 * retain.h).  Without it the events and audit tables grew by every state
 * change and every command for as long as the daemon ran.
 *
 * A batch is BATCH rows a table, deleted oldest first inside the store's
 * open transaction: the audit table's ids grow with its times, and events
 * are found in id order too, so neither needs an index on time and a large
 * backlog (the first prune after an upgrade) costs a batch a loop turn, not
 * a long stall.
 */
#include <sqlite3.h>
#include <stdio.h>

#include "log.h"
#include "loop.h"
#include "retain.h"
#include "store.h"

#define BATCH		1000		/* rows a table a batch: the LIMITs below */
#define FIRST_MS	60000		/* the first prune: out of the start's way */
#define EVERY_MS	3600000		/* then hourly */
#define AGAIN_MS	100		/* a full batch: the next one soon */
#define MIN_AGE		3600.0		/* shorter ages are mistakes */
#define EVENT_AGE	7776000.0	/* 90 days: sb_store_keys says so too */
#define AUDIT_AGE	31536000.0	/* 365 days */

const struct sb_conf_key sb_store_keys[] = {
	{ "event_max_age", SB_CT_FLOAT, 0, NULL, "7776000.0",
	  "seconds a closed event (resolved, or never a problem) stays in the store "
	  "for events, alerts and /api/events; open events stay until they close "
	  "(0: for ever; default 90 days)" },
	{ "audit_max_age", SB_CT_FLOAT, 0, NULL, "31536000.0",
	  "seconds an audit row stays in the store (0: for ever; default 365 days)" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static double event_age = EVENT_AGE, audit_age = AUDIT_AGE;
static struct sb_loop *tloop;
static struct sb_timer *timer;
static struct sqlite3_stmt *s_events, *s_audit;	/* the store finalizes them */

int
sb_retain_apply(const config_setting_t *s, char *err, size_t errlen)
{
	static const char *const keys[] = { "event_max_age", "audit_max_age" };
	double age[2] = {
		sb_conf_float(s, keys[0], EVENT_AGE),
		sb_conf_float(s, keys[1], AUDIT_AGE),
	};

	for (int i = 0; i < 2; i++) {
		char where[256] = "";

		if (age[i] == 0 || age[i] >= MIN_AGE)
			continue;
		sb_conf_where(config_setting_get_member(s, keys[i]), where, sizeof(where));
		snprintf(err, errlen, "%s%sstore: %s must be 0 (keep for ever) or at least "
		    "%.0f seconds", where, *where ? ": " : "", keys[i], MIN_AGE);
		return -1;
	}
	event_age = age[0];
	audit_age = age[1];
	return 0;
}

/* Run stmt with its cut-off bound; the rows it deleted, or -1. */
static long
run(struct sqlite3_stmt *stmt, sqlite3_int64 cutoff)
{
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, cutoff);
	if (sb_store_exec(stmt) < 0)
		return -1;
	return (long)sqlite3_changes(sb_store_db());
}

long
sb_retain_prune(time_t now)
{
	long n = 0, k;

	if (!sb_store_is_open() || (event_age == 0 && audit_age == 0))
		return 0;
	if (sb_store_begin() < 0)
		return -1;
	/* Closed and routed only: an open event is still news, and one not
	 * yet routed still owes its notifications. */
	if (event_age > 0) {
		k = run(sb_store_stmt(&s_events, "DELETE FROM events WHERE id IN "
		    "(SELECT id FROM events WHERE open = 0 AND routed = 1 AND time < ?1 "
		    "ORDER BY id LIMIT 1000)"), (sqlite3_int64)(now - event_age));
		if (k < 0)
			return -1;
		n += k;
	}
	/* The audit's times are milliseconds. */
	if (audit_age > 0) {
		k = run(sb_store_stmt(&s_audit, "DELETE FROM audit WHERE id IN "
		    "(SELECT id FROM audit WHERE time < ?1 ORDER BY id LIMIT 1000)"),
		    (sqlite3_int64)(now - audit_age) * 1000);
		if (k < 0)
			return -1;
		n += k;
	}
	return n;
}

static long
tick(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	static long total;
	long n = sb_retain_prune(time(NULL));

	(void)loop;
	(void)t;
	(void)ud;
	if (n > 0)
		total += n;
	if (n >= BATCH)
		return AGAIN_MS;
	if (total > 0)
		sb_info("store: %ld old event and audit rows deleted (store section's ages)",
		    total);
	total = 0;
	return EVERY_MS;
}

void
sb_retain_start(struct sb_loop *loop)
{
	if (timer == NULL && loop != NULL) {
		tloop = loop;
		timer = sb_loop_add_timer(loop, FIRST_MS, tick, NULL);
	}
}

void
sb_retain_stop(void)
{
	if (timer) {
		sb_loop_del_timer(tloop, timer);
		timer = NULL;
	}
}
