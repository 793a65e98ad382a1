/*
 * http_out.c: outgoing webhooks on libcurl's multi interface (see
 * http_out.h).  Owns the multi handle, one easy handle per webhook with a
 * transfer in flight, the queues and the retry timers.
 *
 * libcurl tells us which sockets it wants watched (CURLMOPT_SOCKETFUNCTION)
 * and when it next needs a timeout (CURLMOPT_TIMERFUNCTION); those become
 * loop fds and one loop timer, and their callbacks hand the events back
 * with curl_multi_socket_action().  Name resolution uses libcurl's own
 * resolver thread, so no call here blocks the loop.  One notification per
 * webhook is in flight at a time, which keeps them in order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "http_out.h"
#include "http_render.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define FD_CEILING 1024		/* select()-based libraries share the process */

struct item {
	struct item *next;
	char   *body;
	int     attempts;
};

struct hook {
	struct http_out *o;
	struct http_webhook_conf c;
	struct item *head, *tail;
	size_t  n;
	CURL   *easy;		/* the attempt in flight, or NULL */
	struct curl_slist *headers;
	struct sb_timer *retry;	/* waiting before the next attempt */
	char    errbuf[CURL_ERROR_SIZE];
	unsigned long delivered, failed, retries, dropped;
};

struct http_out {
	char   *chan;
	struct sb_loop *loop;
	CURLM  *multi;
	struct sb_timer *timer;	/* libcurl's timeout */
	struct hook *hooks;
	size_t  n;
	int     started;
};

static void start_next(struct hook *);

/* ---- pure helpers ---- */

char *
http_out_body(enum http_out_format f, const char *chan, const char *text, time_t when)
{
	json_t *o = json_object();
	char stamp[32];
	struct tm tm;
	char *s;

	json_object_set_new(o, "text", json_string(text));
	if (f == HTTP_OUT_JSON) {
		gmtime_r(&when, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(o, "channel", json_string(chan));
		json_object_set_new(o, "time", json_string(stamp));
	}
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int
http_out_retryable(long status)
{
	/* No answer, a server error, a timeout or "slow down": try again.
	 * Any other client error will not change by repeating it. */
	return status == 0 || status >= 500 || status == 408 || status == 429;
}

long
http_out_backoff(long retry_ms, long retry_max_ms, int attempt)
{
	long d = retry_ms;

	for (int i = 1; i < attempt && d < retry_max_ms; i++)
		d *= 2;
	return d < retry_max_ms ? d : retry_max_ms;
}

/* ---- libcurl on the loop ---- */

static void
check_done(struct http_out *o);

static void
on_sock(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct http_out *o = ud;
	int running, ev = 0;

	(void)loop;
	if (mask & SB_READ)
		ev |= CURL_CSELECT_IN;
	if (mask & SB_WRITE)
		ev |= CURL_CSELECT_OUT;
	curl_multi_socket_action(o->multi, fd, ev, &running);
	check_done(o);
}

static int
sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_out *o = userp;
	unsigned mask = 0;

	(void)e;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		sb_loop_del_fd(o->loop, s);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		mask |= SB_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		mask |= SB_WRITE;
	if (sb_loop_mod_fd(o->loop, s, mask) == -ENOENT &&
	    sb_loop_add_fd(o->loop, s, mask, on_sock, o) < 0)
		sb_warnx("http %s: cannot watch a webhook socket", o->chan);
	return 0;
}

static long
on_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct http_out *o = ud;
	int running;

	(void)loop;
	(void)t;
	o->timer = NULL;	/* libcurl may arm a new one right here */
	curl_multi_socket_action(o->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(o);
	return SB_TIMER_STOP;
}

static int
timer_cb(CURLM *m, long ms, void *userp)
{
	struct http_out *o = userp;

	(void)m;
	if (o->timer) {
		sb_loop_del_timer(o->loop, o->timer);
		o->timer = NULL;
	}
	if (ms >= 0)
		o->timer = sb_loop_add_timer(o->loop, ms, on_timer, o);
	return 0;
}

/* Refuse descriptors XMPP's and IRC's select() could not hold. */
static curl_socket_t
open_sock(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct hook *h = ud;
	int fd;

	(void)purpose;
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd >= FD_CEILING) {
		sb_warnx("http %s: webhook %s: descriptor %d is past %d; not used",
		    h->o->chan, h->c.name, fd, FD_CEILING);
		close(fd);
		return CURL_SOCKET_BAD;
	}
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static size_t
discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;	/* the answer's body is not needed */
}

/* ---- queue ---- */

static void
pop(struct hook *h)
{
	struct item *it = h->head;

	h->head = it->next;
	if (h->head == NULL)
		h->tail = NULL;
	h->n--;
	free(it->body);
	free(it);
}

static long
on_retry(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct hook *h = ud;

	(void)loop;
	(void)t;
	h->retry = NULL;
	start_next(h);
	return SB_TIMER_STOP;
}

static void
finish(struct hook *h, CURLcode rc)
{
	struct item *it = h->head;
	long status = 0;

	if (rc == CURLE_OK)
		curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(h->o->multi, h->easy);
	curl_easy_cleanup(h->easy);
	h->easy = NULL;
	it->attempts++;
	if (rc == CURLE_OK && status >= 200 && status < 300) {
		sb_info("http %s: webhook %s: delivered (HTTP %ld)%s", h->o->chan, h->c.name,
		    status, it->attempts > 1 ? " after retries" : "");
		h->delivered++;
		pop(h);
		start_next(h);
		return;
	}
	if (!http_out_retryable(status) || it->attempts >= h->c.max_attempts) {
		if (rc != CURLE_OK)
			sb_warnx("http %s: webhook %s: dropped after %d attempt%s: %s", h->o->chan,
			    h->c.name, it->attempts, it->attempts == 1 ? "" : "s",
			    *h->errbuf ? h->errbuf : curl_easy_strerror(rc));
		else
			sb_warnx("http %s: webhook %s: dropped after %d attempt%s: HTTP %ld",
			    h->o->chan, h->c.name, it->attempts, it->attempts == 1 ? "" : "s", status);
		h->failed++;
		pop(h);
		start_next(h);
		return;
	}
	{
		long delay = http_out_backoff(h->c.retry_ms, h->c.retry_max_ms, it->attempts);

		if (rc != CURLE_OK)
			sb_notice("http %s: webhook %s: attempt %d failed (%s); retry in %ld ms",
			    h->o->chan, h->c.name, it->attempts,
			    *h->errbuf ? h->errbuf : curl_easy_strerror(rc), delay);
		else
			sb_notice("http %s: webhook %s: attempt %d failed (HTTP %ld); retry in %ld ms",
			    h->o->chan, h->c.name, it->attempts, status, delay);
		h->retries++;
		h->retry = sb_loop_add_timer(h->o->loop, delay, on_retry, h);
	}
}

static void
check_done(struct http_out *o)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(o->multi, &left)) != NULL) {
		struct hook *h = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&h);
		if (h && h->easy == m->easy_handle)
			finish(h, m->data.result);
	}
}

static void
start_next(struct hook *h)
{
	struct http_out *o = h->o;
	CURL *e;

	if (!o->started || h->easy || h->retry || h->head == NULL)
		return;
	if ((e = curl_easy_init()) == NULL) {
		sb_warnx("http %s: webhook %s: cannot make a transfer", o->chan, h->c.name);
		return;
	}
	h->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, h->c.url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->c.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->c.timeout_ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "switchboard/" SB_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(h->head->body));
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->head->body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_sock);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
	curl_easy_setopt(e, CURLOPT_PRIVATE, h);
	h->easy = e;
	if (curl_multi_add_handle(o->multi, e) != CURLM_OK) {
		sb_warnx("http %s: webhook %s: cannot start a transfer", o->chan, h->c.name);
		curl_easy_cleanup(e);
		h->easy = NULL;
	}
}

/* ---- life cycle ---- */

struct http_out *
http_out_new(const char *chan, struct http_webhook_conf *confs, size_t n)
{
	struct http_out *o = sb_calloc(1, sizeof(*o));

	o->chan = sb_strdup(chan);
	o->n = n;
	o->hooks = sb_calloc(n + 1, sizeof(*o->hooks));
	for (size_t i = 0; i < n; i++) {
		struct hook *h = &o->hooks[i];

		h->o = o;
		h->c = confs[i];
		h->headers = curl_slist_append(NULL, "Content-Type: application/json");
		if (h->c.bearer) {
			char *line = sb_asprintf("Authorization: Bearer %s", h->c.bearer);

			h->headers = curl_slist_append(h->headers, line);
			free(line);
		}
		/* No "Expect: 100-continue" round trip for small bodies. */
		h->headers = curl_slist_append(h->headers, "Expect:");
	}
	free(confs);
	return o;
}

int
http_out_start(struct http_out *o, struct sb_loop *loop)
{
	static int curl_ready;

	if (o->started || o->n == 0)
		return 0;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			sb_warnx("http %s: libcurl did not initialise", o->chan);
			return -1;
		}
		curl_ready = 1;
	}
	o->loop = loop;
	if ((o->multi = curl_multi_init()) == NULL)
		return -1;
	curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o);
	curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o);
	o->started = 1;
	for (size_t i = 0; i < o->n; i++)
		start_next(&o->hooks[i]);
	return 0;
}

void
http_out_stop(struct http_out *o)
{
	if (o == NULL || !o->started)
		return;
	o->started = 0;
	for (size_t i = 0; i < o->n; i++) {
		struct hook *h = &o->hooks[i];

		if (h->easy) {
			curl_multi_remove_handle(o->multi, h->easy);
			curl_easy_cleanup(h->easy);
			h->easy = NULL;
		}
		if (h->retry) {
			sb_loop_del_timer(o->loop, h->retry);
			h->retry = NULL;
		}
	}
	curl_multi_cleanup(o->multi);
	o->multi = NULL;
	if (o->timer) {
		sb_loop_del_timer(o->loop, o->timer);
		o->timer = NULL;
	}
}

void
http_out_free(struct http_out *o)
{
	if (o == NULL)
		return;
	http_out_stop(o);
	for (size_t i = 0; i < o->n; i++) {
		struct hook *h = &o->hooks[i];

		if (h->n)
			sb_warnx("http %s: webhook %s: %zu notification%s not delivered",
			    o->chan, h->c.name, h->n, h->n == 1 ? "" : "s");
		while (h->head)
			pop(h);
		curl_slist_free_all(h->headers);
		free(h->c.name);
		free(h->c.url);
		free(h->c.bearer);
	}
	free(o->hooks);
	free(o->chan);
	free(o);
}

static struct hook *
find(const struct http_out *o, const char *name)
{
	for (size_t i = 0; o && i < o->n; i++)
		if (strcmp(o->hooks[i].c.name, name) == 0)
			return &o->hooks[i];
	return NULL;
}

int
http_out_has(const struct http_out *o, const char *name)
{
	return find(o, name) != NULL;
}

size_t
http_out_count(const struct http_out *o)
{
	return o ? o->n : 0;
}

size_t
http_out_queued(const struct http_out *o)
{
	size_t n = 0;

	for (size_t i = 0; o && i < o->n; i++)
		n += o->hooks[i].n;
	return n;
}

int
http_out_send(struct http_out *o, const char *name, const char *text)
{
	struct hook *h = find(o, name);
	struct item *it;

	if (h == NULL)
		return -1;
	if (h->n >= h->c.queue_max) {
		h->dropped++;
		sb_warnx("http %s: webhook %s: %zu notifications waiting; this one dropped",
		    o->chan, h->c.name, h->n);
		return -2;
	}
	it = sb_calloc(1, sizeof(*it));
	it->body = http_out_body(h->c.format, o->chan, text, time(NULL));
	if (h->tail)
		h->tail->next = it;
	else
		h->head = it;
	h->tail = it;
	h->n++;
	start_next(h);
	return 0;
}

void
http_out_metrics(const struct http_out *o, struct sb_buf *b)
{
	static const struct {
		const char *result;
		size_t off;
	} results[] = {
		{ "delivered", offsetof(struct hook, delivered) },
		{ "failed", offsetof(struct hook, failed) },
		{ "retried", offsetof(struct hook, retries) },
		{ "dropped", offsetof(struct hook, dropped) },
	};

	http_prom_head(b, "switchboard_webhook_deliveries_total", "counter",
	    "Outgoing webhook attempts by result (retried: an attempt that failed and is retried).");
	for (size_t i = 0; o && i < o->n; i++)
		for (size_t r = 0; r < SB_ARRAY_LEN(results); r++) {
			sb_buf_puts(b, "switchboard_webhook_deliveries_total{channel=\"");
			http_prom_label(b, o->chan);
			sb_buf_puts(b, "\",webhook=\"");
			http_prom_label(b, o->hooks[i].c.name);
			sb_buf_printf(b, "\",result=\"%s\"} %lu\n", results[r].result,
			    *(const unsigned long *)((const char *)&o->hooks[i] + results[r].off));
		}
	http_prom_head(b, "switchboard_webhook_queue", "gauge",
	    "Notifications waiting for an outgoing webhook, the one in flight included.");
	for (size_t i = 0; o && i < o->n; i++) {
		sb_buf_puts(b, "switchboard_webhook_queue{channel=\"");
		http_prom_label(b, o->chan);
		sb_buf_puts(b, "\",webhook=\"");
		http_prom_label(b, o->hooks[i].c.name);
		sb_buf_printf(b, "\"} %zu\n", o->hooks[i].n);
	}
}
