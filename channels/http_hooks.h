/*
 * http_hooks.h: incoming webhook payloads to events.  The shipped adapters
 * read Prometheus Alertmanager (webhook version 4), Grafana (unified
 * alerting, and the legacy pre-8 format) and a generic JSON format, and
 * turn each payload into zero or more events: one per payload and status,
 * so a burst of alerts in one group is one message, with alerts already
 * announced in the same status left out (deduplicated by fingerprint).
 *
 * Each event carries a dedup key for the notifier: "<hook>:<fingerprint>"
 * (several fingerprints, sorted and joined by ",", for a group), so that
 * the resolved event of a group closes the event its firing opened.
 *
 * Pure functions on parsed JSON (jansson): no sockets, no loop, no core
 * calls; the caller submits the events.  Which names are nodes is asked
 * through a callback, so the unit test can answer it.
 */
#ifndef SB_HTTP_HOOKS_H
#define SB_HTTP_HOOKS_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

enum http_hook_format {
	HTTP_HOOK_JSON,		/* {"node":..., "severity":..., "text":...} or a list */
	HTTP_HOOK_ALERTMANAGER,
	HTTP_HOOK_GRAFANA,
};

#define HTTP_HOOK_MAX_TEXT 4000		/* longer event text is cut */
#define HTTP_HOOK_MAX_ITEMS 100		/* generic: events in one payload */

struct http_event {
	char   *node;		/* NULL: not about one node */
	char   *severity;	/* "info", "warning" or "critical" */
	char   *text;
	char   *key;		/* the notifier's dedup key, or NULL (source/node) */
	int     resolved;	/* resolves the open event with this key */
};

struct http_events {
	struct http_event *v;
	size_t  n;
};

/* Remembers the last status announced per alert fingerprint; bounded, the
 * least recently seen forgotten first. */
struct http_dedup;

/* "alertmanager", "grafana", "json"; -1 if unknown. */
int  http_hook_format_parse(const char *);
const char *http_hook_format_name(enum http_hook_format);

struct http_dedup *http_dedup_new(size_t cap);
void http_dedup_free(struct http_dedup *);	/* NULL-safe */
size_t http_dedup_size(const struct http_dedup *);

typedef int http_is_node_fn(const char *name, void *ud);

/*
 * Turn payload (borrowed) from the hook named hook into events appended to
 * out (the caller frees them with http_events_free).  dedup may be NULL (no
 * deduplication).  Returns 0, or -1 with a one-line reason in err for a
 * payload of the wrong shape (the sender gets it with a 400).
 */
int  http_hook_adapt(enum http_hook_format, const char *hook, json_t *payload,
                     struct http_dedup *, http_is_node_fn *, void *ud,
                     struct http_events *out, char *err, size_t errlen);
void http_events_free(struct http_events *);
/* Append an event (every string copied; text cut at HTTP_HOOK_MAX_TEXT). */
void http_events_add(struct http_events *, const char *node, const char *severity,
                     const char *text, const char *key, int resolved);

/* "critical", "warning" or "info" for a severity label's value (page,
 * error, high, ... are critical; warn, medium, ... warning); NULL: def. */
const char *http_severity_normalize(const char *value, const char *def);

#endif
