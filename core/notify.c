/*
 * notify.c: events, routing, grouping, escalation, acknowledgement and
 * the durable spool (silences and maintenance: maint.c).
 *
 * The path of an event:
 *
 *   sb_event_submit()   dedup against the open events; INSERT (routed=0)
 *   route_hook()        before the loop sleeps: the dialplan's routes give
 *                       destinations per tier; tier 0 joins each
 *                       destination's group
 *   group flush         the group's quiet period is over: one message,
 *                       INSERT into the spool, UPDATE events routed=1,
 *                       all in the turn's transaction
 *   pump                after that commit: deliver(); a channel's DONE
 *                       deletes the row; LATER backs the destination off
 *
 * A crash anywhere leaves either an unrouted event (re-routed at start) or
 * a spool row (re-delivered at start, same id): at least once, never lost.
 * Everything here runs on the loop thread.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dispatch.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "notify.h"
#include "store.h"
#include "util.h"

#define MAX_INFLIGHT	64	/* per destination */
#define INFLIGHT_MS	60000	/* a PENDING never reported is retried after this */
#define GROUP_LINES	40	/* a grouped message lists this many events */
#define NBUCKETS	1024

const struct sb_conf_key sb_notify_keys[] = {
	{ "group_wait", SB_CT_FLOAT, 0, NULL, "2.0",
	  "seconds of quiet that close a group: events for one destination closer "
	  "together than this go out as one message (0: each alone)" },
	{ "group_max", SB_CT_FLOAT, 0, NULL, "15.0",
	  "a group is sent at the latest this many seconds after its first event" },
	{ "dedup_window", SB_CT_FLOAT, 0, NULL, "300.0",
	  "an event repeating an open event's key and severity within this many "
	  "seconds is dropped" },
	{ "retry_min", SB_CT_FLOAT, 0, NULL, "1.0",
	  "first delay before retrying a destination that could not take a message" },
	{ "retry_max", SB_CT_FLOAT, 0, NULL, "60.0",
	  "the retry delay doubles up to this many seconds" },
	{ "spool_max", SB_CT_INT, 0, NULL, "10000",
	  "messages kept for delivery at most; past it the oldest is dropped (logged, counted)" },
	{ "spool_max_age", SB_CT_FLOAT, 0, NULL, "604800.0",
	  "seconds a message may wait for delivery before it is dropped (logged, counted)" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

struct settings {
	double  group_wait, group_max, dedup_window, retry_min, retry_max, max_age;
	long long spool_max;
};

struct event {
	unsigned refs;
	int64_t id;
	char   *key, *source, *node, *severity, *text;
	time_t  time;
	int64_t resolves;
	char   *resolves_severity;
	int     open;		/* warning or critical, not resolved */
	int     muted;
	int     routed;		/* in the spool for every destination */
	int     replan;		/* loaded at start: plan escalation only */
	int     preset;		/* plan given, not asked of the routes */
	unsigned pending;	/* groups holding it */
	char   *ack_by, *ack_comment;
	time_t  ack_at;
	/* escalation */
	struct sb_route_plan plan;
	int     tier;		/* highest tier reached */
	unsigned repeats;
	struct sb_timer *esc_timer;
	int64_t esc_base_ms;	/* when tier 0 went out (sb_now_ms; earlier than
				 * the clock's start for an old event) */
	struct event *hnext;	/* open events by key */
	struct event *qnext;	/* the routing queue */
};

struct gitem {
	struct event *ev;
	char   *line;
	json_t *obj;
};

struct msg {
	uint64_t id;
	char   *text, *json;
	time_t  created;
	unsigned attempts;
	int     ready;		/* committed: may be delivered */
	int     inflight;
	uint64_t deadline_ms;
	struct dest *d;
	struct msg *next;	/* the destination's queue */
	struct msg *hnext;	/* by id */
};

struct dest {
	char   *name;		/* "xmpp:oncall@example.org" */
	struct gitem *items;
	size_t  nitems, cap;
	uint64_t first_ms, last_ms;
	struct msg *head, *tail;
	size_t  inflight;
	uint64_t backoff_ms, next_try_ms;
	int     warned;
	struct sb_timer *timer;
	struct dest *next;
};

static struct settings cfg = { 2.0, 15.0, 300.0, 1.0, 60.0, 604800.0, 10000 };
static struct event *open_by_key[NBUCKETS];
static struct event *rq_head, *rq_tail;	/* to route */
static struct msg *msg_by_id[NBUCKETS];
static struct dest *dests;
static struct sb_notify_stats st;
static size_t nmsgs;		/* in the spool */
static size_t nready;		/* of which committed: the cap counts these */
static uint64_t next_msg_id = 1;
/* Event ids come from here, not from SQLite's rowid: a commit that fails
 * (a full disk) rolls the rowid back, and the next event would reuse an
 * id already shown to people for another one. */
static int64_t next_event_id = 1;
static int started;
/* Spool rows deleted since the last good commit: a failed commit (a full
 * disk) brings them back on disk, so they are deleted again. */
static uint64_t *undone;
static size_t nundone, undone_cap;
static sb_route_fn *router;
static void *router_ud;

static sqlite3_stmt *s_ev_ins, *s_ev_routed, *s_ev_close, *s_ev_ack, *s_ev_esc;
static sqlite3_stmt *s_sp_ins, *s_sp_del;

static void dest_arm(struct dest *);
static void group_flush(struct dest *);
static void dest_pump(struct dest *);

/* ---- small helpers ---- */

static unsigned
hash_str(const char *s)
{
	return sb_strhash(s) % NBUCKETS;
}

static int
sev_rank(const char *s)
{
	if (s && strcmp(s, "critical") == 0)
		return 2;
	if (s && strcmp(s, "warning") == 0)
		return 1;
	return 0;
}

static uint64_t
jitter(uint64_t ms)
{
	/* +-20 %: destinations that failed together do not retry together. */
	return ms - ms / 5 + (uint64_t)random() % (ms * 2 / 5 + 1);
}

int
sb_parse_duration(const char *s, long long *out)
{
	long long total = 0;

	if (s == NULL || *s == '\0')
		return -1;
	while (*s) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(s, &end, 10);
		/* Bounded before the multiplication, which would overflow
		 * (found by tests/fuzz/fuzz_command.c). */
		if (end == s || errno || v < 0 || v > 366LL * 86400)
			return -1;
		switch (*end) {
		case 'd': v *= 86400; end++; break;
		case 'h': v *= 3600; end++; break;
		case 'm': v *= 60; end++; break;
		case 's': end++; break;
		case '\0': break;
		default: return -1;
		}
		if (v > 366LL * 86400 || (total += v) > 366LL * 86400)
			return -1;
		s = end;
	}
	*out = total;
	return 0;
}

/* ---- events ---- */

static void
plan_free(struct sb_route_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].dest);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

void
sb_route_plan_add(struct sb_route_plan *p, const char *dest, int tier, double after)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].dest, dest) == 0) {
			if (tier < p->v[i].tier) {
				p->v[i].tier = tier;
				p->v[i].after = after;
			}
			return;
		}
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 4;
		p->v = sb_realloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n].dest = sb_strdup(dest);
	p->v[p->n].tier = tier;
	p->v[p->n].after = after < 0 ? 0 : after;
	p->n++;
}

static void
ev_unref(struct event *e)
{
	if (e == NULL || --e->refs > 0)
		return;
	if (e->esc_timer)
		sb_loop_del_timer(sb_core.loop, e->esc_timer);
	plan_free(&e->plan);
	free(e->key);
	free(e->source);
	free(e->node);
	free(e->severity);
	free(e->text);
	free(e->resolves_severity);
	free(e->ack_by);
	free(e->ack_comment);
	free(e);
}

static struct event *
open_find(const char *key)
{
	for (struct event *e = open_by_key[hash_str(key)]; e; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static struct event *
open_find_id(int64_t id)
{
	for (size_t b = 0; b < NBUCKETS; b++)
		for (struct event *e = open_by_key[b]; e; e = e->hnext)
			if (e->id == id)
				return e;
	return NULL;
}

const char *
sb_notify_open_severity(const char *key)
{
	struct event *e = open_find(key);

	return e ? e->severity : NULL;
}

static void
open_add(struct event *e)
{
	unsigned h = hash_str(e->key);

	e->open = 1;
	e->refs++;
	e->hnext = open_by_key[h];
	open_by_key[h] = e;
	st.open_events++;
}

/* Close an open event (resolved, superseded or deleted): persistent too. */
static void
open_close(struct event *e)
{
	struct event **pp = &open_by_key[hash_str(e->key)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == NULL)
		return;
	*pp = e->hnext;
	e->open = 0;
	st.open_events--;
	if (e->esc_timer) {
		sb_loop_del_timer(sb_core.loop, e->esc_timer);
		e->esc_timer = NULL;
	}
	if (sb_store_begin() == 0 && sb_store_stmt(&s_ev_close,
	    "UPDATE events SET open = 0 WHERE id = ?")) {
		sqlite3_bind_int64(s_ev_close, 1, e->id);
		sb_store_exec(s_ev_close);
	}
	ev_unref(e);
}

static void
route_queue(struct event *e)
{
	e->refs++;
	e->qnext = NULL;
	if (rq_tail)
		rq_tail->qnext = e;
	else
		rq_head = e;
	rq_tail = e;
}

static int64_t submit(const struct sb_event_in *, sb_event_done_fn *, void *,
                      const struct sb_route_plan *);

int64_t
sb_event_submit(const struct sb_event_in *in, sb_event_done_fn *done, void *ud)
{
	return submit(in, done, ud, NULL);
}

/* preset: deliver to these destinations (tier 0 only), not the routes'. */
static int64_t
submit(const struct sb_event_in *in, sb_event_done_fn *done, void *ud,
       const struct sb_route_plan *preset)
{
	char keybuf[300];
	const char *key = in->key;
	const char *sev = in->severity ? in->severity : "info";
	struct event *old, *e;
	int64_t id;

	if (key == NULL) {
		snprintf(keybuf, sizeof(keybuf), "%s/%s", in->source ? in->source : "script",
		    in->node ? in->node : "-");
		key = keybuf;
	}
	old = open_find(key);
	if (!in->resolved && old && strcmp(old->severity, sev) == 0 &&
	    difftime(time(NULL), old->time) < cfg.dedup_window) {
		st.deduplicated++;
		sb_debug("event %s dropped: repeats E%lld", key, (long long)old->id);
		if (done)
			done(ud, 1);
		return 0;
	}
	if (!sb_store_is_open() || sb_store_begin() < 0 ||
	    sb_store_stmt(&s_ev_ins, "INSERT INTO events (id, key, source, node, severity, "
	    "text, time, resolves, open) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)") == NULL) {
		sb_warnx("event not accepted (store unavailable): %s", in->text);
		if (done)
			done(ud, 0);
		return -1;
	}
	e = sb_calloc(1, sizeof(*e));
	e->refs = 1;
	e->key = sb_strdup(key);
	e->source = sb_strdup(in->source ? in->source : "script");
	e->node = sb_strdup(in->node);
	e->severity = sb_strdup(in->resolved ? "info" : sev);
	e->text = sb_strdup(in->text ? in->text : "");
	sb_sanitize_line(e->text);
	e->time = time(NULL);
	if (old) {
		e->resolves = in->resolved ? old->id : 0;
		if (in->resolved)
			e->resolves_severity = sb_strdup(old->severity);
	}
	e->muted = sb_notify_muted(e->node);
	if (preset) {
		e->preset = 1;
		for (size_t i = 0; i < preset->n; i++)
			sb_route_plan_add(&e->plan, preset->v[i].dest, 0, 0);
	}
	sqlite3_bind_int64(s_ev_ins, 1, next_event_id);
	sqlite3_bind_text(s_ev_ins, 2, e->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s_ev_ins, 3, e->source, -1, SQLITE_STATIC);
	sb_store_bind_text(s_ev_ins, 4, e->node);
	sqlite3_bind_text(s_ev_ins, 5, e->severity, -1, SQLITE_STATIC);
	sqlite3_bind_text(s_ev_ins, 6, e->text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s_ev_ins, 7, (sqlite3_int64)e->time);
	if (e->resolves)
		sqlite3_bind_int64(s_ev_ins, 8, e->resolves);
	else
		sqlite3_bind_null(s_ev_ins, 8);
	sqlite3_bind_int(s_ev_ins, 9, !in->resolved && sev_rank(sev) > 0);
	if (sb_store_exec(s_ev_ins) < 0) {
		ev_unref(e);
		if (done)
			done(ud, 0);
		return -1;
	}
	e->id = next_event_id++;
	st.events++;
	sb_store_urgent();	/* accepted: committed before the loop sleeps */
	/* The new event supersedes (or resolves) the old one. */
	if (old)
		open_close(old);
	if (!in->resolved && sev_rank(sev) > 0)
		open_add(e);
	if (done)
		sb_store_when_committed(done, ud);
	if (e->muted) {
		st.muted++;
		sb_info("E%lld muted (%s): %s", (long long)e->id, e->node, e->text);
		e->routed = 1;
		if (sb_store_stmt(&s_ev_routed, "UPDATE events SET routed = 1 WHERE id = ?")) {
			sqlite3_bind_int64(s_ev_routed, 1, e->id);
			sb_store_exec(s_ev_routed);
		}
	} else
		route_queue(e);
	id = e->id;
	ev_unref(e);
	return id;
}

/* ---- grouping ---- */

static struct dest *
dest_get(const char *name)
{
	struct dest *d;

	for (d = dests; d; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	d = sb_calloc(1, sizeof(*d));
	d->name = sb_strdup(name);
	d->next = dests;
	dests = d;
	return d;
}

static json_t *
event_json(const struct event *e)
{
	char id[32], rid[32], when[32];
	struct tm tm;
	json_t *o;

	snprintf(id, sizeof(id), "E%lld", (long long)e->id);
	snprintf(rid, sizeof(rid), "E%lld", (long long)e->resolves);
	gmtime_r(&e->time, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "source", e->source,
	    "severity", e->severity, "text", e->text, "time", when);
	if (o == NULL)
		sb_fatalx("out of memory");
	json_object_set_new(o, "node", e->node ? json_string(e->node) : json_null());
	json_object_set_new(o, "resolves", e->resolves ? json_string(rid) : json_null());
	return o;
}

static void
group_add(struct dest *d, struct event *e, const char *prefix)
{
	struct gitem *it;
	uint64_t now = sb_now_ms();

	if (d->nitems == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 8;
		d->items = sb_realloc(d->items, d->cap * sizeof(*d->items));
	}
	it = &d->items[d->nitems++];
	it->ev = e;
	e->refs++;
	e->pending++;
	it->line = sb_asprintf("[E%lld] %s%s%s", (long long)e->id, prefix ? prefix : "",
	    e->text, "");
	if (e->resolves) {
		char *l = sb_asprintf("%s (resolves E%lld)", it->line, (long long)e->resolves);

		free(it->line);
		it->line = l;
	}
	it->obj = event_json(e);
	if (prefix)
		json_object_set_new(it->obj, "escalation", json_string(prefix));
	if (d->nitems == 1)
		d->first_ms = now;
	d->last_ms = now;
	if (cfg.group_wait <= 0)
		group_flush(d);		/* grouping off: each event alone */
	else
		dest_arm(d);
}

static void
msg_hash_add(struct msg *m)
{
	unsigned h = (unsigned)(m->id % NBUCKETS);

	m->hnext = msg_by_id[h];
	msg_by_id[h] = m;
}

static struct msg *
msg_find(uint64_t id)
{
	for (struct msg *m = msg_by_id[id % NBUCKETS]; m; m = m->hnext)
		if (m->id == id)
			return m;
	return NULL;
}

static void
msg_unlink(struct msg *m)
{
	struct msg **pp = &msg_by_id[m->id % NBUCKETS];

	while (*pp && *pp != m)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = m->hnext;
	for (pp = &m->d->head; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	if (m->d->tail == m) {
		struct msg *t = m->d->head;

		while (t && t->next)
			t = t->next;
		m->d->tail = t;
	}
	if (m->inflight)
		m->d->inflight--;
	nmsgs--;
	if (m->ready)
		nready--;
	free(m->text);
	free(m->json);
	free(m);
}

static void
spool_delete(uint64_t id)
{
	if (sb_store_begin() == 0 && sb_store_stmt(&s_sp_del, "DELETE FROM spool WHERE id = ?")) {
		sqlite3_bind_int64(s_sp_del, 1, (sqlite3_int64)id);
		sb_store_exec(s_sp_del);
	}
}

static void
after_commit(void *ud, int ok)
{
	(void)ud;
	if (ok) {
		nundone = 0;
		return;
	}
	/* The deletions went with the failed commit: do them again (the
	 * next commit may fail too; then again, until the disk has room). */
	for (size_t i = 0; i < nundone; i++)
		spool_delete(undone[i]);
}

/* Forget a message for good (delivered, failed or dropped). */
static void
msg_remove(struct msg *m)
{
	spool_delete(m->id);
	if (nundone == undone_cap) {
		undone_cap = undone_cap ? 2 * undone_cap : 64;
		undone = sb_realloc(undone, undone_cap * sizeof(*undone));
	}
	undone[nundone++] = m->id;
	msg_unlink(m);
}

static struct msg *
msg_new(struct dest *d, uint64_t id, const char *text, const char *json, time_t created)
{
	struct msg *m = sb_calloc(1, sizeof(*m));

	m->id = id;
	m->d = d;
	m->text = sb_strdup(text);
	m->json = sb_strdup(json);
	m->created = created;
	if (d->tail)
		d->tail->next = m;
	else
		d->head = m;
	d->tail = m;
	msg_hash_add(m);
	nmsgs++;
	return m;
}

static void
msg_ready(void *ud, int ok)
{
	uint64_t id = (uint64_t)(uintptr_t)ud;
	struct msg *m = msg_find(id);

	if (m == NULL)
		return;
	if (!ok) {
		/* Not durable: keep it in memory and try to write it again. */
		sb_warnx("spool: message %llu for %s not committed; delivering anyway",
		    (unsigned long long)id, m->d->name);
	}
	m->ready = 1;
	nready++;
	dest_pump(m->d);
}

/* Too many waiting: the oldest go, loudly. */
static void
spool_trim(void)
{
	while ((long long)nready > cfg.spool_max) {
		struct msg *oldest = NULL;

		for (struct dest *d = dests; d; d = d->next)
			for (struct msg *m = d->head; m; m = m->next)
				if (m->ready && !m->inflight && (oldest == NULL || m->id < oldest->id))
					oldest = m;
		if (oldest == NULL)
			break;
		sb_warnx("spool full (%lld messages): dropped message %llu for %s: %.80s",
		    cfg.spool_max, (unsigned long long)oldest->id, oldest->d->name, oldest->text);
		st.dropped++;
		msg_remove(oldest);
	}
}

static void
group_flush(struct dest *d)
{
	struct sb_buf text = { 0 };
	json_t *root, *arr;
	char *json;
	uint64_t id;
	struct msg *m;
	size_t n = d->nitems;

	if (n == 0)
		return;
	if (sb_store_begin() < 0 || sb_store_stmt(&s_sp_ins, "INSERT INTO spool "
	    "(id, dest, text, json, created) VALUES (?, ?, ?, ?, ?)") == NULL) {
		/* Keep the group: the next arm retries the flush. */
		d->first_ms = d->last_ms = sb_now_ms();
		return;
	}
	if (n == 1)
		sb_buf_puts(&text, d->items[0].line);
	else {
		sb_buf_printf(&text, "%zu events:", n);
		for (size_t i = 0; i < n && i < GROUP_LINES; i++)
			sb_buf_printf(&text, "\n%s", d->items[i].line);
		if (n > GROUP_LINES)
			sb_buf_printf(&text, "\n... and %zu more (alerts lists the open ones)",
			    n - GROUP_LINES);
	}
	id = next_msg_id++;
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, d->items[i].obj);
	root = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "text", text.buf, "events", arr);
	json = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	sqlite3_bind_int64(s_sp_ins, 1, (sqlite3_int64)id);
	sqlite3_bind_text(s_sp_ins, 2, d->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s_sp_ins, 3, text.buf, -1, SQLITE_STATIC);
	sqlite3_bind_text(s_sp_ins, 4, json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s_sp_ins, 5, (sqlite3_int64)time(NULL));
	sb_store_exec(s_sp_ins);
	m = msg_new(d, id, text.buf, json, time(NULL));
	(void)m;
	st.messages++;
	free(json);
	sb_buf_free(&text);
	for (size_t i = 0; i < n; i++) {
		struct event *e = d->items[i].ev;

		if (--e->pending == 0 && !e->routed) {
			e->routed = 1;
			if (sb_store_stmt(&s_ev_routed, "UPDATE events SET routed = 1 WHERE id = ?")) {
				sqlite3_bind_int64(s_ev_routed, 1, e->id);
				sb_store_exec(s_ev_routed);
			}
		}
		free(d->items[i].line);
		ev_unref(e);
	}
	d->nitems = 0;
	sb_store_when_committed(msg_ready, (void *)(uintptr_t)id);
}

/* ---- delivery ---- */

static void
dest_backoff(struct dest *d)
{
	uint64_t lo = (uint64_t)(cfg.retry_min * 1000), hi = (uint64_t)(cfg.retry_max * 1000);

	d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : lo;
	if (d->backoff_ms > hi)
		d->backoff_ms = hi;
	if (d->backoff_ms == 0)
		d->backoff_ms = 1;
	d->next_try_ms = sb_now_ms() + jitter(d->backoff_ms);
}

static void
msg_result(struct msg *m, int result)
{
	struct dest *d = m->d;

	if (m->inflight) {
		m->inflight = 0;
		d->inflight--;
	}
	switch (result) {
	case SB_SEND_DONE:
		st.delivered++;
		d->backoff_ms = 0;
		d->warned = 0;
		{
			const char *addr;
			struct sb_channel *ch = sb_channel_for_dest(d->name, &addr);

			if (ch)
				ch->msgs_out++;
		}
		msg_remove(m);
		break;
	case SB_SEND_FAIL:
		st.failed++;
		sb_warnx("notification %llu for %s dropped: the channel refused it for good",
		    (unsigned long long)m->id, d->name);
		msg_remove(m);
		break;
	default:
		st.retries++;
		if (d->next_try_ms <= sb_now_ms())
			dest_backoff(d);
		break;
	}
}

static void
dest_pump(struct dest *d)
{
	uint64_t now = sb_now_ms();
	struct sb_channel *ch;
	const char *addr;
	struct msg *m, *next;

	if (!started || d->next_try_ms > now) {
		dest_arm(d);
		return;
	}
	for (m = d->head; m; m = next) {
		struct sb_notice n;
		int r;

		next = m->next;
		if (!m->ready || m->inflight)
			continue;
		if (difftime(time(NULL), m->created) > cfg.max_age) {
			sb_warnx("notification %llu for %s dropped after %.0f s undelivered: %.80s",
			    (unsigned long long)m->id, d->name, difftime(time(NULL), m->created),
			    m->text);
			st.dropped++;
			msg_remove(m);
			continue;
		}
		if (d->inflight >= MAX_INFLIGHT || d->next_try_ms > now)
			break;
		ch = sb_channel_for_dest(d->name, &addr);
		if (ch == NULL) {
			sb_warnx("notification %llu dropped: no channel for destination \"%s\"",
			    (unsigned long long)m->id, d->name);
			st.failed++;
			msg_remove(m);
			continue;
		}
		m->attempts++;
		if (!ch->started) {
			r = SB_SEND_LATER;
		} else if (ch->drv->deliver) {
			n = (struct sb_notice){ .id = m->id, .to = addr, .text = m->text,
			    .json = m->json, .attempt = m->attempts };
			m->inflight = 1;
			m->deadline_ms = now + INFLIGHT_MS;
			d->inflight++;
			r = ch->drv->deliver(ch, &n);
		} else if (ch->drv->send) {
			r = ch->drv->send(ch, addr, m->text) == 0 ? SB_SEND_DONE : SB_SEND_LATER;
		} else
			r = SB_SEND_FAIL;
		if (r == SB_SEND_PENDING)
			continue;
		if (r == SB_SEND_LATER && !d->warned) {
			sb_info("notifications for %s wait: channel %s is not ready",
			    d->name, ch->name);
			d->warned = 1;
		}
		/* msg_result may free m (and only m: next is still valid). */
		msg_result(m, r);
	}
	spool_trim();
	dest_arm(d);
}

void
sb_notice_result(uint64_t id, int result)
{
	struct msg *m = msg_find(id);
	struct dest *d;

	if (m == NULL || !m->inflight)
		return;
	if (result == SB_SEND_PENDING)
		result = SB_SEND_LATER;
	d = m->d;
	msg_result(m, result);		/* may free m */
	dest_pump(d);
}

static long
dest_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct dest *d = ud;
	uint64_t now = sb_now_ms();

	(void)loop;
	(void)t;
	d->timer = NULL;
	if (d->nitems && (now >= d->last_ms + (uint64_t)(cfg.group_wait * 1000) ||
	    now >= d->first_ms + (uint64_t)(cfg.group_max * 1000)))
		group_flush(d);
	for (struct msg *m = d->head; m; m = m->next)
		if (m->inflight && now >= m->deadline_ms) {
			sb_notice("notification %llu for %s: no confirmation in %d s; will retry",
			    (unsigned long long)m->id, d->name, INFLIGHT_MS / 1000);
			msg_result(m, SB_SEND_LATER);
		}
	dest_pump(d);
	return SB_TIMER_STOP;
}

/* (Re)arm the destination's timer for the earliest thing it waits for. */
static void
dest_arm(struct dest *d)
{
	uint64_t now = sb_now_ms(), at = UINT64_MAX;

	if (d->nitems) {
		uint64_t a = d->last_ms + (uint64_t)(cfg.group_wait * 1000);
		uint64_t b = d->first_ms + (uint64_t)(cfg.group_max * 1000);

		at = a < b ? a : b;
	}
	for (struct msg *m = d->head; m; m = m->next) {
		if (m->inflight && m->deadline_ms < at)
			at = m->deadline_ms;
		if (m->ready && !m->inflight && started && d->next_try_ms < at &&
		    d->inflight < MAX_INFLIGHT)
			at = d->next_try_ms > now ? d->next_try_ms : now;
	}
	if (d->timer) {
		sb_loop_del_timer(sb_core.loop, d->timer);
		d->timer = NULL;
	}
	if (at == UINT64_MAX || sb_core.loop == NULL)
		return;
	d->timer = sb_loop_add_timer(sb_core.loop, at > now ? (long)(at - now) : 0, dest_timer, d);
}

void
sb_notify_kick(const char *channel)
{
	for (struct dest *d = dests; d; d = d->next) {
		const char *addr;
		struct sb_channel *ch = sb_channel_for_dest(d->name, &addr);

		if (channel == NULL || (ch && strcmp(ch->name, channel) == 0)) {
			d->next_try_ms = 0;
			d->backoff_ms = 0;
			d->warned = 0;
			dest_pump(d);
		}
	}
}

/* ---- routing and escalation ---- */

void
sb_notify_set_router(sb_route_fn *fn, void *ud)
{
	router = fn;
	router_ud = ud;
}

static void
view_of(const struct event *e, struct sb_event_view *v)
{
	*v = (struct sb_event_view){ .id = e->id, .source = e->source, .node = e->node,
	    .severity = e->severity, .text = e->text, .key = e->key,
	    .resolves = e->resolves, .resolves_severity = e->resolves_severity };
}

static long esc_timer(struct sb_loop *, struct sb_timer *, void *);

static void
esc_arm(struct event *e)
{
	int64_t now = (int64_t)sb_now_ms(), at = INT64_MAX;

	if (e->esc_timer) {
		sb_loop_del_timer(sb_core.loop, e->esc_timer);
		e->esc_timer = NULL;
	}
	if (!e->open || e->ack_by || e->muted || sev_rank(e->severity) < 2)
		return;
	for (size_t i = 0; i < e->plan.n; i++)
		if (e->plan.v[i].tier > e->tier) {
			int64_t a = e->esc_base_ms + (int64_t)(e->plan.v[i].after * 1000);

			if (a < at)
				at = a;
		}
	if (e->plan.every > 0) {
		int64_t a = e->esc_base_ms + (int64_t)(e->plan.every * 1000) * (e->repeats + 1);

		if (a < at)
			at = a;
	}
	if (at == INT64_MAX)
		return;
	e->esc_timer = sb_loop_add_timer(sb_core.loop, at > now ? (long)(at - now) : 0,
	    esc_timer, e);
}

static long
esc_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct event *e = ud;
	int64_t elapsed = (int64_t)sb_now_ms() - e->esc_base_ms;
	char prefix[96], dur[32];
	int newtier = e->tier;

	(void)loop;
	(void)t;
	e->esc_timer = NULL;
	sb_fmt_duration(dur, sizeof(dur), (long long)(elapsed / 1000));
	for (size_t i = 0; i < e->plan.n; i++)
		if (e->plan.v[i].tier > e->tier &&
		    elapsed + 50 >= (int64_t)(e->plan.v[i].after * 1000)) {
			snprintf(prefix, sizeof(prefix), "escalated (unacknowledged for %s): ", dur);
			group_add(dest_get(e->plan.v[i].dest), e, prefix);
			if (e->plan.v[i].tier > newtier)
				newtier = e->plan.v[i].tier;
		}
	if (newtier > e->tier) {
		e->tier = newtier;
		st.escalations++;
		sb_notice("E%lld escalated to tier %d", (long long)e->id, e->tier);
		if (sb_store_begin() == 0 && sb_store_stmt(&s_ev_esc,
		    "UPDATE events SET escalated = ? WHERE id = ?")) {
			sqlite3_bind_int(s_ev_esc, 1, e->tier);
			sqlite3_bind_int64(s_ev_esc, 2, e->id);
			sb_store_exec(s_ev_esc);
		}
	} else if (e->plan.every > 0 &&
	    elapsed + 50 >= (int64_t)(e->plan.every * 1000) * (e->repeats + 1)) {
		e->repeats++;
		snprintf(prefix, sizeof(prefix), "still unacknowledged after %s: ", dur);
		for (size_t i = 0; i < e->plan.n; i++)
			if (e->plan.v[i].tier <= e->tier)
				group_add(dest_get(e->plan.v[i].dest), e, prefix);
	}
	esc_arm(e);
	return SB_TIMER_STOP;
}

static void
route_one(struct event *e)
{
	struct sb_event_view v;

	view_of(e, &v);
	if (!e->preset) {
		plan_free(&e->plan);
		if (router == NULL || router(&v, &e->plan, router_ud) < 0) {
			plan_free(&e->plan);
			sb_route_plan_add(&e->plan, "console", 0, 0);
		}
	}
	e->esc_base_ms = (int64_t)sb_now_ms();
	if (e->replan) {
		/*
		 * From an earlier run: its escalation goes on from the event's
		 * time, as if the daemon had not stopped (its tier 0 went out
		 * then): a tier that fell due meanwhile comes now, and a
		 * repeat at its next multiple of `every', not each one missed.
		 */
		double age = difftime(time(NULL), e->time);

		if (age > 0)
			e->esc_base_ms -= (int64_t)(age * 1000);
		if (e->plan.every > 0)
			e->repeats = (unsigned)(((int64_t)sb_now_ms() - e->esc_base_ms) /
			    (int64_t)(e->plan.every * 1000));
	} else {
		size_t n0 = 0;

		for (size_t i = 0; i < e->plan.n; i++)
			if (e->plan.v[i].tier == 0) {
				group_add(dest_get(e->plan.v[i].dest), e, NULL);
				n0++;
			}
		if (n0 == 0 && !e->routed) {
			sb_debug("E%lld: no route wants it", (long long)e->id);
			e->routed = 1;
			if (sb_store_begin() == 0 && sb_store_stmt(&s_ev_routed,
			    "UPDATE events SET routed = 1 WHERE id = ?")) {
				sqlite3_bind_int64(s_ev_routed, 1, e->id);
				sb_store_exec(s_ev_routed);
			}
		}
	}
	e->replan = 0;
	esc_arm(e);
}

static void
route_hook(struct sb_loop *loop, void *ud)
{
	(void)loop;
	(void)ud;
	while (rq_head) {
		struct event *e = rq_head;

		rq_head = e->qnext;
		if (rq_head == NULL)
			rq_tail = NULL;
		route_one(e);
		ev_unref(e);
	}
}

void
sb_notify_unmute(void)
{
	for (size_t b = 0; b < NBUCKETS; b++)
		for (struct event *e = open_by_key[b]; e; e = e->hnext)
			if (e->muted && !sb_notify_muted(e->node)) {
				e->muted = 0;
				sb_info("E%lld no longer muted: sending it", (long long)e->id);
				route_queue(e);
			}
}

/* ---- acknowledgement, silences, maintenance ---- */

static int64_t
parse_event_id(const char *s)
{
	char *end;
	long long v;

	if (*s == 'E' || *s == 'e')
		s++;
	v = strtoll(s, &end, 10);
	return (*s && *end == '\0' && v > 0) ? v : -1;
}

static void
cmd_ack(struct sb_cmd *cmd, int argc, char **argv)
{
	int64_t id;
	struct event *e;
	const char *comment;

	if (argc < 1 || (id = parse_event_id(argv[0])) < 0) {
		sb_cmd_done(cmd, 0, "usage: ack <event-id> [comment]");
		return;
	}
	if ((e = open_find_id(id)) == NULL) {
		sb_cmd_donef(cmd, 0, "E%lld is not an open event; 'alerts' lists them",
		    (long long)id);
		return;
	}
	comment = sb_skip_words(cmd->rest, 1);
	if (e->ack_by) {
		sb_cmd_donef(cmd, 1, "E%lld was already acknowledged by %s", (long long)id,
		    e->ack_by);
		return;
	}
	e->ack_by = sb_strdup(cmd->identity);
	e->ack_comment = sb_strdup(comment);
	e->ack_at = time(NULL);
	if (sb_store_begin() == 0 && sb_store_stmt(&s_ev_ack, "UPDATE events SET ack_by = ?, "
	    "ack_at = ?, ack_comment = ? WHERE id = ?")) {
		sqlite3_bind_text(s_ev_ack, 1, e->ack_by, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s_ev_ack, 2, (sqlite3_int64)e->ack_at);
		sqlite3_bind_text(s_ev_ack, 3, e->ack_comment, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s_ev_ack, 4, e->id);
		sb_store_exec(s_ev_ack);
	}
	esc_arm(e);		/* stops escalation */
	sb_notice("E%lld acknowledged by %s%s%s", (long long)id, e->ack_by,
	    *comment ? ": " : "", comment);
	/* Tell everyone who was told: the next tier need not wake up. */
	{
		struct sb_event_in in = { .source = "ack", .node = NULL, .severity = "info" };
		struct sb_route_plan told = { 0 };
		char key[64], *text;

		for (size_t i = 0; i < e->plan.n; i++)
			if (e->plan.v[i].tier <= e->tier)
				sb_route_plan_add(&told, e->plan.v[i].dest, 0, 0);
		snprintf(key, sizeof(key), "ack/E%lld", (long long)e->id);
		text = sb_asprintf("E%lld acknowledged by %s%s%s", (long long)e->id,
		    cmd->identity, *comment ? ": " : "", comment);
		in.key = key;
		in.text = text;
		if (told.n)
			submit(&in, NULL, NULL, &told);
		plan_free(&told);
		free(text);
	}
	sb_cmd_donef(cmd, 1, "E%lld acknowledged; escalation stopped", (long long)id);
}

static void
cmd_alerts(struct sb_cmd *cmd, int argc, char **argv)
{
	struct sb_buf b = { 0 };
	struct event **v = NULL;
	size_t n = 0, cap = 0;
	time_t now = time(NULL);

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < NBUCKETS; i++)
		for (struct event *e = open_by_key[i]; e; e = e->hnext) {
			if (n == cap) {
				cap = cap ? 2 * cap : 16;
				v = sb_realloc(v, cap * sizeof(*v));
			}
			v[n++] = e;
		}
	if (n == 0) {
		sb_cmd_done(cmd, 1, "no open events");
		free(v);
		return;
	}
	/* Oldest first: insertion sort is enough for a list people read. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j - 1]->id > v[j]->id; j--) {
			struct event *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	sb_buf_printf(&b, "%zu open event%s:", n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		char age[32];

		sb_fmt_duration(age, sizeof(age), (long long)(now - v[i]->time));
		sb_buf_printf(&b, "\nE%lld %-8s %s (%s ago)", (long long)v[i]->id,
		    v[i]->severity, v[i]->text, age);
		if (v[i]->ack_by)
			sb_buf_printf(&b, " [acked by %s%s%s]", v[i]->ack_by,
			    v[i]->ack_comment && *v[i]->ack_comment ? ": " : "",
			    v[i]->ack_comment ? v[i]->ack_comment : "");
		if (v[i]->muted)
			sb_buf_puts(&b, " [muted]");
		else if (v[i]->tier > 0)
			sb_buf_printf(&b, " [escalated, tier %d]", v[i]->tier);
	}
	free(v);
	sb_cmd_done(cmd, 1, b.buf);
	sb_buf_free(&b);
}

static const struct sb_builtin builtins[] = {
	{ "ack", "ack <event-id> [comment]",
	  "acknowledge an open event: its escalation stops", SB_LEVEL_OPERATOR, cmd_ack },
	{ "alerts", "alerts", "open events (warning and critical, not resolved)",
	  SB_LEVEL_VIEWER, cmd_alerts },
	{ NULL, NULL, NULL, 0, NULL },
};
const struct sb_builtin *const sb_notify_builtin_table = builtins;

/* ---- life cycle ---- */

static int
load(char *err, size_t errlen)
{
	sqlite3 *db = sb_store_db();
	sqlite3_stmt *s;
	size_t nspool = 0, nev = 0, nre = 0;

	if (sqlite3_prepare_v2(db, "SELECT seq FROM sqlite_sequence WHERE name = 'spool'",
	    -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			next_msg_id = (uint64_t)sqlite3_column_int64(s, 0) + 1;
		sqlite3_finalize(s);
	}
	if (sqlite3_prepare_v2(db, "SELECT max((SELECT coalesce(max(seq), 0) FROM sqlite_sequence "
	    "WHERE name = 'events'), (SELECT coalesce(max(id), 0) FROM events))",
	    -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			next_event_id = sqlite3_column_int64(s, 0) + 1;
		sqlite3_finalize(s);
	}
	if (sqlite3_prepare_v2(db, "SELECT id, dest, text, json, created, attempts "
	    "FROM spool ORDER BY id", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(s, 0);
		struct msg *m = msg_new(dest_get((const char *)sqlite3_column_text(s, 1)), id,
		    (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
		    (time_t)sqlite3_column_int64(s, 4));

		m->attempts = (unsigned)sqlite3_column_int(s, 5);
		m->ready = 1;
		nready++;
		if (id >= next_msg_id)
			next_msg_id = id + 1;
		nspool++;
	}
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(db, "SELECT id, key, source, node, severity, text, time, resolves, "
	    "routed, open, escalated, ack_by, ack_at, ack_comment FROM events "
	    "WHERE open = 1 OR routed = 0 ORDER BY id", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct event *e = sb_calloc(1, sizeof(*e));

		e->refs = 1;
		e->id = sqlite3_column_int64(s, 0);
		e->key = sb_strdup((const char *)sqlite3_column_text(s, 1));
		e->source = sb_strdup((const char *)sqlite3_column_text(s, 2));
		e->node = sb_strdup((const char *)sqlite3_column_text(s, 3));
		e->severity = sb_strdup((const char *)sqlite3_column_text(s, 4));
		e->text = sb_strdup((const char *)sqlite3_column_text(s, 5));
		e->time = (time_t)sqlite3_column_int64(s, 6);
		e->resolves = sqlite3_column_int64(s, 7);
		e->routed = sqlite3_column_int(s, 8);
		e->tier = sqlite3_column_int(s, 10);
		e->ack_by = sb_strdup((const char *)sqlite3_column_text(s, 11));
		e->ack_at = (time_t)sqlite3_column_int64(s, 12);
		e->ack_comment = sb_strdup((const char *)sqlite3_column_text(s, 13));
		if (sqlite3_column_int(s, 9) && open_find(e->key) == NULL)
			open_add(e);
		e->replan = e->routed;
		if (!e->routed)
			nre++;
		if (!e->routed || (e->open && !e->ack_by))
			route_queue(e);
		ev_unref(e);
		nev++;
	}
	sqlite3_finalize(s);
	if (sb_maint_load() < 0)
		goto fail;
	if (nspool || nre)
		sb_notice("store: %zu notification%s to deliver and %zu event%s to route "
		    "from an earlier run", nspool, nspool == 1 ? "" : "s", nre,
		    nre == 1 ? "" : "s");
	(void)nev;
	return 0;
fail:
	snprintf(err, errlen, "store: %s", sqlite3_errmsg(db));
	return -1;
}

int
sb_notify_start(const char *state_dir, char *err, size_t errlen)
{
	char *path = sb_asprintf("%s/switchboard.db", state_dir);
	int rc;

	/* Route before the store's own hook commits: one commit per turn. */
	if (sb_core.loop)
		sb_loop_add_before_sleep(sb_core.loop, route_hook, NULL);
	rc = sb_store_open(path, sb_core.loop, err, errlen);
	sb_store_after_commit(after_commit, NULL);
	free(path);
	if (rc < 0 || load(err, errlen) < 0) {
		sb_notify_stop();
		return -1;
	}
	return 0;
}

void
sb_notify_hold(void)
{
	started = 0;
}

void
sb_notify_go(void)
{
	started = 1;
	sb_maint_apply();
	sb_notify_kick(NULL);
}

int
sb_notify_apply(const config_setting_t *s, char *err, size_t errlen)
{
	struct settings c;

	c.group_wait = sb_conf_float(s, "group_wait", 2.0);
	c.group_max = sb_conf_float(s, "group_max", 15.0);
	c.dedup_window = sb_conf_float(s, "dedup_window", 300.0);
	c.retry_min = sb_conf_float(s, "retry_min", 1.0);
	c.retry_max = sb_conf_float(s, "retry_max", 60.0);
	c.spool_max = sb_conf_int(s, "spool_max", 10000);
	c.max_age = sb_conf_float(s, "spool_max_age", 604800.0);
	if (!(c.group_wait >= 0 && c.group_wait <= 600) || !(c.group_max >= c.group_wait &&
	    c.group_max <= 3600)) {
		snprintf(err, errlen, "notify: group_wait must be 0 to 600 s and group_max "
		    "at least group_wait, at most 3600 s");
		return -1;
	}
	if (!(c.retry_min >= 0.05 && c.retry_max >= c.retry_min && c.retry_max <= 86400)) {
		snprintf(err, errlen, "notify: retry_min must be at least 0.05 s and "
		    "retry_max at least retry_min");
		return -1;
	}
	if (c.spool_max < 1 || !(c.max_age >= 1) || !(c.dedup_window >= 0)) {
		snprintf(err, errlen, "notify: spool_max, spool_max_age and dedup_window "
		    "must be positive");
		return -1;
	}
	cfg = c;
	return 0;
}

void
sb_notify_stats(struct sb_notify_stats *out)
{
	*out = st;
	out->spool_depth = nmsgs;
}

void
sb_notify_stop(void)
{
	struct dest *d;

	started = 0;
	if (sb_core.loop)
		sb_loop_del_before_sleep(sb_core.loop, route_hook, NULL);
	/* Events waiting to be routed stay unrouted in the store: the next
	 * start routes them.  Groups not yet flushed likewise. */
	while (rq_head) {
		struct event *e = rq_head;

		rq_head = e->qnext;
		ev_unref(e);
	}
	rq_tail = NULL;
	while ((d = dests) != NULL) {
		dests = d->next;
		if (d->timer && sb_core.loop)
			sb_loop_del_timer(sb_core.loop, d->timer);
		for (size_t i = 0; i < d->nitems; i++) {
			free(d->items[i].line);
			json_decref(d->items[i].obj);
			d->items[i].ev->pending--;
			ev_unref(d->items[i].ev);
		}
		free(d->items);
		while (d->head) {
			struct msg *m = d->head;

			d->head = m->next;
			free(m->text);
			free(m->json);
			free(m);
		}
		free(d->name);
		free(d);
	}
	memset(msg_by_id, 0, sizeof(msg_by_id));
	nmsgs = nready = 0;
	for (size_t b = 0; b < NBUCKETS; b++)
		while (open_by_key[b]) {
			struct event *e = open_by_key[b];

			open_by_key[b] = e->hnext;
			if (e->esc_timer && sb_core.loop)
				sb_loop_del_timer(sb_core.loop, e->esc_timer);
			e->esc_timer = NULL;
			ev_unref(e);
		}
	st.open_events = 0;
	sb_maint_stop();
	sb_store_close();
	sb_store_after_commit(NULL, NULL);
	free(undone);
	undone = NULL;
	nundone = undone_cap = 0;
}
