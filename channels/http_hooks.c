/*
 * http_hooks.c: webhook payloads to events (see http_hooks.h).  Owns the
 * adapters and the fingerprint memory; does not route, log or answer.
 *
 * Alertmanager posts a whole alert group each time the group changes or
 * its repeat interval passes, firing and resolved alerts together.  The
 * adapter makes at most two events of a post, one for the alerts that
 * started firing and one for those resolved, and leaves out alerts whose
 * fingerprint was already announced in the same status: a repeat of an
 * unchanged group says nothing new, so it sends nothing.  An event is one
 * line (the notifier lists events one per line): "am: [FIRING:2]
 * HighCPUTemp: web: CPU at 95 C [critical]; mail: CPU at 86 C [warning]".  Grafana's
 * unified alerting posts the same shape; its legacy format is one rule.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_hooks.h"
#include "util.h"

struct dedup_entry {
	char   *key;		/* hook "\n" fingerprint */
	char    status[16];
	uint64_t seen;
};

struct http_dedup {
	struct dedup_entry *v;
	size_t  n, cap;
	uint64_t clock;
};

int
http_hook_format_parse(const char *s)
{
	if (strcmp(s, "json") == 0)
		return HTTP_HOOK_JSON;
	if (strcmp(s, "alertmanager") == 0)
		return HTTP_HOOK_ALERTMANAGER;
	if (strcmp(s, "grafana") == 0)
		return HTTP_HOOK_GRAFANA;
	return -1;
}

const char *
http_hook_format_name(enum http_hook_format f)
{
	switch (f) {
	case HTTP_HOOK_JSON:		return "json";
	case HTTP_HOOK_ALERTMANAGER:	return "alertmanager";
	case HTTP_HOOK_GRAFANA:		return "grafana";
	}
	return "?";
}

/* ---- fingerprints ---- */

struct http_dedup *
http_dedup_new(size_t cap)
{
	struct http_dedup *d = sb_calloc(1, sizeof(*d));

	d->cap = cap ? cap : 1;
	d->v = sb_calloc(d->cap, sizeof(*d->v));
	return d;
}

void
http_dedup_free(struct http_dedup *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].key);
	free(d->v);
	free(d);
}

size_t
http_dedup_size(const struct http_dedup *d)
{
	return d ? d->n : 0;
}

/* Record that key is now in status; 1 if that is news, 0 if it was
 * already announced so. */
static int
dedup_note(struct http_dedup *d, const char *hook, const char *fp, const char *status)
{
	char *key = sb_asprintf("%s\n%s", hook, fp);
	struct dedup_entry *e = NULL;
	int news;

	for (size_t i = 0; i < d->n && !e; i++)
		if (strcmp(d->v[i].key, key) == 0)
			e = &d->v[i];
	if (e == NULL) {
		if (d->n == d->cap) {
			size_t old = 0;

			for (size_t i = 1; i < d->n; i++)
				if (d->v[i].seen < d->v[old].seen)
					old = i;
			free(d->v[old].key);
			d->v[old] = d->v[--d->n];
		}
		e = &d->v[d->n++];
		e->key = key;
		e->status[0] = '\0';
		key = NULL;
	}
	free(key);
	news = strcmp(e->status, status) != 0;
	sb_strlcpy(e->status, status, sizeof(e->status));
	e->seen = ++d->clock;
	return news;
}

/* ---- helpers ---- */

static const char *const sev_critical[] = {
	"critical", "crit", "page", "error", "err", "high", "fatal", "emergency",
	"alert", "disaster", "severe", NULL,
};
static const char *const sev_warning[] = {
	"warning", "warn", "medium", "major", "minor", "average", NULL,
};
static const char *const sev_info[] = {
	"info", "informational", "information", "low", "none", "notice", "ok", "debug", NULL,
};

static int
in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcasecmp(*list, s) == 0)
			return 1;
	return 0;
}

const char *
http_severity_normalize(const char *value, const char *def)
{
	if (value == NULL)
		return def;
	if (in_list(sev_critical, value))
		return "critical";
	if (in_list(sev_warning, value))
		return "warning";
	if (in_list(sev_info, value))
		return "info";
	return def;
}

static int
sev_rank(const char *s)
{
	return strcmp(s, "critical") == 0 ? 2 : strcmp(s, "warning") == 0 ? 1 : 0;
}

static const char *
str_member(const json_t *obj, const char *key)
{
	return json_is_object(obj) ? json_string_value(json_object_get(obj, key)) : NULL;
}

void
http_events_free(struct http_events *ev)
{
	for (size_t i = 0; i < ev->n; i++) {
		free(ev->v[i].node);
		free(ev->v[i].severity);
		free(ev->v[i].text);
		free(ev->v[i].key);
	}
	free(ev->v);
	ev->v = NULL;
	ev->n = 0;
}

/* Cut s (owned) to HTTP_HOOK_MAX_TEXT bytes on a UTF-8 boundary. */
static char *
cut(char *s)
{
	size_t n = strlen(s);

	if (n <= HTTP_HOOK_MAX_TEXT)
		return s;
	n = HTTP_HOOK_MAX_TEXT - 3;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(s + n, "...", 4);
	return s;
}

/* Append an event; text and key are taken. */
static void
add_event(struct http_events *out, const char *node, const char *sev, char *text,
          char *key, int resolved)
{
	struct http_event *e;

	out->v = sb_realloc(out->v, (out->n + 1) * sizeof(*out->v));
	e = &out->v[out->n++];
	e->node = sb_strdup(node);
	e->severity = sb_strdup(sev);
	e->text = cut(text);
	e->key = key;
	e->resolved = resolved;
}

void
http_events_add(struct http_events *out, const char *node, const char *sev, const char *text,
                const char *key, int resolved)
{
	add_event(out, node, sev, sb_strdup(text), sb_strdup(key), resolved);
}

/* A label naming the node the alert is about, if it is one of ours:
 * node, instance (without its port), host, hostname, nodename. */
static const char *
find_node(const json_t *labels, http_is_node_fn *is_node, void *ud, char *buf, size_t len)
{
	static const char *const keys[] = { "node", "instance", "host", "hostname", "nodename", NULL };

	for (size_t i = 0; keys[i]; i++) {
		const char *v = str_member(labels, keys[i]);
		char *colon;

		if (v == NULL || *v == '\0')
			continue;
		sb_strlcpy(buf, v, len);
		if ((colon = strrchr(buf, ':')) != NULL && strchr(buf, ':') == colon)
			*colon = '\0';		/* host:port, not an IPv6 address */
		if (is_node && is_node(buf, ud))
			return buf;
	}
	return NULL;
}

/* ---- Alertmanager and Grafana unified alerting ---- */

struct group {
	const char *status;	/* "firing", "resolved" */
	struct sb_buf lines;
	size_t  n;
	const char *sev;	/* the worst */
	char    node[128];	/* the one node all are about, or "" */
	int     mixed;		/* about several nodes, or some about none */
	char    name[128];	/* the common alertname, or "" */
	int     names_differ;
	char  **fps;		/* the alerts' fingerprints: the event's key */
};

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "<hook>:<fp>[,<fp>...]", the fingerprints sorted, so that the resolution
 * of the same alerts gives the same key. */
static char *
group_key(struct group *g, const char *hook)
{
	struct sb_buf b = { 0 };

	qsort(g->fps, g->n, sizeof(*g->fps), str_cmp);
	sb_buf_printf(&b, "%s:", hook);
	for (size_t i = 0; i < g->n; i++)
		sb_buf_printf(&b, "%s%s", i ? "," : "", g->fps[i]);
	return sb_buf_steal(&b);
}

static void
group_free(struct group *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->fps[i]);
	free(g->fps);
	sb_buf_free(&g->lines);
}

static void
group_add(struct group *g, const char *fp, const char *node, const char *who,
          const char *summary, const char *sev, const char *alertname)
{
	g->fps = sb_realloc(g->fps, (g->n + 1) * sizeof(*g->fps));
	g->fps[g->n] = sb_strdup(fp);
	if (g->n == 0) {
		sb_strlcpy(g->node, node ? node : "", sizeof(g->node));
		g->mixed = node == NULL;
		sb_strlcpy(g->name, alertname ? alertname : "", sizeof(g->name));
		g->sev = sev;
	} else {
		if (node == NULL || strcmp(node, g->node) != 0)
			g->mixed = 1;
		if (alertname == NULL || strcmp(alertname, g->name) != 0)
			g->names_differ = 1;
		if (sev_rank(sev) > sev_rank(g->sev))
			g->sev = sev;
	}
	g->n++;
	sb_buf_printf(&g->lines, "%s%s: %s", g->lines.len ? "; " : ": ", who, summary);
	if (strcmp(g->status, "firing") == 0)
		sb_buf_printf(&g->lines, " [%s]", sev);
}

static void
group_emit(struct group *g, const char *hook, const json_t *payload,
           struct http_events *out)
{
	const json_t *gl = json_object_get(payload, "groupLabels");
	const char *common = str_member(json_object_get(payload, "commonLabels"), "alertname");
	struct sb_buf b = { 0 };
	const char *key;
	json_t *v;
	int first = 1;

	if (g->n == 0)
		return;
	sb_buf_printf(&b, "%s: [%s:%zu] ", hook,
	    strcmp(g->status, "firing") == 0 ? "FIRING" : "RESOLVED", g->n);
	if (common)
		sb_buf_puts(&b, common);
	else if (!g->names_differ && *g->name)
		sb_buf_puts(&b, g->name);
	else
		sb_buf_printf(&b, "%zu alerts", g->n);
	/* The group's other labels say which slice of the farm this is. */
	if (json_is_object(gl)) {
		json_object_foreach((json_t *)gl, key, v) {
			if (strcmp(key, "alertname") == 0 || !json_is_string(v))
				continue;
			sb_buf_printf(&b, "%s%s=%s", first ? " (" : ", ", key, json_string_value(v));
			first = 0;
		}
		if (!first)
			sb_buf_puts(&b, ")");
	}
	sb_buf_add(&b, g->lines.buf, g->lines.len);
	add_event(out, g->mixed ? NULL : g->node, g->sev, sb_buf_steal(&b), group_key(g, hook),
	    strcmp(g->status, "resolved") == 0);
}

static int
adapt_alerts(const char *hook, json_t *p, struct http_dedup *d, http_is_node_fn *is_node,
             void *ud, struct http_events *out, char *err, size_t errlen)
{
	json_t *alerts = json_object_get(p, "alerts"), *a;
	const char *top = str_member(p, "status");
	struct group firing = { .status = "firing" }, resolved = { .status = "resolved" };
	size_t i;

	if (!json_is_array(alerts)) {
		snprintf(err, errlen, "'alerts' must be a list");
		return -1;
	}
	/* Check every alert first, so a bad one leaves nothing remembered. */
	json_array_foreach(alerts, i, a) {
		const char *st = str_member(a, "status") ? str_member(a, "status") : top;

		if (!json_is_object(a)) {
			snprintf(err, errlen, "alerts[%zu] must be an object", i);
			return -1;
		}
		if (st == NULL || (strcmp(st, "firing") != 0 && strcmp(st, "resolved") != 0)) {
			snprintf(err, errlen, "alerts[%zu]: status must be \"firing\" or \"resolved\"", i);
			return -1;
		}
		if (json_object_get(a, "labels") && !json_is_object(json_object_get(a, "labels"))) {
			snprintf(err, errlen, "alerts[%zu]: labels must be an object", i);
			return -1;
		}
	}
	json_array_foreach(alerts, i, a) {
		const char *st = str_member(a, "status") ? str_member(a, "status") : top;
		json_t *labels = json_object_get(a, "labels");
		json_t *ann = json_object_get(a, "annotations");
		const char *fp = str_member(a, "fingerprint");
		const char *name = str_member(labels, "alertname");
		const char *summary, *who, *node, *sev;
		char nodebuf[128], *fpbuf = NULL;

		if (fp == NULL || *fp == '\0') {
			/* Without a fingerprint, the sorted labels identify it. */
			fpbuf = labels ? json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
			fp = fpbuf ? fpbuf : "";
		}
		if (d && !dedup_note(d, hook, fp, st)) {
			free(fpbuf);
			continue;
		}
		node = find_node(labels, is_node, ud, nodebuf, sizeof(nodebuf));
		who = node;
		if (who == NULL)
			who = str_member(labels, "instance");
		if (who == NULL)
			who = str_member(labels, "job");
		if (who == NULL)
			who = "-";
		summary = str_member(ann, "summary");
		if (summary == NULL)
			summary = str_member(ann, "description");
		if (summary == NULL)
			summary = str_member(ann, "message");
		if (summary == NULL)
			summary = name ? name : "alert";
		sev = http_severity_normalize(str_member(labels, "severity"), "warning");
		group_add(strcmp(st, "firing") == 0 ? &firing : &resolved, fp, node, who, summary,
		    sev, name);
		free(fpbuf);
	}
	group_emit(&firing, hook, p, out);
	group_emit(&resolved, hook, p, out);
	group_free(&firing);
	group_free(&resolved);
	return 0;
}

/* ---- Grafana legacy alerting (before 8.0): one rule per post ---- */

static int
adapt_grafana_legacy(const char *hook, json_t *p, struct http_dedup *d,
                     http_is_node_fn *is_node, void *ud, struct http_events *out,
                     char *err, size_t errlen)
{
	const char *state = str_member(p, "state");
	const char *rule = str_member(p, "ruleName");
	const char *msg = str_member(p, "message");
	json_t *tags = json_object_get(p, "tags"), *matches = json_object_get(p, "evalMatches"), *m;
	const char *sev, *node = NULL;
	char nodebuf[128], key[160], upper[32];
	struct sb_buf b = { 0 };
	size_t i;

	if (state == NULL) {
		snprintf(err, errlen, "neither 'alerts' (unified alerting) nor 'state' (legacy alerting)");
		return -1;
	}
	if (rule == NULL)
		rule = str_member(p, "title") ? str_member(p, "title") : "rule";
	if (strcmp(state, "alerting") == 0)
		sev = http_severity_normalize(str_member(tags, "severity"), "critical");
	else if (strcmp(state, "no_data") == 0)
		sev = "warning";
	else
		sev = "info";
	json_t *rid = json_object_get(p, "ruleId");
	if (json_is_integer(rid))
		snprintf(key, sizeof(key), "rule %lld", (long long)json_integer_value(rid));
	else
		snprintf(key, sizeof(key), "rule %s", rule);
	if (d && !dedup_note(d, hook, key, state))
		return 0;
	node = find_node(tags, is_node, ud, nodebuf, sizeof(nodebuf));
	for (i = 0; json_is_array(matches) && !node && i < json_array_size(matches); i++)
		node = find_node(json_object_get(json_array_get(matches, i), "tags"), is_node, ud,
		    nodebuf, sizeof(nodebuf));
	for (i = 0; state[i] && i < sizeof(upper) - 1; i++)
		upper[i] = (char)(state[i] >= 'a' && state[i] <= 'z' ? state[i] - 32 : state[i]);
	upper[i] = '\0';
	sb_buf_printf(&b, "%s: [%s] %s", hook, upper, rule);
	if (msg && *msg)
		sb_buf_printf(&b, ": %s", msg);
	json_array_foreach(json_is_array(matches) ? matches : NULL, i, m) {
		const char *metric = str_member(m, "metric");
		json_t *v = json_object_get(m, "value");

		if (i == 10) {
			sb_buf_printf(&b, "; ... %zu more", json_array_size(matches) - 10);
			break;
		}
		if (json_is_number(v))
			sb_buf_printf(&b, "%s%s = %g", i ? ", " : "; ", metric ? metric : "value",
			    json_number_value(v));
	}
	add_event(out, node, sev, sb_buf_steal(&b), sb_asprintf("%s:%s", hook, key),
	    strcmp(state, "ok") == 0);
	return 0;
}

/* ---- generic JSON ---- */

static int
valid_node_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

static int
generic_one(const char *hook, json_t *o, const char *where, struct http_events *out,
            char *err, size_t errlen)
{
	json_t *jn = json_object_get(o, "node"), *js = json_object_get(o, "severity");
	json_t *jk = json_object_get(o, "key"), *jr = json_object_get(o, "resolved");
	const char *text = str_member(o, "text"), *sev = "info", *node = NULL, *key = NULL;

	if (!json_is_object(o)) {
		snprintf(err, errlen, "%s must be an object", where);
		return -1;
	}
	if (text == NULL || *text == '\0') {
		snprintf(err, errlen, "%s: 'text' must be a non-empty string", where);
		return -1;
	}
	if (jn && !json_is_null(jn)) {
		node = json_string_value(jn);
		if (node == NULL || !valid_node_name(node)) {
			snprintf(err, errlen, "%s: 'node' must be a node name "
			    "(letters, digits, '-', '_', '.')", where);
			return -1;
		}
	}
	if (js && !json_is_null(js)) {
		sev = http_severity_normalize(json_string_value(js), NULL);
		if (sev == NULL) {
			snprintf(err, errlen, "%s: 'severity' must be info, warning or critical", where);
			return -1;
		}
	}
	if (jk && !json_is_null(jk)) {
		key = json_string_value(jk);
		if (key == NULL || *key == '\0' || strlen(key) > 200) {
			snprintf(err, errlen, "%s: 'key' must be a string of 1 to 200 bytes", where);
			return -1;
		}
	}
	if (jr && !json_is_null(jr) && !json_is_boolean(jr)) {
		snprintf(err, errlen, "%s: 'resolved' must be true or false", where);
		return -1;
	}
	add_event(out, node, sev, node ? sb_asprintf("%s: %s: %s", hook, node, text) :
	    sb_asprintf("%s: %s", hook, text), key ? sb_asprintf("%s:%s", hook, key) : NULL,
	    json_is_true(jr));
	return 0;
}

static int
adapt_generic(const char *hook, json_t *p, struct http_events *out, char *err, size_t errlen)
{
	char where[32];
	size_t i;
	json_t *o;

	if (!json_is_array(p))
		return generic_one(hook, p, "the payload", out, err, errlen);
	if (json_array_size(p) > HTTP_HOOK_MAX_ITEMS) {
		snprintf(err, errlen, "at most %d events in one payload", HTTP_HOOK_MAX_ITEMS);
		return -1;
	}
	json_array_foreach(p, i, o) {
		snprintf(where, sizeof(where), "item %zu", i);
		if (generic_one(hook, o, where, out, err, errlen) < 0) {
			http_events_free(out);
			return -1;
		}
	}
	return 0;
}

int
http_hook_adapt(enum http_hook_format f, const char *hook, json_t *payload,
                struct http_dedup *d, http_is_node_fn *is_node, void *ud,
                struct http_events *out, char *err, size_t errlen)
{
	if (f != HTTP_HOOK_JSON && !json_is_object(payload)) {
		snprintf(err, errlen, "the payload must be a JSON object");
		return -1;
	}
	switch (f) {
	case HTTP_HOOK_JSON:
		return adapt_generic(hook, payload, out, err, errlen);
	case HTTP_HOOK_ALERTMANAGER:
		return adapt_alerts(hook, payload, d, is_node, ud, out, err, errlen);
	case HTTP_HOOK_GRAFANA:
		if (json_object_get(payload, "alerts"))
			return adapt_alerts(hook, payload, d, is_node, ud, out, err, errlen);
		return adapt_grafana_legacy(hook, payload, d, is_node, ud, out, err, errlen);
	}
	snprintf(err, errlen, "unknown hook format");
	return -1;
}
