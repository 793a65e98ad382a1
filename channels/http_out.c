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
 *
 * libcurl is loaded (dlopen) by the first channel that has a webhook to
 * send to, not linked: it and the libraries it pulls in (GnuTLS, Kerberos,
 * LDAP, libssh2, ...) cost ~1.6 MB of resident memory and start-up time in
 * every daemon, and most send nothing.  Its ABI is stable under the soname
 * libcurl.so.4; the calls below go through the table `cu'.
 */
#include <errno.h>
#include <stddef.h>
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
#include "module.h"
#include "util.h"

#define FD_CEILING 1024		/* select()-based libraries share the process */

/* ---- libcurl, loaded on first use ---- */

static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_cleanup)(CURLM *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} cu;

/* curl.h wraps these in checking macros around the real calls */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init	cu.global_init
#define curl_easy_init		cu.easy_init
#define curl_easy_setopt	cu.easy_setopt
#define curl_easy_getinfo	cu.easy_getinfo
#define curl_easy_cleanup	cu.easy_cleanup
#define curl_easy_strerror	cu.easy_strerror
#define curl_multi_init		cu.multi_init
#define curl_multi_setopt	cu.multi_setopt
#define curl_multi_add_handle	cu.multi_add_handle
#define curl_multi_remove_handle cu.multi_remove_handle
#define curl_multi_socket_action cu.multi_socket_action
#define curl_multi_info_read	cu.multi_info_read
#define curl_multi_cleanup	cu.multi_cleanup
#define curl_slist_append	cu.slist_append
#define curl_slist_free_all	cu.slist_free_all

/* 0 once libcurl is loaded and initialised; -1 (logged once) if it cannot
 * be: every webhook then fails to start with that reason. */
static int
curl_load(const char *chan)
{
	static const char *const sonames[] = { "libcurl.so.4", "libcurl-gnutls.so.4" };
	static const struct sb_libsym syms[] = {
#define SYM(f, m) { "curl_" #f, offsetof(__typeof__(cu), m) }
		SYM(global_init, global_init), SYM(easy_init, easy_init),
		SYM(easy_setopt, easy_setopt), SYM(easy_getinfo, easy_getinfo),
		SYM(easy_cleanup, easy_cleanup), SYM(easy_strerror, easy_strerror),
		SYM(multi_init, multi_init), SYM(multi_setopt, multi_setopt),
		SYM(multi_add_handle, multi_add_handle),
		SYM(multi_remove_handle, multi_remove_handle),
		SYM(multi_socket_action, multi_socket_action),
		SYM(multi_info_read, multi_info_read), SYM(multi_cleanup, multi_cleanup),
		SYM(slist_append, slist_append), SYM(slist_free_all, slist_free_all),
#undef SYM
	};
	static int state;	/* 0 not tried, 1 ready, -1 failed */
	char why[256];

	if (state != 0)
		return state > 0 ? 0 : -1;
	state = -1;
	if (sb_library_load(sonames, SB_ARRAY_LEN(sonames), syms, SB_ARRAY_LEN(syms), &cu,
	    why, sizeof(why)) < 0) {
		sb_warnx("http %s: outgoing webhooks need libcurl: %s", chan, why);
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		sb_warnx("http %s: libcurl did not initialise", chan);
		return -1;
	}
	state = 1;
	return 0;	/* kept loaded for the process's life */
}

struct item {
	struct item *next;
	char   *body;
	int     attempts;
	uint64_t id;		/* a spooled notice (one attempt, reported), or 0 */
	unsigned attempt;	/* the spool's attempt number */
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
	int     broken;		/* libcurl could not be loaded */
	http_out_result_fn *result;
	void   *result_ud;
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

char *
http_out_notice_body(enum http_out_format f, const char *chan, const char *text,
                     const char *json, time_t when)
{
	json_t *o = json && f == HTTP_OUT_JSON ? json_loads(json, 0, NULL) : NULL;
	char stamp[32];
	struct tm tm;
	char *s;

	if (!json_is_object(o)) {
		json_decref(o);
		return http_out_body(f, chan, text, when);
	}
	gmtime_r(&when, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (json_object_get(o, "channel") == NULL)
		json_object_set_new(o, "channel", json_string(chan));
	if (json_object_get(o, "time") == NULL)
		json_object_set_new(o, "time", json_string(stamp));
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

/*
 * The one attempt at a spooled notice is over: log, count, report, and go
 * on with the next.  The spool decides about retries; "attempt N failed"
 * and "dropped after N attempts" keep the wording of the in-memory retries.
 */
static void
finish_notice(struct hook *h, struct item *it, CURLcode rc, long status)
{
	struct http_out *o = h->o;
	enum http_out_result res;
	const char *why = rc != CURLE_OK ? (*h->errbuf ? h->errbuf : curl_easy_strerror(rc)) : NULL;
	uint64_t id = it->id;

	if (rc == CURLE_OK && status >= 200 && status < 300) {
		sb_info("http %s: webhook %s: delivered (HTTP %ld)%s [notice %llu]", o->chan,
		    h->c.name, status, it->attempt > 1 ? " after retries" : "",
		    (unsigned long long)id);
		h->delivered++;
		res = HTTP_OUT_DONE;
	} else if (http_out_retryable(rc == CURLE_OK ? status : 0)) {
		if (why)
			sb_notice("http %s: webhook %s: attempt %u failed (%s); the spool retries "
			    "[notice %llu]", o->chan, h->c.name, it->attempt, why,
			    (unsigned long long)id);
		else
			sb_notice("http %s: webhook %s: attempt %u failed (HTTP %ld); the spool "
			    "retries [notice %llu]", o->chan, h->c.name, it->attempt, status,
			    (unsigned long long)id);
		h->retries++;
		res = HTTP_OUT_LATER;
	} else {
		sb_warnx("http %s: webhook %s: dropped after %u attempt%s: HTTP %ld [notice %llu]",
		    o->chan, h->c.name, it->attempt, it->attempt == 1 ? "" : "s", status,
		    (unsigned long long)id);
		h->failed++;
		res = HTTP_OUT_FAIL;
	}
	pop(h);
	start_next(h);
	if (o->result)
		o->result(o->result_ud, id, res);
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
	if (it->id) {
		finish_notice(h, it, rc, status);
		return;
	}
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
	if (n > 0 && curl_load(chan) < 0)
		o->broken = 1;
	for (size_t i = 0; i < n; i++) {
		struct hook *h = &o->hooks[i];

		h->o = o;
		h->c = confs[i];
		if (o->broken)
			continue;
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
	if (o->started || o->n == 0)
		return 0;
	if (o->broken)
		return -1;	/* curl_load() said why */
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

/* Take the spooled notices out of every queue (their ids into *ids, the
 * caller frees): a stopped channel hands them back to the spool. */
static size_t
take_notices(struct http_out *o, uint64_t **ids)
{
	size_t n = 0;

	*ids = NULL;
	for (size_t i = 0; i < o->n; i++) {
		struct hook *h = &o->hooks[i];
		struct item **pp = &h->head, *it;

		h->tail = NULL;
		while ((it = *pp) != NULL) {
			if (it->id == 0) {
				h->tail = it;
				pp = &it->next;
				continue;
			}
			*ids = sb_realloc(*ids, (n + 1) * sizeof(**ids));
			(*ids)[n++] = it->id;
			*pp = it->next;
			h->n--;
			free(it->body);
			free(it);
		}
	}
	return n;
}

void
http_out_stop(struct http_out *o)
{
	uint64_t *ids;
	size_t nids;

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
	nids = take_notices(o, &ids);
	for (size_t i = 0; i < nids && o->result; i++)
		o->result(o->result_ud, ids[i], HTTP_OUT_LATER);
	free(ids);
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
		if (h->headers)
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

/* Queue it (taken) behind the hook's others and start if idle. */
static void
enqueue(struct hook *h, struct item *it)
{
	if (h->tail)
		h->tail->next = it;
	else
		h->head = it;
	h->tail = it;
	h->n++;
	start_next(h);
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
	enqueue(h, it);
	return 0;
}

void
http_out_set_result(struct http_out *o, http_out_result_fn *fn, void *ud)
{
	o->result = fn;
	o->result_ud = ud;
}

enum http_out_format
http_out_format_of(const struct http_out *o, const char *name)
{
	struct hook *h = find(o, name);

	return h ? h->c.format : HTTP_OUT_SLACK;
}

int
http_out_deliver(struct http_out *o, const char *name, uint64_t id, unsigned attempt,
                 char *body)
{
	struct hook *h = find(o, name);
	struct item *it;

	if (h == NULL) {
		free(body);
		return -1;
	}
	for (it = h->head; it; it = it->next)
		if (it->id == id) {
			free(body);	/* still waiting: its outcome will come */
			return 0;
		}
	if (!o->started || h->n >= h->c.queue_max) {
		if (o->started)
			sb_notice("http %s: webhook %s: %zu notifications waiting; notice %llu "
			    "stays in the spool", o->chan, h->c.name, h->n, (unsigned long long)id);
		free(body);
		return -2;
	}
	it = sb_calloc(1, sizeof(*it));
	it->body = body;
	it->id = id;
	it->attempt = attempt ? attempt : 1;
	enqueue(h, it);
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
