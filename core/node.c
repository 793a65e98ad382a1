/*
 * node.c: the node model.  Owns the nodes, their poll timers and their
 * states; turns a poll's result into a state through the status policy and
 * tells channels (presence) and observers (router, console) about changes.
 * It knows no protocol and no sensor semantics beyond the HAL's.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "conf.h"
#include "core.h"
#include "hal.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "notify.h"
#include "util.h"

static struct sb_node **nodes;
static size_t nnodes;
/* Names to nodes[], made with the list: every command looks its nodes up
 * by name, in farms of thousands. */
static const char *node_name(size_t i);
static struct sb_index byname = { .key = node_name };

static sb_policy_fn *policy;
static void *policy_ud;

struct observer {
	sb_node_observer_fn *fn;
	void   *ud;
};
static struct observer *observers;
static size_t nobservers;

static const char *const state_names[SB_ST_COUNT] = {
	[SB_ST_UNKNOWN] = "unknown",
	[SB_ST_OK] = "ok",
	[SB_ST_WARNING] = "warning",
	[SB_ST_CRITICAL] = "critical",
	[SB_ST_OFF] = "off",
	[SB_ST_MAINT] = "maint",
	[SB_ST_DOWN] = "down",
};

const char *
sb_state_name(enum sb_state s)
{
	return (unsigned)s < SB_ST_COUNT ? state_names[s] : "?";
}

int
sb_state_parse(const char *s)
{
	for (int i = 0; i < SB_ST_COUNT; i++)
		if (strcmp(s, state_names[i]) == 0)
			return i;
	return -1;
}

int
sb_state_rank(enum sb_state s)
{
	static const int rank[SB_ST_COUNT] = {
		[SB_ST_OK] = 0, [SB_ST_UNKNOWN] = 1, [SB_ST_MAINT] = 2,
		[SB_ST_OFF] = 3, [SB_ST_WARNING] = 4, [SB_ST_CRITICAL] = 5,
		[SB_ST_DOWN] = 6,
	};

	return (unsigned)s < SB_ST_COUNT ? rank[s] : 0;
}

void
sb_node_set_policy(sb_policy_fn *fn, void *ud)
{
	policy = fn;
	policy_ud = ud;
}

void
sb_node_observe(sb_node_observer_fn *fn, void *ud)
{
	observers = sb_realloc(observers, (nobservers + 1) * sizeof(*observers));
	observers[nobservers].fn = fn;
	observers[nobservers].ud = ud;
	nobservers++;
}

void
sb_node_unobserve(sb_node_observer_fn *fn, void *ud)
{
	for (size_t i = 0; i < nobservers; i++)
		if (observers[i].fn == fn && observers[i].ud == ud) {
			memmove(&observers[i], &observers[i + 1],
			    (nobservers - i - 1) * sizeof(*observers));
			nobservers--;
			return;
		}
}

static const char *
node_name(size_t i)
{
	return nodes[i]->name;
}

struct sb_node *
sb_node_find(const char *name)
{
	size_t i = sb_index_find(&byname, name);

	return i == SIZE_MAX ? NULL : nodes[i];
}

size_t
sb_node_count(void)
{
	return nnodes;
}

struct sb_node *
sb_node_at(size_t i)
{
	return i < nnodes ? nodes[i] : NULL;
}

int
sb_node_in_group(const struct sb_node *n, const char *group)
{
	for (size_t i = 0; i < n->ngroups; i++)
		if (strcmp(n->groups[i], group) == 0)
			return 1;
	return 0;
}

struct sb_node *
sb_node_ref(struct sb_node *n)
{
	n->refs++;
	return n;
}

static void
groups_free(struct sb_node *n)
{
	for (size_t i = 0; i < n->ngroups; i++)
		free(n->groups[i]);
	free(n->groups);
	n->groups = NULL;
	n->ngroups = 0;
}

void
sb_node_unref(struct sb_node *n)
{
	if (n == NULL || --n->refs > 0)
		return;
	sb_hal_close(n->hal);
	sb_readings_free(n->last);
	groups_free(n);
	free(n->hal_fingerprint);
	free(n->name);
	free(n);
}

int
sb_policy_builtin(struct sb_node *n, const struct sb_hal_result *r,
                  enum sb_state *state, char *reason, size_t len)
{
	const struct sb_sensor *worst;
	size_t nvalued = 0;

	(void)n;
	if (r->status < 0) {
		*state = SB_ST_DOWN;
		snprintf(reason, len, "%s", r->error ? r->error : "no answer");
		return 0;
	}
	if (r->readings->power == SB_POWER_OFF) {
		*state = SB_ST_OFF;
		snprintf(reason, len, "powered off");
		return 0;
	}
	worst = sb_readings_worst(r->readings);
	if (worst && worst->state == SB_SENSOR_CRITICAL)
		*state = SB_ST_CRITICAL;
	else if (worst && worst->state == SB_SENSOR_WARNING)
		*state = SB_ST_WARNING;
	else
		*state = SB_ST_OK;
	if (*state != SB_ST_OK) {
		sb_sensor_describe(worst, reason, len);
		return 0;
	}
	for (size_t i = 0; i < r->readings->nsensors; i++)
		nvalued += r->readings->sensors[i].has_value;
	snprintf(reason, len, "all %zu sensors normal", nvalued);
	return 0;
}

void
sb_node_set_state(struct sb_node *n, enum sb_state st, const char *reason)
{
	enum sb_state old = n->state;
	int changed = st != old;

	if (!changed && strcmp(n->reason, reason) == 0)
		return;
	sb_strlcpy(n->reason, reason, sizeof(n->reason));
	sb_sanitize_line(n->reason);
	if (changed) {
		n->state = st;
		n->since = time(NULL);
		sb_notice("node %s: %s -> %s: %s", n->name, sb_state_name(old),
		    sb_state_name(st), n->reason);
	}
	for (size_t i = 0; i < sb_channel_count(); i++) {
		struct sb_channel *ch = sb_channel_at(i);

		if (ch->started && ch->drv->presence)
			ch->drv->presence(ch, n);
	}
	if (changed)
		for (size_t i = 0; i < nobservers; i++)
			observers[i].fn(n, old, observers[i].ud);
}

static void
poll_done(struct sb_hal *hal, const struct sb_hal_result *r, void *ud)
{
	struct sb_node *n = ud;
	enum sb_state st;
	char reason[256];
	const char *why;

	(void)hal;
	n->polling = 0;
	if (n->dead) {
		sb_node_unref(n);
		return;
	}
	n->polls++;
	n->last_poll = time(NULL);
	n->last_status = r->status;
	sb_strlcpy(n->last_error, r->status < 0 && r->error ? r->error : "",
	    sizeof(n->last_error));
	if (r->status == 0 && r->readings) {
		sb_readings_free(n->last);
		n->last = sb_readings_dup(r->readings);
	}
	reason[0] = '\0';
	if (policy == NULL || policy(n, r, &st, reason, sizeof(reason), policy_ud) < 0)
		sb_policy_builtin(n, r, &st, reason, sizeof(reason));
	/* Maintenance outranks what the sensors say (they are read all the
	 * same, so "status" shows them). */
	if (sb_notify_in_maint(n->name, &why)) {
		st = SB_ST_MAINT;
		snprintf(reason, sizeof(reason), "maintenance%s%s", *why ? ": " : "", why);
	}
	sb_node_set_state(n, st, reason);
	sb_node_unref(n);
}

void
sb_node_poll(struct sb_node *n)
{
	struct sb_hal_req req = { .op = SB_HAL_READ };
	int rc;

	if (n->polling) {
		sb_debug("node %s: previous poll still running; skipped", n->name);
		return;
	}
	n->polling = 1;
	sb_node_ref(n);
	if ((rc = sb_hal_request(n->hal, &req, poll_done, n)) < 0) {
		char reason[160];

		n->polling = 0;
		snprintf(reason, sizeof(reason), "poll failed: %s", strerror(-rc));
		sb_node_set_state(n, SB_ST_DOWN, reason);
		sb_node_unref(n);
	}
}

static long
poll_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct sb_node *n = ud;

	(void)loop;
	(void)t;
	sb_node_poll(n);
	if (n->rephase_ms > 0) {
		long next = n->rephase_ms;

		n->rephase_ms = 0;
		return next;
	}
	return lround(n->poll_interval * 1000);
}

static void
schedule(struct sb_node *n, size_t i, size_t count)
{
	long period = lround(n->poll_interval * 1000);
	/* Polls are spread over the interval so that many nodes do not all
	 * ask their BMCs in the same millisecond: node i of count has its
	 * slot at i/count of it.  The first poll comes sooner, FIRST_PER_MS
	 * nodes a millisecond (a restarted daemon shows its farm at once, not
	 * over a whole interval), and the second moves the node to its slot. */
	enum { FIRST_PER_MS = 20 };
	long slot = count > 1 ? (long)((double)period * (double)i / (double)count) : 0;
	long first = (long)(i / FIRST_PER_MS);

	if (first > slot)
		first = slot;
	n->rephase_ms = slot - first;	/* 0: the first poll is in its slot */
	if (n->poll_timer)
		sb_loop_del_timer(sb_core.loop, n->poll_timer);
	n->poll_timer = sb_loop_add_timer(sb_core.loop, first, poll_timer, n);
}

static void
set_groups(struct sb_node *n, const struct sb_node_conf *c)
{
	groups_free(n);
	n->groups = sb_calloc(c->ngroups + 1, sizeof(char *));
	for (size_t i = 0; i < c->ngroups; i++)
		n->groups[i] = sb_strdup(c->groups[i]);
	n->ngroups = c->ngroups;
}

static void
node_drop(struct sb_node *n)
{
	if (n->poll_timer)
		sb_loop_del_timer(sb_core.loop, n->poll_timer);
	n->poll_timer = NULL;
	n->dead = 1;
	sb_node_unref(n);
}

int
sb_nodes_apply(const struct sb_node_conf *c, size_t count, char *err, size_t errlen)
{
	struct sb_node **next = sb_calloc(count + 1, sizeof(*next));
	struct sb_hal **fresh = sb_calloc(count + 1, sizeof(*fresh));
	char msg[256];

	/* First open every new or changed HAL, so that a failure leaves the
	 * running model untouched. */
	for (size_t i = 0; i < count; i++) {
		struct sb_node *old = sb_node_find(c[i].name);

		if (old && strcmp(old->hal_fingerprint, c[i].hal_fingerprint) == 0)
			continue;
		msg[0] = '\0';
		fresh[i] = sb_hal_open(c[i].backend, c[i].name, c[i].hal, msg, sizeof(msg));
		if (fresh[i] == NULL) {
			char where[256];

			sb_conf_where(c[i].hal, where, sizeof(where));
			snprintf(err, errlen, "%s: node %s: %s", where, c[i].name, msg);
			for (size_t j = 0; j < i; j++)
				sb_hal_close(fresh[j]);
			free(fresh);
			free(next);
			return -1;
		}
	}
	for (size_t i = 0; i < count; i++) {
		struct sb_node *n = sb_node_find(c[i].name);

		if (n && fresh[i] == NULL) {
			n->keep = 1;	/* survives the sweep below */
		} else {
			n = sb_calloc(1, sizeof(*n));
			n->refs = 1;
			n->name = sb_strdup(c[i].name);
			n->hal = fresh[i];
			n->hal_fingerprint = sb_strdup(c[i].hal_fingerprint);
			n->state = SB_ST_UNKNOWN;
			n->since = time(NULL);
			sb_strlcpy(n->reason, "not polled yet", sizeof(n->reason));
		}
		set_groups(n, &c[i]);
		n->poll_interval = c[i].poll_interval;
		next[i] = n;
	}
	/* Drop the old list's references: nodes not kept are freed. */
	for (size_t i = 0; i < nnodes; i++) {
		if (nodes[i]->keep)
			nodes[i]->keep = 0;
		else
			node_drop(nodes[i]);
	}
	free(nodes);
	free(fresh);
	nodes = next;
	nnodes = count;
	sb_index_build(&byname, nnodes);
	for (size_t i = 0; i < nnodes; i++)
		schedule(nodes[i], i, nnodes);
	return 0;
}

void
sb_nodes_clear(void)
{
	for (size_t i = 0; i < nnodes; i++)
		node_drop(nodes[i]);
	free(nodes);
	nodes = NULL;
	nnodes = 0;
	sb_index_free(&byname);
	free(observers);
	observers = NULL;
	nobservers = 0;
}
